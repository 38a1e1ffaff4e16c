"""A client's round data: the order of shuffle, batches, passes, augmentation and
poisoning, and that a run on CIFAR-10 trains on augmented images (and one on
Fashion-MNIST does not)."""

import numpy as np
import pytest
import tensorflow as tf

from task_helpers import make_config, write_cifar_batches, write_idx_directory
from tff_residual.simulation import runner
from tff_residual.simulation.client_data import client_dataset
from tff_residual.simulation.experiment import Experiment, _seed
from tff_residual.tasks import cifar10


def batches(dataset):
  return [(x.numpy(), y.numpy()) for x, y in dataset]


def test_passes_batches_and_the_cap():
  x = np.arange(10, dtype=np.float32)[:, None]
  data = batches(client_dataset(x, np.arange(10), batch_size=4, epochs=2, max_batches=2, seed=3))
  assert [len(b[0]) for b in data] == [4, 4, 4, 4]
  first, second = np.concatenate([b[1] for b in data[:2]]), np.concatenate([b[1] for b in data[2:]])
  assert len(set(first)) == 8 and len(set(second)) == 8           # no repeat within a pass
  assert not np.array_equal(first, second)                         # reshuffled each pass
  for xb, yb in data:
    np.testing.assert_array_equal(xb[:, 0], yb)                    # examples keep their labels
  again = batches(client_dataset(x, np.arange(10), batch_size=4, epochs=2, max_batches=2, seed=3))
  assert all(np.array_equal(a[1], b[1]) for a, b in zip(data, again))


def round_datasets(task, data_path, client):
  config, family = make_config(task, data_path=data_path, num_attackers=0)
  prepared = runner.prepare(config, family)
  model_spec, attack = runner.model_and_attack(prepared)
  experiment = Experiment(config.round_settings(), prepared.data, model_spec, attack,
                          prepared.federation, "in_process")
  dataset, _ = experiment.client_plan(client, 0)
  settings = config.round_settings()
  data = prepared.federation.clients[client]
  seed = _seed(settings.seed, 0, client)
  plain = client_dataset(data.x, data.y, batch_size=settings.batch_size,
                         epochs=settings.local_epochs,
                         max_batches=settings.max_batches_per_epoch, seed=seed)
  return batches(dataset), batches(plain), model_spec, seed


@pytest.mark.slow
def test_a_cifar10_run_trains_on_augmented_images(tmp_path):
  write_cifar_batches(str(tmp_path / "cifar"), per_batch=40)
  trained, plain, model_spec, seed = round_datasets("cifar10_backdoor", str(tmp_path / "cifar"), 1)
  assert model_spec.augment is cifar10.augment
  assert len(trained) == len(plain) > 0
  for index, ((x, y), (raw_x, raw_y)) in enumerate(zip(trained, plain)):
    np.testing.assert_array_equal(y, raw_y)
    want, _ = cifar10.augment(tf.constant(raw_x), tf.constant(raw_y),
                              tf.constant([seed, index], tf.int64))
    np.testing.assert_array_equal(x, want.numpy())
  assert any(not np.array_equal(x, raw_x) for (x, _), (raw_x, _) in zip(trained, plain))


def test_an_fmnist_run_trains_on_the_images_as_they_are(tmp_path):
  write_idx_directory(str(tmp_path / "idx"))
  trained, plain, model_spec, _ = round_datasets("fmnist_backdoor", str(tmp_path / "idx"), 1)
  assert model_spec.augment is None
  assert len(trained) == len(plain) > 0
  for (x, y), (raw_x, raw_y) in zip(trained, plain):
    np.testing.assert_array_equal(x, raw_x)
    np.testing.assert_array_equal(y, raw_y)
