"""The round loop: train clients on TFF, poison, aggregate with a TFF factory,
update the global model, evaluate.

One ``Experiment`` holds what every compared aggregator shares (data,
attackers, initial model, the TFF client trainer, the evaluator); each
aggregator then runs the same rounds from the same initial weights with the
same client samples, shuffles and attacker randomness.

A round (reference ``main_nn.py``):
1. the round's clients (all, in id order, or a seeded sample) train locally
   from the global model (``ClientTrainer``, one TFF computation); attackers
   train on poisoned batches in poisoning rounds, and with the boosted epochs
   and learning rate where the attack says so;
2. attackers' updates are poisoned (scaling, noise, blending);
3. updates holding NaN/Inf are dropped (as the reference does before any
   aggregator), the rest go through the aggregator's ``AggregationProcess``
   with client weights 1 (``--client_weighting=uniform``) or their example
   counts; a state that keeps client ids (FoolsGold's history) is told the
   round's ids first (``with_client_ids``);
4. global model += aggregate (server learning rate 1, as FedAvg on deltas);
5. accuracy, loss and attack success rate on the test set.

With a clean baseline, the same rounds also run without attackers (the
attackers' clients train honestly), so every attack metric has its no-attack
value from the same clients, seeds and rounds beside it.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tff_residual.attacks.base import Attack, UpdateContext
from tff_residual.simulation import checkpoint, detection
from tff_residual.simulation.client_data import client_dataset
from tff_residual.simulation.client_training import ClientTrainer
from tff_residual.simulation.evaluation import Evaluator
from tff_residual.simulation.federation import Federation
from tff_residual.simulation.round_settings import RoundSettings
from tff_residual.tasks.base import ModelSpec, TaskData

WINDOW = 10
"""Rounds at the end averaged into ``window_accuracy`` / ``window_attack_success_rate``
(per-round numbers of non-IID runs with sampled clients swing by several points)."""


def _seed(*parts: int) -> int:
  """A 31-bit seed derived from ``parts`` (stable across runs and platforms)."""
  return int(np.random.default_rng(list(parts)).integers(2**31 - 1))


def _finite_mean(values) -> float:
  """Mean of the finite values (NaN if none)."""
  finite = [v for v in values if math.isfinite(v)]
  return float(np.mean(finite)) if finite else float("nan")


def _is_finite(update: list) -> bool:
  return all(np.all(np.isfinite(u)) for u in update)


class AggregationInputs(NamedTuple):
  """What a round hands its aggregator: the finite updates, in the round's order."""

  clients: list[int]
  """ids of the clients whose updates are kept"""
  updates: list
  """their (poisoned, for attackers) updates, lists of arrays"""
  client_weights: list
  """float32 weights: 1 (``--client_weighting=uniform``) or the example counts"""
  num_dropped: int
  """updates dropped for NaN/Inf values"""


def summarize(name: str, rows: list[dict[str, Any]], shares: list[float],
              wall_seconds: float, aucs: list[float] = (),
              clip_factors: list[tuple[float, float]] = ()) -> dict[str, Any]:
  """An aggregator's summary from its rows: the last round, the means over the
  last ``WINDOW`` rounds, and, where the rows have a clean baseline, the same
  for ``clean_*`` and ``excess_attack_success_rate`` (NaN without one)."""
  last, window = rows[-1], rows[-min(WINDOW, len(rows)):]

  def at_end(column):
    return last.get(column, float("nan"))

  def window_mean(column):
    return _finite_mean(r.get(column, float("nan")) for r in window)

  return dict(aggregator=name, final_accuracy=last["accuracy"],
              attack_success_rate=last["attack_success_rate"],
              window_rounds=len(window),
              window_accuracy=window_mean("accuracy"),
              window_attack_success_rate=window_mean("attack_success_rate"),
              max_attack_success_rate=max((r["attack_success_rate"] for r in rows
                                           if math.isfinite(r["attack_success_rate"])),
                                          default=float("nan")),
              clean_final_accuracy=at_end("clean_accuracy"),
              window_clean_accuracy=window_mean("clean_accuracy"),
              clean_attack_success_rate=at_end("clean_attack_success_rate"),
              window_clean_attack_success_rate=window_mean("clean_attack_success_rate"),
              excess_attack_success_rate=at_end("excess_attack_success_rate"),
              window_excess_attack_success_rate=window_mean("excess_attack_success_rate"),
              attackers_weight_share=_finite_mean(shares),
              detection_auc=_finite_mean(aucs),
              attackers_clip_factor=_finite_mean(a for a, _ in clip_factors),
              honest_clip_factor=_finite_mean(h for _, h in clip_factors),
              window_accuracy_drop=window_mean("clean_accuracy") - window_mean("accuracy"),
              wall_seconds=wall_seconds,
              mean_aggregation_seconds=_finite_mean(r["aggregation_seconds"] for r in rows),
              mean_round_seconds=_finite_mean(r["round_seconds"] for r in rows))


