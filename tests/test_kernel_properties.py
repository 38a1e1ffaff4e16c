"""Properties, robustness scenarios and degenerate inputs, for every method."""

import numpy as np
import pytest

import numpy_oracle as oracle
import tff_residual
from method_params import ORIGINAL_METHODS, params_for, every_method
from tff_residual.kernels import method_table

METHODS = sorted(method_table.METHODS)


def models_list(matrix):
  return [row for row in matrix]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.slow
def test_permuting_clients_permutes_weights_and_keeps_aggregate(method):
  rng = np.random.default_rng(11)
  models = rng.normal(size=(9, 64))
  models[2] *= 10
  perm = rng.permutation(9)
  params = params_for(method, 9)
  agg, info = tff_residual.aggregate(models_list(models), method, **params)
  agg_p, info_p = tff_residual.aggregate(models_list(models[perm]), method, **params)
  np.testing.assert_allclose(agg_p, agg, atol=1e-9)
  np.testing.assert_allclose(info_p["client_weights"], info["client_weights"][perm], atol=1e-6)


@pytest.mark.parametrize("method", every_method([m for m in METHODS if m != "foolsgold"]))
@pytest.mark.parametrize("variant", ["reference", "paper"])
def test_adding_a_per_coordinate_constant_shifts_the_aggregate(method, variant):
  # FoolsGold's cosine similarity is not translation-invariant by design.
  rng = np.random.default_rng(12)
  models = rng.normal(size=(10, 50))
  shift = rng.normal(size=50) * 100
  params = {"variant": variant} if method in ("residual", "repeated_median") else {}
  params.update(params_for(method, 10))
  agg, info = tff_residual.aggregate(models_list(models), method, **params)
  agg_s, info_s = tff_residual.aggregate(models_list(models + shift), method, **params)
  np.testing.assert_allclose(agg_s, agg + shift, atol=1e-8)
  np.testing.assert_allclose(info_s["client_weights"], info["client_weights"], atol=1e-5)


@pytest.mark.parametrize("method", every_method(METHODS))
def test_float64_and_float32_keep_dtype(method):
  rng = np.random.default_rng(13)
  models = rng.normal(size=(6, 2, 3))
  agg64, _ = tff_residual.aggregate(list(models), method, **params_for(method, 6))
  agg32, _ = tff_residual.aggregate(list(models.astype(np.float32)), method,
                                    **params_for(method, 6))
  assert agg64.dtype == np.float64 and agg32.dtype == np.float32
  np.testing.assert_allclose(agg32, agg64, atol=1e-5)


def test_scaled_attacker_gets_under_one_percent():
  # docs/reference_differences.md §1.2 "Scaled attacker": 9 honest g + N(0, 0.01^2), one g + 100 N(0, 0.01^2).
  rng = np.random.default_rng(14)
  g = rng.normal(size=3000)
  honest = g + rng.normal(size=(9, 3000)) * 0.01
  attacker = g + rng.normal(size=(1, 3000)) * 0.01 * 100
  models = np.concatenate([honest, attacker]).astype(np.float32)
  agg, info = tff_residual.aggregate(models_list(models), "residual")
  assert info["client_weights"][9] < 0.01
  assert info["corrected_fraction"][9] > 0.9
  assert np.all(info["corrected_fraction"][:9] < 0.01)
  lo, hi = honest.min(axis=0), honest.max(axis=0)
  assert np.all((agg >= lo - 1e-6) & (agg <= hi + 1e-6))
  # And plain averaging would not hold: the attacker drags the mean out of the honest range.
  mean = models.mean(axis=0)
  assert np.mean((mean < lo) | (mean > hi)) > 0.3


@pytest.mark.parametrize("variant", ["reference", "paper"])
def test_four_of_ten_flipped_far_away_aggregate_stays_with_honest(variant):
  rng = np.random.default_rng(15)
  g = rng.normal(size=2000)
  honest = g + rng.normal(size=(6, 2000)) * 0.05
  flipped = -g * 5 + rng.normal(size=(4, 2000)) * 0.05
  models = np.concatenate([honest, flipped])
  agg, info = tff_residual.aggregate(models_list(models), "residual", variant=variant)
  assert info["client_weights"][6:].sum() < 0.05
  assert np.abs(agg - honest.mean(axis=0)).mean() < 0.05
  assert np.abs(models.mean(axis=0) - honest.mean(axis=0)).mean() > 1.0


