"""Residual-based reweighting (Fu, Xie, Li, Chen; paper §3.1, Algorithm 1).

For every coordinate n the K client values y_n are sorted, a robust line
y = b0 + b1 x is fitted to the points (rank, value), and each client gets a
confidence w_nk from its residual to that line. Values with a very low
confidence are replaced by the line ("extreme value correction"), the
confidences are accumulated over *all* coordinates of the model into one weight
per client, and the aggregate is the weighted mean of the corrected models.

The order statistics are computed here (the sorting path) or in
``fused`` (the fast paths); eqs. 3-11 are ``equations``'
(the only statement of them). Two variants (docs/reference_differences.md
§1.3 lists every difference):

``variant="reference"`` (default) is what the authors' code computes:
  slope   b1 = med_i med_{j!=i} (y_(j) - y_(i)) / (j - i)              (eq. 1)
  line    l_k = med(y) + b1 (x_k - (K-1)/2)       (not eq. 2's intercept)
  scale   M = median of |y - l| without its smallest value        (eq. 3)
  then tau + 1e-7, leverage of the design [1, x], replace where w < delta
  (w is not zeroed), std of the uncorrected w, p ∝ W^2       (eqs. 3-11)

``variant="paper"`` follows eqs. 1-11 literally: intercept by eq. 2, M the
median of all K |r|, gamma = 1.48, no epsilon, leverage x^2 / sum x^2 (eq. 7),
replace and zero where w <= delta (eqs. 8-9), p = W / sum W.

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

Example (five clients, one coordinate; client 4 sends 100: its residual from the
repeated-median line is far beyond Z, its confidence 0, and the others share the
model weight)::

    >>> import numpy as np
    >>> from tff_residual.kernels.residual import reweighting
    >>> x = [np.array([[1.], [2.], [3.], [4.], [100.]], np.float32)]
    >>> out = reweighting.residual_reweighting(x)
    >>> out.aggregate[0].numpy().tolist(), [round(float(w), 3) for w in out.client_weights]
    ([2.5], [0.25, 0.25, 0.25, 0.25, 0.0])
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import tensorflow as tf

from tff_residual.kernels import chunking
from tff_residual.kernels import clients
from tff_residual.kernels import mean
from tff_residual.kernels.residual import equations
from tff_residual.kernels.residual import fused
from tff_residual.kernels.method_config import check_choice, check_positive, hyper, is_number
from tff_residual.kernels.order_statistics import (median_by_selection, median_of_sorted,
                                                   sort_with_ranks)

VARIANTS = ("reference", "paper")
ESTIMATORS = ("repeated_median", "theil_sen", "median")
WEIGHTINGS = ("huber", "gaussian")
IMPLEMENTATIONS = ("auto", "sort")


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
      counted ranks under XLA (``fused``) for 3 to
      ``fused.MAX_CLIENTS`` clients when K is known when the graph is
      built (the eager API), and by networks of plain TF ops (TFF's worker has
      no XLA) for up to ``fused.DYNAMIC_MAX_CLIENTS`` (32) when it is
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
    return self.implementation == "auto" and fused.supports(
        self.variant, self.estimator, self.weighting)

  @property
  def effective_gamma(self) -> float:
    if self.gamma is not None:
      return float(self.gamma)
    return equations.REFERENCE_GAMMA if self.variant == "reference" else equations.PAPER_GAMMA

  @property
  def rule(self) -> equations.Rule:
    """The constants of eqs. 3-11 for ``equations``."""
    epsilon = equations.REFERENCE_TAU_EPSILON if self.variant == "reference" else 0.0
    return equations.Rule(gamma=self.effective_gamma, lambda_=float(self.lambda_),
                          delta=float(self.delta), epsilon=epsilon, variant=self.variant,
                          weighting=self.weighting)


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
  value_median = median_of_sorted(sorted_values)
  if config.estimator == "median":
    return tf.broadcast_to(value_median[:, None], tf.shape(sorted_values))
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
  if config.variant == "reference":
    return equations.reference_line(positions, slope, value_median, num_clients, axis=1)
  slope = slope[:, None]
  if config.estimator == "repeated_median":
    # eq. 2: b0 = med_i med_{j!=i} (x_j y_i - x_i y_j) / (x_j - x_i)
    cross = (positions[None, None, :] * sorted_values[:, :, None]
             - positions[None, :, None] * sorted_values[:, None, :])
    intercepts = _pairwise_ratios(cross, positions, off_diagonal)
    intercept = _repeated_median(intercepts, num_clients, select)[:, None]
  else:  # theil_sen, paper variant: b0 = med_k (y_k - b1 x_k)
    intercept = median_of_sorted(tf.sort(sorted_values - slope * positions, axis=-1))[:, None]
  return intercept + slope * positions[None, :]


def coordinate_statistics(values: tf.Tensor, config: ResidualReweightingConfig):
  """Algorithm 1, lines 2-11, for a chunk of coordinates ``values`` [c, K], K >= 3.

  Returns ``(corrected, contribution, replaced)`` in client order:
  corrected values y' [c, K], w * std(w) [c, K] (the per-coordinate terms of
  eq. 10) and a float 0/1 [c, K] marking replaced values.
  """
  num_clients = tf.shape(values)[1]
  sorted_values, _, ranks = sort_with_ranks(values)
  line = fit_line(sorted_values, config)
  abs_sorted = tf.sort(tf.abs(sorted_values - line), axis=-1)
  if config.variant == "reference":  # M without the smallest |r| (the code's eq. 3)
    scale = median_of_sorted(abs_sorted[:, 1:], num_clients - 1)
  else:
    scale = median_of_sorted(abs_sorted)
  positions = tf.range(tf.cast(num_clients, values.dtype))
  corrected, contribution, replace = equations.weigh(sorted_values, positions, line, scale,
                                                     config.rule, axis=1)
  to_clients = lambda t: tf.gather(t, ranks, batch_dims=1)
  return (to_clients(corrected), to_clients(contribution),
          to_clients(tf.cast(replace, values.dtype)))


def bytes_per_coordinate(config: ResidualReweightingConfig):
  """Bytes of temporaries per coordinate, ``fn(K, itemsize)``: a few [K, K] copies."""
  copies = 4 if config.estimator == "median" else (9 if config.variant == "paper" else 6)
  def per_coordinate(num_clients, itemsize):
    k = tf.cast(num_clients, tf.int64)
    return copies * itemsize * k * tf.maximum(k, 4)
  return per_coordinate


def computation_path(config: ResidualReweightingConfig, values: Sequence[tf.Tensor],
                     max_clients: int | None) -> str:
  """The one place that chooses how Algorithm 1 is computed for K >= 3 clients
  (fewer always give the plain mean, decided at run time):

  * ``"sort"``: ``coordinate_statistics`` (sorts each coordinate's K values), for
    ``implementation="sort"``, every setting other than the reference variant
    with the repeated median and Huber confidences, tensors of mixed dtypes, and
    a static client bound outside 3..``fused.MAX_CLIENTS``;
  * ``"xla"``: ``fused.chunk_statistics`` (selection networks under
    XLA), when K is bounded while the graph is built (``max_clients``; the eager
    API);
  * ``"plain"``: ``fused.plain_chunk_statistics`` (networks of plain
    ops), when K is unknown while the graph is built (TFF's stacks, whose worker
    has no XLA); at run time K > ``fused.DYNAMIC_MAX_CLIENTS`` sorts.
  """
  if (not config.has_fused_path or len({matrix.dtype for matrix in values}) > 1
      or (max_clients is not None and not 3 <= max_clients <= fused.MAX_CLIENTS)):
    return "sort"
  return "plain" if max_clients is None else "xla"


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
  rule = config.rule

  def mean_only():
    uniform = tf.ones([num_clients], tf.float64) / tf.cast(num_clients, tf.float64)
    p = clients.apply_sample_weights(uniform, sample_weights)
    return mean.weighted_average_valid(values, p), p, tf.zeros([num_clients], tf.float64)

  def reweight_fused():
    width = fused.chunk_width(config.chunk_size, config.memory_budget_bytes,
                                       max_clients)
    # One [K, N] matrix, so one loop: every loop over a tensor would be optimised
    # and compiled on its own (BENCHMARKS.md, "Design measurements"). Costs one
    # copy of the input.
    sizes = [tf.shape(matrix)[1] for matrix in values]
    flat = values[0] if len(values) == 1 else tf.concat(values, axis=1)
    summed, p, fraction = fused.reweighted_sum(flat, width, rule, sample_weights,
                                                        max_clients)
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
    p = equations.client_weights(total, rule.variant, sample_weights)
    # corrected values are stored coordinate-major, [n_t, K]
    aggregate = [tf.linalg.matvec(fixed, tf.cast(p, fixed.dtype)) for (fixed,) in per_tensor]
    return aggregate, p, replaced / tf.maximum(num_coordinates, 1.0)

  def reweight():
    path = computation_path(config, values, max_clients)
    if path == "sort":
      return reweight_sorted()
    if path == "xla":
      return reweight_fused()
    return tf.cond(num_clients <= fused.DYNAMIC_MAX_CLIENTS, reweight_fused,
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
