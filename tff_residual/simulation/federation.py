"""Who the clients are: their data (the partition), which of them attack, and
which of them train in each round.

Attackers (docs/reference_differences.md §3.1): with the paper's ``class_shards`` split
and a label-flipping attack, a seeded draw among the clients holding the
source class (the paper's "participants with images of digit 1"); otherwise
the last ``num_attackers`` client ids, as the reference appends attackers.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tff_residual.simulation.errors import ConfigError
from tff_residual.tasks import partitions
from tff_residual.tasks.base import Arrays, AttackTargets, TaskData

PARTITIONS = (*partitions.PARTITIONS, "natural")
"""``--partition`` names: the ``tasks.partitions`` splits, and ``natural`` (the data's own
clients, e.g. EMNIST writers)."""


@dataclasses.dataclass(frozen=True)
class FederationSettings:
  """What the federation reads from the run's settings (the flags of the same names;
  ``check`` validates them).

  Attributes:
    clients_per_round: clients sampled per round; 0 (or >= num_clients) = all of them.
    attackers_hold_flip_source: whether the attack relabels the task's flip source class
      (``attacks.LABEL_FLIP_ATTACKS``); with ``class_shards`` the attackers are then drawn
      among the clients that hold that class.
  """

  seed: int
  num_clients: int
  clients_per_round: int
  num_attackers: int
  partition: str
  dirichlet_alpha: float
  shards_per_client: int
  client_train_fraction: float
  max_examples_per_client: int
  attackers_hold_flip_source: bool

  @property
  def participants_per_round(self) -> int:
    """Clients per round: ``clients_per_round``, or all of them for 0 or >= num_clients."""
    if self.clients_per_round <= 0 or self.clients_per_round >= self.num_clients:
      return self.num_clients
    return self.clients_per_round

  def check(self) -> None:
    """ValueError naming the first flag whose value cannot work."""
    from tff_residual.kernels.method_config import check_choice, check_int, check_positive
    for name, lowest in (("num_clients", 1), ("clients_per_round", 0), ("num_attackers", 0),
                         ("shards_per_client", 1), ("max_examples_per_client", 0)):
      check_int(f"--{name}", getattr(self, name), lowest)
    check_positive("--dirichlet_alpha", self.dirichlet_alpha)
    fraction = self.client_train_fraction
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
      raise ValueError(f"--client_train_fraction must be in (0, 1], got {fraction!r}.")
    check_choice("--partition", self.partition, PARTITIONS)
    if self.num_attackers > self.num_clients:
      raise ValueError(f"--num_attackers={self.num_attackers} is more than the "
                       f"{self.num_clients} clients (--num_clients).")


@dataclasses.dataclass
class Federation:
  """The clients of a run.

  Attributes:
    clients: each client's training examples (after the train fraction and cap).
    attackers: sorted client ids of the attackers.
    names: a name per client (e.g. its state for LOAN), for the outputs.
    settings: what the federation was built from (``participants`` samples by it).
  """

  clients: list[Arrays]
  attackers: list[int]
  names: list[str]
  settings: FederationSettings

  def participants(self, round_index: int) -> list[int]:
    """Client ids of a round: every client in id order, or a seeded sample (random order)."""
    settings = self.settings
    if settings.participants_per_round == settings.num_clients:
      return list(range(settings.num_clients))
    rng = np.random.default_rng([settings.seed, round_index, 1])
    return [int(c) for c in rng.choice(settings.num_clients, settings.participants_per_round,
                                       replace=False)]


def partition(settings: FederationSettings, data: TaskData
              ) -> tuple[list[np.ndarray], list[str]]:
  """Index arrays into ``data.train``, one per client, and client names."""
  train = data.train
  names = [str(i) for i in range(settings.num_clients)]
  try:
    if settings.partition == "iid":
      parts = partitions.iid(len(train), settings.num_clients, settings.seed)
    elif settings.partition == "dirichlet":
      parts = partitions.dirichlet(train.y, settings.num_clients, settings.dirichlet_alpha,
                                   settings.seed)
    elif settings.partition == "class_shards":
      parts = partitions.class_shards(train.y, settings.num_clients, settings.shards_per_client,
                                      settings.seed)
    elif settings.partition == "by_key":
      if data.client_keys is None:
        raise ConfigError(f"--partition=by_key needs per-example keys; {data.data_source} has "
                          "none.")
      parts, keys = partitions.by_key(data.client_keys, settings.num_clients, settings.seed)
      names = [str(k) for k in keys]
    elif settings.partition == "natural":
      if data.natural_clients is None:
        raise ConfigError(f"--partition=natural needs naturally federated data; "
                          f"{data.data_source} is not.")
      parts = list(data.natural_clients)
    else:
      raise ConfigError(f"unknown --partition {settings.partition!r}.")
  except ConfigError:
    raise
  except ValueError as error:
    raise ConfigError(f"--partition={settings.partition}: {error}") from None
  return parts, names


def build_federation(settings: FederationSettings, data: TaskData,
                     targets: AttackTargets) -> Federation:
  parts, names = partition(settings, data)
  held = parts
  parts = partitions.take_leading_fraction(parts, settings.client_train_fraction)
  if settings.max_examples_per_client:
    parts = [p[:settings.max_examples_per_client] for p in parts]
  empty = [i for i, p in enumerate(parts) if len(p) == 0]
  if empty:
    data.notices.append(f"partition: client(s) {empty} hold no training example; they return "
                        "zero updates.")
  attackers = choose_attackers(settings, data, held, targets)
  return Federation([data.train.subset(p) for p in parts], attackers, names, settings)


def choose_attackers(settings: FederationSettings, data: TaskData, parts,
                     targets: AttackTargets) -> list[int]:
  if settings.num_attackers == 0:
    return []
  if (settings.partition == "class_shards" and settings.attackers_hold_flip_source
      and targets.flip_source is not None):
    holders = partitions.holders_of_class(parts, data.train.y, targets.flip_source)
    if len(holders) < settings.num_attackers:
      raise ConfigError(f"--num_attackers={settings.num_attackers}, but only {len(holders)} "
                        f"clients hold the flipped class {targets.flip_source}.")
    rng = np.random.default_rng([settings.seed, 7])
    return sorted(int(c) for c in rng.choice(holders, settings.num_attackers, replace=False))
  return list(range(settings.num_clients - settings.num_attackers, settings.num_clients))
