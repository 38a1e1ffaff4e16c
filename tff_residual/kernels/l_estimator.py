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

from collections.abc import Callable, Sequence

import tensorflow as tf

from tff_residual.kernels import chunking
from tff_residual.kernels import clients
from tff_residual.kernels.order_statistics import sort_with_ranks


def l_estimate_valid(values: Sequence[tf.Tensor], sample_weights: tf.Tensor | None,
                     position_weights: Callable[[tf.Tensor, tf.DType], tf.Tensor],
                     chunk_size: int | None = None,
                     memory_budget_bytes: int = chunking.DEFAULT_MEMORY_BUDGET_BYTES,
                     ) -> clients.ValidOutput:
  """Aggregates finite clients' ``values`` (list of [K, n_t]).

  ``position_weights(K, dtype)`` returns the [K] weights a of sorted positions.
  """
  num_clients = tf.shape(values[0])[0]
  a = position_weights(num_clients, tf.float64)

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
  per_tensor, (totals, discarded), count = chunking.map_model_chunks(
      values, chunk_fn, lambda k, itemsize: 6 * itemsize * tf.cast(k, tf.int64), 1, 2,
      memory_budget_bytes, chunk_size)
  safe = tf.maximum(count, 1.0)
  return clients.ValidOutput([estimate for (estimate,) in per_tensor], totals / safe,
                             discarded / safe)
