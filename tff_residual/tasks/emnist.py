"""Federated EMNIST digits (TFF's ``tff.simulation.datasets.emnist``): natural
clients, one per writer (3,383 writers, 10 classes).

Data: TFF's loader with a cache directory, never downloading here.
``--data_path`` is that cache directory (holding ``emnist_all.sqlite``) or the
``emnist_all.sqlite`` file itself; default ``~/.tff``. Without it a
``DataError`` says how to get it. ``num_clients`` writers are drawn with the
seed; each keeps its own examples (the ``natural`` partition); the test set is
the same writers' held-out examples (TFF splits every writer's examples into
train and test). Pixels are inverted to MNIST's convention (0 = background)
and stored as uint8.

Attacks as MNIST: label flip 1 -> 7, backdoor target 2.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3

import numpy as np

from tff_residual.tasks import images
from tff_residual.tasks.base import Arrays, DataError, DataSettings, TaskData

DATABASE = "emnist_all.sqlite"
DATABASE_TABLES = ("client_metadata", "examples")
SPEC = images.ImageSpec(
    input_shape=(28, 28), image_shape=(28, 28, 1), mean=(0.1307,), std=(0.3081,),
    class_names=tuple(str(d) for d in range(10)), flip_source=1, flip_target=7, backdoor_target=2)

DEFAULTS = {
    key: {preset: dict(layer, partition="natural") if "partition" in layer else layer
          for preset, layer in presets.items()}
    for key, presets in images.DIGIT_DEFAULTS.items()
}


def cache_directory(data_path: str | None) -> str:
  """The directory holding ``emnist_all.sqlite``; DataError if it is not there."""
  if data_path:
    if not os.path.exists(data_path):
      raise DataError(f"--data_path {data_path} does not exist.")
    directory = data_path
    if os.path.isfile(data_path):
      if os.path.basename(data_path) != DATABASE:
        raise DataError(f"--data_path {data_path}: TFF's EMNIST cache file is named {DATABASE}.")
      directory = os.path.dirname(os.path.abspath(data_path))
  else:
    directory = os.path.join(os.path.expanduser("~"), ".tff")
  if not os.path.isfile(os.path.join(directory, DATABASE)):
    raise DataError(
        f"federated EMNIST is not cached ({os.path.join(directory, DATABASE)} is missing) and "
        "cannot be downloaded offline. On a machine with internet run `python -c \"import "
        "tensorflow_federated as tff; tff.simulation.datasets.emnist.load_data(cache_dir='DIR')\"`, "
        f"then copy DIR/{DATABASE} here and pass --data_path DIR.")
  return directory


def _to_arrays(dataset) -> Arrays:
  pixels, labels = [], []
  for element in dataset.batch(4096).as_numpy_iterator():
    pixels.append(element["pixels"])
    labels.append(element["label"])
  if not pixels:
    return Arrays(np.zeros((0, 28, 28), np.uint8), np.zeros((0,), np.int64))
  x = np.round((1.0 - np.concatenate(pixels)) * 255.0).clip(0, 255).astype(np.uint8)
  return Arrays(x, np.concatenate(labels).astype(np.int64).reshape(-1))


def check_database(path: str) -> None:
  """DataError unless ``path`` is an SQLite file with the tables TFF's EMNIST loader
  reads (TFF raises its own ``DatabaseFormatError``, which it does not export)."""
  try:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
      tables = {row[0] for row in connection.execute(
          "SELECT name FROM sqlite_master WHERE type = 'table'")}
  except sqlite3.Error as error:
    raise DataError(f"{path} is not TFF's EMNIST database: {error}") from None
  missing = sorted(set(DATABASE_TABLES) - tables)
  if missing:
    raise DataError(f"{path} is not TFF's EMNIST database: it lacks the table(s) {missing}.")


def load(settings: DataSettings) -> TaskData:
  directory = cache_directory(settings.data_path)
  check_database(os.path.join(directory, DATABASE))
  import tensorflow_federated as tff
  try:
    train_data, test_data = tff.simulation.datasets.emnist.load_data(only_digits=True,
                                                                     cache_dir=directory)
  except (sqlite3.Error, ValueError) as error:
    raise DataError(f"{os.path.join(directory, DATABASE)} is not TFF's EMNIST database: "
                    f"{error}") from None
  writers = list(train_data.client_ids)
  if settings.num_clients > len(writers):
    raise DataError(f"--num_clients={settings.num_clients} but the EMNIST cache has "
                    f"{len(writers)} writers.")
  chosen = sorted(np.random.default_rng(settings.seed).choice(writers, settings.num_clients,
                                                            replace=False))
  parts = [_to_arrays(train_data.create_tf_dataset_for_client(w)) for w in chosen]
  tests = [_to_arrays(test_data.create_tf_dataset_for_client(w))
           for w in chosen if w in set(test_data.client_ids)]
  sizes = np.cumsum([0] + [len(p) for p in parts])
  train = Arrays(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]))
  test = Arrays(np.concatenate([t.x for t in tests]), np.concatenate([t.y for t in tests]))
  data = images.image_data(train, test, SPEC, f"emnist (TFF cache {directory}, "
                                              f"{len(chosen)} of {len(writers)} writers)")
  data.natural_clients = [np.arange(sizes[i], sizes[i + 1]) for i in range(len(parts))]
  return data


FAMILY = images.family("emnist", SPEC, load, "federated EMNIST digits, one client per writer "
                       "(TFF's loader; needs its cache offline)", defaults=DEFAULTS)
