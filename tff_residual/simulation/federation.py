"""Who the clients are: their data (the partition) and which of them attack.

Attackers (docs/reference_differences.md §3.1): with the paper's ``class_shards`` split
and a label-flipping attack, a seeded draw among the clients holding the
source class (the paper's "participants with images of digit 1"); otherwise
the last ``num_attackers`` client ids, as the reference appends attackers.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tff_residual.simulation.config import ConfigError, ExperimentConfig
from tff_residual.tasks import partitions
from tff_residual.tasks.base import Arrays, AttackTargets, TaskData

FLIP_ATTACKS = ("label_flip", "mix_rate")


@dataclasses.dataclass
class Federation:
  """The clients of a run.

  Attributes:
    clients: each client's training examples (after the train fraction and cap).
    attackers: sorted client ids of the attackers.
    names: a name per client (e.g. its state for LOAN), for the outputs.
  """

  clients: list[Arrays]
  attackers: list[int]
  names: list[str]


def partition(config: ExperimentConfig, data: TaskData) -> tuple[list[np.ndarray], list[str]]:
  """Index arrays into ``data.train``, one per client, and client names."""
  train = data.train
  names = [str(i) for i in range(config.num_clients)]
  try:
    if config.partition == "iid":
      parts = partitions.iid(len(train), config.num_clients, config.seed)
    elif config.partition == "dirichlet":
      parts = partitions.dirichlet(train.y, config.num_clients, config.dirichlet_alpha,
                                   config.seed)
    elif config.partition == "class_shards":
      parts = partitions.class_shards(train.y, config.num_clients, config.shards_per_client,
                                      config.seed)
    elif config.partition == "by_key":
      if data.client_keys is None:
        raise ConfigError(f"--partition=by_key needs per-example keys; {config.dataset} has none.")
      parts, keys = partitions.by_key(data.client_keys, config.num_clients, config.seed)
      names = [str(k) for k in keys]
    elif config.partition == "natural":
      if data.natural_clients is None:
        raise ConfigError(f"--partition=natural needs naturally federated data; "
                          f"{config.dataset} is not.")
      parts = list(data.natural_clients)
    else:
      raise ConfigError(f"unknown --partition {config.partition!r}.")
  except ConfigError:
    raise
  except ValueError as error:
    raise ConfigError(f"--partition={config.partition}: {error}") from None
  return parts, names


def build_federation(config: ExperimentConfig, data: TaskData,
                     targets: AttackTargets) -> Federation:
  parts, names = partition(config, data)
  held = parts
  parts = partitions.take_leading_fraction(parts, config.client_train_fraction)
  if config.max_examples_per_client:
    parts = [p[:config.max_examples_per_client] for p in parts]
  empty = [i for i, p in enumerate(parts) if len(p) == 0]
  if empty:
    data.notices.append(f"partition: client(s) {empty} hold no training example; they return "
                        "zero updates.")
  attackers = choose_attackers(config, data, held, targets)
  return Federation([data.train.subset(p) for p in parts], attackers, names)


def choose_attackers(config: ExperimentConfig, data: TaskData, parts,
                     targets: AttackTargets) -> list[int]:
  if config.num_attackers == 0:
    return []
  if (config.partition == "class_shards" and config.attack in FLIP_ATTACKS
      and targets.flip_source is not None):
    holders = partitions.holders_of_class(parts, data.train.y, targets.flip_source)
    if len(holders) < config.num_attackers:
      raise ConfigError(f"--num_attackers={config.num_attackers}, but only {len(holders)} "
                        f"clients hold the flipped class {targets.flip_source}.")
    rng = np.random.default_rng([config.seed, 7])
    return sorted(int(c) for c in rng.choice(holders, config.num_attackers, replace=False))
  return list(range(config.num_clients - config.num_attackers, config.num_clients))


def round_participants(config: ExperimentConfig, round_index: int) -> list[int]:
  """Client ids of a round: every client in id order, or a seeded sample (random order)."""
  if config.participants_per_round == config.num_clients:
    return list(range(config.num_clients))
  rng = np.random.default_rng([config.seed, round_index, 1])
  return [int(c) for c in rng.choice(config.num_clients, config.participants_per_round,
                                     replace=False)]
