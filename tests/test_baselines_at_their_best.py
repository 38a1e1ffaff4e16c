"""ARC, bucketing, adaptive centered clipping and FoolsGold with history against NumPy
oracles written from each paper (and ByzFL's published ARC example); the weighted
variants of the median, the trimmed mean, Bulyan and centered clipping against
oracles; one oracle case for every name of the table (the fast tier's sweep); TFF
equal to the eager API for the new rules and wrappers, across rounds of state."""

import collections

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff

import numpy_oracle as oracle
from method_params import fast_cases
import tff_residual
from test_byzantine_methods import (oracle_bulyan, oracle_krum_scores, oracle_multi_krum,
                                    oracle_nnm, oracle_weiszfeld)
from tff_residual.kernels import method_table


def rows(x):
  """Each client model as one tensor (the eager API's list of K arrays)."""
  return [np.asarray(row) for row in x]


def clients_with_outliers(num_clients=11, size=12, seed=0, scaled=(0,), factor=8.0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=size) + 0.3 * rng.normal(size=(num_clients, size))
  for i in scaled:
    x[i] *= factor
  return x


# ---------------------------------------------------------------- NumPy oracles
def oracle_arc(x, f):
  """Allouah et al. (ICLR 2025), as ByzFL's ARC: sort the norms (stably), clip the
  k = floor(2 f (K - f) / K) largest to the (K - k)-th smallest."""
  k = len(x)
  clipped = int((2 * f / k) * (k - f))
  norms = np.linalg.norm(x, axis=1)
  order = sorted(range(k), key=lambda i: norms[i])
  tau = norms[order[k - clipped - 1]]
  y, c = x.copy(), np.ones(k)
  for i in order[k - clipped:]:
    if norms[i] > tau:
      c[i] = tau / norms[i]
      y[i] = x[i] * c[i]
  return y, c


def weighted_l_estimate(x, position_weights, n):
  """sum_i a_i n_(i) y_(i) / sum_i a_i n_(i) per coordinate (stable sort)."""
  out = np.empty(x.shape[1])
  for j in range(x.shape[1]):
    order = np.argsort(x[:, j], kind="stable")
    a = position_weights * n[order]
    out[j] = (a * x[order, j]).sum() / a.sum()
  return out


