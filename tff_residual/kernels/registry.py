"""The one table that maps aggregation method names to kernels.

``build_kernel(method, **params)`` validates the hyper-parameters once and
returns ``kernel(values, sample_weights) -> KernelOutput``, a ``tf.function``
that the eager API and the TFF factories both call.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable

import tensorflow as tf

from tff_residual.kernels import clients
from tff_residual.kernels import coordinate_median
from tff_residual.kernels import foolsgold
from tff_residual.kernels import mean
from tff_residual.kernels import repeated_median
from tff_residual.kernels import trimmed_mean
from tff_residual.kernels.residual_reweighting import (ResidualReweightingConfig,
                                                       residual_reweighting)

Kernel = Callable[[list, "tf.Tensor | None"], clients.KernelOutput]


def _compiled(kernel, relax_shapes: bool = True) -> Kernel:
  """One graph per input signature; with ``relax_shapes`` shapes relax to unknown
  after the first retrace, so K and n may vary without more tracing."""
  return tf.function(kernel, reduce_retracing=relax_shapes, autograph=False)


def _residual(**params) -> Kernel:
  config = ResidualReweightingConfig(**params)
  # A static K selects the fast path (residual_fused), so keep shapes exact.
  return _compiled(lambda values, weights: residual_reweighting(values, weights, config),
                   relax_shapes=not config.has_fused_path)


def _keyword_kernel(function, check_params):
  """Builder for a kernel taking its hyper-parameters as keywords.

  Unknown keywords are a TypeError; values are checked by the kernel module's
  own ``check_params`` now, so bad input fails at construction, not at the
  first call.
  """
  allowed = list(inspect.signature(check_params).parameters)

  def build(**params) -> Kernel:
    for name in params:
      if name not in allowed:
        raise TypeError(f"Unknown parameter {name!r} for {function.__name__}; "
                        f"expected some of {allowed}.")
    check_params(**params)
    return _compiled(lambda values, weights: function(values, weights, **params))

  return build


@dataclasses.dataclass(frozen=True)
class Method:
  name: str
  build: Callable[..., Kernel]
  description: str
  coordinatewise: bool = True
  """Every coordinate of every tensor counts alike, so the kernel gives the same
  result on the model's ``[K, n_t]`` tensors as on their concatenation ``[K, N]``
  (up to the float64 summation order of per-client sums). FoolsGold is not: its
  similarity feature is one of the tensors."""


METHODS: dict[str, Method] = {
    m.name: m for m in (
        Method("residual", _residual,
               "residual-based reweighting (paper Algorithm 1)"),
        Method("median", _keyword_kernel(coordinate_median.coordinate_median,
                                         coordinate_median.check_params),
               "coordinate-wise median"),
        Method("trimmed_mean", _keyword_kernel(trimmed_mean.trimmed_mean,
                                               trimmed_mean.check_params),
               "coordinate-wise trimmed mean"),
        Method("repeated_median", _keyword_kernel(repeated_median.repeated_median,
                                                  repeated_median.check_params),
               "coordinate-wise repeated median"),
        Method("foolsgold", _keyword_kernel(foolsgold.foolsgold, foolsgold.check_params),
               "FoolsGold", coordinatewise=False),
        Method("mean", _keyword_kernel(mean.mean, mean.check_params),
               "plain (or sample-weighted) mean"),
    )
}


def build_kernel(method: str, **params) -> Kernel:
  """Validated kernel for ``method``; raises ValueError for an unknown name."""
  if not isinstance(method, str) or method not in METHODS:
    raise ValueError(f"Unknown method={method!r}; expected one of {sorted(METHODS)}.")
  return METHODS[method].build(**params)
