"""The shared gather step: every client value to the server, stacked in client order.

Robust aggregation needs all K client values at the server. ``gather`` is one
``tff.federated_aggregate``. TFF's local C++ runtime folds it client by client
(``accumulate`` only; it never calls ``merge``) and keeps the clients' order
(checked by ``tests/test_aggregators.py::test_gather_keeps_client_order``).

A single growing stack ``[k, *shape]`` would be copied whole by every
``accumulate`` (K^2/2 client copies in all). The accumulator is instead
(count, ``NUM_SLOTS`` stacks): client i is appended to slot i mod ``NUM_SLOTS``
and the other slots pass through uncopied, so the copies drop to about
K^2 / (2 NUM_SLOTS); ``report`` interleaves the slots back into client order.
With 8 slots the gather costs about what a ``federated_aggregate`` that only sums
the values costs (BENCHMARKS.md, "Design measurements"). ``merge`` concatenates
two partial accumulators, first then second: with several workers
(``managed_tff_runtime(num_workers=N)``) the blocks of clients are merged in
block order (``runtime/ordered_merge.py``), so the stack stays in client order.

``gather_flat`` first concatenates each client's tensors into one vector (one
small computation per client), so the accumulator holds one tensor per slot
whatever the model: every ``accumulate`` then passes 8 tensors instead of 8 per
model tensor, and the graphs TFF builds, sends with every call and runs stay
small (ResNet-18's 62 tensors: see ``robust_factory``).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tff_residual.runtime import tff_internals


def stacked_type(value_type: tff.types.Type) -> tff.types.Type:
  """``value_type`` with every tensor ``T[*shape]`` replaced by ``T[None, *shape]``."""
  def add_client_axis(t):
    if isinstance(t, tff.TensorType):
      return tff.TensorType(t.dtype, (None,) + tuple(t.shape)), True
    return t, False
  stacked, _ = tff_internals.transform_type_postorder(value_type, add_client_axis)
  return stacked


def flatten(value) -> list:
  """Leaves of a value of a TFF type in the type's order (``tff.structure.flatten`` of
  ``value_type``), whether a Python container or a ``Struct``. Not ``tf.nest``:
  it sorts the keys of every dict, ``OrderedDict`` included, so a model
  ``OrderedDict(w=..., b=...)`` would be flattened b, w against its type's w, b."""
  if not tf.nest.is_nested(value) and not isinstance(value, tff.structure.Struct):
    return [value]
  if not isinstance(value, tff.structure.Struct):
    value = tff.structure.from_container(value, recursive=True)
  return tff.structure.flatten(value)


def pack_like(template, leaves: list):
  """Inverse of ``flatten``: ``leaves`` in ``template``'s structure (a ``Struct``)."""
  if not tf.nest.is_nested(template) and not isinstance(template, tff.structure.Struct):
    return leaves[0]
  if not isinstance(template, tff.structure.Struct):
    template = tff.structure.from_container(template, recursive=True)
  return tff.structure.pack_sequence_as(template, leaves)


NUM_SLOTS = 8
"""Stacks in the gather's accumulator (see the module docstring)."""
SMALL_VALUE_ELEMENTS = 1024
"""Values with at most this many elements (e.g. the clients' weights) keep one
stack: their copies are cheap, and the 8-way branch is slow to build."""


def leaf_sizes(value_type: tff.types.Type) -> list[int]:
  """Elements of each tensor of ``value_type``, in ``tff.structure.flatten`` order."""
  return [int(np.prod(leaf.shape)) for leaf in tff.structure.flatten(value_type)]


def flat_type(value_type: tff.types.Type) -> tff.TensorType | None:
  """``T[N]`` for a structure of two or more tensors that all have dtype T (N
  elements in all); None for a single tensor or mixed dtypes."""
  leaves = tff.structure.flatten(value_type)
  dtypes = {np.dtype(leaf.dtype) for leaf in leaves}
  if len(leaves) < 2 or len(dtypes) != 1:
    return None
  return tff.TensorType(leaves[0].dtype, [sum(leaf_sizes(value_type))])


def num_slots_for(value_type: tff.types.Type) -> int:
  """``NUM_SLOTS``, or 1 for a value of at most ``SMALL_VALUE_ELEMENTS`` elements."""
  return 1 if sum(leaf_sizes(value_type)) <= SMALL_VALUE_ELEMENTS else NUM_SLOTS


