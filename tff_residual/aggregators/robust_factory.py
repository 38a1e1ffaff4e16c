"""The TFF factory that every robust aggregator of this package shares.

``RobustAggregationFactory(method, **params)`` is both a
``tff.aggregators.WeightedAggregationFactory`` (``create(value_type,
weight_type)``) and an ``UnweightedAggregationFactory`` (``create(value_type)``),
so it plugs into ``build_weighted_fed_avg`` and ``build_unweighted_fed_avg``
alike. ``next`` gathers all client values at the server and runs the method's
kernel there. The state is ``()``, except for a stateful name: an
``OrderedDict`` of its entries (``method_table.Resolved.initial_state``: centered
clipping's ``center`` and ``has_center``, FoolsGold's ``history`` and
``client_ids``, bucketing's ``bucketing_round``), alone or inside wrappers.
A model of two or more
tensors of one dtype travels as one vector per client (``gather.gather_flat``):
the server gets one ``[K, N]`` matrix, which a coordinatewise kernel
(``method_table.Method.coordinatewise``) takes whole and FoolsGold as one matrix per
tensor: TFF builds, sends and runs far smaller graphs than for one gather per
tensor (BENCHMARKS.md, "Design measurements").

Measurements (an ``OrderedDict``, in the round's client order):
  client_weights:      float32 [K], each client's share of the aggregate,
                       sums to 1, 0 for dropped clients.
  corrected_fraction:  float32 [K], share of the client's coordinates not used
                       as sent (replaced by the line / trimmed away).
  num_dropped_clients: int32, clients dropped for NaN/Inf values.
  then the method's own entries (``KernelOutput.extra``), e.g. Krum's
  ``krum_scores`` and ``selected``.
"""

from __future__ import annotations

import collections
import dataclasses
import inspect

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff


from tff_residual.aggregators import gather as gather_lib
from tff_residual.kernels import foolsgold
from tff_residual.kernels import method_table


def check_value_type(value_type: tff.types.Type) -> None:
  """TypeError/ValueError unless ``value_type`` is a structure of float tensors of known shape."""
  if not tff.types.is_structure_of_tensors(value_type):
    raise TypeError(f"value_type must be a tensor or a structure of tensors, got {value_type}.")
  if not tff.types.is_structure_of_floats(value_type):
    raise TypeError(f"value_type must contain only float tensors, got {value_type}.")
  leaves = tff.structure.flatten(value_type)
  if not leaves:
    raise ValueError("value_type holds no tensors.")
  for leaf in leaves:
    if not tff.types.is_shape_fully_defined(leaf.shape):
      raise ValueError(f"every tensor shape must be fully defined, got {leaf}.")


def pack_as(value_type: tff.types.Type, leaves: list):
  """``leaves`` (in ``tff.structure.flatten`` order) as a value of ``value_type``, in its
  Python containers (``tff.learning`` checks that the result keeps them)."""
  remaining = iter(leaves)
  return tff.types.structure_from_tensor_type_tree(lambda _: next(remaining), value_type)


def kernel_gets_one_matrix(resolved: method_table.Resolved, value_type: tff.types.Type) -> bool:
  """Whether the factory hands the kernel the model as one [K, N] matrix: the
  model travels as one vector (``gather.flat_type``) and the kernel is
  coordinatewise (``method_table.Method.coordinatewise``)."""
  leaves = tff.structure.flatten(value_type)
  return (gather_lib.flat_type(value_type) is not None
          and method_table.takes_one_matrix(resolved, [leaf.dtype for leaf in leaves]))


def _signature_from_config(config_class, extra=()) -> inspect.Signature:
  """``(self, *extra, field=default, ...)``: a factory's constructor from its config."""
  parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *extra]
  for field in dataclasses.fields(config_class):
    default = inspect.Parameter.empty if field.default is dataclasses.MISSING else field.default
    parameters.append(inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY,
                                        default=default, annotation=field.type))
  return inspect.Signature(parameters)


def _like(new, old) -> tf.Tensor:
  """``new`` with ``old``'s dtype and (static, where known) shape."""
  old = tf.convert_to_tensor(old)
  new = tf.cast(new, old.dtype)
  return tf.reshape(new, old.shape) if old.shape.is_fully_defined() else new


