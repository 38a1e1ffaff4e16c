"""Krum and Multi-Krum (Blanchard, El Mhamdi, Guerraoui, Stainer, NeurIPS 2017).

With f = ``num_byzantine`` and K clients (K >= 2f + 3), client i's score is the
sum of its squared distances to its K - f - 2 nearest other clients:

    s_i = sum_{j in N_i} ||x_i - x_j||^2,   |N_i| = K - f - 2

Krum returns the client model of smallest score; Multi-Krum averages the m
(``num_selected``, default K - f) models of smallest score, weighted by their
sample weights under ``sample_weighting="multiply"``. Distances are over the
whole model, from one K x K Gram matrix (``distances``: overflow-safe, a
client too far for float64 scores +inf). Ties in the score go to the lower
client index.

Example (f = 1, K = 5: each score sums K - f - 2 = 2 squared distances; clients 1
and 2 tie at 0.02 and the lower index wins)::

    >>> import numpy as np
    >>> from tff_residual.kernels import krum
    >>> x = [np.array([[0.], [0.1], [0.2], [0.3], [10.]], np.float32)]
    >>> out = krum.krum(x, None, krum.KrumConfig(num_byzantine=1))
    >>> [round(float(s), 3) for s in out.extra["krum_scores"]]
    [0.05, 0.02, 0.02, 0.05, 190.13]
    >>> out.aggregate[0].numpy().tolist(), [round(float(w), 3) for w in out.client_weights]
    ([0.10000000149011612], [0.0, 1.0, 0.0, 0.0, 0.0])
    >>> out = krum.multi_krum(x, None, krum.MultiKrumConfig(num_byzantine=1))
    >>> [round(float(w), 3) for w in out.client_weights]
    [0.25, 0.25, 0.25, 0.25, 0.0]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import tensorflow as tf

from tff_residual.kernels import clients
from tff_residual.kernels import distances
from tff_residual.kernels.method_config import ByzantineConfig, check_int, hyper

PER_CLIENT_EXTRAS = ("krum_scores", "selected")


@dataclasses.dataclass(frozen=True, kw_only=True)
class KrumConfig(ByzantineConfig):
  """Hyper-parameters of Krum (``sample_weighting="multiply"``: the selected
  clients' weights are multiplied by their sample weights)."""

  def minimum_clients(self) -> int:
    return 2 * self.num_byzantine + 3


@dataclasses.dataclass(frozen=True, kw_only=True)
class MultiKrumConfig(KrumConfig):
  """Hyper-parameters of Multi-Krum."""

  num_selected: int | None = hyper(None, "multi_krum: m, the clients averaged (default "
                                         "K - f)", flag=True)

  def __post_init__(self):
    super().__post_init__()
    check_int("num_selected", self.num_selected, 1, allow_none=True)


def krum_scores(squared: tf.Tensor, num_byzantine: int) -> tf.Tensor:
  """float64 [K]: each client's sum of squared distances to its K - f - 2
  nearest other clients (``squared``: [K, K] with a zero diagonal; a distance
  beyond float64's range is +inf, and so is every score that sums it)."""
  return distances.neighbourhood_scores(squared, tf.shape(squared)[0] - num_byzantine - 2)


def rule_text(method: str, config: KrumConfig) -> str:
  return (f"{method} needs K >= 2f + 3 = {config.minimum_clients()} clients for "
          f"num_byzantine f = {config.num_byzantine}")


def select(values: Sequence[tf.Tensor], sample_weights: tf.Tensor | None, method: str,
           config: KrumConfig, num_selected) -> clients.ValidOutput:
  """The mean of the ``num_selected`` best-scored clients (a tensor or int)."""
  num_clients = tf.shape(values[0])[0]
  checks = distances.require_clients(num_clients, config.minimum_clients(),
                                     rule_text(method, config))
  if getattr(config, "num_selected", None) is not None:
    checks += distances.require_clients(
        num_clients, config.num_selected,
        f"{method} averages num_selected = {config.num_selected} clients, so needs K >= "
        f"{config.num_selected}")
  with tf.control_dependencies(checks):
    scores = krum_scores(distances.pairwise_squared_distances(values), config.num_byzantine)
  order = tf.argsort(scores, stable=True)
  chosen = tf.scatter_nd(order[:num_selected, None], tf.ones([num_selected], tf.float64),
                         [num_clients])
  weights = clients.apply_sample_weights(chosen / tf.reduce_sum(chosen), sample_weights)
  return clients.ValidOutput(distances.weighted_sum(values, weights), weights, 1.0 - chosen,
                             per_client={"krum_scores": scores, "selected": chosen})


def krum(values: Sequence[tf.Tensor], sample_weights: tf.Tensor | None,
         config: KrumConfig) -> clients.KernelOutput:
  """Krum over ``values`` (list of [K, n_t]): the best-scored client's model.

  ``client_weights`` is one-hot; ``corrected_fraction`` 1 for every other client;
  ``extra``: ``krum_scores`` and ``selected`` (1 for the chosen client).
  """
  weights = config.used_weights(sample_weights)
  return clients.run_on_finite_clients(
      lambda v, w, _: select(v, w, "krum", config, 1), values, weights,
      per_client_extras=PER_CLIENT_EXTRAS)


def multi_krum(values: Sequence[tf.Tensor], sample_weights: tf.Tensor | None,
               config: MultiKrumConfig) -> clients.KernelOutput:
  """Multi-Krum: the mean of the m best-scored clients' models (m = ``num_selected``,
  default K - f); ``client_weights`` 1/m on them (or their sample-weight shares)."""
  weights = config.used_weights(sample_weights)

  def valid(v, w, _):
    num_selected = config.num_selected
    if num_selected is None:
      num_selected = tf.shape(v[0])[0] - config.num_byzantine
    return select(v, w, "multi_krum", config, num_selected)

  return clients.run_on_finite_clients(valid, values, weights,
                                       per_client_extras=PER_CLIENT_EXTRAS)
