"""CIFAR-10 (Krizhevsky, 2009): 32 x 32 x 3 images, 10 classes.

Data (never downloads): ``--data_path`` to an ``.npz`` (x_train, y_train,
x_test, y_test; e.g. ``../shared/data/cifar10/cifar10_jpeg.npz``, a JPEG-decoded
copy) or to a ``cifar-10-batches-py`` directory; else Keras' cache
``~/.keras/datasets/cifar-10-batches-py`` or a prepared TFDS copy.

Setup (docs/reference_differences.md §4.2): 10 participants, Dirichlet(0.9), ResNet-18,
random crop (padding 4) and horizontal flip for training, label flip cat (3) ->
dog (5), backdoor target bird (2). The ``cpu`` preset uses a small CNN and
shorter local training.
"""

from __future__ import annotations

import os

from tff_residual.tasks import images
from tff_residual.tasks.base import DataError, DataSettings, TaskData
from tff_residual.tasks.image_files import load_cifar_batches, load_image_path

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck")
SPEC = images.ImageSpec(
    input_shape=(32, 32, 3), image_shape=(32, 32, 3), mean=(0.4914, 0.4822, 0.4465),
    std=(0.2023, 0.1994, 0.2010), class_names=CLASS_NAMES, flip_source=3, flip_target=5,
    backdoor_target=2)

_SETUP = dict(num_clients=10, clients_per_round=0, partition="dirichlet")
DEFAULTS = {
    "*": {"paper": dict(_SETUP, model="resnet18", rounds=100),
          # cpu: a 315k-parameter CNN, 2 local epochs of at most 10 batches.
          "cpu": dict(model="cifar_cnn", rounds=30, local_epochs=2, attacker_epochs=4,
                      max_batches_per_epoch=10),
          "smoke": dict(model="cifar_cnn")},
    "none": {"paper": dict(num_attackers=0), "smoke": dict(num_attackers=0)},
    "label_flip": {"paper": dict(num_attackers=2)},
    "mix_rate": {"paper": dict(num_attackers=4, attacker_epochs=7),
                 "cpu": dict(attacker_epochs=4), "smoke": dict(attacker_epochs=2)},
}


def load(settings: DataSettings) -> TaskData:
  if settings.data_path:
    train, test = load_image_path(settings.data_path, SPEC.input_shape)
    return images.image_data(train, test, SPEC, f"cifar10 from {settings.data_path}")
  cache = images.keras_cache("cifar-10-batches-py")
  if os.path.isfile(os.path.join(cache, "data_batch_1")):
    return images.image_data(*load_cifar_batches(cache), SPEC, f"cifar10 (Keras cache {cache})")
  tfds_data = images.load_tfds("cifar10")
  if tfds_data is not None:
    return images.image_data(*tfds_data, SPEC, "cifar10 (TFDS)")
  raise DataError("CIFAR-10 not found offline: pass --data_path to an .npz with x_train, "
                  "y_train, x_test, y_test (e.g. ../shared/data/cifar10/cifar10_jpeg.npz) or to a "
                  "cifar-10-batches-py directory.")


def augment(x, y, seed):
  """The reference's training transforms on a batch of uint8 images: RandomCrop(32,
  padding=4) and RandomHorizontalFlip, independently per image, from the
  stateless ``seed`` (int [2]) so that runs repeat exactly."""
  import tensorflow as tf
  count = tf.shape(x)[0]
  offsets = tf.random.stateless_uniform([count, 2], seed, 0, 9, tf.int32)
  flips = tf.random.stateless_uniform([count], seed + tf.constant([0, 1], seed.dtype)) < 0.5
  padded = tf.pad(x, [[0, 0], [4, 4], [4, 4], [0, 0]])
  cropped = tf.map_fn(lambda args: tf.slice(args[0], [args[1][0], args[1][1], 0], [32, 32, 3]),
                      (padded, offsets), fn_output_signature=x.dtype)
  return tf.where(flips[:, None, None, None], tf.reverse(cropped, axis=[2]), cropped), y


FAMILY = images.family("cifar10", SPEC, load, "CIFAR-10 (--data_path .npz or batches, or "
                       "Keras/TFDS cache)", defaults=DEFAULTS,
                       models=("resnet18", "cifar_cnn", "mlp"), augment=augment)
