#!/usr/bin/env python
"""Rounds per second on 1 and 2 TFF workers (``--workers``), measured in one run.

Two parts, each interleaving the worker counts (1, 2, 2, 1, 1, 2, ...) so that
drift on the machine falls on both:

* **Whole rounds** (``bench_round.bench_task``): per round, client training (one
  TFF ``federated_map``, split across the workers), poisoning and evaluation
  (eager, in Python), then FedAvg's and residual reweighting's ``next`` on the
  same updates (split across the workers, merged in client order). The round of
  an aggregator is train + poison + evaluate + its ``next``; rounds per second =
  1 / the median round. Peak memory is each worker's RSS high-water mark (VmHWM)
  at the end of the part.
* **Aggregation alone at ResNet-18 size** (the 62 tensors, 11.2 M floats) and
  K = 10 random client values: ``next`` of FedAvg and residual reweighting, on 1
  and 2 workers and in process (``--aggregation=in_process``: the same server
  step, eager in Python).

    .venv/bin/python scripts/bench_workers.py                  # about 15 min on 2 cores
    .venv/bin/python scripts/bench_workers.py --quick          # smoke preset, about 3 min

Medians over ``--repeats`` blocks of ``--timed_rounds`` rounds per worker count.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_round  # noqa: E402  (bench_task: the paired rounds)

ROUND_TASKS = (("fmnist_backdoor", ()), ("fmnist_label_flip", ("--clients_per_round=50",)))
AGGREGATORS = ("fedavg", "residual")


def worker_order(repeats: int, counts=(1, 2)) -> list[int]:
  """1, 2, 2, 1, 1, 2, ...: each count first in every other block."""
  order = []
  for repeat in range(repeats):
    order += list(counts) if repeat % 2 == 0 else list(reversed(counts))
  return order


def bench_rounds(cli, task: str, extra: list[str], repeats: int, warmup: int, timed: int,
                 seed: int) -> dict[int, dict]:
  """{workers: {"round": {name: [s]}, "shared": [s], "next": {name: [s]}, "peak": [MiB]}}."""
  cells = {}
  for workers in worker_order(repeats):
    timings = bench_round.bench_task(cli, task, list(AGGREGATORS), AGGREGATORS[-1], warmup,
                                     timed, seed, [*extra, f"--workers={workers}"])
    cell = cells.setdefault(workers, {"shared": [], "next": {n: [] for n in AGGREGATORS},
                                      "peaks": [], "clients_per_round": timings["clients_per_round"],
                                      "model": timings["model"],
                                      "data_source": timings["data_source"]})
    cell["shared"] += timings["shared"]
    cell["peaks"] += timings["worker_peak_mib"]
    for name in AGGREGATORS:
      cell["next"][name] += timings["aggregate"][name]
  for cell in cells.values():
    cell["peak"] = max(cell["peaks"])
  return cells


def bench_resnet_aggregation(repeats: int, num_clients: int, seed: int) -> dict[int, dict]:
  """{workers: {"next": {name: [s]}, "peak": MiB}} for ResNet-18-sized client values."""
  import numpy as np
  import tensorflow_federated as tff

  from bench_kernels import model_shapes
  from tff_residual.simulation import compared_aggregators as table
  from tff_residual.runtime.managed import ManagedTffRuntime
  rng = np.random.default_rng(seed)
  sizes = model_shapes("resnet18")
  value_type = tff.types.to_type([tff.TensorType(np.float32, [n]) for n in sizes])
  values = [[rng.normal(size=n).astype(np.float32) for n in sizes] for _ in range(num_clients)]

  settings = table.AggregatorSettings(params={}, num_attackers=0,
                                      participants_per_round=num_clients)
  from tff_residual.simulation.in_process import InProcessFactory

  def timed_next(process) -> float:
    state = process.initialize()
    process.next(state, values, [1.0] * num_clients)  # warm-up: tracing, first calls
    start = time.perf_counter()
    process.next(state, values, [1.0] * num_clients)
    return time.perf_counter() - start

  cells = {}
  for workers in worker_order(repeats):
    with ManagedTffRuntime(num_workers=workers) as runtime:
      cell = cells.setdefault(workers, {"next": {n: [] for n in AGGREGATORS}, "peak": 0.0})
      for name in AGGREGATORS:
        factory = table.build_factory(name, settings)
        cell["next"][name].append(timed_next(factory.create(value_type,
                                                            tff.TensorType(np.float32))))
      cell["peak"] = max(cell["peak"], *map(bench_round.peak_mib, runtime.pids))
      if workers == 1:  # --aggregation=in_process: the same step, eager, in this process
        cell = cells.setdefault("in process", {"next": {n: [] for n in AGGREGATORS},
                                               "peak": float("nan")})
        for name in AGGREGATORS:
          factory = InProcessFactory(table.build_factory(name, settings))
          cell["next"][name].append(timed_next(factory.create(value_type,
                                                              tff.TensorType(np.float32))))
  return cells


def _median(values) -> float:
  return statistics.median(values) if values else float("nan")


def round_table(results: list[tuple[str, dict]]) -> list[str]:
  lines = ["| task | clients per round | workers | train + poison + evaluate | fedavg next | "
           "residual next | residual round | rounds per second (residual) | vs 1 worker | "
           "peak RSS per worker |", "|---|---|---|---|---|---|---|---|---|---|"]
  for task, cells in results:
    base = None
    for workers in sorted(cells):
      cell = cells[workers]
      rounds = [s + a for s, a in zip(cell["shared"], cell["next"]["residual"])]
      rate = 1.0 / _median(rounds)
      base = base or rate
      lines.append(f"| {task} | {cell['clients_per_round']} | {workers} | "
                   f"{_median(cell['shared']):.2f} s | {_median(cell['next']['fedavg']):.3f} s | "
                   f"{_median(cell['next']['residual']):.3f} s | {_median(rounds):.2f} s | "
                   f"{rate:.3f} | {rate / base:.2f}x | {cell['peak']:.0f} MiB |")
  return lines


def resnet_table(cells: dict, num_clients: int) -> list[str]:
  lines = [f"| ResNet-18 values (11.2 M floats), K = {num_clients} | TFF workers | fedavg next | "
           "residual next | residual vs 1 worker | peak RSS per worker |",
           "|---|---|---|---|---|---|"]
  base = _median(cells[1]["next"]["residual"])
  for workers in sorted(cells, key=lambda w: (isinstance(w, str), str(w))):
    cell = cells[workers]
    residual = _median(cell["next"]["residual"])
    peak = "(Python process)" if cell["peak"] != cell["peak"] else f"{cell['peak']:.0f} MiB"
    lines.append(f"| | {workers} | {_median(cell['next']['fedavg']):.2f} s | {residual:.2f} s | "
                 f"{base / residual:.2f}x | {peak} |")
  return lines


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="bench_workers.py", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--repeats", type=int, default=2, help="blocks per worker count")
  parser.add_argument("--warmup_rounds", type=int, default=1)
  parser.add_argument("--timed_rounds", type=int, default=4)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--quick", action="store_true", help="smoke preset, one block each")
  parser.add_argument("--skip_resnet", action="store_true")
  args = parser.parse_args(argv)
  if args.repeats < 1 or args.timed_rounds < 1 or args.warmup_rounds < 1:
    parser.error("--repeats, --warmup_rounds and --timed_rounds must be at least 1")
  from tff_residual.entry import load_cli
  cli = load_cli()
  preset = "--preset=smoke" if args.quick else "--preset=cpu"
  repeats = 1 if args.quick else args.repeats
  start = time.perf_counter()
  results = []
  for task, extra in ROUND_TASKS:
    print(f"{task} {' '.join(extra)}: {repeats} block(s) of {args.warmup_rounds} + "
          f"{args.timed_rounds} rounds per worker count ...", flush=True)
    results.append((task, bench_rounds(cli, task, [preset, *extra], repeats,
                                       args.warmup_rounds, args.timed_rounds, args.seed)))
  print()
  for task, cells in results:
    cell = next(iter(cells.values()))
    print(f"{task}: {cell['data_source']}; model {cell['model']}")
  print("\n".join(round_table(results)))
  if not args.skip_resnet:
    print("\nResNet-18-sized aggregation ...", flush=True)
    cells = bench_resnet_aggregation(repeats, 10, args.seed)
    print("\n".join(resnet_table(cells, 10)))
  print(f"\n({time.perf_counter() - start:.0f} s; {os.cpu_count()} CPUs)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
