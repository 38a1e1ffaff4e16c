"""Centered clipping (Karimireddy, He, Jaggi, "Learning from History for Byzantine
Robust Optimization", ICML 2021).

From a centre v_0 (the previous round's aggregate; in the first round the
coordinate-wise median of the clients), ``num_iters`` times:

    c_k     = min(1, tau / ||x_k - v_l||)        (1 where x_k = v_l)
    v_{l+1} = v_l + sum_k p_k c_k (x_k - v_l)

with p_k = 1/K (or the sample-weight shares under
``sample_weighting="multiply"``), norms over the whole model.

The radius: Karimireddy et al. tune tau per task; a fixed tau is either larger
than every update (it clips nothing: the mean) or smaller than every honest one.
By default (``tau=None``) it follows the round's updates:

    tau = tau_scale * median_k ||x_k - v_0||

(the median over the finite clients, fixed for the round's iterations): with
``tau_scale`` 1 the clients nearer the centre than the median are not clipped and
a client sent s times farther than that gets at most 1/s of its share. A number
``tau`` fixes the radius. ``server_momentum`` beta (Karimireddy et al. clip
momenta around the previous momentum): the result is

    u_t = beta u_{t-1} + (1 - beta) v_L

with u_{t-1} the previous result (the centre v_0), and the next round clips
around u_t; the first round, with no previous result, returns v_L.

Each v_l is
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

Example (first round: the centre is the median, 1.5; tau = 1, one iteration:
c = (2/3, 1, 1, 1/98.5) and v_1 = 1.5 + sum_k c_k (x_k - 1.5) / 4)::

    >>> import numpy as np
    >>> from tff_residual.kernels import centered_clipping as cc
    >>> x = [np.array([[0.], [1.], [2.], [100.]], np.float32)]
    >>> out = cc.centered_clipping(x, None, cc.CenteredClippingConfig(tau=1.0, num_iters=1))
    >>> [round(float(c), 3) for c in out.extra["clip_factors"]]
    [0.667, 1.0, 1.0, 0.01]
    >>> out.aggregate[0].numpy().tolist()
    [1.5]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import tensorflow as tf

from tff_residual.kernels import chunking
from tff_residual.kernels import clients
from tff_residual.kernels import distances
from tff_residual.kernels import l_estimator
from tff_residual.kernels.method_config import (MethodConfig, check_int, check_positive, hyper,
                                         is_number)

PER_CLIENT_EXTRAS = ("clip_factors",)
SCALAR_EXTRAS = (("center_weight", tf.float32), ("tau", tf.float32))
STATE_NAMES = ("center", "has_center")


@dataclasses.dataclass(frozen=True, kw_only=True)
class CenteredClippingConfig(MethodConfig):
  """Hyper-parameters of centered clipping."""

  tau: float | None = hyper(None, "centered_clipping: a fixed clipping radius tau (model-update "
                                  "norm units); default: tau_scale x the median distance to "
                                  "the centre", flag=True)
  tau_scale: float = hyper(1.0, "centered_clipping: c in tau = c x the round's median distance "
                                "to the centre (when --tau is not given)", flag=True)
  num_iters: int = hyper(1, "centered_clipping: clipping iterations L per round", flag=True)
  server_momentum: float = hyper(0.0, "centered_clipping: beta in u_t = beta u_{t-1} + (1 - beta) "
                                      "clipped mean (0: none)", flag=True)

  def __post_init__(self):
    super().__post_init__()
    if self.tau is not None:
      check_positive("tau", self.tau)
    check_positive("tau_scale", self.tau_scale)
    check_int("num_iters", self.num_iters, 1)
    if not (is_number(self.server_momentum) and 0 <= self.server_momentum < 1):
      raise ValueError(f"server_momentum must be in [0, 1), got {self.server_momentum!r}.")


def radius(norms: tf.Tensor, config: CenteredClippingConfig) -> tf.Tensor:
  """float64 tau: ``config.tau``, or tau_scale x the median of ``norms`` (the lower
  middle value for an even K; +inf norms sort last)."""
  if config.tau is not None:
    return tf.constant(config.tau, tf.float64)
  ordered = tf.sort(norms)
  middle = ordered[(tf.size(norms) - 1) // 2]
  upper = ordered[tf.size(norms) // 2]
  median = tf.where(tf.math.is_finite(upper), 0.5 * (middle + upper), middle)
  return config.tau_scale * median


def clipping_coefficients(norms: tf.Tensor, gram: distances.Gram | None, p: tf.Tensor,
                          config: CenteredClippingConfig):
  """(a [K], c [K] of the last iteration, tau) from the norms ||x_k - v_0|| and,
  where ``config.num_iters`` > 1, the Gram matrix of x_k - v_0 (a norm beyond
  float64's range is +inf: c = 0)."""
  tau = radius(norms, config)

  def step(a, norms):
    c = tf.where(norms > tau, tau / tf.where(norms > 0, norms, 1.0), tf.ones_like(norms))
    pc = p * c
    return a + pc - tf.reduce_sum(pc) * a, c

  a, c = step(tf.zeros_like(p), norms)  # a_0 = 0
  if config.num_iters == 1:
    return a, c, tau

  def body(index, a, _):
    return (index + 1, *step(a, distances.combination_distances(gram, a)))

  _, a, c = tf.while_loop(lambda index, a, c: index < config.num_iters, body,
                          (tf.constant(1), a, c))
  return a, c, tau


def first_center(values: Sequence[tf.Tensor]) -> list[tf.Tensor]:
  """The first round's centre: the coordinate-wise median of the clients."""
  return l_estimator.l_estimate_valid(values, None, l_estimator.median_position_weights,
                                      None, chunking.DEFAULT_MEMORY_BUDGET_BYTES).aggregate


def centered_clipping(values: Sequence[tf.Tensor], sample_weights: tf.Tensor | None,
                      config: CenteredClippingConfig, center: Sequence[tf.Tensor] | None = None,
                      has_center: tf.Tensor | bool | None = None) -> clients.KernelOutput:
  """Centered clipping of ``values`` (list of [K, n_t]) around ``center``.

  ``center``: one [n_t] tensor per input, the previous aggregate; None, or
  ``has_center`` False, starts from the coordinate median (the factory keeps
  the centre in its state). The new centre is the returned aggregate
  (``KernelOutput.state``: ``center`` and ``has_center``; a round whose clients
  are all dropped keeps the old ones). ``client_weights`` = a / sum(a) (the
  clients' shares of the part of the result that is not the old centre);
  ``extra``: ``clip_factors`` (c of the last iteration), ``center_weight`` (the
  old centre's weight in the result: 1 - sum a, and with momentum
  beta + (1 - beta)(1 - sum a)) and ``tau`` (the round's radius).
  """
  weights = config.used_weights(sample_weights)
  momentum = config.server_momentum
  if center is None:
    has_center = False
  elif has_center is None:
    has_center = True
  has_center = tf.convert_to_tensor(has_center)
  state = {"has_center": has_center}
  if center is not None:
    state["center"] = [tf.convert_to_tensor(c) for c in center]

  def valid(v, w, _):
    num_clients = tf.shape(v[0])[0]
    if center is None:
      start = first_center(v)
    else:
      given = [tf.cast(c, m.dtype) for c, m in zip(center, v)]
      start = tf.cond(has_center, lambda: given, lambda: first_center(v))
    p = clients.apply_sample_weights(
        tf.ones([num_clients], tf.float64) / tf.cast(num_clients, tf.float64), w)
    if config.num_iters == 1:
      gram, norms = None, distances.center_norms(v, start)
    else:
      gram = distances.client_gram(v, center=start)
      norms = distances.combination_distances(gram, tf.zeros_like(p))
    a, c, tau = clipping_coefficients(norms, gram, p, config)
    if momentum:
      a = a * tf.where(has_center, tf.constant(1.0 - momentum, a.dtype), tf.ones([], a.dtype))
    kept = 1.0 - tf.reduce_sum(a)
    aggregate = [s * tf.cast(kept, s.dtype) + part
                 for s, part in zip(start, distances.weighted_sum(v, a))]
    new_state = {"has_center": tf.constant(True)}
    if center is not None:
      new_state["center"] = [tf.cast(x, c.dtype) for x, c in zip(aggregate, state["center"])]
    return clients.ValidOutput(aggregate, clients.normalize_weights(a),
                               tf.zeros([num_clients], tf.float64),
                               per_client={"clip_factors": c},
                               scalars={"center_weight": kept, "tau": tau}, state=new_state)

  return clients.run_on_finite_clients(valid, values, weights, PER_CLIENT_EXTRAS,
                                       SCALAR_EXTRAS, state=state)
