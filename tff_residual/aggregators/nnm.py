"""``NNMFactory``: nearest-neighbour mixing (Allouah et al., AISTATS 2023) around
another factory of this package."""

from __future__ import annotations

from tff_residual.aggregators.robust_factory import RobustAggregationFactory
from tff_residual.kernels import registry


class NNMFactory(RobustAggregationFactory):
  """Each client model becomes the mean of its K - f nearest client models, then
  ``inner`` aggregates them (``tff_residual.kernels.nnm``).

  Usage::

      NNMFactory(ResidualReweightingFactory(), num_byzantine=2)

  Args:
    inner: a factory of this package (``RobustAggregationFactory``: residual,
      median, Krum, centered clipping, ...). TFF's own factories cannot be
      inner: the mixing needs every client value at the server, where the
      inner rule then runs on the mixed values.
    num_byzantine: f (required); K >= f + 1. The sample weights go to ``inner``
      (its own ``sample_weighting`` decides).

  State: the inner method's. Measurements: the inner method's, with
  ``client_weights`` the original clients' shares M'p of the aggregate, and
  ``inner_client_weights`` (p, the inner method's weights of the mixed models).
  """

  def __init__(self, inner: RobustAggregationFactory, *, num_byzantine: int):
    if not isinstance(inner, RobustAggregationFactory) or isinstance(inner, NNMFactory):
      raise TypeError("NNMFactory's inner must be a factory of this package (a "
                      f"RobustAggregationFactory other than NNMFactory), got {inner!r}.")
    config = registry.NNM.config.from_params("nnm", {"num_byzantine": num_byzantine})
    resolved = registry.Resolved(registry.NNM_PREFIX + inner.method, registry.NNM, config,
                                 inner.resolved)
    self._inner = inner
    self._set_resolved(resolved, {"inner": inner, "num_byzantine": num_byzantine})

  @property
  def inner(self) -> RobustAggregationFactory:
    return self._inner
