"""A client's local training data as a ``tf.data.Dataset``, the way the
reference's ``LocalUpdate`` iterates it:

    shuffle (reshuffled every epoch) -> batch -> at most ``max_batches`` per
    epoch -> ``epochs`` passes -> augmentation (if any) -> poisoning (attackers)

All randomness comes from ``seed`` (shuffle order; augmentation through
stateless ops), so a round repeats exactly. Labels are int32.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def client_dataset(x: np.ndarray, y: np.ndarray, *, batch_size: int, epochs: int,
                   max_batches: int, seed: int, augment=None, poisoning=None) -> tf.data.Dataset:
  """The batches one client trains on in one round.

  Args:
    x, y: the client's training examples and labels.
    batch_size: mini-batch size.
    epochs: passes over the data.
    max_batches: batches per pass at most (0 = all).
    seed: shuffle and augmentation seed.
    augment: ``ModelSpec.augment`` or None.
    poisoning: a ``DataPoisoning`` (its ``poison_batch``) or None.
  """
  dataset = tf.data.Dataset.from_tensor_slices((x, np.asarray(y, np.int32)))
  dataset = dataset.shuffle(max(len(y), 1), seed=seed, reshuffle_each_iteration=True)
  dataset = dataset.batch(batch_size)
  if max_batches > 0:
    dataset = dataset.take(max_batches)
  dataset = dataset.repeat(epochs)
  if augment is not None:
    base = tf.constant(seed, tf.int64)
    dataset = dataset.enumerate().map(
        lambda index, batch: augment(batch[0], batch[1], tf.stack([base, index])))
  if poisoning is not None:
    dataset = dataset.map(poisoning.poison_batch)
  return dataset
