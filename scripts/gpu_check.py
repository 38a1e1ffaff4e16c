#!/usr/bin/env python
"""Every eager kernel, and whole rounds run in process, on the GPU and on the CPU:
same results, and their times.

    .venv/bin/python scripts/gpu_check.py [--clients 10] [--size 1000000] [--repeats 3]
        [--task mnist_backdoor] [--rounds 2]

For each method of ``kernels.method_table`` (and nearest-neighbour mixing around
residual reweighting), one compiled kernel runs on ``/GPU:0`` and on
``/CPU:0`` on the same ``[K, N]`` float32 input (honest clients around a common
model, the last ``f`` shifted far away). The aggregate and ``client_weights``
must agree to 1e-5 (absolute and relative); a cell is the median of
``--repeats`` timed calls after one warm-up call (tracing, XLA compilation).
Then ``--rounds`` rounds of ``--task`` (smoke preset, FedAvg and residual
reweighting, with the clean twin) run with ``--execution=in_process`` (the
clients' training and the aggregation in this process) under ``/GPU:0`` and
under ``/CPU:0``: every metric of metrics.csv must agree to ``ROUND_TOLERANCE``
(training on two devices sums in different orders, so it is looser than the
kernels'). Exits 0 with "no GPU found" where TensorFlow sees no GPU, 1 if
anything disagrees between the devices.

TFF 0.87's ``worker_binary`` is CPU-only, so a run with ``--execution=tff`` (the
default) never reaches a GPU (README, "Where the GPU is used").
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TOLERANCE = 1e-5
ROUND_TOLERANCE = 1e-3
"""Absolute, on accuracies, losses and attack success rates after the rounds."""


def kernel_names() -> list[str]:
  from tff_residual.kernels import method_table
  return [*method_table.names(), "nnm+residual"]


def params_for(name: str, num_clients: int) -> dict:
  """f = (K - 3) // 4 (the largest Bulyan allows) for every rule that takes f."""
  from tff_residual.kernels import method_table
  fields = method_table.fields_of(name)
  return {"num_byzantine": (num_clients - 3) // 4} if "num_byzantine" in fields else {}


def client_values(num_clients: int, size: int, seed: int):
  import numpy as np
  rng = np.random.default_rng(seed)
  x = rng.normal(size=size) + 0.1 * rng.normal(size=(num_clients, size))
  x[-max(1, (num_clients - 3) // 4):] += 5.0
  return x.astype(np.float32)


def run_on(device: str, kernel, x, repeats: int):
  """(aggregate, client_weights, median seconds) of ``kernel`` on ``device``."""
  import tensorflow as tf
  with tf.device(device):
    values = [tf.constant(x)]
    output = kernel(values, None)
    output.aggregate[0].numpy()  # warm-up: tracing, compilation
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      output = kernel(values, None)
      aggregate = output.aggregate[0].numpy()
      times.append(time.perf_counter() - start)
    return aggregate, output.client_weights.numpy(), statistics.median(times)


def run_rounds(device: str, task: str, rounds: int, output_dir: str):
  """(metrics.csv rows, seconds) of ``rounds`` rounds of ``task`` run in process under
  ``device``."""
  import csv

  import tensorflow as tf

  from tff_residual.cli import build_config
  from tff_residual.simulation import runner
  config, family = build_config(task, preset="smoke", rounds=rounds,
                                aggregator=["fedavg", "residual"])
  prepared = runner.prepare(config, family)
  start = time.perf_counter()
  with tf.device(device):
    runner.run(prepared, output_dir, progress=False, out=lambda line: None,
               execution="in_process")
  seconds = time.perf_counter() - start
  with open(os.path.join(output_dir, "metrics.csv")) as f:
    return list(csv.DictReader(f)), seconds


def max_difference(a, b) -> float:
  import numpy as np
  scale = np.maximum(np.abs(b), 1.0)
  return float(np.max(np.abs(np.asarray(a, np.float64) - b) / scale))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="gpu_check.py", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--clients", type=int, default=10)
  parser.add_argument("--size", type=int, default=1_000_000)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--kernels", default=None, help="comma-separated (default: every method)")
  parser.add_argument("--task", default="mnist_backdoor",
                      help="the task whose rounds run in process on both devices")
  parser.add_argument("--rounds", type=int, default=2,
                      help="rounds of --task on each device (0: the kernels only)")
  args = parser.parse_args(argv)
  if args.clients < 3 or args.size < 1 or args.repeats < 1 or args.rounds < 0:
    parser.error("--clients must be at least 3, --size and --repeats at least 1, "
                 "--rounds at least 0")
  import tensorflow as tf

  from tff_residual.kernels import method_table
  gpus = tf.config.list_logical_devices("GPU")
  if not gpus:
    print("gpu_check.py: no GPU found; nothing to compare (TensorFlow sees only "
          f"{[d.name for d in tf.config.list_logical_devices()]})")
    return 0
  names = args.kernels.split(",") if args.kernels else kernel_names()
  x = client_values(args.clients, args.size, args.seed)
  print(f"GPU: {gpus[0].name}; K = {args.clients}, N = {args.size}, median of {args.repeats} "
        "calls")
  print("| kernel | CPU | GPU | CPU / GPU | max relative difference (aggregate, weights) | agree |")
  print("|---|---|---|---|---|---|")
  failures = []
  for name in names:
    kernel = method_table.build_kernel(name, **params_for(name, args.clients))
    cpu_aggregate, cpu_weights, cpu_seconds = run_on("/CPU:0", kernel, x, args.repeats)
    # A fresh kernel: a tf.function keeps the device scope it was traced under.
    kernel = method_table.build_kernel(name, **params_for(name, args.clients))
    gpu_aggregate, gpu_weights, gpu_seconds = run_on(gpus[0].name, kernel, x, args.repeats)
    differences = (max_difference(gpu_aggregate, cpu_aggregate),
                   max_difference(gpu_weights, cpu_weights))
    agree = max(differences) <= TOLERANCE
    if not agree:
      failures.append(name)
    print(f"| {name} | {1e3 * cpu_seconds:.1f} ms | {1e3 * gpu_seconds:.1f} ms | "
          f"{cpu_seconds / gpu_seconds:.1f}x | {differences[0]:.1e}, {differences[1]:.1e} | "
          f"{'yes' if agree else 'NO'} |", flush=True)
  if args.rounds:
    import tempfile
    with tempfile.TemporaryDirectory() as scratch:
      cpu_rows, cpu_seconds = run_rounds("/CPU:0", args.task, args.rounds,
                                         os.path.join(scratch, "cpu"))
      gpu_rows, gpu_seconds = run_rounds(gpus[0].name, args.task, args.rounds,
                                         os.path.join(scratch, "gpu"))
    from tff_residual.simulation.outputs import largest_metric_difference
    difference, _ = largest_metric_difference(gpu_rows, cpu_rows)
    agree = difference <= ROUND_TOLERANCE
    if not agree:
      failures.append(f"{args.task} rounds")
    print(f"\n{args.rounds} rounds of {args.task} (smoke preset, fedavg and residual, "
          "--execution=in_process), whole runs:")
    print("| run | CPU | GPU | CPU / GPU | max absolute difference of the metrics | agree |")
    print("|---|---|---|---|---|---|")
    print(f"| {args.task} | {cpu_seconds:.1f} s | {gpu_seconds:.1f} s | "
          f"{cpu_seconds / gpu_seconds:.1f}x | {difference:.1e} | {'yes' if agree else 'NO'} |",
          flush=True)
  if failures:
    print(f"gpu_check.py: GPU and CPU disagree beyond {TOLERANCE} (kernels) or "
          f"{ROUND_TOLERANCE} (rounds) for {failures}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
