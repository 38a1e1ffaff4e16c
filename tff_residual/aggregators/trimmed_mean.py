"""``TrimmedMeanFactory`` (Yin et al., 2018)."""

from __future__ import annotations

from tff_residual.aggregators.robust_factory import RobustAggregationFactory


class TrimmedMeanFactory(RobustAggregationFactory):
  """Coordinate-wise trimmed mean: drop floor(beta K) values at each end, average the rest.

  Args:
    beta: trimmed fraction per side, in [0, 0.5); default 0.2 (the code's
      ``--alpha``). Where floor(beta K) = 0 the result is the plain mean.
    num_trimmed: t, the values dropped at each end whatever K (ByzFL's
      ``TrMean(f)`` with t = f); needs K >= 2t + 1. Default None: floor(beta K).
      It replaces beta: set one of them.
    sample_weighting: "ignore" (default) or "multiply".
    implementation: "auto" (default: counted ranks under XLA for up to 128
      clients when K is known, else a sort) or "sort"; both give the same result.
    chunk_size, memory_budget_bytes: coordinates per chunk (None, the default:
      derived from the budget), or the byte budget of the temporaries of the
      chunks computed at once (default 256 MiB).

  State: ``()``. Measurements as ``CoordinateMedianFactory``.
  """

  METHOD = "trimmed_mean"
