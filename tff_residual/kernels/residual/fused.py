"""The residual reweighting's order statistics without sorting (fast path).

The order statistics of ``residual_reweighting.coordinate_statistics`` for the
default configuration (``variant="reference"``, repeated-median line, Huber
confidences), computed in client order instead of sorted order; eqs. 3-11 are
``equations``' (``_weigh``, ``reweighted_sum``):

* ranks by counting, x_a = #{b : y_b < y_a, or y_b = y_a and b < a} (the
  stable argsort's ranks; ``order_statistics.counted_ranks``);
* the eq. 1 slopes (y_b - y_a) / (x_b - x_a) are the sorted-order slopes
  (y_(j) - y_(i)) / (j - i) with i = x_a, j = x_b, the same floating-point
  operations, so every median sees the same numbers;
* the K inner medians med_{b != a} of eq. 1 are a min/max selection network
  (``sorting_networks``) over K wires of shape [K, c], fused by XLA
  (``tf.function(jit_compile=True)``): no [c, K, K] tensor and no sort kernel;
* the other medians (the outer one of eq. 1, med(y), the scale M of eq. 3) are
  selection networks over K wires of shape [c] up to ``NETWORK_MEDIANS_MAX_CLIENTS``
  clients, else picked by counted ranks (``order_statistics.middle_of_ranked``);
  each is an XLA program of its own (fused with the counting of ranks, XLA's
  code was several times slower: BENCHMARKS.md, "Design measurements").

Cost per coordinate: O(K^2) for ranks and slopes, O(K log^2 K) comparisons per
median, so O(K^2 log^2 K) in all, in registers rather than memory.

Only the networks need K when the graph is built. A static client count B
builds networks of B wires; when clients are dropped for NaN/Inf values, the
B - K missing wires hold -inf (the first floor((B - K) / 2)) and +inf (the rest),
which shifts the median's positions by a static amount per parity of B - K and
leaves its value unchanged. The ranks and eqs. 3-11 run on the K real rows.

An unknown K (TFF's dynamic client axis) takes the *plain-executor* path
(``plain_chunk_statistics``), one branch per K in ``BUCKETS``: TFF's worker runs
graphs op by op without XLA (``tests/test_runtime.py``), where the programs above
are several times slower than this path (BENCHMARKS.md, "Design measurements").
Its ops are the ones that are cheap one at a time there (Sub, Sign, Mul,
Minimum/Maximum, row slices; Cast, Select, Roll, Gather and thin MatMuls were
4-10x slower per element than Minimum in a per-op trace): ranks from the signs of
the K - 1 cyclic row differences, slopes on the same differences, and the outer
median, med(y) and M by networks over the K rows. 13..32 clients are padded to
the branch of 20 or 32 rows (``PADDED_BUCKETS``, ``padded_plain_chunk_statistics``),
which is 3-4x faster in the worker than the sorting path and costs a few seconds of
graph building once (BENCHMARKS.md, "Design measurements").
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tff_residual.kernels import chunking
from tff_residual.kernels import order_statistics
from tff_residual.kernels.residual import equations
from tff_residual.kernels.residual import sorting_networks

MAX_CLIENTS = 128
"""Most clients of the fast path when K is known while the graph is built."""
BUCKETS = tuple(range(3, 13))
"""Client counts with a plain-executor branch, built when K is unknown while the
graph is built (TFF's stacks). Every branch is in every TFF graph, so each one
more slows creating the process and its first call (BENCHMARKS.md, "Design
measurements")."""
PADDED_BUCKETS = (20, 32)
"""Network sizes B for 13..32 clients when K is unknown while the graph is built:
the K rows are padded to the smallest B that holds them
(``padded_plain_chunk_statistics``)."""
DYNAMIC_MAX_CLIENTS = PADDED_BUCKETS[-1]
PLAIN_SLOPES_PER_CHUNK = 2**20
"""Bound on size^2 x width, the slope wires of one plain-executor chunk (4 MB of
float32): the fastest of the widths tried in TFF's worker (BENCHMARKS.md, "Design
measurements")."""
NETWORK_MEDIANS_MAX_CLIENTS = 32
"""Up to this static client count the outer median of eq. 1, med(y) and M are
networks over B wires of shape [c]; above, they are counted (K^2 comparisons):
the networks' XLA compilation grows past minutes at B = 100 (BENCHMARKS.md,
"Design measurements")."""
MAX_CHUNK_WIDTH = 4096
"""Coordinates per call where K is unknown while the graph is built (the plain-executor
path, TFF's worker): small enough for the working set to stay in cache."""
FUSED_CHUNK_VALUES = 2**19
"""Client values per chunk (B x width) of the XLA programs, whose client count B is
known: 2^19 // B coordinates (52,428 at B = 10, 4,096 at B = 128). At N = 1e6 the
kernel took a half to a third of the time at K = 10 with 16,384-65,536 coordinates
per chunk than with 4,096 (BENCHMARKS.md, "Design measurements")."""
BYTES_PER_CLIENT_VALUE = 32 * 4
"""Generous bound on the temporaries of one client's value in a fused call (float32)."""
BYTES_PER_COORDINATE = BYTES_PER_CLIENT_VALUE * MAX_CLIENTS
"""The same bound for one coordinate of MAX_CLIENTS clients."""


def supports(variant: str, estimator: str, weighting: str) -> bool:
  """Whether a configuration has the fast path."""
  return variant == "reference" and estimator == "repeated_median" and weighting == "huber"


def check_max_clients(max_clients: int) -> None:
  """ValueError unless the static client bound is within the XLA path's 3..MAX_CLIENTS."""
  if not 3 <= max_clients <= MAX_CLIENTS:
    raise ValueError(f"{max_clients} clients are outside the fused path's 3..{MAX_CLIENTS}.")


def chunk_width(chunk_size: int | None, memory_budget_bytes: int,
                max_clients: int | None = None) -> int:
  """Static number of coordinates per fused call: ``chunk_size``, else as many as
  fit the budget with ``chunking.FIXED_WIDTH_CHUNKS_IN_FLIGHT`` chunks at once, at
  most ``MAX_CHUNK_WIDTH`` (K unknown: ``max_clients`` None) or
  ``FUSED_CHUNK_VALUES // max_clients`` (the XLA programs for a static bound)."""
  if chunk_size is not None:
    return int(chunk_size)
  if max_clients is None:
    per_coordinate, most = BYTES_PER_COORDINATE, MAX_CHUNK_WIDTH
  else:
    per_coordinate, most = BYTES_PER_CLIENT_VALUE * max_clients, FUSED_CHUNK_VALUES // max_clients
  per_coordinate *= chunking.FIXED_WIDTH_CHUNKS_IN_FLIGHT
  return int(max(1, min(most, memory_budget_bytes // per_coordinate)))


def inner_median_positions(size: int) -> tuple[tuple[int, int], tuple[int, int]]:
  """Sorted positions of the inner median among ``size`` wires, for an even and
  an odd number of padded wires P = size - K.

  Row a's wires: floor(P/2) times -inf, its K - 1 slopes, +inf (b = a) and
  ceil(P/2) times +inf, so the median of the K - 1 slopes sits at
  floor(P/2) + floor((K-2)/2) and floor(P/2) + floor((K-1)/2): (B-2)//2 and (B-1)//2
  for even P, (B-3)//2 and (B-2)//2 for odd P, i.e. the middle of B - 1 and of
  B - 2 values (the rule of ``_padded_median_of_wires``, the diagonal not counted).
  """
  return (order_statistics.middle_positions(size - 1),
          order_statistics.middle_positions(size - 2))


@functools.lru_cache(maxsize=None)
def _inner_medians(size: int):
  """The XLA program of the inner medians for ``size`` wires (compiled per chunk shape)."""
  indices = np.arange(size)
  # NumPy, not tf.constant: this cache outlives the graph it is first built in.
  diagonal = (indices[:, None] == indices[None, :])[:, :, None]
  even, odd = inner_median_positions(size)
  positions = sorted(set(even + odd))

  @tf.function(jit_compile=True, autograph=False)
  def inner_medians(values, ranks, num_clients):
    """[B, c]: med_{b != a} (y_b - y_a) / (x_b - x_a) for every real row a (eq. 1)."""
    inf = tf.constant(math.inf, values.dtype)
    real, fill, odd_padding = _pads(size, num_clients, values.dtype)
    wires = []
    for b in range(size):  # one [B, c] wire per other client b (rows a)
      slope = (values[b:b + 1] - values) / (ranks[b:b + 1] - ranks)
      slope = tf.where(diagonal[b], inf, slope)
      wires.append(tf.where(real[b], slope, fill[b]))
    picked = dict(zip(positions, sorting_networks.select(wires, positions)))
    lower = tf.where(odd_padding, picked[odd[0]], picked[even[0]])
    upper = tf.where(odd_padding, picked[odd[1]], picked[even[1]])
    return 0.5 * (lower + upper)

  return inner_medians


@tf.function(jit_compile=True, autograph=False)
def _ranks_of_rows(rows, num_clients):
  """[B, c]: the stable ranks x of the first ``num_clients`` rows of ``rows`` [B, c]
  among themselves (``order_statistics.ranks_of_rows``, the other rows taken as
  +inf pads, which rank after them: K..B-1)."""
  real = (tf.range(rows.shape[0]) < num_clients)[:, None]
  padded = tf.where(real, rows, tf.constant(math.inf, rows.dtype))
  return order_statistics.ranks_of_rows(padded, rows.dtype)


def _pads(size: int, num_clients: tf.Tensor, dtype: tf.DType):
  """For B = ``size`` wires of which the first K = ``num_clients`` are real: which
  are real [B], the value of each pad [B] (the first floor(P/2) of the P = B - K
  pads -inf, the rest +inf) and whether P is odd."""
  inf = tf.constant(math.inf, dtype)
  num_pads = size - num_clients
  wire = tf.range(size)
  fill = tf.where(wire - num_clients < num_pads // 2, -inf, inf)
  return wire < num_clients, fill, tf.equal(num_pads % 2, 1)


def _padded_wires(rows: tf.Tensor, num_clients: tf.Tensor):
  """The B rows of ``rows`` [B, c] as wires, rows from ``num_clients`` on replaced
  by ``_pads``, and whether their count is odd: the input of
  ``_padded_median_of_wires``."""
  size = rows.shape[0]
  real, fill, odd_padding = _pads(size, num_clients, rows.dtype)
  return [tf.where(real[b], rows[b], fill[b]) for b in range(size)], odd_padding


@tf.function(jit_compile=True, autograph=False)
def _median_of_rows(rows, num_clients):
  """[c]: the median of the first ``num_clients`` rows of ``rows`` [B, c] (med(y),
  and b1 = med_a of the inner medians, eq. 1), by one network over B wires."""
  return _padded_median_of_wires(*_padded_wires(rows, num_clients))


@tf.function(jit_compile=True, autograph=False)
def _scale_median_of_rows(values, ranks, slope, value_median, num_clients):
  """M [c] of eq. 3: the median of the absolute residuals |y - l| of the first
  ``num_clients`` rows of ``values`` and ``ranks`` [B, c], without their smallest."""
  line = equations.reference_line(ranks, slope, value_median, num_clients, axis=0)
  return _padded_median_of_wires(*_padded_wires(tf.abs(values - line), num_clients), offset=1)


@tf.function(jit_compile=True, autograph=False)
def _ranks_and_median(values):
  """x [K, c], the clients' stable ranks, and med(y) [c] by counting (more than
  ``NETWORK_MEDIANS_MAX_CLIENTS`` clients)."""
  ranks = order_statistics.counted_ranks(values, values.dtype)
  return ranks, order_statistics.middle_of_ranked(values, ranks)


@tf.function(jit_compile=True, autograph=False)
def _outer_median_by_counting(inner):
  """b1 [c] = med_a inner_a (eq. 1) by counting. A program of its own: fused with the
  pick of med(y), XLA's code was several times slower (BENCHMARKS.md, "Design
  measurements")."""
  return order_statistics.median_by_counting(inner)


@tf.function(jit_compile=True, autograph=False)
def _scale_median_by_counting(values, ranks, slope, value_median):
  """M [c] of eq. 3 on [K, c] by counting (more than ``NETWORK_MEDIANS_MAX_CLIENTS``)."""
  return order_statistics.median_by_counting(
      tf.abs(values - _line(ranks, slope, value_median)), offset=1)


def _line(ranks, slope, value_median):
  """The line at every client's rank [K, c]."""
  return equations.reference_line(ranks, slope, value_median, tf.shape(ranks)[0], axis=0)


@functools.lru_cache(maxsize=None)
def _weigh(rule: equations.Rule):
  """The XLA program of eqs. 3-10 for one chunk, given the line's slope, med(y) and M."""

  @tf.function(jit_compile=True, autograph=False)
  def weigh(values, ranks, slope, value_median, spread_of_residuals, num_columns):
    """``equations.weigh`` on [K, c], its eq. 10 terms and replacements summed per client."""
    dtype = values.dtype
    corrected, terms, replace = equations.weigh(
        values, ranks, _line(ranks, slope, value_median), spread_of_residuals, rule, axis=0)
    # Padding columns out by multiplying with a 0/1 mask (cheaper than a float64
    # select in TFF's plain executor; the same numbers).
    column_mask = tf.cast(tf.range(tf.shape(values)[1]) < num_columns, dtype)[None, :]
    contribution = tf.cast(terms * column_mask, tf.float64)
    replaced = tf.cast(replace, dtype) * column_mask
    if values.shape[1] is not None and values.shape[1] <= 2**24:  # counts exact in float32
      counts = tf.cast(tf.reduce_sum(replaced, axis=1), tf.float64)
    else:
      counts = tf.reduce_sum(tf.cast(replaced, tf.float64), axis=1)
    return corrected, tf.reduce_sum(contribution, axis=1), counts

  return weigh


def chunk_statistics(chunk: tf.Tensor, num_columns: tf.Tensor, rule: equations.Rule,
                     max_clients: int):
  """Algorithm 1, lines 2-11, on ``chunk`` [K, c] in client order, by XLA programs.

  Columns from ``num_columns`` on are padding: they are computed but not summed.
  ``max_clients``, a static bound on K (3..MAX_CLIENTS), is the one network size
  built; fewer clients (some dropped) pad it.
  Returns (corrected [K, c], sum_n w_nk std(w_n) [K] float64, #replaced [K] float64).
  """
  check_max_clients(max_clients)
  num_clients = tf.shape(chunk)[0]
  networks = max_clients <= NETWORK_MEDIANS_MAX_CLIENTS
  pad = [[0, max_clients - num_clients], [0, 0]]
  padded_values = tf.ensure_shape(tf.pad(chunk, pad), [max_clients, chunk.shape[1]])
  if networks:  # the pad rows' ranks (K..B-1) are never read: every network masks them
    padded_ranks = _ranks_of_rows(padded_values, num_clients)
    ranks = padded_ranks[:num_clients]
    value_median = _median_of_rows(padded_values, num_clients)
  else:
    ranks, value_median = _ranks_and_median(chunk)
    padded_ranks = tf.ensure_shape(tf.pad(ranks, pad), [max_clients, chunk.shape[1]])
  inner = _inner_medians(max_clients)(padded_values, padded_ranks, num_clients)
  if networks:
    slope = _median_of_rows(inner, num_clients)
    spread = _scale_median_of_rows(padded_values, padded_ranks, slope, value_median,
                                   num_clients)
  else:
    slope = _outer_median_by_counting(inner[:num_clients])
    spread = _scale_median_by_counting(chunk, ranks, slope, value_median)
  return _weigh(rule)(chunk, ranks, slope, value_median, spread, num_columns)


def _middles(wires: Sequence[tf.Tensor], pairs) -> list[tf.Tensor]:
  """Per (lower, upper) pair of sorted positions of ``wires``, the mean of the two
  order statistics (the one itself when lower == upper), all by one network."""
  positions = sorted({position for pair in pairs for position in pair})
  picked = dict(zip(positions, sorting_networks.select(wires, positions)))
  return [picked[lower] if lower == upper else 0.5 * (picked[lower] + picked[upper])
          for lower, upper in pairs]


def _median_of_wires(wires: Sequence[tf.Tensor], offset: int = 0) -> tf.Tensor:
  """Median of same-shaped ``wires`` from sorted position ``offset`` on, elementwise."""
  return _middles(wires, [order_statistics.middle_positions(len(wires), offset)])[0]


def _cyclic_ranks(values: tf.Tensor, size: int):
  """(D_d for d = 1..size-1, the stable ranks x [size, c]) of ``values`` [size, c].

  With rows taken cyclically, D_d = y_{a+d} - y_a (row slices of [y; y], no
  gather) and g_d = sign(D_d):
    x_a = #{b : y_b < y_a} + #{b < a : y_b = y_a}
        = (size-1)/2 - 1/2 sum_d g_d + sum_d (1 - g_d^2) (m_d - 1/2),  m_d = [a + d >= size]
  (row a's partner b = a + d - size < a exactly when m_d), exact in float32. A
  difference that underflows to 0 (values ~1e-38 apart, flushed to zero) counts
  as a tie.
  """
  doubled = tf.concat([values, values], axis=0)
  rows = np.arange(size)[:, None]
  tie_side = [np.where(rows + d >= size, 0.5, -0.5).astype(np.float32) for d in range(1, size)]
  differences, sign_sum, tie_sum = {}, 0.0, 0.0
  for d in range(1, size):
    differences[d] = doubled[d:d + size] - values
    sign = tf.sign(differences[d])
    sign_sum += sign
    tie_sum += tf.square(sign) * tie_side[d - 1]
  constant = ((size - 1) / 2.0 + np.sum(tie_side, axis=0)).astype(np.float32)
  return differences, constant - 0.5 * sign_sum - tie_sum


def _cyclic_slopes(differences: dict, ranks: tf.Tensor, size: int) -> list[tf.Tensor]:
  """The K - 1 wires [size, c] of eq. 1's slopes, D_d / (x_{a+d} - x_a) for d = 1..size-1:
  the sorted-order slopes (y_(j) - y_(i)) / (j - i). Wire size - d is wire d
  shifted by d rows (the same pairs), so only half of them are divided."""
  doubled_ranks = tf.concat([ranks, ranks], axis=0)
  slopes = {}
  for d in range(1, size):
    if size - d in slopes:
      mirrored = slopes[size - d]
      slopes[d] = tf.concat([mirrored[d:], mirrored[:d]], axis=0)
    else:
      slopes[d] = differences[d] / (doubled_ranks[d:d + size] - ranks)
  return [slopes[d] for d in range(1, size)]


def plain_chunk_statistics(chunk: tf.Tensor, num_columns: tf.Tensor, num_clients: int,
                           rule: equations.Rule):
  """``chunk_statistics`` for exactly ``num_clients`` (K) rows, for a graph
  executor without XLA (TFF's worker): the same corrected values and counts to
  the bit (the eq. 10 sums up to float32 rounding), other ops.

  Ranks from the signs of the K - 1 cyclic row differences (``_cyclic_ranks``),
  slopes on the same differences (``_cyclic_slopes``); the inner medians are a
  network over the K - 1 slope wires [K, c]; med(y), the outer median of eq. 1
  and the scale M of eq. 3 are networks over the K rows.
  """
  k = num_clients
  values = tf.ensure_shape(chunk, [k, chunk.shape[1]])
  differences, ranks = _cyclic_ranks(values, k)
  inner = _median_of_wires(_cyclic_slopes(differences, ranks, k))
  slope = _median_of_wires(tf.unstack(inner, k))
  value_median = _median_of_wires(tf.unstack(values, k))
  residuals = tf.abs(values - _line(ranks, slope, value_median))
  spread = _median_of_wires(tf.unstack(residuals, k), offset=1)
  return _weigh(rule)(values, ranks, slope, value_median, spread, num_columns)


def _padded_median_of_wires(wires: Sequence[tf.Tensor], odd_padding: tf.Tensor,
                            offset: int = 0) -> tf.Tensor:
  """Median of the real values among ``wires`` from position ``offset`` on, where
  P of the wires are pads, floor(P/2) below every real value and ceil(P/2) above:
  the real middle sits at ``middle_positions(n)`` for even P and
  ``middle_positions(n - 1)`` for odd P (n wires). One network picks both."""
  even, odd = _middles(wires, [order_statistics.middle_positions(len(wires), offset),
                               order_statistics.middle_positions(len(wires) - 1, offset)])
  return tf.where(odd_padding, odd, even)


def padded_plain_chunk_statistics(chunk: tf.Tensor, num_columns: tf.Tensor, size: int,
                                  rule: equations.Rule):
  """``plain_chunk_statistics`` for 3 <= K <= ``size`` (B) rows, K known only at
  run time: one network of B wires serves every K up to B, the same numbers to
  the bit.

  The K rows are padded to B with P = B - K rows, the first floor(P/2) of them
  -inf and the rest +inf. A real row's cyclic ranks then count the -inf rows
  below it, so floor(P/2) is subtracted; pad rows get rank B (above every real
  one), so a real row's slope to a -inf row is -inf / (B - x_a) = -inf and to a
  +inf row +inf: its B - 1 slope wires are its K - 1 slopes between floor(P/2)
  -inf and ceil(P/2) +inf, and so are the B rows of y, of the inner medians and of
  the residuals once their pad rows hold the same fill (``_padded_median_of_wires``).
  Eqs. 3-10 run on the K real rows.
  """
  k = tf.shape(chunk)[0]
  width = chunk.shape[1]
  padding = size - k
  below = padding // 2
  pad_rows = tf.range(padding)[:, None]
  fill = tf.broadcast_to(tf.where(pad_rows < below, -math.inf, math.inf), [padding, width])
  fill = tf.cast(fill, chunk.dtype)
  odd_padding = tf.equal(padding % 2, 1)
  values = tf.ensure_shape(tf.concat([chunk, fill], axis=0), [size, width])
  differences, counted = _cyclic_ranks(values, size)
  real = tf.range(size)[:, None] < k
  ranks = tf.where(real, counted - tf.cast(below, chunk.dtype), float(size))
  wires = _cyclic_slopes(differences, ranks, size)
  inner = _padded_median_of_wires(wires, odd_padding)[:k]
  padded = lambda rows: tf.ensure_shape(tf.concat([rows, fill], axis=0), [size, width])
  slope = _padded_median_of_wires(tf.unstack(padded(inner), size), odd_padding)
  value_median = _padded_median_of_wires(tf.unstack(values, size), odd_padding)
  real_ranks = ranks[:k]
  residuals = tf.abs(chunk - _line(real_ranks, slope, value_median))
  spread = _padded_median_of_wires(tf.unstack(padded(residuals), size), odd_padding, offset=1)
  return _weigh(rule)(chunk, real_ranks, slope, value_median, spread, num_columns)


def reweighted_sum(matrix: tf.Tensor, width: int, rule: equations.Rule,
                   sample_weights: tf.Tensor | None, max_clients: int | None = None):
  """Algorithm 1 on ``matrix`` [K, n] in chunks of ``width`` coordinates.

  The clients' weights p [K] are ``equations.client_weights`` of the eq. 10
  sums (eq. 11; ``sample_weights`` as there). ``max_clients``: a static bound on
  K (the XLA programs of ``chunk_statistics``), or None when K is unknown while
  the graph is built:
  then one branch per K in ``BUCKETS`` runs ``plain_chunk_statistics`` (the
  caller keeps K within them).

  Returns (sum_k p_k y'_k [n], p [K], share of each client's coordinates replaced [K]).
  """
  def run(fixed, statistics, width=width):
    corrected, (total, replaced) = chunking.map_fixed_width_chunks(
        fixed, lambda chunk, columns: _split(statistics(chunk, columns)), width,
        [fixed.shape[0], width], [tf.zeros([tf.shape(fixed)[0]], tf.float64)] * 2)
    p = equations.client_weights(total, rule.variant, sample_weights)
    num_coordinates = tf.cast(tf.shape(fixed)[1], tf.float64)
    return (weighted_sum(corrected, p, tf.shape(fixed)[1]), p,
            replaced / tf.maximum(num_coordinates, 1.0))

  if max_clients is not None:  # chunk_statistics checks the bound
    return run(matrix, lambda chunk, columns: chunk_statistics(chunk, columns, rule, max_clients))

  def exact(k):
    return lambda: run(tf.ensure_shape(matrix, [k, None]), lambda chunk, columns:
                       plain_chunk_statistics(chunk, columns, k, rule),
                       plain_width(width, k))

  def padded(size):
    return lambda: run(matrix, lambda chunk, columns:
                       padded_plain_chunk_statistics(chunk, columns, size, rule),
                       plain_width(width, size))

  return tf.switch_case(plain_branch_index(tf.shape(matrix)[0]),
                        [exact(k) for k in BUCKETS] + [padded(size) for size in PADDED_BUCKETS])


def plain_width(width: int, size: int) -> int:
  """Chunk width of a plain-executor branch with ``size`` rows: at most ``width``
  and at most ``PLAIN_SLOPES_PER_CHUNK`` / size^2 columns."""
  return int(max(1, min(width, PLAIN_SLOPES_PER_CHUNK // (size * size))))


def plain_branch_index(num_clients: tf.Tensor) -> tf.Tensor:
  """The ``tf.switch_case`` index of K's plain-executor branch, the smallest of the
  increasing sizes ``BUCKETS + PADDED_BUCKETS`` that holds K: how many are below K."""
  sizes = tf.constant(BUCKETS + PADDED_BUCKETS, tf.int32)
  return tf.reduce_sum(tf.cast(sizes < num_clients, tf.int32))


def _split(statistics):
  """(corrected, contribution, count) -> (corrected, [contribution, count])."""
  fixed, contribution, count = statistics
  return fixed, [contribution, count]


def weighted_sum(corrected: tf.TensorArray, weights: tf.Tensor, n: tf.Tensor) -> tf.Tensor:
  """sum_k p_k y'_k, chunk by chunk (no second copy of the corrected values); [n]."""
  sums = tf.TensorArray(corrected.dtype, size=corrected.size(), infer_shape=False)

  def body(index, sums):
    chunk = corrected.read(index)
    return index + 1, sums.write(index, tf.linalg.matvec(chunk, tf.cast(weights, chunk.dtype),
                                                         transpose_a=True))

  _, sums = tf.while_loop(lambda index, _: index < corrected.size(), body,
                          (tf.constant(0), sums), parallel_iterations=1)
  return sums.concat()[:n]
