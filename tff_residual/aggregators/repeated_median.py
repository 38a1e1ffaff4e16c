"""``RepeatedMedianFactory`` (Siegel, 1982), the paper's coordinate-wise baseline."""

from __future__ import annotations

from tff_residual.aggregators.robust_factory import RobustAggregationFactory


class RepeatedMedianFactory(RobustAggregationFactory):
  """Repeated-median line per coordinate, evaluated at the central rank.

  Args:
    variant: "reference" (default; the authors' code, which reduces exactly to
      the coordinate median) or "paper" (eq. 2's intercept; differs from the
      median). See ``tff_residual.kernels.repeated_median``.
    sample_weighting: "ignore" (default) or "multiply" (reference variant only).
    chunk_size, memory_budget_bytes: coordinates per chunk (None, the default:
      derived from the budget), or the byte budget of the temporaries of the
      chunks computed at once (default 256 MiB).

  State: ``()``. Measurements as ``CoordinateMedianFactory`` (uniform
  ``client_weights`` for the paper variant).
  """

  METHOD = "repeated_median"
