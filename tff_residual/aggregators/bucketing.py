"""``BucketingFactory``: bucketing (Karimireddy, He, Jaggi, ICLR 2022) around
another factory of this package."""

from __future__ import annotations

from tff_residual.aggregators.robust_factory import RobustAggregationFactory
from tff_residual.aggregators.wrapper import WrapperFactory


class BucketingFactory(WrapperFactory):
  """The clients are shuffled into buckets of ``bucket_size``, and ``inner``
  aggregates the buckets' means (``tff_residual.kernels.bucketing``).

  Args:
    inner: a factory of this package (not FoolsGold with history: a bucket is
      not a client).
    bucket_size: s (default 2); ceil(K / s) buckets must be enough for ``inner``.
    seed: with the round number, seeds each round's shuffle (default 0).

  State: ``bucketing_round`` (the rounds so far, int64: round r's shuffle is the
  same in TFF, in process and in the eager API), then the inner method's.
  Measurements: the inner method's, per client from its bucket;
  ``client_weights`` (p_b / |b|), ``bucket`` and ``bucket_weights`` (p_b).
  """

  WRAPPER = "bucketing"

  def __init__(self, inner: RobustAggregationFactory, *, bucket_size: int = 2, seed: int = 0):
    super().__init__(inner, bucket_size=bucket_size, seed=seed)
