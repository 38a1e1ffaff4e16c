"""Centered clipping (Karimireddy, He, Jaggi, "Learning from History for Byzantine
Robust Optimization", ICML 2021).

From a centre v_0 (the previous round's aggregate; in the first round the
coordinate-wise median of the clients), ``num_iters`` times:

    c_k     = min(1, tau / ||x_k - v_l||)        (1 where x_k = v_l)
    v_{l+1} = v_l + sum_k p_k c_k (x_k - v_l)

with p_k = 1/K (or the sample-weight shares under
``sample_weighting="multiply"``), norms over the whole model. Each v_l is
v_0 + sum_k a_k (x_k - v_0), so the iteration runs on the coefficients a:

    a_{l+1} = a_l + p * c - (sum_k p_k c_k) a_l,
    ||x_k - v_l||^2 = H_kk - 2 (H a)_k + a'Ha,   H = Gram of x_k - v_0,

and the models are read twice: once for the norms, once for the result
(1 - sum a) v_0 + sum_k a_k x_k. The first iteration (a_0 = 0) needs only
H_kk = ||x_k - v_0||^2, so ``num_iters = 1`` (the default, and ByzFL's L = 1)
computes K norms, O(K N); more iterations build H once, O(K^2 N), and then
iterate on K x K numbers. Norms and H come from ``distances``: summed in
float64, scaled where a client's values would overflow (its norm is then +inf
or huge, and its clip factor 0 or tiny).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import tensorflow as tf

from tff_residual.kernels import chunking
from tff_residual.kernels import clients
from tff_residual.kernels import coordinate_median
from tff_residual.kernels import distances
from tff_residual.kernels import l_estimator
from tff_residual.kernels.config import MethodConfig, check_int, check_positive, hyper

PER_CLIENT_EXTRAS = ("clip_factors",)
SCALAR_EXTRAS = (("center_weight", tf.float32),)


@dataclasses.dataclass(frozen=True, kw_only=True)
class CenteredClippingConfig(MethodConfig):
  """Hyper-parameters of centered clipping."""

  tau: float = hyper(10.0, "centered_clipping: clipping radius tau, in model-update norm "
                           "units", flag=True)
  num_iters: int = hyper(1, "centered_clipping: clipping iterations L per round", flag=True)
  def __post_init__(self):
    super().__post_init__()
    check_positive("tau", self.tau)
    check_int("num_iters", self.num_iters, 1)


def clipping_coefficients(norms: tf.Tensor, gram: distances.Gram | None, p: tf.Tensor,
                          config: CenteredClippingConfig):
  """(a [K], c [K] of the last iteration) from the norms ||x_k - v_0|| and, where
  ``config.num_iters`` > 1, the Gram matrix of x_k - v_0 (a norm beyond float64's
  range is +inf: c = 0)."""

  def step(a, norms):
    c = tf.where(norms > config.tau, config.tau / tf.where(norms > 0, norms, 1.0),
                 tf.ones_like(norms))
    pc = p * c
    return a + pc - tf.reduce_sum(pc) * a, c

  a, c = step(tf.zeros_like(p), norms)  # a_0 = 0
  if config.num_iters == 1:
    return a, c

  def body(index, a, _):
    return (index + 1, *step(a, distances.combination_distances(gram, a)))

  _, a, c = tf.while_loop(lambda index, a, c: index < config.num_iters, body,
                          (tf.constant(1), a, c))
  return a, c


def first_center(values: Sequence[tf.Tensor]) -> list[tf.Tensor]:
  """The first round's centre: the coordinate-wise median of the clients."""
  return l_estimator.l_estimate_valid(values, None, coordinate_median.median_position_weights,
                                      None, chunking.DEFAULT_MEMORY_BUDGET_BYTES).aggregate


def centered_clipping(values: Sequence[tf.Tensor], sample_weights: tf.Tensor | None,
                      config: CenteredClippingConfig, center: Sequence[tf.Tensor] | None = None,
                      has_center: tf.Tensor | bool | None = None) -> clients.KernelOutput:
  """Centered clipping of ``values`` (list of [K, n_t]) around ``center``.

  ``center``: one [n_t] tensor per input, the previous aggregate; None, or
  ``has_center`` False, starts from the coordinate median (the factory keeps
  the centre in its state). The new centre is the returned aggregate.
  ``client_weights`` = a / sum(a) (the clients' shares of the part of the
  result that is not the old centre); ``extra``: ``clip_factors`` (c of the
  last iteration) and ``center_weight`` (1 - sum a, the old centre's weight).
  """
  weights = config.used_weights(sample_weights)

  def valid(v, w, _):
    num_clients = tf.shape(v[0])[0]
    if center is None:
      start = first_center(v)
    else:
      given = [tf.cast(c, m.dtype) for c, m in zip(center, v)]
      start = given if has_center is None else tf.cond(
          tf.convert_to_tensor(has_center), lambda: given, lambda: first_center(v))
    p = clients.apply_sample_weights(
        tf.ones([num_clients], tf.float64) / tf.cast(num_clients, tf.float64), w)
    if config.num_iters == 1:
      gram, norms = None, distances.center_norms(v, start)
    else:
      gram = distances.client_gram(v, center=start)
      norms = distances.combination_distances(gram, tf.zeros_like(p))
    a, c = clipping_coefficients(norms, gram, p, config)
    kept = 1.0 - tf.reduce_sum(a)
    aggregate = [s * tf.cast(kept, s.dtype) + part
                 for s, part in zip(start, distances.weighted_sum(v, a))]
    return clients.ValidOutput(aggregate, clients.normalize_weights(a),
                               tf.zeros([num_clients], tf.float64),
                               per_client={"clip_factors": c}, scalars={"center_weight": kept})

  return clients.run_on_finite_clients(valid, values, weights, PER_CLIENT_EXTRAS,
                                       SCALAR_EXTRAS)
