"""Krum, Multi-Krum, geometric median, centered clipping, Bulyan and nearest-neighbour
mixing: NumPy oracles written from each paper's formulas (in model space, not the
kernels' Gram-matrix form), hand-computed cases, TFF equal to the eager API, state
across rounds, and three rounds of build_weighted_fed_avg."""

import collections

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff

import tff_residual


# ---------------------------------------------------------------- NumPy oracles
def oracle_krum_scores(x, f):
  k = len(x)
  d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
  return np.array([np.sort(np.delete(d[i], i))[:k - f - 2].sum() for i in range(k)])


def oracle_multi_krum(x, f, m):
  chosen = np.argsort(oracle_krum_scores(x, f), kind="stable")[:m]
  return x[chosen].mean(0), chosen


def oracle_weiszfeld(x, alpha, nu=1e-6, iters=200):
  v = alpha @ x
  for _ in range(iters):
    beta = alpha / np.maximum(nu, np.linalg.norm(x - v, axis=1))
    v = beta @ x / beta.sum()
  return v


def oracle_centered_clipping(x, center, tau, iters):
  v = center.copy()
  for _ in range(iters):
    diff = x - v
    norms = np.linalg.norm(diff, axis=1)
    c = np.minimum(1.0, tau / np.where(norms > 0, norms, 1.0))
    v = v + (c[:, None] * diff).mean(0)
  return v


def oracle_bulyan(x, f):
  remaining, chosen = list(range(len(x))), []
  for _ in range(len(x) - 2 * f):
    sub = x[remaining]
    n = len(sub)
    d = ((sub[:, None] - sub[None]) ** 2).sum(-1)
    count = max(n - f - 2, 1)
    scores = [np.sort(np.delete(d[i], i))[:count].sum() for i in range(n)]
    chosen.append(remaining.pop(int(np.argmin(scores))))
  sel = x[chosen]
  theta, beta = len(sel), len(sel) - 2 * f
  median = np.median(sel, axis=0)
  out = np.empty(x.shape[1])
  for j in range(x.shape[1]):
    nearest = np.argsort(np.abs(sel[:, j] - median[j]), kind="stable")[:beta]
    out[j] = sel[nearest, j].mean()
  return out, sorted(chosen), theta


def oracle_nnm(x, f):
  d = ((x[:, None] - x[None]) ** 2).sum(-1)
  return np.stack([x[np.argsort(d[i], kind="stable")[:len(x) - f]].mean(0) for i in range(len(x))])


def honest_and_outliers(num_clients=11, size=40, outliers=(3,), seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=size) + 0.5 * rng.normal(size=(num_clients, size))
  for i in outliers:
    x[i] += 8.0 + rng.normal(size=size)
  return x


def split(x):
  """Each model as two tensors, so that the kernels sum over tensors."""
  return [{"w": row[:30].reshape(5, 6), "b": row[30:]} for row in x]


def joined(agg):
  return np.concatenate([agg["w"].ravel(), agg["b"]])


# ---------------------------------------------------------------- eager API vs oracles
def test_krum_hand_computed():
  """1-D points 0, 1, 2, 10, 2 (f = 1, K = 5: K - f - 2 = 2 neighbours); squared
  distances to the two nearest: 0: 1 + 4 = 5, 1: 1 + 1 = 2, 2: 0 + 1 = 1,
  10: 64 + 64 = 128, the second 2: 0 + 1 = 1."""
  x = [np.array([v]) for v in (0.0, 1.0, 2.0, 10.0, 2.0)]
  agg, info = tff_residual.aggregate(x, "krum", num_byzantine=1)
  np.testing.assert_allclose(info["krum_scores"], [5, 2, 1, 128, 1])
  np.testing.assert_array_equal(info["selected"], [0, 0, 1, 0, 0])  # tie: the lower index
  np.testing.assert_allclose(agg, [2.0])
  np.testing.assert_array_equal(info["client_weights"], [0, 0, 1, 0, 0])


@pytest.mark.parametrize("f", [pytest.param(0, marks=pytest.mark.slow), 1,
                               pytest.param(3, marks=pytest.mark.slow)])
def test_krum_matches_oracle(f):
  x = honest_and_outliers(outliers=range(f))
  agg, info = tff_residual.aggregate(split(x), "krum", num_byzantine=f)
  scores = oracle_krum_scores(x, f)
  np.testing.assert_allclose(info["krum_scores"], scores, rtol=1e-6)  # float32 measurement
  np.testing.assert_allclose(joined(agg), x[np.argmin(scores)], atol=1e-12)


@pytest.mark.parametrize("f,m", [(1, None)] + [pytest.param(f, m, marks=pytest.mark.slow)
                                                 for f in (0, 1, 3) for m in (None, 2)
                                                 if (f, m) != (1, None)])