class ServerStep:
  """The server's part of a round, in TF ops: the method's kernel on the stacked
  client values (a ``[K, N]`` matrix when the model travels as one vector, else
  one ``[K, *shape]`` stack per tensor), with the state of a stateful method.

  The factory runs it inside a TFF computation after the gather; the simulation's
  in-process aggregation (``simulation/in_process.py``) runs the same step
  eagerly on the same stack, so both paths compute one thing.
  """

  def __init__(self, resolved: method_table.Resolved, kernel: method_table.Kernel,
               value_type: tff.types.Type):
    self.resolved, self.kernel, self.value_type = resolved, kernel, value_type
    self.leaf_types = tff.structure.flatten(value_type)
    self.sizes = gather_lib.leaf_sizes(value_type)
    # Two or more tensors of one dtype travel as one vector per client (gather_flat);
    # a single tensor, or tensors of mixed dtypes, are stacked tensor by tensor.
    self.vector_type = gather_lib.flat_type(value_type)
    self.one_matrix = kernel_gets_one_matrix(resolved, value_type)
    if self.vector_type is None:
      self.stacked_value_type = gather_lib.stacked_type(value_type)
    else:
      self.stacked_value_type = tff.TensorType(self.vector_type.dtype,
                                               [None, self.vector_type.shape[0]])
    # The state of a stateful name, for the kernel's inputs (one [N] matrix, or one
    # [n_t] per tensor).
    if self.one_matrix:
      input_sizes, input_dtypes = [self.vector_type.shape[0]], [self.vector_type.dtype]
    else:
      input_sizes, input_dtypes = self.sizes, [leaf.dtype for leaf in self.leaf_types]
    self.input_sizes, self.input_dtypes = input_sizes, input_dtypes
    initial = resolved.initial_state(input_sizes, input_dtypes)
    self.state_type = (tff.types.to_type(collections.OrderedDict(
        (name, tf.nest.map_structure(lambda t: tff.TensorType(t.dtype.as_numpy_dtype, t.shape),
                                     value)) for name, value in initial.items()))
                       if resolved.stateful else tff.types.StructType([]))

  def initial_state(self):
    """The state before the first round (``()`` for a stateless name)."""
    if not self.resolved.stateful:
      return ()
    return self.resolved.initial_state(self.input_sizes, self.input_dtypes)

  def kernel_inputs(self, stack) -> list:
    """The kernel's [K, n] matrices: the [K, N] stack whole for a coordinatewise
    kernel, else one per tensor."""
    if self.vector_type is None:
      leaves = gather_lib.flatten(stack)
      num_clients = tf.shape(leaves[0])[0]
      return [tf.reshape(leaf, [num_clients, -1]) for leaf in leaves]
    return [stack] if self.one_matrix else tf.split(stack, self.sizes, axis=1)

  def __call__(self, stack, weights, state):
    """(result leaves in ``tff.structure.flatten`` order, measurements, new state)."""
    inputs = self.kernel_inputs(stack)
    if self.resolved.stateful:
      # An entry of several tensors (the centre, one per kernel input) as a list,
      # whether it arrives as a TFF Struct, a tuple or a list.
      state = collections.OrderedDict(
          (name, state[name] if tf.is_tensor(state[name]) or isinstance(state[name], np.ndarray)
           else list(state[name])) for name in self.resolved.state_names)
      output = self.kernel(inputs, weights, **state)
      # The next state keeps the state's types (static shapes and dtypes), as TFF's
      # process requires.
      new_state = collections.OrderedDict(
          (name, tf.nest.map_structure(_like, output.state.get(name, value), value))
          for name, value in state.items())
    else:
      output = self.kernel(inputs, weights)
      new_state = ()
    aggregate = output.aggregate
    if self.one_matrix:
      aggregate = tf.split(aggregate[0], self.sizes)
    result = [tf.reshape(a, leaf.shape) for a, leaf in zip(aggregate, self.leaf_types)]
    measurements = collections.OrderedDict(
        client_weights=tf.cast(output.client_weights, tf.float32),
        corrected_fraction=tf.cast(output.corrected_fraction, tf.float32),
        num_dropped_clients=tf.cast(output.num_dropped_clients, tf.int32))
    measurements.update(output.extra)
    return result, measurements, new_state


