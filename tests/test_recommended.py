"""The recommended default, ``method="recommended"``: ARC, NNM, then the trimmed mean,
each told f (the trimmed mean drops f values per side, ``num_trimmed``), as the
verdict grid ran it; the rule ``grid_statistics.recommended_rule`` picks from a grid;
``results.py --check`` fails where the name and the archived grid disagree."""

import os

import numpy as np
import pytest
import tensorflow_federated as tff

import tff_residual
from test_baselines_at_their_best import clients_with_outliers, oracle_arc, rows
from test_byzantine_methods import oracle_nnm
from test_experiments_cli import load_results_script
from tff_residual.kernels import method_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def trimmed_by_count(x, t):
  """Per coordinate: drop the t smallest and t largest values, average the rest."""
  s = np.sort(x, axis=0)
  return s[t:len(x) - t].mean(axis=0)


def test_recommended_is_arc_nnm_then_a_mean_trimmed_f_per_side():
  x = clients_with_outliers(num_clients=10, scaled=(2, 5, 9), factor=6.0)
  agg, info = tff_residual.aggregate(rows(x), "recommended", num_byzantine=3)
  y, _ = oracle_arc(x, 3)
  np.testing.assert_allclose(agg, trimmed_by_count(oracle_nnm(y, 3), 3), rtol=1e-6)
  assert info["arc_clip_factors"].shape == (10,)
  # beta's default (0.2 of 10 = 2 per side) gives another number: the tie to f matters.
  default, _ = tff_residual.aggregate(rows(x), "arc+nnm+trimmed_mean", num_byzantine=3)
  assert np.max(np.abs(default - agg)) > 1e-4


def test_recommended_equals_the_grids_configuration_bit_for_bit():
  """The grid ran arc+nnm+trimmed_mean with beta = (f + 1/2) / K on K = 11 clients."""
  x = clients_with_outliers(num_clients=11, scaled=(0, 3, 4, 8), factor=9.0).astype(np.float32)
  agg, info = tff_residual.aggregate(rows(x), "recommended", num_byzantine=4)
  grid, grid_info = tff_residual.aggregate(rows(x), "arc+nnm+trimmed_mean", num_byzantine=4,
                                           beta=4.5 / 11)
  np.testing.assert_array_equal(agg, grid)
  np.testing.assert_array_equal(info["client_weights"], grid_info["client_weights"])


