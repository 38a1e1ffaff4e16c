"""``GeometricMedianFactory`` (RFA: Pillutla, Kakade, Harchaoui, IEEE TSP 2022)."""

from __future__ import annotations

from tff_residual.aggregators.robust_factory import RobustAggregationFactory


class GeometricMedianFactory(RobustAggregationFactory):
  """The geometric median of the client models by smoothed Weiszfeld
  (``tff_residual.kernels.geometric_median``).

  Args:
    max_iter: most iterations (default 100).
    nu: smoothing, the smallest distance used (default 1e-6).
    tolerance: relative improvement of the objective that stops it (1e-6).
    sample_weighting: "ignore" (default) or "multiply" (the clients' sample
      weights are the alpha_k of the objective, as in RFA).

  State: ``()``. Measurements: ``client_weights`` (the final Weiszfeld
  coefficients), ``corrected_fraction`` (0), ``num_dropped_clients``,
  ``num_iterations``.
  """

  METHOD = "geometric_median"
