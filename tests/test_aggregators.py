"""The TFF factories: type signatures, numbers vs. the eager API, order, bad input."""

import collections
import functools

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff

import tff_residual
from tff_residual.aggregators import gather as gather_lib

FACTORIES = {
    "residual": lambda: tff_residual.ResidualReweightingFactory(),
    "residual_paper": lambda: tff_residual.ResidualReweightingFactory(variant="paper"),
    "median": lambda: tff_residual.CoordinateMedianFactory(),
    "trimmed_mean": lambda: tff_residual.TrimmedMeanFactory(),
    "repeated_median": lambda: tff_residual.RepeatedMedianFactory(),
    "foolsgold": lambda: tff_residual.FoolsGoldFactory(),
}

VALUE_TYPES = {
    "scalar_f32": tff.TensorType(np.float32),
    "vector_f64": tff.TensorType(np.float64, [5]),
    "nested_f32": collections.OrderedDict(
        dense=[tff.TensorType(np.float32, [3, 2]), tff.TensorType(np.float32, [2])],
        head=collections.OrderedDict(w=tff.TensorType(np.float32, [2, 2]))),
}

MIXED_DTYPES = [tff.TensorType(np.float32, [3, 2]), tff.TensorType(np.float64, [4])]

MEASUREMENTS_TYPE = tff.FederatedType(collections.OrderedDict(
    client_weights=tff.TensorType(np.float32, [None]),
    corrected_fraction=tff.TensorType(np.float32, [None]),
    num_dropped_clients=tff.TensorType(np.int32)), tff.SERVER)


def random_value(value_type, rng):
  def leaf(t):
    return rng.normal(size=t.shape).astype(t.dtype)
  return tff.types.structure_from_tensor_type_tree(leaf, tff.types.to_type(value_type))


SIGNATURE_CASES = ([(name, "nested_f32") for name in sorted(FACTORIES)]
                   + [(name, value) for name in ("residual", "foolsgold")
                      for value in sorted(VALUE_TYPES) if value != "nested_f32"])
"""Every factory on the nested type; every value type with a coordinatewise and a
per-tensor factory (the types come from the shared gather and ServerStep, not the rule)."""


@pytest.mark.parametrize("factory_name,value_name", SIGNATURE_CASES)
@pytest.mark.slow
def test_type_signatures(factory_name, value_name):
  """Weighted processes for every value type; the unweighted one (the same plumbing,
  another trace of the kernel: ~8 s for the residual factory) for the nested type."""
  value_type = tff.types.to_type(VALUE_TYPES[value_name])
  factory = FACTORIES[factory_name]()
  weighted = factory.create(value_type, tff.TensorType(np.float32))
  server_state = tff.FederatedType((), tff.SERVER)
  assert weighted.initialize.type_signature == tff.FunctionType(None, server_state)
  expected_output = tff.templates.MeasuredProcessOutput(
      state=server_state, result=tff.FederatedType(value_type, tff.SERVER),
      measurements=MEASUREMENTS_TYPE)
  expected_output_type = tff.types.to_type(expected_output)
  weighted.next.type_signature.check_equivalent_to(tff.FunctionType(
      collections.OrderedDict(state=server_state,
                              value=tff.FederatedType(value_type, tff.CLIENTS),
                              weight=tff.FederatedType(np.float32, tff.CLIENTS)),
      expected_output_type))
  if value_name == "nested_f32":
    unweighted = factory.create(value_type)
    unweighted.next.type_signature.check_equivalent_to(tff.FunctionType(
        collections.OrderedDict(state=server_state,
                                value=tff.FederatedType(value_type, tff.CLIENTS)),
        expected_output_type))


@pytest.mark.parametrize("factory_name", sorted(FACTORIES))
@pytest.mark.slow
def test_execution_equals_eager_api(tff_runtime, factory_name):
  rng = np.random.default_rng(40)
  value_type = tff.types.to_type(VALUE_TYPES["nested_f32"])
  values = [random_value(value_type, rng) for _ in range(9)]
  values[4]["head"]["w"] *= 50  # one outlying client
  factory = FACTORIES[factory_name]()
  process = factory.create(value_type, tff.TensorType(np.float32))
  output = process.next(process.initialize(), values, [1.0] * 9)
  want, info = tff_residual.aggregate(values, factory.method, **factory.params)
  for got_leaf, want_leaf in zip(tf.nest.flatten(output.result), tf.nest.flatten(want)):
    np.testing.assert_allclose(got_leaf, want_leaf, rtol=1e-6, atol=1e-7)
  for name in ("client_weights", "corrected_fraction"):
    np.testing.assert_allclose(output.measurements[name], info[name], atol=1e-7)
  assert output.measurements["num_dropped_clients"] == 0
  # ``factory.kernel`` is the kernel the server runs (with the factory's parameters).
  leaves = [np.stack(leaf) for leaf in zip(*(tf.nest.flatten(v) for v in values))]
  direct = factory.kernel([leaf.reshape(9, -1) for leaf in leaves], None)
  for got_leaf, direct_leaf in zip(tf.nest.flatten(output.result), direct.aggregate):
    np.testing.assert_allclose(got_leaf, np.reshape(direct_leaf, got_leaf.shape), rtol=1e-6,
                               atol=1e-7)
  np.testing.assert_allclose(output.measurements["client_weights"], direct.client_weights,
                             atol=1e-7)


