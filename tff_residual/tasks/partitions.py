"""Client partitions of a labelled training set: who holds which example.

Every function returns one int64 index array per client, in the order the
client holds its examples (the reference trains on the first part of that
order, see ``take_leading_fraction``), and is fully determined by its
``seed``.

* ``iid``: a random permutation cut into equal parts.
* ``dirichlet``: per class, proportions p ~ Dir(alpha 1_N) over the N clients;
  client u takes round(p_u n_c) of the class's (shuffled) examples, in client
  order, capped by what is left (reference ``sample_dirichlet_train_data``; the
  reference sizes every class by class 0's count, here each class uses its own).
* ``class_shards``: the paper's MNIST split (§4.2, reference ``fix_total``):
  each class is cut into ``shards_per_class`` equal shards; each client draws
  ``shards_per_client`` distinct classes among those with shards left and one
  random shard of each. (The reference cuts the label-sorted set into
  consecutive 300-image shards, so some "digit d" shards hold other digits, and
  only some seeds finish the draw; here shards are pure and a stuck draw is
  retried with the next random stream.)
* ``by_key``: one client per distinct key (e.g. LendingClub's ``addr_state``),
  the first ``num_clients`` keys of a seeded shuffle (reference
  ``loan_sample_by_state``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PARTITIONS = ("iid", "dirichlet", "class_shards", "by_key")


def _check_num_clients(num_clients: int, num_examples: int) -> None:
  if not isinstance(num_clients, (int, np.integer)) or num_clients < 1:
    raise ValueError(f"num_clients must be a positive int, got {num_clients!r}.")
  if num_clients > num_examples:
    raise ValueError(f"cannot split {num_examples} examples over {num_clients} clients.")


def iid(num_examples: int, num_clients: int, seed: int) -> list[np.ndarray]:
  """A seeded permutation of 0..num_examples-1 cut into ``num_clients`` near-equal parts."""
  _check_num_clients(num_clients, num_examples)
  order = np.random.default_rng(seed).permutation(num_examples)
  return [part.astype(np.int64) for part in np.array_split(order, num_clients)]


def dirichlet(labels: np.ndarray, num_clients: int, alpha: float, seed: int) -> list[np.ndarray]:
  """Per-class Dirichlet(alpha) proportions over the clients (non-IID for small alpha)."""
  labels = np.asarray(labels)
  _check_num_clients(num_clients, len(labels))
  if not alpha > 0:
    raise ValueError(f"dirichlet alpha must be > 0, got {alpha!r}.")
  rng = np.random.default_rng(seed)
  parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
  for label in np.unique(labels):
    members = rng.permutation(np.flatnonzero(labels == label))
    proportions = rng.dirichlet(np.full(num_clients, float(alpha)))
    start = 0
    for client in range(num_clients):
      take = min(int(round(proportions[client] * len(members))), len(members) - start)
      parts[client].append(members[start:start + take])
      start += take
  return [np.concatenate(p).astype(np.int64) for p in parts]


def class_shards(labels: np.ndarray, num_clients: int, shards_per_client: int = 2,
                 seed: int = 0, max_attempts: int = 1000) -> list[np.ndarray]:
  """The paper's split: ``shards_per_client`` shards of distinct classes per client.

  Each class is cut into ``num_clients * shards_per_client / num_classes``
  shards, so every shard is used once.
  """
  labels = np.asarray(labels)
  _check_num_clients(num_clients, len(labels))
  classes = np.unique(labels)
  total_shards = num_clients * shards_per_client
  if shards_per_client > len(classes):
    raise ValueError(f"shards_per_client={shards_per_client} exceeds the {len(classes)} classes.")
  if total_shards % len(classes):
    raise ValueError(f"num_clients * shards_per_client = {total_shards} is not a multiple of the "
                     f"{len(classes)} classes; class_shards needs equal shard counts per class.")
  shards_per_class = total_shards // len(classes)
  rng = np.random.default_rng(seed)
  shards = {c: np.array_split(rng.permutation(np.flatnonzero(labels == c)), shards_per_class)
            for c in classes}
  for _ in range(max_attempts):
    left = {c: list(range(shards_per_class)) for c in classes}
    picks = []
    for _client in range(num_clients):
      available = [c for c in classes if left[c]]
      if len(available) < shards_per_client:
        break  # stuck: the last clients would need two shards of one class
      chosen = rng.choice(available, size=shards_per_client, replace=False)
      picks.append([(c, left[c].pop(int(rng.integers(len(left[c]))))) for c in chosen])
    else:
      return [np.concatenate([shards[c][s] for c, s in pick]).astype(np.int64) for pick in picks]
  raise RuntimeError(f"class_shards: no complete draw in {max_attempts} attempts.")


def by_key(keys: Sequence, num_clients: int, seed: int) -> tuple[list[np.ndarray], list]:
  """One client per key: the first ``num_clients`` keys of a seeded shuffle.

  Returns ``(indices, chosen_keys)``; keys are shuffled from sorted order, so
  the result does not depend on the row order of the file.
  """
  keys = np.asarray(keys)
  distinct = np.unique(keys)
  if not isinstance(num_clients, (int, np.integer)) or num_clients < 1:
    raise ValueError(f"num_clients must be a positive int, got {num_clients!r}.")
  if num_clients > len(distinct):
    raise ValueError(f"num_clients={num_clients} but the data has only {len(distinct)} "
                     "distinct keys (one client per key).")
  chosen = list(np.random.default_rng(seed).permutation(distinct)[:num_clients])
  return [np.flatnonzero(keys == key).astype(np.int64) for key in chosen], chosen


def take_leading_fraction(parts: Sequence[np.ndarray], fraction: float) -> list[np.ndarray]:
  """The first ``max(1, int(fraction * n))`` indices of each part (rounded down, at least 1).

  The reference trains each client on the first 70% of its index list in
  stored order (docs/reference_differences.md §4.0); ``fraction=1`` keeps everything.
  """
  if not 0 < fraction <= 1:
    raise ValueError(f"client_train_fraction must be in (0, 1], got {fraction!r}.")
  return [np.asarray(p)[:max(1, int(fraction * len(p)))] if len(p) else np.asarray(p)
          for p in parts]


def holders_of_class(parts: Sequence[np.ndarray], labels: np.ndarray, label: int) -> list[int]:
  """Clients whose data contain ``label`` (for the paper's choice of label-flip attackers)."""
  labels = np.asarray(labels)
  return [client for client, p in enumerate(parts) if np.any(labels[p] == label)]
