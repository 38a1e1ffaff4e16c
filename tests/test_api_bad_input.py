"""Bad input: clear errors naming the problem; broken clients never crash or poison."""

import numpy as np
import pytest

import tff_residual
from method_params import params_for, every_method


@pytest.mark.parametrize("method", every_method())
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_client_is_dropped_and_does_not_poison(method, bad):
  rng = np.random.default_rng(30)
  clients = [{"w": rng.normal(size=(4, 3)), "b": rng.normal(size=3)} for _ in range(8)]
  params = params_for(method, 7)
  clean, _ = tff_residual.aggregate(clients[:5] + clients[6:], method, **params)
  clients[5]["b"][1] = bad
  agg, info = tff_residual.aggregate(clients, method, **params)
  assert info["num_dropped_clients"] == 1
  assert info["client_weights"][5] == 0 and info["corrected_fraction"][5] == 0
  np.testing.assert_allclose(info["client_weights"].sum(), 1.0, atol=1e-6)
  np.testing.assert_allclose(agg["w"], clean["w"], atol=1e-12)
  np.testing.assert_allclose(agg["b"], clean["b"], atol=1e-12)


@pytest.mark.parametrize("method", every_method())
def test_every_client_dropped_gives_zeros(method):
  clients = [np.array([np.nan, 1.0]), np.array([2.0, np.inf])]
  agg, info = tff_residual.aggregate(clients, method, **params_for(method, 0))
  np.testing.assert_array_equal(agg, [0.0, 0.0])
  np.testing.assert_array_equal(info["client_weights"], [0.0, 0.0])
  assert info["num_dropped_clients"] == 2


def test_inputs_are_not_mutated():
  rng = np.random.default_rng(31)
  clients = [rng.normal(size=50) for _ in range(10)]
  clients[0] *= 1000
  before = [c.copy() for c in clients]
  tff_residual.aggregate(clients, "residual")
  for a, b in zip(clients, before):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("call,error,match", [
    (lambda: tff_residual.aggregate([], "residual"), ValueError, "empty"),
    (lambda: tff_residual.aggregate(np.zeros(3), "residual"), TypeError, "list"),
    (lambda: tff_residual.aggregate([np.zeros(2)], "kum"), ValueError, "Unknown method='kum'"),
    (lambda: tff_residual.aggregate([np.zeros(2)], "krum"), TypeError, "num_byzantine"),
    (lambda: tff_residual.aggregate([np.zeros(2)] * 6, "krum", num_byzantine=2), ValueError,
     "krum needs K >= 2f \\+ 3 = 7 clients for num_byzantine f = 2; got K = 6"),
    (lambda: tff_residual.aggregate([np.zeros(2)] * 9, "bulyan", num_byzantine=2), ValueError,
     "bulyan needs K >= 4f \\+ 3 = 11 clients for num_byzantine f = 2; got K = 9"),
    (lambda: tff_residual.aggregate([np.zeros(2)] * 3, "nnm+median", num_byzantine=3),
     ValueError, "nnm needs K >= f \\+ 1 = 4"),
    (lambda: tff_residual.aggregate([np.zeros(2)] * 9, "multi_krum", num_byzantine=1,
                                    num_selected=10), ValueError, "num_selected = 10"),
    (lambda: tff_residual.aggregate([np.zeros(2)], "krum", num_byzantine=-1), ValueError,
     "num_byzantine must be an integer >= 0"),
    (lambda: tff_residual.aggregate([np.zeros(2)], "geometric_median", nu=0), ValueError, "nu"),
    (lambda: tff_residual.aggregate([np.zeros(2)], "centered_clipping", tau=-1.0), ValueError,
     "tau"),
    (lambda: tff_residual.aggregate([np.zeros(2)], "nnm+nnm+median", num_byzantine=0),
     ValueError, "once"),
    (lambda: tff_residual.aggregate([np.zeros(2)], "residual_paper", variant="reference"),
     ValueError, "fixes"),
    (lambda: tff_residual.aggregate([np.zeros(2)], "median", center=np.zeros(2)), ValueError,
     "center"),
    (lambda: tff_residual.aggregate([np.zeros(2)], "residual", variant="v2"), ValueError, "variant"),
    (lambda: tff_residual.aggregate([np.zeros(2)], "residual", estimator="ols"), ValueError,
     "estimator"),
    (lambda: tff_residual.aggregate([np.zeros(2)], "residual", weighting="tukey"), ValueError,
     "weighting"),
    (lambda: tff_residual.aggregate([np.zeros(2)], "residual", lambda_=0), ValueError, "lambda_"),
    (lambda: tff_residual.aggregate([np.zeros(2)], "residual", lambda_=float("nan")), ValueError,
     "lambda_"),
    (lambda: tff_residual.aggregate([np.zeros(2)], "residual", delta=1.5), ValueError, "delta"),
    (lambda: tff_residual.aggregate([np.zeros(2)], "residual", gamma=-1.0), ValueError, "gamma"),
    (lambda: tff_residual.aggregate([np.zeros(2)], "residual", chunk_size=0), ValueError,
     "chunk_size"),
    (lambda: tff_residual.aggregate([np.zeros(2)], "residual", sample_weighting="sum"),
     ValueError, "sample_weighting"),
    (lambda: tff_residual.aggregate([np.zeros(2)], "trimmed_mean", beta=0.5), ValueError, "beta"),
    (lambda: tff_residual.aggregate([np.zeros(2)], "median", beta=0.1), TypeError, "beta"),
    (lambda: tff_residual.aggregate([np.zeros(2)], "foolsgold", normalize="x"), ValueError,
     "normalize"),
    (lambda: tff_residual.aggregate([[np.zeros(2)] * 2] * 3, "foolsgold", feature_index=5), ValueError,
     "feature_index"),
    (lambda: tff_residual.aggregate([np.zeros(2)], "repeated_median", variant="x"), ValueError,
     "variant"),
    (lambda: tff_residual.aggregate([np.zeros(2), np.zeros(3)]), ValueError, "shape"),
    (lambda: tff_residual.aggregate([np.zeros(2), np.zeros(2, np.float32)]), TypeError, "dtype"),
    (lambda: tff_residual.aggregate([np.zeros(2, np.int32)] * 2), TypeError, "float"),
    (lambda: tff_residual.aggregate([{"a": np.zeros(2)}, {"b": np.zeros(2)}]), ValueError,
     "client 1 has a different structure"),
    (lambda: tff_residual.aggregate([[np.zeros(2)], [np.zeros(2), np.zeros(2)]]), ValueError,
     "structure"),
    (lambda: tff_residual.aggregate([np.zeros(2)] * 2, sample_weights=[1.0]), ValueError,
     "sample_weights"),
])
def test_bad_input_raises_clear_error(call, error, match):
  with pytest.raises(error, match=match):
    call()