GATHER_TYPES = {"small": tff.TensorType(np.float32, [2]),
                "large": tff.TensorType(np.float32, [2, gather_lib.SMALL_VALUE_ELEMENTS])}


@functools.lru_cache(maxsize=None)
def _gather_computation(size):
  value_type = GATHER_TYPES[size]

  @tff.federated_computation(tff.FederatedType(value_type, tff.CLIENTS))
  def gather(value):
    return gather_lib.gather(value, value_type)
  return gather


def test_small_values_take_one_slot_and_large_ones_all():
  assert gather_lib.num_slots_for(GATHER_TYPES["small"]) == 1
  assert gather_lib.num_slots_for(tff.TensorType(np.float32)) == 1  # a client's weight
  assert gather_lib.num_slots_for(GATHER_TYPES["large"]) == gather_lib.NUM_SLOTS == 8


@pytest.mark.parametrize("num_clients", [1, 13, 17])  # 8 slots of 0-1, 1-2 and 2-3 clients
@pytest.mark.parametrize("size", ["small", "large"])
def test_gather_keeps_client_order(tff_runtime, size, num_clients):
  """A small value (one stack) and a large one (``NUM_SLOTS`` stacks) in TFF's runtime."""
  values = [np.full(GATHER_TYPES[size].shape, k, np.float32) for k in range(num_clients)]
  np.testing.assert_array_equal(_gather_computation(size)(values), np.stack(values))


def test_flat_type_is_one_vector_for_several_tensors_of_one_dtype():
  nested = tff.types.to_type(VALUE_TYPES["nested_f32"])
  assert gather_lib.flat_type(nested) == tff.TensorType(np.float32, [6 + 2 + 4])
  assert gather_lib.flat_type(tff.types.to_type(VALUE_TYPES["vector_f64"])) is None
  assert gather_lib.flat_type(tff.types.to_type(MIXED_DTYPES)) is None


def test_gather_flat_keeps_client_and_tensor_order(tff_runtime):
  value_type = tff.types.to_type(VALUE_TYPES["nested_f32"])

  @tff.federated_computation(tff.FederatedType(value_type, tff.CLIENTS))
  def gather(value):
    return gather_lib.gather_flat(value, value_type)

  rng = np.random.default_rng(43)
  values = [random_value(value_type, rng) for _ in range(13)]
  want = np.stack([np.concatenate([np.reshape(leaf, [-1]) for leaf in tf.nest.flatten(v)])
                   for v in values])
  np.testing.assert_array_equal(gather(values), want)


