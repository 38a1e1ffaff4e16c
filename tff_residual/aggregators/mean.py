"""The mean as a factory of this package, and ``fedavg``'s factory (TFF's own)."""

from __future__ import annotations

import tensorflow_federated as tff

from tff_residual.aggregators.robust_factory import RobustAggregationFactory


class MeanAggregationFactory(RobustAggregationFactory):
  """The plain (or, with ``sample_weighting="multiply"``, sample-weighted) mean run
  as this package's kernel at the server: for a wrapper's inner (``nnm+mean``,
  ``bucketing+mean``) and for comparisons that need its measurements. Plain
  FedAvg is ``fedavg_factory`` (TFF's ``MeanFactory``, no gather).

  Args:
    sample_weighting: "ignore" (default, 1/K each) or "multiply" (the clients'
      sample-weight shares).

  State: ``()``. Measurements: ``client_weights`` (p), ``corrected_fraction`` (0),
  ``num_dropped_clients``.
  """

  METHOD = "mean"


def fedavg_factory(sample_weighting: str = "multiply") -> tff.aggregators.MeanFactory:
  """``fedavg``: TFF's ``MeanFactory``, weighted by the weights the process is given
  (in ``run.py``, ``--client_weighting``); the eager API's ``fedavg`` is the same
  sample-weighted mean (``sample_weighting`` is fixed to "multiply" by the name)."""
  if sample_weighting != "multiply":
    raise ValueError("fedavg is the sample-weighted mean; for the unweighted one use 'mean'.")
  return tff.aggregators.MeanFactory()
