"""What a task family hands to the simulation: data, model, attack targets.

A task is ``<dataset>_<attack>`` (e.g. ``fmnist_backdoor``). The dataset part
names a *task family* (``TaskFamily``): how to load its data (real loaders
first, offline defaults), which partitions and models it offers, its default
hyper-parameters per preset and attack, and the targets of its attacks (label
flip mapping, backdoor trigger and target label).

Data are NumPy arrays (no TF import here): ``TaskData.train`` is the pool of
training examples that the partition assigns to clients, ``TaskData.test`` the
held-out set every round is evaluated on.
"""

from __future__ import annotations

import dataclasses
import zipfile
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


class DataError(ValueError):
  """Missing or malformed data; the CLI prints it as one line and exits with 2."""


UNREADABLE_FILE_ERRORS = (OSError, EOFError, UnicodeDecodeError, zlib.error, zipfile.BadZipFile)
"""What reading a missing, truncated or corrupt (gzip, zip) file raises; loaders turn
them into a ``DataError`` naming the file."""


@dataclasses.dataclass
class Arrays:
  """Examples ``x`` [n, ...] and integer labels ``y`` [n]."""

  x: np.ndarray
  y: np.ndarray

  def __post_init__(self):
    if len(self.x) != len(self.y):
      raise DataError(f"{len(self.x)} examples but {len(self.y)} labels.")

  def __len__(self) -> int:
    return len(self.y)

  def subset(self, indices: np.ndarray) -> "Arrays":
    return Arrays(self.x[indices], self.y[indices])


@dataclasses.dataclass
class TaskData:
  """A loaded dataset.

  Attributes:
    train, test: the training pool and the test set.
    num_classes: size of the label space (labels are 0..num_classes-1).
    class_names: a name per label.
    data_source: what was loaded, e.g. ``"fmnist (Debian dataset-fashion-mnist)"``,
      ``"mnist-5k"`` or ``"synthetic"``.
    notices: lines the run prints and records (fallbacks, adaptations).
    client_keys: optional key per training example for ``by_key`` partitions
      (LendingClub's state).
    natural_clients: optional index arrays into ``train``, one per client, for
      data that come federated (EMNIST writers).
    feature_names: column names of tabular features.
    feature_scaling: the standardization applied to tabular features, if any
      (it has ``mean``, ``std`` and ``apply(x)``), so that triggers can follow it.
  """

  train: Arrays
  test: Arrays
  num_classes: int
  class_names: list[str]
  data_source: str
  notices: list[str] = dataclasses.field(default_factory=list)
  client_keys: np.ndarray | None = None
  natural_clients: list[np.ndarray] | None = None
  feature_names: list[str] | None = None
  feature_scaling: Any = None


@dataclasses.dataclass(frozen=True)
class DataSettings:
  """What a family's ``load`` reads from the run's settings (the flags of the same names)."""

  data_path: str | None
  seed: int
  num_clients: int
  label_column: str
  feature_scaling: str


@dataclasses.dataclass(frozen=True)
class TargetSettings:
  """What a family's ``attack_targets`` reads from the run's settings.

  Attributes:
    source_label, target_label, backdoor_target: label overrides (None = the
      family's default).
    trigger_features: tabular features a trigger sets (LOAN).
    trigger_value: the image trigger's pixel value rule.
    needs_trigger: whether the run's attack stamps a backdoor trigger (the
      attack table says which do; a task knows no attack names). LOAN derives
      its trigger from the data only then; an image family's trigger is a fixed
      pattern, built (and its ``trigger_value`` checked) for every run.
  """

  source_label: int | None
  target_label: int | None
  backdoor_target: int | None
  trigger_features: tuple[str, ...]
  trigger_value: str
  needs_trigger: bool


@dataclasses.dataclass(frozen=True)
class Trigger:
  """A backdoor trigger: ``x' = where(mask, pattern, x)`` per example.

  ``mask`` (bool) and ``pattern`` have the shape of one example.
  """

  mask: np.ndarray
  pattern: np.ndarray
  description: str

  def apply(self, x: np.ndarray) -> np.ndarray:
    """Stamps the trigger on a batch of examples (NumPy; the training pipeline
    uses the same mask and pattern in TF)."""
    return np.where(self.mask, self.pattern.astype(x.dtype), x)


@dataclasses.dataclass(frozen=True)
class AttackTargets:
  """What the attacks of a task aim at.

  Attributes:
    flip_source: label whose examples attackers relabel, or None = every label.
    flip_target: the label they get (ignored when flip_source is None:
      every label y becomes ``num_classes - 1 - y``).
    backdoor_target: label of triggered examples (None if no backdoor).
    trigger: the backdoor trigger (None if no backdoor).
    notices: lines the run prints and records about the targets.
  """

  flip_source: int | None
  flip_target: int | None
  backdoor_target: int | None = None
  trigger: Trigger | None = None
  notices: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """A Keras model for a task.

  Attributes:
    name: the ``--model`` name.
    build: returns a fresh, uncompiled Keras model taking the task's raw
      examples (normalisation is the model's first layer).
    loss: "sparse_categorical" (logits over classes) or "binary" (one logit).
    augment: optional TF function ``(x, y, seed) -> (x, y)`` applied to
      training batches before any poisoning (CIFAR-10's crop and flip);
      ``seed`` is a stateless random seed, int64 [2].
  """

  name: str
  build: Callable[[], Any]
  loss: str
  augment: Callable | None = None


@dataclasses.dataclass(frozen=True)
class TaskFamily:
  """One dataset and everything the simulation needs from it.

  Attributes:
    name: the dataset part of the task name.
    attacks: attack names that make sense for it.
    models: ``--model`` names it offers.
    defaults: ``defaults[attack][preset]`` -> hyper-parameter defaults (see
      ``tff_residual.tasks.presets``).
    load: ``load(DataSettings) -> TaskData``.
    build_model: ``build_model(name, data, seed) -> ModelSpec``.
    attack_targets: ``attack_targets(TargetSettings, data) -> AttackTargets``.
    description: one line for ``--list_tasks``.
  """

  name: str
  attacks: tuple[str, ...]
  models: tuple[str, ...]
  defaults: Mapping[str, Mapping[str, Mapping[str, Any]]]
  load: Callable[[DataSettings], TaskData]
  build_model: Callable[[str, TaskData, int], ModelSpec]
  attack_targets: Callable[[TargetSettings, TaskData], AttackTargets]
  description: str
