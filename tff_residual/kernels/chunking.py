"""Coordinate chunking under a memory budget.

Every aggregator in this package works coordinate by coordinate, so the
coordinates of a ``[K, n]`` matrix can be processed in chunks of columns without
changing any per-coordinate result (docs/reference_differences.md §1.1 step 5). Only the
per-client sums accumulated across chunks see a different summation order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import dataclasses

import tensorflow as tf

from tff_residual.kernels.method_config import MethodConfig, hyper

DEFAULT_MEMORY_BUDGET_BYTES = 256 * 1024 * 1024
"""Default budget for the temporaries of the chunks computed at once (not the
input itself): one chunk at a time in ``map_coordinate_chunks``,
``FIXED_WIDTH_CHUNKS_IN_FLIGHT`` in ``map_fixed_width_chunks``."""
FIXED_WIDTH_CHUNKS_IN_FLIGHT = 2
"""Chunks of ``map_fixed_width_chunks`` computed at once (the while loop's
``parallel_iterations``). Its chunks are a few thousand columns, too small for
one op to keep both cores of this machine busy; two in flight were faster than
one, and four slower than two (BENCHMARKS.md, "Design measurements").
``fused.chunk_width`` sizes its
chunks for this many under the memory budget; the counting L-estimators' fixed
8192-column chunks stay a few MB each."""


def check_chunking(chunk_size: int | None, memory_budget_bytes: int) -> None:
  """ValueError unless ``chunk_size`` is None or a positive int and the budget a positive int."""
  if chunk_size is not None and (not isinstance(chunk_size, int) or isinstance(chunk_size, bool)
                                 or chunk_size < 1):
    raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}.")
  if (not isinstance(memory_budget_bytes, int) or isinstance(memory_budget_bytes, bool)
      or memory_budget_bytes < 1):
    raise ValueError(f"memory_budget_bytes must be a positive int, got {memory_budget_bytes!r}.")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ChunkedConfig(MethodConfig):
  """A coordinate-wise method that works on chunks of coordinates."""

  chunk_size: int | None = hyper(None, "coordinates per chunk; None = from "
                                       "memory_budget_bytes")
  memory_budget_bytes: int = hyper(DEFAULT_MEMORY_BUDGET_BYTES, "budget for the temporaries "
                                   "of the chunks computed at once")

  def __post_init__(self):
    super().__post_init__()
    check_chunking(self.chunk_size, self.memory_budget_bytes)


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


def map_fixed_width_chunks(
    matrix: tf.Tensor,
    chunk_fn: Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, Sequence[tf.Tensor]]],
    width: int,
    element_shape: Sequence[int | None],
    client_sums: Sequence[tf.Tensor],
) -> tuple[tf.TensorArray, list[tf.Tensor]]:
  """Applies ``chunk_fn`` to chunks of exactly ``width`` columns of ``matrix`` [K, n].

  The last chunk is zero-padded to ``width`` columns, so that every call sees one
  static shape (an XLA program compiles once). Up to
  ``FIXED_WIDTH_CHUNKS_IN_FLIGHT`` chunks are computed at once. ``chunk_fn(chunk, num_columns)``
  gets the [K, width] chunk and its number of real columns, and returns
  ``(output, sums)``: ``output`` (shape ``element_shape``) is written to the
  returned TensorArray, one element per chunk, padding included; ``sums`` are
  added to ``client_sums`` (their initial values), which are returned.
  """
  n = tf.shape(matrix)[1]
  num_chunks = tf.maximum((n + width - 1) // width, 1)
  outputs = tf.TensorArray(matrix.dtype, size=num_chunks, element_shape=element_shape)

  def body(index, outputs, sums):
    start = index * width
    size = tf.minimum(width, n - start)
    chunk = tf.pad(matrix[:, start:start + size], [[0, 0], [0, width - size]])
    output, partial = chunk_fn(tf.ensure_shape(chunk, [None, width]), size)
    return index + 1, outputs.write(index, output), [s + p for s, p in zip(sums, partial)]

  _, outputs, sums = tf.while_loop(lambda index, *_: index < num_chunks, body,
                                   (tf.constant(0), outputs, list(client_sums)),
                                   parallel_iterations=FIXED_WIDTH_CHUNKS_IN_FLIGHT)
  return outputs, list(sums)


def map_model_chunks(
    values: Sequence[tf.Tensor],
    chunk_fn: Callable[[tf.Tensor], tuple[Sequence[tf.Tensor], Sequence[tf.Tensor]]],
    bytes_per_coordinate: Callable[[tf.Tensor, int], tf.Tensor],
    num_per_coordinate: int,
    num_client_sums: int,
    memory_budget_bytes: int,
    chunk_size: int | None = None,
) -> tuple[list[list[tf.Tensor]], list[tf.Tensor], tf.Tensor]:
  """``map_coordinate_chunks`` over every ``[K, n_t]`` tensor of a model.

  ``chunk_fn`` returns ``num_per_coordinate`` tensors in the chunk's dtype and
  ``num_client_sums`` float64 ``[K]`` partial sums. ``bytes_per_coordinate(K,
  itemsize)`` sizes the chunks under ``memory_budget_bytes``.

  Returns ``(per_tensor, client_sums, num_coordinates)``: for each tensor the
  list of its per-coordinate outputs, the client sums added up over all
  tensors, and the total number of coordinates (float64).
  """
  num_clients = tf.shape(values[0])[0]
  sums = [tf.zeros([num_clients], tf.float64) for _ in range(num_client_sums)]
  num_coordinates = tf.constant(0.0, tf.float64)
  per_tensor = []
  for matrix in values:
    size = chunk_size_for(num_clients, lambda k, m=matrix: bytes_per_coordinate(k, m.dtype.size),
                          memory_budget_bytes, chunk_size)
    outputs, partial = map_coordinate_chunks(
        matrix, chunk_fn, size, [matrix.dtype] * num_per_coordinate,
        [tf.float64] * num_client_sums)
    per_tensor.append(outputs)
    sums = [total + part for total, part in zip(sums, partial)]
    num_coordinates += tf.cast(tf.shape(matrix)[1], tf.float64)
  return per_tensor, sums, num_coordinates
