"""Label flipping (reference ``DatasetSplit``, paper §4.2).

Attackers relabel their training examples of the source class as the target
class (MNIST 1 -> 7, CIFAR-10 cat -> dog, LOAN 0 -> 1), or every label
(Amazon: y -> num_classes - 1 - y, i.e. positive <-> negative).

Success rate: the share of the test examples of the source class (every test
example when all labels flip) that the model assigns the flipped label.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


class LabelFlip:
  """``DataPoisoning`` that flips ``source`` to ``target`` (``source=None``: every label)."""

  def __init__(self, source: int | None, target: int | None, num_classes: int):
    if source is not None and source == target:
      raise ValueError(f"label flip source and target are both {source}.")
    self.source, self.target, self.num_classes = source, target, num_classes
    self.description = (f"labels {source} -> {target}" if source is not None
                        else f"every label y -> {num_classes - 1} - y")

  def flip(self, y):
    """The flipped labels (NumPy or TF, any shape)."""
    if self.source is None:
      return self.num_classes - 1 - y
    if isinstance(y, np.ndarray):
      return np.where(y == self.source, self.target, y)
    return tf.where(tf.equal(y, self.source), tf.cast(self.target, y.dtype), y)

  def poison_batch(self, x, y):
    return x, self.flip(y)

  def success_rate(self, predict, x: np.ndarray, y: np.ndarray) -> float:
    targeted = np.ones(len(y), bool) if self.source is None else (y == self.source)
    if not targeted.any():
      return float("nan")
    return float(np.mean(predict(x[targeted]) == self.flip(y[targeted])))