def slots_to_stack(count: tf.Tensor, slots) -> list[tf.Tensor]:
  """Leaves ``[count, *shape]`` in client order from ``slots`` (one list of leaves
  per slot; with S slots, client i is row i // S of slot i % S): the slots
  concatenated, then client i taken from its slot's offset + i // S."""
  num_slots = len(slots)
  if num_slots == 1:
    return list(slots[0])
  sizes = tf.stack([tf.shape(leaves[0])[0] for leaves in slots])
  offsets = tf.cumsum(sizes, exclusive=True)
  clients = tf.range(count)
  order = tf.gather(offsets, clients % num_slots) + clients // num_slots
  return [tf.gather(tf.concat(list(leaves), axis=0), order) for leaves in zip(*slots)]


def stack_to_slots(stack: list[tf.Tensor], num_slots: int = NUM_SLOTS) -> list[list[tf.Tensor]]:
  """Inverse of ``slots_to_stack``: per slot, the leaves of clients i = slot (mod num_slots)."""
  count = tf.shape(stack[0])[0]
  return [[tf.gather(leaf, tf.range(slot, tf.maximum(count, slot), num_slots)) for leaf in stack]
          for slot in range(num_slots)]


def gather(value, value_type: tff.types.Type):
  """Federated value at CLIENTS -> the stacked structure at SERVER (K leading)."""
  num_slots = num_slots_for(value_type)
  stacked = stacked_type(value_type)
  accumulator_type = tff.types.to_type((tff.TensorType(np.int32), (stacked,) * num_slots))

  def unpack(accumulator):
    count, slots = accumulator[0], accumulator[1]
    return count, [flatten(slot) for slot in slots]

  def pack(count, slot_leaves, template):
    return (count, tuple(pack_like(template, leaves) for leaves in slot_leaves))

  @tff.tensorflow.computation
  def zero():
    def empty(t):
      return tf.zeros((0,) + tuple(t.shape), t.dtype)
    return (tf.constant(0, tf.int32),
            tuple(tff.types.structure_from_tensor_type_tree(empty, value_type)
                  for _ in range(num_slots)))

  @tff.tensorflow.computation(accumulator_type, value_type)
  def accumulate(accumulator, client_value):
    count, slots = unpack(accumulator)
    client_leaves = flatten(client_value)

    def append_to(target):
      def branch():
        return [tf.concat([leaf, tf.expand_dims(v, 0)], axis=0) if slot == target
                else tf.identity(leaf)
                for slot, leaves in enumerate(slots)
                for leaf, v in zip(leaves, client_leaves)]
      return branch

    if num_slots == 1:
      flat = append_to(0)()
    else:
      flat = tf.switch_case(count % num_slots, [append_to(slot) for slot in range(num_slots)])
    per_slot = len(client_leaves)
    new_slots = [flat[slot * per_slot:(slot + 1) * per_slot] for slot in range(num_slots)]
    return pack(count + 1, new_slots, accumulator[1][0])

  @tff.tensorflow.computation(accumulator_type, accumulator_type)
  def merge(first, second):
    first_count, first_slots = unpack(first)
    second_count, second_slots = unpack(second)
    joined = [tf.concat([a, b], axis=0)
              for a, b in zip(slots_to_stack(first_count, first_slots),
                              slots_to_stack(second_count, second_slots))]
    return pack(first_count + second_count, stack_to_slots(joined, num_slots), first[1][0])

  @tff.tensorflow.computation(accumulator_type)
  def report(accumulator):
    count, slots = unpack(accumulator)
    return pack_like(accumulator[1][0], slots_to_stack(count, slots))

  return tff.federated_aggregate(value, zero(), accumulate, merge, report)


def gather_flat(value, value_type: tff.types.Type):
  """Federated structure at CLIENTS -> ``[K, N]`` at SERVER, client k's row its tensors
  flattened and concatenated in ``tff.structure.flatten`` order (``flat_type`` must hold)."""
  vector_type = flat_type(value_type)
  if vector_type is None:
    raise ValueError(f"gather_flat needs two or more tensors of one dtype, got {value_type}.")

  @tff.tensorflow.computation(value_type)
  def concatenate(client_value):
    return tf.concat([tf.reshape(leaf, [-1]) for leaf in flatten(client_value)], axis=0)

  return gather(tff.federated_map(concatenate, value), vector_type)
