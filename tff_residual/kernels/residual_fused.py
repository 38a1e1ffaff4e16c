"""The residual reweighting's per-coordinate statistics without sorting (fast path).

Same mathematics as ``residual_reweighting.coordinate_statistics`` for the
default configuration (``variant="reference"``, repeated-median line, Huber
confidences), computed in client order instead of sorted order:

* ranks by counting, x_a = #{b : y_b < y_a, or y_b = y_a and b < a} (the
  stable argsort's ranks, O(K^2) comparisons);
* the eq. 1 slopes (y_b - y_a) / (x_b - x_a) are the sorted-order slopes
  (y_(j) - y_(i)) / (j - i) with i = x_a, j = x_b, the same floating-point
  operations, so every median sees the same numbers;
* every median (inner and outer repeated median, med(y), the scale M of eq. 3)
  is a min/max selection network (``sorting_networks``) over K (or K - 1)
  tensors, fused by XLA (``tf.function(jit_compile=True)``): no [n, K, K]
  tensor and no sort kernel.

Cost per coordinate: O(K^2) for the ranks and slopes, O(K log^2 K) comparisons
per inner median, so O(K^2 log^2 K) in all, in registers rather than memory.

The networks need K at trace time, but K is only known when the kernel runs
(clients drop out, TFF's stacks have a dynamic client axis). So the clients are
padded up to a bucket size B (exact for K <= 12, then 16, 20, 24, 32, 48, 64,
and B + 1 for odd K): padded wires hold -inf and +inf in equal numbers, which shifts every
median's position by the same static amount and leaves its value unchanged;
padded clients are masked out of the ranks, means and sums. K > 65 clients
take the sort-based implementation.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tff_residual.kernels import sorting_networks

EXACT_BUCKETS = tuple(range(3, 13))
PADDED_BUCKETS = tuple(sorted(b + odd for b in (16, 20, 24, 32, 48, 64) for odd in (0, 1)))
BUCKETS = EXACT_BUCKETS + PADDED_BUCKETS
MAX_CLIENTS = BUCKETS[-1]
DYNAMIC_MAX_CLIENTS = EXACT_BUCKETS[-1]
"""Largest K built into a graph whose K is unknown (only the small exact buckets:
tracing every bucket would cost tens of seconds per graph)."""
MAX_CHUNK_WIDTH = 4096
"""Coordinates per fused call: small enough for the working set to stay in cache."""
BYTES_PER_COORDINATE = 32 * 4 * MAX_CLIENTS
"""Generous bound on one coordinate's temporaries in a fused call (float32)."""


def supports(variant: str, estimator: str, weighting: str) -> bool:
  """Whether a configuration has the fast path."""
  return variant == "reference" and estimator == "repeated_median" and weighting == "huber"


def bucket_for(num_clients: int) -> int:
  """The smallest bucket B >= K with B = K (mod 2), so that K + #pads is even-padded."""
  for size in BUCKETS:
    if size >= num_clients and (size - num_clients) % 2 == 0:
      return size
  raise ValueError(f"{num_clients} clients exceed the fused path's {MAX_CLIENTS}.")


