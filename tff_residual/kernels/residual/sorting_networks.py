"""Order statistics of a fixed number of tensors by min/max comparator networks.

A comparator network sorts n "wires" with a fixed sequence of compare-exchange
steps (a, b) -> (min(a, b), max(a, b)), so for n tensors of the same shape it
computes the order statistics of every element at once with ``tf.minimum`` /
``tf.maximum`` only: no data-dependent control flow, no sort kernel. Under
``tf.function(jit_compile=True)`` XLA fuses the whole network into one loop,
which is what makes the repeated median cheap (see ``fused``).

The network is Batcher's odd-even merge sort for the next power of two, with
the comparators that touch the (virtual, +inf) wires past ``n`` removed, then
pruned backwards to the comparators that can influence the requested output
positions. Medians of 9, 29 and 99 wires need 24, 138 and 891 comparators.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import tensorflow as tf
from tensorflow.core.framework import attr_value_pb2
from tensorflow.core.framework import graph_pb2


@functools.lru_cache(maxsize=None)
def batcher_comparators(num_wires: int) -> tuple[tuple[int, int], ...]:
  """Batcher's odd-even merge sort on ``num_wires`` wires, as (low, high) pairs.

  Virtual wires up to the next power of two hold +inf and never move, so the
  comparators that touch them are dropped.
  """
  size = 1
  while size < num_wires:
    size *= 2
  pairs: list[tuple[int, int]] = []

  def merge(low: int, length: int, step: int) -> None:
    double = step * 2
    if double < length:
      merge(low, length, double)
      merge(low + step, length, double)
      pairs.extend((i, i + step) for i in range(low + step, low + length - step, double))
    else:
      pairs.append((low, low + step))

  def sort(low: int, length: int) -> None:
    if length > 1:
      half = length // 2
      sort(low, half)
      sort(low + half, half)
      merge(low, length, 1)

  sort(0, size)
  return tuple((i, j) for i, j in pairs if j < num_wires)


@functools.lru_cache(maxsize=None)
def selection_comparators(num_wires: int,
                          positions: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
  """The comparators of the sorting network that can affect wires ``positions``."""
  needed = set(positions)
  kept = []
  for low, high in reversed(batcher_comparators(num_wires)):
    if low in needed or high in needed:
      kept.append((low, high))
      needed.update((low, high))
  return tuple(reversed(kept))


@functools.lru_cache(maxsize=None)
def selection_layers(num_wires: int,
                     positions: tuple[int, ...]) -> tuple[tuple[tuple[int, int], ...], ...]:
  """``selection_comparators`` grouped into layers of comparators on disjoint wires.

  Each comparator goes to the layer after the last one that touched either of
  its wires, so the layers apply the comparators in a dependency-preserving order.
  """
  ready = [0] * num_wires
  layers: list[list[tuple[int, int]]] = []
  for low, high in selection_comparators(num_wires, positions):
    layer = max(ready[low], ready[high])
    if layer == len(layers):
      layers.append([])
    layers[layer].append((low, high))
    ready[low] = ready[high] = layer + 1
  return tuple(tuple(layer) for layer in layers)


@functools.lru_cache(maxsize=None)
def _network_graph_def(num_wires: int, positions: tuple[int, ...], dtype_enum: int):
  """The pruned network as a GraphDef of Minimum/Maximum nodes.

  Inputs are the names ``wire_<i>`` (bound by ``import_graph_def``'s input_map).
  Returns ``(graph_def, outputs)``: per position, the output tensor's name in
  the GraphDef, or the index of the input wire when no comparator touches it.
  """
  graph_def = graph_pb2.GraphDef()
  dtype = attr_value_pb2.AttrValue(type=dtype_enum)
  names: list[str | int] = list(range(num_wires))
  as_input = lambda name: f"wire_{name}" if isinstance(name, int) else name
  layers = selection_layers(num_wires, tuple(sorted(set(positions))))
  for index, (low, high) in enumerate(pair for layer in layers for pair in layer):
    inputs = [as_input(names[low]), as_input(names[high])]
    for op, wire in (("Minimum", low), ("Maximum", high)):
      node = graph_def.node.add(name=f"{op.lower()}_{index}", op=op)
      node.input.extend(inputs)
      node.attr["T"].CopyFrom(dtype)
      names[wire] = node.name
  outputs = tuple(names[p] if isinstance(names[p], int) else f"{names[p]}:0" for p in positions)
  return graph_def, outputs


def select(wires: Sequence[tf.Tensor], positions: Sequence[int]) -> list[tf.Tensor]:
  """Order statistics ``positions`` (0 = smallest) of same-shaped ``wires``, elementwise.

  Equal to ``tf.sort(tf.stack(wires), axis=0)[positions]`` for non-NaN input.
  One ``Minimum`` and one ``Maximum`` op per comparator. Stacking a layer's
  comparators into one op instead makes XLA materialise every layer, 10x slower.
  In a graph, the network is imported as one GraphDef (a 128-wire median is
  ~2,500 ops, which are slow to build one by one in Python).
  """
  wires = [tf.convert_to_tensor(wire) for wire in wires]
  for position in positions:
    if not 0 <= position < len(wires):
      raise ValueError(f"position {position} is outside 0..{len(wires) - 1}.")
  positions = tuple(positions)
  if tf.executing_eagerly():  # GraphDefs import into graphs only
    return list(tf.function(lambda *w: select(w, positions), autograph=False)(*wires))
  graph_def, outputs = _network_graph_def(len(wires), positions, wires[0].dtype.as_datatype_enum)
  names = [name for name in outputs if not isinstance(name, int)]
  imported = iter(tf.graph_util.import_graph_def(
      graph_def, input_map={f"wire_{i}:0": wire for i, wire in enumerate(wires)},
      return_elements=names, name="selection_network") if names else [])
  return [wires[name] if isinstance(name, int) else next(imported) for name in outputs]
