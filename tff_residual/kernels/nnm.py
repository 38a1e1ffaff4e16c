"""Nearest-neighbour mixing (Allouah, Farhadkhani, Guerraoui, Gupta, Pinot,
Stephan, "Fixing by Mixing: A Recipe for Optimal Byzantine ML under
Heterogeneity", AISTATS 2023), a pre-aggregation step around any method.

With f = ``num_byzantine``, each client model is replaced by the mean of its
K - f nearest client models (itself included; whole-model distances from one
K x K Gram matrix, ties to the lower index):

    y_i = sum_j M_ij x_j,   M_ij = 1 / (K - f) for the K - f nearest j of i

and the inner method aggregates the y_i (``wrapping.run_wrapped``). An inner result sum_i p_i y_i is
sum_j (M'p)_j x_j, so the clients' weights reported are q = M'p (they sum to 1
as M's rows do); the inner method's own weights are ``inner_client_weights``.

Example (f = 1, K = 4: each model is replaced by the mean of its 3 nearest, itself
included; the mean of the mixed models then gives the outlier a quarter of its
old weight, q = M'p)::

    >>> import numpy as np
    >>> from tff_residual.kernels import method_table
    >>> x = [np.array([[0.], [1.], [2.], [100.]], np.float32)]
    >>> out = method_table.resolve("nnm+mean", num_byzantine=1).run(x, None)
    >>> round(float(out.aggregate[0][0]), 3), [round(float(w), 3) for w in out.client_weights]
    (9.333, [0.25, 0.333, 0.333, 0.083])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import tensorflow as tf

from tff_residual.kernels import clients
from tff_residual.kernels import distances
from tff_residual.kernels import wrapping
from tff_residual.kernels.method_config import ByzantineConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class NNMConfig(ByzantineConfig):
  """Hyper-parameters of the mixing (the inner method has its own config)."""

  def minimum_clients(self) -> int:
    return self.num_byzantine + 1


def mixing_matrix(values: Sequence[tf.Tensor], num_byzantine: int) -> tf.Tensor:
  """float64 [K, K]: row i has 1 / (K - f) on the K - f nearest clients of i."""
  num_clients = tf.shape(values[0])[0]
  squared = distances.pairwise_squared_distances(values)
  count = num_clients - num_byzantine
  # A stable sort with the client itself first (distance 0, and -1 on the diagonal).
  keyed = tf.linalg.set_diag(squared, -tf.ones([num_clients], tf.float64))
  nearest = tf.argsort(keyed, axis=1, stable=True)[:, :count]
  rows = tf.reduce_sum(tf.one_hot(nearest, num_clients, dtype=tf.float64), axis=1)
  return rows / tf.cast(count, tf.float64)


def nnm(values: Sequence[tf.Tensor], sample_weights: tf.Tensor | None, config: NNMConfig,
        inner: Callable, inner_per_client_extras: Sequence[str] = (),
        inner_scalar_extras: Sequence[tuple[str, tf.DType]] = (),
        **inner_state) -> clients.KernelOutput:
  """``inner`` (a kernel ``inner(values, sample_weights, **inner_state)``) on the
  mixed models of the finite clients (``wrapping.run_wrapped``).

  ``extra``: the inner method's extras, then ``inner_client_weights`` (p).
  The sample weights go to the inner kernel unchanged.
  """

  def transform(v, w):
    with tf.control_dependencies(wrapping.require_more_than_f("nnm", v, config)):
      mixing = mixing_matrix(v, config.num_byzantine)
    mixed = [tf.matmul(tf.cast(mixing, m.dtype), m) for m in v]
    return wrapping.Transform(mixed, w, lambda p: tf.linalg.matvec(mixing, p, transpose_a=True),
                              lambda x: x, lambda p: {"inner_client_weights": p})

  return wrapping.run_wrapped(transform, values, sample_weights, inner,
                              inner_per_client_extras, inner_scalar_extras,
                              ("inner_client_weights",), inner_state)
