"""Coordinate-wise median (Yin et al., 2018; the authors' ``simple_median``).

    aggregate_n = med_k y_nk
(for even K the mean of the two middle values). Dropped clients (NaN/Inf) do
not take part.

Example (client 1 sends 5)::

    >>> import numpy as np
    >>> from tff_residual.kernels import coordinate_median
    >>> out = coordinate_median.coordinate_median([np.array([[1.], [5.], [2.]], np.float32)])
    >>> out.aggregate[0].numpy().tolist(), [round(float(w), 3) for w in out.client_weights]
    ([2.0], [0.0, 0.0, 1.0])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import tensorflow as tf

from tff_residual.kernels import clients
from tff_residual.kernels import l_estimator


@dataclasses.dataclass(frozen=True, kw_only=True)
class CoordinateMedianConfig(l_estimator.LEstimatorConfig):
  """Hyper-parameters of the coordinate-wise median."""


def coordinate_median(values: Sequence[tf.Tensor], sample_weights: tf.Tensor | None = None,
                      config: CoordinateMedianConfig = CoordinateMedianConfig()
                      ) -> clients.KernelOutput:
  """Coordinate-wise median of ``values`` (list of [K, n_t])."""
  return l_estimator.l_estimate(values, sample_weights, config, l_estimator.median_position_weights)
