"""Losses and predicted labels for the two kinds of model output (``ModelSpec.loss``).

* "sparse_categorical": logits [n, classes], cross-entropy with integer labels;
* "binary": one logit [n, 1], sigmoid cross-entropy with 0/1 labels.
"""

from __future__ import annotations

import tensorflow as tf

LOSS_KINDS = ("sparse_categorical", "binary")


def example_losses(kind: str, labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
  """Loss per example [n]."""
  if kind == "sparse_categorical":
    return tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
  if kind == "binary":
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(labels, logits.dtype),
                                                   logits=tf.squeeze(logits, axis=-1))
  raise ValueError(f"unknown loss kind {kind!r}; expected one of {LOSS_KINDS}.")


def predicted_labels(kind: str, logits: tf.Tensor) -> tf.Tensor:
  """Predicted integer labels [n]."""
  if kind == "binary":
    return tf.cast(tf.squeeze(logits, axis=-1) > 0, tf.int64)
  return tf.argmax(logits, axis=-1)