class Experiment:
  """Everything the compared aggregators share: the rounds' ``settings``, the data,
  the model, the attack and the federation (the clients, attackers and each
  round's participants). ``execution``, ``parallel_clients``: where and how many at once the
clients train (``ClientTrainer``)."""

  def __init__(self, settings: RoundSettings, data: TaskData, model_spec: ModelSpec,
               attack: Attack, federation: Federation, execution: str = "tff",
               parallel_clients: int | None = None):
    self.settings, self.data, self.model_spec = settings, data, model_spec
    self.attack, self.federation = attack, federation
    tf.keras.utils.set_random_seed(settings.seed)
    self.initial_weights = [np.asarray(w) for w in model_spec.build().get_weights()]
    x = data.train.x
    self.trainer = ClientTrainer(model_spec, x.dtype, x.shape[1:], settings.optimizer,
                                 settings.momentum, execution, parallel_clients)
    self.evaluator = Evaluator(model_spec, self._test_set(), attack.success_metric)
    self.attackers = set(federation.attackers)
    self.server_rule: Callable[[np.ndarray], np.ndarray] | None = None

  def _test_set(self):
    test = self.data.test
    cap = self.settings.max_test_examples
    if cap and cap < len(test):
      keep = np.sort(np.random.default_rng([self.settings.seed, 3]).choice(len(test), cap, False))
      return test.subset(keep)
    return test

  def client_plan(self, client: int, round_index: int) -> tuple[Any, float]:
    """(dataset, learning rate) of ``client`` in ``round_index``."""
    settings = self.settings
    attacker = client in self.attackers
    boosted = attacker and self.attack.boosted_training
    poisoning = (self.attack.data_poisoning
                 if attacker and self.attack.poisons_in(round_index) else None)
    data = self.federation.clients[client]
    dataset = client_dataset(
        data.x, data.y, batch_size=settings.batch_size,
        epochs=settings.attacker_epochs if boosted else settings.local_epochs,
        max_batches=settings.max_batches_per_epoch, seed=_seed(settings.seed, round_index, client),
        augment=self.model_spec.augment, poisoning=poisoning)
    rate = settings.learning_rate * (settings.attacker_lr_multiplier if boosted else 1.0)
    return dataset, rate

  def train_round(self, round_index: int, weights: list) -> tuple[list[int], list]:
    """Step 1 of a round: (the round's client ids, their ``ClientResult``s)."""
    settings = self.settings
    clients = self.federation.participants(round_index)
    plans = [self.client_plan(c, round_index) for c in clients]
    results = self.trainer.train(weights, [p[0] for p in plans], [p[1] for p in plans],
                                 [_seed(settings.seed, round_index, c, 4) for c in clients])
    return clients, results

  def aggregation_inputs(self, round_index: int, clients: list[int], results: list,
                         weights: list) -> AggregationInputs:
    """Steps 2-3 of a round up to the aggregator: poisoned updates, the finite ones kept."""
    all_weights = [np.float32(1.0 if self.settings.client_weighting == "uniform"
                              else r.num_examples) for r in results]
    updates = self.poison_updates(round_index, clients, [r.update for r in results], weights,
                                  all_weights)
    kept = [i for i, u in enumerate(updates) if _is_finite(u)]
    return AggregationInputs([clients[i] for i in kept], [updates[i] for i in kept],
                             [all_weights[i] for i in kept], len(updates) - len(kept))

  def clean_twin(self) -> "Experiment":
    """The same experiment with no attackers: the attackers' clients train
    honestly (the honest epochs and learning rate, clean batches, no update
    poisoning) on the same data, client samples, shuffles and seeds; the
    attack's success metric is still measured (the clean baseline)."""
    twin = copy.copy(self)
    twin.attack = Attack("clean", boosted_training=False,
                         success_metric=self.attack.success_metric)
    twin.attackers = set()
    return twin

  def run(self, name: str, factory, on_round: Callable[[dict], None],
          clean_baseline: bool = False,
          server_rule: Callable[[np.ndarray], np.ndarray] | None = None,
          resume_from: Callable[[Any], "checkpoint.Progress"] | None = None,
          on_checkpoint: Callable[["checkpoint.Progress"], None] | None = None
          ) -> dict[str, Any]:
    """Runs every round with ``factory``; calls ``on_round(row)`` after each.

    The attack forgets earlier runs first (``UpdatePoisoning.reset``), and its
    attackers see ``server_rule``, the eager model of this run's aggregator that
    the attacks tuned against the defence search with (``UpdateContext.server_rule``).

    With ``clean_baseline`` the ``clean_twin`` runs the same rounds beside it
    (its own aggregator state and global model, stepped in the same round),
    and each row also holds ``clean_accuracy``, ``clean_attack_success_rate``
    and ``excess_attack_success_rate`` = attack success rate - clean one.

    ``on_checkpoint(progress)`` gets, after each round (and its ``on_round``), what
    continues the run from there: a ``checkpoint.Progress`` with this aggregator's part
    (its rows, its live tracks: to be saved during the call) and ``finished`` left to
    the caller; ``resume_from(initial_state)`` (the saved progress of this aggregator,
    its state's leaves packed into the structure of this run's ``process.initialize()``)
    continues it: the rounds it holds are not run again.
    """
    settings = self.settings
    self.server_rule = server_rule
    poisoning = self.attack.update_poisoning
    reset = getattr(poisoning, "reset", None)
    if reset is not None:
      reset()
    process = factory.create(self.trainer.weights_type, tff.TensorType(np.float32))
    self._with_client_ids = getattr(factory, "with_client_ids", lambda state, ids: state)
    initial_state = process.initialize()
    attacked = checkpoint.Track(initial_state, [w.copy() for w in self.initial_weights])
    twin = self.clean_twin() if clean_baseline else None
    clean = checkpoint.Track(process.initialize(), [w.copy() for w in self.initial_weights]) if twin else None
    rows, spent = [], 0.0
    if resume_from is not None:
      resumed = resume_from(initial_state)
      attacked = resumed.attacked
      if twin is not None:
        clean = resumed.clean
      checkpoint.restore_attack_memory(poisoning, resumed.attack_memory)
      rows, spent = list(resumed.rows), resumed.wall_seconds
    start = time.perf_counter()
    for round_index in range(len(rows), settings.rounds):
      row = dict(aggregator=name, **self._round(process, attacked, round_index))
      if twin is not None:
        clean_row = twin._round(process, clean, round_index)
        row.update(clean_accuracy=clean_row["accuracy"],
                   clean_attack_success_rate=clean_row["attack_success_rate"],
                   excess_attack_success_rate=(row["attack_success_rate"]
                                               - clean_row["attack_success_rate"]),
                   clean_round_seconds=clean_row["round_seconds"])
      rows.append(row)
      on_round(row)
      if on_checkpoint is not None:
        on_checkpoint(checkpoint.Progress(
            finished=[], rows=rows, aggregator=name, attacked=attacked, clean=clean,
            attack_memory=checkpoint.attack_memory(poisoning),
            wall_seconds=spent + time.perf_counter() - start))
    return summarize(name, rows, attacked.shares, spent + time.perf_counter() - start,
                     attacked.aucs, attacked.clip_factors)

  def _round(self, process, track: checkpoint.Track, round_index: int) -> dict[str, Any]:
    """One round of ``track`` (steps 1-5); updates it and returns the round's row."""
    round_start = time.perf_counter()
    clients, results = self.train_round(round_index, track.weights)
    trained = time.perf_counter()
    inputs = self.aggregation_inputs(round_index, clients, results, track.weights)
    aggregated = time.perf_counter()
    share = auc = float("nan")
    clipped = (float("nan"), float("nan"))
    if inputs.updates:
      state = self._with_client_ids(track.state, inputs.clients)
      output = process.next(state, inputs.updates, inputs.client_weights)
      track.state = output.state
      track.weights = [w + np.asarray(a, w.dtype) for w, a in zip(track.weights, output.result)]
      share, auc = self._attackers_share(output.measurements, inputs.clients)
      clipped = self._clip_factors(output.measurements, inputs.clients)
      aggregated = time.perf_counter()
    evaluation = self.evaluator.evaluate(track.weights)
    attacking = [c for c in clients if c in self.attackers]
    scale = getattr(self.attack.update_poisoning, "last_scale", None)
    if not (attacking and self.attack.poisons_in(round_index)) or scale is None:
      scale = float("nan")
    if attacking and self.attack.poisons_in(round_index) and math.isfinite(share):
      track.shares.append(share)
      if math.isfinite(auc):
        track.aucs.append(auc)
      track.clip_factors.append(clipped)
    return dict(round=round_index, accuracy=evaluation.accuracy, loss=evaluation.loss,
                attack_success_rate=evaluation.attack_success_rate,
                attackers_weight_share=share, detection_auc=auc, attack_scale=scale,
                attackers_in_round=len(attacking),
                attackers_clip_factor=clipped[0], honest_clip_factor=clipped[1],
                dropped_clients=inputs.num_dropped,
                train_loss=float(np.mean([r.mean_loss for r in results])),
                round_seconds=time.perf_counter() - round_start,
                train_seconds=trained - round_start, aggregation_seconds=aggregated - trained)

  def poison_updates(self, round_index: int, clients: list[int], updates: list,
                     global_weights: list, client_weights: list | None = None) -> list:
    """Attackers' updates through the attack's update poisoning (this round's);
    ``client_weights``: the weights the aggregator will give the updates (default 1)."""
    poisoning = self.attack.update_poisoning
    if poisoning is None or not self.attack.poisons_in(round_index):
      return updates
    honest = [u for c, u in zip(clients, updates) if c not in self.attackers]
    honest_clients = [c for c in clients if c not in self.attackers]
    poisoned = list(updates)
    for i, client in enumerate(clients):
      if client in self.attackers:
        context = UpdateContext(round_index, global_weights, honest,
                                np.random.default_rng([self.settings.seed, round_index, client, 2]),
                                num_clients=len(clients),
                                num_attackers=len(clients) - len(honest),
                                weight=float(1.0 if client_weights is None
                                             else client_weights[i]),
                                honest_clients=honest_clients,
                                server_rule=self.server_rule)
        poisoned[i] = poisoning.poison_update(updates[i], context)
    return poisoned

  def _clip_factors(self, measurements, clients: list[int]) -> tuple[float, float]:
    """(attackers' mean, honest clients' mean) of the round's ``clip_factors``; NaN
    where there are none (or no client of the kind)."""
    factors = measurements.get("clip_factors") if hasattr(measurements, "get") else None
    if factors is None:
      return float("nan"), float("nan")
    factors = np.asarray(factors, np.float64)
    attacker = np.array([c in self.attackers for c in clients])
    return (float(factors[attacker].mean()) if attacker.any() else float("nan"),
            float(factors[~attacker].mean()) if (~attacker).any() else float("nan"))

  def _attackers_share(self, measurements, clients: list[int]) -> tuple[float, float]:
    """(sum of the attackers' ``client_weights``, ``detection.weight_auc`` of
    them); NaN, NaN if the aggregator reports no client weights."""
    weights = measurements.get("client_weights") if hasattr(measurements, "get") else None
    if weights is None:
      return float("nan"), float("nan")
    weights = np.asarray(weights)
    attacker = [c in self.attackers for c in clients]
    return float(weights[attacker].sum()), detection.weight_auc(weights, attacker)
