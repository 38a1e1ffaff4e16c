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

``--values worker``: each client's value is made inside TFF's worker, at the clients
(``tf.random.stateless_normal`` seeded by the client's index, the Python process sends
K int32 seeds), as in a ``tff.learning`` process, whose client updates never pass through
Python. The default, ``--values python``, sends K NumPy values from the Python process,
which costs the Python process about 6 stacks to serialise them (the "Python MB" column).

``--size resnet18``: each client's value is the CIFAR ResNet-18's 62 trainable tensors
(11.17 M float32, ``bench_kernels.model_shapes``) as a structure of 62 vectors, the value
type a ``tff.learning`` process hands its model aggregator; rows ``federated_sum``,
``MeanFactory`` and ``factory:NAME`` only. "seconds" is the median call's wall time.
"absolute GB" is the two processes' own peaks summed, from their start, warm-up included
(the largest VmHWM each reached): an upper bound of what has to fit in the machine's memory
at once (the two need not peak together). TFF's worker keeps the memory of its largest call
so far between calls (BENCHMARKS.md, "ResNet-18 x 30 through a TFF factory fits"), so the
warm-up call counts too.

The target of the performance issue is a factory's total within ``MeanFactory``'s plus
twice the stacked input (K N 4 bytes); the last column prints the difference in stacks.

    .venv/bin/python scripts/bench_memory.py --clients 10,30 --size 1000000
    .venv/bin/python scripts/bench_memory.py --clients 10,30 --size resnet18 \
        --rows federated_sum,MeanFactory,factory:residual
    .venv/bin/python scripts/bench_memory.py --clients 10,30 --size resnet18 --values worker \
        --rows MeanFactory,factory:residual
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


SINGLE_VECTOR_ROWS = ("aggregate_concat", "gather_sum")
"""Rows written for one [N] vector per client (not for ``--size resnet18``)."""
VALUES_AT = ("python", "worker")
"""Where the client values are made (``--values``)."""


def shapes_of(size: str) -> list[int]:
  """Coordinates per tensor: [N], or the ResNet-18's 62 tensors."""
  from bench_kernels import model_shapes
  return model_shapes(size)


def _value_type(size: int | str):
  """T[N] float32, or (resnet18) the structure of its 62 float32 vectors."""
  import numpy as np
  import tensorflow_federated as tff
  if size == "resnet18":
    return tff.StructType([tff.TensorType(np.float32, [n]) for n in shapes_of(size)])
  return tff.TensorType(np.float32, [size])


def make_client_value(seed, size: int | str):
  """Client ``seed``'s value, made in TensorFlow (in TFF's worker with ``--values worker``):
  ``tf.random.stateless_normal`` seeded (seed, tensor index), a [N] vector or (resnet18)
  a list of its 62 vectors."""
  import tensorflow as tf
  shapes = shapes_of(size) if size == "resnet18" else [size]
  seed = tf.cast(seed, tf.int32)
  leaves = [tf.random.stateless_normal([n], seed=tf.stack([seed, tf.constant(i, tf.int32)]))
            for i, n in enumerate(shapes)]
  return leaves if size == "resnet18" else leaves[0]


def _computation(row: str, size: int | str, values_at: str = "python"):
  """A federated computation of the K client values (``values_at="python"``) or of K
  int32 seeds (``"worker"``: each value made at its client by ``make_client_value``)
  that runs ``row``."""
  import numpy as np
  import tensorflow_federated as tff
  if values_at not in VALUES_AT:
    raise ValueError(f"values_at must be one of {VALUES_AT}, got {values_at!r}")
  aggregate = _aggregation(row, size)
  if values_at == "python":
    return tff.federated_computation(aggregate, tff.FederatedType(_value_type(size), tff.CLIENTS))
  make = tff.tensorflow.computation(lambda seed: make_client_value(seed, size), np.int32)
  return tff.federated_computation(lambda seeds: aggregate(tff.federated_map(make, seeds)),
                                   tff.FederatedType(np.int32, tff.CLIENTS))


def _aggregation(row: str, size: int | str):
  """``row`` as a function of the clients' federated value, for ``_computation`` to call
  inside a federated computation (a factory's process from its initial state)."""
  import tensorflow as tf
  import tensorflow_federated as tff

  import tff_residual
  from tff_residual.aggregators import gather as gather_lib

  if size == "resnet18" and row in SINGLE_VECTOR_ROWS:
    raise ValueError(f"row {row} takes one vector per client, not --size resnet18")
  value_type = _value_type(size)
  stacked = gather_lib.stacked_type(value_type)
  if row == "federated_sum":
    return tff.federated_sum
  if row == "gather_sum":
    reduce = tff.tensorflow.computation(lambda s: tf.reduce_sum(s, axis=0), stacked)
    return lambda v: tff.federated_map(reduce, gather_lib.gather(v, value_type))
  if row == "aggregate_concat":
    zero = tff.tensorflow.computation(lambda: tf.zeros([0, size], tf.float32))
    accumulate = tff.tensorflow.computation(lambda a, v: tf.concat([a, v[None]], 0),
                                            stacked, value_type)
    merge = tff.tensorflow.computation(lambda a, b: tf.concat([a, b], 0), stacked, stacked)
    report = tff.tensorflow.computation(lambda a: tf.reduce_sum(a, 0), stacked)
    return lambda v: tff.federated_aggregate(v, zero(), accumulate, merge, report)
  factory = (tff.aggregators.UnweightedMeanFactory() if row == "MeanFactory"
             else tff_residual.build_factory(row.split(":", 1)[1]))
  process = factory.create(value_type)
  return lambda v: process.next(process.initialize(), v).result


