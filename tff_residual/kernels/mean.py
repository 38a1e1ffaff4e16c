"""Plain mean (FedAvg's aggregation), with the same interface as the robust kernels.

    aggregate = sum_k p_k y_k,  p_k = 1/K  (or n_k / sum_j n_j with sample weights)

Clients with NaN/Inf values are dropped, as everywhere in this package.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from tff_residual.kernels import clients


def weighted_average_valid(values: Sequence[tf.Tensor], weights: tf.Tensor) -> list[tf.Tensor]:
  """sum_k weights_k values[t][k] for each [K, n_t] tensor."""
  return [tf.linalg.matvec(v, tf.cast(weights, v.dtype), transpose_a=True) for v in values]


def check_params(sample_weighting: str = "ignore") -> None:
  clients.check_sample_weighting(sample_weighting)


def mean(values: Sequence[tf.Tensor], sample_weights: tf.Tensor | None = None,
         sample_weighting: str = "ignore") -> clients.KernelOutput:
  """Mean of ``values`` (list of [K, n_t]) over the finite clients."""
  check_params(sample_weighting)
  weights = sample_weights if sample_weighting == "multiply" else None

  def valid(v, w, _):
    num_clients = tf.shape(v[0])[0]
    uniform = tf.ones([num_clients], tf.float64) / tf.cast(num_clients, tf.float64)
    p = clients.apply_sample_weights(uniform, w)
    return clients.ValidOutput(weighted_average_valid(v, p), p, tf.zeros([num_clients], tf.float64))

  return clients.run_on_finite_clients(valid, values, weights)
