"""``ARCFactory``: adaptive robust clipping (Allouah et al., ICLR 2025) around
another factory of this package."""

from __future__ import annotations

from tff_residual.aggregators.robust_factory import RobustAggregationFactory
from tff_residual.aggregators.wrapper import WrapperFactory


class ARCFactory(WrapperFactory):
  """The floor(2 (f / K)(K - f)) largest-norm client values are clipped to the
  next norm down, then ``inner`` aggregates them (``tff_residual.kernels.arc``).

  Usage (ByzFL's default pipeline, ``arc+nnm+trimmed_mean``)::

      ARCFactory(NNMFactory(TrimmedMeanFactory(), num_byzantine=2), num_byzantine=2)

  Args:
    inner: a factory of this package.
    num_byzantine: f (required); K >= f + 1. The sample weights go to ``inner``.

  State: the inner method's. Measurements: the inner method's, with
  ``client_weights`` the clients' shares (p c, normalised) and
  ``arc_clip_factors`` (c, 1 for an unclipped client).
  """

  WRAPPER = "arc"

  def __init__(self, inner: RobustAggregationFactory, *, num_byzantine: int):
    super().__init__(inner, num_byzantine=num_byzantine)
