"""The experiments' aggregator table: each name reaches the kernel options it
stands for (the paper's Table 7 variants), through TFF and the eager API alike."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff

import tff_residual
from tff_residual.simulation.compared_aggregators import AGGREGATORS, AggregatorSettings, build_factory


def run_settings(**params):
  """A run's aggregator settings: these flags set, 2 attackers, 10 clients per round."""
  return AggregatorSettings(params=params, num_attackers=2, participants_per_round=10)


SETTINGS = run_settings(lambda_=2.5, delta=0.05, beta=0.2)

TABLE_7 = {
    "residual_theil_sen": dict(estimator="theil_sen", weighting="huber"),
    "residual_median_line": dict(estimator="median", weighting="huber"),
    "residual_gaussian": dict(estimator="repeated_median", weighting="gaussian"),
}


def client_values(num_clients=9, size=40, seed=3):
  """Honest values around a common signal, client 2 shifted far off, client 6 a little."""
  rng = np.random.default_rng(seed)
  signal = rng.normal(size=size)
  values = [(signal + 0.3 * rng.normal(size=size)).astype(np.float32) for _ in range(num_clients)]
  values[2] = values[2] + 5.0
  values[6] = values[6] + 0.8
  return values


@pytest.mark.parametrize("name", sorted(TABLE_7))
def test_table_7_name_in_tff_equals_eager_api_with_its_options(tff_runtime, name):
  factory = build_factory(name, SETTINGS)
  assert factory.method == "residual"
  for key, value in dict(TABLE_7[name], lambda_=2.5, delta=0.05, variant="reference").items():
    assert getattr(factory.config, key) == value, key
  values = client_values()
  process = factory.create(tff.TensorType(np.float32, [40]), tff.TensorType(np.float32))
  output = process.next(process.initialize(), values, [1.0] * len(values))
  # The oracle names the options itself, so a wrong mapping in the table fails here.
  want, info = tff_residual.aggregate(values, "residual", lambda_=2.5, delta=0.05,
                                      **TABLE_7[name])
  np.testing.assert_allclose(output.result, want, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(output.measurements["client_weights"], info["client_weights"],
                             atol=1e-7)
  # The option changes the numbers: the default residual's weights differ.
  _, default = tff_residual.aggregate(values, "residual", lambda_=2.5, delta=0.05)
  assert np.max(np.abs(default["client_weights"] - info["client_weights"])) > 1e-3
  assert info["client_weights"][2] < 0.5 / len(values)  # the far client is still cut


def test_every_name_builds_a_factory_of_its_method():
  names = [n for n in AGGREGATORS if "NAME" not in n] + ["nnm+residual", "nnm+krum"]
  methods = {name: getattr(build_factory(name, SETTINGS), "method", "mean") for name in names}
  assert methods["fedavg"] == "mean" and isinstance(build_factory("fedavg", SETTINGS),
                                                    tff.aggregators.MeanFactory)
  assert {n for n, m in methods.items() if m == "residual"} == {
      "residual", "residual_paper", *TABLE_7}
  assert build_factory("residual_paper", SETTINGS).params["variant"] == "paper"
  assert build_factory("trimmed_mean", SETTINGS).params["beta"] == 0.2
  # A flag reaches every method that has the field, and only those.
  assert build_factory("median", SETTINGS).params == {}
  assert methods["nnm+residual"] == "nnm+residual" and methods["krum"] == "krum"
  # Without --num_byzantine, f is the attackers a round can hold.
  assert build_factory("krum", SETTINGS).config.num_byzantine == 2
  assert build_factory("bulyan", run_settings(num_byzantine=1)).config.num_byzantine == 1
  mixed = build_factory("nnm+krum", run_settings(num_byzantine=1))
  assert mixed.config.num_byzantine == 1 and mixed.inner.config.num_byzantine == 1


def test_gaussian_weighting_uses_lambda_as_its_standard_deviation():
  """exp(-e^2 / (2 sigma^2)): a larger --lambda_ cuts the off client less."""
  values = client_values()
  weights = []
  for sigma in (1.0, 4.0):
    factory = build_factory("residual_gaussian", run_settings(lambda_=sigma, delta=0.0))
    kernel_output = factory.kernel([tf.constant(np.stack(values))], None)
    weights.append(float(kernel_output.client_weights[6]))
  assert weights[0] < weights[1]


def test_readme_holds_the_methods_table_of_the_registry():
  import os
  import sys
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  sys.path.insert(0, os.path.join(root, "scripts"))
  import methods_table
  with open(os.path.join(root, "README.md")) as f:
    assert methods_table.table() in f.read()
