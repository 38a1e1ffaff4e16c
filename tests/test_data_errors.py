"""Each ``DataError`` a loader raises, one test per branch, on small files written
here: the message names the file or flag and what is wrong, and nothing is loaded
silently instead."""

import dataclasses
import gzip
import os
import pickle
import sqlite3

import numpy as np
import pytest

from task_helpers import (image_arrays, make_config, write_cifar_batches, write_emnist_sqlite,
                          write_idx, write_idx_directory, write_loan_csv, write_reviews)
from tff_residual.tasks import amazon, emnist, fmnist, images, loan
from tff_residual.tasks.base import Arrays, DataError
from tff_residual.tasks.image_files import (load_cifar_batches, load_idx_directory, load_npz,
                                            read_idx)


def load(task, **overrides):
  config, family = make_config(task, **overrides)
  return family.load(config.data_settings())


def test_arrays_of_unequal_length():
  with pytest.raises(DataError, match="3 examples but 2 labels"):
    Arrays(np.zeros((3, 2)), np.zeros(2))


# Image files.

def test_idx_corrupt_gzip(tmp_path):
  path = tmp_path / "train-images-idx3-ubyte.gz"
  path.write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
  with pytest.raises(DataError, match=f"cannot read IDX file {path}"):
    read_idx(str(path))


def test_idx_directory_lacks_files(tmp_path):
  write_idx(str(tmp_path / "train-images-idx3-ubyte"), np.zeros((2, 28, 28), np.uint8))
  with pytest.raises(DataError, match=r"lacks the IDX file\(s\) \['train-labels-idx1-ubyte'"):
    load_idx_directory(str(tmp_path))


def test_npz_that_is_not_an_npz(tmp_path):
  path = tmp_path / "digits.npz"
  path.write_bytes(b"PK\x03\x04 truncated zip")
  with pytest.raises(DataError, match=f"cannot read {path} as .npz"):
    load_npz(str(path))


def test_cifar_directory_lacks_a_batch(tmp_path):
  write_cifar_batches(str(tmp_path))
  os.remove(tmp_path / "data_batch_3")
  with pytest.raises(DataError, match="lacks the CIFAR-10 batch file data_batch_3"):
    load_cifar_batches(str(tmp_path))


@pytest.mark.parametrize("content", [b"not a pickle", pickle.dumps({b"labels": [1, 2]})])
def test_cifar_batch_that_is_not_one(tmp_path, content):
  write_cifar_batches(str(tmp_path))
  (tmp_path / "test_batch").write_bytes(content)
  with pytest.raises(DataError, match="test_batch is not a CIFAR-10 python batch"):
    load_cifar_batches(str(tmp_path))


def test_image_labels_outside_the_classes(tmp_path):
  x_train, y_train, x_test, y_test = image_arrays()
  y_train = y_train.copy()
  y_train[5] = 10
  path = str(tmp_path / "digits.npz")
  np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
  with pytest.raises(DataError, match=r"\(train\): labels 0..10 outside 0..9"):
    load("mnist_backdoor", data_path=path)


def test_fmnist_nowhere_says_how_to_install_it(monkeypatch, tmp_path):
  monkeypatch.setattr(fmnist, "DEBIAN_DIR", str(tmp_path / "none"))
  monkeypatch.setenv("HOME", str(tmp_path))
  monkeypatch.setattr(images, "load_tfds", lambda name: None)
  assert not fmnist.available()
  with pytest.raises(DataError, match="Fashion-MNIST not found .*dataset-fashion-mnist"):
    load("fmnist_backdoor")


def test_image_model_not_offered(tmp_path):
  write_idx_directory(str(tmp_path))
  config, family = make_config("fmnist_backdoor", data_path=str(tmp_path))
  data = family.load(config.data_settings())
  with pytest.raises(DataError, match=r"--model=resnet99 is not offered here; expected one of"):
    family.build_model("resnet99", data, 0)


def test_image_target_label_outside_the_classes(tmp_path):
  write_idx_directory(str(tmp_path))
  config, family = make_config("fmnist_backdoor", data_path=str(tmp_path))
  data = family.load(config.data_settings())
  settings = dataclasses.replace(config.target_settings(), backdoor_target=10)
  with pytest.raises(DataError, match=r"--backdoor_target=10 is not a label of this dataset \(0..9\)"):
    family.attack_targets(settings, data)


# EMNIST (TFF's SQLite cache).

def test_emnist_path_that_does_not_exist(tmp_path):
  with pytest.raises(DataError, match="does not exist"):
    emnist.cache_directory(str(tmp_path / "none"))


def test_emnist_file_with_another_name(tmp_path):
  path = tmp_path / "emnist.db"
  path.write_bytes(b"")
  with pytest.raises(DataError, match="cache file is named emnist_all.sqlite"):
    emnist.cache_directory(str(path))


