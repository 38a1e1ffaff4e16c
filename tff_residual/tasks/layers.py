"""Keras layers whose randomness is reproducible inside TFF computations.

Keras' ``Dropout`` draws from stateful random ops inside graphs; TFF runs many
clients' graphs concurrently, so which client gets which masks depends on
scheduling and a run does not repeat. ``SeededDropout`` draws its masks with
``tf.nn.experimental.stateless_dropout`` from a per-step seed that the client
training loop sets (``set_step_seed``), so a run repeats exactly from its seed.
"""

from __future__ import annotations

import tensorflow as tf


class SeededDropout(tf.keras.layers.Dropout):
  """``Dropout`` with masks from ``step_seed`` (int [2]) when one is set.

  Without a step seed (e.g. ``model.fit``) it behaves as ``Dropout``.
  """

  step_seed = None

  def call(self, inputs, training=None):
    if training is None:
      training = tf.keras.backend.learning_phase()
    if self.step_seed is None or self.rate == 0 or training is False:
      return super().call(inputs, training=training)
    return tf.nn.experimental.stateless_dropout(inputs, self.rate, seed=self.step_seed)


def set_step_seed(model: tf.keras.Model, seed) -> None:
  """Sets the seed of every ``SeededDropout`` in ``model`` for the next training step."""
  for layer in model.submodules:
    if isinstance(layer, SeededDropout):
      layer.step_seed = seed
