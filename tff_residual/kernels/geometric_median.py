"""Geometric median by the smoothed Weiszfeld algorithm (Pillutla, Kakade,
Harchaoui, "Robust Aggregation for Federated Learning", IEEE TSP 2022: RFA).

The aggregate v minimises sum_k alpha_k max(nu, ||v - x_k||) over the whole
model, alpha_k = 1/K (or the sample-weight shares under
``sample_weighting="multiply"``). From v_0 = sum_k alpha_k x_k (the mean):

    beta_k  = alpha_k / max(nu, ||v_t - x_k||)
    v_{t+1} = sum_k beta_k x_k / sum_k beta_k

until ``max_iter`` iterations or until the objective g(v) = sum_k alpha_k
||v - x_k|| improves by less than ``tolerance`` g(v) (RFA's stopping rule).
Every v_t is a convex combination sum_k b_k x_k, so the iteration runs on the
coefficients b alone: ||v - x_k||^2 = b'Gb - 2 (Gb)_k + G_kk with G the K x K
Gram matrix of the centred models (``distances``). The models are read twice:
once for G, once for the final sum.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import tensorflow as tf

from tff_residual.kernels import clients
from tff_residual.kernels import distances
from tff_residual.kernels.config import MethodConfig, check_int, check_positive, hyper

SCALAR_EXTRAS = (("num_iterations", tf.int32),)


@dataclasses.dataclass(frozen=True, kw_only=True)
class GeometricMedianConfig(MethodConfig):
  """Hyper-parameters of the smoothed Weiszfeld geometric median."""

  max_iter: int = hyper(100, "geometric_median: most Weiszfeld iterations", flag=True)
  nu: float = hyper(1e-6, "geometric_median: smoothing, the smallest distance used", flag=True)
  tolerance: float = hyper(1e-6, "geometric_median: stop when the objective improves by less "
                                 "than this fraction", flag=True)
  def __post_init__(self):
    super().__post_init__()
    check_int("max_iter", self.max_iter, 1)
    check_positive("nu", self.nu)
    check_positive("tolerance", self.tolerance, allow_zero=True)


def distances_to_combination(gram: tf.Tensor, coefficients: tf.Tensor) -> tf.Tensor:
  """float64 [K]: ||sum_j b_j x_j - x_k|| for b = ``coefficients`` (summing to 1)."""
  gb = tf.linalg.matvec(gram, coefficients)
  squared = tf.tensordot(coefficients, gb, 1) - 2.0 * gb + tf.linalg.diag_part(gram)
  return tf.sqrt(tf.maximum(squared, 0.0))


def weiszfeld_coefficients(gram: tf.Tensor, alpha: tf.Tensor, config: GeometricMedianConfig):
  """(b [K], iterations run): the smoothed Weiszfeld iteration on the coefficients."""
  def objective(b):
    return tf.reduce_sum(alpha * distances_to_combination(gram, b))

  def body(step, b, previous, done):
    beta = alpha / tf.maximum(distances_to_combination(gram, b), config.nu)
    new_b = beta / tf.reduce_sum(beta)
    value = objective(new_b)
    converged = tf.abs(previous - value) <= config.tolerance * value
    return step + 1, new_b, value, converged

  steps, b, _, _ = tf.while_loop(
      lambda step, b, previous, done: tf.logical_and(step < config.max_iter,
                                                     tf.logical_not(done)),
      body, (tf.constant(0), alpha, objective(alpha), tf.constant(False)))
  return b, steps


def geometric_median(values: Sequence[tf.Tensor], sample_weights: tf.Tensor | None,
                     config: GeometricMedianConfig) -> clients.KernelOutput:
  """Smoothed Weiszfeld geometric median of ``values`` (list of [K, n_t]).

  ``client_weights`` are the final Weiszfeld coefficients b (the aggregate is
  sum_k b_k x_k); ``extra``: ``num_iterations``.
  """
  weights = config.used_weights(sample_weights)

  def valid(v, w, _):
    num_clients = tf.shape(v[0])[0]
    alpha = clients.apply_sample_weights(
        tf.ones([num_clients], tf.float64) / tf.cast(num_clients, tf.float64), w)
    b, iterations = weiszfeld_coefficients(distances.centred_gram(v), alpha, config)
    return clients.ValidOutput(distances.weighted_sum(v, b), b,
                               tf.zeros([num_clients], tf.float64),
                               scalars={"num_iterations": iterations})

  return clients.run_on_finite_clients(valid, values, weights, scalar_extras=SCALAR_EXTRAS)