def test_mixed_dtypes_in_tff_equal_eager_api(tff_runtime):
  """A float32 and a float64 tensor: gathered tensor by tensor, each keeps its dtype."""
  value_type = tff.types.to_type(MIXED_DTYPES)
  rng = np.random.default_rng(44)
  values = [random_value(value_type, rng) for _ in range(7)]
  values[5][1] = values[5][1] * 40
  factory = tff_residual.ResidualReweightingFactory()
  process = factory.create(value_type)
  output = process.next(process.initialize(), values)
  want, info = tff_residual.aggregate(values, "residual")
  assert [np.asarray(leaf).dtype for leaf in output.result] == [np.float32, np.float64]
  for got_leaf, want_leaf in zip(output.result, want):
    np.testing.assert_allclose(got_leaf, want_leaf, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(output.measurements["client_weights"], info["client_weights"],
                             atol=1e-7)
  assert np.argmin(output.measurements["client_weights"]) == 5


def _stack_of(first, count):
  return [tf.reshape(tf.range(first * 6, (first + count) * 6, dtype=tf.float32), [count, 2, 3]),
          tf.range(first, first + count)]


@pytest.mark.parametrize("count", [0, 1, 7, 8, 9, 17])
@pytest.mark.parametrize("num_slots", [1, gather_lib.NUM_SLOTS])
def test_gather_slots_round_trip_in_client_order(num_slots, count):
  """Client i sits in slot i % NUM_SLOTS; ``slots_to_stack`` restores the order."""
  stack = _stack_of(0, count)
  slots = gather_lib.stack_to_slots(stack, num_slots)
  assert [int(tf.shape(leaves[1])[0]) for leaves in slots] == [
      len(range(slot, count, num_slots)) for slot in range(num_slots)]
  if count > 9 and num_slots == 8:  # client 9 is the second of slot 1
    assert int(slots[1][1][1]) == 9
  for got, want in zip(gather_lib.slots_to_stack(tf.constant(count), slots), stack):
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_gather_slots_merge_in_client_order():
  """Joining two partial accumulators (``merge``) gives the slots of all clients."""
  stack_of = _stack_of
  first, second = stack_of(0, 5), stack_of(5, 12)
  joined = [tf.concat([a, b], axis=0) for a, b in zip(
      gather_lib.slots_to_stack(tf.constant(5), gather_lib.stack_to_slots(first)),
      gather_lib.slots_to_stack(tf.constant(12), gather_lib.stack_to_slots(second)))]
  for got, want in zip(gather_lib.slots_to_stack(tf.constant(17), gather_lib.stack_to_slots(joined)),
                       stack_of(0, 17)):
    np.testing.assert_array_equal(got.numpy(), want.numpy())


@functools.lru_cache(maxsize=None)
def _residual_process(size):
  """The default residual factory's process for float32 [size] values (built once)."""
  return tff_residual.ResidualReweightingFactory().create(tff.TensorType(np.float32, [size]))


@pytest.mark.parametrize("attacker", [0, 6])
@pytest.mark.slow
def test_client_weights_follow_client_order(tff_runtime, attacker):
  rng = np.random.default_rng(41 + attacker)
  process = _residual_process(500)
  values = [rng.normal(size=500).astype(np.float32) * 0.01 for _ in range(10)]
  values[attacker] *= 100
  weights = process.next(process.initialize(), values).measurements["client_weights"]
  assert np.argmin(weights) == attacker and weights[attacker] < 0.01


@pytest.mark.parametrize("num_clients", [10, 33])
@pytest.mark.slow
def test_residual_factory_in_tff_serves_every_client_count(tff_runtime, num_clients):
  """TFF's worker (no XLA, K unknown while the graph is built): 10 clients take a
  branch of 10 rows, 19 and 30 the padded branches of 20 and 32 rows, 33 the
  sorting path; each gives the eager API's numbers (static K, XLA programs)."""
  rng = np.random.default_rng(42 + num_clients)
  process = _residual_process(300)
  values = [rng.normal(size=300).astype(np.float32) for _ in range(num_clients)]
  values[3] = values[3] * 30.0
  output = process.next(process.initialize(), values)
  want, info = tff_residual.aggregate(values, "residual")
  np.testing.assert_allclose(output.result, want, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(output.measurements["client_weights"], info["client_weights"],
                             atol=1e-7)
  np.testing.assert_allclose(output.measurements["corrected_fraction"],
                             info["corrected_fraction"], atol=1e-7)
  assert np.argmin(output.measurements["client_weights"]) == 3


@pytest.mark.slow
def test_non_finite_clients_are_dropped_in_tff(tff_runtime):
  process = tff_residual.ResidualReweightingFactory().create(tff.TensorType(np.float32, [3]),
                                                             tff.TensorType(np.float32))
  values = [np.array([1.0, 2.0, 3.0], np.float32) + k * 0.01 for k in range(5)]
  values[1] = np.array([np.nan, 0, 0], np.float32)
  output = process.next(process.initialize(), values, [1.0] * 5)
  assert output.measurements["num_dropped_clients"] == 1
  assert output.measurements["client_weights"][1] == 0
  assert np.all(np.isfinite(output.result))
  all_bad = [np.array([np.inf, 0, 0], np.float32)] * 3
  output = process.next(process.initialize(), all_bad, [1.0] * 3)
  np.testing.assert_array_equal(output.result, [0, 0, 0])
  assert output.measurements["num_dropped_clients"] == 3


@pytest.mark.slow
@pytest.mark.parametrize("weight_dtype", [np.float32, np.int64])
def test_multiply_sample_weights_in_tff(tff_runtime, weight_dtype):
  """Float weights, and integer ones (example counts) as TFF's MeanFactory takes them."""
  process = tff_residual.ResidualReweightingFactory(sample_weighting="multiply").create(
      tff.TensorType(np.float32, [4]), tff.TensorType(weight_dtype))
  values = [np.full(4, float(k), np.float32) for k in range(4)]  # K = 4, all on a line
  output = process.next(process.initialize(), values,
                        [weight_dtype(w) for w in (0, 0, 1, 3)])
  np.testing.assert_allclose(output.measurements["client_weights"], [0, 0, 0.25, 0.75], atol=1e-6)
  np.testing.assert_allclose(output.result, np.full(4, 2.75), atol=1e-6)


@pytest.mark.parametrize("make,error,match", [
    (lambda: tff_residual.ResidualReweightingFactory(lambda_=-1), ValueError, "lambda_"),
    (lambda: tff_residual.ResidualReweightingFactory(variant="x"), ValueError, "variant"),
    (lambda: tff_residual.TrimmedMeanFactory(beta=0.7), ValueError, "beta"),
    (lambda: tff_residual.FoolsGoldFactory(normalize="x"), ValueError, "normalize"),
    (lambda: tff_residual.RepeatedMedianFactory(variant="paper", sample_weighting="multiply"),
     ValueError, "sample_weighting"),
])
def test_invalid_construction(make, error, match):
  with pytest.raises(error, match=match):
    make()


@pytest.mark.parametrize("value_type,weight_type,error", [
    (tff.TensorType(np.int32, [3]), None, TypeError),
    (tff.TensorType(np.float32, [None]), None, ValueError),
    (tff.SequenceType(np.float32), None, TypeError),
    (tff.TensorType(np.float32, [3]), tff.TensorType(np.float32, [2]), TypeError),
    (tff.TensorType(np.float32, [3]), tff.TensorType(np.bool_), TypeError),
])
def test_invalid_create(value_type, weight_type, error):
  with pytest.raises(error):
    tff_residual.ResidualReweightingFactory().create(value_type, weight_type)


@pytest.mark.slow
def test_composes_with_tff_clipping(tff_runtime):
  # clipping(residual): clients are clipped to norm 1 first, then reweighted.
  factory = tff.aggregators.clipping_factory(1.0, tff_residual.ResidualReweightingFactory())
  process = factory.create(tff.TensorType(np.float32, [2]), tff.TensorType(np.float32))
  values = [np.array([3.0, 0.0], np.float32), np.array([0.0, 3.0], np.float32),
            np.array([2.0, 2.0], np.float32), np.array([0.3, 0.4], np.float32)]
  output = process.next(process.initialize(), values, [1.0] * 4)
  clipped = [v * min(1.0, 1.0 / np.linalg.norm(v)) for v in values]
  want, _ = tff_residual.aggregate(clipped, "residual")
  unclipped, _ = tff_residual.aggregate(values, "residual")
  np.testing.assert_allclose(output.result, want, rtol=1e-5, atol=1e-7)
  assert not np.allclose(want, unclipped, atol=1e-3)
  assert output.measurements["clipped_count"] == 3


def tiny_model_fn():
  keras_model = tf.keras.Sequential([
      tf.keras.layers.InputLayer(input_shape=(4,)),
      tf.keras.layers.Dense(3, kernel_initializer="zeros"),
      tf.keras.layers.Dense(2, kernel_initializer="zeros"),
  ])
  return tff.learning.models.from_keras_model(
      keras_model, loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      input_spec=(tf.TensorSpec([None, 4], tf.float32), tf.TensorSpec([None], tf.int32)),
      metrics=[tf.keras.metrics.SparseCategoricalAccuracy()])


def seeded_model_fn():
  """A small MLP whose every layer trains (a zero-initialised one trains its last bias only)."""
  keras_model = tf.keras.Sequential([
      tf.keras.layers.InputLayer(input_shape=(4,)),
      tf.keras.layers.Dense(3, activation="tanh",
                            kernel_initializer=tf.keras.initializers.GlorotUniform(seed=1)),
      tf.keras.layers.Dense(2, kernel_initializer=tf.keras.initializers.GlorotUniform(seed=2)),
  ])
  return tff.learning.models.from_keras_model(
      keras_model, loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      input_spec=(tf.TensorSpec([None, 4], tf.float32), tf.TensorSpec([None], tf.int32)))


def client_datasets(num_clients, seed):
  rng = np.random.default_rng(seed)
  datasets = []
  for _ in range(num_clients):
    x = rng.normal(size=(16, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    datasets.append(tf.data.Dataset.from_tensor_slices((x, y)).batch(8))
  return datasets


@pytest.mark.parametrize("factory_name", ["median", "residual"])
@pytest.mark.slow
def test_three_rounds_of_weighted_fed_avg(tff_runtime, factory_name):
  """A coordinatewise and a model-level rule in build_weighted_fed_avg, round by round
  against the eager API on the same client updates (FoolsGold, with its history by
  client id: test_baselines_at_their_best; every name in TFF: test_byzantine_methods).

  Each client's update comes from a one-client FedAvg round from the same model
  (TFF's ``MeanFactory`` of one update is that update); the server's SGD step of
  rate 1 makes the next model ``w - aggregate(w - trained_k)``."""
  optimizer = lambda: tff.learning.optimizers.build_sgdm(learning_rate=0.5)  # noqa: E731
  process = tff.learning.algorithms.build_weighted_fed_avg(
      seeded_model_fn, client_optimizer_fn=optimizer(),
      model_aggregator=FACTORIES[factory_name]())
  one_client = tff.learning.algorithms.build_weighted_fed_avg(
      seeded_model_fn, client_optimizer_fn=optimizer(),
      model_aggregator=tff.aggregators.MeanFactory())
  single_state = one_client.initialize()
  state = process.initialize()
  data = client_datasets(5, seed=42)
  # Client 4 sends a far, wrong update (inputs x 20, labels flipped): the robust rules
  # and the mean part ways.
  data[4] = data[4].map(lambda x, y: (20.0 * x, 1 - y))
  initial = process.get_model_weights(state).trainable
  for _ in range(3):
    weights = process.get_model_weights(state)
    updates = []
    for dataset in data:
      single_state = one_client.set_model_weights(single_state, weights)
      trained = one_client.get_model_weights(one_client.next(single_state, [dataset]).state)
      updates.append([w - t for w, t in zip(weights.trainable, trained.trainable)])
    want_update, want = tff_residual.aggregate(updates, factory_name)
    output = process.next(state, data)
    state = output.state
    measurements = output.metrics["aggregator"]
    np.testing.assert_allclose(measurements["client_weights"], want["client_weights"],
                               atol=1e-5)
    moved = process.get_model_weights(state).trainable
    for w, m, u in zip(weights.trainable, moved, want_update):
      np.testing.assert_allclose(m, w - u, atol=1e-5)
    mean_update = [np.mean([update[t] for update in updates], axis=0)
                   for t in range(len(want_update))]
    assert max(np.abs(u - m).max() for u, m in zip(want_update, mean_update)) > 1e-2
  final = process.get_model_weights(state).trainable
  assert all(np.all(np.isfinite(w)) for w in final)
  assert any(np.abs(a - b).max() > 1e-4 for a, b in zip(initial, final))


@pytest.mark.slow
def test_unweighted_fed_avg(tff_runtime):
  process = tff.learning.algorithms.build_unweighted_fed_avg(
      tiny_model_fn,
      client_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=0.5),
      model_aggregator=tff_residual.ResidualReweightingFactory())
  state = process.initialize()
  output = process.next(state, client_datasets(4, seed=1))
  assert output.metrics["aggregator"]["client_weights"].shape == (4,)


@pytest.mark.parametrize("factory_name", ["residual", "median", "foolsgold"])
@pytest.mark.slow
def test_unsorted_ordered_dict_keys_keep_their_tensors(tff_runtime, factory_name):
  """A model OrderedDict(w=..., b=...) flattens w, b in its TFF type but b, w under
  tf.nest (it sorts every dict's keys); the gather must follow the type, or each
  tensor gets another's coordinates (it did before the fix)."""
  rng = np.random.default_rng(8)
  x = rng.normal(size=(7, 40)).astype(np.float32)
  value_type = collections.OrderedDict(w=tff.TensorType(np.float32, [5, 6]),
                                       b=tff.TensorType(np.float32, [10]))
  values = [collections.OrderedDict(w=row[:30].reshape(5, 6), b=row[30:]) for row in x]
  process = FACTORIES[factory_name]().create(value_type, tff.TensorType(np.float32))
  output = process.next(process.initialize(), values, [1.0] * 7)
  want, _ = tff_residual.aggregate([dict(v) for v in values], factory_name,
                                   **({"feature_index": None} if factory_name == "foolsgold"
                                      else {}))
  if factory_name == "foolsgold":  # feature_index -2 names a tensor: compare with all tensors
    process = tff_residual.FoolsGoldFactory(feature_index=None).create(
        value_type, tff.TensorType(np.float32))
    output = process.next(process.initialize(), values, [1.0] * 7)
  for key in ("w", "b"):
    np.testing.assert_allclose(output.result[key], want[key], atol=1e-5)
