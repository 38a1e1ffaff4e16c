"""Keras models for the image tasks. Each takes raw pixels (0-255, uint8 or
float) and normalises them in its first layer: x' = (x / 255 - mean) / std,
per channel, as the reference's ``transforms.Normalize``.

* ``cnn``: the paper's MNIST CNN (Table 5, reference ``SmallCNNMnist``): conv
  1->4 5x5, ReLU, max-pool 2; conv 4->8 5x5, ReLU, max-pool 2; FC 128->16,
  ReLU; FC 16->10. 3,146 parameters (for 28x28x1 input).
* ``mlp``: FC (H W C)->64, ReLU, FC 64->classes. The ``cpu`` preset's model: on
  CPU it trains about ten times faster than the tiny CNN (BENCHMARKS.md, "Design
  measurements").
* ``cifar_cnn``: conv 3->32, pool, conv 32->64, pool, FC ->128 -> classes; the
  ``cpu`` preset's CIFAR-10 model.
* ``resnet18``: the reference's CIFAR-style ResNet-18 (3x3 stem, no max-pool,
  BasicBlocks [2, 2, 2, 2] of 64/128/256/512 channels, BatchNorm, 4x4 average
  pool, FC 512->10). 11,173,962 trainable parameters plus BatchNorm's moving
  statistics (which are aggregated too, as the reference's state_dict).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

IMAGE_MODELS = ("cnn", "mlp", "cifar_cnn", "resnet18")


def normalization(image_shape: Sequence[int], mean: Sequence[float], std: Sequence[float]):
  """Reshape to H x W x C (if the data have no channel axis) and normalise."""
  mean = np.asarray(mean, np.float32)
  std = np.asarray(std, np.float32)
  return [tf.keras.layers.Reshape(tuple(image_shape)),
          tf.keras.layers.Rescaling(scale=1.0 / (255.0 * std), offset=-mean / std)]


def build_image_model(name: str, input_shape: Sequence[int], image_shape: Sequence[int],
                      num_classes: int, mean: Sequence[float], std: Sequence[float]) -> tf.keras.Model:
  """A fresh Keras model ``name`` for images stored with ``input_shape``."""
  layers = tf.keras.layers
  if name == "resnet18":
    return _resnet18(input_shape, normalization(image_shape, mean, std), num_classes)
  head = [layers.InputLayer(input_shape=tuple(input_shape))] + normalization(image_shape, mean, std)
  if name == "cnn":
    body = [layers.Conv2D(4, 5, activation="relu"), layers.MaxPool2D(2),
            layers.Conv2D(8, 5, activation="relu"), layers.MaxPool2D(2),
            layers.Flatten(), layers.Dense(16, activation="relu"), layers.Dense(num_classes)]
  elif name == "mlp":
    body = [layers.Flatten(), layers.Dense(64, activation="relu"), layers.Dense(num_classes)]
  elif name == "cifar_cnn":
    body = [layers.Conv2D(32, 3, activation="relu"), layers.MaxPool2D(2),
            layers.Conv2D(64, 3, activation="relu"), layers.MaxPool2D(2),
            layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(num_classes)]
  else:
    raise ValueError(f"unknown image model {name!r}; expected one of {IMAGE_MODELS}.")
  return tf.keras.Sequential(head + body)


def _resnet18(input_shape, normalize, num_classes: int) -> tf.keras.Model:
  layers = tf.keras.layers

  def batch_norm():  # torch defaults: momentum 0.1 (Keras 0.9), eps 1e-5
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5)

  def block(x, channels, stride):
    shortcut = x
    y = layers.Conv2D(channels, 3, stride, padding="same", use_bias=False)(x)
    y = layers.ReLU()(batch_norm()(y))
    y = batch_norm()(layers.Conv2D(channels, 3, 1, padding="same", use_bias=False)(y))
    if stride != 1 or x.shape[-1] != channels:
      shortcut = batch_norm()(layers.Conv2D(channels, 1, stride, use_bias=False)(x))
    return layers.ReLU()(layers.Add()([y, shortcut]))

  inputs = tf.keras.Input(shape=tuple(input_shape))
  x = inputs
  for layer in normalize:
    x = layer(x)
  x = layers.ReLU()(batch_norm()(layers.Conv2D(64, 3, padding="same", use_bias=False)(x)))
  for channels, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
    x = block(x, channels, stride)
    x = block(x, channels, 1)
  x = layers.Flatten()(layers.AveragePooling2D(4)(x))
  return tf.keras.Model(inputs, layers.Dense(num_classes)(x), name="resnet18")