def test_negative_or_nan_sample_weight_drops_client_when_multiplied():
  clients = [np.array([1.0]), np.array([2.0]), np.array([3.0])]
  agg, info = tff_residual.aggregate(clients, "mean", sample_weights=[1.0, -1.0, np.nan],
                                     sample_weighting="multiply")
  assert info["num_dropped_clients"] == 2
  np.testing.assert_allclose(agg, [1.0])


@pytest.mark.parametrize("method", every_method())
def test_zero_size_leaf_is_kept_empty(method):
  clients = [{"empty": np.zeros((0, 3)), "w": np.full(3, float(k))} for k in range(5)]
  agg, info = tff_residual.aggregate(clients, method, **params_for(method, 5))
  assert agg["empty"].shape == (0, 3)
  # Krum scores, hand-computed (f = 1, 2 neighbours): 15, 6, 6, 6, 15.
  if method == "krum":  # the tie goes to the lower index: client 1
    np.testing.assert_allclose(agg["w"], np.full(3, 1.0))
  elif method == "multi_krum":  # clients 1, 2, 3 and 0 (the tie 0 / 4 to the lower index)
    np.testing.assert_allclose(agg["w"], np.full(3, 1.5))
  elif method == "foolsgold":  # identical directions: wv uniform, aggregate = sum(u) / K
    np.testing.assert_allclose(agg["w"], np.full(3, 2.0), atol=1e-9)
  else:
    np.testing.assert_allclose(agg["w"], np.full(3, 2.0))
  np.testing.assert_allclose(info["client_weights"].sum(), 1.0, atol=1e-6)


def test_the_public_names_are_visible_to_dir():
  """The exports load lazily; dir() (tab completion in a notebook) still lists them."""
  names = dir(tff_residual)
  assert set(tff_residual.__all__) <= set(names)
  assert {"ResidualReweightingFactory", "aggregate", "build_factory"} <= set(names)
  assert callable(tff_residual.aggregate)


def test_importing_the_cli_changes_nothing_in_the_process():
  """Only the program entry (tff_residual.entry: run.py, tff-residual-run, the scripts)
  quiets TensorFlow's start-up; ``import tff_residual.cli`` sets no variable, and
  TensorFlow's start-up lines reach stderr as they would without it."""
  import os
  import subprocess
  import sys
  code = "import os; import tff_residual.cli; print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'))"
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=300)
  assert out.stdout.split() == ["1"], out.stderr[-2000:]   # TensorFlow 2.14's own, not our 2
  code = ("import os; import tff_residual.entry as e; e.quiet_tensorflow(); "
          "print(os.environ['TF_CPP_MIN_LOG_LEVEL'])")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=300)
  assert out.stdout.split() == ["2"] and "cuda" not in out.stderr.lower(), out.stderr[-2000:]