def median_positions(k):
  a = np.zeros(k)
  a[(k - 1) // 2] += 0.5
  a[k // 2] += 0.5
  return a


def trimmed_positions(k, beta):
  b = int(np.floor(beta * k))
  a = np.zeros(k)
  a[b:k - b] = 1.0 / (k - 2 * b)
  return a


def oracle_bucket_means(x, bucket, n=None):
  n = np.ones(len(x)) if n is None else n
  count = int(bucket.max()) + 1
  means = np.stack([(n[bucket == b, None] * x[bucket == b]).sum(0) / n[bucket == b].sum()
                    for b in range(count)])
  return means, np.array([n[bucket == b].sum() for b in range(count)])


def oracle_permutation_buckets(num_clients, bucket_size, seed, round_index):
  """Bucketing's stated shuffle: pi = argsort(stateless_uniform([K], (seed, round)));
  positions j * s .. (j + 1) * s - 1 of pi form bucket j."""
  keys = tf.random.stateless_uniform([num_clients], tf.constant([seed, round_index], tf.int64))
  pi = np.argsort(keys.numpy(), kind="stable")
  bucket = np.empty(num_clients, int)
  bucket[pi] = np.arange(num_clients) // bucket_size
  return bucket


def oracle_centered_clipping(x, center, iters=1, tau=None, scale=1.0, p=None, momentum=0.0,
                             first_round=False):
  """Karimireddy et al. (ICML 2021) in model space: v <- v + sum_k p_k c_k (x_k - v),
  c_k = min(1, tau / ||x_k - v||); tau = scale x median_k ||x_k - v_0|| unless given;
  then u = beta v_0 + (1 - beta) v (not in the first round)."""
  p = np.full(len(x), 1.0 / len(x)) if p is None else p / p.sum()
  if tau is None:
    tau = scale * np.median(np.linalg.norm(x - center, axis=1))
  v = center.copy()
  for _ in range(iters):
    diff = x - v
    norms = np.linalg.norm(diff, axis=1)
    c = np.where(norms > tau, tau / np.where(norms > 0, norms, 1.0), 1.0)
    v = v + (p * c) @ diff
  if momentum and not first_round:
    v = momentum * center + (1 - momentum) * v
  return v, tau, c


def oracle_foolsgold(features, updates):
  """(aggregate sum_c wv_c u_c / K, shares wv / sum wv) of FoolsGold from its features."""
  wv = oracle.foolsgold_weights(features)
  return wv @ updates / len(updates), wv / wv.sum()


# ---------------------------------------------------------------- ARC
def test_arc_matches_byzfl_published_example():
  """ByzFL's ARC docstring: f = 1, x = [[1,2,3],[4,5,6],[7,8,9]] -> the third row
  becomes [4.41004009, 5.04004582, 5.67005155]."""
  x = np.array([[1., 2., 3.], [4., 5., 6.], [7., 8., 9.]])
  byzfl = np.array([[1., 2., 3.], [4., 5., 6.], [4.41004009, 5.04004582, 5.67005155]])
  agg, info = tff_residual.aggregate(rows(x), "arc+mean", num_byzantine=1)
  np.testing.assert_allclose(agg, byzfl.mean(0), rtol=1e-7)
  np.testing.assert_allclose(info["arc_clip_factors"], [1, 1, np.sqrt(77 / 194)], rtol=1e-6)


@pytest.mark.parametrize("inner,f", fast_cases(
    [(inner, f) for inner in ("mean", "median", "trimmed_mean") for f in (0, 1, 2, 3, 5)],
    fast=[("mean", 1), ("median", 3)]))
def test_arc_matches_oracle(f, inner):
  x = clients_with_outliers(scaled=(0, 4, 7), factor=5.0)
  y, c = oracle_arc(x, f)
  want = {"mean": y.mean(0), "median": oracle.coordinate_median(y),
          "trimmed_mean": oracle.trimmed_mean(y, 0.2)}[inner]
  agg, info = tff_residual.aggregate(rows(x), f"arc+{inner}", num_byzantine=f)
  np.testing.assert_allclose(agg, want, rtol=1e-6, atol=1e-9)
  np.testing.assert_allclose(info["arc_clip_factors"], c, rtol=1e-6)
  assert (c < 1).sum() == int(2 * f * (11 - f) / 11)  # the k largest are clipped
  if inner == "mean":
    np.testing.assert_allclose(info["client_weights"], c / c.sum(), rtol=1e-6)


def test_byzfl_default_pipeline_arc_nnm_trimmed_mean_matches_oracle():
  x = clients_with_outliers(scaled=(2, 9), factor=6.0)
  y, _ = oracle_arc(x, 2)
  agg, info = tff_residual.aggregate(rows(x), "arc+nnm+trimmed_mean", num_byzantine=2)
  np.testing.assert_allclose(agg, oracle.trimmed_mean(oracle_nnm(y, 2), 0.2), rtol=1e-6)
  assert abs(info["client_weights"].sum() - 1) < 1e-6


# ---------------------------------------------------------------- bucketing
@pytest.mark.parametrize("num_clients,bucket_size", fast_cases(
    [(11, 2), (12, 3), (7, 1), (9, 4)], fast=[(11, 2)]))
def test_bucketing_matches_oracle_and_its_stated_shuffle(num_clients, bucket_size):
  x = clients_with_outliers(num_clients=num_clients, scaled=(1,))
  agg, info = tff_residual.aggregate(rows(x), "bucketing+median", bucket_size=bucket_size,
                                     seed=5)
  bucket = info["bucket"].astype(int)
  np.testing.assert_array_equal(bucket, oracle_permutation_buckets(num_clients, bucket_size, 5, 0))
  sizes = np.bincount(bucket)
  assert sizes[:-1].tolist() == [bucket_size] * (len(sizes) - 1)  # the last holds the rest
  assert len(sizes) == -(-num_clients // bucket_size)
  means, _ = oracle_bucket_means(x, bucket)
  np.testing.assert_allclose(agg, oracle.coordinate_median(means), rtol=1e-6)
  np.testing.assert_allclose(info["client_weights"].sum(), 1.0, rtol=1e-6)
  mean_agg, mean_info = tff_residual.aggregate(rows(x), "bucketing+mean",
                                               bucket_size=bucket_size, seed=5)
  np.testing.assert_allclose(mean_agg, means.mean(0), rtol=1e-6)
  np.testing.assert_allclose(mean_info["client_weights"],
                             1.0 / len(sizes) / sizes[bucket], rtol=1e-6)


def test_bucketing_shuffle_moves_with_the_round_and_the_seed():
  x = clients_with_outliers(num_clients=11)
  _, first = tff_residual.aggregate(rows(x), "bucketing+mean")
  assert int(first["state"]["bucketing_round"]) == 1
  _, again = tff_residual.aggregate(rows(x), "bucketing+mean")
  np.testing.assert_array_equal(first["bucket"], again["bucket"])  # same seed, same round
  _, second = tff_residual.aggregate(rows(x), "bucketing+mean", state=first["state"])
  assert int(second["state"]["bucketing_round"]) == 2
  np.testing.assert_array_equal(second["bucket"].astype(int),
                                oracle_permutation_buckets(11, 2, 0, 1))
  assert not np.array_equal(first["bucket"], second["bucket"])
  _, other_seed = tff_residual.aggregate(rows(x), "bucketing+mean", seed=1)
  assert not np.array_equal(first["bucket"], other_seed["bucket"])


def test_weighted_bucketing_matches_oracle():
  """Under the inner rule's multiply: sample-weighted bucket means, each bucket
  weighted by its clients' total."""
  x = clients_with_outliers(num_clients=10)
  n = np.arange(1.0, 11.0)
  agg, info = tff_residual.aggregate(rows(x), "bucketing+median", sample_weights=n,
                                     sample_weighting="multiply", bucket_size=3)
  means, totals = oracle_bucket_means(x, info["bucket"].astype(int), n)
  np.testing.assert_allclose(agg, weighted_l_estimate(means, median_positions(len(means)),
                                                      totals), rtol=1e-6)


def test_bucketing_refuses_foolsgold_history_and_too_few_buckets():
  with pytest.raises(ValueError, match="a bucket is not a client"):
    method_table.resolve("bucketing+foolsgold", history_size=10)
  assert method_table.resolve("bucketing+krum", num_byzantine=1,
                          bucket_size=2).minimum_clients() == 2 * (5 - 1) + 1
  with pytest.raises(ValueError, match="applied twice"):
    method_table.resolve("arc+nnm+arc+mean", num_byzantine=1)
  with pytest.raises(ValueError, match="cannot be wrapped"):
    method_table.resolve("nnm+fedavg", num_byzantine=1)


# ---------------------------------------------------------------- centered clipping
@pytest.mark.parametrize("num_clients,iters,weighted", fast_cases(
    [(k, i, w) for k in (10, 11) for i in (1, 3) for w in (False, True)],
    fast=[(10, 1, False), (11, 3, True)]))
def test_adaptive_centered_clipping_matches_oracle(num_clients, iters, weighted):
  x = clients_with_outliers(num_clients=num_clients, scaled=(0, 3), factor=10.0)
  center = np.random.default_rng(3).normal(size=x.shape[1]) * 0.1
  n = np.arange(1.0, num_clients + 1.0) if weighted else None
  params = dict(sample_weights=n, sample_weighting="multiply") if weighted else {}
  agg, info = tff_residual.aggregate(rows(x), "centered_clipping", center=center,
                                     num_iters=iters, **params)
  want, tau, c = oracle_centered_clipping(x, center, iters, p=n)
  np.testing.assert_allclose(agg, want, rtol=1e-6, atol=1e-9)
  np.testing.assert_allclose(info["tau"], tau, rtol=1e-6)
  np.testing.assert_allclose(info["clip_factors"], c, rtol=1e-5)
  if not weighted:
    # A client sent ten times too far gets far less than its 1/K share.
    assert info["client_weights"][0] < 0.5 / num_clients


def test_centered_clipping_fixed_tau_scale_and_momentum_match_oracle():
  x = clients_with_outliers(scaled=(0,), factor=10.0)
  center = np.zeros(x.shape[1])
  agg, info = tff_residual.aggregate(rows(x), "centered_clipping", center=center, tau=0.5)
  np.testing.assert_allclose(agg, oracle_centered_clipping(x, center, tau=0.5)[0], rtol=1e-6)
  assert info["tau"] == pytest.approx(0.5)
  agg, _ = tff_residual.aggregate(rows(x), "centered_clipping", center=center, tau_scale=2.0)
  np.testing.assert_allclose(agg, oracle_centered_clipping(x, center, scale=2.0)[0], rtol=1e-6)
  agg, info = tff_residual.aggregate(rows(x), "centered_clipping", center=center + 1.0,
                                     server_momentum=0.9)
  want, _, _ = oracle_centered_clipping(x, center + 1.0, momentum=0.9)
  np.testing.assert_allclose(agg, want, rtol=1e-6)
  np.testing.assert_allclose(info["state"]["center"][0], want, rtol=1e-6)
  # The first round (no centre yet) starts from the median and keeps no momentum.
  agg, _ = tff_residual.aggregate(rows(x), "centered_clipping", server_momentum=0.9)
  want, _, _ = oracle_centered_clipping(x, np.median(x, axis=0), first_round=True)
  np.testing.assert_allclose(agg, want, rtol=1e-6)


def test_centered_clipping_radius_is_checked():
  for bad in (dict(tau=0.0), dict(tau_scale=-1.0), dict(server_momentum=1.0)):
    with pytest.raises(ValueError):
      method_table.resolve("centered_clipping", **bad)


# ---------------------------------------------------------------- FoolsGold history
def three_sampled_rounds(num_ids=8, per_round=4, seed=0):
  """Three rounds of ``per_round`` of ``num_ids`` clients: ids, [K, 2, 3] updates (the
  feature, tensor -2, is the [2, 3] kernel) and [K, 3] biases; ids 6 and 7 are sybils
  that always push one direction."""
  rng = np.random.default_rng(seed)
  rounds = []
  for r in range(3):
    sybil = 6 + r % 2
    others = [i for i in range(num_ids) if i != sybil]
    ids = np.append(rng.choice(others, per_round - 1, replace=False), sybil)
    kernel = rng.normal(size=(per_round, 2, 3))
    kernel[ids >= 6] = np.array([[1., 2., 3.], [1., 0., -1.]]) + 0.01 * rng.normal(size=(2, 3))
    rounds.append((ids, kernel, rng.normal(size=(per_round, 3))))
  return rounds


def test_foolsgold_history_by_client_id_matches_oracle_over_three_sampled_rounds():
  history, state = np.zeros((8, 6)), None
  for ids, kernel, bias in three_sampled_rounds():
    updates = [{"kernel": k, "bias": b} for k, b in zip(kernel, bias)]
    features = kernel.reshape(len(ids), -1)
    summed = history[ids] + features
    flat = np.concatenate([features, bias], axis=1)
    want, shares = oracle_foolsgold(summed, flat)
    state = dict(state or {}, client_ids=ids)
    agg, info = tff_residual.aggregate(updates, "foolsgold", history_size=8, state=state)
    np.testing.assert_allclose(np.concatenate([agg["kernel"].ravel(), agg["bias"]]), want,
                               rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(info["client_weights"], shares, rtol=1e-5, atol=1e-7)
    history[ids] += features
    np.testing.assert_allclose(info["state"]["history"], history, rtol=1e-12)
    state = info["state"]
  # Without history, the last round's weights are those of its own features only.
  _, plain = tff_residual.aggregate(updates, "foolsgold")
  np.testing.assert_allclose(plain["client_weights"], oracle_foolsgold(features, flat)[1],
                             rtol=1e-5, atol=1e-7)


def test_foolsgold_client_ids_are_checked():
  updates = [{"kernel": np.ones((2, 3)), "bias": np.ones(3)}] * 3
  with pytest.raises(ValueError, match="history_size"):
    tff_residual.aggregate(updates, "foolsgold", history_size=4, state={"client_ids": [0, 1, 9]})
  with pytest.raises(ValueError, match="twice"):
    tff_residual.aggregate(updates, "foolsgold", history_size=4, state={"client_ids": [0, 1, 1]})
  with pytest.raises(ValueError, match="no entry"):
    tff_residual.aggregate(updates, "foolsgold", history_size=4, state={"centre": 1})


# ---------------------------------------------------------------- weighted variants
def test_weighted_median_and_trimmed_mean_match_oracle():
  x = clients_with_outliers(num_clients=10, scaled=(0,))
  n = np.array([1., 5., 2., 8., 3., 3., 1., 9., 4., 2.])
  agg, _ = tff_residual.aggregate(rows(x), "median", sample_weights=n,
                                  sample_weighting="multiply")
  np.testing.assert_allclose(agg, weighted_l_estimate(x, median_positions(10), n), rtol=1e-6)
  agg, _ = tff_residual.aggregate(rows(x), "trimmed_mean", sample_weights=n,
                                  sample_weighting="multiply", beta=0.2)
  np.testing.assert_allclose(agg, weighted_l_estimate(x, trimmed_positions(10, 0.2), n),
                             rtol=1e-6)


def test_weighted_bulyan_matches_oracle():
  """The selection is Krum's (unweighted); the beta values nearest each coordinate's
  median are averaged with the sample weights."""
  x = clients_with_outliers(num_clients=11, scaled=(3,))
  n = np.arange(1.0, 12.0)
  _, chosen, _ = oracle_bulyan(x, 2)
  sel = x[chosen]
  median = np.median(sel, axis=0)
  want = np.empty(x.shape[1])
  for j in range(x.shape[1]):
    nearest = np.argsort(np.abs(sel[:, j] - median[j]), kind="stable")[:len(sel) - 4]
    w = n[np.array(chosen)[nearest]]
    want[j] = (w * sel[nearest, j]).sum() / w.sum()
  agg, info = tff_residual.aggregate(rows(x), "bulyan", num_byzantine=2, sample_weights=n,
                                     sample_weighting="multiply")
  np.testing.assert_allclose(agg, want, rtol=1e-6)
  assert sorted(np.flatnonzero(info["selected"]).tolist()) == chosen


# ---------------------------------------------------------------- every name, one case
def _foolsgold(x):
  return oracle_foolsgold(x, x)[0]


def _residual(**options):
  return lambda x: oracle.residual_reweighting(x, **options)[0]


SWEEP_ORACLES = {
    "residual": _residual(),
    "residual_paper": _residual(variant="paper"),
    "residual_theil_sen": _residual(estimator="theil_sen"),
    "residual_median_line": _residual(estimator="median"),
    "residual_gaussian": _residual(weighting="gaussian"),
    "median": oracle.coordinate_median,
    "trimmed_mean": lambda x: oracle.trimmed_mean(x, 0.2),
    "repeated_median": oracle.coordinate_median,
    "repeated_median_paper": oracle.repeated_median_paper,
    "foolsgold": _foolsgold,
    "mean": lambda x: x.mean(0),
    "fedavg": lambda x: x.mean(0),
    "krum": lambda x: x[int(np.argmin(oracle_krum_scores(x, 1)))],
    "multi_krum": lambda x: oracle_multi_krum(x, 1, len(x) - 1)[0],
    "geometric_median": lambda x: oracle_weiszfeld(x, np.full(len(x), 1 / len(x))),
    "centered_clipping": lambda x: oracle_centered_clipping(x, np.median(x, axis=0),
                                                            first_round=True)[0],
    "bulyan": lambda x: oracle_bulyan(x, 1)[0],
    "nnm+median": lambda x: oracle.coordinate_median(oracle_nnm(x, 1)),
    "arc+mean": lambda x: oracle_arc(x, 1)[0].mean(0),
}


def test_the_sweep_covers_every_name():
  assert set(method_table.names()) <= set(SWEEP_ORACLES)
  assert {name.split("+")[0] for name in SWEEP_ORACLES if "+" in name} | {"bucketing"} == set(
      method_table.WRAPPERS)


@pytest.mark.parametrize("name", sorted(SWEEP_ORACLES))
def test_every_name_matches_its_oracle(name):
  x = clients_with_outliers(num_clients=9, size=7, seed=11, scaled=(2,), factor=4.0)
  params = {"num_byzantine": 1} if "num_byzantine" in method_table.fields_of(name) else {}
  if "geometric_median" in name:
    params.update(max_iter=500, tolerance=0.0)
  agg, _ = tff_residual.aggregate(rows(x), name, **params)
  tolerance = 1e-4 if "geometric_median" in name else 1e-6
  np.testing.assert_allclose(agg, SWEEP_ORACLES[name](x), rtol=tolerance, atol=1e-7)


# ---------------------------------------------------------------- TFF = eager
NEW_NAMES = ["arc+median", "arc+nnm+trimmed_mean", "bucketing+median",
             "bucketing+centered_clipping", "centered_clipping", "foolsgold",
             "repeated_median_paper"]


STRUCTURE = collections.OrderedDict(kernel=tff.TensorType(np.float32, [2, 3]),
                                    bias=tff.TensorType(np.float32, [3]))


@pytest.mark.slow
@pytest.mark.parametrize("name", NEW_NAMES)
def test_new_names_in_tff_equal_eager_over_three_rounds(tff_runtime, name):
  """Three rounds of the factory's process (state passed on, FoolsGold told each round's
  ids) against the eager API given the same state."""
  params = {"num_byzantine": 1} if "num_byzantine" in method_table.fields_of(name) else {}
  if name == "foolsgold":
    params["history_size"] = 8
  factory = tff_residual.build_factory(name, **params)
  process = factory.create(STRUCTURE)
  state, eager_state = process.initialize(), None
  for ids, kernel, bias in three_sampled_rounds():
    kernel, bias = kernel.astype(np.float32), bias.astype(np.float32)
    updates = [{"kernel": k, "bias": b} for k, b in zip(kernel, bias)]
    state = factory.with_client_ids(state, ids)
    output = process.next(state, [collections.OrderedDict(kernel=k, bias=b)
                                  for k, b in zip(kernel, bias)])
    state = output.state
    if name == "foolsgold":
      eager_state = dict(eager_state or {}, client_ids=ids)
    agg, info = tff_residual.aggregate(updates, name, state=eager_state, **params)
    eager_state = info.get("state")
    np.testing.assert_allclose(output.result["kernel"], agg["kernel"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(output.result["bias"], agg["bias"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(output.measurements["client_weights"], info["client_weights"],
                               rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_foolsgold_history_in_a_tff_learning_process_by_client_id(tff_runtime):
  """build_weighted_fed_avg with FoolsGold's history: the caller names each round's sampled
  clients on ``state.aggregator``; only their rows of the history move."""
  from test_aggregators import client_datasets

  def model_fn():  # not zero-initialised: the last kernel's update (the feature) moves
    keras_model = tf.keras.Sequential([
        tf.keras.layers.InputLayer(input_shape=(4,)),
        tf.keras.layers.Dense(3, kernel_initializer=tf.keras.initializers.GlorotUniform(1)),
        tf.keras.layers.Dense(2, kernel_initializer=tf.keras.initializers.GlorotUniform(2))])
    return tff.learning.models.from_keras_model(
        keras_model, loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        input_spec=(tf.TensorSpec([None, 4], tf.float32), tf.TensorSpec([None], tf.int32)))

  factory = tff_residual.FoolsGoldFactory(history_size=6)
  process = tff.learning.algorithms.build_weighted_fed_avg(
      model_fn, client_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=0.5),
      model_aggregator=factory)
  state = process.initialize()
  data = client_datasets(6, seed=3)
  seen = set()
  for ids in ([4, 1, 5], [0, 4, 2]):
    state = state._replace(aggregator=factory.with_client_ids(state.aggregator, ids))
    state = process.next(state, [data[i] for i in ids]).state
    seen |= set(ids)
    history = np.asarray(state.aggregator["history"])
    assert history.shape == (6, 3 * 2)  # the feature: the last Dense layer's kernel
    moved = {i for i in range(6) if np.abs(history[i]).max() > 0}
    assert moved == seen
