"""Plain mean (FedAvg's aggregation), with the same interface as the robust kernels.

    aggregate = sum_k p_k y_k,  p_k = 1/K  (or n_k / sum_j n_j with sample weights)

Clients with NaN/Inf values are dropped, as everywhere in this package.

Example (three clients, one tensor of two coordinates)::

    >>> import numpy as np
    >>> from tff_residual.kernels import mean
    >>> out = mean.mean([np.array([[1., 2.], [3., 4.], [5., 6.]], np.float32)])
    >>> out.aggregate[0].numpy().tolist(), [round(float(w), 3) for w in out.client_weights]
    ([3.0, 4.0], [0.333, 0.333, 0.333])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import tensorflow as tf

from tff_residual.kernels import clients
from tff_residual.kernels.method_config import MethodConfig


def weighted_average_valid(values: Sequence[tf.Tensor], weights: tf.Tensor) -> list[tf.Tensor]:
  """sum_k weights_k values[t][k] for each [K, n_t] tensor."""
  return [tf.linalg.matvec(v, tf.cast(weights, v.dtype), transpose_a=True) for v in values]


@dataclasses.dataclass(frozen=True, kw_only=True)
class MeanConfig(MethodConfig):
  """The mean has no hyper-parameter but ``sample_weighting``."""


def mean(values: Sequence[tf.Tensor], sample_weights: tf.Tensor | None = None,
         config: MeanConfig = MeanConfig()) -> clients.KernelOutput:
  """Mean of ``values`` (list of [K, n_t]) over the finite clients."""
  weights = config.used_weights(sample_weights)

  def valid(v, w, _):
    num_clients = tf.shape(v[0])[0]
    uniform = tf.ones([num_clients], tf.float64) / tf.cast(num_clients, tf.float64)
    p = clients.apply_sample_weights(uniform, w)
    return clients.ValidOutput(weighted_average_valid(v, p), p, tf.zeros([num_clients], tf.float64))

  return clients.run_on_finite_clients(valid, values, weights)
