"""``NNMFactory``: nearest-neighbour mixing (Allouah et al., AISTATS 2023) around
another factory of this package."""

from __future__ import annotations

from tff_residual.aggregators.robust_factory import RobustAggregationFactory
from tff_residual.aggregators.wrapper import WrapperFactory


class NNMFactory(WrapperFactory):
  """Each client model becomes the mean of its K - f nearest client models, then
  ``inner`` aggregates them (``tff_residual.kernels.nnm``).

  Usage::

      NNMFactory(ResidualReweightingFactory(), num_byzantine=2)

  Args:
    inner: a factory of this package (``RobustAggregationFactory``: residual,
      median, Krum, centered clipping, another wrapper, ...).
    num_byzantine: f (required); K >= f + 1. The sample weights go to ``inner``
      (its own ``sample_weighting`` decides).

  State: the inner method's. Measurements: the inner method's, with
  ``client_weights`` the original clients' shares M'p of the aggregate, and
  ``inner_client_weights`` (p, the inner method's weights of the mixed models).
  """

  WRAPPER = "nnm"

  def __init__(self, inner: RobustAggregationFactory, *, num_byzantine: int):
    super().__init__(inner, num_byzantine=num_byzantine)
