"""The TFF factory that every robust aggregator of this package shares.

``RobustAggregationFactory(method, **params)`` is both a
``tff.aggregators.WeightedAggregationFactory`` (``create(value_type,
weight_type)``) and an ``UnweightedAggregationFactory`` (``create(value_type)``),
so it plugs into ``build_weighted_fed_avg`` and ``build_unweighted_fed_avg``
alike. The process is stateless (state ``()``); ``next`` gathers all client
values at the server and runs the method's kernel there. A model of two or more
tensors of one dtype travels as one vector per client (``gather.gather_flat``):
the server gets one ``[K, N]`` matrix, which a coordinatewise kernel
(``registry.Method.coordinatewise``) takes whole and FoolsGold as one matrix per
tensor. Against gathering the 62 tensors of ResNet-18 one by one (K = 10,
weighted, throwaway A/B script, one run each, BENCHMARKS.md): creating the
process 44.27 s -> 7.53 s, its first call 63.18 s -> 27.32 s, later calls
19.75 s -> 19.43 s (median of 3).

Measurements (an ``OrderedDict``, in the round's client order):
  client_weights:      float32 [K], each client's share of the aggregate,
                       sums to 1, 0 for dropped clients.
  corrected_fraction:  float32 [K], share of the client's coordinates not used
                       as sent (replaced by the line / trimmed away).
  num_dropped_clients: int32, clients dropped for NaN/Inf values.
"""

from __future__ import annotations

import collections

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tensorflow_federated.python.common_libs import structure

from tff_residual.aggregators import gather as gather_lib
from tff_residual.kernels import registry


def check_value_type(value_type: tff.types.Type) -> None:
  """TypeError/ValueError unless ``value_type`` is a structure of float tensors of known shape."""
  if not tff.types.is_structure_of_tensors(value_type):
    raise TypeError(f"value_type must be a tensor or a structure of tensors, got {value_type}.")
  if not tff.types.is_structure_of_floats(value_type):
    raise TypeError(f"value_type must contain only float tensors, got {value_type}.")
  leaves = structure.flatten(value_type)
  if not leaves:
    raise ValueError("value_type holds no tensors.")
  for leaf in leaves:
    if not tff.types.is_shape_fully_defined(leaf.shape):
      raise ValueError(f"every tensor shape must be fully defined, got {leaf}.")


def pack_as(value_type: tff.types.Type, leaves: list):
  """``leaves`` (in ``structure.flatten`` order) as a value of ``value_type``, in its
  Python containers (``tff.learning`` checks that the result keeps them)."""
  remaining = iter(leaves)
  return tff.types.structure_from_tensor_type_tree(lambda _: next(remaining), value_type)


def kernel_gets_one_matrix(method: str, value_type: tff.types.Type) -> bool:
  """Whether the factory hands ``method``'s kernel the model as one [K, N] matrix:
  the model travels as one vector (``gather.flat_type``) and the kernel is
  coordinatewise (``registry.Method.coordinatewise``)."""
  return (gather_lib.flat_type(value_type) is not None
          and registry.METHODS[method].coordinatewise)


