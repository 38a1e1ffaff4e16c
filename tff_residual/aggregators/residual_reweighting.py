"""``ResidualReweightingFactory``: the paper's aggregation as a TFF factory."""

from __future__ import annotations

from tff_residual.aggregators.robust_factory import RobustAggregationFactory


class ResidualReweightingFactory(RobustAggregationFactory):
  """Residual-based reweighting (Fu et al., Algorithm 1) over the whole model.

  Per coordinate a repeated-median line through the K clients' sorted values,
  IRLS confidences from the residuals (eqs. 3-7), extreme-value correction
  (eqs. 8-9), then one weight per client model from the confidences of all
  coordinates (eqs. 10-11). See ``tff_residual.kernels.residual.reweighting``
  for the formulas of both variants.

  Usage::

      tff.learning.algorithms.build_weighted_fed_avg(
          model_fn, client_optimizer_fn, model_aggregator=ResidualReweightingFactory())

  Args:
    lambda_: lambda of Z = lambda sqrt(2/K) (eq. 6), default 2.0.
    delta: extreme value threshold (eqs. 8-9), default 0.1 (the code's
      default; the paper used 0.01 for MNIST label flipping).
    variant: "reference" (the authors' code, default) or "paper" (eqs. 1-11).
    estimator: "repeated_median" (default), "theil_sen" or "median".
    weighting: "huber" (eq. 6, default) or "gaussian".
    gamma: constant of eq. 3; None = 1.4826 (reference) / 1.48 (paper).
    sample_weighting: "ignore" (default, as the paper's code: the client
      weights passed by ``build_weighted_fed_avg`` are not used) or "multiply"
      (each model weight is multiplied by the client's weight, renormalised).
    implementation: "auto" (default: the fast paths, counted ranks and
      selection networks, where K allows) or "sort" (the sorting oracle); both
      give the same result.
    chunk_size, memory_budget_bytes: coordinates per chunk, or the byte
      budget of the temporaries of the chunks computed at once it is derived from.

  State: ``()``. Measurements: ``client_weights``, ``corrected_fraction``,
  ``num_dropped_clients`` (see ``robust_factory``).
  """

  METHOD = "residual"
