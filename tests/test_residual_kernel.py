"""Residual reweighting kernel vs. the loop-per-coordinate NumPy oracle and the
worked numbers of docs/reference_differences.md §1.2."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

import numpy_oracle as oracle
from tff_residual.kernels.residual import equations
from tff_residual.kernels.residual import fused as residual_fused
from tff_residual.kernels.residual import reweighting as rr


def run(models, sample_weights=None, **params):
  config = rr.ResidualReweightingConfig(**params)
  out = rr.residual_reweighting([tf.constant(m) for m in models], sample_weights, config)
  return ([a.numpy() for a in out.aggregate], out.client_weights.numpy(),
          out.corrected_fraction.numpy(), int(out.num_dropped_clients))


COMBINATIONS = list(itertools.product(rr.VARIANTS, rr.ESTIMATORS, rr.WEIGHTINGS))


@pytest.mark.parametrize("variant,estimator,weighting", COMBINATIONS)
@pytest.mark.slow
def test_matches_oracle_for_k_1_to_12(variant, estimator, weighting):
  rng = np.random.default_rng(hash((variant, estimator, weighting)) % 2**32)
  for k in range(1, 13):
    for shape in [(1,), (7,), (3, 5)]:
      models = rng.normal(size=(k,) + shape) * rng.uniform(0.01, 3.0)
      models[: max(1, k // 4)] *= rng.uniform(3, 30)  # a few outlying clients
      flat = models.reshape(k, -1)
      agg, p, fraction, dropped = run([flat], variant=variant, estimator=estimator,
                                      weighting=weighting, chunk_size=4)
      want_agg, want_p, replaced = oracle.residual_reweighting(
          flat, variant, estimator, weighting)
      np.testing.assert_allclose(agg[0], want_agg, atol=1e-5, rtol=1e-5)
      np.testing.assert_allclose(p, want_p, atol=1e-5)
      np.testing.assert_allclose(fraction, replaced.mean(axis=1), atol=1e-6)
      assert dropped == 0


@pytest.mark.parametrize("variant", rr.VARIANTS)
def test_float32_matches_oracle(variant):
  rng = np.random.default_rng(3)
  models = rng.normal(size=(10, 300)).astype(np.float32)
  models[9] *= 20
  agg, p, _, _ = run([models], variant=variant)
  want_agg, want_p, _ = oracle.residual_reweighting(models.astype(np.float64), variant)
  np.testing.assert_allclose(agg[0], want_agg, atol=1e-5)
  np.testing.assert_allclose(p, want_p, atol=1e-5)


def test_leverage_matches_reference_table_for_k10():
  # docs/reference_differences.md §1.2, "Useful constants for K = 10".
  h_code = [.3455, .2485, .1758, .1273, .1030, .1030, .1273, .1758, .2485, .3455]
  h_paper = [0, .0035, .0140, .0316, .0561, .0877, .1263, .1719, .2246, .2842]
  s_code = [.8090, .8669, .9079, .9342, .9471, .9471, .9342, .9079, .8669, .8090]
  ranks = tf.range(10.0, dtype=tf.float64)
  h_reference = equations.leverage(ranks, 10, "reference").numpy()
  np.testing.assert_allclose(h_reference, h_code, atol=6e-5)
  np.testing.assert_allclose(equations.leverage(ranks, 10, "paper").numpy(), h_paper, atol=6e-5)
  np.testing.assert_allclose(np.sqrt(1 - h_reference), s_code, atol=6e-5)


@pytest.mark.parametrize("rank,start,replace", [
    (0, 1.669, 16.7), (1, 1.788, 17.9), (2, 1.873, 18.7), (3, 1.927, 19.3), (4, 1.954, 19.5),
    (9, 1.669, 16.7)])
def test_confidence_thresholds_match_reference_table_for_k10(rank, start, replace):
  # |r|/M where w starts < 1 and where w < delta = 0.1 (docs/reference_differences.md §1.2);
  # tau / M = 1.4826 (1 + 5/9) = 2.3063 for M = 1.
  config = rr.ResidualReweightingConfig()
  tau = tf.constant([[2.3063 + 1e-7]], tf.float64)

  def confidence(ratio):
    residuals = np.zeros((1, 10))
    residuals[0, rank] = ratio
    positions = tf.range(10.0, dtype=tf.float64)
    return equations.confidences(tf.constant(residuals), tau, positions, 10,
                                 config.rule).numpy()[0, rank]

  assert confidence(start * 0.997) == 1.0
  assert confidence(start * 1.003) < 1.0
  assert confidence(replace * 0.995) >= 0.1
  assert confidence(replace * 1.005) < 0.1


def test_worked_example_k10_one_outlier():
  # Nine clients on a line 0..8 and one at 1000: the line through the sorted
  # values is y = x (slope 1), the outlier's residual 1000 - 9 = 991 is replaced
  # by the line value 9, and nobody else is corrected.
  values = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0], [6.0], [7.0], [8.0], [1000.0]])
  agg, p, fraction, _ = run([values])
  want_agg, want_p, replaced = oracle.residual_reweighting(values)
  np.testing.assert_allclose(fraction, [0] * 9 + [1])
  assert replaced[9, 0] and not replaced[:9].any()
  np.testing.assert_allclose(p, want_p, atol=1e-9)
  np.testing.assert_allclose(agg[0], want_agg, atol=1e-9)


def test_delta_changes_corrections_not_weights():
  # docs/reference_differences.md §1.2: the model weights do not depend on delta.
  rng = np.random.default_rng(5)
  models = rng.normal(size=(10, 500))
  models[0] *= 30
  _, p1, f1, _ = run([models], delta=0.1)
  _, p2, f2, _ = run([models], delta=0.01)
  np.testing.assert_allclose(p1, p2, atol=1e-12)
  assert f1[0] > f2[0]


@pytest.mark.parametrize("chunk", [1, 3, 64, 999])
@pytest.mark.slow
def test_chunked_equals_unchunked_over_a_multi_tensor_model(chunk):
  rng = np.random.default_rng(7)
  models = [rng.normal(size=(11, n)).astype(np.float32) for n in (1, 37, 1000)]
  models[2][3] += 5
  whole_agg, whole_p, whole_f, _ = run(models, chunk_size=10**6)
  agg, p, f, _ = run(models, chunk_size=chunk)
  for a, b in zip(agg, whole_agg):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(p, whole_p, rtol=1e-6)
  np.testing.assert_allclose(f, whole_f, rtol=1e-6)


def test_memory_budget_sets_chunks_without_changing_results():
  rng = np.random.default_rng(8)
  models = [rng.normal(size=(10, 5000)).astype(np.float32)]
  big, p_big, _, _ = run(models)
  budget = 500_000
  assert 1 < residual_fused.chunk_width(None, budget) < 100  # many chunks (15 columns each)
  assert 1 < residual_fused.chunk_width(None, budget, 10) < 500  # the XLA path's, K = 10
  small, p_small, _, _ = run(models, memory_budget_bytes=budget)
  np.testing.assert_allclose(big[0], small[0], rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(p_big, p_small, rtol=1e-6)


def test_chunk_width_by_static_client_count():
  """Unknown K (TFF's worker): MAX_CHUNK_WIDTH columns; a static bound B (the XLA
  programs): FUSED_CHUNK_VALUES // B; both within the memory budget; chunk_size wins."""
  default = rr.ResidualReweightingConfig().memory_budget_bytes
  assert residual_fused.chunk_width(None, default) == residual_fused.MAX_CHUNK_WIDTH == 4096
  assert residual_fused.chunk_width(None, default, 10) == 2**19 // 10
  assert residual_fused.chunk_width(None, default, 128) == 4096
  assert residual_fused.chunk_width(None, 2**20, 10) == 2**20 // (32 * 4 * 10 * 2)
  assert residual_fused.chunk_width(7, default, 10) == 7


