"""What the image task families (mnist, fmnist, emnist, cifar10) share:
their defaults per attack and preset, the backdoor pattern, and the family
constructor.

Backdoor (reference ``add_backdoor_pixels``): 12 pixels of the top-left
corner, rows 0 and 2, columns 0-2 and 4-6, every channel. The code sets them
to 1.0 *after* normalisation (``--trigger_value=reference``, grey for MNIST:
raw value (mean + std) 255); the paper's figure shows them white
(``--trigger_value=white``, raw 255).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence

import numpy as np

from tff_residual.tasks.base import (AttackTargets, DataError, ModelSpec, TargetSettings, TaskData,
                                     TaskFamily, Trigger)

TRIGGER_PIXELS = [(r, c) for r in (0, 2) for c in (0, 1, 2, 4, 5, 6)]
TRIGGER_VALUES = ("reference", "white")

IMAGE_ATTACKS = ("none", "label_flip", "backdoor", "model_replacement", "gaussian", "mix_rate")

_LABEL_FLIP_SETUP = dict(num_clients=100, clients_per_round=10, partition="class_shards",
                         batch_size=128, num_attackers=4)
_BACKDOOR_SETUP = dict(num_clients=10, clients_per_round=0, partition="dirichlet", num_attackers=1)

# Defaults of MNIST-like families (docs/reference_differences.md §4.1). cpu: the MLP
# (see image_models) and fewer rounds; the rest as the paper.
DIGIT_DEFAULTS = {
    "*": {"paper": dict(model="cnn", rounds=200), "cpu": dict(model="mlp"),
          "smoke": dict(model="mlp")},
    "none": {"paper": dict(_LABEL_FLIP_SETUP, num_attackers=0), "cpu": dict(rounds=100),
             "smoke": dict(num_attackers=0)},
    "label_flip": {"paper": _LABEL_FLIP_SETUP, "cpu": dict(rounds=100)},
    # §4.4: 100 participants with 300 + 300 images of two digits, 10 noisy
    # (they train honestly, then their weights are corrupted).
    "gaussian": {"paper": dict(_LABEL_FLIP_SETUP, num_attackers=10), "cpu": dict(rounds=100)},
    "backdoor": {"paper": _BACKDOOR_SETUP, "cpu": dict(rounds=30)},
    "model_replacement": {"paper": _BACKDOOR_SETUP, "cpu": dict(rounds=30)},
    # Paper A.6 ran it on Amazon: 10 users, 4 attackers, 2 more epochs, lr x10.
    "mix_rate": {"paper": dict(_BACKDOOR_SETUP, num_attackers=4, attacker_epochs=7),
                 "cpu": dict(rounds=30), "smoke": dict(attacker_epochs=2)},
}


@dataclasses.dataclass(frozen=True)
class ImageSpec:
  """Constants of an image dataset.

  ``input_shape`` is the stored example shape (28 x 28 for the digits, no
  channel axis), ``image_shape`` the model's H x W x C.
  """

  input_shape: tuple[int, ...]
  image_shape: tuple[int, ...]
  mean: tuple[float, ...]
  std: tuple[float, ...]
  class_names: tuple[str, ...]
  flip_source: int
  flip_target: int
  backdoor_target: int


def trigger(spec: ImageSpec, value: str) -> Trigger:
  """The reference's 12-pixel top-left pattern for images of ``spec``."""
  if value not in TRIGGER_VALUES:
    raise ValueError(f"--trigger_value must be one of {TRIGGER_VALUES}, got {value!r}.")
  mask = np.zeros(spec.input_shape, bool)
  for row, col in TRIGGER_PIXELS:
    mask[row, col] = True
  raw = (255.0 * (np.asarray(spec.mean) + np.asarray(spec.std)) if value == "reference"
         else np.full(len(spec.mean), 255.0))
  pattern = np.zeros(spec.input_shape, np.float32)
  pattern[...] = np.round(raw) if len(spec.input_shape) == 3 else np.round(raw[0])
  return Trigger(mask, pattern, f"12 pixels top-left (rows 0, 2; columns 0-2, 4-6) set to "
                                f"{np.round(raw).astype(int).tolist()} ({value})")


