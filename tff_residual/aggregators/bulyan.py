"""``BulyanFactory`` (El Mhamdi, Guerraoui, Rouault, ICML 2018)."""

from __future__ import annotations

from tff_residual.aggregators.robust_factory import RobustAggregationFactory


class BulyanFactory(RobustAggregationFactory):
  """Bulyan: K - 2f clients chosen by iterated Krum, then per coordinate the mean
  of the K - 4f selected values closest to their median
  (``tff_residual.kernels.bulyan``).

  Args:
    num_byzantine: f (required); K >= 4f + 3 clients per round.
    sample_weighting: "ignore" (default) or "multiply".

  State: ``()``. Measurements: ``client_weights`` (averaged over coordinates),
  ``corrected_fraction``, ``num_dropped_clients``, ``selected``.
  """

  METHOD = "bulyan"