def test_model_weights_accumulate_over_all_tensors():
  # An attacker that is honest in a small tensor and wild in a big one must be
  # down-weighted in both: one weight per model.
  rng = np.random.default_rng(9)
  small = rng.normal(size=(10, 5)) * 0.01
  big = rng.normal(size=(10, 2000)) * 0.01
  big[4] *= 100
  agg, p, _, _ = run([small, big])
  assert p[4] < 0.01 * p.sum()
  without_attacker = np.delete(small, 4, 0).T @ (np.delete(p, 4) / np.delete(p, 4).sum())
  # the attacker's 1e-4 share moves the small tensor by ~1e-6; a plain mean by ~2e-3
  np.testing.assert_allclose(agg[0], without_attacker, atol=1e-5)
  assert np.abs(small.mean(axis=0) - without_attacker).max() > 1e-3


def test_tensors_of_mixed_dtypes_keep_their_dtypes():
  # The fused path needs one dtype; a float32 and a float64 tensor take the sorting
  # path, each in its own dtype, and agree with the same model all in float64.
  rng = np.random.default_rng(10)
  small = rng.normal(size=(6, 6)).astype(np.float32)
  big = rng.normal(size=(6, 40))
  big[2] *= 40
  agg, p, f, _ = run([small, big])
  assert [a.dtype for a in agg] == [np.float32, np.float64]
  want, want_p, want_f, _ = run([small.astype(np.float64), big])
  np.testing.assert_allclose(p, want_p, atol=1e-6)
  np.testing.assert_allclose(f, want_f, atol=1e-6)
  for a, b in zip(agg, want):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert np.argmin(p) == 2
