"""Adaptive robust clipping, ARC (Allouah, Guerraoui, Gupta, Jellouli, Rizk,
Stephan, "The Vital Role of Gradient Clipping in Byzantine-Resilient Distributed
Learning", ICLR 2025; ByzFL's ``ARC``), a pre-aggregation step around any method.

With K clients and f = ``num_byzantine``, the k = floor(2 (f / K) (K - f))
largest-norm client models are clipped to the norm of the next one down:

    tau = ||x_(K-k)||   (the (K-k)-th smallest norm, 1-based)
    y_k = min(1, tau / ||x_k||) x_k

and the inner method aggregates the y_k (``wrapping.run_wrapped``). Norms are over
the whole model (``distances.center_norms``: float64, no overflow). A clipped
client's share of the aggregate is p_k c_k, normalised (c the clip factors);
``extra`` adds ``arc_clip_factors`` (c). With f = 0, or k = 0, nothing is clipped.
The sample weights go to the inner method unchanged.

Example (f = 1, K = 4: k = floor(2 (1/4) 3) = 1 model is clipped, to the norm of
the next one down, 5)::

    >>> import numpy as np
    >>> from tff_residual.kernels import method_table
    >>> x = [np.array([[3., 4.], [0., 1.], [1., 0.], [30., 40.]], np.float32)]
    >>> out = method_table.resolve("arc+mean", num_byzantine=1).run(x, None)
    >>> [round(float(c), 3) for c in out.extra["arc_clip_factors"]]
    [1.0, 1.0, 1.0, 0.1]
    >>> out.aggregate[0].numpy().tolist()
    [1.75, 2.25]
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
class ARCConfig(ByzantineConfig):
  """Hyper-parameters of the clipping (the inner method has its own config)."""

  def minimum_clients(self) -> int:
    return self.num_byzantine + 1


def clip_factors(norms: tf.Tensor, num_byzantine: int) -> tf.Tensor:
  """float64 [K]: min(1, tau / norm_k) with tau the (K - k)-th smallest norm,
  k = floor(2 f (K - f) / K)."""
  num_clients = tf.size(norms)
  f = tf.constant(num_byzantine, tf.int32)
  num_clipped = (2 * f * (num_clients - f)) // num_clients
  tau = tf.sort(norms)[num_clients - num_clipped - 1]
  return tf.where(norms > tau, tau / tf.where(norms > 0, norms, 1.0), tf.ones_like(norms))


def arc(values: Sequence[tf.Tensor], sample_weights: tf.Tensor | None, config: ARCConfig,
        inner: Callable, inner_per_client_extras: Sequence[str] = (),
        inner_scalar_extras: Sequence[tuple[str, tf.DType]] = (),
        **inner_state) -> clients.KernelOutput:
  """``inner`` on the clipped models of the finite clients; ``extra``: the inner
  method's extras, then ``arc_clip_factors``."""

  def transform(v, w):
    with tf.control_dependencies(wrapping.require_more_than_f("arc", v, config)):
      c = clip_factors(distances.center_norms(v, None), config.num_byzantine)
    clipped = [m * tf.cast(c, m.dtype)[:, None] for m in v]
    return wrapping.Transform(clipped, w, lambda p: clients.normalize_weights(p * c),
                              lambda x: x, lambda p: {"arc_clip_factors": c})

  return wrapping.run_wrapped(transform, values, sample_weights, inner,
                              inner_per_client_extras, inner_scalar_extras,
                              ("arc_clip_factors",), inner_state)
