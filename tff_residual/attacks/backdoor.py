"""Backdoor by trigger pattern, naive approach (reference ``get_poison_batch``,
paper §4.3 and A.5).

In every training batch of an attacker the first ``per_batch`` examples
(default 20) get the trigger stamped on them and the target label; the rest
stay clean, so the model learns the main task and the backdoor together.

Success rate: the share of test examples whose true label is not the target
that, with the trigger, are classified as the target. (The reference also
counts target-class examples, so its floor is the target's share, about 10%
on MNIST and CIFAR-10; this one's floor is 0.)
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tff_residual.kernels.method_config import check_int
from tff_residual.tasks.base import Trigger


def check_per_batch(per_batch) -> None:
  """ValueError unless ``per_batch`` (``--backdoor_per_batch``) is an int >= 1."""
  check_int("--backdoor_per_batch", per_batch, 1)


class Backdoor:
  """``DataPoisoning``: the first ``per_batch`` examples of a batch get ``trigger`` and ``target``."""

  def __init__(self, trigger: Trigger, target: int, per_batch: int):
    check_per_batch(per_batch)
    self.trigger, self.target, self.per_batch = trigger, int(target), per_batch
    self.description = (f"backdoor: first {per_batch} examples of each batch get "
                        f"{trigger.description} and label {target}")

  def poison_batch(self, x, y):
    mask = tf.constant(self.trigger.mask)
    pattern = tf.cast(tf.constant(self.trigger.pattern), x.dtype)
    poisoned = tf.range(tf.shape(y)[0]) < self.per_batch
    stamped = tf.where(mask[None], pattern[None], x)
    x = tf.where(tf.reshape(poisoned, [-1] + [1] * (len(x.shape) - 1)), stamped, x)
    return x, tf.where(poisoned, tf.cast(self.target, y.dtype), y)

  def success_rate(self, predict, x: np.ndarray, y: np.ndarray) -> float:
    targeted = y != self.target
    if not targeted.any():
      return float("nan")
    stamped = self.trigger.apply(x[targeted])
    return float(np.mean(predict(stamped) == self.target))