def test_emnist_database_that_is_not_tffs(tmp_path):
  with sqlite3.connect(tmp_path / "emnist_all.sqlite") as connection:
    connection.execute("CREATE TABLE other (x INTEGER)")
  with pytest.raises(DataError, match="is not TFF's EMNIST database"):
    load("emnist_backdoor", data_path=str(tmp_path), num_clients=2)


def test_emnist_more_clients_than_writers(tmp_path):
  write_emnist_sqlite(str(tmp_path), writers=3)
  with pytest.raises(DataError, match="--num_clients=5 but the EMNIST cache has 3 writers"):
    load("emnist_backdoor", data_path=str(tmp_path), num_clients=5)


# Amazon reviews (McAuley JSON lines).

def test_amazon_path_that_does_not_exist(tmp_path):
  with pytest.raises(DataError, match="does not exist"):
    load("amazon_label_flip", data_path=str(tmp_path / "none.jsonl"))


def test_amazon_line_that_is_not_json(tmp_path):
  path = tmp_path / "reviews.jsonl"
  write_reviews(str(path), [5, 1])
  with open(path, "a") as f:
    f.write("{broken\n")
  with pytest.raises(DataError, match="line 3 is not JSON"):
    amazon.read_reviews(str(path))


def test_amazon_corrupt_gzip(tmp_path):
  path = tmp_path / "reviews.jsonl.gz"
  path.write_bytes(gzip.compress(b'{"reviewText": "a", "overall": 5}\n')[:-12])
  with pytest.raises(DataError, match="cannot read .* as JSON lines"):
    amazon.read_reviews(str(path))


@pytest.mark.parametrize("ratings", [[5, 1, 4, 2], [5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4]])
def test_amazon_too_few_reviews_or_one_class(tmp_path, ratings):
  path = str(tmp_path / "reviews.jsonl")
  write_reviews(path, ratings)
  with pytest.raises(DataError, match="need both classes and at least 10 reviews"):
    load("amazon_label_flip", data_path=path)


def test_amazon_model_not_offered():
  with pytest.raises(DataError, match=r"--model=lstm is not offered here; expected \['fasttext'\]"):
    amazon.build_model("lstm", None, 0)


# LOAN (LendingClub CSV).

def test_loan_path_that_does_not_exist(tmp_path):
  with pytest.raises(DataError, match="does not exist"):
    load("loan_backdoor", data_path=str(tmp_path / "none.csv"))


def test_loan_file_that_is_not_csv(tmp_path):
  path = tmp_path / "loans.csv.gz"
  path.write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
  with pytest.raises(DataError, match=f"cannot read {path} as CSV"):
    load("loan_backdoor", data_path=str(path))


def test_loan_too_few_rows(tmp_path):
  path = str(tmp_path / "loans.csv")
  write_loan_csv(path, rows=9)
  with pytest.raises(DataError, match="9 rows with addr_state and loan_status; need 10"):
    load("loan_backdoor", data_path=path)


def test_loan_one_class(tmp_path):
  path = str(tmp_path / "loans.csv")
  write_loan_csv(path, rows=40, statuses=("Fully Paid",))
  with pytest.raises(DataError, match=r"the label column has one class \(\['Fully Paid'\]\)"):
    load("loan_backdoor", data_path=path, num_clients=4)


def test_loan_label_column_without_a_file():
  with pytest.raises(DataError, match="--label_column applies to --data_path files"):
    load("loan_backdoor", label_column="grade")


def test_loan_model_not_offered():
  with pytest.raises(DataError, match=r"--model=mlp is not offered here; expected \['loannet'\]"):
    loan.build_model("mlp", None, 0)


def test_loan_target_outside_the_classes(tmp_path):
  path = str(tmp_path / "loans.csv")
  write_loan_csv(path, rows=60)
  config, family = make_config("loan_label_flip", data_path=path, num_clients=4)
  data = family.load(config.data_settings())
  settings = dataclasses.replace(config.target_settings(), target_label=3)
  with pytest.raises(DataError, match=r"--target_label=3 is not a class of this file \(0..2"):
    family.attack_targets(settings, data)


def test_emnist_file_that_is_not_sqlite(tmp_path):
  (tmp_path / "emnist_all.sqlite").write_bytes(b"plain text, not a database" * 40)
  with pytest.raises(DataError, match="is not TFF's EMNIST database"):
    load("emnist_backdoor", data_path=str(tmp_path), num_clients=2)


def test_amazon_gzip_that_is_not_gzip(tmp_path):
  path = tmp_path / "reviews.jsonl.gz"
  path.write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
  with pytest.raises(DataError, match="cannot read .* as JSON lines"):
    amazon.read_reviews(str(path))
