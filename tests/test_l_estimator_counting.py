"""The median and trimmed mean by counted ranks (XLA) against sorting."""

import numpy as np
import pytest
import tensorflow as tf

from tff_residual.kernels import l_estimator
from tff_residual.kernels import method_table


def _models(num_clients, seed):
  rng = np.random.default_rng(seed)
  tied = np.round(rng.normal(size=(num_clients, 300)), 1).astype(np.float32)  # many ties
  tied[:, :4] = 0.5  # every client equal
  scalar = rng.normal(size=(num_clients, 1)).astype(np.float32)
  empty = np.zeros((num_clients, 0), np.float32)
  return [tied, scalar, empty]


def _assert_same(got, expected):
  for a, b in zip(got.aggregate, expected.aggregate):
    assert a.shape == b.shape
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(got.client_weights.numpy(), expected.client_weights.numpy(),
                             rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(got.corrected_fraction.numpy(),
                             expected.corrected_fraction.numpy(), rtol=1e-6, atol=1e-7)


# Both sides of COUNTING_MAX_CLIENTS, odd and even K.
@pytest.mark.parametrize("num_clients", [1, 2, 11, 17, l_estimator.COUNTING_MAX_CLIENTS,
                                         l_estimator.COUNTING_MAX_CLIENTS + 1])
@pytest.mark.parametrize("method,params", [("median", {}), ("trimmed_mean", {"beta": 0.1})])
@pytest.mark.parametrize("sample_weighting,chunk_size", [("ignore", None), ("multiply", 7)])
@pytest.mark.slow
def test_counting_equals_sorting(num_clients, method, params, sample_weighting, chunk_size):
  values = _models(num_clients, num_clients)
  sample_weights = tf.constant(np.arange(num_clients) % 3, tf.float32)  # some zero
  expected = method_table.build_kernel(method, implementation="sort",
                                   sample_weighting=sample_weighting, **params)(values,
                                                                                sample_weights)
  got = method_table.build_kernel(method, sample_weighting=sample_weighting,
                              chunk_size=chunk_size, **params)(values, sample_weights)
  _assert_same(got, expected)


def test_counting_median_is_numpys_median():
  values = _models(10, 0)
  got = method_table.build_kernel("median")(values, None)
  for a, v in zip(got.aggregate, values):
    np.testing.assert_array_equal(a.numpy(), np.median(v, axis=0))


@pytest.fixture(scope="module")
def unknown_k_trimmed_mean():
  """The trimmed mean in one graph with an unknown client axis, traced once."""
  return tf.function(lambda v: method_table.build_kernel("trimmed_mean")([v], None).aggregate[0],
                     input_signature=[tf.TensorSpec([None, None], tf.float32)])


@pytest.mark.parametrize("num_clients", [4, 11, 40])
def test_dynamic_client_axis_compiles_per_k_and_agrees(unknown_k_trimmed_mean, num_clients):
  """TFF's stacks have an unknown K: one graph, XLA compiles per K at run time."""
  values = _models(num_clients, 5)[0]
  expected = method_table.build_kernel("trimmed_mean", implementation="sort")([values], None)
  np.testing.assert_allclose(unknown_k_trimmed_mean(values).numpy(),
                             expected.aggregate[0].numpy(), rtol=1e-6, atol=1e-6)


def test_unknown_implementation_is_rejected():
  with pytest.raises(ValueError, match="implementation"):
    method_table.build_kernel("median", implementation="network")
