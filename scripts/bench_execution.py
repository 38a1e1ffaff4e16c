#!/usr/bin/env python
"""Seconds per round of client training: on TFF's worker against in this process.

    .venv/bin/python scripts/bench_execution.py [--tasks fmnist_backdoor,cifar10_backdoor]
        [--presets cpu,paper] [--warmup_rounds 1] [--timed_rounds 3] [run.py flags ...]

For each task and preset, one experiment (the same data, clients, attackers and
initial model) trains each round's clients twice from the same global model:
with ``--execution=tff`` (one TFF computation on TFF's worker, as run.py does by
default), with ``--execution=in_process`` (the same ``local_training`` loop as
a ``tf.function`` in this process, ``PARALLEL_CLIENTS`` clients at once) and in
process one client at a time, the order rotating from round to round.
The global model then moves by FedAvg of the TFF updates. A cell is the median
over the ``--timed_rounds`` after ``--warmup_rounds`` (tracing, the worker's first
call); "max |diff|" is the largest absolute difference between the two paths'
updates over every round, the equality check beside the timing; each client's of round 0
is printed above the table.

"1 ulp apart" is what rounding alone does to the same training: round 0 trained in
process once more (a fresh experiment, so the same data order and seeds) from the
initial model with every weight moved to its next float32 (``np.nextafter``), and the
largest absolute difference of its updates from the in-process ones. Where training
amplifies a last-bit difference, two TensorFlow builds that round one reduction
differently (TFF's worker links its own) cannot agree better than this.

Other flags go to every run's settings, as run.py's (e.g. ``--data_path=...`` for
CIFAR-10, ``--clients_per_round=10``, ``--max_batches_per_epoch=5`` to cut a
paper-preset round).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from main_job import load_cli  # noqa: E402  (scripts/ is on sys.path when run as a script)

VARIANTS = {"tff": ("tff", None), "in_process": ("in_process", None),
            "in_process_1": ("in_process", 1)}
"""Name: (execution, clients at once). TFF's worker; in process with
``client_training.PARALLEL_CLIENTS`` clients at once; in process one client at a time."""


def bench_task(cli, task: str, preset: str, warmup_rounds: int, timed_rounds: int, seed: int,
               extra: list[str]) -> dict:
  """One task and preset: the per-round training seconds of each execution."""
  import numpy as np

  from tff_residual.simulation import runner
  from tff_residual.simulation.client_training import PARALLEL_CLIENTS
  from tff_residual.simulation.experiment import Experiment
  from tff_residual.runtime.managed import managed_tff_runtime

  rounds = warmup_rounds + timed_rounds
  args = cli.build_parser().parse_args([f"--task={task}", f"--preset={preset}", "--aggregator=fedavg",
                                        f"--seed={seed}", f"--rounds={rounds}", *extra])
  config, family = cli.config_from_args(args)
  prepared = runner.prepare(config, family)
  model_spec, attack = runner.model_and_attack(prepared)
  names = list(VARIANTS)
  seconds = {name: [] for name in names}
  largest_difference = 0.0
  with managed_tff_runtime():
    runs = {name: Experiment(config.round_settings(), prepared.data, model_spec, attack,
                             prepared.federation, execution, parallel_clients)
            for name, (execution, parallel_clients) in VARIANTS.items()}
    weights = runs["tff"].initial_weights
    for round_index in range(rounds):
      turn = round_index % len(names)
      order = names[turn:] + names[:turn]  # rotating
      results = {}
      for execution in order:
        start = time.perf_counter()
        _, results[execution] = runs[execution].train_round(round_index, weights)
        if round_index >= warmup_rounds:
          seconds[execution].append(time.perf_counter() - start)
      for other in names[1:]:
        largest_difference = max(largest_difference,
                                 *client_differences(results["tff"], results[other]))
      if round_index == 0:  # each client's, from the same initial model
        first_round = client_differences(results["tff"], results["in_process"])
        nudged = Experiment(config.round_settings(), prepared.data, model_spec, attack,
                            prepared.federation, "in_process", None)
        _, nudged_results = nudged.train_round(
            0, [np.nextafter(w, np.inf).astype(w.dtype) for w in weights])
        ulp_apart = client_differences(results["in_process"], nudged_results)
      weights = [w + np.mean([r.update[t] for r in results["tff"]], axis=0).astype(w.dtype)
                 for t, w in enumerate(weights)]
  return {"task": task, "preset": preset, "model": config.model, "parallel": PARALLEL_CLIENTS,
          "clients_per_round": config.participants_per_round,
          "data_source": prepared.data.data_source,
          "median": {name: statistics.median(seconds[name]) for name in names},
          "all": seconds, "max_difference": largest_difference,
          "first_round_differences": first_round, "ulp_differences": ulp_apart}


def client_differences(first, second) -> list[float]:
  """Each client's largest absolute difference between two lists of client results."""
  import numpy as np
  return [max(float(np.max(np.abs(ua - ub), initial=0)) for ua, ub in zip(a.update, b.update))
          for a, b in zip(first, second)]


def format_table(cells: list[dict], warmup_rounds: int, timed_rounds: int) -> str:
  lines = [f"Client training per round, seconds (median of {timed_rounds} rounds after "
           f"{warmup_rounds} warm-up; the three in one run, in rotating order)", "",
           "| task | preset | model | clients per round | TFF worker | in process, "
           f"{cells[0]['parallel'] if cells else '?'} at once | in process, 1 at a time | "
           "TFF / in process | max abs diff of the updates | round 0, in process from weights "
           "1 ulp apart: max abs diff |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  for cell in cells:
    median = cell["median"]
    lines.append(f"| {cell['task']} | {cell['preset']} | {cell['model']} | "
                 f"{cell['clients_per_round']} | {median['tff']:.2f} | {median['in_process']:.2f} | "
                 f"{median['in_process_1']:.2f} | {median['tff'] / median['in_process']:.2f}x | "
                 f"{cell['max_difference']:.1e} | {max(cell['ulp_differences']):.1e} |")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="bench_execution.py", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--tasks", default="fmnist_backdoor,cifar10_backdoor")
  parser.add_argument("--presets", default="cpu,paper")
  parser.add_argument("--warmup_rounds", type=int, default=1)
  parser.add_argument("--timed_rounds", type=int, default=3)
  parser.add_argument("--seed", type=int, default=0)
  args, extra = parser.parse_known_args(argv)
  if args.warmup_rounds < 0 or args.timed_rounds < 1:
    parser.error("--warmup_rounds must be at least 0 and --timed_rounds at least 1")
  cli = load_cli()
  cells = []
  for task in args.tasks.split(","):
    for preset in args.presets.split(","):
      try:
        cell = bench_task(cli, task, preset, args.warmup_rounds, args.timed_rounds, args.seed,
                          extra)
      except (cli.ConfigError, cli.DataError) as error:
        print(f"bench_execution.py: error: {task} {preset}: {error}", file=sys.stderr)
        return 2
      cells.append(cell)
      print(f"{task} {preset} ({cell['data_source']}): "
            + "; ".join(f"{e} {[round(s, 3) for s in cell['all'][e]]} s" for e in VARIANTS)
            + "; round 0, each client's max |in_process - tff|: "
            + ", ".join(f"{d:.1e}" for d in cell["first_round_differences"])
            + "; in process from weights 1 ulp apart: "
            + ", ".join(f"{d:.1e}" for d in cell["ulp_differences"]), flush=True)
  print()
  print(format_table(cells, args.warmup_rounds, args.timed_rounds))
  return 0


if __name__ == "__main__":
  sys.exit(main())
