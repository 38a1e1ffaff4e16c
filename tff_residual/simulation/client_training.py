"""Local training of a round's clients: as one TFF computation, or in this process.

``ClientTrainer.train(global_weights, datasets, learning_rates, seeds)`` runs

    federated_map(client_update, (federated_broadcast(global_weights), datasets, learning_rates, seeds))

on the TFF runtime (``execution="tff"``, the default), or calls the same
``local_training`` function as a ``tf.function`` in this process, several
clients at once on threads, one model each (``execution="in_process"``:
TensorFlow places it, on the GPU when one is present; TFF 0.87's
``worker_binary`` is CPU-only). Either way it returns
each client's update (local weights minus the global weights, every Keras
weight including BatchNorm's moving statistics, as the reference aggregates the
whole state_dict), its mean training loss and its number of training batches'
examples.

``local_training`` assigns the global weights to the task's Keras model and
runs the client optimizer over the client's batches (``SeededDropout`` layers
get a per-step seed, so runs repeat): TFF's functional ``build_sgdm``
(v <- m v + g; w <- w - lr v, as torch's SGD; fresh momentum every round, as
the reference creates a new optimizer per client per round) or ``build_adam``.
The learning rate is a per-client input, so attackers can train with the
reference's boosted rate.
"""

from __future__ import annotations

import concurrent.futures
import os
import queue
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tff_residual.simulation.model_outputs import example_losses
from tff_residual.simulation.placement import EXECUTIONS
from tff_residual.tasks.base import ModelSpec
from tff_residual.tasks.layers import set_step_seed


class ClientResult(NamedTuple):
  update: list          # list[np.ndarray], local - global, per Keras weight
  mean_loss: float
  num_examples: int     # examples seen in training (over all epochs)


def build_optimizer(name: str, learning_rate: float, momentum: float):
  """TFF's functional optimizer ``name`` ("sgdm" or "adam")."""
  if name == "sgdm":
    return tff.learning.optimizers.build_sgdm(learning_rate=learning_rate,
                                              momentum=momentum if momentum > 0 else None)
  if name == "adam":
    return tff.learning.optimizers.build_adam(learning_rate=learning_rate)
  raise ValueError(f"unknown optimizer {name!r}; expected 'sgdm' or 'adam'.")


def weights_type(model: tf.keras.Model) -> tff.types.Type:
  """The TFF type of ``model.weights`` as a list."""
  return tff.types.to_type([tff.TensorType(v.dtype.as_numpy_dtype, v.shape) for v in model.weights])


PARALLEL_CLIENTS = min(4, os.cpu_count() or 1)
"""Clients trained at once in process: one per core, at most 4."""


def local_training(model: tf.keras.Model, client_optimizer, loss_kind: str):
  """``train(initial_weights, dataset, learning_rate, seed)`` -> (update, mean loss,
  examples) of one client on ``model``: the one training loop of both executions
  (the TFF computation wraps it; the in-process path calls it as a ``tf.function``)."""
  trainable = model.trainable_variables

  def train(initial_weights, dataset, learning_rate, seed):
    for variable, value in zip(model.weights, initial_weights):
      variable.assign(value)
    specs = tuple(tf.TensorSpec(v.shape, v.dtype) for v in trainable)
    state = client_optimizer.initialize(specs)
    hparams = client_optimizer.get_hparams(state)
    hparams["learning_rate"] = learning_rate
    state = client_optimizer.set_hparams(state, hparams)

    def step(carry, batch):
      state, loss_sum, count = carry
      x, y = batch
      set_step_seed(model, tf.stack([seed, tf.cast(count, tf.int64)]))
      with tf.GradientTape() as tape:
        loss = tf.reduce_mean(example_losses(loss_kind, y, model(x, training=True)))
      gradients = tuple(tf.convert_to_tensor(g) for g in tape.gradient(loss, trainable))
      state, new_weights = client_optimizer.next(state, tuple(trainable), gradients)
      for variable, value in zip(trainable, new_weights):
        variable.assign(value)
      size = tf.cast(tf.shape(y)[0], tf.float32)
      return state, loss_sum + loss * size, count + size

    _, loss_sum, count = dataset.reduce((state, 0.0, 0.0), step)
    update = [variable - value for variable, value in zip(model.weights, initial_weights)]
    return update, loss_sum / tf.maximum(count, 1.0), count

  return train


