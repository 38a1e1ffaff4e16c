"""Order statistics along the last axis, for any (also dynamic) length.

The median of an even count is the mean of the two middle values, as in the
authors' ``median_opt`` (reference_protocol §1, notation); it is *not* the lower
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