def image_targets(spec: ImageSpec):
  """``attack_targets(settings, data)`` for an image family."""
  def attack_targets(settings: TargetSettings, data: TaskData) -> AttackTargets:
    source = spec.flip_source if settings.source_label is None else settings.source_label
    target = spec.flip_target if settings.target_label is None else settings.target_label
    backdoor = (spec.backdoor_target if settings.backdoor_target is None
                else settings.backdoor_target)
    for name, label in (("--source_label", source), ("--target_label", target),
                        ("--backdoor_target", backdoor)):
      if not 0 <= int(label) < data.num_classes:
        raise DataError(f"{name}={label} is not a label of this dataset (0..{data.num_classes - 1}).")
    return AttackTargets(int(source), int(target), int(backdoor),
                         trigger(spec, settings.trigger_value))
  return attack_targets


def image_model(spec: ImageSpec, models: Sequence[str], augment: Callable | None = None):
  """``build_model(name, data, seed)`` for an image family."""
  def build_model(name: str, data: TaskData, seed: int) -> ModelSpec:
    if name not in models:
      raise DataError(f"--model={name} is not offered here; expected one of {list(models)}.")
    from tff_residual.tasks import image_models

    def build():
      return image_models.build_image_model(name, spec.input_shape, spec.image_shape,
                                            data.num_classes, spec.mean, spec.std)
    return ModelSpec(name, build, "sparse_categorical", augment)
  return build_model


def family(name: str, spec: ImageSpec, load, description: str, defaults=DIGIT_DEFAULTS,
           models: Sequence[str] = ("cnn", "mlp"), augment: Callable | None = None) -> TaskFamily:
  return TaskFamily(name=name, attacks=IMAGE_ATTACKS, models=tuple(models), defaults=defaults,
                    load=load, build_model=image_model(spec, models, augment),
                    attack_targets=image_targets(spec), description=description)


def keras_cache(*parts: str) -> str:
  """A path under Keras' dataset cache (``~/.keras/datasets``)."""
  return os.path.join(os.path.expanduser("~"), ".keras", "datasets", *parts)


def load_tfds(name: str):
  """(train, test) from a prepared TFDS copy, or None (not installed / not prepared).

  Never downloads.
  """
  try:
    import tensorflow_datasets as tfds  # optional; not installed by `make venv`
  except ImportError:
    return None
  from tff_residual.tasks.base import Arrays
  try:
    (x_train, y_train), (x_test, y_test) = tfds.as_numpy(tfds.load(
        name, split=["train", "test"], batch_size=-1, as_supervised=True, download=False))
  except Exception:  # tfds raises several types when the data are not prepared
    return None
  return Arrays(x_train, y_train.astype(np.int64)), Arrays(x_test, y_test.astype(np.int64))


def squeeze_channel(arrays, spec: ImageSpec):
  """Stores single-channel images without the channel axis (the readers may give either)."""
  if len(spec.input_shape) == 2 and arrays.x.ndim == 4:
    arrays.x = arrays.x[..., 0]
  return arrays


def image_data(train, test, spec: ImageSpec, data_source: str, notices=()) -> TaskData:
  """A ``TaskData`` from image arrays: uint8 pixels, int64 labels, checked."""
  from tff_residual.tasks.image_files import check_images
  train, test = squeeze_channel(train, spec), squeeze_channel(test, spec)
  for arrays, part in ((train, "train"), (test, "test")):
    check_images(arrays.x, spec.input_shape, f"{data_source} ({part})")
    if arrays.x.dtype != np.uint8:
      scale = 255.0 if np.issubdtype(arrays.x.dtype, np.floating) and arrays.x.max() <= 1.0 else 1.0
      arrays.x = np.clip(np.round(arrays.x * scale), 0, 255).astype(np.uint8)
    labels = np.unique(arrays.y)
    if len(labels) and (labels.min() < 0 or labels.max() >= len(spec.class_names)):
      raise DataError(f"{data_source} ({part}): labels {labels.min()}..{labels.max()} outside "
                      f"0..{len(spec.class_names) - 1}.")
  return TaskData(train, test, len(spec.class_names), list(spec.class_names), data_source,
                  list(notices))
