"""Whole-model distances between clients from one K x K Gram matrix.

The model-level rules (Krum, Multi-Krum, Bulyan, nearest-neighbour mixing, the
geometric median, centered clipping) need only inner products between client
models. For K clients with models x_k (the concatenation of every ``[K, n_t]``
tensor, N values in all):

    c_k = x_k - mean_j x_j                 (centred: no cancellation when the
                                            models are close to each other)
    G   = sum_t C_t C_t^T                  float64 [K, K], one matmul per tensor
    ||x_i - x_j||^2 = G_ii + G_jj - 2 G_ij

so the cost is one pass over the values (O(K^2 N) multiply-adds) and the memory
one centred copy of one tensor at a time, never a K x K x N tensor.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf


def centred_gram(values: Sequence[tf.Tensor], center: Sequence[tf.Tensor] | None = None
                 ) -> tf.Tensor:
  """float64 [K, K] Gram matrix of the client models minus ``center`` (one [n_t]
  tensor per input; default: the clients' mean), summed over the tensors."""
  grams = []
  for index, matrix in enumerate(values):
    offset = tf.reduce_mean(matrix, axis=0) if center is None else tf.cast(center[index],
                                                                             matrix.dtype)
    centred = matrix - offset[None, :]
    grams.append(tf.cast(tf.matmul(centred, centred, transpose_b=True), tf.float64))
  return tf.add_n(grams)


def squared_norms(values: Sequence[tf.Tensor], center: Sequence[tf.Tensor]) -> tf.Tensor:
  """float64 [K] ||x_k - center||^2 over the whole model: the Gram matrix's
  diagonal at O(K N) instead of O(K^2 N)."""
  return tf.add_n([
      tf.cast(tf.reduce_sum(tf.square(matrix - tf.cast(offset, matrix.dtype)[None, :]), axis=1),
              tf.float64) for matrix, offset in zip(values, center)])


def squared_distances(gram: tf.Tensor) -> tf.Tensor:
  """float64 [K, K] ||x_i - x_j||^2 from a Gram matrix; >= 0, exact 0 diagonal."""
  diagonal = tf.linalg.diag_part(gram)
  distances = tf.maximum(diagonal[:, None] + diagonal[None, :] - 2.0 * gram, 0.0)
  return tf.linalg.set_diag(distances, tf.zeros_like(diagonal))


def weighted_sum(values: Sequence[tf.Tensor], coefficients: tf.Tensor) -> list[tf.Tensor]:
  """sum_k coefficients_k values[t][k] for each [K, n_t] tensor."""
  return [tf.linalg.matvec(v, tf.cast(coefficients, v.dtype), transpose_a=True) for v in values]


def require_clients(num_clients: tf.Tensor, minimum: tf.Tensor | int, rule: str) -> list:
  """Control dependencies that stop the kernel when fewer than ``minimum`` clients
  remain; ``rule`` says which (e.g. "krum needs K >= 2f + 3 = 7 (f = 2)").

  A ValueError at trace time when both numbers are known then; otherwise an
  ``InvalidArgumentError`` at run time whose message names both numbers (the
  eager API turns it into a ValueError).
  """
  static_count, static_minimum = tf.get_static_value(num_clients), tf.get_static_value(minimum)
  if static_count is not None and static_minimum is not None:
    if static_count < static_minimum:
      raise ValueError(f"{rule}; got K = {int(static_count)} clients.")
    return []
  return [tf.debugging.Assert(
      tf.cast(num_clients, tf.int32) >= tf.cast(minimum, tf.int32),
      [f"{rule}; got K =", num_clients, "clients (after dropping non-finite ones)"])]
