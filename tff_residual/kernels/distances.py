"""Whole-model distances between clients: one K x K Gram matrix, overflow-safe and precise.

The model-level rules (Krum, Multi-Krum, Bulyan, nearest-neighbour mixing, the
geometric median, centered clipping, FoolsGold) need only inner products between
client models. For K clients with models x_k (every ``[K, n_t]`` tensor
concatenated, N values in all) and a centre c:

    G_ij = <x_i - c, x_j - c>,     ||x_i - x_j||^2 = G_ii + G_jj - 2 G_ij,

one pass over the values (O(K^2 N) multiply-adds) and never a K x K x N tensor.
Three things make it safe against a poisoned client and exact enough to rank
near-tied honest clients:

* **A centre among the honest clients.** ``G_ii + G_jj - 2 G_ij`` loses
  ``(G_ii + G_jj) / ||x_i - x_j||^2`` times the Gram's rounding error, so the
  centre must sit among the clients being compared: the mean does not (one far
  client moves it). ``pairwise_gram`` centres on client 0, and when client 0 is far
  from the rest (its half-neighbourhood score is ``FAR_CENTRE_RATIO`` times the
  smallest) computes G again centred on the medoid (the client of smallest
  half-neighbourhood score, lowest index on ties), which an honest majority
  places among them.
* **Float64 accumulation.** Column chunks of ``CHUNK_WIDTH`` coordinates are
  multiplied in the input's precision (float32 for float32 models) and summed in
  float64, so rounding does not grow with N (BENCHMARKS.md, 2026-12-06:
  ``scripts/bench_distances.py``).
* **Scaling, never overflow.** Where the plain chunks overflow (a client at 1e20
  squares past float32's range; 1e200 past float64's) or underflow, they are
  computed again with each client's chunk scaled by a power of two
  (``2^-e``, |x| < 2^(e+1)) and the Gram held as ``G_ij = scale_i scale_j unit_ij``
  (``Gram``), rescaled as a client's largest chunk grows. Powers of two scale
  exactly, so honest pairs lose nothing; a distance too large for float64 is
  +inf, never NaN, and the rules treat it as the farthest.

Tied distances break to the lower client index in every rule (stable sorts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import tensorflow as tf

CHUNK_WIDTH = 2048
"""Coordinates per Gram chunk: each chunk's product is exact to float32 rounding over
2048 terms, and the chunks are summed in float64 (BENCHMARKS.md, "Design measurements")."""
CHUNKS_IN_FLIGHT = 2
"""Chunks multiplied at once (the while loop's ``parallel_iterations``)."""
FAR_CENTRE_RATIO = 4.0
"""Client 0 is a far centre when its half-neighbourhood score exceeds this many times
the medoid's; ``pairwise_gram`` then centres on the medoid."""
SMALLEST_PLAIN_NORM = {tf.float32: 2.0**-80, tf.float64: 2.0**-900}
"""A client closer to the centre than this (squared norm) takes the scaled path: its
products could underflow in the plain one."""


def reused_graph(function):
  """``function`` as one graph function that every kernel calling it shares: traced
  once per kind of call (shapes relaxed after the first retrace) and kept across the
  kernels' own traces, so that a kernel traced for a new input shape (each new shape
  in the eager API, each TFF factory) reuses the big loops instead of building them
  again."""
  return tf.function(function, reduce_retracing=True, autograph=False)


class Gram(NamedTuple):
  """The Gram matrix of the centred client models, as G_ij = scale_i scale_j unit_ij.

  Attributes:
    unit: float64 [K, K] (or [K]: its diagonal, from ``center_norms``).
    scale: float64 [K] powers of two (all 1 on the plain path).
  """

  unit: tf.Tensor
  scale: tf.Tensor


def compute_dtype(dtype: tf.DType) -> tf.DType:
  """The precision of the chunk products: float64 for float64 models, else float32."""
  return tf.float64 if dtype == tf.float64 else tf.float32


def _power_of_two(exponent: tf.Tensor) -> tf.Tensor:
  """float64 2^e for integer-valued float64 e in [-1022, 1023], exactly (from its bits)."""
  return tf.bitcast(tf.cast(exponent + 1023.0, tf.int64) * (2**52), tf.float64)


def _scale_exponent(largest: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
  """float64 e with |x| / 2^e < 4 for |x| <= ``largest`` [K] (0 for a zero row),
  clamped so that 2^e and 2^-e are normal numbers of ``dtype``."""
  bound = 126.0 if dtype == tf.float32 else 1022.0
  largest = tf.cast(largest, tf.float64)
  exponent = tf.floor(tf.math.log(tf.where(largest > 0, largest, 1.0)) / np.log(2.0))
  return tf.clip_by_value(exponent, -bound, bound)


def _chunks_graph(values: Sequence[tf.Tensor], center_row, center, scaled: bool,
                  diagonal_only: bool) -> Gram:
  """The Gram of ``values`` minus the centre, accumulated over column chunks.

  The centre is client ``center_row``'s model (an int scalar), or ``center`` (one
  [n_t] tensor per input), or the origin when both are None. ``scaled``: each
  chunk's rows scaled by powers of two (see the module docstring) with the
  difference taken in halves, so that no intermediate overflows; otherwise the
  plain product (the caller checks it). ``diagonal_only``: only G's diagonal, [K].
  """
  num_clients = tf.shape(values[0])[0]
  shape = [num_clients] if diagonal_only else [num_clients, num_clients]
  dtype = compute_dtype(values[0].dtype)
  one = tf.ones([num_clients], tf.float64)
  # Running scale: the smallest normal number until a row's first non-zero chunk.
  scale = one * (2.0**-1022 if scaled else 1.0)
  unit = tf.zeros(shape, tf.float64)

  def product(chunk):
    if diagonal_only:
      return tf.cast(tf.reduce_sum(tf.square(chunk), axis=1), tf.float64)
    return tf.cast(tf.matmul(chunk, chunk, transpose_b=True), tf.float64)

  def rescale(unit, factor):
    return unit * tf.square(factor) if diagonal_only else unit * (factor[:, None] * factor[None, :])

  for index, matrix in enumerate(values):
    width = tf.shape(matrix)[1]
    num_chunks = (width + CHUNK_WIDTH - 1) // CHUNK_WIDTH
    offset = None if center is None else tf.cast(center[index], dtype)

    def body(step, scale, unit, matrix=matrix, offset=offset, width=width):
      start = step * CHUNK_WIDTH
      chunk = tf.cast(matrix[:, start:start + CHUNK_WIDTH], dtype)
      if center_row is not None:
        origin = tf.gather(chunk, center_row)[None, :]
      elif offset is not None:
        origin = offset[None, start:start + CHUNK_WIDTH]
      else:
        origin = None
      if not scaled:
        centred = chunk if origin is None else chunk - origin
        return step + 1, scale, unit + product(centred)
      half = 0.5 * chunk if origin is None else 0.5 * chunk - 0.5 * origin
      exponent = _scale_exponent(tf.reduce_max(tf.abs(half), axis=1), dtype)
      chunk_scale = _power_of_two(exponent)
      unit_chunk = 4.0 * product(half * tf.cast(_power_of_two(-exponent), dtype)[:, None])
      empty = tf.equal(tf.reduce_max(tf.abs(half), axis=1), 0.0)
      chunk_scale = tf.where(empty, tf.zeros_like(chunk_scale), chunk_scale)
      new_scale = tf.maximum(scale, chunk_scale)
      unit = rescale(unit, scale / new_scale) + rescale(unit_chunk, chunk_scale / new_scale)
      return step + 1, new_scale, unit

    _, scale, unit = tf.while_loop(lambda step, *_: step < num_chunks, body,
                                   (tf.constant(0), scale, unit),
                                   parallel_iterations=CHUNKS_IN_FLIGHT)
  if not diagonal_only:
    unit = 0.5 * (unit + tf.transpose(unit))  # symmetric to the last bit
  return Gram(unit, scale)


_traced_chunks = reused_graph(_chunks_graph)


def _chunks(values: Sequence[tf.Tensor], center_row, center, scaled: bool,
            diagonal_only: bool) -> Gram:
  """``_chunks_graph`` as a ``reused_graph``."""
  if center_row is not None:
    center_row = tf.convert_to_tensor(center_row, tf.int32)
  return Gram(*_traced_chunks(list(values), center_row,
                              None if center is None else list(center), scaled, diagonal_only))


def _plain_is_safe(gram: Gram, dtype: tf.DType) -> tf.Tensor:
  """Whether a plain-path Gram is usable: finite, and no client so close to the
  centre (but not on it) that its products may have underflowed."""
  diagonal = gram.unit if gram.unit.shape.rank == 1 else tf.linalg.diag_part(gram.unit)
  tiny = SMALLEST_PLAIN_NORM[compute_dtype(dtype)]
  underflow = tf.reduce_any(tf.logical_and(diagonal > 0, diagonal < tiny))
  return tf.logical_and(tf.reduce_all(tf.math.is_finite(gram.unit)), tf.logical_not(underflow))


def client_gram(values: Sequence[tf.Tensor], center_row: tf.Tensor | int | None = None,
                center: Sequence[tf.Tensor] | None = None) -> Gram:
  """The Gram of the client models ``values`` (list of [K, n_t]) about a centre:
  client ``center_row``'s model, or ``center`` (one [n_t] tensor per input), or
  the origin. The plain chunks where they are safe, else the scaled ones."""
  values = [tf.convert_to_tensor(v) for v in values]
  plain = _chunks(values, center_row, center, False, False)
  return tf.cond(_plain_is_safe(plain, values[0].dtype), lambda: plain,
                 lambda: _chunks(values, center_row, center, True, False))


def squared_distances(gram: Gram) -> tf.Tensor:
  """float64 [K, K] ||x_i - x_j||^2: >= 0, symmetric, an exact 0 diagonal, +inf
  where the distance exceeds float64's range (never NaN).

  With M = max(scale_i, scale_j) and r = scale / M (powers of two, <= 1):
  ||x_i - x_j||^2 = M (M (r_i^2 u_ii + r_j^2 u_jj - 2 r_i r_j u_ij)).
  """
  unit, scale = gram
  largest = tf.maximum(scale[:, None], scale[None, :])
  ri, rj = scale[:, None] / largest, scale[None, :] / largest
  diagonal = tf.linalg.diag_part(unit)
  inner = tf.maximum(ri * ri * diagonal[:, None] + rj * rj * diagonal[None, :]
                     - 2.0 * ri * rj * unit, 0.0)
  distances = largest * (largest * inner)
  distances = tf.minimum(distances, tf.transpose(distances))
  return tf.linalg.set_diag(distances, tf.zeros_like(diagonal))


def combination_distances(gram: Gram, coefficients: tf.Tensor) -> tf.Tensor:
  """float64 [K]: ||c_k - sum_j b_j c_j|| for b = ``coefficients`` [K] and c_k the
  centred models of ``gram``; +inf where it exceeds float64's range (never NaN).

  For b summing to 1 this is the distance from x_k to the point sum_j b_j x_j
  whatever the centre (the geometric median's iterates); centred clipping uses
  b = a about the previous aggregate. With w = b * scale, U = max |w| and, per
  client, T = max(scale_k, U), every term below is at most about 1:

      ||.||^2 / T^2 = (s_k/T)^2 u_kk - 2 (s_k/T)(U/T) (u w/U)_k + (U/T)^2 (w/U)'u(w/U).
  """
  unit, scale = gram
  weights = tf.cast(coefficients, tf.float64) * scale
  largest = tf.reduce_max(tf.abs(weights))
  unit_weights = weights / tf.where(largest > 0, largest, 1.0)
  cross = tf.linalg.matvec(unit, unit_weights)
  quadratic = tf.tensordot(unit_weights, cross, 1)
  top = tf.maximum(scale, largest)
  own, shared = scale / top, largest / top
  inner = (own * own * tf.linalg.diag_part(unit) - 2.0 * own * shared * cross
           + shared * shared * quadratic)
  return top * tf.sqrt(tf.maximum(inner, 0.0))


def center_norms(values: Sequence[tf.Tensor], center: Sequence[tf.Tensor] | None) -> tf.Tensor:
  """float64 [K] ||x_k - center|| over the whole model (``center`` None: ||x_k||), in
  O(K N); +inf beyond float64's range.

  One sum of squares per tensor (TF sums in blocks, so the rounding does not grow
  with N as a running sum's would) where that is safe, else the Gram's diagonal
  from the scaled chunks of ``client_gram``."""
  values = [tf.convert_to_tensor(v) for v in values]
  dtype = compute_dtype(values[0].dtype)
  squares = []
  for index, matrix in enumerate(values):
    matrix = tf.cast(matrix, dtype)
    centred = matrix if center is None else matrix - tf.cast(center[index], dtype)[None, :]
    squares.append(tf.cast(tf.reduce_sum(tf.square(centred), axis=1), tf.float64))
  plain = Gram(tf.add_n(squares), tf.ones_like(squares[0]))
  unit, scale = tf.cond(_plain_is_safe(plain, values[0].dtype), lambda: plain,
                        lambda: _chunks(values, None, center, True, True))
  return scale * tf.sqrt(tf.maximum(unit, 0.0))


def neighbourhood_scores(squared: tf.Tensor, count) -> tf.Tensor:
  """float64 [K]: each client's sum of squared distances to its ``count`` nearest
  other clients (``squared``: [K, K] with a zero diagonal; +inf stays +inf)."""
  num_clients = tf.shape(squared)[0]
  others = tf.linalg.set_diag(squared, tf.fill([num_clients], tf.constant(np.inf, tf.float64)))
  nearest = tf.sort(others, axis=1)
  used = tf.range(num_clients) < count
  return tf.reduce_sum(tf.where(used[None, :], nearest, tf.zeros_like(nearest)), axis=1)


def first_smallest(scores: tf.Tensor) -> tf.Tensor:
  """int32: the index of the smallest score, the lowest index on ties (``tf.argmin``
  promises no tie order)."""
  return tf.argsort(scores, stable=True)[0]


def half_neighbourhood_scores(squared: tf.Tensor) -> tf.Tensor:
  """float64 [K]: ``neighbourhood_scores`` over the max(1, (K - 1) // 2) nearest others;
  with an honest majority, the smallest belongs to a client among the honest ones."""
  return neighbourhood_scores(squared, tf.maximum((tf.shape(squared)[0] - 1) // 2, 1))


def medoid(squared: tf.Tensor) -> tf.Tensor:
  """int32: the client of smallest ``half_neighbourhood_scores`` (lowest index on ties)."""
  return first_smallest(half_neighbourhood_scores(squared))


def pairwise_gram(values: Sequence[tf.Tensor]) -> Gram:
  """The Gram of the client models ``values`` (list of [K, n_t]) about an honest
  client: client 0, or the medoid where client 0 is far (module docstring)."""
  return Gram(*_traced_pairwise_gram([tf.convert_to_tensor(v) for v in values]))


def _pairwise_gram_graph(values: Sequence[tf.Tensor]) -> Gram:
  gram = client_gram(values, center_row=0)
  scores = half_neighbourhood_scores(squared_distances(gram))
  centre = first_smallest(scores)
  far = scores[0] > FAR_CENTRE_RATIO * scores[centre]
  return tf.cond(far, lambda: _chunks(values, centre, None, True, False), lambda: gram)


_traced_pairwise_gram = reused_graph(_pairwise_gram_graph)


def pairwise_squared_distances(values: Sequence[tf.Tensor]) -> tf.Tensor:
  """float64 [K, K] ||x_i - x_j||^2 of the client models ``values`` (list of [K, n_t])."""
  return squared_distances(pairwise_gram(values))


def cosine_similarities(gram: Gram) -> tf.Tensor:
  """float64 [K, K] <x_i, x_j> / (||x_i|| ||x_j||) from an uncentred Gram (0 where a
  norm is 0; the scales cancel, so huge values change nothing)."""
  norms = tf.sqrt(tf.maximum(tf.linalg.diag_part(gram.unit), 0.0))
  safe = tf.where(norms > 0, norms, tf.ones_like(norms))
  cosine = gram.unit / (safe[:, None] * safe[None, :])
  zero = tf.logical_or(tf.equal(norms, 0.0)[:, None], tf.equal(norms, 0.0)[None, :])
  return tf.where(zero, tf.zeros_like(cosine), tf.clip_by_value(cosine, -1.0, 1.0))


def weighted_sum(values: Sequence[tf.Tensor], coefficients: tf.Tensor) -> list[tf.Tensor]:
  """sum_k coefficients_k values[t][k] for each [K, n_t] tensor."""
  return [tf.linalg.matvec(v, tf.cast(coefficients, v.dtype), transpose_a=True) for v in values]


def require_clients(num_clients: tf.Tensor, minimum: tf.Tensor | int, rule: str) -> list:
  """Control dependencies that stop the kernel when fewer than ``minimum`` clients
  remain; ``rule`` says which (e.g. "krum needs K >= 2f + 3 = 7 (f = 2)").

  A ValueError at trace time when both numbers are known then; otherwise an
  ``InvalidArgumentError`` at run time whose message names both numbers (the
  eager API turns it into a ValueError).
  """
  static_count, static_minimum = tf.get_static_value(num_clients), tf.get_static_value(minimum)
  if static_count is not None and static_minimum is not None:
    if static_count < static_minimum:
      raise ValueError(f"{rule}; got K = {int(static_count)} clients.")
    return []
  return [tf.debugging.Assert(
      tf.cast(num_clients, tf.int32) >= tf.cast(minimum, tf.int32),
      [f"{rule}; got K =", num_clients, "clients (after dropping non-finite ones)"])]
