"""Coordinate chunking under a memory budget.

Every aggregator in this package works coordinate by coordinate, so the
coordinates of a ``[K, n]`` matrix can be processed in chunks of columns without
changing any per-coordinate result (reference_protocol §1.1 step 5). Only the
per-client sums accumulated across chunks see a different summation order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf

DEFAULT_MEMORY_BUDGET_BYTES = 256 * 1024 * 1024
"""Default budget for the temporaries of one chunk (not the input itself)."""


def chunk_size_for(
    num_clients: tf.Tensor,
    bytes_per_coordinate: Callable[[tf.Tensor], tf.Tensor],
    memory_budget_bytes: int,
    chunk_size: int | None = None,
) -> tf.Tensor:
  """Number of coordinates per chunk: ``budget // bytes_per_coordinate(K)``, at least 1.

  An explicit ``chunk_size`` wins over the budget.
  """
  if chunk_size is not None:
    return tf.constant(int(chunk_size), tf.int32)
  per_coordinate = tf.maximum(tf.cast(bytes_per_coordinate(num_clients), tf.int64), 1)
  size = tf.maximum(tf.constant(memory_budget_bytes, tf.int64) // per_coordinate, 1)
  return tf.cast(tf.minimum(size, 2**30), tf.int32)


def map_coordinate_chunks(
    matrix: tf.Tensor,
    chunk_fn: Callable[[tf.Tensor], tuple[Sequence[tf.Tensor], Sequence[tf.Tensor]]],
    chunk_size: tf.Tensor,
    per_coordinate_dtypes: Sequence[tf.DType],
    client_sum_dtypes: Sequence[tf.DType],
) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
  """Applies ``chunk_fn`` to column chunks of ``matrix`` [K, n].

  ``chunk_fn`` receives one chunk transposed to ``[c, K]`` (coordinates as rows)
  and returns ``(per_coordinate, client_sums)``: tensors whose first axis is the
  chunk's ``c`` coordinates (concatenated over chunks in coordinate order), and
  ``[K]`` per-client partial sums (added up over chunks).
  """
  num_clients = tf.shape(matrix)[0]
  num_coordinates = tf.shape(matrix)[1]
  # At least one (possibly empty) chunk, so that the outputs of a zero-size
  # tensor get their trailing shape from ``chunk_fn`` too.
  num_chunks = tf.maximum((num_coordinates + chunk_size - 1) // chunk_size, 1)
  arrays = [
      tf.TensorArray(dtype, size=num_chunks, infer_shape=False)
      for dtype in per_coordinate_dtypes
  ]
  sums = [tf.zeros([num_clients], dtype) for dtype in client_sum_dtypes]

  def body(index, arrays, sums):
    start = index * chunk_size
    size = tf.minimum(chunk_size, num_coordinates - start)
    chunk = tf.transpose(matrix[:, start:start + size])
    per_coordinate, client_sums = chunk_fn(chunk)
    arrays = [a.write(index, v) for a, v in zip(arrays, per_coordinate)]
    sums = [s + v for s, v in zip(sums, client_sums)]
    return index + 1, arrays, sums

  _, arrays, sums = tf.while_loop(
      lambda index, *_: index < num_chunks,
      body,
      (tf.constant(0), arrays, sums),
      parallel_iterations=1,
  )
  return [a.concat() for a in arrays], list(sums)