class RobustAggregationFactory(tff.aggregators.WeightedAggregationFactory,
                               tff.aggregators.UnweightedAggregationFactory):
  """An aggregation process that runs a method's kernel at the server.

  ``RobustAggregationFactory(name, **params)`` takes any name of
  ``tff_residual.kernels.method_table`` (methods, named settings, ``nnm+NAME``) and
  the fields of its config. Each subclass sets ``METHOD``; its constructor's
  keywords are then its config's fields (one statement of the parameters).
  """

  METHOD: str | None = None

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    if cls.METHOD is None or "__init__" in cls.__dict__:
      return
    method = cls.METHOD

    def __init__(self, **params):
      RobustAggregationFactory.__init__(self, method, **params)

    __init__.__signature__ = _signature_from_config(method_table.METHODS[method].config)
    __init__.__doc__ = f"Keywords: the fields of ``{method_table.METHODS[method].config.__name__}``."
    cls.__init__ = __init__

  def __init__(self, method: str, **params):
    # Resolves (and so validates) the parameters now: bad ones fail here.
    self._set_resolved(method_table.resolve(method, **params), params)

  def _set_resolved(self, resolved: method_table.Resolved, params: dict) -> None:
    self._resolved = resolved
    self._kernel = method_table.compile_kernel(resolved)
    self._params = dict(params)

  @property
  def method(self) -> str:
    """The method-table name this factory runs (e.g. "krum", "nnm+residual")."""
    return self._resolved.name

  @property
  def resolved(self) -> method_table.Resolved:
    return self._resolved

  @property
  def params(self) -> dict:
    return dict(self._params)

  @property
  def config(self):
    """The method's validated config (``method_table.Resolved.config``)."""
    return self._resolved.config

  @staticmethod
  def with_client_ids(state, client_ids):
    """``state`` with the round's client ids set: the round's i-th client is
    ``client_ids[i]`` (FoolsGold's history, ``history_size``, is kept by id). A state
    without ids (every other name) is returned as it is. TFF's clients are anonymous,
    so the caller who samples them says who they are, before each ``next``; in a
    ``tff.learning`` process whose ``model_aggregator`` is this factory:
    ``state._replace(aggregator=factory.with_client_ids(state.aggregator, ids))``.
    Without it the ids stay 0..M-1, the reference's keying by position in the
    round's list."""
    if not hasattr(state, "keys") and not isinstance(state, tff.structure.Struct):
      return state
    entries = (collections.OrderedDict(tff.structure.iter_elements(state))
               if isinstance(state, tff.structure.Struct) else collections.OrderedDict(state))
    if "client_ids" not in entries:
      return state
    entries["client_ids"] = foolsgold.client_ids_entry(client_ids,
                                                       int(np.shape(entries["client_ids"])[0]))
    return entries

  @property
  def kernel(self) -> method_table.Kernel:
    """The kernel the server runs, ``kernel(values, sample_weights, **state)`` on a
    list of ``[K, n_t]`` tensors (``tff_residual.kernels.method_table``); usable eagerly too."""
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
      if not (isinstance(weight_type, tff.TensorType) and tuple(weight_type.shape) == ()
              and (np.issubdtype(weight_type.dtype, np.floating)
                   or np.issubdtype(weight_type.dtype, np.integer))):
        raise TypeError(f"weight_type must be a float or integer scalar (as TFF's "
                        f"MeanFactory takes), got {weight_type}.")
    step = ServerStep(self._resolved, self._kernel, value_type)
    resolved = self._resolved
    stacked_value_type, vector_type = step.stacked_value_type, step.vector_type
    server_state_type = step.state_type

    def run_kernel(stack, weights, state):
      if weights is not None and weights.dtype.is_integer:   # e.g. example counts
        weights = tf.cast(weights, tf.float32)
      result, measurements, new_state = step(stack, weights, state)
      if resolved.stateful:
        return pack_as(value_type, result), measurements, new_state
      return pack_as(value_type, result), measurements

    # The server computation's arguments: the stack, the weights if weighted, the
    # state if stateful.
    argument_types = (stacked_value_type,) + (
        (tff.TensorType(weight_type.dtype, [None]),) if weighted else ()) + (
        (server_state_type,) if resolved.stateful else ())

    # (TFF computations take no *args: one definition per argument list.)
    if weighted and resolved.stateful:
      def server_aggregate(stack, weights, state):
        return run_kernel(stack, weights, state)
    elif weighted:
      def server_aggregate(stack, weights):
        return run_kernel(stack, weights, ())
    elif resolved.stateful:
      def server_aggregate(stack, state):
        return run_kernel(stack, None, state)
    else:
      def server_aggregate(stack):
        return run_kernel(stack, None, ())
    server_aggregate = tff.tensorflow.computation(*argument_types)(server_aggregate)

    if resolved.stateful:
      @tff.tensorflow.computation
      def initial_state():
        return step.initial_state()

      @tff.federated_computation()
      def init_fn():
        return tff.federated_eval(initial_state, tff.SERVER)
    else:
      @tff.federated_computation()
      def init_fn():
        return tff.federated_value((), tff.SERVER)

    def next_body(state, value, weight):
      # Client computation: none, or each client's tensors concatenated into one vector.
      # Gather: all client values (and weights) at the server, in client order.
      stack = (gather_lib.gather(value, value_type) if vector_type is None
               else gather_lib.gather_flat(value, value_type))
      # Server computation: the robust kernel over the whole model at once.
      arguments = [stack]
      if weight is not None:
        arguments.append(gather_lib.gather(weight, weight_type))
      if resolved.stateful:
        arguments.append(state)
      output = tff.federated_map(server_aggregate,
                                 arguments[0] if len(arguments) == 1 else tuple(arguments))
      # Output preparation: a stateless process passes its state () through.
      return tff.templates.MeasuredProcessOutput(
          state=output[2] if resolved.stateful else state, result=output[0],
          measurements=output[1])

    state_type = tff.FederatedType(server_state_type, tff.SERVER)
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
