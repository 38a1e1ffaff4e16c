"""Eager API for users outside TFF: aggregate a list of client models."""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tff_residual.kernels import foolsgold
from tff_residual.kernels import method_table

FLOAT_DTYPES = (np.float16, np.float32, np.float64)
# TensorFlow takes a host buffer without copying only if its data starts on a
# boundary of EIGEN_MAX_ALIGN_BYTES (at most 64); NumPy aligns to 16.
TENSOR_ALIGNMENT = 64


def aligned_empty(shape: tuple[int, ...], dtype) -> np.ndarray:
  """An uninitialised C-contiguous array whose data starts on a
  ``TENSOR_ALIGNMENT``-byte boundary, so that ``as_tensor`` shares it."""
  dtype = np.dtype(dtype)
  size = int(np.prod(shape)) * dtype.itemsize
  buffer = np.empty(size + TENSOR_ALIGNMENT, np.uint8)
  start = -buffer.ctypes.data % TENSOR_ALIGNMENT
  return buffer[start:start + size].view(dtype).reshape(shape)


def as_tensor(matrix: np.ndarray) -> tf.Tensor:
  """``matrix`` as a tensor. An aligned, C-contiguous, writeable array (as
  ``aligned_empty`` makes) is shared through DLPack, not copied: the tensor keeps
  it alive, and the caller must not write to it afterwards. Any other array is
  copied (``tf.constant``); TensorFlow aborts the process on an unaligned DLPack
  buffer, so nothing else goes that way."""
  shareable = (matrix.size > 0 and matrix.flags.c_contiguous and matrix.flags.writeable
               and matrix.ctypes.data % TENSOR_ALIGNMENT == 0)
  if shareable:
    return tf.experimental.dlpack.from_dlpack(matrix.__dlpack__())
  return tf.constant(matrix)


def flatten(value, like=None) -> list:
  """The leaves of ``value`` in TFF's order: a dict's in insertion order (as
  ``tff.structure.from_container`` keeps them; ``tf.nest`` sorts the keys), so that
  a method that reads one tensor by position (FoolsGold's ``feature_index``) reads
  the same tensor here as in a TFF factory. ``like``: a structure of the same
  shape whose dicts give the key order (client 0's, for every client)."""
  like = value if like is None else like
  if isinstance(value, Mapping):
    return [leaf for key in like for leaf in flatten(value[key], like[key])]
  if isinstance(value, (list, tuple)):
    return [leaf for item, model in zip(value, like) for leaf in flatten(item, model)]
  return [value]


def pack_like(template, leaves: list):
  """Inverse of ``flatten``: ``leaves`` in ``template``'s structure and containers."""
  remaining = iter(leaves)

  def pack(value):
    if isinstance(value, Mapping):
      return type(value)((key, pack(item)) for key, item in value.items())
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple
      return type(value)(*[pack(item) for item in value])
    if isinstance(value, (list, tuple)):
      return type(value)(pack(item) for item in value)
    return next(remaining)

  return pack(template)


def stack_client_values(client_values: Sequence[Any],
                        join: Callable[[list], bool] | None = None,
                        ) -> tuple[Any, list[np.ndarray], list[tuple]]:
  """Checks K structures and stacks each leaf into a [K, n] matrix, or, where
  ``join(leaf dtypes)`` is true, every leaf into one [K, N] matrix: one copy of
  the clients' values either way, into aligned arrays (``aligned_empty``) that
  ``as_tensor`` hands to TensorFlow without a second copy.

  Returns (structure of client 0, matrices, leaf shapes). Raises ValueError or
  TypeError naming the first problem found.
  """
  if isinstance(client_values, (str, bytes)) or not isinstance(client_values, Sequence):
    raise TypeError("client_values must be a list of client structures, got "
                    f"{type(client_values).__name__}.")
  if len(client_values) == 0:
    raise ValueError("client_values is empty: need at least one client (K >= 1).")
  template = client_values[0]
  leaves0 = flatten(template)
  if not leaves0:
    raise ValueError("client 0 holds no tensors.")
  per_client = []
  for k, value in enumerate(client_values):
    try:
      tf.nest.assert_same_structure(template, value)
    except (ValueError, TypeError) as error:
      raise ValueError(f"client {k} has a different structure than client 0: {error}") from None
    per_client.append([np.asarray(leaf) for leaf in flatten(value, like=template)])
  dtypes, shapes = [], []
  for index in range(len(leaves0)):
    first = per_client[0][index]
    if first.dtype.type not in FLOAT_DTYPES:
      raise TypeError(f"leaf {index} of client 0 has dtype {first.dtype}; only float "
                      "tensors can be aggregated.")
    for k in range(1, len(per_client)):
      leaf = per_client[k][index]
      if leaf.shape != first.shape:
        raise ValueError(f"leaf {index}: client {k} has shape {leaf.shape}, "
                         f"client 0 has {first.shape}.")
      if leaf.dtype != first.dtype:
        raise TypeError(f"leaf {index}: client {k} has dtype {leaf.dtype}, "
                        f"client 0 has {first.dtype}.")
    dtypes.append(np.dtype(np.float32 if first.dtype == np.float16 else first.dtype))
    shapes.append(first.shape)
  num_clients = len(per_client)
  sizes = [int(np.prod(shape)) for shape in shapes]
  if join is not None and join(dtypes):
    matrix = aligned_empty((num_clients, sum(sizes)), dtypes[0])
    starts = np.cumsum([0, *sizes[:-1]])
    for k, leaves in enumerate(per_client):
      for leaf, start, size in zip(leaves, starts, sizes):
        matrix[k, start:start + size] = np.ravel(leaf)
    return template, [matrix], shapes
  matrices = [aligned_empty((num_clients, size), dtype) for size, dtype in zip(sizes, dtypes)]
  for k, leaves in enumerate(per_client):
    for matrix, leaf in zip(matrices, leaves):
      matrix[k] = np.ravel(leaf)
  return template, matrices, shapes


