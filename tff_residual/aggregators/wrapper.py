"""``WrapperFactory``: a pre-aggregation step (``method_table.WRAPPERS``) around another
factory of this package; ``NNMFactory``, ``ARCFactory`` and ``BucketingFactory``
name one each."""

from __future__ import annotations

from tff_residual.aggregators.robust_factory import RobustAggregationFactory
from tff_residual.kernels import method_table


class WrapperFactory(RobustAggregationFactory):
  """The wrapper ``WRAPPER`` (a key of ``method_table.WRAPPERS``) around ``inner``: the
  inner factory's rule runs on what the wrapper makes of the client values, in one
  server computation (the wrapper needs every client value at the server, so
  TFF's own factories cannot be inner). Wrappers nest: ``ARCFactory(
  NNMFactory(TrimmedMeanFactory(), num_byzantine=2), num_byzantine=2)`` is
  ``arc+nnm+trimmed_mean``. State: the inner's, with the wrapper's own entries.
  Measurements: the inner's (per client), ``client_weights`` the original
  clients' shares, and the wrapper's own (``method_table.Method.per_client_extras``).
  """

  WRAPPER: str = ""

  def __init__(self, inner: RobustAggregationFactory, **params):
    if not isinstance(inner, RobustAggregationFactory):
      raise TypeError(f"{type(self).__name__}'s inner must be a factory of this package (a "
                      f"RobustAggregationFactory), got {inner!r}.")
    self._inner = inner
    self._set_resolved(method_table.wrap(self.WRAPPER, inner.resolved, **params),
                       {"inner": inner, **params})

  @property
  def inner(self) -> RobustAggregationFactory:
    return self._inner
