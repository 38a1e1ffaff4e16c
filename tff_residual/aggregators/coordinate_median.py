"""``CoordinateMedianFactory`` (Yin et al., 2018)."""

from __future__ import annotations

from tff_residual.aggregators.robust_factory import RobustAggregationFactory


class CoordinateMedianFactory(RobustAggregationFactory):
  """Coordinate-wise median; even K: mean of the two middle values.

  Args:
    sample_weighting: "ignore" (default) or "multiply" (the middle positions'
      weights are multiplied by their clients' weights; matters for even K).
    implementation: "auto" (default: counted ranks under XLA for up to 128
      clients when K is known, else a sort) or "sort"; both give the same result.
    chunk_size, memory_budget_bytes: coordinates per chunk (None, the default:
      derived from the budget), or the byte budget of the temporaries of the
      chunks computed at once (default 256 MiB).

  State: ``()``. Measurements: ``client_weights`` (a client's weight in the
  median averaged over coordinates), ``corrected_fraction`` (share of its
  coordinates not used), ``num_dropped_clients``.
  """

  METHOD = "median"
