"""Coordinate-wise repeated median (Siegel, 1982), the paper's baseline.

For each coordinate the repeated-median line through (rank, sorted value) is
evaluated at the central rank (K-1)/2:

* ``variant="reference"`` (default; the authors' ``Repeated_Median_Shard``):
  b0 = med(y) - b1 (K-1)/2, so b0 + b1 (K-1)/2 = med(y): exactly the coordinate
  median (docs/reference_differences.md §2). Client weights and discarded shares are the
  median's.
* ``variant="paper"``: slope by eq. 1 and intercept by eq. 2, so the result is
  b0 + b1 (K-1)/2 with the paper's intercept, which differs from the median.
  This estimate is not a weighted sum of client values, so ``client_weights``
  reports the uniform 1/K and ``corrected_fraction`` 0; sample weights cannot be
  multiplied in (ValueError).

Example (the reference variant is the coordinate median; the paper's eq. 2 line,
evaluated at the central rank, gives every client the same weight)::

    >>> import numpy as np
    >>> from tff_residual.kernels import repeated_median as rm
    >>> x = [np.array([[1.], [2.], [3.], [4.], [100.]], np.float32)]
    >>> out = rm.repeated_median(x)
    >>> out.aggregate[0].numpy().tolist(), [round(float(w), 3) for w in out.client_weights]
    ([3.0], [0.0, 0.0, 1.0, 0.0, 0.0])
    >>> out = rm.repeated_median(x, None, rm.RepeatedMedianConfig(variant="paper"))
    >>> out.aggregate[0].numpy().tolist(), [round(float(w), 3) for w in out.client_weights]
    ([3.0], [0.2, 0.2, 0.2, 0.2, 0.2])
"""

from __future__ import annotations

from collections.abc import Sequence

import dataclasses

import tensorflow as tf

from tff_residual.kernels import chunking
from tff_residual.kernels import clients
from tff_residual.kernels import coordinate_median as median_kernel
from tff_residual.kernels.residual import reweighting as rr
from tff_residual.kernels.method_config import check_choice, hyper
from tff_residual.kernels.order_statistics import sort_with_ranks

VARIANTS = ("reference", "paper")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RepeatedMedianConfig(chunking.ChunkedConfig):
  """Hyper-parameters of the coordinate-wise repeated median."""

  variant: str = hyper("reference", "reference (the authors' code: the coordinate median) or "
                                    "paper (eq. 2's intercept)")

  def __post_init__(self):
    super().__post_init__()
    check_choice("variant", self.variant, VARIANTS)
    if self.variant == "paper" and self.sample_weighting == "multiply":
      raise ValueError("repeated_median(variant='paper') is not a weighted sum of client "
                       "values; sample_weighting='multiply' is not supported.")


def _paper_valid(values, chunk_size, memory_budget_bytes):
  config = rr.ResidualReweightingConfig(variant="paper")
  num_clients = tf.shape(values[0])[0]

  def chunk_fn(chunk):
    sorted_values, _, _ = sort_with_ranks(chunk)
    def center_of_line():
      line = rr.fit_line(sorted_values, config)
      return 0.5 * (line[:, 0] + line[:, -1])  # the line at rank (K-1)/2
    center = tf.cond(tf.shape(chunk)[1] >= 2, center_of_line, lambda: sorted_values[:, 0])
    return [center], []

  per_tensor, _, _ = chunking.map_model_chunks(
      values, chunk_fn, rr.bytes_per_coordinate(config), 1, 0, memory_budget_bytes, chunk_size)
  uniform = tf.ones([num_clients], tf.float64) / tf.cast(num_clients, tf.float64)
  return clients.ValidOutput([center for (center,) in per_tensor], uniform,
                             tf.zeros([num_clients], tf.float64))


def repeated_median(values: Sequence[tf.Tensor], sample_weights: tf.Tensor | None = None,
                    config: RepeatedMedianConfig = RepeatedMedianConfig(),
                    ) -> clients.KernelOutput:
  """Coordinate-wise repeated median of ``values`` (list of [K, n_t])."""
  if config.variant == "reference":
    return median_kernel.coordinate_median(values, sample_weights, median_kernel.CoordinateMedianConfig(
        sample_weighting=config.sample_weighting, chunk_size=config.chunk_size,
        memory_budget_bytes=config.memory_budget_bytes))
  return clients.run_on_finite_clients(
      lambda v, w, _: _paper_valid(v, config.chunk_size, config.memory_budget_bytes), values)