def chunk_width(chunk_size: int | None, memory_budget_bytes: int) -> int:
  """Static number of coordinates per fused call."""
  if chunk_size is not None:
    return int(chunk_size)
  return int(max(1, min(MAX_CHUNK_WIDTH, memory_budget_bytes // BYTES_PER_COORDINATE)))


def _client_masks(size: int, num_clients: tf.Tensor, dtype: tf.DType):
  """real [B] bool, and the fill value of every padded wire: -inf, +inf, -inf, ..."""
  rows = tf.range(size)
  real = rows < num_clients
  fill = tf.where(tf.equal((rows - num_clients) % 2, 0), tf.constant(-math.inf, dtype),
                  tf.constant(math.inf, dtype))
  return real, fill


def _padded_rows(matrix: tf.Tensor, real: tf.Tensor, fill: tf.Tensor) -> list:
  """Rows of ``matrix`` [B, c] as a list, padded rows replaced by their fill."""
  return tf.unstack(tf.where(real[:, None], matrix, fill[:, None]))


@functools.lru_cache(maxsize=None)
def _phases(size: int, gamma: float, lambda_: float, delta: float, epsilon: float):
  """The jit-compiled steps for bucket ``size`` (separate XLA programs, so that
  XLA never duplicates a selection network into several consumers)."""
  indices = np.arange(size)
  # NumPy, not tf.constant: this cache outlives the graph it is first built in.
  earlier = (indices[:, None] < indices[None, :])[:, :, None]  # [b, a, 1]: b < a
  diagonal = (indices[:, None] == indices[None, :])[:, :, None]
  inner_positions = ((size - 2) // 2, (size - 1) // 2)  # K-1 slopes + diagonal, pads even
  scale_positions = (1 + (size - 2) // 2, 1 + (size - 1) // 2)  # |r| without its smallest

  def middle(wires, positions):
    low, high = positions
    if low == high:
      return sorting_networks.select(wires, [low])[0]
    lower, upper = sorting_networks.select(wires, [low, high])
    return 0.5 * (lower + upper)

  @tf.function(jit_compile=True, autograph=False)
  def ranks(values, num_clients):
    """x [B, c]: each real client's rank among the real clients (stable)."""
    real, _ = _client_masks(size, num_clients, values.dtype)
    other, this = values[:, None, :], values[None, :, :]  # [b, a, c]
    smaller = tf.logical_or(other < this, tf.logical_and(tf.equal(other, this), earlier))
    smaller = tf.logical_and(smaller, real[:, None, None])
    return tf.reduce_sum(tf.cast(smaller, values.dtype), axis=0)

  @tf.function(jit_compile=True, autograph=False)
  def inner_medians(values, ranks_, num_clients):
    """[B, c]: med_{b != a} (y_b - y_a) / (x_b - x_a) for every real row a (eq. 1)."""
    real, fill = _client_masks(size, num_clients, values.dtype)
    inf = tf.constant(math.inf, values.dtype)
    wires = []
    for b in range(size):  # one [B, c] wire per other client b (rows a)
      slope = (values[b:b + 1] - values) / (ranks_[b:b + 1] - ranks_)
      slope = tf.where(diagonal[b], inf, slope)
      wires.append(tf.where(real[b], slope, fill[b]))
    return middle(wires, inner_positions)

  @tf.function(jit_compile=True, autograph=False)
  def line(values, inner, num_clients):
    """(slope, med) [c]: b1 = med_a inner_a (eq. 1) and med(y)."""
    real, fill = _client_masks(size, num_clients, values.dtype)
    positions = sorting_networks.median_positions(size)
    slope = middle(_padded_rows(inner, real, fill), positions)
    value_median = middle(_padded_rows(values, real, fill), positions)
    return slope, value_median

  def line_values(ranks_, slope, value_median, k):
    return value_median[None, :] + slope[None, :] * (ranks_ - (k - 1.0) / 2.0)

  @tf.function(jit_compile=True, autograph=False)
  def scale(values, ranks_, slope, value_median, num_clients):
    """tau [c] = gamma (1 + 5/(K-1)) M + epsilon, M = median of |r| without its smallest (eq. 3)."""
    real, fill = _client_masks(size, num_clients, values.dtype)
    k = tf.cast(num_clients, values.dtype)
    residuals = tf.abs(values - line_values(ranks_, slope, value_median, k))
    spread = middle(_padded_rows(residuals, real, fill), scale_positions)
    return gamma * (1.0 + 5.0 / (k - 1.0)) * spread + epsilon

  @tf.function(jit_compile=True, autograph=False)
  def weigh(values, ranks_, slope, value_median, tau, num_clients, num_columns):
    """Confidences (eqs. 4-6), correction (eq. 9) and the eq. 10 terms, summed per client."""
    dtype = values.dtype
    real, _ = _client_masks(size, num_clients, dtype)
    real = real[:, None]
    k = tf.cast(num_clients, dtype)
    fitted = line_values(ranks_, slope, value_median, k)
    abs_r = tf.abs(values - fitted)
    leverage = 1.0 / k + tf.square(ranks_ - (k - 1.0) / 2.0) / (k * (k * k - 1.0) / 12.0)
    bound = lambda_ * tf.sqrt(2.0 / k) * tf.sqrt(tf.maximum(1.0 - leverage, 0.0)) * tau[None, :]
    outside = abs_r > bound
    w = tf.where(outside, bound / tf.where(outside, abs_r, tf.ones_like(abs_r)),
                 tf.ones_like(abs_r))
    w = tf.where(real, w, tf.zeros_like(w))
    mean_w = tf.reduce_sum(w, axis=0, keepdims=True) / k
    deviation = tf.where(real, w - mean_w, tf.zeros_like(w))
    spread = tf.sqrt(tf.reduce_sum(tf.square(deviation), axis=0, keepdims=True) / (k - 1.0))
    replace = tf.logical_and(w < delta, real)
    corrected = tf.where(replace, fitted, values)
    columns = (tf.range(tf.shape(values)[1]) < num_columns)[None, :]
    contribution = tf.where(columns, tf.cast(w * spread, tf.float64), tf.zeros([], tf.float64))
    replaced = tf.cast(tf.logical_and(replace, columns), tf.float64)
    return corrected, tf.reduce_sum(contribution, axis=1), tf.reduce_sum(replaced, axis=1)

  def run(values, num_clients, num_columns):
    x = ranks(values, num_clients)
    inner = inner_medians(values, x, num_clients)
    slope, value_median = line(values, inner, num_clients)
    tau = scale(values, x, slope, value_median, num_clients)
    return weigh(values, x, slope, value_median, tau, num_clients, num_columns)

  return run


def _buckets_up_to(max_clients: int | None) -> tuple[int, ...]:
  """The buckets that K <= max_clients can use (all of them when K is unknown)."""
  if max_clients is None or max_clients >= MAX_CLIENTS:
    return BUCKETS
  largest = max(bucket_for(max(k, 3)) for k in (max_clients - 1, max_clients))
  return tuple(size for size in BUCKETS if size <= largest)


def chunk_statistics(chunk: tf.Tensor, num_columns: tf.Tensor, gamma: float, lambda_: float,
                     delta: float, epsilon: float, max_clients: int | None = None):
  """Algorithm 1, lines 2-11, on ``chunk`` [K, c] in client order, 3 <= K <= MAX_CLIENTS.

  Columns from ``num_columns`` on are padding: they are computed but not summed.
  ``max_clients``, a static bound on K if known, limits the buckets built.
  Returns (corrected [K, c], sum_n w_nk std(w_n) [K] float64, #replaced [K] float64).
  """
  num_clients = tf.shape(chunk)[0]
  width = chunk.shape[1]

  def branch(size):
    def run():
      padded = tf.pad(chunk, [[0, size - num_clients], [0, 0]])
      padded = tf.ensure_shape(padded, [size, width])
      corrected, contribution, replaced = _phases(size, gamma, lambda_, delta, epsilon)(
          padded, num_clients, num_columns)
      return corrected[:num_clients], contribution[:num_clients], replaced[:num_clients]
    return run

  buckets = _buckets_up_to(max_clients)
  index = np.full(MAX_CLIENTS + 1, 0, np.int32)
  for k in range(3, buckets[-1] + 1):
    index[k] = buckets.index(bucket_for(k))
  bucket = tf.gather(tf.constant(index), tf.minimum(num_clients, MAX_CLIENTS))
  if len(buckets) == 1:
    return branch(buckets[0])()
  return tf.switch_case(bucket, [branch(size) for size in buckets])


def model_statistics(values: Sequence[tf.Tensor], width: int, gamma: float, lambda_: float,
                     delta: float, epsilon: float, max_clients: int | None = None):
  """``chunk_statistics`` over every [K, n_t] tensor in chunks of ``width`` coordinates.

  Returns (corrected, total, replaced, num_coordinates): per tensor a
  TensorArray of the corrected values, one [K, width] element per chunk (the
  last one zero-padded), and the eq. 10 sums and replacement counts per client
  over all coordinates.
  """
  num_clients = tf.shape(values[0])[0]
  total = tf.zeros([num_clients], tf.float64)
  replaced = tf.zeros([num_clients], tf.float64)
  corrected = []
  num_coordinates = tf.constant(0.0, tf.float64)
  for matrix in values:
    n = tf.shape(matrix)[1]
    num_chunks = tf.maximum((n + width - 1) // width, 1)
    outputs = tf.TensorArray(matrix.dtype, size=num_chunks, element_shape=[None, width])

    def body(index, outputs, total, replaced, matrix=matrix, n=n):
      start = index * width
      size = tf.minimum(width, n - start)
      chunk = tf.pad(matrix[:, start:start + size], [[0, 0], [0, width - size]])
      chunk = tf.ensure_shape(chunk, [None, width])
      fixed, contribution, count = chunk_statistics(chunk, size, gamma, lambda_, delta, epsilon,
                                                   max_clients)
      return index + 1, outputs.write(index, fixed), total + contribution, replaced + count

    _, outputs, total, replaced = tf.while_loop(
        lambda index, *_: index < num_chunks, body, (tf.constant(0), outputs, total, replaced),
        parallel_iterations=1)
    corrected.append(outputs)
    num_coordinates += tf.cast(n, tf.float64)
  return corrected, total, replaced, num_coordinates


def weighted_sum(corrected: tf.TensorArray, weights: tf.Tensor, n: tf.Tensor) -> tf.Tensor:
  """sum_k p_k y'_k, chunk by chunk (no second copy of the corrected values); [n]."""
  sums = tf.TensorArray(corrected.dtype, size=corrected.size(), infer_shape=False)

  def body(index, sums):
    chunk = corrected.read(index)
    return index + 1, sums.write(index, tf.linalg.matvec(chunk, tf.cast(weights, chunk.dtype),
                                                         transpose_a=True))

  _, sums = tf.while_loop(lambda index, _: index < corrected.size(), body,
                          (tf.constant(0), sums), parallel_iterations=1)
  return sums.concat()[:n]
