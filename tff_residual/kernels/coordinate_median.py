"""Coordinate-wise median (Yin et al., 2018; the authors' ``simple_median``).

    aggregate_n = med_k y_nk
(for even K the mean of the two middle values). Dropped clients (NaN/Inf) do
not take part.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import tensorflow as tf

from tff_residual.kernels import chunking
from tff_residual.kernels import clients
from tff_residual.kernels import l_estimator
from tff_residual.kernels.config import check_choice, hyper


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
    check_choice("implementation", self.implementation, l_estimator.IMPLEMENTATIONS)


@dataclasses.dataclass(frozen=True, kw_only=True)
class CoordinateMedianConfig(LEstimatorConfig):
  """Hyper-parameters of the coordinate-wise median."""


def l_estimate(values: Sequence[tf.Tensor], sample_weights: tf.Tensor | None,
               config: LEstimatorConfig, position_weights) -> clients.KernelOutput:
  """The L-estimator with ``position_weights(K, dtype)`` over the finite clients."""
  return clients.run_on_finite_clients(
      lambda v, w, _: l_estimator.l_estimate_valid(
          v, w, position_weights, config.chunk_size, config.memory_budget_bytes,
          config.implementation),
      values, config.used_weights(sample_weights))


def coordinate_median(values: Sequence[tf.Tensor], sample_weights: tf.Tensor | None = None,
                      config: CoordinateMedianConfig = CoordinateMedianConfig()
                      ) -> clients.KernelOutput:
  """Coordinate-wise median of ``values`` (list of [K, n_t])."""
  return l_estimate(values, sample_weights, config, median_position_weights)
