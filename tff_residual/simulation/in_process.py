"""The round's aggregation in the Python process (``--aggregation=in_process``).

TFF 0.87's ``worker_binary`` is CPU-only, so a factory's aggregation always
runs on the worker's CPU, without XLA. ``InProcessAggregation`` runs the same
server step (``aggregators.robust_factory.ServerStep``: the method's kernel on
the stacked client values, with the state of a stateful method) eagerly in this
process, where TensorFlow places it: on the GPU when one is present, with the
kernels' XLA programs. Nothing travels to a worker. FedAvg (TFF's
``MeanFactory``) becomes sum_k w_k x_k / sum_k w_k, summed client by client in
float32 as TFF's worker does.

It has the two calls of a ``tff.templates.AggregationProcess`` that the round
loop uses, ``initialize()`` and ``next(state, values, weights)``, and returns
the same result and measurements as the factory's process (tested to 1e-6).
"""

from __future__ import annotations

import collections
from typing import NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tff_residual.aggregators import RobustAggregationFactory
from tff_residual.aggregators import gather as gather_lib
from tff_residual.aggregators.robust_factory import ServerStep


class Output(NamedTuple):
  """As ``tff.templates.MeasuredProcessOutput``."""

  state: object
  result: list
  measurements: collections.OrderedDict


class InProcessAggregation:
  """``factory``'s aggregation for clients' values of ``value_type``, run eagerly."""

  def __init__(self, factory, value_type, weighted: bool = True):
    self.value_type = tff.types.to_type(value_type)
    self.weighted = weighted
    self.leaf_types = tff.structure.flatten(self.value_type)
    if isinstance(factory, RobustAggregationFactory):
      self.step = ServerStep(factory.resolved, factory.kernel, self.value_type)
    elif isinstance(factory, tff.aggregators.MeanFactory):
      self.step = None  # FedAvg
    else:
      raise TypeError(f"in-process aggregation takes this package's factories and TFF's "
                      f"MeanFactory, not {type(factory).__name__}")

  def initialize(self):
    return () if self.step is None else self.step.initial_state()

  def _stack(self, values: list):
    """The stack the factory's gather builds: [K, N] of the concatenated tensors, or
    one [K, *shape] stack per tensor."""
    leaves = [gather_lib.flatten(v) for v in values]
    if self.step.vector_type is not None:
      return tf.constant(np.stack([np.concatenate([np.reshape(leaf, [-1]) for leaf in client])
                                   for client in leaves]))
    return [tf.constant(np.stack([client[t] for client in leaves]))
            for t in range(len(self.leaf_types))]

  def next(self, state, values: list, weights: list | None = None) -> Output:
    if self.step is None:
      return Output((), self._weighted_mean(values, weights), collections.OrderedDict())
    sample_weights = (tf.constant(np.asarray(weights, np.float32))
                      if self.weighted and weights is not None else None)
    result, measurements, new_state = self.step(self._stack(values), sample_weights, state)
    return Output(new_state, [np.asarray(r) for r in result],
                  collections.OrderedDict((k, np.asarray(v)) for k, v in measurements.items()))

  def _weighted_mean(self, values: list, weights: list | None) -> list:
    weights = [np.float32(1.0)] * len(values) if weights is None else weights
    leaves = [gather_lib.flatten(v) for v in values]
    mean = []
    for t, leaf_type in enumerate(self.leaf_types):
      total = np.zeros(leaf_type.shape, np.float32)
      for client, weight in zip(leaves, weights):  # in client order, as TFF's worker sums
        total = total + np.float32(weight) * np.asarray(client[t], np.float32)
      mean.append(total / np.float32(sum(np.float32(w) for w in weights)))
    return mean


class InProcessFactory:
  """A factory whose ``create`` returns an ``InProcessAggregation`` of ``factory``."""

  def __init__(self, factory):
    self.factory = factory

  def with_client_ids(self, state, client_ids):
    """As the factory's (``RobustAggregationFactory.with_client_ids``)."""
    set_ids = getattr(self.factory, "with_client_ids", None)
    return state if set_ids is None else set_ids(state, client_ids)

  def create(self, value_type, weight_type=None) -> InProcessAggregation:
    return InProcessAggregation(self.factory, value_type, weighted=weight_type is not None)