class ClientTrainer:
  """Trains K clients from the same global model, with TFF or in this process.

  Args:
    model_spec: the task's model.
    example_dtype, example_shape: dtype and shape of one training example.
    optimizer: "sgdm" or "adam"; ``momentum`` for sgdm.
    execution: "tff" (one TFF computation per round, on TFF's worker) or
      "in_process" (``local_training`` as a ``tf.function`` in this process).
    parallel_clients: in process, how many clients train at once (threads, one model
      each), as TFF's worker runs a round's clients concurrently; default
      ``PARALLEL_CLIENTS``. Each client's result depends on its own inputs only, so the
      number changes no result.
  """

  def __init__(self, model_spec: ModelSpec, example_dtype, example_shape: Sequence[int],
               optimizer: str, momentum: float, execution: str = "tff",
               parallel_clients: int | None = None):
    if execution not in EXECUTIONS:
      raise ValueError(f"execution must be one of {EXECUTIONS}, got {execution!r}")
    self.execution = execution
    template = model_spec.build()
    self.weights_type = weights_type(template)
    self.weight_dtypes = [v.dtype.as_numpy_dtype for v in template.weights]
    loss_kind = model_spec.loss
    client_optimizer = build_optimizer(optimizer, 0.01, momentum)
    if execution == "in_process":
      parallel_clients = PARALLEL_CLIENTS if parallel_clients is None else parallel_clients
      if not isinstance(parallel_clients, int) or parallel_clients < 1:
        raise ValueError(f"parallel_clients must be an integer >= 1, got {parallel_clients!r}")
      # One model per concurrent client (the template is the first): each call assigns
      # the global weights first, as the TFF computation does on its fresh model.
      models = [template] + [model_spec.build() for _ in range(parallel_clients - 1)]
      self._replicas = queue.SimpleQueue()
      for model in models:
        self._replicas.put(tf.function(local_training(model, client_optimizer, loss_kind)))
      self._parallel_clients = parallel_clients
      return
    element_type = tff.types.to_type((
        tff.TensorType(np.dtype(example_dtype), [None, *example_shape]),
        tff.TensorType(np.int32, [None])))
    dataset_type = tff.SequenceType(element_type)

    @tff.tensorflow.computation(self.weights_type, dataset_type, np.float32, np.int64)
    def client_update(initial_weights, dataset, learning_rate, seed):
      train = local_training(model_spec.build(), client_optimizer, loss_kind)
      return tf.function(lambda: train(initial_weights, dataset, learning_rate, seed))()

    @tff.federated_computation(tff.FederatedType(self.weights_type, tff.SERVER),
                               tff.FederatedType(dataset_type, tff.CLIENTS),
                               tff.FederatedType(np.float32, tff.CLIENTS),
                               tff.FederatedType(np.int64, tff.CLIENTS))
    def train_round(global_weights, datasets, learning_rates, seeds):
      return tff.federated_map(client_update, (tff.federated_broadcast(global_weights), datasets,
                                               learning_rates, seeds))

    self._train_round = train_round

  def train(self, global_weights: list, datasets: list, learning_rates: Sequence[float],
            seeds: Sequence[int]) -> list[ClientResult]:
    """One round of local training for ``len(datasets)`` clients.

    ``seeds`` seed each client's ``SeededDropout`` masks (step s of client c
    uses [seeds[c], examples seen before s]).
    """
    if self.execution == "in_process":
      initial = [tf.constant(w, dtype) for w, dtype in zip(global_weights, self.weight_dtypes)]

      def train_one(dataset, lr, seed):
        local = self._replicas.get()
        try:
          return local(initial, dataset, tf.constant(lr, tf.float32), tf.constant(seed, tf.int64))
        finally:
          self._replicas.put(local)

      with concurrent.futures.ThreadPoolExecutor(self._parallel_clients) as pool:
        outputs = list(pool.map(train_one, datasets, learning_rates, seeds))
    else:
      outputs = self._train_round(global_weights, datasets,
                                  [np.float32(lr) for lr in learning_rates],
                                  [np.int64(s) for s in seeds])
    results = []
    for update, mean_loss, count in outputs:
      results.append(ClientResult([np.asarray(u, dtype) for u, dtype in
                                   zip(update, self.weight_dtypes)],
                                  float(mean_loss), int(count)))
    return results
