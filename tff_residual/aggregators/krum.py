"""``KrumFactory`` and ``MultiKrumFactory`` (Blanchard et al., NeurIPS 2017)."""

from __future__ import annotations

from tff_residual.aggregators.robust_factory import RobustAggregationFactory


class KrumFactory(RobustAggregationFactory):
  """Krum: the client model with the smallest sum of squared distances to its
  K - f - 2 nearest other models (``tff_residual.kernels.krum``).

  Args:
    num_byzantine: f (required); K >= 2f + 3 clients per round.
    sample_weighting: "ignore" (default) or "multiply" (no effect on Krum).

  State: ``()``. Measurements: ``client_weights`` (one-hot),
  ``corrected_fraction`` (1 for the clients not chosen), ``num_dropped_clients``,
  ``krum_scores`` and ``selected``.
  """

  METHOD = "krum"


class MultiKrumFactory(RobustAggregationFactory):
  """Multi-Krum: the mean of the m models of smallest Krum score.

  Args:
    num_byzantine: f (required); K >= 2f + 3 clients per round.
    num_selected: m; None (default) = K - f.
    sample_weighting: "ignore" (default, 1/m each) or "multiply" (the selected
      clients' sample-weight shares).

  State: ``()``. Measurements as ``KrumFactory`` (``client_weights`` 1/m on
  the selected clients).
  """

  METHOD = "multi_krum"
