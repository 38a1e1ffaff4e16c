"""Coordinate-wise median (Yin et al., 2018; the authors' ``simple_median``).

    aggregate_n = med_k y_nk
(for even K the mean of the two middle values). Dropped clients (NaN/Inf) do
not take part.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from tff_residual.kernels import chunking
from tff_residual.kernels import clients
from tff_residual.kernels import l_estimator


def median_position_weights(num_clients: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
  """a = 1 at the middle position (odd K), 1/2 at the two middle ones (even K)."""
  positions = tf.range(num_clients)
  lower = (num_clients - 1) // 2
  upper = num_clients // 2
  return 0.5 * (tf.cast(tf.equal(positions, lower), dtype) + tf.cast(tf.equal(positions, upper), dtype))


def check_params(sample_weighting: str = "ignore", chunk_size: int | None = None,
                 memory_budget_bytes: int = chunking.DEFAULT_MEMORY_BUDGET_BYTES,
                 implementation: str = "auto") -> None:
  clients.check_sample_weighting(sample_weighting)
  chunking.check_chunking(chunk_size, memory_budget_bytes)
  l_estimator.check_implementation(implementation)


def coordinate_median(values: Sequence[tf.Tensor], sample_weights: tf.Tensor | None = None,
                      sample_weighting: str = "ignore", chunk_size: int | None = None,
                      memory_budget_bytes: int = chunking.DEFAULT_MEMORY_BUDGET_BYTES,
                      implementation: str = "auto") -> clients.KernelOutput:
  """Coordinate-wise median of ``values`` (list of [K, n_t])."""
  check_params(sample_weighting, chunk_size, memory_budget_bytes, implementation)
  weights = sample_weights if sample_weighting == "multiply" else None
  return clients.run_on_finite_clients(
      lambda v, w, _: l_estimator.l_estimate_valid(
          v, w, median_position_weights, chunk_size, memory_budget_bytes,
          implementation),
      values, weights)
