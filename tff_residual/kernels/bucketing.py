"""Bucketing (Karimireddy, He, Jaggi, "Byzantine-Robust Learning on Heterogeneous
Datasets via Bucketing", ICLR 2022; ByzFL's ``Bucketing``), a pre-aggregation
step around any method.

The K client models are shuffled by a random permutation pi and cut into
B = ceil(K / s) buckets of s = ``bucket_size`` consecutive ones (the last one
holds what is left); each bucket's mean

    y_b = (1 / |b|) sum_{i in b} x_pi(i)

is one input of the inner method. Under the inner method's
``sample_weighting="multiply"``, y_b is the sample-weighted mean of its clients
and the bucket's sample weight their sum. The permutation is
``argsort(stateless_uniform([K], seed=(seed, round)))``: the same for the same
seed and round, TFF and eager alike; the factory's state counts the rounds
(``bucketing_round``). A client's share of the aggregate is p_b / |b| for its
bucket b (its sample weight's share of the bucket under "multiply");
``extra`` adds ``bucket`` (the client's bucket index) and ``bucket_weights``
(p_b); the inner method's per-input measurements are reported per client, from
the client's bucket.

Example (K = 4, buckets of 2; which clients share a bucket depends on the seed
and the round, the aggregate of the mean does not)::

    >>> import numpy as np
    >>> from tff_residual.kernels import method_table
    >>> x = [np.array([[0.], [1.], [2.], [100.]], np.float32)]
    >>> out = method_table.resolve("bucketing+mean", bucket_size=2).run(x, None)
    >>> out.aggregate[0].numpy().tolist(), sorted(out.extra["bucket"].numpy().tolist())
    ([25.75], [0.0, 0.0, 1.0, 1.0])
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Sequence

import tensorflow as tf

from tff_residual.kernels import clients
from tff_residual.kernels import wrapping
from tff_residual.kernels.method_config import MethodConfig, check_int, hyper

STATE_NAMES = ("bucketing_round",)


@dataclasses.dataclass(frozen=True, kw_only=True)
class BucketingConfig(MethodConfig):
  """Hyper-parameters of the bucketing (the inner method has its own config)."""

  bucket_size: int = hyper(2, "bucketing: s, the clients averaged per bucket", flag=True)
  seed: int = hyper(0, "bucketing: the seed of the shuffles (with the round number)")

  def __post_init__(self):
    super().__post_init__()
    check_int("bucket_size", self.bucket_size, 1)
    check_int("seed", self.seed, 0)

  def minimum_clients(self, inner_minimum: int = 1) -> int:
    """The fewest clients whose buckets give the inner method ``inner_minimum`` inputs."""
    return self.bucket_size * (inner_minimum - 1) + 1


def initial_state() -> dict:
  return {"bucketing_round": tf.constant(0, tf.int64)}


def buckets(num_clients: tf.Tensor, bucket_size: int, seed: int, round_index: tf.Tensor
            ) -> tf.Tensor:
  """int32 [K]: client k's bucket, ``(position of k in pi) // bucket_size``."""
  keys = tf.random.stateless_uniform([num_clients], tf.stack(
      [tf.constant(seed, tf.int64), tf.cast(round_index, tf.int64)]))
  permutation = tf.argsort(keys, stable=True)
  positions = tf.math.invert_permutation(permutation)
  return positions // bucket_size


def bucketing(values: Sequence[tf.Tensor], sample_weights: tf.Tensor | None,
              config: BucketingConfig, inner: Callable,
              inner_per_client_extras: Sequence[str] = (),
              inner_scalar_extras: Sequence[tuple[str, tf.DType]] = (),
              bucketing_round: tf.Tensor | int | None = None, **inner_state
              ) -> clients.KernelOutput:
  """``inner`` on the bucket means of the finite clients. ``bucketing_round``
  (default 0) seeds the shuffle with ``config.seed``; ``KernelOutput.state``
  holds the next round's."""
  round_index = tf.constant(0, tf.int64) if bucketing_round is None else tf.cast(
      bucketing_round, tf.int64)

  def transform(v, w):
    num_clients = tf.shape(v[0])[0]
    bucket = buckets(num_clients, config.bucket_size, config.seed, round_index)
    num_buckets = (num_clients + config.bucket_size - 1) // config.bucket_size
    members = tf.one_hot(bucket, num_buckets, dtype=tf.float64)  # [K, B]
    mass = members if w is None else members * tf.cast(w, tf.float64)[:, None]
    totals = tf.reduce_sum(mass, axis=0)
    averaging = mass / tf.where(totals > 0, totals, 1.0)  # column b: bucket b's mean
    means = [tf.matmul(tf.cast(averaging, m.dtype), m, transpose_a=True) for m in v]
    inner_weights = None if w is None else tf.cast(totals, w.dtype)

    def client_weights(p):
      return tf.linalg.matvec(averaging, p)

    def own_extras(p):
      return collections.OrderedDict(bucket=tf.cast(bucket, tf.float64),
                                     bucket_weights=tf.gather(p, bucket))

    return wrapping.Transform(means, inner_weights, client_weights,
                              lambda x: tf.gather(x, bucket), own_extras)

  output = wrapping.run_wrapped(transform, values, sample_weights, inner,
                                inner_per_client_extras, inner_scalar_extras,
                                ("bucket", "bucket_weights"), inner_state)
  state = collections.OrderedDict(output.state)
  state["bucketing_round"] = round_index + 1
  return output._replace(state=state)
