"""Order statistics along the last axis, for any (also dynamic) length.

The median of an even count is the mean of the two middle values, as in the
authors' ``median_opt`` (docs/reference_differences.md §1, notation); it is *not* the lower
median that ``torch.median`` returns.
"""

from __future__ import annotations

import tensorflow as tf


def median_of_sorted(sorted_values: tf.Tensor, count: tf.Tensor | int | None = None) -> tf.Tensor:
  """Median of the first ``count`` entries of ``sorted_values`` (last axis).

  ``sorted_values`` must be sorted ascending along its last axis. Entries past
  ``count`` are ignored (the repeated median puts the excluded diagonal, +inf,
  there). ``count`` defaults to the length of the last axis and must be >= 1.

  med = (s[(count - 1) // 2] + s[count // 2]) / 2
  """
  if count is None:
    count = tf.shape(sorted_values)[-1]
  count = tf.convert_to_tensor(count, dtype=tf.int32)
  lower = tf.gather(sorted_values, (count - 1) // 2, axis=-1)
  upper = tf.gather(sorted_values, count // 2, axis=-1)
  return 0.5 * (lower + upper)


def median_by_selection(values: tf.Tensor, count: tf.Tensor | int | None = None) -> tf.Tensor:
  """``median_of_sorted(tf.sort(values), count)`` without sorting.

  The ``count`` smallest entries of each row (last axis) are the ones that count;
  larger entries (the excluded +inf diagonal) are ignored, as in
  ``median_of_sorted``. The hi = count // 2 + 1 smallest entries come from
  ``tf.math.top_k(-values, hi, sorted=False)`` (a partial selection, not a sort);
  the largest one of them is s[count // 2] and, for even ``count``, the second
  largest is s[(count - 1) // 2]. The same elements are selected, so the result
  equals the sort-based median exactly.
  """
  if count is None:
    count = tf.shape(values)[-1]
  count = tf.convert_to_tensor(count, dtype=tf.int32)
  smallest = -tf.math.top_k(-values, k=count // 2 + 1, sorted=False).values
  two_largest = tf.math.top_k(smallest, k=2 - count % 2, sorted=True).values
  upper = two_largest[..., 0]
  lower = two_largest[..., -1]
  return 0.5 * (lower + upper)


BROADCAST_RANKS_MAX_CLIENTS = 16
"""Up to this many clients ``counted_ranks`` compares all pairs in one [K, K, c]
step; more clients loop over b."""


def counted_ranks(values: tf.Tensor, dtype: tf.DType = tf.int32) -> tf.Tensor:
  """Stable ranks of ``values`` [K, c] along the client axis 0, by counting.

  rank_k = #{b : y_b < y_k, or y_b = y_k and b < k}, the ranks of
  ``sort_with_ranks``. K^2 comparisons per coordinate. Up to
  ``BROADCAST_RANKS_MAX_CLIENTS`` clients in one broadcast [K, K, c] step (few
  large ops: what TFF's worker, which runs graphs without XLA, needs); above,
  a loop over b with one [K, c] comparison each (materialising [K, K, c] made
  the counting 13x slower at K = 64 under XLA).
  """
  num_clients = tf.shape(values)[0]
  rows = tf.range(num_clients)

  def smaller_than(other, b):
    return tf.logical_or(other < values, tf.logical_and(tf.equal(other, values), b < rows[:, None]))

  def broadcast():
    other = tf.expand_dims(values, 1)  # [b, 1, c] against values [k, c]
    return tf.reduce_sum(tf.cast(smaller_than(other, rows[:, None, None]), dtype), axis=0)

  def loop():
    def step(b, ranks):
      return b + 1, ranks + tf.cast(smaller_than(tf.gather(values, b)[None, :], b), dtype)
    return tf.while_loop(lambda b, _: b < num_clients, step,
                         (tf.constant(0), tf.zeros(tf.shape(values), dtype)))[1]

  return tf.cond(num_clients <= BROADCAST_RANKS_MAX_CLIENTS, broadcast, loop)


PAIRWISE_RANKS_MAX_CLIENTS = 12
"""Up to this many rows (known while the graph is built) ``ranks_of_rows`` compares
each pair once, unrolled. As an XLA program of its own that was 2-4x faster than
``counted_ranks`` at K = 10 and 12, even at 16 and slower above; inside the
L-estimators' chunk program it was slower, so they count (BENCHMARKS.md, "Design
measurements")."""


def ranks_of_rows(values: tf.Tensor, dtype: tf.DType = tf.int32) -> tf.Tensor:
  """``counted_ranks`` of ``values`` [K, c], for XLA programs: with K known while the
  graph is built and at most ``PAIRWISE_RANKS_MAX_CLIENTS``, each pair b < k is
  compared once, e = [y_b <= y_k], adding e to rank_k and 1 - e to rank_b (the
  same counts: a tie goes to the later row); otherwise ``counted_ranks``. Rows of
  +inf (pads) rank above every finite row and leave the finite rows' ranks as
  they are."""
  size = values.shape[0]
  if size is None or size > PAIRWISE_RANKS_MAX_CLIENTS:
    return counted_ranks(values, dtype)
  rows = [values[k] for k in range(size)]
  ranks = [tf.zeros_like(rows[0], dtype) for _ in range(size)]
  for k in range(size):
    for b in range(k):
      at_most = tf.cast(rows[b] <= rows[k], dtype)
      ranks[k] += at_most
      ranks[b] += 1 - at_most
  return tf.stack(ranks)


def middle_of_ranked(values: tf.Tensor, ranks: tf.Tensor, offset: int = 0) -> tf.Tensor:
  """Median over the client axis 0 of ``values`` [K, c] whose ``counted_ranks`` are known.

  The median of the sorted values from position ``offset`` on (offset 1: without
  the smallest); the value of rank p is picked as sum_k [rank_k = p] y_k (exactly
  one k, the ranks are a permutation), so the result equals
  ``median_of_sorted(tf.sort(values, axis=0)[offset:])``.
  """
  def pick(position):
    chosen = tf.equal(ranks, tf.cast(position, ranks.dtype))
    return tf.reduce_sum(tf.where(chosen, values, tf.zeros_like(values)), axis=0)

  lower, upper = middle_positions(tf.shape(values)[0], offset)
  return 0.5 * (pick(lower) + pick(upper))


def middle_positions(size, offset: int = 0):
  """Sorted positions (lower, upper) whose mean is the median of the ``size - offset``
  values from position ``offset`` on (equal for an odd count); ints or int tensors."""
  count = size - offset
  return offset + (count - 1) // 2, offset + count // 2


def median_by_counting(values: tf.Tensor, offset: int = 0) -> tf.Tensor:
  """``middle_of_ranked`` of ``values`` [K, c] with their ``counted_ranks``."""
  return middle_of_ranked(values, counted_ranks(values, values.dtype), offset)


def median(values: tf.Tensor) -> tf.Tensor:
  """Median along the last axis (mean of the two middle values for even counts)."""
  return median_of_sorted(tf.sort(values, axis=-1))


def sort_with_ranks(values: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """Sorts ``values`` [c, K] along the last axis.

  Returns ``(sorted_values, order, ranks)``: ``sorted_values = values[order]``
  row by row, and ``ranks[k]`` is the 0-based position of ``values[k]`` in the
  sorted row (the "argsort of argsort" of the reference code; ties get distinct
  ranks in a stable order).
  """
  order = tf.argsort(values, axis=-1, stable=True)
  sorted_values = tf.gather(values, order, batch_dims=1)
  ranks = tf.argsort(order, axis=-1, stable=True)
  return sorted_values, order, ranks
