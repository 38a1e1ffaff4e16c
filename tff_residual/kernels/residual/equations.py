"""Algorithm 1's equations 3-11, stated once (Fu, Xie, Li, Chen, §3.1).

Given one coordinate's K client values y, the ranks x of the values, the robust
line l at the ranks (eqs. 1-2) and the scale M of the residuals (eq. 3), these
helpers compute everything else: tau, leverage, confidences, the extreme-value
correction, the eq. 10 terms and the model weights of eq. 11. Every
implementation (the sorting path of ``residual_reweighting`` and the
order-statistics paths of ``fused``) computes only the order
statistics -- ranks, medians, the slope -- and calls ``weigh`` and
``model_weights``; none restates a formula.

The client axis is ``axis``: the sorting path holds a chunk as rows [c, K] in
rank order (``axis=1``, positions 0..K-1), the fast paths as [K, c] in client
order (``axis=0``, positions = the clients' ranks).

``Rule`` holds the choices of the two variants (``residual_reweighting``'s
docstring lists them; docs/reference_differences.md §1.3 every difference):

  tau     = gamma (1 + 5/(K-1)) M  (+ epsilon, reference)                (eq. 3)
  h_k     = 1/K + (x_k - (K-1)/2)^2 / (K (K^2-1) / 12)   (reference, design [1, x])
          = x_k^2 / sum_j x_j^2                          (paper, eq. 7)
  w_k     = min(1, Z sqrt(1 - h_k) tau / |r_k|),  Z = lambda sqrt(2/K)   (eqs. 4-6)
          = exp(-(r_k / tau)^2 / (2 lambda^2))           (Gaussian, Table 7)
  y'_k    = l_k where w_k < delta (reference) / w_k <= delta, then w_k = 0 (paper)
                                                                         (eqs. 8-9)
  W_k     = sum_n w_nk std(w_n), std with ddof = 1                        (eq. 10)
  p_k     = (W_k / max W)^2 / sum_j (W_j / max W)^2 (reference)
          = W_k / sum_j W_j (paper)                                       (eq. 11)
"""

from __future__ import annotations

import dataclasses
import math

import tensorflow as tf

from tff_residual.kernels import clients

REFERENCE_GAMMA = 1.4826
PAPER_GAMMA = 1.48
REFERENCE_TAU_EPSILON = 1e-7


@dataclasses.dataclass(frozen=True)
class Rule:
  """The constants of eqs. 3-11 (hashable: the fast path caches one XLA program per rule).

  Attributes:
    gamma: consistency constant of eq. 3.
    lambda_: lambda of Z = lambda sqrt(2/K) (eq. 6); the Gaussian's standard deviation.
    delta: the extreme-value threshold (eqs. 8-9).
    epsilon: added to tau (the reference's 1e-7; 0 for the paper's eqs.).
    variant: "reference" or "paper": the leverage, the correction and eq. 11.
    weighting: "huber" (eq. 6) or "gaussian".
  """

  gamma: float
  lambda_: float
  delta: float
  epsilon: float
  variant: str = "reference"
  weighting: str = "huber"


def reference_line(positions: tf.Tensor, slope: tf.Tensor, value_median: tf.Tensor,
                   num_clients, axis: int) -> tf.Tensor:
  """The reference's line at ``positions``: l = med(y) + b1 (x - (K-1)/2).

  ``slope`` and ``value_median`` hold one value per coordinate (the client axis
  removed); they are broadcast along ``axis``."""
  k = tf.cast(num_clients, positions.dtype)
  return (tf.expand_dims(value_median, axis)
          + tf.expand_dims(slope, axis) * (positions - (k - 1.0) / 2.0))


def tau(scale: tf.Tensor, num_clients, rule: Rule) -> tf.Tensor:
  """Eq. 3: tau = gamma (1 + 5/(K-1)) M (+ epsilon), per coordinate."""
  k = tf.cast(num_clients, scale.dtype)
  value = rule.gamma * (1.0 + 5.0 / (k - 1.0)) * scale
  return value + rule.epsilon if rule.epsilon else value


