"""The attack interfaces and how an attack is put together.

An attack is what its *attackers* (a fixed set of client ids, chosen by the
simulation) do differently from honest clients:

* ``DataPoisoning`` acts on an attacker's training batches (label flip,
  backdoor trigger); it also defines the attack success rate on the test set.
* ``UpdatePoisoning`` acts on the update an attacker returns, after local
  training (scaling for model replacement, Gaussian noise, blending).
* ``Attack`` bundles them with *when* the attacker poisons (every round, or
  one round for model replacement) and whether it trains with the boosted
  epochs and learning rate of the authors' code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

Weights = list  # list[np.ndarray], one per model weight, in Keras' model.weights order


@dataclasses.dataclass(frozen=True)
class AttackSettings:
  """What the attack table reads from the run's settings (the flags of the same names;
  each is checked by the attack class that uses it, ``attack_table.check_settings``).

  Attributes:
    residual_params: ``lambda_`` and ``delta`` of the run's residual aggregator, for the
      white-box ``adaptive_residual`` (only those set by flags; the rest default).
  """

  rounds: int
  attack_round: int
  backdoor_per_batch: int
  scale_factor: float
  noise_scale: float
  mix_rate: float
  mix_honest: str
  alie_z: float | None
  ipm_epsilon: float
  perturbation: str
  large_value_magnitude: float
  large_value_pattern: str
  mimic_warmup: int
  residual_params: dict


class DataPoisoning(Protocol):
  """Poisons training batches; measures its own success on the test set."""

  description: str

  def poison_batch(self, x, y):
    """TF: a poisoned copy of one training batch (x, y)."""

  def success_rate(self, predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                   y: np.ndarray) -> float:
    """Share of the test examples the attack targets that ``predict`` (-> labels)
    assigns the attacker's label."""


@dataclasses.dataclass
class UpdateContext:
  """What an update-poisoning attacker may use in one round.

  Attributes:
    round_index: 0-based round.
    global_weights: the model the round started from.
    honest_updates: this round's honest clients' updates (an omniscient
      attacker's view: ``mix_rate`` and the model-poisoning attacks use it).
    rng: the attacker's random stream for this round (seeded).
    num_clients: K, the round's participants, attackers included.
    num_attackers: f, the round's attackers.
    weight: the weight the aggregator gives this attacker's update (1 under
      ``--client_weighting=uniform``, else its example count).
    honest_clients: the client ids of ``honest_updates``, in the same order.
    server_rule: the run's aggregator as the attackers model it, ``[K, N] -> [N]``
      (float64; the rule's eager kernel with its settings, from its state before the
      first round, unweighted); None when the run gave none. The attacks tuned
      against the defence in use (``optimal_alie``, ``optimal_ipm``) search with it.
  """

  round_index: int
  global_weights: Weights
  honest_updates: Sequence[Weights]
  rng: np.random.Generator
  num_clients: int = 0
  num_attackers: int = 0
  weight: float = 1.0
  honest_clients: Sequence[int] = ()
  server_rule: Callable[[np.ndarray], np.ndarray] | None = None


class UpdatePoisoning(Protocol):
  description: str

  def poison_update(self, update: Weights, context: UpdateContext) -> Weights:
    """The update the attacker submits instead of ``update`` (= local - global)."""

  def reset(self) -> None:
    """Forgets every earlier round (optional): the simulation calls it before each
    aggregator's run, so that no run sees what the attack kept from another."""


@dataclasses.dataclass(frozen=True)
class Attack:
  """An attack as the simulation runs it.

  Attributes:
    name: the attack part of the task name.
    data_poisoning: applied to attackers' batches in poisoning rounds.
    update_poisoning: applied to attackers' updates in poisoning rounds.
    poison_round: None = every round; else the one 0-based round index.
    boosted_training: attackers train ``attacker_epochs`` with the learning
      rate times ``attacker_lr_multiplier``, in every round (as the authors'
      code; for model replacement also in its clean rounds).
    success_metric: the poisoning whose success rate is reported (None: the
      attack has no success rate, e.g. Gaussian noise).
  """

  name: str
  data_poisoning: DataPoisoning | None = None
  update_poisoning: UpdatePoisoning | None = None
  poison_round: int | None = None
  boosted_training: bool = True
  success_metric: DataPoisoning | None = None

  def poisons_in(self, round_index: int) -> bool:
    return self.poison_round is None or round_index == self.poison_round

  def describe(self) -> str:
    parts = [p.description for p in (self.data_poisoning, self.update_poisoning) if p]
    when = "every round" if self.poison_round is None else f"in round index {self.poison_round}"
    return f"{self.name}: {'; '.join(parts) or 'no poisoning'}, {when}"
