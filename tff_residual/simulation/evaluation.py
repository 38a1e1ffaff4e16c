"""Evaluation of the global model after each round, outside TFF (eager Keras).

* accuracy and mean loss on the clean test set (reference ``test``: per-class
  accuracies weighted by class size = plain accuracy);
* the attack success rate of the attack's data poisoning (``success_rate`` of
  ``LabelFlip`` / ``Backdoor``), NaN where the attack has none.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tensorflow as tf

from tff_residual.simulation.model_outputs import example_losses, predicted_labels
from tff_residual.tasks.base import Arrays, ModelSpec

EVAL_BATCH = 1024


class Evaluation(NamedTuple):
  accuracy: float
  loss: float
  attack_success_rate: float


class Evaluator:
  """Evaluates weight lists of ``model_spec``'s model on ``test``."""

  def __init__(self, model_spec: ModelSpec, test: Arrays, success_metric=None):
    self._model = model_spec.build()
    self._kind = model_spec.loss
    self._test = test
    self._success_metric = success_metric
    self._logits = tf.function(lambda x: self._model(x, training=False), reduce_retracing=True)

  def logits(self, x: np.ndarray) -> np.ndarray:
    return np.concatenate([self._logits(x[i:i + EVAL_BATCH]).numpy()
                           for i in range(0, len(x), EVAL_BATCH)]) if len(x) else np.zeros((0, 1))

  def predict(self, x: np.ndarray) -> np.ndarray:
    return predicted_labels(self._kind, tf.constant(self.logits(x))).numpy()

  def evaluate(self, weights: list) -> Evaluation:
    self._model.set_weights(weights)
    logits = tf.constant(self.logits(self._test.x))
    labels = tf.constant(self._test.y)
    loss = float(tf.reduce_mean(example_losses(self._kind, labels, logits)))
    accuracy = float(np.mean(predicted_labels(self._kind, logits).numpy() == self._test.y))
    success = float("nan")
    if self._success_metric is not None:
      success = self._success_metric.success_rate(self.predict, self._test.x, self._test.y)
    return Evaluation(accuracy, loss, success)
