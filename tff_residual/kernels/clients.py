"""What every kernel shares: the output record, finite-client filtering, and
optional multiplication of sample weights into the robust weights."""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from typing import NamedTuple

import tensorflow as tf


class KernelOutput(NamedTuple):
  """Result of one aggregation over K clients.

  Attributes:
    aggregate: one ``[n_t]`` tensor per input ``[K, n_t]`` tensor.
    client_weights: float32 ``[K]``; each client's share of the aggregate, in
      client order, summing to 1 (all zeros if every client was dropped). For
      model-level weights (residual reweighting, mean, FoolsGold) this is the
      weight of the client's model; for coordinate-wise estimators it is the
      client's weight in the aggregate averaged over all coordinates.
    corrected_fraction: float32 ``[K]``; the share of each client's coordinates
      whose value was not used as sent (replaced by the regression line for
      residual reweighting; discarded by median / trimmed mean; 0 otherwise).
    num_dropped_clients: int32 scalar; clients dropped for NaN/Inf values (or
      a non-finite / negative sample weight when sample weights are used).
    extra: what is particular to the method, an ``OrderedDict`` of float32
      ``[K]`` tensors in client order (0 for dropped clients; e.g. Krum's
      ``krum_scores``) and scalars (e.g. the geometric median's int32
      ``num_iterations``).
    state: a stateful method's next state, by name (``method_table.Method.state_names``:
      centered clipping's ``center``, FoolsGold's ``history``, bucketing's
      ``bucketing_round``); empty for a stateless one.
  """

  aggregate: list
  client_weights: tf.Tensor
  corrected_fraction: tf.Tensor
  num_dropped_clients: tf.Tensor
  extra: collections.OrderedDict = collections.OrderedDict()
  state: collections.OrderedDict = collections.OrderedDict()


class ValidOutput(NamedTuple):
  """What a kernel computes on the finite clients only (K_valid of them)."""

  aggregate: list
  client_weights: tf.Tensor
  corrected_fraction: tf.Tensor
  per_client: dict = {}
  """float [K_valid] tensors named by ``per_client_extras``."""
  scalars: dict = {}
  """scalars named by ``scalar_extras``."""
  state: dict = {}
  """the next state, for the entries ``run_on_finite_clients`` was given."""


PER_CLIENT_STATE = ("client_ids",)
"""State entries with one row per client of the round (FoolsGold's ids): a kernel
that runs on the finite clients only sees their rows (``state_of_kept``)."""


def state_of_kept(state: dict, kept: tf.Tensor) -> dict:
  """``state`` as a kernel on the clients ``kept`` (indices into the round's K) sees it."""
  return {name: tf.gather(value, kept) if name in PER_CLIENT_STATE else value
          for name, value in state.items()}


def finite_client_mask(values: Sequence[tf.Tensor]) -> tf.Tensor:
  """bool [K]: True for clients whose values are all finite, in every tensor."""
  mask = None
  for matrix in values:
    finite = tf.reduce_all(tf.math.is_finite(matrix), axis=1)
    mask = finite if mask is None else tf.logical_and(mask, finite)
  return mask


def normalize_weights(weights: tf.Tensor) -> tf.Tensor:
  """weights / sum(weights); uniform if the sum is not positive and finite (sample
  weights reach the kernels divided by their largest, ``usable_sample_weights``, so
  their products with weights <= 1 cannot overflow the sum)."""
  total = tf.reduce_sum(weights)
  uniform = tf.ones_like(weights) / tf.cast(tf.size(weights), weights.dtype)
  ok = tf.logical_and(total > 0, tf.math.is_finite(total))
  return tf.where(ok, weights / tf.where(ok, total, tf.ones_like(total)), uniform)


def apply_sample_weights(weights: tf.Tensor, sample_weights: tf.Tensor | None) -> tf.Tensor:
  """"multiply" sample weighting: weights * sample_weights, renormalised
  (``weights`` unchanged when ``sample_weights`` is None)."""
  if sample_weights is None:
    return weights
  return normalize_weights(weights * tf.cast(sample_weights, weights.dtype))