def client_values(clients: int, size: int | str) -> list:
  """K seeded standard-normal float32 values: a [N] vector each, or (resnet18) a list of
  its 62 vectors."""
  import numpy as np
  shapes = shapes_of(size) if size == "resnet18" else None
  values = []
  for i in range(clients):
    rng = np.random.default_rng(i)
    values.append([rng.standard_normal(n, dtype=np.float32) for n in shapes] if shapes
                  else rng.standard_normal(size, dtype=np.float32))
  return values


def measure(row: str, clients: int, size: int | str, calls: int,
            values_at: str = "python") -> dict:
  """{"python": MB, "worker": MB, "seconds": s, "absolute": MB}: medians over ``calls``
  of each process's peak and of the call's wall time; the largest VmHWM each process
  reached, summed."""
  import time

  import numpy as np
  from bench_kernels import _status_bytes, reset_peak

  from tff_residual.runtime.managed import managed_tff_runtime
  with managed_tff_runtime() as runtime:
    call = _computation(row, size, values_at)
    values = (client_values(clients, size) if values_at == "python"
              else [np.int32(k) for k in range(clients)])
    call(values)  # tracing, the worker's first run
    pids = {"python": os.getpid(), "worker": runtime.pids[0]}
    peaks = {name: [] for name in pids}
    absolute = {name: _status_bytes("VmHWM:", pid) for name, pid in pids.items()}
    seconds = []
    for _ in range(calls):
      before = {name: reset_peak([pid]) for name, pid in pids.items()}
      start = time.perf_counter()
      call(values)
      seconds.append(time.perf_counter() - start)
      for name, pid in pids.items():
        peak = _status_bytes("VmHWM:", pid)
        absolute[name] = max(absolute[name], peak)
        peaks[name].append((peak - before[name]) / 2**20)
  return {**{name: statistics.median(v) for name, v in peaks.items()},
          "seconds": statistics.median(seconds), "absolute": sum(absolute.values()) / 2**20}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--clients", default="10,30")
  parser.add_argument("--size", default="1000000", help="N, or resnet18")
  parser.add_argument("--rows", default=",".join(ROWS))
  parser.add_argument("--calls", type=int, default=3)
  parser.add_argument("--values", choices=VALUES_AT, default="python",
                      help="where the client values are made: sent from Python, or made at "
                           "the clients in TFF's worker")
  parser.add_argument("--row", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  size = args.size if args.size == "resnet18" else int(float(args.size))
  if size == "resnet18":
    unusable = [r for r in args.rows.split(",") if r in SINGLE_VECTOR_ROWS]
    if unusable and not args.row:
      parser.error(f"--size resnet18 takes no row of {unusable} (one vector per client)")
  if args.row:
    print(json.dumps(measure(args.row, int(args.clients), size, args.calls, args.values)))
    return 0
  coordinates = sum(shapes_of(size))
  described = (f"ResNet-18's 62 tensors ({coordinates:,} float32)" if size == "resnet18"
               else f"N = {coordinates:,} float32")
  made = ("sent from the Python process" if args.values == "python"
          else "made at the clients in TFF's worker")
  print(f"peak MB above the RSS before each call and seconds per call, medians of {args.calls} "
        f"calls after a warm-up; {described} per client, {made}; each row in a fresh process "
        f"with its own TFF worker")
  print("| K | stack MB | row | Python MB | worker MB | total MB | total - MeanFactory's, "
        "in stacks | seconds | absolute GB |")
  print("|---|---|---|---|---|---|---|---|---|")
  for clients in [int(k) for k in args.clients.split(",")]:
    stack = clients * coordinates * 4 / 2**20
    mean_total = None
    for row in args.rows.split(","):
      out = subprocess.run([sys.executable, os.path.abspath(__file__), "--row", row,
                            "--clients", str(clients), "--size", str(size),
                            "--calls", str(args.calls), "--values", args.values],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      if out.returncode != 0:   # e.g. the worker killed for memory: a row, not a crash
        reason = (out.stderr.strip().splitlines() or [f"exit code {out.returncode}"])[-1]
        print(f"| {clients} | {stack:.0f} | {row} | failed: {reason[-160:]} | | | | | |",
              flush=True)
        continue
      peak = json.loads(out.stdout.strip().splitlines()[-1])
      total = peak["python"] + peak["worker"]
      if row == "MeanFactory":
        mean_total = total
      extra = "" if mean_total is None else f"{(total - mean_total) / stack:+.1f}"
      print(f"| {clients} | {stack:.0f} | {row} | {peak['python']:.0f} | {peak['worker']:.0f} | "
            f"{total:.0f} | {extra} | {peak['seconds']:.3f} | {peak['absolute'] / 1024:.1f} |",
            flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
