"""What the pre-aggregation wrappers share (``nnm+``, ``arc+``, ``bucketing+``):
each turns the K client models x into K' models y = T x (T a [K', K] matrix:
NNM's mixing, ARC's diagonal of clip factors, bucketing's bucket means), lets the
inner method aggregate the y, and reports what that means for the clients.

An inner result sum_b p_b y_b is sum_k (T'p)_k x_k, so the clients' weights are
q = T'p, normalised (they sum to 1 already where T's rows sum to 1). The inner
method's per-client measurements, one per y, are reported per client: for
client k, that of the y it went into (the identity where K' = K).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from typing import NamedTuple

import tensorflow as tf

from tff_residual.kernels import clients
from tff_residual.kernels import distances


class Transform(NamedTuple):
  """What a wrapper makes of the finite clients' models."""

  values: list
  """the inner method's inputs, [K', n_t] each"""
  sample_weights: tf.Tensor | None
  """their sample weights (None: the inner method ignores them)"""
  client_weights: Callable[[tf.Tensor], tf.Tensor]
  """p [K'] (the inner method's weights) -> q [K] (the clients', float64)"""
  to_clients: Callable[[tf.Tensor], tf.Tensor]
  """an inner per-y measurement [K'] -> one per client [K]"""
  own_extras: Callable[[tf.Tensor], dict] = lambda p: {}
  """p -> the wrapper's own per-client measurements [K]"""


def require_more_than_f(name: str, values: Sequence[tf.Tensor], config) -> list:
  """Control dependencies that stop wrapper ``name`` (told f = ``config.num_byzantine``)
  when fewer than f + 1 clients remain."""
  rule = (f"{name} needs K >= f + 1 = {config.num_byzantine + 1} clients for num_byzantine "
          f"f = {config.num_byzantine}")
  return distances.require_clients(tf.shape(values[0])[0], config.num_byzantine + 1, rule)


def run_wrapped(transform: Callable[[list, tf.Tensor | None], Transform],
                values: Sequence[tf.Tensor], sample_weights: tf.Tensor | None,
                inner: Callable, inner_per_client_extras: Sequence[str],
                inner_scalar_extras: Sequence[tuple[str, tf.DType]],
                own_per_client_extras: Sequence[str], inner_state: dict
                ) -> clients.KernelOutput:
  """``inner(transform(x).values, ...)`` on the finite clients, with the inner
  method's state (``inner_state``) passed in and its next state passed out.

  ``extra``: the inner method's per-client extras (per client), the wrapper's own
  (``own_per_client_extras``), then the inner method's scalars.
  """
  scalar_names = [name for name, _ in inner_scalar_extras]

  def valid(v, w, kept):
    t = transform(v, w)
    output = inner(t.values, t.sample_weights, **clients.state_of_kept(inner_state, kept))
    p = tf.cast(output.client_weights, tf.float64)
    per_client = collections.OrderedDict(
        (name, t.to_clients(output.extra[name])) for name in inner_per_client_extras)
    per_client.update(t.own_extras(p))
    return clients.ValidOutput(
        output.aggregate, t.client_weights(p),
        t.to_clients(output.corrected_fraction), per_client=per_client,
        scalars={name: output.extra[name] for name in scalar_names}, state=output.state)

  return clients.run_on_finite_clients(
      valid, values, sample_weights,
      per_client_extras=(*inner_per_client_extras, *own_per_client_extras),
      scalar_extras=inner_scalar_extras, state=inner_state)