def usable_sample_weights(sample_weights: tf.Tensor) -> tf.Tensor:
  """The finite, non-negative sample weights of the kept clients, divided by their
  largest (every method uses them only up to scale, and 1e308 + 1e308 overflows);
  all 1 where every one is 0 (the stated fallback: weights that say nothing are
  ignored, as under ``sample_weighting="ignore"``)."""
  largest = tf.reduce_max(sample_weights)
  return tf.where(largest > 0, sample_weights / tf.where(largest > 0, largest, 1.0),
                  tf.ones_like(sample_weights))


def run_on_finite_clients(
    valid_kernel: Callable[[list, tf.Tensor | None, tf.Tensor], ValidOutput],
    values: Sequence[tf.Tensor],
    sample_weights: tf.Tensor | None = None,
    per_client_extras: Sequence[str] = (),
    scalar_extras: Sequence[tuple[str, tf.DType]] = (),
    state: dict | None = None,
) -> KernelOutput:
  """Drops clients with non-finite values, runs ``valid_kernel`` on the rest.

  A dropped client gets weight 0 and never touches the result. If every client
  is dropped the aggregate is all zeros (for a model delta: no change to the
  model) and ``client_weights`` is all zeros.

  ``valid_kernel(values, sample_weights, kept)`` gets the finite clients'
  values, their sample weights (or None) and their indices ``kept`` [K_valid]
  among the K clients. Where ``sample_weights`` (float [K]) are given, the kept
  clients' sample weights reach ``valid_kernel`` divided by their
  largest, or all 1 where every one is 0 (``usable_sample_weights``); a sample
  weight of +inf, -inf, NaN or below 0 drops its client, and when every client
  is dropped the aggregate is zeros (``num_dropped_clients`` says so): a broken
  client never stops the server.
  ``per_client_extras`` (names) and ``scalar_extras`` ((name, dtype) pairs)
  name the entries of the valid kernel's ``per_client`` and ``scalars`` that go
  into ``KernelOutput.extra`` (per-client ones scattered to [K]; zeros where
  nobody is left). ``state`` (a dict of tensors or lists of tensors): the entries
  the valid kernel may update (its ``ValidOutput.state``); where nobody is left,
  or the valid kernel leaves an entry out, the entry is returned unchanged.
  """
  values = [tf.convert_to_tensor(v) for v in values]
  state = dict(state or {})
  num_clients = tf.shape(values[0])[0]
  mask = finite_client_mask(values)
  if sample_weights is not None:
    sample_weights = tf.convert_to_tensor(sample_weights)
    mask = tf.logical_and(mask, tf.math.is_finite(sample_weights))
    mask = tf.logical_and(mask, sample_weights >= 0)
  kept = tf.cast(tf.where(mask)[:, 0], tf.int32)
  num_kept = tf.size(kept)
  num_dropped = num_clients - num_kept
  if sample_weights is not None:
    sample_weights = usable_sample_weights(tf.gather(sample_weights, kept))

  def run_kernel():
    everyone = tf.equal(num_kept, num_clients)
    # Gathering copies the inputs, so only do it when someone was dropped.
    subset = [
        tf.cond(everyone, lambda v=v: v, lambda v=v: tf.gather(v, kept))
        for v in values
    ]
    out = valid_kernel(subset, sample_weights, kept)
    scatter = lambda x: tf.scatter_nd(kept[:, None], tf.cast(x, tf.float32), [num_clients])
    return (list(out.aggregate), scatter(out.client_weights),
            scatter(out.corrected_fraction),
            [scatter(out.per_client[name]) for name in per_client_extras],
            [tf.cast(out.scalars[name], dtype) for name, dtype in scalar_extras],
            {name: out.state.get(name, value) for name, value in state.items()})

  def nobody():
    return ([tf.zeros(tf.shape(v)[1:], v.dtype) for v in values],
            tf.zeros([num_clients], tf.float32), tf.zeros([num_clients], tf.float32),
            [tf.zeros([num_clients], tf.float32) for _ in per_client_extras],
            [tf.zeros([], dtype) for _, dtype in scalar_extras],
            dict(state))

  aggregate, client_weights, corrected, per_client, scalars, new_state = tf.cond(
      num_kept > 0, run_kernel, nobody)
  extra = collections.OrderedDict(zip(per_client_extras, per_client))
  extra.update(zip([name for name, _ in scalar_extras], scalars))
  return KernelOutput(list(aggregate), client_weights, corrected,
                      tf.cast(num_dropped, tf.int32), extra,
                      collections.OrderedDict((name, new_state[name]) for name in state))
