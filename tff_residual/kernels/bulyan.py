"""Bulyan (El Mhamdi, Guerraoui, Rouault, "The Hidden Vulnerability of Distributed
Learning in Byzantium", ICML 2018).

With f = ``num_byzantine`` and K >= 4f + 3 clients:

1. Selection: theta = K - 2f clients, by Krum applied again and again, each
   time to the clients not yet selected (a set of n clients scores each of
   them over its max(1, n - f - 2) nearest others, at most the n - 1 there are;
   ties to the lower client index).
2. Aggregation, per coordinate: of the theta selected values, the
   beta = theta - 2f closest to their median are averaged (weighted by their
   sample weights under ``sample_weighting="multiply"``).

Distances are over the whole model, from one K x K Gram matrix; step 2 runs on
coordinate chunks under ``chunking.DEFAULT_MEMORY_BUDGET_BYTES``.

Example (f = 1, K = 7: Krum selects theta = 5 clients, then per coordinate the
beta = 3 values closest to their median are averaged)::

    >>> import numpy as np
    >>> from tff_residual.kernels import bulyan
    >>> x = [np.array([[0.], [0.1], [0.2], [0.3], [0.4], [0.5], [10.]], np.float32)]
    >>> out = bulyan.bulyan(x, None, bulyan.BulyanConfig(num_byzantine=1))
    >>> out.extra["selected"].numpy().tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    >>> round(float(out.aggregate[0][0]), 3), [round(float(w), 3) for w in out.client_weights]
    (0.2, [0.0, 0.333, 0.333, 0.333, 0.0, 0.0, 0.0])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import tensorflow as tf

from tff_residual.kernels import chunking
from tff_residual.kernels import clients
from tff_residual.kernels import distances
from tff_residual.kernels.method_config import ByzantineConfig

PER_CLIENT_EXTRAS = ("selected",)


@dataclasses.dataclass(frozen=True, kw_only=True)
class BulyanConfig(ByzantineConfig):
  """Hyper-parameters of Bulyan (``sample_weighting="multiply"``: the beta
  values' mean is weighted by their clients' sample weights)."""

  def minimum_clients(self) -> int:
    return 4 * self.num_byzantine + 3


def iterated_krum(squared: tf.Tensor, num_byzantine: int, num_selected) -> tf.Tensor:
  """int32 [num_selected]: clients chosen one at a time by Krum over the clients
  not yet chosen (``squared``: [K, K] squared distances)."""
  num_clients = tf.shape(squared)[0]
  infinity = tf.constant(float("inf"), tf.float64)
  positions = tf.range(num_clients)

  def body(step, remaining, chosen):
    left = tf.reduce_sum(tf.cast(remaining, tf.int32))
    count = tf.minimum(tf.maximum(left - num_byzantine - 2, 1), left - 1)
    pair = tf.logical_and(remaining[:, None], remaining[None, :])
    scores = distances.neighbourhood_scores(tf.where(pair, squared, infinity), count)
    # The best among the remaining (a score may be +inf: never pick a chosen one).
    candidates = tf.cast(tf.where(remaining)[:, 0], tf.int32)
    best = candidates[distances.first_smallest(tf.gather(scores, candidates))]
    return (step + 1, tf.logical_and(remaining, tf.not_equal(positions, best)),
            chosen.write(step, best))

  _, _, chosen = tf.while_loop(
      lambda step, *_: step < num_selected, body,
      (tf.constant(0), tf.ones([num_clients], tf.bool),
       tf.TensorArray(tf.int32, size=num_selected)))
  return chosen.stack()


def bulyan(values: Sequence[tf.Tensor], sample_weights: tf.Tensor | None,
           config: BulyanConfig) -> clients.KernelOutput:
  """Bulyan aggregate of ``values`` (list of [K, n_t]).

  ``client_weights``: each client's weight in the aggregate averaged over the
  coordinates; ``corrected_fraction``: the share of its coordinates not among
  the averaged beta (1 for clients not selected); ``extra``: ``selected`` (1
  for the theta clients of step 1).
  """
  weights = config.used_weights(sample_weights)
  rule = (f"bulyan needs K >= 4f + 3 = {config.minimum_clients()} clients for num_byzantine "
          f"f = {config.num_byzantine}")
  f = config.num_byzantine

  def valid(v, w, _):
    num_clients = tf.shape(v[0])[0]
    with tf.control_dependencies(distances.require_clients(num_clients,
                                                           config.minimum_clients(), rule)):
      squared = distances.pairwise_squared_distances(v)
    num_selected = num_clients - 2 * f
    num_kept = num_selected - 2 * f
    chosen = iterated_krum(squared, f, num_selected)
    chosen_weights = (tf.ones([num_selected], tf.float64) if w is None
                      else tf.cast(tf.gather(w, chosen), tf.float64))

    def chunk_fn(chunk):  # [c, theta]: the selected values of c coordinates
      ordered = tf.sort(chunk, axis=1)
      # Halves first: the sum of two huge values of one sign would overflow.
      middle = 0.5 * ordered[:, (num_selected - 1) // 2] + 0.5 * ordered[:, num_selected // 2]
      _, nearest = tf.math.top_k(-tf.abs(chunk - middle[:, None]), k=num_kept)
      used = tf.reduce_sum(tf.one_hot(nearest, num_selected, dtype=tf.float64), axis=1)
      share = used * chosen_weights[None, :]
      share = share / tf.reduce_sum(share, axis=1, keepdims=True)
      aggregate = tf.reduce_sum(tf.cast(share, chunk.dtype) * chunk, axis=1)
      return [aggregate], [tf.reduce_sum(share, axis=0), tf.reduce_sum(used, axis=0)]

    per_tensor, (share_sums, used_sums), num_coordinates = chunking.map_model_chunks(
        [tf.gather(m, chosen) for m in v], chunk_fn,
        lambda k, itemsize: k * (4 * itemsize + 24), 1, 2,
        chunking.DEFAULT_MEMORY_BUDGET_BYTES)
    scatter = lambda x: tf.scatter_nd(chosen[:, None], x, [num_clients])
    return clients.ValidOutput(
        [aggregate for (aggregate,) in per_tensor], scatter(share_sums) / num_coordinates,
        1.0 - scatter(used_sums) / num_coordinates,
        per_client={"selected": scatter(tf.ones([num_selected], tf.float64))})

  return clients.run_on_finite_clients(valid, values, weights,
                                       per_client_extras=PER_CLIENT_EXTRAS)
