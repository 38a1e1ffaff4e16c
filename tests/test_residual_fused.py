"""The fast residual reweighting (selection networks under XLA) against the
straightforward sort-based implementation, the networks themselves, and the
memory of a large call."""

import functools
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tff_residual.kernels import order_statistics
from tff_residual.kernels.residual import equations
from tff_residual.kernels.residual import fused as residual_fused
from tff_residual.kernels.residual import sorting_networks
from tff_residual.kernels.residual.reweighting import (ResidualReweightingConfig,
                                                       residual_reweighting)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("num_wires", [1, 2, 3, 5, 9, 10, 16, 29, 33, 64, 99])
def test_selection_network_gives_the_sorted_positions(num_wires):
  rng = np.random.default_rng(num_wires)
  values = rng.integers(0, 4, size=(num_wires, 500)).astype(np.float32)  # many ties
  values[:, 0] = np.inf
  values[:, 1] = -np.inf
  expected = np.sort(values, axis=0)
  positions = sorted({0, (num_wires - 1) // 2, num_wires // 2, num_wires - 1})
  selected = sorting_networks.select([tf.constant(v) for v in values], positions)
  for position, result in zip(positions, selected):
    np.testing.assert_array_equal(result.numpy(), expected[position])


def test_network_sizes_are_the_pruned_batcher_ones():
  assert len(sorting_networks.selection_comparators(9, (4,))) == 24
  assert len(sorting_networks.selection_comparators(29, (14,))) == 138
  assert len(sorting_networks.selection_comparators(99, (49,))) == 891


def test_network_sizes():
  residual_fused.check_max_clients(residual_fused.MAX_CLIENTS)
  with pytest.raises(ValueError, match="outside"):
    residual_fused.check_max_clients(residual_fused.MAX_CLIENTS + 1)


@pytest.mark.parametrize("size", [3, 4, 9, 10, 16, 33])
def test_the_padded_median_positions(size):
  # Brute force: K - 1 finite slopes, +inf (the diagonal), floor(P/2) -inf and
  # ceil(P/2) +inf pads; the middle of the slopes sits where the formula says.
  for k in range(3, size + 1):
    pads = size - k
    row = np.concatenate([np.full(pads // 2, -np.inf), np.arange(k - 1.0), [np.inf],
                          np.full(pads - pads // 2, np.inf)])
    low, high = residual_fused.inner_median_positions(size)[pads % 2]
    ordered = np.sort(row)
    assert (ordered[low] + ordered[high]) / 2 == np.median(np.arange(k - 1.0)), k


def _models(num_clients, seed):
  rng = np.random.default_rng(seed)
  first = rng.normal(size=(num_clients, 257)).astype(np.float32)
  first[0, :20] += 50.0  # an attacker's outliers
  tied = np.round(rng.normal(size=(num_clients, 40)), 1).astype(np.float32)  # ties
  tied[:, :5] = 0.25  # every client equal
  scalar = rng.normal(size=(num_clients, 1)).astype(np.float32)
  empty = np.zeros((num_clients, 0), np.float32)
  return [first, tied, scalar, empty]


def _assert_close(fast, slow):
  for a, b in zip(fast.aggregate, slow.aggregate):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(fast.client_weights.numpy(), slow.client_weights.numpy(),
                             rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(fast.corrected_fraction.numpy(), slow.corrected_fraction.numpy(),
                             rtol=1e-6, atol=1e-7)
  assert int(fast.num_dropped_clients) == int(slow.num_dropped_clients)


@functools.lru_cache(maxsize=None)
def _sorted_result(num_clients, seed):
  """The oracle: the sort implementation on ``_models(num_clients, seed)``."""
  return residual_reweighting(_models(num_clients, seed),
                              config=ResidualReweightingConfig(implementation="sort"))


# Small and large networks of both parities, the largest one, past it (sorting);
# width 1 (every column its own padded chunk) only where the XLA programs are small.
@pytest.mark.parametrize("num_clients,chunk_size", [
    (k, width) for k in (3, 4, 10, 13, 30, 33, 100, 129)
    for width in ((None, 1, 100) if k <= 13 else (None, 100))])
@pytest.mark.slow
def test_fast_path_equals_the_sort_implementation(num_clients, chunk_size):
  slow = _sorted_result(num_clients, num_clients)
  fast = residual_reweighting(_models(num_clients, num_clients),
                              config=ResidualReweightingConfig(chunk_size=chunk_size))
  _assert_close(fast, slow)
  assert float(tf.reduce_sum(slow.client_weights)) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("params", [{"lambda_": 1.0, "delta": 0.3}, {"gamma": 2.0}])
@pytest.mark.parametrize("dropped", [(4,), (4, 7)])
def test_fast_path_with_dropped_clients_and_other_hyper_parameters(dropped, params):
  """11 clients build an 11-wire network; dropping 1 or 2 pads it by an odd or even count."""
  values = _models(11, 3)
  for client in dropped:
    values[0][client, 3] = np.nan if client == 4 else np.inf
  slow = residual_reweighting(values, config=ResidualReweightingConfig(implementation="sort",
                                                                       **params))
  fast = residual_reweighting(values, config=ResidualReweightingConfig(**params))
  _assert_close(fast, slow)
  assert int(fast.num_dropped_clients) == len(dropped)
  assert all(float(fast.client_weights[client]) == 0.0 for client in dropped)


@pytest.fixture(scope="module")
def unknown_k_kernel():
  """The kernel in one graph with an unknown client axis (TFF's stacks), traced once."""
  return tf.function(lambda v: residual_reweighting([v]),
                     input_signature=[tf.TensorSpec([None, None], tf.float32)])


@pytest.mark.parametrize("num_clients", [3, 5, 12, 13, 20, 21, 32, 33])
@pytest.mark.slow
def test_unknown_k_inside_a_graph_agrees(unknown_k_kernel, num_clients):
  """TFF's stacks have a dynamic client axis: the plain-executor branches for 3, 5
  and 12 clients, the padded ones for 13, 20 (20 rows), 21 and 32 (32 rows), the
  sorting path for 33, the same numbers as the sort implementation."""
  assert residual_fused.BUCKETS[-1] == 12 and residual_fused.PADDED_BUCKETS == (20, 32)
  values = _models(num_clients, 7)[:1]
  slow = residual_reweighting(values, config=ResidualReweightingConfig(implementation="sort"))
  _assert_close(unknown_k_kernel(values[0]), slow)


def test_plain_branch_index_picks_the_smallest_branch_that_holds_k():
  sizes = list(residual_fused.BUCKETS) + list(residual_fused.PADDED_BUCKETS)
  for num_clients in range(3, residual_fused.DYNAMIC_MAX_CLIENTS + 1):
    index = int(residual_fused.plain_branch_index(tf.constant(num_clients)))
    assert sizes[index] == min(size for size in sizes if size >= num_clients), num_clients


@pytest.mark.slow
def test_padded_plain_path_equals_the_xla_programs():
  """K rows padded to a branch of B rows (K known only at run time): the same
  corrected values and replacement counts as the XLA programs for K, to the bit,
  for an even and an odd number of pad rows, no pads, ties, tied columns,
  values whose slopes overflow to +-inf, and padded columns."""
  rng = np.random.default_rng(13)
  rule = equations.Rule(gamma=1.4826, lambda_=2.0, delta=0.1, epsilon=1e-10)
  for size in residual_fused.PADDED_BUCKETS:
    padded = tf.function(
        lambda c, columns, size=size: residual_fused.padded_plain_chunk_statistics(
            c, columns, size, rule),
        input_signature=[tf.TensorSpec([None, 96], tf.float32), tf.TensorSpec([], tf.int32)])
    for num_clients in (3, 4, 13, size - 1, size):
      chunk = np.round(rng.normal(size=(num_clients, 96)) * 2.0).astype(np.float32) / 2.0
      chunk[:, :6] = 0.0
      chunk[0, 6:20] += 40.0
      chunk[1, 20:24], chunk[2, 20:24] = 3e38, -3e38
      chunk = tf.constant(chunk)
      columns = tf.constant(90)
      plain = padded(chunk, columns)
      xla = residual_fused.chunk_statistics(chunk, columns, rule, num_clients)
      np.testing.assert_array_equal(plain[0].numpy(), xla[0].numpy())
      np.testing.assert_allclose(plain[1].numpy(), xla[1].numpy(), rtol=1e-6)
      np.testing.assert_array_equal(plain[2].numpy(), xla[2].numpy())
      if num_clients >= 5:
        assert float(tf.reduce_sum(xla[2])) > 0


@pytest.mark.slow
def test_plain_executor_path_equals_the_xla_programs_for_every_bucket():
  """TFF's worker runs ``plain_chunk_statistics`` (no XLA): for every K it serves,
  the same corrected values and replacement counts as the XLA programs, to the bit,
  with ties (equal values and whole tied columns) and padded columns."""
  rng = np.random.default_rng(11)
  rule = equations.Rule(gamma=1.4826, lambda_=2.0, delta=0.1, epsilon=1e-10)
  for num_clients in residual_fused.BUCKETS:
    chunk = np.round(rng.normal(size=(num_clients, 96)) * 2.0).astype(np.float32) / 2.0
    chunk[:, :6] = 0.0
    chunk[0, 6:20] += 40.0
    chunk = tf.constant(chunk)
    columns = tf.constant(90)
    plain = tf.function(lambda c, k=num_clients: residual_fused.plain_chunk_statistics(
        c, columns, k, rule))(chunk)
    xla = residual_fused.chunk_statistics(chunk, columns, rule, num_clients)
    np.testing.assert_array_equal(plain[0].numpy(), xla[0].numpy())
    np.testing.assert_allclose(plain[1].numpy(), xla[1].numpy(), rtol=1e-6)  # float32 terms
    np.testing.assert_array_equal(plain[2].numpy(), xla[2].numpy())
    if num_clients >= 5:  # enough clients for the outliers to be replaced
      assert float(tf.reduce_sum(xla[2])) > 0


@pytest.mark.parametrize("params,num_clients", [
    ({"estimator": "repeated_median", "variant": "paper"}, 9),
    ({"estimator": "theil_sen"}, 4),
    ({"estimator": "theil_sen", "variant": "paper"}, 9),
    ({"weighting": "gaussian"}, 80),
])
def test_selection_medians_equal_sorting_for_every_configuration(params, num_clients):
  """Configurations without networks take the medians of the pairwise
  slopes by tf.math.top_k selection; the sorted implementation is the oracle."""
  values = _models(num_clients, 11)
  slow = residual_reweighting(values, config=ResidualReweightingConfig(implementation="sort",
                                                                       **params))
  fast = residual_reweighting(values, config=ResidualReweightingConfig(chunk_size=7, **params))
  _assert_close(fast, slow)


@pytest.mark.parametrize("length", [1, 2, 3, 8, 99, 100])
def test_median_by_selection_equals_the_sorted_median_for_every_count(length):
  rng = np.random.default_rng(length)
  values = np.round(rng.normal(size=(30, length)), 1).astype(np.float32)  # with ties
  for count in range(1, length + 1):
    masked = tf.where(tf.range(length) < count, values, np.inf)  # the ignored tail
    expected = order_statistics.median_of_sorted(tf.sort(masked), count).numpy()
    got = order_statistics.median_by_selection(masked, count).numpy()
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got, np.median(values[:, :count], axis=1))


def test_unknown_implementation_is_rejected():
  with pytest.raises(ValueError, match="implementation"):
    ResidualReweightingConfig(implementation="fast")


MEMORY_SCRIPT = textwrap.dedent("""
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    sys.path.insert(0, {root!r})
    import tensorflow as tf
    from tff_residual.kernels import method_table
    kernel = method_table.build_kernel("residual")
    kernel([tf.random.normal([10, 1000])], None)  # trace and compile on a small input
    values = tf.random.stateless_normal([10, 5_000_000], seed=[1, 2])
    values.numpy()
    def status(field):
      with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith(field)).split()[1]) * 1024
    # getrusage's ru_maxrss survives exec (it would report the parent's peak):
    # reset this process's high-water mark and read VmHWM instead.
    with open("/proc/self/clear_refs", "w") as f:
      f.write("5")
    before = status("VmRSS:")
    kernel([values], None).aggregate[0].numpy()
    print(max(status("VmHWM:") - before, 0))
""")


@pytest.mark.slow
def test_memory_of_a_large_call_stays_near_one_copy_of_the_input():
  """K=10, N=5e6 (200 MB input): an [n, K, K] slope tensor would need 2 GB.

  The fast path keeps one corrected copy of the input (200 MB) and chunk
  temporaries of a few MB (about 400 MB measured); the bound is the 1 GB budget.
  """
  proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT.format(root=ROOT)],
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  added = int(proc.stdout.strip().splitlines()[-1])
  assert added < 2**30, f"the call added {added / 2**20:.0f} MB above the input"


# Both counting strategies (one broadcast step up to 16 clients, a loop above),
# under XLA and without it (TFF's worker), with ties.
@pytest.mark.parametrize("num_clients", [5, order_statistics.BROADCAST_RANKS_MAX_CLIENTS, 40])
@pytest.mark.parametrize("jit_compile", [True, False])
def test_counted_ranks_and_picked_medians_equal_sorting(num_clients, jit_compile):
  rng = np.random.default_rng(num_clients)
  values = rng.integers(0, 5, size=(num_clients, 300)).astype(np.float32)  # many ties

  @tf.function(jit_compile=jit_compile, autograph=False)
  def run(values):
    return (order_statistics.counted_ranks(values), order_statistics.median_by_counting(values),
            order_statistics.median_by_counting(values, offset=1))

  ranks, middle, middle_of_tail = run(tf.constant(values))
  _, _, expected_ranks = order_statistics.sort_with_ranks(tf.constant(values.T))
  np.testing.assert_array_equal(ranks.numpy(), expected_ranks.numpy().T)
  np.testing.assert_array_equal(middle.numpy(), np.median(values, axis=0))
  np.testing.assert_array_equal(middle_of_tail.numpy(),
                                np.median(np.sort(values, axis=0)[1:], axis=0))


# Pairs compared once (static K up to PAIRWISE_RANKS_MAX_CLIENTS) and counting above,
# with many ties and +inf pad rows, which must rank after every finite row.
@pytest.mark.parametrize("num_clients", [1, 2, 3, 10, order_statistics.PAIRWISE_RANKS_MAX_CLIENTS,
                                         order_statistics.PAIRWISE_RANKS_MAX_CLIENTS + 1])
@pytest.mark.parametrize("num_pads", [0, 3])
def test_ranks_of_rows_equal_the_stable_sort(num_clients, num_pads):
  rng = np.random.default_rng(num_clients + 100 * num_pads)
  real = rng.integers(-2, 3, size=(num_clients, 200)).astype(np.float32)
  values = np.concatenate([real, np.full((num_pads, 200), np.inf, np.float32)])

  @tf.function(jit_compile=True, autograph=False)
  def run(values):
    return (order_statistics.ranks_of_rows(values), order_statistics.ranks_of_rows(values, values.dtype))

  ranks, float_ranks = run(tf.constant(values))
  _, _, expected = order_statistics.sort_with_ranks(tf.constant(values.T))
  np.testing.assert_array_equal(ranks.numpy(), expected.numpy().T)
  np.testing.assert_array_equal(float_ranks.numpy(), expected.numpy().T.astype(np.float32))
  np.testing.assert_array_equal(np.sort(ranks.numpy()[:num_clients], axis=0),
                                np.broadcast_to(np.arange(num_clients)[:, None], real.shape))
