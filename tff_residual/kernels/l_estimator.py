"""Coordinate-wise L-estimators: a fixed weight per sorted position.

The coordinate median and the trimmed mean are both ``sum_i a_i y_(i)`` over the
sorted values of a coordinate, with position weights ``a`` summing to 1. This
module runs any such estimator chunk by chunk and reports, per client, its weight
in the aggregate averaged over all coordinates, and the share of its coordinates
that got weight 0 (discarded).

With sample weights ("multiply"), a_i becomes a_i n_(i) / sum_j a_j n_(j), where
n_(i) is the sample weight of the client holding y_(i) (unchanged where that sum
is 0).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import tensorflow as tf

from tff_residual.kernels import chunking
from tff_residual.kernels import clients
from tff_residual.kernels.method_config import check_choice, hyper
from tff_residual.kernels.order_statistics import counted_ranks, sort_with_ranks

COUNTING_MAX_CLIENTS = 128
"""Up to this many clients the ranks are counted (K^2 comparisons, fused by XLA,
``order_statistics.counted_ranks``); more clients are sorted (K log K). Counting
was faster up to K = 100 in bench_kernels.py (BENCHMARKS.md, "Design measurements")."""
COUNTING_CHUNK_WIDTH = 8192
"""Coordinates per XLA call of the counting path (fixed, so it compiles once per K)."""


@tf.function(jit_compile=True, autograph=False)
def _counted_chunk(chunk: tf.Tensor, a: tf.Tensor, sample_weights: tf.Tensor,
                   num_columns: tf.Tensor):
  """The L-estimate of ``chunk`` [K, c] in client order, without sorting.

  rank_k = #{b : y_b < y_k, or y_b = y_k and b < k} (the stable sort's ranks), so
  sum_i a_i y_(i) = sum_k a_{rank_k} y_k. ``sample_weights`` [K] (ones when
  unused) rescale a as in the module docstring. Columns from ``num_columns`` on
  are padding and count in no client sum. XLA compiles this once per K.
  """
  dtype = chunk.dtype
  ranks = counted_ranks(chunk)  # [K, c]
  weights = tf.gather(tf.cast(a, dtype), ranks)
  scaled = weights * tf.cast(sample_weights, dtype)[:, None]
  total = tf.reduce_sum(scaled, axis=0, keepdims=True)
  weights = tf.where(total > 0, scaled / tf.where(total > 0, total, tf.ones_like(total)), weights)
  estimate = tf.reduce_sum(weights * chunk, axis=0)
  columns = (tf.range(tf.shape(chunk)[1]) < num_columns)[None, :]
  per_client = tf.where(columns, tf.cast(weights, tf.float64), tf.zeros([], tf.float64))
  discarded = tf.cast(tf.logical_and(tf.equal(weights, 0.0), columns), tf.float64)
  return estimate, tf.reduce_sum(per_client, axis=1), tf.reduce_sum(discarded, axis=1)


IMPLEMENTATIONS = ("auto", "sort")


def check_implementation(implementation: str) -> None:
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f"Unknown implementation={implementation!r}; expected one of "
                     f"{IMPLEMENTATIONS}.")


def _counted(values: Sequence[tf.Tensor], a: tf.Tensor, sample_weights: tf.Tensor | None,
             width: int):
  """``_counted_chunk`` over every tensor in fixed-width, zero-padded chunks."""
  num_clients = tf.shape(values[0])[0]
  weights = (tf.ones([num_clients], tf.float64) if sample_weights is None
             else tf.cast(sample_weights, tf.float64))
  sums = [tf.zeros([num_clients], tf.float64)] * 2  # weight totals, discarded counts
  estimates = []
  for matrix in values:
    def chunk_fn(chunk, num_columns):
      estimate, per_client, zeros = _counted_chunk(chunk, a, weights, num_columns)
      return estimate, [per_client, zeros]

    outputs, sums = chunking.map_fixed_width_chunks(matrix, chunk_fn, width, [width], sums)
    estimates.append(outputs.concat()[:tf.shape(matrix)[1]])
  totals, discarded = sums
  return estimates, totals, discarded


def l_estimate_valid(values: Sequence[tf.Tensor], sample_weights: tf.Tensor | None,
                     position_weights: Callable[[tf.Tensor, tf.DType], tf.Tensor],
                     chunk_size: int | None = None,
                     memory_budget_bytes: int = chunking.DEFAULT_MEMORY_BUDGET_BYTES,
                     implementation: str = "auto") -> clients.ValidOutput:
  """Aggregates finite clients' ``values`` (list of [K, n_t]).

  ``position_weights(K, dtype)`` returns the [K] weights a of sorted positions.
  ``implementation``: "auto" counts ranks under XLA for K <= COUNTING_MAX_CLIENTS
  (chunks of ``chunk_size`` or COUNTING_CHUNK_WIDTH coordinates, a few KB each)
  and sorts for more clients (chunks from ``memory_budget_bytes``); "sort" always
  sorts (the straightforward implementation, the tests' oracle).
  """
  check_implementation(implementation)
  num_clients = tf.shape(values[0])[0]
  a = position_weights(num_clients, tf.float64)
  count = tf.add_n([tf.cast(tf.shape(matrix)[1], tf.float64) for matrix in values])
  width = COUNTING_CHUNK_WIDTH if chunk_size is None else int(chunk_size)
  counted = lambda: _counted(values, a, sample_weights, width)
  sorted_ = lambda: _sorted(values, a, sample_weights, chunk_size, memory_budget_bytes)
  if implementation == "sort":
    estimates, totals, discarded = sorted_()
  else:
    estimates, totals, discarded = tf.cond(num_clients <= COUNTING_MAX_CLIENTS, counted, sorted_)
  safe = tf.maximum(count, 1.0)
  estimates = [tf.ensure_shape(e, m.shape[1:]) for e, m in zip(estimates, values)]
  return clients.ValidOutput(list(estimates), totals / safe, discarded / safe)


def _sorted(values, a, sample_weights, chunk_size, memory_budget_bytes):
  """Sort every coordinate's K values (any K), chunk by chunk."""
  def chunk_fn(chunk):
    dtype = chunk.dtype
    sorted_values, order, ranks = sort_with_ranks(chunk)
    weights = tf.broadcast_to(tf.cast(a, dtype)[None, :], tf.shape(sorted_values))
    if sample_weights is not None:
      scaled = weights * tf.gather(tf.cast(sample_weights, dtype), order)
      total = tf.reduce_sum(scaled, axis=1, keepdims=True)
      weights = tf.where(total > 0, scaled / tf.where(total > 0, total, 1.0), weights)
    estimate = tf.reduce_sum(weights * sorted_values, axis=1)
    per_client = tf.cast(tf.gather(weights, ranks, batch_dims=1), tf.float64)
    return [estimate], [tf.reduce_sum(per_client, axis=0),
                        tf.reduce_sum(tf.cast(tf.equal(per_client, 0.0), tf.float64), axis=0)]

  # Temporaries: the sorted chunk, its order and ranks, weights: ~6 [K] copies.
  per_tensor, (totals, discarded), _ = chunking.map_model_chunks(
      values, chunk_fn, lambda k, itemsize: 6 * itemsize * tf.cast(k, tf.int64), 1, 2,
      memory_budget_bytes, chunk_size)
  return [estimate for (estimate,) in per_tensor], totals, discarded


def median_position_weights(num_clients: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
  """a = 1 at the middle position (odd K), 1/2 at the two middle ones (even K)."""
  positions = tf.range(num_clients)
  lower = (num_clients - 1) // 2
  upper = num_clients // 2
  return 0.5 * (tf.cast(tf.equal(positions, lower), dtype) + tf.cast(tf.equal(positions, upper), dtype))


@dataclasses.dataclass(frozen=True, kw_only=True)
class LEstimatorConfig(chunking.ChunkedConfig):
  """A coordinate-wise L-estimator (a weighted sum of each coordinate's sorted
  values; ``sample_weighting="multiply"``: the positions' weights are multiplied
  by their clients' weights, which matters for even K)."""

  implementation: str = hyper("auto", "auto (counted ranks under XLA for small K) or sort")

  def __post_init__(self):
    super().__post_init__()
    check_choice("implementation", self.implementation, IMPLEMENTATIONS)


def l_estimate(values: Sequence[tf.Tensor], sample_weights: tf.Tensor | None,
               config: LEstimatorConfig, position_weights) -> clients.KernelOutput:
  """The L-estimator with ``position_weights(K, dtype)`` over the finite clients."""
  return clients.run_on_finite_clients(
      lambda v, w, _: l_estimate_valid(
          v, w, position_weights, config.chunk_size, config.memory_budget_bytes,
          config.implementation),
      values, config.used_weights(sample_weights))
