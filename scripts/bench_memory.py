#!/usr/bin/env python
"""Peak memory of bringing K client vectors of N float32 to the server through TFF,
per way of doing it: the Python process's and TFF's worker's own peaks, side by side.

Each row runs in a fresh process with its own owned TFF worker: one warm-up call, then
3 calls, each with both processes' RSS high-water marks reset first (``/proc/PID/
clear_refs``); a cell is the median over the 3 calls of (VmHWM - VmRSS before the call),
in MB. Rows:

* ``federated_sum``: TFF's ``tff.federated_sum`` (the floor: no stack at the server);
* ``MeanFactory``: ``tff.aggregators.UnweightedMeanFactory().create(T[N]).next``;
* ``aggregate_concat``: a ``tff.federated_aggregate`` whose accumulator is one growing
  ``[k, N]`` stack, reduced to ``[N]`` by its report (the textbook gather);
* ``gather_sum``: this package's gather (``aggregators/gather.py``: eight slots,
  reordered by the report), then ``tf.reduce_sum`` over the stack at the server;
* ``factory:NAME``: ``tff_residual.build_factory(NAME).create(T[N]).next`` (the gather
  and the method's kernel at the server).

The target of the performance issue is a factory's total within ``MeanFactory``'s plus
twice the stacked input (K N 4 bytes); the last column prints the difference in stacks.

    .venv/bin/python scripts/bench_memory.py --clients 10,30 --size 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

ROWS = ("federated_sum", "MeanFactory", "aggregate_concat", "gather_sum", "factory:mean",
        "factory:median", "factory:residual")


def _computation(row: str, size: int):
  import numpy as np
  import tensorflow as tf
  import tensorflow_federated as tff

  import tff_residual
  from tff_residual.aggregators import gather as gather_lib

  value_type = tff.TensorType(np.float32, [size])
  clients = tff.FederatedType(value_type, tff.CLIENTS)
  stacked = gather_lib.stacked_type(value_type)
  if row == "federated_sum":
    return tff.federated_computation(lambda v: tff.federated_sum(v), clients)
  if row == "gather_sum":
    reduce = tff.tensorflow.computation(lambda s: tf.reduce_sum(s, axis=0), stacked)
    return tff.federated_computation(
        lambda v: tff.federated_map(reduce, gather_lib.gather(v, value_type)), clients)
  if row == "aggregate_concat":
    zero = tff.tensorflow.computation(lambda: tf.zeros([0, size], tf.float32))
    accumulate = tff.tensorflow.computation(lambda a, v: tf.concat([a, v[None]], 0),
                                            stacked, value_type)
    merge = tff.tensorflow.computation(lambda a, b: tf.concat([a, b], 0), stacked, stacked)
    report = tff.tensorflow.computation(lambda a: tf.reduce_sum(a, 0), stacked)
    return tff.federated_computation(
        lambda v: tff.federated_aggregate(v, zero(), accumulate, merge, report), clients)
  factory = (tff.aggregators.UnweightedMeanFactory() if row == "MeanFactory"
             else tff_residual.build_factory(row.split(":", 1)[1]))
  process = factory.create(value_type)
  state = process.initialize()
  return lambda values: process.next(state, values).result


def measure(row: str, clients: int, size: int, calls: int) -> dict:
  """{"python": MB, "worker": MB}: medians over ``calls`` of each process's peak."""
  import numpy as np
  from bench_kernels import _status_bytes, reset_peak

  from tff_residual.runtime.managed import managed_tff_runtime
  with managed_tff_runtime() as runtime:
    call = _computation(row, size)
    values = [np.random.default_rng(i).standard_normal(size).astype(np.float32)
              for i in range(clients)]
    call(values)  # tracing, the worker's first run
    pids = {"python": os.getpid(), "worker": runtime.pids[0]}
    peaks = {name: [] for name in pids}
    for _ in range(calls):
      before = {name: reset_peak([pid]) for name, pid in pids.items()}
      call(values)
      for name, pid in pids.items():
        peaks[name].append((_status_bytes("VmHWM:", pid) - before[name]) / 2**20)
  return {name: statistics.median(values) for name, values in peaks.items()}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--clients", default="10,30")
  parser.add_argument("--size", type=float, default=1e6)
  parser.add_argument("--rows", default=",".join(ROWS))
  parser.add_argument("--calls", type=int, default=3)
  parser.add_argument("--row", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  size = int(args.size)
  if args.row:
    print(json.dumps(measure(args.row, int(args.clients), size, args.calls)))
    return 0
  print(f"peak MB above the RSS before each call, median of {args.calls} calls after a warm-up; "
        f"N = {size:,} float32 per client; each row in a fresh process with its own TFF worker")
  print("| K | stack MB | row | Python MB | worker MB | total MB | total - MeanFactory's, "
        "in stacks |")
  print("|---|---|---|---|---|---|---|")
  for clients in [int(k) for k in args.clients.split(",")]:
    stack = clients * size * 4 / 2**20
    mean_total = None
    for row in args.rows.split(","):
      out = subprocess.run([sys.executable, os.path.abspath(__file__), "--row", row,
                            "--clients", str(clients), "--size", str(size),
                            "--calls", str(args.calls)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      if out.returncode != 0:
        raise RuntimeError(f"{row} K={clients} failed:\n{out.stderr[-2000:]}")
      peak = json.loads(out.stdout.strip().splitlines()[-1])
      total = peak["python"] + peak["worker"]
      if row == "MeanFactory":
        mean_total = total
      extra = "" if mean_total is None else f"{(total - mean_total) / stack:+.1f}"
      print(f"| {clients} | {stack:.0f} | {row} | {peak['python']:.0f} | {peak['worker']:.0f} | "
            f"{total:.0f} | {extra} |", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
