"""--aggregation=in_process: the factory's server step run eagerly in Python
equals the factory's process in TFF's worker, call by call and run by run."""

import collections

import numpy as np
import pytest
import tensorflow_federated as tff

from test_multi_worker import (OUTLIER, SETTINGS, SMOKE, VALUE_TYPE, assert_same_metrics,
                               method_names)
from test_byzantine_methods import honest_and_outliers, split
from tff_residual.simulation.in_process import InProcessAggregation, InProcessFactory


NUM_CLIENTS = 8  # 7 after the third round drops one: Bulyan's 4f + 3 with f = 1


def three_rounds(process, weights):
  x = honest_and_outliers(num_clients=NUM_CLIENTS, outliers=(OUTLIER,)).astype(np.float32)
  state, outputs = process.initialize(), []
  for step in range(3):  # the later rounds see the earlier ones' state (centered clipping)
    values = [collections.OrderedDict(v) for v in split(x + 0.5 * step)]
    if step == 2:
      values[1]["b"][0] = np.nan  # a dropped client
    output = process.next(state, values, weights)
    state = output.state
    outputs.append(output)
  return outputs


UNWEIGHTED = ("residual", "centered_clipping")
"""The unweighted create() too, for a stateless and the stateful method (every name is
weighted above; TFF's MeanFactory is weighted only)."""
CASES = [(name, True) for name in method_names()] + [(name, False) for name in UNWEIGHTED]


@pytest.mark.parametrize("name,weighted", CASES,
                         ids=[f"{n}-{'weighted' if w else 'unweighted'}" for n, w in CASES])
@pytest.mark.slow
def test_in_process_equals_the_factory_in_tff(tff_runtime, name, weighted):
  from tff_residual.simulation import compared_aggregators as table
  factory = table.build_factory(name, SETTINGS)
  value_type = tff.types.to_type(VALUE_TYPE)
  weights = list(np.arange(1, NUM_CLIENTS + 1, dtype=np.float32)) if weighted else None
  if weighted:
    tff_process = factory.create(value_type, tff.TensorType(np.float32))
  else:
    tff_process = factory.create(value_type)
  eager = InProcessFactory(factory).create(value_type,
                                           tff.TensorType(np.float32) if weighted else None)
  in_tff = three_rounds(tff_process, weights) if weighted else _unweighted(tff_process)
  in_python = three_rounds(eager, weights)
  for got, want in zip(in_python, in_tff):
    for leaf, (key, want_leaf) in zip(got.result, want.result.items()):
      np.testing.assert_allclose(leaf, want_leaf, rtol=1e-6, atol=1e-6, err_msg=key)
    if name == "fedavg":
      continue  # MeanFactory's measurements are its inner sums' (empty)
    assert list(got.measurements) == list(want.measurements)
    for key, value in want.measurements.items():
      np.testing.assert_allclose(got.measurements[key], value, rtol=1e-6, atol=1e-6,
                                 err_msg=key)


def _unweighted(process):
  class Unweighted:  # three_rounds passes weights; an unweighted process takes none
    def initialize(self):
      return process.initialize()

    def next(self, state, values, weights):
      return process.next(state, values)
  return three_rounds(Unweighted(), None)


def test_other_factories_are_a_clear_error():
  with pytest.raises(TypeError, match="not UnweightedMeanFactory"):
    InProcessAggregation(tff.aggregators.UnweightedMeanFactory(), tff.types.to_type(VALUE_TYPE))


@pytest.mark.usefixtures("fashion_mnist")
@pytest.mark.slow
def test_an_in_process_run_writes_the_metrics_of_a_tff_run(tmp_path):
  from tff_residual import cli
  for mode in ("tff", "in_process"):
    assert cli.main([*SMOKE, f"--aggregation={mode}", f"--output_dir={tmp_path / mode}"]) == 0
  assert_same_metrics(tmp_path / "tff", tmp_path / "in_process")
