"""Residual-based reweighting (Fu, Xie, Li, Chen; paper §3.1, Algorithm 1).

For every coordinate n the K client values y_n are sorted, a robust line
y = b0 + b1 x is fitted to the points (rank, value), and each client gets a
confidence w_nk from its residual to that line. Values with a very low
confidence are replaced by the line ("extreme value correction"), the
confidences are accumulated over *all* coordinates of the model into one weight
per client, and the aggregate is the weighted mean of the corrected models.

Two variants (docs/reference_differences.md §1.3 lists every difference):

``variant="reference"`` (default) is what the authors' code computes:
  slope   b1 = med_i med_{j!=i} (y_(j) - y_(i)) / (j - i)              (eq. 1)
  line    l_k = med(y) + b1 (x_k - (K-1)/2)       (not eq. 2's intercept)
  residual r_k = y_k - l_k
  scale   tau = 1.4826 (1 + 5/(K-1)) M + 1e-7,  M = median of |r| without
          its smallest value                                      (eqs. 3-4)
  leverage h_k = 1/K + (x_k - (K-1)/2)^2 / (K (K^2-1) / 12)  (design [1, x])
  confidence w_k = min(1, Z sqrt(1-h_k) / |e_k|), e = r / tau,
          Z = lambda sqrt(2/K); w = 1 where e = 0                  (eqs. 5-6)
  correction y'_k = l_k if w_k < delta else y_k; w is not zeroed  (eq. 9)
  W_k = sum_n w_nk std(w_n)  (std with ddof=1, of the uncorrected w) (eq. 10)
  p_k = W_k^2 / sum_j W_j^2                                 (eq. 11, squared)

``variant="paper"`` follows eqs. 1-11 literally: intercept by eq. 2, median of
all K |r|, gamma = 1.48, no epsilon, leverage h_k = x_k^2 / sum_j x_j^2 (eq. 7,
no intercept column), replace and zero where w <= delta (eqs. 8-9), std (ddof=1)
of the corrected w, p_k = W_k / sum_j W_j.

Options of paper §4.5 / Table 7: ``estimator`` "repeated_median" (default),
"theil_sen" (slope = median of all pairwise slopes; reference intercept
med(y) - b1 (K-1)/2, paper variant intercept med_k(y_k - b1 x_k)) or "median"
(no line: b1 = 0, the line is med(y)); ``weighting`` "huber" (eq. 6) or
"gaussian" (w = exp(-e^2 / (2 lambda^2)), lambda read as a standard deviation,
no leverage factor, as in the authors' ``irls_gaussian``).

Rules where the reference has none (documented deviations):
* all W_k = 0 (e.g. all models identical; the reference returns a NaN model):
  uniform weights, i.e. the plain mean of the (corrected) models;
* K < 3: a line through at most two points fits exactly, so residuals carry no
  information (the reference's K = 2 result is decided by rounding noise):
  uniform weights and no correction, i.e. the plain mean;
* paper variant with tau = 0 (more than half the clients tied): e = 0 where
  r = 0 and |e| = inf elsewhere (the limit tau -> 0+), so w is 1 or 0.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import tensorflow as tf

from tff_residual.kernels import chunking
from tff_residual.kernels import clients
from tff_residual.kernels import mean
from tff_residual.kernels import residual_fused
from tff_residual.kernels.config import check_choice, check_positive, hyper, is_number
from tff_residual.kernels.order_statistics import (median_by_selection, median_of_sorted,
                                                   sort_with_ranks)

VARIANTS = ("reference", "paper")
ESTIMATORS = ("repeated_median", "theil_sen", "median")
WEIGHTINGS = ("huber", "gaussian")
IMPLEMENTATIONS = ("auto", "sort")
REFERENCE_GAMMA = 1.4826
PAPER_GAMMA = 1.48
REFERENCE_TAU_EPSILON = 1e-7


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResidualReweightingConfig(chunking.ChunkedConfig):
  """Validated hyper-parameters of the residual reweighting.

  Attributes:
    variant: "reference" (the authors' code) or "paper" (eqs. 1-11).
    estimator: robust line, "repeated_median", "theil_sen" or "median".
    weighting: "huber" (eq. 6) or "gaussian" (Table 7).
    lambda_: lambda of Z = lambda sqrt(2/K) (eq. 6); the standard deviation of
      the Gaussian weighting. Must be > 0.
    delta: extreme value threshold (eqs. 8-9), in [0, 1].
    gamma: consistency constant of eq. 3; None = 1.4826 (reference) or
      1.48 (paper). Must be > 0.
    sample_weighting: "ignore" (default, as the paper's code) or "multiply":
      p_k is multiplied by client k's sample weight and renormalised.
    chunk_size: coordinates per chunk; None = from ``memory_budget_bytes``.
    memory_budget_bytes: budget for the temporaries of the chunks computed at
      once (``chunking.DEFAULT_MEMORY_BUDGET_BYTES``).
    implementation: "auto" (default) computes the default configuration
      (reference variant, repeated median, Huber) by selection networks and
      counted ranks under XLA (``residual_fused``) for 3 to
      ``residual_fused.MAX_CLIENTS`` clients when K is known when the graph is
      built (the eager API), and by networks of plain TF ops (TFF's worker has
      no XLA) for up to ``residual_fused.DYNAMIC_MAX_CLIENTS`` (32) when it is
      not (TFF's dynamic client axis); everything else sorts each
      coordinate's K values but takes the O(K^2) medians of pairwise slopes by
      partial selection (``median_by_selection``). "sort" sorts for every
      median (the straightforward implementation; the tests' oracle).
  """

  variant: str = hyper("reference", "reference (the authors' code) or paper (eqs. 1-11)")
  estimator: str = hyper("repeated_median", "the robust line: repeated_median, theil_sen or "
                                            "median")
  weighting: str = hyper("huber", "huber (eq. 6) or gaussian (Table 7)")
  lambda_: float = hyper(2.0, "residual reweighting lambda (eq. 6)", flag=True)
  delta: float = hyper(0.1, "residual reweighting threshold delta (eqs. 8-9; code 0.1, paper "
                            "MNIST 0.01)", flag=True)
  gamma: float | None = hyper(None, "constant of eq. 3; None = 1.4826 (reference) / 1.48 "
                                    "(paper)")
  implementation: str = hyper("auto", "auto (the fast paths) or sort (the oracle)")

  def __post_init__(self):
    super().__post_init__()
    for name, allowed in (("variant", VARIANTS), ("estimator", ESTIMATORS),
                          ("weighting", WEIGHTINGS), ("implementation", IMPLEMENTATIONS)):
      check_choice(name, getattr(self, name), allowed)
    check_positive("lambda_", self.lambda_)
    if self.gamma is not None:
      check_positive("gamma", self.gamma)
    if not is_number(self.delta) or not 0.0 <= self.delta <= 1.0:
      raise ValueError(f"delta must be a number in [0, 1], got {self.delta!r}.")

  @property
  def has_fused_path(self) -> bool:
    return self.implementation == "auto" and residual_fused.supports(
        self.variant, self.estimator, self.weighting)

  @property
  def effective_gamma(self) -> float:
    if self.gamma is not None:
      return float(self.gamma)
    return REFERENCE_GAMMA if self.variant == "reference" else PAPER_GAMMA


def _pairwise_ratios(numerator: tf.Tensor, positions: tf.Tensor, off_diagonal: tf.Tensor):
  """[c, i, j] = numerator[c, i, j] / (j - i); +inf on the diagonal (excluded)."""
  run = positions[None, :] - positions[:, None]
  safe_run = tf.where(off_diagonal, run, tf.ones_like(run))
  return tf.where(off_diagonal, numerator / safe_run, tf.constant(math.inf, numerator.dtype))


def _median(values: tf.Tensor, count, select: bool) -> tf.Tensor:
  """Median of the ``count`` smallest entries per row, by selection or by sorting
  (same elements, same result; selection is O(K) per row instead of O(K log K))."""
  if select:
    return median_by_selection(values, count)
  return median_of_sorted(tf.sort(values, axis=-1), count)


def _repeated_median(pairwise: tf.Tensor, num_clients: tf.Tensor, select: bool) -> tf.Tensor:
  """med_i med_{j != i} pairwise[:, i, j]; the +inf diagonal sorts last and is skipped."""
  inner = _median(pairwise, num_clients - 1, select)
  return _median(inner, num_clients, select)


def fit_line(sorted_values: tf.Tensor, config: ResidualReweightingConfig) -> tf.Tensor:
  """Values of the robust line at ranks 0..K-1, for sorted rows [c, K] (K >= 2)."""
  dtype = sorted_values.dtype
  num_clients = tf.shape(sorted_values)[1]
  k = tf.cast(num_clients, dtype)
  positions = tf.range(k, dtype=dtype)
  center = (k - 1.0) / 2.0
  value_median = median_of_sorted(sorted_values)[:, None]
  if config.estimator == "median":
    return tf.broadcast_to(value_median, tf.shape(sorted_values))
  off_diagonal = tf.logical_not(tf.eye(num_clients, dtype=tf.bool))
  # eq. 1 terms: (y_(j) - y_(i)) / (j - i)
  slopes = _pairwise_ratios(sorted_values[:, None, :] - sorted_values[:, :, None],
                            positions, off_diagonal)
  select = config.implementation == "auto"
  if config.estimator == "repeated_median":
    slope = _repeated_median(slopes, num_clients, select)
  else:  # theil_sen: median of the K(K-1)/2 pairwise slopes (each appears twice).
    flat = tf.reshape(slopes, [tf.shape(slopes)[0], -1])
    slope = _median(flat, num_clients * (num_clients - 1), select)
  slope = slope[:, None]
  if config.variant == "reference":
    return value_median + slope * (positions[None, :] - center)
  if config.estimator == "repeated_median":
    # eq. 2: b0 = med_i med_{j!=i} (x_j y_i - x_i y_j) / (x_j - x_i)
    cross = (positions[None, None, :] * sorted_values[:, :, None]
             - positions[None, :, None] * sorted_values[:, None, :])
    intercepts = _pairwise_ratios(cross, positions, off_diagonal)
    intercept = _repeated_median(intercepts, num_clients, select)[:, None]
  else:  # theil_sen, paper variant: b0 = med_k (y_k - b1 x_k)
    intercept = median_of_sorted(tf.sort(sorted_values - slope * positions, axis=-1))[:, None]
  return intercept + slope * positions[None, :]


def leverage(num_clients: tf.Tensor, dtype: tf.DType, variant: str) -> tf.Tensor:
  """Hat-matrix diagonal h at ranks 0..K-1 (eq. 7).

  reference (design [1, x]): h = 1/K + (x - (K-1)/2)^2 / (K (K^2 - 1) / 12)
  paper (design x only):     h = x^2 / sum_j x_j^2
  """
  k = tf.cast(num_clients, dtype)
  x = tf.range(k, dtype=dtype)
  if variant == "reference":
    return 1.0 / k + tf.square(x - (k - 1.0) / 2.0) / (k * (k * k - 1.0) / 12.0)
  return tf.square(x) / tf.reduce_sum(tf.square(x))


def confidences(residuals: tf.Tensor, tau: tf.Tensor, num_clients: tf.Tensor,
                config: ResidualReweightingConfig) -> tf.Tensor:
  """Parameter confidences w (eq. 6 or Gaussian), rows [c, K] in rank order."""
  dtype = residuals.dtype
  k = tf.cast(num_clients, dtype)
  abs_r = tf.abs(residuals)
  if config.weighting == "gaussian":
    # e = r / tau; the tau = 0 limit: e = 0 where r = 0, |e| = inf elsewhere.
    safe_tau = tf.where(tau > 0, tau, tf.ones_like(tau))
    e = tf.where(tau > 0, abs_r / safe_tau,
                 tf.where(abs_r > 0, tf.constant(math.inf, dtype), tf.zeros_like(abs_r)))
    return tf.exp(-tf.square(e) / (2.0 * config.lambda_**2))
  h = leverage(num_clients, dtype, config.variant)
  s = tf.sqrt(tf.maximum(1.0 - h, 0.0))
  z = config.lambda_ * tf.sqrt(2.0 / k)
  # (s/e) Psi(e/s) = min(1, Z s / |e|) = min(1, Z s tau / |r|); w = 1 at r = 0.
  bound = z * s[None, :] * tau
  safe_abs_r = tf.where(abs_r > bound, abs_r, tf.ones_like(abs_r))
  return tf.where(abs_r > bound, bound / safe_abs_r, tf.ones_like(abs_r))


def coordinate_statistics(values: tf.Tensor, config: ResidualReweightingConfig):
  """Algorithm 1, lines 2-11, for a chunk of coordinates ``values`` [c, K], K >= 3.

  Returns ``(corrected, contribution, replaced)`` in client order:
  corrected values y' [c, K], w * std(w) [c, K] (the per-coordinate terms of
  eq. 10) and a float 0/1 [c, K] marking replaced values.
  """
  dtype = values.dtype
  num_clients = tf.shape(values)[1]
  k = tf.cast(num_clients, dtype)
  sorted_values, _, ranks = sort_with_ranks(values)
  line = fit_line(sorted_values, config)
  residuals = sorted_values - line
  abs_sorted = tf.sort(tf.abs(residuals), axis=-1)
  if config.variant == "reference":
    scale = median_of_sorted(abs_sorted[:, 1:], num_clients - 1)
  else:
    scale = median_of_sorted(abs_sorted)
  tau = config.effective_gamma * (1.0 + 5.0 / (k - 1.0)) * scale
  if config.variant == "reference":
    tau = tau + REFERENCE_TAU_EPSILON
  tau = tau[:, None]
  w = confidences(residuals, tau, num_clients, config)
  if config.variant == "reference":
    replace = w < config.delta
  else:
    replace = w <= config.delta
    w = tf.where(replace, tf.zeros_like(w), w)
  mean_w = tf.reduce_mean(w, axis=1, keepdims=True)
  spread = tf.sqrt(tf.reduce_sum(tf.square(w - mean_w), axis=1, keepdims=True) / (k - 1.0))
  corrected = tf.where(replace, line, sorted_values)
  to_clients = lambda t: tf.gather(t, ranks, batch_dims=1)
  return (to_clients(corrected), to_clients(w * spread),
          to_clients(tf.cast(replace, dtype)))


def bytes_per_coordinate(config: ResidualReweightingConfig):
  """Bytes of temporaries per coordinate, ``fn(K, itemsize)``: a few [K, K] copies."""
  copies = 4 if config.estimator == "median" else (9 if config.variant == "paper" else 6)
  def per_coordinate(num_clients, itemsize):
    k = tf.cast(num_clients, tf.int64)
    return copies * itemsize * k * tf.maximum(k, 4)
  return per_coordinate


def model_weights(total_confidence: tf.Tensor, variant: str) -> tf.Tensor:
  """p from W (eq. 11): reference p ∝ (W / max W)^2, paper p = W / sum W.

  Uniform if every W_k is 0 (the reference divides 0 by 0 there).
  """
  if variant == "reference":
    top = tf.reduce_max(total_confidence)
    safe_top = tf.where(top > 0, top, tf.ones_like(top))
    total_confidence = tf.square(total_confidence / safe_top)
  return clients.normalize_weights(total_confidence)


def residual_reweighting_valid(values: Sequence[tf.Tensor], sample_weights: tf.Tensor | None,
                               config: ResidualReweightingConfig,
                               max_clients: int | None = None) -> clients.ValidOutput:
  """Residual reweighting of finite clients: ``values`` is a list of [K, n_t].

  ``sample_weights`` (float [K]) are multiplied into the model weights when
  given; pass None to ignore them.

  Every coordinate of every tensor counts, 0-dim tensors included (the
  reference skips 0-dim state entries such as BatchNorm's step counter, which
  TFF's model deltas do not contain). ``max_clients`` is a static bound on K
  when one is known (it only limits what the fast path builds).
  """
  values = list(values)
  num_clients = tf.shape(values[0])[0]

  def mean_only():
    uniform = tf.ones([num_clients], tf.float64) / tf.cast(num_clients, tf.float64)
    p = clients.apply_sample_weights(uniform, sample_weights)
    return mean.weighted_average_valid(values, p), p, tf.zeros([num_clients], tf.float64)

  def reweight_fused():
    width = residual_fused.chunk_width(config.chunk_size, config.memory_budget_bytes)
    # One [K, N] matrix, so one loop: every loop over a tensor would be optimised
    # and compiled on its own (BENCHMARKS.md, "Design measurements"). Costs one
    # copy of the input.
    sizes = [tf.shape(matrix)[1] for matrix in values]
    flat = values[0] if len(values) == 1 else tf.concat(values, axis=1)
    summed, p, fraction = residual_fused.reweighted_sum(
        flat, width, config.effective_gamma, config.lambda_, config.delta, REFERENCE_TAU_EPSILON,
        lambda total: clients.apply_sample_weights(model_weights(total, config.variant),
                                                   sample_weights), max_clients)
    parts = [summed] if len(values) == 1 else tf.split(summed, tf.stack(sizes), num=len(values))
    aggregate = [tf.ensure_shape(part, matrix.shape[1:]) for part, matrix in zip(parts, values)]
    return aggregate, p, fraction

  def reweight_sorted():
    def chunk_fn(chunk):
      fixed, contribution, replace = coordinate_statistics(chunk, config)
      return [fixed], [tf.reduce_sum(tf.cast(contribution, tf.float64), axis=0),
                       tf.reduce_sum(tf.cast(replace, tf.float64), axis=0)]

    per_tensor, (total, replaced), num_coordinates = chunking.map_model_chunks(
        values, chunk_fn, bytes_per_coordinate(config), 1, 2, config.memory_budget_bytes,
        config.chunk_size)
    p = clients.apply_sample_weights(model_weights(total, config.variant), sample_weights)
    # corrected values are stored coordinate-major, [n_t, K]
    aggregate = [tf.linalg.matvec(fixed, tf.cast(p, fixed.dtype)) for (fixed,) in per_tensor]
    return aggregate, p, replaced / tf.maximum(num_coordinates, 1.0)

  def reweight():
    # The fused path runs on one [K, N] matrix of one dtype; tensors of mixed
    # dtypes take the sorting path, each in its own dtype.
    if (not config.has_fused_path or len({matrix.dtype for matrix in values}) > 1
        or (max_clients is not None and not 3 <= max_clients <= residual_fused.MAX_CLIENTS)):
      return reweight_sorted()
    if max_clients is not None:
      return reweight_fused()
    return tf.cond(num_clients <= residual_fused.DYNAMIC_MAX_CLIENTS, reweight_fused,
                   reweight_sorted)

  aggregate, p, fraction = tf.cond(num_clients >= 3, reweight, mean_only)
  return clients.ValidOutput(list(aggregate), p, fraction)


def residual_reweighting(values: Sequence[tf.Tensor], sample_weights: tf.Tensor | None = None,
                         config: ResidualReweightingConfig = ResidualReweightingConfig(),
                         ) -> clients.KernelOutput:
  """Residual-reweighted aggregate of K client models.

  Args:
    values: one ``[K, n_t]`` float tensor per model tensor (flattened), all
      with the same K. The model weights accumulate over all of them.
    sample_weights: optional float [K]; used only with
      ``config.sample_weighting == "multiply"``.
    config: hyper-parameters, see ``ResidualReweightingConfig``.

  Returns:
    ``KernelOutput``; clients with NaN/Inf values are dropped first.
  """
  weights = config.used_weights(sample_weights)
  values = [tf.convert_to_tensor(v) for v in values]
  max_clients = values[0].shape[0] if values else None
  return clients.run_on_finite_clients(
      lambda v, w, _: residual_reweighting_valid(v, w, config, max_clients), values, weights)
