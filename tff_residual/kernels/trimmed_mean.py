"""Coordinate-wise trimmed mean (Yin et al., 2018; the authors' ``trimmed_mean``).

    b = floor(beta K);  aggregate_n = mean(y_n(b), ..., y_n(K-1-b))
the b smallest and b largest values of each coordinate are removed. Where b = 0
(K < 1/beta) nothing is trimmed and the result is the plain mean; the reference
code returns NaN there (docs/reference_differences.md §2, a documented deviation).
With ``num_trimmed`` = t set, b = t whatever K (ByzFL's ``TrMean(f)``, told f
clients per side), and K >= 2t + 1 clients are needed.

Example (beta = 0.2 of K = 5 trims one value at each end: the mean of 2, 3, 4)::

    >>> import numpy as np
    >>> from tff_residual.kernels import trimmed_mean
    >>> x = np.array([[1.], [2.], [3.], [4.], [100.]], np.float32)
    >>> out = trimmed_mean.trimmed_mean([x], None, trimmed_mean.TrimmedMeanConfig(beta=0.2))
    >>> out.aggregate[0].numpy().tolist(), [round(float(w), 3) for w in out.client_weights]
    ([3.0], [0.0, 0.333, 0.333, 0.333, 0.0])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import tensorflow as tf

from tff_residual.kernels import clients
from tff_residual.kernels import distances
from tff_residual.kernels.method_config import check_int, check_positive, hyper
from tff_residual.kernels.l_estimator import LEstimatorConfig, l_estimate


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrimmedMeanConfig(LEstimatorConfig):
  """Hyper-parameters of the coordinate-wise trimmed mean."""

  beta: float = hyper(0.2, "trimmed mean: fraction trimmed per side", flag=True)
  num_trimmed: int | None = hyper(None, "trimmed mean: clients trimmed per side whatever K "
                                        "(unset: floor(beta K))", flag=True)

  def __post_init__(self):
    super().__post_init__()
    check_positive("beta", self.beta, allow_zero=True)
    if not self.beta < 0.5:
      raise ValueError(f"beta must be a number in [0, 0.5), got {self.beta!r}.")
    check_int("num_trimmed", self.num_trimmed, 0, allow_none=True)
    default_beta = type(self).__dataclass_fields__["beta"].default
    if self.num_trimmed is not None and self.beta != default_beta:
      raise ValueError(f"num_trimmed={self.num_trimmed} replaces beta (got beta={self.beta}); "
                       "set one of them.")

  def minimum_clients(self) -> int:
    return 1 if self.num_trimmed is None else 2 * self.num_trimmed + 1


def trimmed_position_weights(beta: float, num_trimmed: int | None = None):
  """``position_weights(K, dtype)``: 1 / (K - 2b) at positions b .. K-1-b, else 0;
  b = ``num_trimmed``, or floor(beta K) where it is None."""
  def weights(num_clients: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    if num_trimmed is None:
      trim, checks = tf.cast(tf.floor(beta * tf.cast(num_clients, tf.float64)), tf.int32), []
    else:
      trim = tf.constant(num_trimmed, tf.int32)
      checks = distances.require_clients(
          num_clients, 2 * num_trimmed + 1,
          f"trimmed_mean needs K >= 2t + 1 = {2 * num_trimmed + 1} clients for num_trimmed "
          f"t = {num_trimmed}")
    with tf.control_dependencies(checks):
      positions = tf.range(num_clients)
    kept = tf.logical_and(positions >= trim, positions < num_clients - trim)
    return tf.cast(kept, dtype) / tf.cast(num_clients - 2 * trim, dtype)
  return weights


def trimmed_mean(values: Sequence[tf.Tensor], sample_weights: tf.Tensor | None = None,
                 config: TrimmedMeanConfig = TrimmedMeanConfig()) -> clients.KernelOutput:
  """Coordinate-wise beta-trimmed mean of ``values`` (list of [K, n_t])."""
  position_weights = trimmed_position_weights(float(config.beta), config.num_trimmed)
  return l_estimate(values, sample_weights, config, position_weights)