def test_multi_krum_matches_oracle(f, m):
  x = honest_and_outliers(outliers=range(f))
  params = {} if m is None else {"num_selected": m}
  agg, info = tff_residual.aggregate(split(x), "multi_krum", num_byzantine=f, **params)
  want, chosen = oracle_multi_krum(x, f, len(x) - f if m is None else m)
  np.testing.assert_allclose(joined(agg), want, atol=1e-12)
  expected_weights = np.zeros(len(x))
  expected_weights[chosen] = 1 / len(chosen)
  np.testing.assert_allclose(info["client_weights"], expected_weights, atol=1e-7)
  assert info["client_weights"][:f].sum() == 0  # the outliers are never chosen


def test_multi_krum_sample_weights_weight_the_selected():
  x = honest_and_outliers(outliers=(0,))
  weights = np.arange(1.0, 12.0)
  agg, info = tff_residual.aggregate(split(x), "multi_krum", num_byzantine=1,
                                     sample_weights=weights, sample_weighting="multiply")
  _, chosen = oracle_multi_krum(x, 1, 10)
  want = np.zeros(11)
  want[chosen] = weights[chosen] / weights[chosen].sum()
  np.testing.assert_allclose(info["client_weights"], want, atol=1e-7)
  np.testing.assert_allclose(joined(agg), want @ x, atol=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_geometric_median_matches_weiszfeld_in_model_space(weighted):
  x = honest_and_outliers(outliers=(1, 4))
  alpha = np.arange(1.0, 12.0) if weighted else np.ones(11)
  params = dict(sample_weights=alpha, sample_weighting="multiply") if weighted else {}
  agg, info = tff_residual.aggregate(split(x), "geometric_median", tolerance=1e-12,
                                     max_iter=500, **params)
  want = oracle_weiszfeld(x, alpha / alpha.sum())
  np.testing.assert_allclose(joined(agg), want, atol=1e-6)
  np.testing.assert_allclose(joined(agg), info["client_weights"] @ x, atol=1e-5)
  assert info["client_weights"][[1, 4]].max() < 0.5 / 11
  assert 1 < info["num_iterations"] <= 500


def test_geometric_median_hand_computed_and_max_iter():
  """Three corners of a triangle with one angle >= 120 degrees: the median is that
  vertex. (0,0), (1,0), (-0.4, 0.1): the angle at the origin is > 120 degrees."""
  x = [np.array([0.0, 0.0]), np.array([1.0, 0.0]), np.array([-0.4, 0.1])]
  agg, _ = tff_residual.aggregate(x, "geometric_median", nu=1e-12, tolerance=0.0,
                                  max_iter=2000)
  np.testing.assert_allclose(agg, [0.0, 0.0], atol=1e-4)
  _, info = tff_residual.aggregate(x, "geometric_median", max_iter=3, tolerance=0.0)
  assert info["num_iterations"] == 3


@pytest.mark.parametrize("iters", [1, 3])
def test_centered_clipping_matches_oracle(iters):
  x = honest_and_outliers(outliers=(2,))
  center = np.median(x, axis=0) + 0.3
  tau = 2.0
  agg, info = tff_residual.aggregate(split(x), "centered_clipping", tau=tau, num_iters=iters,
                                     center=split(center[None])[0])
  want = oracle_centered_clipping(x, center, tau, iters)
  np.testing.assert_allclose(joined(agg), want, atol=1e-10)
  # The result is (1 - sum a) center + sum a_k x_k, with a reported as shares.
  a = info["client_weights"] * (1 - info["center_weight"])
  np.testing.assert_allclose(joined(agg), info["center_weight"] * center + a @ x, atol=1e-5)
  assert info["clip_factors"][2] < 0.3 and info["clip_factors"].max() <= 1


def test_centered_clipping_starts_from_the_coordinate_median():
  x = honest_and_outliers(outliers=(2,))
  agg, _ = tff_residual.aggregate(split(x), "centered_clipping", tau=1.0)
  np.testing.assert_allclose(joined(agg),
                             oracle_centered_clipping(x, np.median(x, axis=0), 1.0, 1),
                             atol=1e-10)


@pytest.mark.parametrize("f", [pytest.param(0, marks=pytest.mark.slow),
                               pytest.param(1, marks=pytest.mark.slow), 2])
def test_bulyan_matches_oracle(f):
  x = honest_and_outliers(outliers=range(f))
  agg, info = tff_residual.aggregate(split(x), "bulyan", num_byzantine=f)
  want, chosen, theta = oracle_bulyan(x, f)
  np.testing.assert_allclose(joined(agg), want, atol=1e-12)
  np.testing.assert_array_equal(np.flatnonzero(info["selected"]), chosen)
  assert len(chosen) == theta == 11 - 2 * f
  np.testing.assert_allclose(info["client_weights"].sum(), 1.0, atol=1e-6)
  assert info["client_weights"][:f].sum() == 0


@pytest.mark.parametrize("inner,params", [("median", {}), ("residual", {}),
                                          ("krum", {"num_byzantine": 2}),
                                          ("trimmed_mean", {"beta": 0.1})])
@pytest.mark.slow
def test_nnm_mixes_then_runs_the_inner_method(inner, params):
  x = honest_and_outliers(outliers=(0, 5))
  mixed = oracle_nnm(x, 2)
  agg, info = tff_residual.aggregate(split(x), "nnm+" + inner, **{"num_byzantine": 2, **params})
  want, inner_info = tff_residual.aggregate(split(mixed), inner, **params)
  np.testing.assert_allclose(joined(agg), joined(want), atol=1e-9)
  if inner == "residual":  # (mixed models tie where neighbourhoods do: the order
    # statistics may credit either of two tied clients)
    np.testing.assert_allclose(info["inner_client_weights"], inner_info["client_weights"],
                               atol=1e-6)
  # The original clients' weights: q = M'p, summing to 1.
  d = ((x[:, None] - x[None]) ** 2).sum(-1)
  mixing = np.zeros((11, 11))
  for i in range(11):
    mixing[i, np.argsort(d[i], kind="stable")[:9]] = 1 / 9
  np.testing.assert_allclose(info["client_weights"], mixing.T @ info["inner_client_weights"],
                             atol=1e-6)


# ---------------------------------------------------------------- TFF factories
NEW_FACTORIES = {
    "krum": lambda: tff_residual.KrumFactory(num_byzantine=2),
    "multi_krum": lambda: tff_residual.MultiKrumFactory(num_byzantine=2, num_selected=5),
    "geometric_median": lambda: tff_residual.GeometricMedianFactory(),
    "centered_clipping": lambda: tff_residual.CenteredClippingFactory(tau=1.5),
    "bulyan": lambda: tff_residual.BulyanFactory(num_byzantine=2),
    "nnm+median": lambda: tff_residual.NNMFactory(tff_residual.CoordinateMedianFactory(),
                                                  num_byzantine=2),
}

VALUE_TYPE = collections.OrderedDict(w=tff.TensorType(np.float32, [5, 6]),
                                     b=tff.TensorType(np.float32, [10]))


def eager_params(factory):
  if isinstance(factory, tff_residual.NNMFactory):
    return {**factory.inner.params, "num_byzantine": factory.config.num_byzantine}
  return factory.params


@pytest.mark.parametrize("name", sorted(NEW_FACTORIES))
@pytest.mark.slow
def test_tff_equals_eager_api_with_outlier_in_client_order(tff_runtime, name):
  x = honest_and_outliers(num_clients=11, outliers=(6,)).astype(np.float32)
  factory = NEW_FACTORIES[name]()
  process = factory.create(VALUE_TYPE, tff.TensorType(np.float32))
  values = [collections.OrderedDict(v) for v in split(x)]
  output = process.next(process.initialize(), values, [1.0] * 11)
  want, info = tff_residual.aggregate(split(x), name, **eager_params(factory))
  for key in ("w", "b"):
    np.testing.assert_allclose(output.result[key], want[key], atol=1e-5)
  for key, value in info.items():
    if key == "state":  # the next state, not a measurement (compared below)
      continue
    np.testing.assert_allclose(output.measurements[key], value, rtol=1e-6, atol=1e-5,
                               err_msg=key)
  if "state" in info:
    np.testing.assert_allclose(output.state["center"][0], np.concatenate(
        [info["state"]["center"][0]]), rtol=1e-6, atol=1e-6)
  assert output.measurements["client_weights"][6] < 0.02  # the outlier, at its own index


def test_type_signatures_of_a_stateful_and_a_stateless_factory():
  stateless = tff_residual.KrumFactory(num_byzantine=1).create(VALUE_TYPE)
  assert stateless.initialize.type_signature.result == tff.FederatedType((), tff.SERVER)
  measurements = stateless.next.type_signature.result.measurements.member
  assert [name for name, _ in tff.structure.iter_elements(measurements)] == [
      "client_weights", "corrected_fraction", "num_dropped_clients", "krum_scores", "selected"]
  stateful = tff_residual.CenteredClippingFactory().create(VALUE_TYPE, tff.TensorType(np.float32))
  state = stateful.initialize.type_signature.result.member
  assert state == tff.types.to_type(collections.OrderedDict(
      center=[tff.TensorType(np.float32, [40])], has_center=tff.TensorType(np.bool_)))


@pytest.mark.slow
def test_centered_clipping_state_across_rounds(tff_runtime):
  """Round 1 starts at the median; rounds 2 and 3 at the previous aggregate."""
  factory = tff_residual.CenteredClippingFactory(tau=0.5, num_iters=2)
  process = factory.create(VALUE_TYPE, tff.TensorType(np.float32))
  state = process.initialize()
  assert not state["has_center"]
  rng = np.random.default_rng(5)
  center = None
  for round_index in range(3):
    x = honest_and_outliers(outliers=(1,), seed=round_index).astype(np.float32) + rng.normal()
    output = process.next(state, [collections.OrderedDict(v) for v in split(x)], [1.0] * 11)
    start = np.median(x.astype(np.float64), axis=0) if center is None else center
    want = oracle_centered_clipping(x.astype(np.float64), start, 0.5, 2)
    np.testing.assert_allclose(joined(output.result), want, atol=1e-4)
    state = output.state
    assert state["has_center"]
    np.testing.assert_allclose(state["center"][0], joined(output.result), atol=1e-6)
    center = joined(output.result).astype(np.float64)


@pytest.mark.slow
def test_centered_clipping_round_of_dropped_clients_keeps_the_state(tff_runtime):
  process = tff_residual.CenteredClippingFactory().create(tff.TensorType(np.float32, [3]))
  first = process.next(process.initialize(), [np.ones(3, np.float32)] * 3)
  nan = np.full(3, np.nan, np.float32)
  second = process.next(first.state, [nan] * 3)
  assert second.measurements["num_dropped_clients"] == 3
  np.testing.assert_allclose(second.state["center"][0], first.state["center"][0])
  assert second.state["has_center"]


def test_nnm_rejects_foreign_inner_factories():
  with pytest.raises(TypeError, match="inner must be a factory of this package"):
    tff_residual.NNMFactory(tff.aggregators.MeanFactory(), num_byzantine=1)
  with pytest.raises(ValueError, match="num_byzantine"):
    tff_residual.KrumFactory(num_byzantine=-2)
  with pytest.raises(TypeError, match="num_byzantine"):
    tff_residual.BulyanFactory()


@pytest.mark.parametrize("name", ["krum", "multi_krum", "geometric_median",
                                  "centered_clipping", "bulyan"])
@pytest.mark.slow
def test_three_rounds_of_weighted_fed_avg(tff_runtime, name):
  factory = {**NEW_FACTORIES,
             "bulyan": lambda: tff_residual.BulyanFactory(num_byzantine=1)}[name]()
  rng = np.random.default_rng(7)
  features = rng.normal(size=(7, 16, 3)).astype(np.float32)
  labels = (features.sum(-1, keepdims=True) > 0).astype(np.float32)
  datasets = [tf.data.Dataset.from_tensor_slices((features[i], labels[i])).batch(8)
              for i in range(7)]

  def model_fn():
    keras_model = tf.keras.Sequential([tf.keras.layers.Input(shape=(3,)),
                                       tf.keras.layers.Dense(1)])
    return tff.learning.models.from_keras_model(
        keras_model, loss=tf.keras.losses.MeanSquaredError(),
        input_spec=datasets[0].element_spec)

  process = tff.learning.algorithms.build_weighted_fed_avg(
      model_fn, client_optimizer_fn=tff.learning.optimizers.build_sgdm(0.1),
      model_aggregator=factory)
  state = process.initialize()
  losses = []
  for _ in range(3):
    output = process.next(state, datasets)
    state = output.state
    losses.append(float(output.metrics["client_work"]["train"]["loss"]))
  assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


@pytest.mark.slow
def test_readme_composition_with_tff_zeroing_and_clipping(tff_runtime):
  """README's example: zeroing, then clipping, then NNM around residual reweighting."""
  robust = tff_residual.NNMFactory(tff_residual.ResidualReweightingFactory(), num_byzantine=2)
  aggregator = tff.aggregators.zeroing_factory(
      zeroing_norm=100.0,
      inner_agg_factory=tff.aggregators.clipping_factory(clipping_norm=1.0,
                                                         inner_agg_factory=robust))
  process = aggregator.create(tff.types.to_type(VALUE_TYPE), tff.TensorType(np.float32))
  x = honest_and_outliers(outliers=(4,)).astype(np.float32) * 0.01
  x[9] *= 1e5  # zeroed: its norm is far above 100
  output = process.next(process.initialize(), [collections.OrderedDict(v) for v in split(x)],
                        [1.0] * 11)
  kept = x.copy()
  kept[9] = 0.0
  norms = np.linalg.norm(kept, axis=1, keepdims=True)
  clipped = kept * np.minimum(1.0, 1.0 / np.where(norms > 0, norms, 1.0))
  want, _ = tff_residual.aggregate(split(clipped), "nnm+residual", num_byzantine=2)
  np.testing.assert_allclose(joined(output.result), joined(want), atol=1e-5)
