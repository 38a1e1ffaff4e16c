"""A run's progress at the end of its last finished round, so that a stopped run continues.

``experiments/run.py`` saves, after every round, one file ``DIR/checkpoint.npz``
(written to a temporary name, then renamed: a stop never leaves half a file):

* the summaries of the aggregators whose runs have ended, and every metrics row so far
  (full precision; metrics.csv is rewritten from them on resume, so a row written after
  the last checkpoint is dropped and its round runs again);
* for the aggregator in progress: its global weights and aggregator state (TFF's
  structure, flattened), the attackers' weight shares, AUCs and clip factors of its
  poisoning rounds, the same for its clean twin, and the wall seconds spent so far;
* the attack's memory across rounds (``UpdatePoisoning``'s attributes, e.g. Mimic's
  running mean), pickled.

Nothing else carries from round to round: every random draw of a round (client sample,
shuffles, dropout masks, augmentation, the attackers' noise) is seeded by (seed, round,
client), so the "RNG positions" are the round index. ``--resume=DIR`` loads the file
and continues; metrics.csv and summary.json then equal an uninterrupted run's, but for
the timing columns. The finished run deletes the file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
from typing import Any

import numpy as np

FILE = "checkpoint.npz"


@dataclasses.dataclass
class Track:
  """One model's run through the rounds (the attacked run's, or its clean twin's): its
  aggregator state, global model, and the attackers' weight shares, detection AUCs and
  clip factors of its poisoning rounds. ``Experiment.run`` steps it; a checkpoint holds it."""

  state: Any
  weights: list
  shares: list = dataclasses.field(default_factory=list)
  aucs: list = dataclasses.field(default_factory=list)
  clip_factors: list = dataclasses.field(default_factory=list)
  """(attackers' mean, honest clients' mean) clip factor of each poisoning round"""


@dataclasses.dataclass
class Progress:
  """Where a run stands after its last finished round."""

  finished: list[dict[str, Any]]
  """summaries of the aggregators whose runs have ended, in run order"""
  rows: list[dict[str, Any]]
  """every metrics row written so far, in order"""
  aggregator: str | None = None
  """the aggregator in progress (None between two aggregators); its rounds done are its
  rows (``rows_of``)"""
  attacked: Track | None = None
  clean: Track | None = None
  attack_memory: dict | None = None
  wall_seconds: float = 0.0

  def rows_of(self, aggregator: str) -> list[dict[str, Any]]:
    return [row for row in self.rows if row["aggregator"] == aggregator]


def _leaves(state) -> list[np.ndarray]:
  import tensorflow as tf
  return [np.asarray(leaf) for leaf in tf.nest.flatten(state)]


def save(directory: str, progress: Progress) -> None:
  """Writes ``progress`` to ``directory/checkpoint.npz`` atomically."""
  arrays: dict[str, np.ndarray] = {}
  meta: dict[str, Any] = {"finished": progress.finished, "rows": progress.rows,
                          "aggregator": progress.aggregator,
                          "wall_seconds": progress.wall_seconds, "tracks": {}}
  for kind in ("attacked", "clean"):
    track = getattr(progress, kind)
    if track is None:
      continue
    weights, leaves = list(track.weights), _leaves(track.state)
    for i, w in enumerate(weights):
      arrays[f"{kind}/weights/{i}"] = np.asarray(w)
    for i, leaf in enumerate(leaves):
      arrays[f"{kind}/state/{i}"] = leaf
    meta["tracks"][kind] = {"num_weights": len(weights), "num_state": len(leaves),
                            "shares": track.shares, "aucs": track.aucs,
                            "clip_factors": [list(c) for c in track.clip_factors]}
  memory = pickle.dumps(progress.attack_memory)
  arrays["attack_memory"] = np.frombuffer(memory, np.uint8)
  arrays["meta"] = np.frombuffer(json.dumps(meta, allow_nan=True, default=_plain).encode(),
                                 np.uint8)
  path = os.path.join(directory, FILE)
  temporary = path + ".tmp.npz"
  np.savez(temporary, **arrays)
  os.replace(temporary, path)


def load(directory: str, initial_state) -> Progress | None:
  """The saved ``Progress`` (None if there is none); ``initial_state`` is
  ``process.initialize()``'s, whose structure the saved state's leaves fill."""
  path = os.path.join(directory, FILE)
  if not os.path.exists(path):
    return None
  with np.load(path) as data:
    meta = json.loads(bytes(data["meta"]).decode())
    memory = pickle.loads(bytes(data["attack_memory"]))
    tracks = {}
    for kind, info in meta["tracks"].items():
      weights = [data[f"{kind}/weights/{i}"] for i in range(info["num_weights"])]
      leaves = [data[f"{kind}/state/{i}"] for i in range(info["num_state"])]
      tracks[kind] = Track(_pack(initial_state, leaves), weights, info["shares"],
                                info["aucs"], [tuple(c) for c in info["clip_factors"]])
  return Progress(meta["finished"], meta["rows"], meta["aggregator"], tracks.get("attacked"),
                  tracks.get("clean"), memory, meta["wall_seconds"])


def load_meta(directory: str) -> dict[str, Any] | None:
  """The saved progress without its arrays (the finished aggregators, the rows, the one in
  progress); None if there is none."""
  path = os.path.join(directory, FILE)
  if not os.path.exists(path):
    return None
  with np.load(path) as data:
    return json.loads(bytes(data["meta"]).decode())


def _plain(value):
  """JSON for NumPy scalars (their exact Python value)."""
  if hasattr(value, "item"):
    return value.item()
  raise TypeError(f"{type(value).__name__} cannot go into a checkpoint")


def _pack(template, leaves):
  import tensorflow as tf
  if template is None:
    return None
  flat = tf.nest.flatten(template)
  if len(flat) != len(leaves):
    raise ValueError(f"the checkpoint holds {len(leaves)} aggregator state tensors; the "
                     f"aggregator's state has {len(flat)}")
  return tf.nest.pack_sequence_as(template, list(leaves))


def remove(directory: str) -> None:
  path = os.path.join(directory, FILE)
  if os.path.exists(path):
    os.remove(path)


def attack_memory(poisoning) -> dict | None:
  """The attack's attributes (what it keeps across rounds), or None without one."""
  return None if poisoning is None else dict(vars(poisoning))


def restore_attack_memory(poisoning, memory: dict | None) -> None:
  if poisoning is not None and memory is not None:
    vars(poisoning).update(memory)