def aggregate(client_values: Sequence[Any], method: str = "residual",
              sample_weights: Sequence[float] | None = None, center: Any = None,
              state: Mapping[str, Any] | None = None, **params):
  """Aggregates K client models with a robust method, outside of TFF.

  Args:
    client_values: list (length K) of nested structures (dicts, lists, tuples)
      of float arrays, all with the same structure, shapes and dtypes.
    method: a name of the one name table, ``tff_residual.kernels.method_table``
      (the same names as ``build_factory`` and ``run.py --aggregator``): a rule
      ("residual", "median", "trimmed_mean", "repeated_median", "foolsgold",
      "mean", "krum", "multi_krum", "geometric_median", "centered_clipping",
      "bulyan"), a named setting ("fedavg", "residual_paper",
      "residual_theil_sen", "residual_median_line", "residual_gaussian",
      "repeated_median_paper"), or either after wrapper prefixes "nnm+", "arc+",
      "bucketing+" (e.g. "arc+nnm+trimmed_mean").
    sample_weights: optional per-client weights (e.g. example counts); used only
      with ``sample_weighting="multiply"`` (which "fedavg" fixes).
    center: centered clipping only: the previous aggregate, with the clients'
      structure; None starts from the coordinate median.
    state: a stateful name's state as the previous call returned it
      (``info["state"]``), or some of its entries (e.g. FoolsGold's
      ``client_ids``, the round's ids); None: the state before the first round
      (bucketing's round 0, no FoolsGold history).
    **params: the fields of the method's config, e.g. ``lambda_``, ``delta``,
      ``variant`` for "residual", ``beta`` for "trimmed_mean",
      ``num_byzantine`` for "krum".

  Returns:
    ``(aggregate, info)``: the aggregate with the input structure (NumPy
    arrays) and a dict with ``client_weights`` (float32 [K], sums to 1, 0 for
    dropped clients), ``corrected_fraction`` (float32 [K]),
    ``num_dropped_clients`` (int) and the method's own measurements (e.g.
    ``krum_scores``), and for a stateful name ``state``, the next state (NumPy
    arrays; pass it back for the next round). Clients holding NaN/Inf are
    dropped. Too few clients for f is a ValueError naming both numbers.
  """
  resolved = method_table.resolve(method, **params)
  kernel = method_table.eager_kernel(resolved)
  # As the TFF factory gathers the model: the same kernel on the same matrix.
  template, matrices, shapes = stack_client_values(
      client_values, lambda dtypes: method_table.takes_one_matrix(resolved, dtypes))
  joined = len(matrices) < len(shapes)
  weights = None
  if sample_weights is not None:
    weights = np.asarray(sample_weights, dtype=np.float64)
    if weights.shape != (len(client_values),):
      raise ValueError(f"sample_weights has shape {weights.shape}; expected "
                       f"({len(client_values)},), one per client.")
    weights = tf.constant(weights)
  if center is not None and "center" not in resolved.state_names:
    raise ValueError(f"center is for centered clipping; method={method!r} keeps no centre.")
  if state is not None and not resolved.stateful:
    raise ValueError(f"method={method!r} keeps no state; state must be None.")
  kernel_state = collections.OrderedDict()
  if resolved.stateful:
    kernel_state = resolved.initial_state([m.shape[1] for m in matrices],
                                          [m.dtype for m in matrices])
    for name, value in (state or {}).items():
      if name not in kernel_state:
        raise ValueError(f"state has no entry {name!r} for method={method!r}; its entries are "
                         f"{list(kernel_state)}.")
      if name == "client_ids":
        value = foolsgold.client_ids_entry(value, int(kernel_state[name].shape[0]))
      kernel_state[name] = tf.nest.map_structure(tf.constant, value)
  if center is not None:
    _, center_matrices, _ = stack_client_values([center])
    rows = [m[0] for m in center_matrices]
    if joined:
      rows = [np.concatenate(rows)]
    kernel_state["center"] = [tf.constant(row.astype(matrix.dtype))
                              for row, matrix in zip(rows, matrices)]
    kernel_state["has_center"] = tf.constant(True)
  try:
    output = kernel([as_tensor(m) for m in matrices], weights, **kernel_state)
  except tf.errors.InvalidArgumentError as error:
    lines = [line for line in error.message.splitlines() if "assertion failed:" in line]
    if not lines:
      raise
    text = lines[0].split("assertion failed:", 1)[1].strip()
    raise ValueError(text.replace("] [", " ").strip("[]")) from None
  aggregate = [a.numpy() for a in output.aggregate]
  if joined:
    aggregate = np.split(aggregate[0], np.cumsum([int(np.prod(shape)) for shape in shapes])[:-1])
  leaves = flatten(template)
  result = [np.asarray(a, dtype=np.asarray(leaf).dtype).reshape(shape)
            for a, leaf, shape in zip(aggregate, leaves, shapes)]
  info = {
      "client_weights": output.client_weights.numpy().astype(np.float32),
      "corrected_fraction": output.corrected_fraction.numpy().astype(np.float32),
      "num_dropped_clients": int(output.num_dropped_clients.numpy()),
      **{name: value.numpy() for name, value in output.extra.items()},
  }
  if resolved.stateful:
    info["state"] = {name: tf.nest.map_structure(
        lambda t: np.asarray(t), output.state.get(name, value))
        for name, value in kernel_state.items()}
  return pack_like(template, result), info
