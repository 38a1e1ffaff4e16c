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
from tff_residual.kernels.coordinate_median import coordinate_median
from tff_residual.kernels.foolsgold import foolsgold
from tff_residual.kernels.mean import mean
from tff_residual.kernels.repeated_median import repeated_median
from tff_residual.kernels.residual_reweighting import (ResidualReweightingConfig,
                                                       residual_reweighting)
from tff_residual.kernels.trimmed_mean import check_beta, trimmed_mean

Kernel = Callable[[list, "tf.Tensor | None"], clients.KernelOutput]


def _compiled(kernel) -> Kernel:
  """One graph per input signature; shapes relax to unknown, so K and n may vary."""
  return tf.function(kernel, reduce_retracing=True)


def _residual(**params) -> Kernel:
  config = ResidualReweightingConfig(**params)
  return _compiled(lambda values, weights: residual_reweighting(values, weights, config))


def _keyword_kernel(function, validate=None):
  signature = inspect.signature(function)
  allowed = [name for name in signature.parameters if name not in ("values", "sample_weights",
                                                                  "history", "client_ids")]

  def build(**params) -> Kernel:
    for name in params:
      if name not in allowed:
        raise TypeError(f"Unknown parameter {name!r} for {function.__name__}; "
                        f"expected some of {allowed}.")
    if validate is not None:
      validate(**params)
    # A dry validation of enum-like parameters happens at the first call; do
    # the cheap checks now so that bad input fails at construction.
    mode = params.get("sample_weighting", "ignore")
    clients.check_sample_weighting(mode)
    return _compiled(lambda values, weights: function(values, weights, **params))

  return build


def _validate_trimmed(beta: float = 0.2, **_):
  check_beta(beta)


def _validate_repeated(variant: str = "reference", sample_weighting: str = "ignore", **_):
  if variant not in ("reference", "paper"):
    raise ValueError(f"Unknown variant={variant!r}; expected one of ('reference', 'paper').")
  if variant == "paper" and sample_weighting == "multiply":
    raise ValueError("repeated_median(variant='paper') does not support "
                     "sample_weighting='multiply'.")


def _validate_foolsgold(normalize: str = "clients", feature_index=-2, **_):
  if normalize not in ("clients", "weights"):
    raise ValueError(f"Unknown normalize={normalize!r}; expected one of ('clients', 'weights').")
  if feature_index is not None and (not isinstance(feature_index, int) or isinstance(feature_index, bool)):
    raise TypeError(f"feature_index must be an int or None, got {feature_index!r}.")


@dataclasses.dataclass(frozen=True)
class Method:
  name: str
  build: Callable[..., Kernel]
  description: str


METHODS: dict[str, Method] = {
    m.name: m for m in (
        Method("residual", _residual,
               "residual-based reweighting (paper Algorithm 1)"),
        Method("median", _keyword_kernel(coordinate_median), "coordinate-wise median"),
        Method("trimmed_mean", _keyword_kernel(trimmed_mean, _validate_trimmed),
               "coordinate-wise trimmed mean"),
        Method("repeated_median", _keyword_kernel(repeated_median, _validate_repeated),
               "coordinate-wise repeated median"),
        Method("foolsgold", _keyword_kernel(foolsgold, _validate_foolsgold), "FoolsGold"),
        Method("mean", _keyword_kernel(mean), "plain (or sample-weighted) mean"),
    )
}


def build_kernel(method: str, **params) -> Kernel:
  """Validated kernel for ``method``; raises ValueError for an unknown name."""
  if not isinstance(method, str) or method not in METHODS:
    raise ValueError(f"Unknown method={method!r}; expected one of {sorted(METHODS)}.")
  return METHODS[method].build(**params)
