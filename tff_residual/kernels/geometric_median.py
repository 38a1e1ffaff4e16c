"""Geometric median by the smoothed Weiszfeld algorithm (Pillutla, Kakade,
Harchaoui, "Robust Aggregation for Federated Learning", IEEE TSP 2022: RFA).

The aggregate v minimises sum_k alpha_k max(nu, ||v - x_k||) over the whole
model, alpha_k = 1/K (or the sample-weight shares under
``sample_weighting="multiply"``). From v_0 (below):

    beta_k  = alpha_k / max(nu, ||v_t - x_k||)
    v_{t+1} = sum_k beta_k x_k / sum_k beta_k

until ``max_iter`` iterations or until the objective g(v) = sum_k alpha_k
||v - x_k|| improves by less than ``tolerance`` g(v) (RFA's stopping rule; g
here leaves out the clients farther than ``FAR_CLIENT_RATIO`` times the median
distance from v_0, whose terms stay constant to rounding and would stop the
iteration at once).
Every v_t is a convex combination sum_k b_k x_k, so the iteration runs on the
coefficients b alone: ||v - x_k|| comes from the K x K Gram matrix of the
models (``distances.combination_distances``, which cannot overflow). The models
are read twice: once for the Gram matrix, once for the final sum.

v_0 is the weighted mean sum_k alpha_k x_k (RFA's start), or, where g is smaller
there, the weighted mean of the medoid (``distances.medoid``) and its
floor(K / 2) nearest clients: a client far away (1e20, say)
pulls the mean with it, and Weiszfeld would then need about
log_K(distance / spread) steps to walk back (more than ``max_iter`` for a
float64 client at 1e200).

Example (three clients at the corners of a unit triangle, one at (100, 100))::

    >>> import numpy as np
    >>> from tff_residual.kernels import geometric_median as gm
    >>> x = [np.array([[0., 0.], [1., 0.], [0., 1.], [100., 100.]], np.float32)]
    >>> out = gm.geometric_median(x, None, gm.GeometricMedianConfig())
    >>> [round(float(a), 3) for a in out.aggregate[0]], [round(float(w), 3) for w in out.client_weights]
    ([0.5, 0.5], [0.333, 0.333, 0.333, 0.002])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import tensorflow as tf

from tff_residual.kernels import clients
from tff_residual.kernels import distances
from tff_residual.kernels.method_config import MethodConfig, check_int, check_positive, hyper

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


FAR_CLIENT_RATIO = 4.0
"""A client farther than this many times the median distance from v_0 is left out of
the stopping rule's g (its term stays constant to rounding while it is that far)."""


def weiszfeld_coefficients(gram: distances.Gram, alpha: tf.Tensor,
                           config: GeometricMedianConfig):
  """(b [K], iterations run): the smoothed Weiszfeld iteration on the coefficients
  (a ``distances.reused_graph``)."""
  return _traced_weiszfeld(tuple(gram), alpha, config)


def _weiszfeld_graph(gram, alpha: tf.Tensor, config: GeometricMedianConfig):
  gram = distances.Gram(*gram)
  num_clients = tf.shape(alpha)[0]

  def weighted_total(lengths, used):
    """sum_k alpha_k lengths_k over ``used``; a client of weight 0 adds 0 even at +inf."""
    used = tf.logical_and(used, alpha > 0)
    return tf.reduce_sum(tf.where(used, alpha * lengths, tf.zeros_like(lengths)), axis=-1)

  everyone = tf.ones([num_clients], tf.bool)

  def objective(b, used=everyone):
    return weighted_total(distances.combination_distances(gram, b), used)

  # The start: the mean, or the mean of the medoid and its nearest half where g is
  # smaller there (g from norms, which cannot overflow; a data point itself would
  # hold the smoothed iteration in place).
  squared = distances.squared_distances(gram)
  centre = distances.medoid(squared)
  near = tf.argsort(squared[centre], stable=True)[:num_clients // 2 + 1]
  local = tf.scatter_nd(near[:, None], tf.gather(alpha, near), [num_clients])
  local = tf.where(tf.reduce_sum(local) > 0, local / tf.reduce_sum(local), alpha)
  # (A g of +inf at both: the local start, whose distances to the near half are finite.)
  start = tf.cond(objective(alpha) < objective(local), lambda: alpha, lambda: local)
  # The clients the stopping rule counts: all but those far from v_0.
  from_start = distances.combination_distances(gram, start)
  typical = tf.sort(from_start)[(num_clients - 1) // 2]
  counted = from_start <= FAR_CLIENT_RATIO * typical

  def body(step, b, previous, done):
    # beta_k = alpha_k / d_k, times the nearest distance: the same b, and no underflow
    # when every distance is huge.
    lengths = tf.maximum(distances.combination_distances(gram, b), config.nu)
    nearest = tf.reduce_min(lengths)
    beta = alpha * tf.where(tf.math.is_finite(nearest), nearest / lengths,
                            tf.zeros_like(lengths))
    total = tf.reduce_sum(beta)
    new_b = tf.where(total > 0, beta / tf.where(total > 0, total, 1.0), b)
    value = objective(new_b, counted)
    converged = tf.abs(previous - value) <= config.tolerance * value
    return step + 1, new_b, value, converged

  steps, b, _, _ = tf.while_loop(
      lambda step, b, previous, done: tf.logical_and(step < config.max_iter,
                                                     tf.logical_not(done)),
      body, (tf.constant(0), start, objective(start, counted), tf.constant(False)))
  return b, steps


_traced_weiszfeld = distances.reused_graph(_weiszfeld_graph)


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
    b, iterations = weiszfeld_coefficients(distances.pairwise_gram(v), alpha, config)
    return clients.ValidOutput(distances.weighted_sum(v, b), b,
                               tf.zeros([num_clients], tf.float64),
                               scalars={"num_iterations": iterations})

  return clients.run_on_finite_clients(valid, values, weights, scalar_extras=SCALAR_EXTRAS)