@pytest.mark.parametrize("method", ORIGINAL_METHODS)
@pytest.mark.parametrize("k", [1, 2, 3])
def test_small_k_gives_finite_results(method, k):
  rng = np.random.default_rng(16)
  models = rng.normal(size=(k, 20))
  agg, info = tff_residual.aggregate(models_list(models), method)
  assert np.all(np.isfinite(agg))
  assert abs(info["client_weights"].sum() - 1) < 1e-6
  if method in ("residual", "mean") and k < 3:
    np.testing.assert_allclose(agg, models.mean(axis=0), atol=1e-12)


@pytest.mark.parametrize("method", every_method(METHODS))
@pytest.mark.parametrize("variant", ["reference", "paper"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_identical_models_return_that_model(method, variant, dtype):
  # The reference returns a NaN model here (all W = 0); our rule: uniform weights.
  model = np.linspace(-1, 1, 30).astype(dtype)
  params = {"variant": variant} if method in ("residual", "repeated_median") else {}
  params.update(params_for(method, 10))
  agg, info = tff_residual.aggregate([model.copy() for _ in range(10)], method, **params)
  np.testing.assert_allclose(agg, model, atol=1e-6 if dtype == np.float32 else 1e-12)
  assert np.all(np.isfinite(info["client_weights"]))
  np.testing.assert_allclose(info["client_weights"].sum(), 1.0, atol=1e-6)


@pytest.mark.parametrize("variant", ["reference", "paper"])
def test_ties_majority_tied_coordinate_is_finite(variant):
  # More than half the clients hold exactly the same value: M = 0 (tie collapse).
  models = np.zeros((10, 4))
  models[7:, :] = [[1.0, -2.0, 3.0, 0.5]] * 3
  agg, info = tff_residual.aggregate(models_list(models), "residual", variant=variant)
  want, want_p, _ = oracle.residual_reweighting(models, variant)
  assert np.all(np.isfinite(agg))
  np.testing.assert_allclose(agg, want, atol=1e-9)
  np.testing.assert_allclose(info["client_weights"], want_p, atol=1e-6)


@pytest.mark.slow
def test_coordinate_median_and_trimmed_mean_match_oracles():
  rng = np.random.default_rng(17)
  for k in (1, 2, 3, 4, 5, 7, 10, 12):   # odd and even K; b = floor(beta K) from 0 to 4
    models = rng.normal(size=(k, 40))
    agg, _ = tff_residual.aggregate(models_list(models), "median", chunk_size=7)
    np.testing.assert_allclose(agg, oracle.coordinate_median(models), atol=1e-12)
    for beta in (0.0, 0.1, 0.2, 0.4):
      agg, info = tff_residual.aggregate(models_list(models), "trimmed_mean", beta=beta)
      np.testing.assert_allclose(agg, oracle.trimmed_mean(models, beta), atol=1e-12)
      b = int(np.floor(beta * k))
      np.testing.assert_allclose(info["corrected_fraction"].mean(), 2 * b / k, atol=1e-6)


def test_trimmed_mean_hand_computed():
  # Prepare: K = 5, beta = 0.2 -> drop one value at each end.
  models = [np.array([1.0, 10.0]), np.array([2.0, 20.0]), np.array([3.0, 30.0]),
            np.array([100.0, -5.0]), np.array([-50.0, 40.0])]
  agg, info = tff_residual.aggregate(models, "trimmed_mean", beta=0.2)
  np.testing.assert_allclose(agg, [2.0, 20.0])  # mean(1, 2, 3); mean(10, 20, 30)
  np.testing.assert_allclose(info["client_weights"], [1 / 3, 1 / 3, 1 / 3, 0, 0], atol=1e-6)


def test_median_even_k_averages_middle_values():
  agg, info = tff_residual.aggregate([np.array(1.0), np.array(2.0), np.array(10.0), np.array(4.0)],
                                     "median")
  assert agg == 3.0
  np.testing.assert_allclose(info["client_weights"], [0, 0.5, 0, 0.5])


def test_repeated_median_reference_is_median_paper_is_not():
  rng = np.random.default_rng(18)
  models = rng.normal(size=(10, 100)) + np.arange(10)[:, None] ** 2 * 0.1
  ref, _ = tff_residual.aggregate(models_list(models), "repeated_median")
  paper, _ = tff_residual.aggregate(models_list(models), "repeated_median", variant="paper")
  np.testing.assert_allclose(ref, oracle.coordinate_median(models), atol=1e-12)
  np.testing.assert_allclose(paper, oracle.repeated_median_paper(models), atol=1e-10)
  assert np.abs(paper - ref).max() > 1e-3


def test_foolsgold_matches_oracle_and_punishes_sybils():
  rng = np.random.default_rng(19)
  honest = rng.normal(size=(7, 10, 4))
  sybil = np.ones((3, 10, 4)) + rng.normal(size=(3, 10, 4)) * 0.01
  updates = np.concatenate([honest, sybil])
  bias = rng.normal(size=(10, 3))
  clients = [[u, b] for u, b in zip(updates, bias)]  # feature = second-to-last tensor
  agg, info = tff_residual.aggregate(clients, "foolsgold")
  wv = oracle.foolsgold_weights(updates.reshape(10, -1))
  np.testing.assert_allclose(info["client_weights"], wv / wv.sum(), atol=1e-6)
  np.testing.assert_allclose(agg[0], np.tensordot(wv, updates, 1) / 10, atol=1e-9)
  assert info["client_weights"][7:].max() < 0.01


def test_foolsgold_max_norm_clips_every_update_first_as_fung_et_al():
  rng = np.random.default_rng(22)
  updates = rng.normal(size=(8, 6, 4))
  updates[3] *= 1e20  # honest in direction, huge in magnitude
  bias = rng.normal(size=(8, 3))
  clients = [[u, b] for u, b in zip(updates, bias)]
  agg, info = tff_residual.aggregate(clients, "foolsgold", max_norm=1.0)
  norms = np.sqrt((updates.reshape(8, -1) ** 2).sum(1) + (bias ** 2).sum(1))
  factor = np.minimum(1.0, 1.0 / norms)
  clipped = updates * factor[:, None, None]
  wv = oracle.foolsgold_weights(clipped.reshape(8, -1))
  np.testing.assert_allclose(info["client_weights"], wv / wv.sum(), atol=1e-6)
  np.testing.assert_allclose(agg[0], np.tensordot(wv, clipped, 1) / 8, atol=1e-9)
  assert np.abs(agg[0]).max() <= 1.0  # no update reaches past the bound
  unbounded, _ = tff_residual.aggregate(clients, "foolsgold")
  assert np.abs(unbounded[0]).max() > 1e18  # FoolsGold alone bounds no magnitude
  # A NaN or Inf client is still dropped after the clip, and the rest unchanged.
  broken = clients + [[np.full((6, 4), np.inf), bias[0]], [updates[0], np.full(3, np.nan)]]
  kept, info = tff_residual.aggregate(broken, "foolsgold", max_norm=1.0)
  assert info["num_dropped_clients"] == 2
  np.testing.assert_allclose(kept[0], agg[0], atol=1e-9)


def test_foolsgold_history_keyed_by_client_id():
  import tensorflow as tf
  from tff_residual.kernels.foolsgold import FoolsGoldConfig, foolsgold
  rng = np.random.default_rng(20)
  history = tf.zeros([5, 3], tf.float64)
  first = rng.normal(size=(3, 3))
  history = foolsgold([tf.constant(first)], history=history, client_ids=[4, 0, 2],
                      config=FoolsGoldConfig(feature_index=None)).state["history"]
  np.testing.assert_allclose(history.numpy()[[4, 0, 2]], first)
  np.testing.assert_allclose(history.numpy()[[1, 3]], 0)
  second = rng.normal(size=(2, 3))
  second_bad = np.concatenate([second, [[np.nan, 0, 0]]])
  out = foolsgold([tf.constant(second_bad)], history=history, client_ids=[0, 4, 1],
                  config=FoolsGoldConfig(feature_index=None))
  history = out.state["history"]
  np.testing.assert_allclose(history.numpy()[0], first[1] + second[0])
  np.testing.assert_allclose(history.numpy()[1], 0)  # dropped client: history unchanged
  want = oracle.foolsgold_weights(np.stack([first[1] + second[0], first[0] + second[1]]))
  np.testing.assert_allclose(out.client_weights.numpy()[:2], want / want.sum(), atol=1e-6)


EXACT_SAMPLE_WEIGHTING = ("residual", "mean", "foolsgold")
"""Methods whose weighted client weights are the plain ones times the sample weights."""


def weighted_l_estimate(models, weights, position_weights):
  """NumPy, per coordinate: sum_i a_i n_(i) y_(i) / sum_i a_i n_(i) over the stably sorted
  values (l_estimator's docstring); each client's share averaged over the coordinates."""
  order = np.argsort(models, axis=0, kind="stable")
  shares = position_weights[:, None] * weights[order]
  shares /= shares.sum(axis=0, keepdims=True)
  aggregate = (shares * np.take_along_axis(models, order, axis=0)).sum(axis=0)
  per_client = np.zeros_like(models)
  np.put_along_axis(per_client, order, shares, axis=0)
  return aggregate, per_client.mean(axis=1)


def weighted_centered_clipping(models, weights):
  """NumPy, the first round with the defaults (tau = the median distance to the
  coordinate median, one iteration): v = v_0 + sum_k p_k c_k (x_k - v_0), p = n / sum n."""
  center = np.median(models, axis=0)
  distances = np.linalg.norm(models - center, axis=1)
  clip = np.minimum(1.0, np.median(distances) / np.maximum(distances, 1e-300))
  p = weights / weights.sum()
  return center + ((p * clip)[:, None] * (models - center)).sum(axis=0), None


def weighted_geometric_median_check(models, weights, aggregate, plain_aggregate):
  """The weighted objective sum_k alpha_k ||v - x_k|| is lower at the weighted result
  than at the plain one, and its gradient there is near 0 (v is its minimiser)."""
  alpha = weights / weights.sum()
  objective = lambda v: (alpha * np.linalg.norm(models - v, axis=1)).sum()  # noqa: E731
  assert objective(aggregate) < objective(plain_aggregate) - 1e-3
  directions = (aggregate - models) / np.linalg.norm(aggregate - models, axis=1)[:, None]
  assert np.linalg.norm((alpha[:, None] * directions).sum(axis=0)) < 1e-3


def weighted_expectation(method, models, weights, plain):
  """(aggregate, client weights) of ``method`` under "multiply" from the formulas (None:
  not checked), for the six clients of test_multiply_sample_weights."""
  if method == "median":
    return weighted_l_estimate(models, weights, np.array([0, 0, .5, .5, 0, 0]))
  if method == "trimmed_mean":  # beta = 0.2 of K = 6 trims one value at each end
    return weighted_l_estimate(models, weights, np.array([0, .25, .25, .25, .25, 0]))
  if method == "multi_krum":  # the same selection; the selected clients' weight shares
    chosen = weights * plain["selected"]
    return (chosen / chosen.sum()) @ models, chosen / chosen.sum()
  if method == "bulyan":  # K = 6 < 4f + 3 for f = 1: f = 0, the weighted mean of all
    return (weights / weights.sum()) @ models, weights / weights.sum()
  if method == "centered_clipping":
    return weighted_centered_clipping(models, weights)
  raise KeyError(method)


@pytest.mark.parametrize("method", [
    m if m in EXACT_SAMPLE_WEIGHTING else pytest.param(m, marks=pytest.mark.slow)
    for m in METHODS if m not in ("repeated_median", "krum")])
def test_multiply_sample_weights(method):
  """The fast tier: the methods whose weights are the plain ones times the sample
  weights; the slow tier: every method, each against its formula."""
  rng = np.random.default_rng(21)
  models = rng.normal(size=(6, 30))
  weights = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
  params = params_for(method, 6)
  plain_aggregate, plain = tff_residual.aggregate(models_list(models), method, **params)
  agg, info = tff_residual.aggregate(models_list(models), method, sample_weights=weights,
                                     sample_weighting="multiply", **params)
  if method in EXACT_SAMPLE_WEIGHTING:
    want = plain["client_weights"] * weights
    np.testing.assert_allclose(info["client_weights"], want / want.sum(), atol=1e-6)
  elif method == "geometric_median":
    weighted_geometric_median_check(models, weights, agg, plain_aggregate)
  else:
    want_aggregate, want_weights = weighted_expectation(method, models, weights, plain)
    np.testing.assert_allclose(agg, want_aggregate, atol=1e-5)
    if want_weights is not None:
      np.testing.assert_allclose(info["client_weights"], want_weights, atol=1e-5)
  assert not np.allclose(info["client_weights"], plain["client_weights"])
  assert abs(info["client_weights"].sum() - 1) < 1e-6
  # Ignored by default, whatever is passed.
  _, ignored = tff_residual.aggregate(models_list(models), method, sample_weights=weights,
                                      **params)
  np.testing.assert_allclose(ignored["client_weights"], plain["client_weights"], atol=1e-7)
