"""The whole-model Gram matrix of ``kernels/distances.py``: time and precision by chunk width.

For each chunk width, the plain chunks (float32 products summed in float64) and the
scaled ones (the overflow-safe path), both centred on client 0, on K x N float32 client
models close to each other and far from 0 (3 + 0.01 N(0, 1): the case that loses
precision); beside them one float32 product over all N coordinates, centred on the mean
(the Gram before the chunks). Seconds: median of --repeats calls after a warm-up.
Precision: the largest relative error of the off-diagonal squared distances against
float64 differences summed coordinate by coordinate.

    .venv/bin/python scripts/bench_distances.py                 # N = 1e6, K = 30
    .venv/bin/python scripts/bench_distances.py --clients 10 --widths 1024,2048,4096
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tff_residual.kernels import distances  # noqa: E402


def exact(x: np.ndarray) -> np.ndarray:
  x = x.astype(np.float64)
  return np.stack([((x - row) ** 2).sum(axis=1) for row in x])


def one_product(values):
  """One float32 product over N, centred on the mean (the Gram before the chunks)."""
  centred = values - tf.reduce_mean(values, axis=0)[None, :]
  gram = tf.cast(tf.matmul(centred, centred, transpose_b=True), tf.float64)
  return distances.squared_distances(distances.Gram(gram, tf.ones([tf.shape(gram)[0]],
                                                                  tf.float64)))


def timed(call, repeats: int) -> float:
  call()
  seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    call().numpy()
    seconds.append(time.perf_counter() - start)
  return statistics.median(seconds)


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--size", type=float, default=1e6)
  parser.add_argument("--clients", type=int, default=30)
  parser.add_argument("--widths", default="1024,2048,4096,8192,16384")
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  x = (3.0 + 0.01 * rng.normal(size=(args.clients, int(args.size)))).astype(np.float32)
  want = exact(x)
  off = ~np.eye(args.clients, dtype=bool)
  values = tf.constant(x)

  def error(squared):
    return float(np.max(np.abs(squared.numpy() - want)[off] / want[off]))

  print(f"N = {int(args.size)}, K = {args.clients}, float32; seconds: median of {args.repeats}")
  print("| path | chunk width | seconds | max relative error |")
  print("|---|---|---|---|")
  single = tf.function(one_product, autograph=False)
  print(f"| one float32 product, mean-centred | {int(args.size)} | "
        f"{timed(lambda: single(values), args.repeats):.4f} | {error(single(values)):.1e} |",
        flush=True)
  default = distances.CHUNK_WIDTH
  try:
    for width in [int(w) for w in args.widths.split(",")]:
      distances.CHUNK_WIDTH = width
      for scaled in (False, True):
        call = tf.function(lambda v, s=scaled: distances.squared_distances(
            distances._chunks_graph([v], tf.constant(0), None, s, False)), autograph=False)
        label = "scaled chunks" if scaled else "plain chunks"
        print(f"| {label} | {width} | {timed(lambda: call(values), args.repeats):.4f} | "
              f"{error(call(values)):.1e} |", flush=True)
  finally:
    distances.CHUNK_WIDTH = default


if __name__ == "__main__":
  main()