def test_recommended_in_tff_equals_the_eager_api(tff_runtime):
  x = clients_with_outliers(num_clients=7, size=9, scaled=(1, 4)).astype(np.float32)
  process = tff_residual.build_factory("recommended", num_byzantine=2).create(
      tff.TensorType(np.float32, [9]), tff.TensorType(np.float32))
  output = process.next(process.initialize(), rows(x), [1.0] * 7)
  want, info = tff_residual.aggregate(rows(x), "recommended", num_byzantine=2)
  np.testing.assert_allclose(output.result, want, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(output.measurements["client_weights"], info["client_weights"],
                             atol=1e-7)


@pytest.mark.parametrize("params,error,message", [
    ({}, TypeError, "'recommended' (arc+nnm+trimmed_mean) needs the parameter(s) "
                    "['num_byzantine']"),
    ({"num_byzantine": 2, "num_trimmed": 1}, TypeError,
     "'recommended' sets ['num_trimmed'] from ['num_byzantine']"),
    ({"num_byzantine": 2, "beta": 0.1}, TypeError, "Unknown parameter(s) ['beta'] for "
                                                   "'recommended'"),
])
def test_recommended_refuses_what_it_would_ignore_or_lacks(params, error, message):
  with pytest.raises(error) as raised:
    method_table.resolve("recommended", **params)
  assert message in str(raised.value)


@pytest.mark.parametrize("name", [["recommended"], None, 3])
def test_a_name_that_is_no_string_is_a_clear_error(name):
  with pytest.raises(ValueError, match="Unknown method="):
    method_table.resolve(name, num_byzantine=1)


def test_recommended_cannot_be_wrapped_and_is_listed():
  with pytest.raises(ValueError, match="Unknown method='nnm\\+recommended'"):
    method_table.resolve("nnm+recommended", num_byzantine=1)
  assert "recommended" in method_table.table()
  assert "beta" not in method_table.fields_of("recommended")
  assert "num_byzantine" in method_table.fields_of("recommended")


def test_trimmed_mean_num_trimmed_drops_t_per_side_and_needs_2t_plus_1_clients():
  x = np.arange(35, dtype=np.float32).reshape(7, 5) ** 1.5
  agg, info = tff_residual.aggregate(rows(x), "trimmed_mean", num_trimmed=2)
  np.testing.assert_allclose(agg, trimmed_by_count(x, 2), rtol=1e-6)
  np.testing.assert_allclose(info["client_weights"], [0, 0, 1 / 3, 1 / 3, 1 / 3, 0, 0],
                             atol=1e-7)
  with pytest.raises(ValueError, match="trimmed_mean needs K >= 2t \\+ 1 = 5 clients for "
                                       "num_trimmed t = 2; got K = 4"):
    tff_residual.aggregate(rows(x[:4]), "trimmed_mean", num_trimmed=2)
  with pytest.raises(ValueError, match="num_trimmed=2 replaces beta"):
    tff_residual.aggregate(rows(x), "trimmed_mean", num_trimmed=2, beta=0.3)
  with pytest.raises(ValueError, match="num_trimmed must be an integer >= 0"):
    tff_residual.aggregate(rows(x), "trimmed_mean", num_trimmed=-1)


def grid_row(dataset, attack, f, aggregator, seed, accuracy, drop, excess=""):
  return dict(dataset=dataset, attack=attack, num_attackers=str(f), aggregator=aggregator,
              seed=str(seed), accuracy=str(accuracy), accuracy_drop=str(drop),
              excess_attack_success_rate=str(excess))


def test_the_recommended_rule_has_the_best_worst_case_over_every_ranked_column():
  """Hand-made grid: "a" has the best worst case but skipped a ranked column (out); "b"
  and "c" tie on the lowest worst case (0.6), "b" wins on the sum; the "sign_flip"
  column does not hurt FedAvg, so "c"'s 0.1 there does not count."""
  stats = load_results_script().grid_statistics
  rows = []
  for seed in (0, 1):
    rows += [grid_row("d1", "ipm", 2, "fedavg", seed, 0.1, 0.6),
             grid_row("d1", "ipm", 2, "a", seed, 0.9, 0.0),
             grid_row("d1", "ipm", 2, "b", seed, 0.6, 0.1),
             grid_row("d1", "ipm", 2, "c", seed, 0.6, 0.1),
             grid_row("d1", "sign_flip", 2, "fedavg", seed, 0.7, 0.01),
             grid_row("d1", "sign_flip", 2, "c", seed, 0.1, 0.6),
             grid_row("d1", "sign_flip", 2, "b", seed, 0.7, 0.0),
             grid_row("d2", "backdoor", 4, "fedavg", seed, 0.8, 0.0, 0.9),
             grid_row("d2", "backdoor", 4, "b", seed, 0.85, 0.0, 0.1 + seed * 0.2),
             grid_row("d2", "backdoor", 4, "c", seed, 0.7, 0.0, 0.0)]
  assert stats.recommended_rule(rows) == "b"
  text = stats.recommendation_text(rows)
  assert "(d1: 1 columns, d2: 1 columns): **b**" in text
  assert "b (d1 60.0%, d2 85.0% / +20.0 excess); c (d1 60.0%, d2 70.0% / +0.0 excess)" in text
  assert "Not ranked (did not run every ranked column): a." in text
  # seed by seed, b's and c's worst cases are both 0.6 (d1's ipm column)
  assert "against c's: Δ +0.0 ± 0.0 points, the sign holding on 2 of 2 seeds" in text
  assert stats.seed_worst_cases(rows, "c") == {0: 0.6, 1: 0.6}
  assert stats.recommended_rule([r for r in rows if r["aggregator"] != "b"]) == "c"


def test_results_check_fails_where_recommended_names_another_rule(capsys, monkeypatch):
  monkeypatch.chdir(ROOT)
  results = load_results_script()
  assert results.check_recommended("results") is True
  assert "method='recommended' is arc+nnm+trimmed_mean" in capsys.readouterr().out
  alias = method_table.ALIASES["recommended"]
  monkeypatch.setitem(method_table.ALIASES, "recommended",
                      method_table.Alias(alias.name, "nnm+residual", {}, alias.description))
  assert results.check_recommended("results") is False
  assert "THEY DIFFER" in capsys.readouterr().out


def test_readme_names_the_recommended_rule():
  text = open(os.path.join(ROOT, "README.md")).read()
  assert 'build_factory("recommended", num_byzantine=' in text
  assert method_table.ALIASES["recommended"].target in text
