"""Coordinate-wise trimmed mean (Yin et al., 2018; the authors' ``trimmed_mean``).

    b = floor(beta K);  aggregate_n = mean(y_n(b), ..., y_n(K-1-b))
the b smallest and b largest values of each coordinate are removed. Where b = 0
(K < 1/beta) nothing is trimmed and the result is the plain mean; the reference
code returns NaN there (reference_protocol §2, a documented deviation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import tensorflow as tf

from tff_residual.kernels import chunking
from tff_residual.kernels import clients
from tff_residual.kernels import l_estimator


def check_beta(beta: float) -> float:
  if (not isinstance(beta, (int, float)) or isinstance(beta, bool) or not math.isfinite(beta)
      or not 0.0 <= beta < 0.5):
    raise ValueError(f"beta must be a number in [0, 0.5), got {beta!r}.")
  return float(beta)


def check_params(beta: float = 0.2, sample_weighting: str = "ignore",
                 chunk_size: int | None = None,
                 memory_budget_bytes: int = chunking.DEFAULT_MEMORY_BUDGET_BYTES,
                 implementation: str = "auto") -> None:
  check_beta(beta)
  clients.check_sample_weighting(sample_weighting)
  chunking.check_chunking(chunk_size, memory_budget_bytes)
  l_estimator.check_implementation(implementation)


def trimmed_position_weights(beta: float):
  def weights(num_clients: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    trim = tf.cast(tf.floor(beta * tf.cast(num_clients, tf.float64)), tf.int32)
    positions = tf.range(num_clients)
    kept = tf.logical_and(positions >= trim, positions < num_clients - trim)
    return tf.cast(kept, dtype) / tf.cast(num_clients - 2 * trim, dtype)
  return weights


def trimmed_mean(values: Sequence[tf.Tensor], sample_weights: tf.Tensor | None = None,
                 beta: float = 0.2, sample_weighting: str = "ignore",
                 chunk_size: int | None = None,
                 memory_budget_bytes: int = chunking.DEFAULT_MEMORY_BUDGET_BYTES,
                 implementation: str = "auto") -> clients.KernelOutput:
  """Coordinate-wise beta-trimmed mean of ``values`` (list of [K, n_t])."""
  check_params(beta, sample_weighting, chunk_size, memory_budget_bytes, implementation)
  beta = float(beta)
  weights = sample_weights if sample_weighting == "multiply" else None
  return clients.run_on_finite_clients(
      lambda v, w, _: l_estimator.l_estimate_valid(
          v, w, trimmed_position_weights(beta), chunk_size, memory_budget_bytes,
          implementation),
      values, weights)