def leverage(positions: tf.Tensor, num_clients, variant: str) -> tf.Tensor:
  """Hat-matrix diagonal h at ``positions`` (eq. 7), of the design [1, x]
  (reference) or x alone (paper), x = 0..K-1."""
  k = tf.cast(num_clients, positions.dtype)
  if variant == "reference":
    return 1.0 / k + tf.square(positions - (k - 1.0) / 2.0) / (k * (k * k - 1.0) / 12.0)
  return tf.square(positions) / tf.reduce_sum(tf.square(tf.range(k, dtype=positions.dtype)))


def confidences(abs_residuals: tf.Tensor, tau_: tf.Tensor, positions: tf.Tensor, num_clients,
                rule: Rule) -> tf.Tensor:
  """Confidences w from |r| and tau (broadcast to |r|'s shape): eqs. 4-6 (Huber,
  (s/e) Psi(e/s) = min(1, Z s / |e|), s = sqrt(1 - h), e = r / tau) or Gaussian.
  w = 1 where r = 0; with tau = 0 (paper variant), |e| = inf where r != 0."""
  dtype = abs_residuals.dtype
  if rule.weighting == "gaussian":
    safe_tau = tf.where(tau_ > 0, tau_, tf.ones_like(tau_))
    e = tf.where(tau_ > 0, abs_residuals / safe_tau,
                 tf.where(abs_residuals > 0, tf.constant(math.inf, dtype),
                          tf.zeros_like(abs_residuals)))
    return tf.exp(-tf.square(e) / (2.0 * rule.lambda_**2))
  k = tf.cast(num_clients, dtype)
  s = tf.sqrt(tf.maximum(1.0 - leverage(positions, num_clients, rule.variant), 0.0))
  bound = rule.lambda_ * tf.sqrt(2.0 / k) * s * tau_
  # Where selected |r| > bound >= 0, so the division is defined there.
  return tf.where(abs_residuals > bound, bound / abs_residuals, tf.ones_like(abs_residuals))


def spread(w: tf.Tensor, axis: int) -> tf.Tensor:
  """std(w) over the clients with ddof = 1 (eq. 10), keeping the axis."""
  k = tf.cast(tf.shape(w)[axis], w.dtype)
  centred = w - tf.reduce_mean(w, axis=axis, keepdims=True)
  return tf.sqrt(tf.reduce_sum(tf.square(centred), axis=axis, keepdims=True) / (k - 1.0))


def weigh(values: tf.Tensor, positions: tf.Tensor, line: tf.Tensor, scale: tf.Tensor,
          rule: Rule, axis: int):
  """Eqs. 3-10 for a chunk of coordinates, given the order statistics.

  Args:
    values: y, with the K clients along ``axis``.
    positions: x, the values' ranks (broadcastable to ``values``).
    line: l at ``positions`` (``values``' shape).
    scale: M of eq. 3, one per coordinate (``values`` without ``axis``).
    rule: the constants.
    axis: the client axis.

  Returns:
    ``(corrected y', w * std(w) (the eq. 10 terms), replace (bool))``, each of
    ``values``' shape.
  """
  num_clients = tf.shape(values)[axis]
  tau_ = tf.expand_dims(tau(scale, num_clients, rule), axis)
  w = confidences(tf.abs(values - line), tau_, positions, num_clients, rule)
  if rule.variant == "reference":
    replace = w < rule.delta
  else:
    replace = w <= rule.delta
    w = tf.where(replace, tf.zeros_like(w), w)
  return tf.where(replace, line, values), w * spread(w, axis), replace


def model_weights(total_confidence: tf.Tensor, variant: str) -> tf.Tensor:
  """p from W (eq. 11): reference p ∝ (W / max W)^2, paper p = W / sum W.

  Uniform if every W_k is 0 (the reference divides 0 by 0 there).
  """
  if variant == "reference":
    top = tf.reduce_max(total_confidence)
    safe_top = tf.where(top > 0, top, tf.ones_like(top))
    total_confidence = tf.square(total_confidence / safe_top)
  return clients.normalize_weights(total_confidence)


def client_weights(total_confidence: tf.Tensor, variant: str,
                   sample_weights: tf.Tensor | None) -> tf.Tensor:
  """Eq. 11's p, multiplied by the clients' sample weights and renormalised when
  they are given (``sample_weighting="multiply"``)."""
  return clients.apply_sample_weights(model_weights(total_confidence, variant), sample_weights)
