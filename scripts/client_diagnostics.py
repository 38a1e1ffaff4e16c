#!/usr/bin/env python
"""Why an aggregator gains or loses accuracy on a task: per client, its
training-set size, the norm of its update and the weight each aggregator gives
it, in chosen rounds of a FedAvg run (the same global model for every
aggregator, so the weights are comparable).

    python scripts/client_diagnostics.py --task=loan_backdoor [--rounds_to_show=0,9,29]
        [--aggregator=median,residual] [any run.py flag]

Prints one table per shown round: client, name (the state for LOAN), training
examples, attacker or not, update L2 norm, and per aggregator the client's
weight (``client_weights`` of the eager API; the median and trimmed mean
report the share of coordinates each client supplies), computed by the eager API
with the parameters of the run's own factory (``--lambda_``, ``--delta``, ...). The global model follows
FedAvg (TFF's ``MeanFactory``) through all rounds, as in the attacked run.

``--partition_only`` prints, instead, each client's training examples per class and
the attackers' share of each class, and stops before TFF starts (a label-flipping
attacker that holds much of its source class takes that class's data with it).
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from tff_residual.entry import load_cli  # noqa: E402

run_cli = load_cli()


def print_partition(federation, num_classes: int) -> None:
  """Per client: training examples per class; then the attackers' share of each class."""
  counts = np.array([np.bincount(c.y, minlength=num_classes) for c in federation.clients])
  print("| client | name | attacker | train examples | " + " | ".join(
      f"class {k}" for k in range(num_classes)) + " |")
  print("|---" * (4 + num_classes) + "|")
  for client, row in enumerate(counts):
    print(f"| {client} | {federation.names[client]} | "
          f"{'yes' if client in federation.attackers else ''} | {row.sum()} | "
          + " | ".join(str(n) for n in row) + " |")
  held = counts[federation.attackers].sum(axis=0) / np.maximum(counts.sum(axis=0), 1)
  print(f"attackers {federation.attackers}: share of each class's training examples: "
        + ", ".join(f"{k} {share:.3f}" for k, share in enumerate(held)))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--rounds_to_show", default="0,9,29")
  parser.add_argument("--aggregator", default="median,trimmed_mean,residual")
  parser.add_argument("--partition_only", action="store_true",
                      help="print the clients' examples per class and stop")
  args, extra = parser.parse_known_args(argv)
  shown = sorted({int(r) for r in args.rounds_to_show.split(",")})
  from tff_residual.simulation.compared_aggregators import build_factory, parse_aggregators
  try:
    names = [n for n in parse_aggregators(args.aggregator) if n != "fedavg"]
  except ValueError as error:
    parser.error(str(error))
  cli_args = run_cli.build_parser().parse_args(
      [*extra, "--aggregator=fedavg", f"--rounds={max(shown) + 1}"])
  config, family = run_cli.config_from_args(cli_args)
  from tff_residual.simulation import runner
  prepared = runner.prepare(config, family)
  if args.partition_only:
    print_partition(prepared.federation, prepared.data.num_classes)
    return 0

  import tensorflow_federated as tff

  import tff_residual
  from tff_residual.simulation.experiment import Experiment
  from tff_residual.runtime.managed import managed_tff_runtime

  federation = prepared.federation
  model_spec, attack = runner.model_and_attack(prepared)
  print(f"task {config.task}: {runner.describe(prepared, attack.describe())['data_source']}, "
        f"clients {config.num_clients}, attackers {federation.attackers}")
  with managed_tff_runtime():
    experiment = Experiment(config.round_settings(), prepared.data, model_spec, attack, federation)
    process = tff.aggregators.MeanFactory().create(experiment.trainer.weights_type,
                                                   tff.TensorType(np.float32))
    state = process.initialize()
    weights = [w.copy() for w in experiment.initial_weights]
    for round_index in range(max(shown) + 1):
      clients, results = experiment.train_round(round_index, weights)
      inputs = experiment.aggregation_inputs(round_index, clients, results, weights)
      if round_index in shown:
        flat = [np.concatenate([np.ravel(u) for u in update]) for update in inputs.updates]
        columns = {}
        for name in names:  # the run's factories, with the run's --lambda_, --delta, --beta
          factory = build_factory(name, config.aggregator_settings())
          _, info = tff_residual.aggregate(flat, factory.method, **factory.params)
          columns[name] = info["client_weights"]
        accuracy = experiment.evaluator.evaluate(weights).accuracy
        print(f"\nround {round_index} (global model accuracy {100 * accuracy:.2f}% before it)")
        print("| client | name | train examples | attacker | update norm | "
              + " | ".join(f"{n} weight" for n in names) + " |")
        print("|---" * (5 + len(names)) + "|")
        for i, client in enumerate(inputs.clients):
          print(f"| {client} | {federation.names[client]} | {len(federation.clients[client])} | "
                f"{'yes' if client in experiment.attackers else ''} | "
                f"{np.linalg.norm(flat[i]):.4f} | "
                + " | ".join(f"{columns[n][i]:.3f}" for n in names) + " |")
      output = process.next(state, inputs.updates, inputs.client_weights)
      state = output.state
      weights = [w + np.asarray(a, w.dtype) for w, a in zip(weights, output.result)]
  return 0


if __name__ == "__main__":
  sys.exit(main())