class RobustAggregationFactory(tff.aggregators.WeightedAggregationFactory,
                               tff.aggregators.UnweightedAggregationFactory):
  """A stateless aggregation process running ``method``'s kernel at the server."""

  def __init__(self, method: str, **params):
    # Builds (and so validates) the kernel now: bad parameters fail here.
    self._kernel = registry.build_kernel(method, **params)
    self._method = method
    self._params = dict(params)

  @property
  def method(self) -> str:
    return self._method

  @property
  def params(self) -> dict:
    return dict(self._params)

  @property
  def kernel(self) -> registry.Kernel:
    """The kernel the server runs, ``kernel(values, sample_weights)`` on a list of
    ``[K, n_t]`` tensors (``tff_residual.kernels.registry``); usable eagerly too."""
    return self._kernel

  def __repr__(self) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
    return f"{type(self).__name__}({args})"

  def create(self, value_type, weight_type=None) -> tff.templates.AggregationProcess:
    value_type = tff.types.to_type(value_type)
    check_value_type(value_type)
    weighted = weight_type is not None
    if weighted:
      weight_type = tff.types.to_type(weight_type)
      if not (isinstance(weight_type, tff.TensorType) and np.issubdtype(weight_type.dtype, np.floating)
              and tuple(weight_type.shape) == ()):
        raise TypeError(f"weight_type must be a float scalar, got {weight_type}.")
    kernel = self._kernel
    one_matrix = kernel_gets_one_matrix(self._method, value_type)
    leaf_types = structure.flatten(value_type)
    sizes = gather_lib.leaf_sizes(value_type)
    # Two or more tensors of one dtype travel as one vector per client (gather_flat);
    # a single tensor, or tensors of mixed dtypes, are stacked tensor by tensor.
    vector_type = gather_lib.flat_type(value_type)
    if vector_type is None:
      stacked_value_type = gather_lib.stacked_type(value_type)
    else:
      stacked_value_type = tff.TensorType(vector_type.dtype, [None, vector_type.shape[0]])

    def kernel_inputs(stack) -> list:
      """The kernel's [K, n] matrices: the [K, N] stack whole for a coordinatewise
      kernel, else one per tensor."""
      if vector_type is None:
        leaves = gather_lib.flatten(stack)
        num_clients = tf.shape(leaves[0])[0]
        return [tf.reshape(leaf, [num_clients, -1]) for leaf in leaves]
      return [stack] if one_matrix else tf.split(stack, sizes, axis=1)

    def run_kernel(stack, weights):
      output = kernel(kernel_inputs(stack), weights)
      aggregate = output.aggregate
      if one_matrix:
        aggregate = tf.split(aggregate[0], sizes)
      result = [tf.reshape(a, leaf.shape) for a, leaf in zip(aggregate, leaf_types)]
      measurements = collections.OrderedDict(
          client_weights=tf.cast(output.client_weights, tf.float32),
          corrected_fraction=tf.cast(output.corrected_fraction, tf.float32),
          num_dropped_clients=tf.cast(output.num_dropped_clients, tf.int32))
      return pack_as(value_type, result), measurements

    if weighted:
      @tff.tensorflow.computation(stacked_value_type, tff.TensorType(weight_type.dtype, [None]))
      def server_aggregate(stack, weights):
        return run_kernel(stack, weights)
    else:
      @tff.tensorflow.computation(stacked_value_type)
      def server_aggregate(stack):
        return run_kernel(stack, None)

    @tff.federated_computation()
    def init_fn():
      return tff.federated_value((), tff.SERVER)

    def next_body(state, value, weight):
      # Client computation: none, or each client's tensors concatenated into one vector.
      # Gather: all client values (and weights) at the server, in client order.
      stack = (gather_lib.gather(value, value_type) if vector_type is None
               else gather_lib.gather_flat(value, value_type))
      # Server computation: the robust kernel over the whole model at once.
      if weight is None:
        output = tff.federated_map(server_aggregate, stack)
      else:
        weights = gather_lib.gather(weight, weight_type)
        output = tff.federated_map(server_aggregate, (stack, weights))
      # Output preparation.
      return tff.templates.MeasuredProcessOutput(
          state=state, result=output[0], measurements=output[1])

    state_type = tff.FederatedType((), tff.SERVER)
    if weighted:
      @tff.federated_computation(state_type, tff.FederatedType(value_type, tff.CLIENTS),
                                 tff.FederatedType(weight_type, tff.CLIENTS))
      def next_fn(state, value, weight):
        return next_body(state, value, weight)
    else:
      @tff.federated_computation(state_type, tff.FederatedType(value_type, tff.CLIENTS))
      def next_fn(state, value):
        return next_body(state, value, None)

    return tff.templates.AggregationProcess(init_fn, next_fn)
