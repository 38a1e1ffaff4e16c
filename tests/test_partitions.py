"""Client partitions: exact counts, disjointness, seeds."""

import numpy as np
import pytest

from tff_residual.tasks import partitions


def _labels(per_class=60, classes=10):
  return np.repeat(np.arange(classes), per_class)


def _assert_disjoint_cover(parts, n, complete=True):
  joined = np.concatenate(parts)
  assert len(np.unique(joined)) == len(joined), "a sample is held by two clients"
  if complete:
    assert sorted(joined.tolist()) == list(range(n))


def test_iid_sizes_and_seed():
  parts = partitions.iid(103, 10, seed=4)
  assert [len(p) for p in parts] == [11, 11, 11] + [10] * 7
  _assert_disjoint_cover(parts, 103)
  again = partitions.iid(103, 10, seed=4)
  other = partitions.iid(103, 10, seed=5)
  assert all(np.array_equal(a, b) for a, b in zip(parts, again))
  assert not all(np.array_equal(a, b) for a, b in zip(parts, other))


def test_class_shards_two_pure_classes_per_client():
  labels = _labels(per_class=60)
  parts = partitions.class_shards(labels, num_clients=100, shards_per_client=2, seed=1)
  assert len(parts) == 100
  _assert_disjoint_cover(parts, len(labels))
  for p in parts:
    assert len(p) == 6                                 # two shards of 60 / 20 = 3
    classes, counts = np.unique(labels[p], return_counts=True)
    assert len(classes) == 2 and counts.tolist() == [3, 3]
    # the client's data are its first shard, then its second one
    assert len(set(labels[p[:3]])) == 1 and len(set(labels[p[3:]])) == 1
  holders = partitions.holders_of_class(parts, labels, 1)
  assert len(holders) == 20                            # every shard of class 1 is somewhere
  assert partitions.class_shards(labels, 100, 2, seed=1)[7].tolist() == parts[7].tolist()


def test_class_shards_rejects_unequal_shard_counts():
  with pytest.raises(ValueError, match="multiple"):
    partitions.class_shards(_labels(), num_clients=7, shards_per_client=2, seed=0)


def test_dirichlet_covers_every_class_in_order_and_is_seeded():
  labels = _labels(per_class=500)
  parts = partitions.dirichlet(labels, 10, alpha=0.9, seed=3)
  _assert_disjoint_cover(parts, len(labels), complete=False)
  assert len(np.concatenate(parts)) >= len(labels) - 10 * 10   # rounding leaves < 1 per client/class
  counts = np.array([[np.sum(labels[p] == c) for c in range(10)] for p in parts])
  assert counts.std(axis=0).mean() > 20                # non-IID: per-class shares differ a lot
  small_alpha = partitions.dirichlet(labels, 10, alpha=0.05, seed=3)
  concentration = lambda ps: np.mean([np.max(np.bincount(labels[p], minlength=10)) / max(len(p), 1)
                                      for p in ps])
  assert concentration(small_alpha) > concentration(parts)
  assert all(np.array_equal(a, b) for a, b in zip(parts, partitions.dirichlet(labels, 10, 0.9, 3)))


def test_by_key_one_client_per_key_seeded_and_independent_of_row_order():
  keys = np.array(["CA"] * 5 + ["NY"] * 3 + ["TX"] * 2 + ["WA"])
  parts, chosen = partitions.by_key(keys, 3, seed=0)
  assert len(chosen) == 3 and len(set(chosen)) == 3
  for part, key in zip(parts, chosen):
    assert set(keys[part]) == {key}
    assert len(part) == int(np.sum(keys == key))
  shuffled = np.random.default_rng(0).permutation(len(keys))
  _, chosen_shuffled = partitions.by_key(keys[shuffled], 3, seed=0)
  assert chosen_shuffled == chosen
  with pytest.raises(ValueError, match="only 4 distinct"):
    partitions.by_key(keys, 5, seed=0)


def test_leading_fraction_keeps_the_first_part_in_order():
  parts = [np.arange(10), np.arange(10, 13), np.array([], np.int64)]
  kept = partitions.take_leading_fraction(parts, 0.7)
  assert [k.tolist() for k in kept] == [list(range(7)), [10, 11], []]
  with pytest.raises(ValueError, match="client_train_fraction"):
    partitions.take_leading_fraction(parts, 0.0)
