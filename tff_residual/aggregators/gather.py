"""The shared gather step: every client value to the server, stacked in client order.

Robust aggregation needs all K client values at the server. ``gather`` is one
``tff.federated_aggregate`` whose accumulator is the structure of tensors
``[k, *shape]``: ``accumulate`` appends one client along a new leading axis and
``merge`` concatenates two partial stacks, so it is mergeable and TFF may split
the clients across workers. TFF's local C++ runtime keeps the clients' order
(checked by ``tests/test_aggregators.py::test_gather_keeps_client_order``).
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_federated as tff
from tensorflow_federated.python.common_libs import structure
from tensorflow_federated.python.core.impl.types import type_transformations


def stacked_type(value_type: tff.types.Type) -> tff.types.Type:
  """``value_type`` with every tensor ``T[*shape]`` replaced by ``T[None, *shape]``."""
  def add_client_axis(t):
    if isinstance(t, tff.TensorType):
      return tff.TensorType(t.dtype, (None,) + tuple(t.shape)), True
    return t, False
  stacked, _ = type_transformations.transform_type_postorder(value_type, add_client_axis)
  return stacked


def flatten(value) -> list:
  """Leaves of a value of a TFF type, whether a Python container or a ``Struct``."""
  if isinstance(value, structure.Struct):
    return structure.flatten(value)
  return tf.nest.flatten(value)


def pack_like(template, leaves: list):
  """Inverse of ``flatten`` for the same kind of template."""
  if isinstance(template, structure.Struct):
    return structure.pack_sequence_as(template, leaves)
  return tf.nest.pack_sequence_as(template, leaves)


def gather(value, value_type: tff.types.Type):
  """Federated value at CLIENTS -> the stacked structure at SERVER (K leading)."""
  accumulator_type = stacked_type(value_type)

  @tff.tensorflow.computation
  def zero():
    def empty(t):
      return tf.zeros((0,) + tuple(t.shape), t.dtype)
    return tff.types.structure_from_tensor_type_tree(empty, value_type)

  @tff.tensorflow.computation(accumulator_type, value_type)
  def accumulate(stack, client_value):
    leaves = [tf.concat([s, tf.expand_dims(v, 0)], axis=0)
              for s, v in zip(flatten(stack), flatten(client_value))]
    return pack_like(stack, leaves)

  @tff.tensorflow.computation(accumulator_type, accumulator_type)
  def merge(first, second):
    leaves = [tf.concat([a, b], axis=0) for a, b in zip(flatten(first), flatten(second))]
    return pack_like(first, leaves)

  @tff.tensorflow.computation(accumulator_type)
  def report(stack):
    return stack

  return tff.federated_aggregate(value, zero(), accumulate, merge, report)
