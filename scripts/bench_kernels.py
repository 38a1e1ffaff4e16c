"""Benchmark of the aggregation kernels against plain averaging, measured in one run.

For each (N coordinates, K clients) cell: median wall seconds over --repeats
runs of every kernel (after one warm-up call that traces the graph) and of
plain ``tf.reduce_mean`` over the same stacked float32 input, plus the peak
resident memory above the memory held before the call (sampled every 2 ms).

    .venv/bin/python scripts/bench_kernels.py            # full table
    .venv/bin/python scripts/bench_kernels.py --quick    # about a minute
    .venv/bin/python scripts/bench_kernels.py --sizes 1e6,resnet18 --clients 10 \
        --kernels residual,residual_sort,median

N may be "resnet18": the 62 trainable tensors of the CIFAR ResNet-18 of
``tff_residual.tasks.image_models`` (11.17 M coordinates), one [K, n_t] input
each. "residual_sort" is the residual kernel with ``implementation="sort"``
(the straightforward sort-based implementation, for comparison).

A kernel whose first (warm-up) run exceeds --budget seconds is not repeated;
its cell shows that single time with a "*".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tff_residual.kernels import registry  # noqa: E402

KERNELS = ("residual", "median", "trimmed_mean", "repeated_median", "foolsgold")
VARIANTS = {"residual_sort": ("residual", {"implementation": "sort"})}


def model_shapes(size: str) -> list[int]:
  """Coordinates per tensor: one tensor of N, or the ResNet-18's 62 tensors."""
  if size != "resnet18":
    return [int(float(size))]
  from tff_residual.tasks.image_models import build_image_model
  model = build_image_model("resnet18", [32, 32, 3], [32, 32, 3], 10, [0.0] * 3, [1.0] * 3)
  return [int(np.prod(w.shape)) for w in model.trainable_weights]


def rss_bytes() -> int:
  with open("/proc/self/statm") as statm:
    return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(name: str, size: str, k: int, repeats: int, budget: float, seed: int) -> dict:
  """Runs in a fresh process: seconds (median) and peak RSS above the input."""
  values = [tf.random.stateless_normal([k, n], seed=[seed, i], dtype=tf.float32)
            for i, n in enumerate(model_shapes(size))]
  if name == "tf.reduce_mean":
    mean_fn = tf.function(lambda xs: [tf.reduce_mean(x, axis=0) for x in xs])
    call = lambda: [a.numpy() for a in mean_fn(values)]
  else:
    method, params = VARIANTS.get(name, (name, {}))
    kernel = registry.build_kernel(method, **params)
    call = lambda: [a.numpy() for a in kernel(values, None).aggregate]
  before = rss_bytes()
  start = time.perf_counter()
  call()
  first = time.perf_counter() - start
  times = [first]
  if first <= budget:
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      call()
      times.append(time.perf_counter() - start)
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  return {"seconds": statistics.median(times), "peak_bytes": max(peak - before, 0),
          "single": first > budget}


def run_isolated(name: str, n: str, k: int, args) -> dict:
  command = [sys.executable, os.path.abspath(__file__), "--worker", name, "--sizes", str(n),
             "--clients", str(k), "--repeats", str(args.repeats), "--budget", str(args.budget),
             "--seed", str(args.seed)]
  proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  if proc.returncode != 0:
    raise RuntimeError(f"{name} N={n} K={k} failed:\n{proc.stderr[-2000:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--quick", action="store_true", help="N in {3e3, 1e5}, K in {10, 30}")
  parser.add_argument("--sizes", default="3000,100000,1000000")
  parser.add_argument("--clients", default="10,30,100")
  parser.add_argument("--kernels", default=",".join(KERNELS))
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--budget", type=float, default=120.0,
                      help="seconds; a slower warm-up run is reported once, not repeated")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--worker", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    print(json.dumps(measure(args.worker, args.sizes, int(args.clients), args.repeats,
                             args.budget, args.seed)))
    return
  sizes = args.sizes.split(",")
  clients = [int(k) for k in args.clients.split(",")]
  if args.quick:
    sizes, clients = ["3000", "100000"], [10, 30]
  kernels = args.kernels.split(",")
  for name in kernels:
    if name not in registry.METHODS and name not in VARIANTS:
      parser.error(f"unknown kernel {name!r}; expected some of "
                   f"{sorted([*registry.METHODS, *VARIANTS])}")

  print(f"machine: {platform.machine()}, {os.cpu_count()} cores, TF {tf.__version__}, "
        f"float32, median of {args.repeats} runs after 1 warm-up run; each cell in a fresh "
        f"process; peak MB = process RSS high-water mark minus RSS with the input [K, N] held")
  header = f"| {'N':>9} | {'K':>4} | {'kernel':<15} | {'seconds':>9} | {'x mean':>8} | {'peak MB':>8} |"
  print(header)
  print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
  for n in sizes:
    for k in clients:
      mean_seconds = None
      for name in ("tf.reduce_mean", *kernels):
        result = run_isolated(name, n, k, args)
        seconds, peak, single = result["seconds"], result["peak_bytes"], result["single"]
        mean_seconds = mean_seconds or seconds
        mark = "*" if single else " "
        print(f"| {size_label(n):>9} | {k:>4} | {name:<15} | {seconds:>8.4f}{mark}| "
              f"{seconds / mean_seconds:>8.0f} | {peak / 2**20:>8.0f} |", flush=True)
  print("* single run: the warm-up exceeded --budget, not repeated")


def size_label(size: str) -> str:
  return size if size == "resnet18" else str(int(float(size)))


if __name__ == "__main__":
  main()
