"""The omniscient model-poisoning attacks (ALIE, IPM, sign flip, Min-Max,
Min-Sum, the adaptive attack on residual reweighting), the large-value attack
and the detection AUC:
exact outputs on hand-made honest updates, the searches' constraints, the AUC
arithmetic, and one CLI smoke run per attack."""

import csv
import json
import math
import os
from statistics import NormalDist

import numpy as np
import pytest

from tff_residual.attacks import omniscient
from tff_residual.attacks.adaptive_residual import AdaptiveResidual
from tff_residual.attacks.alie import ALittleIsEnough, baruch_z
from tff_residual.attacks.base import UpdateContext
from tff_residual.attacks.ipm import InnerProductManipulation
from tff_residual.attacks.large_value import PATTERNS, LargeValue
from tff_residual.attacks.min_max import MinMax
from tff_residual.attacks.min_sum import MinSum
from tff_residual.attacks.attack_table import ATTACKS
from tff_residual.attacks.sign_flip import SignFlip
from tff_residual.simulation.detection import weight_auc
from tff_residual.tasks.presets import MODEL_POISONING_ATTACKS
from tff_residual.tasks.task_table import valid_tasks

HONEST = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 0.0]])  # mu = (3, 2), sigma (ddof 1) = (2, 2)


def as_updates(matrix):
  """Each row as a model of two tensors: a [1] bias and a [1, N - 1] kernel."""
  return [[np.array(row[:1], np.float32), np.array(row[None, 1:], np.float32)] for row in matrix]


def zeros_like_row(size):
  return [np.zeros(1, np.float32), np.zeros((1, size - 1), np.float32)]


def context(honest=HONEST, round_index=0, num_clients=5, num_attackers=2):
  return UpdateContext(round_index, [], as_updates(honest), np.random.default_rng(0),
                       num_clients=num_clients, num_attackers=num_attackers)


def flat(update):
  return np.concatenate([np.ravel(t) for t in update])


def own_update():
  return [np.array([7.0], np.float32), np.array([[-1.0]], np.float32)]


def test_every_model_poisoning_attack_is_registered_and_offered_by_every_family():
  assert set(MODEL_POISONING_ATTACKS) <= set(ATTACKS)
  tasks = set(valid_tasks())
  for task in ("fmnist_alie", "loan_ipm", "cifar10_min_max", "amazon_min_sum",
               "mnist_sign_flip", "loan_adaptive_residual"):
    assert task in tasks


def test_baruch_z_matches_the_papers_formula():
  # K = 10, f = 2: s = floor(6) - 2 = 4, z = Phi^-1(6 / 10)
  assert baruch_z(10, 2) == pytest.approx(NormalDist().inv_cdf(0.6))
  assert baruch_z(10, 2) == pytest.approx(0.2533471, abs=1e-6)
  # K = 50, f = 24: s = 26 - 24 = 2, z = Phi^-1(48 / 50)
  assert baruch_z(50, 24) == pytest.approx(1.7506861, abs=1e-6)
  with pytest.raises(ValueError, match="K = 0"):
    baruch_z(0, 0)


def test_alie_sends_mu_minus_z_sigma_with_its_shapes_and_dtypes():
  attack = ALittleIsEnough(z=1.5)
  poisoned = attack.poison_update(own_update(), context())
  assert [t.shape for t in poisoned] == [(1,), (1, 1)] and poisoned[0].dtype == np.float32
  np.testing.assert_allclose(flat(poisoned), [3 - 1.5 * 2, 2 - 1.5 * 2])
  formula = ALittleIsEnough().poison_update(own_update(), context(num_clients=10, num_attackers=2))
  np.testing.assert_allclose(flat(formula), np.array([3.0, 2.0]) - 0.2533471 * 2, rtol=1e-6)


def test_ipm_and_sign_flip():
  np.testing.assert_allclose(
      flat(InnerProductManipulation(0.5).poison_update(own_update(), context())), [-1.5, -1.0])
  np.testing.assert_allclose(flat(SignFlip().poison_update(own_update(), context())), [-7, 1])
  with pytest.raises(ValueError, match="--ipm_epsilon"):
    InnerProductManipulation(0.0)


def test_attackers_of_a_round_share_one_update_and_the_next_round_recomputes():
  attack = InnerProductManipulation(1.0)
  first = attack.poison_update(own_update(), context(round_index=3))
  again = attack.poison_update([np.zeros(1, np.float32), np.zeros((1, 1), np.float32)],
                               context(round_index=3))
  np.testing.assert_array_equal(flat(first), flat(again))
  later = attack.poison_update(own_update(), context(HONEST * 2, round_index=4))
  np.testing.assert_allclose(flat(later), [-6.0, -4.0])
  # no honest update in the round: the attacker's own update goes through
  alone = UpdateContext(5, [], [], np.random.default_rng(0), num_clients=2, num_attackers=2)
  np.testing.assert_array_equal(flat(attack.poison_update(own_update(), alone)), [7, -1])


def test_large_value_sends_the_largest_value_the_rounds_mean_keeps_finite():
  update = [np.array([7.0, 1.0, 2.0], np.float32), np.array([[-1.0, 4.0]], np.float32)]
  for weight in (1.0, 600.0):
    round_ = UpdateContext(0, [], [], np.random.default_rng(0), num_clients=10, weight=weight)
    poisoned = LargeValue().poison_update(update, round_)
    magnitude = np.finfo(np.float32).max / (2 * 10 * weight)
    assert [t.shape for t in poisoned] == [(3,), (1, 2)]
    assert all(t.dtype == np.float32 for t in poisoned)
    np.testing.assert_allclose(flat(poisoned), np.full(5, magnitude), rtol=1e-7)
    # The round's undefended weighted sum stays finite: 10 such values, weight w each.
    total = np.float32(0.0)
    for _ in range(10):
      total = total + np.float32(weight) * poisoned[0][0]
    assert np.isfinite(total)
  wide = LargeValue().poison_update([np.zeros(4)], context(num_clients=4))
  np.testing.assert_allclose(wide[0], np.full(4, np.finfo(np.float64).max / 8))


@pytest.mark.parametrize("pattern", PATTERNS)
def test_large_value_patterns(pattern):
  update = [np.arange(1.0, 4.0, dtype=np.float32), np.array([[5.0, 6.0]], np.float32)]
  poisoned = flat(LargeValue(1e20, pattern).poison_update(update, context()))
  own = flat(update)
  if pattern == "one":
    changed = np.flatnonzero(poisoned != own)
    assert len(changed) == 1 and poisoned[changed[0]] == np.float32(1e20)
  else:
    signs = {"positive": [1] * 5, "negative": [-1] * 5, "alternating": [1, -1, 1, -1, 1]}
    want = signs.get(pattern, np.sign(poisoned))
    np.testing.assert_array_equal(poisoned, np.float32(1e20) * np.asarray(want, np.float32))
    assert set(np.abs(poisoned)) == {np.float32(1e20)}
    if pattern == "random":  # seeded signs of both kinds, not one sign everywhere
      assert set(np.sign(poisoned)) == {-1.0, 1.0}
  again = flat(LargeValue(1e20, pattern).poison_update(update, context()))
  np.testing.assert_array_equal(poisoned, again)  # the same seed, the same update


def test_large_value_settings_are_checked():
  with pytest.raises(ValueError, match="--large_value_pattern"):
    LargeValue(0.0, "up")
  with pytest.raises(ValueError, match="--large_value_magnitude"):
    LargeValue(-1.0)
  capped = LargeValue(1e300).poison_update([np.zeros(2, np.float32)], context())
  assert np.all(np.isfinite(capped[0])) and capped[0][0] == np.finfo(np.float32).max


@pytest.mark.parametrize("kind", omniscient.PERTURBATIONS)
def test_perturbations(kind):
  mu, sigma = np.array([3.0, -4.0]), np.array([2.0, 0.5])
  want = {"unit": [-0.6, 0.8], "std": [-2.0, -0.5], "sign": [-1.0, 1.0]}[kind]
  np.testing.assert_allclose(omniscient.perturbation(kind, mu, sigma), want)


@pytest.mark.parametrize("limit", [3.7, 0.013, 1000.0])
def test_largest_feasible_scale_ends_and_meets_its_constraint(limit):
  calls = []

  def feasible(s):
    calls.append(s)
    return s <= limit

  s = omniscient.largest_feasible_scale(feasible, tolerance=1e-4)
  assert s <= limit and s >= limit * (1 - 2e-4)
  assert len(calls) < 80


def test_largest_feasible_scale_edge_cases():
  assert omniscient.largest_feasible_scale(lambda s: False) == 0.0
  assert omniscient.largest_feasible_scale(lambda s: True, max_doublings=5) == 16.0
  with pytest.raises(ValueError, match="start"):
    omniscient.largest_feasible_scale(lambda s: True, start=0.0)


def random_honest(seed=0, count=8, size=50):
  rng = np.random.default_rng(seed)
  return rng.normal(1.0, 1.0, size)[None, :] + rng.normal(0.0, 0.3, (count, size))


def quadratic_root(a, b, c):
  """The largest root of a s^2 + b s + c = 0."""
  return (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)


@pytest.mark.parametrize("kind", omniscient.PERTURBATIONS)
def test_min_max_gamma_is_the_largest_within_the_honest_spread(kind):
  honest = random_honest()
  attack = MinMax(kind)
  m = flat(attack.poison_update(zeros_like_row(50), context(honest)))
  pairwise = np.sqrt(max(np.sum((a - b) ** 2) for a in honest for b in honest))
  assert np.sqrt(np.sum((m[None] - honest) ** 2, axis=1)).max() <= pairwise * (1 + 1e-6)
  # the exact gamma: the first honest update whose distance reaches the bound
  mu, sigma = omniscient.mean_and_std(honest)
  p = omniscient.perturbation(kind, mu, sigma)
  offsets = mu - honest
  exact = min(quadratic_root(p @ p, 2 * (o @ p), o @ o - pairwise ** 2) for o in offsets)
  assert attack.last_scale == pytest.approx(exact, rel=2e-3) and attack.last_scale <= exact
  np.testing.assert_allclose(m, mu + attack.last_scale * p, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", omniscient.PERTURBATIONS)
def test_min_sum_gamma_is_the_largest_within_the_honest_distance_sums(kind):
  honest = random_honest(1)
  attack = MinSum(kind)
  m = flat(attack.poison_update(zeros_like_row(50), context(honest)))
  sums = [np.sum((honest - x) ** 2) for x in honest]
  assert np.sum((m[None] - honest) ** 2) <= max(sums) * (1 + 1e-6)
  mu, sigma = omniscient.mean_and_std(honest)
  p = omniscient.perturbation(kind, mu, sigma)
  offsets = mu - honest
  h = len(honest)
  exact = quadratic_root(h * (p @ p), 2 * np.sum(offsets @ p), np.sum(offsets ** 2) - max(sums))
  assert attack.last_scale == pytest.approx(exact, rel=2e-3) and attack.last_scale <= exact


def test_adaptive_residual_stays_inside_the_band_and_no_further():
  honest = random_honest(2, count=16, size=40)
  attack = AdaptiveResidual("std", "residual", lambda_=2.0, delta=0.1)
  ctx = context(honest, num_clients=20, num_attackers=4)
  m = flat(attack.poison_update(zeros_like_row(40), ctx))
  s = attack.last_scale
  assert s > 0
  mu, sigma = omniscient.mean_and_std(honest)
  np.testing.assert_allclose(m, mu - s * sigma, rtol=1e-5, atol=1e-6)
  assert attack.feasible(honest, m, 4)                       # not corrected, not cut
  assert not attack.feasible(honest, mu - 1.05 * s * sigma, 4)  # bisection: the edge
  # what it obtains: at least the smallest honest weight, no coordinate corrected
  import tff_residual
  stacked = np.concatenate([honest, np.repeat(m[None], 4, 0)]).astype(np.float32)
  _, info = tff_residual.aggregate(list(stacked), "residual", lambda_=2.0, delta=0.1)
  assert np.all(info["corrected_fraction"][16:] == 0)
  assert info["client_weights"][16:].min() >= info["client_weights"][:16].min()


def test_weight_auc_arithmetic():
  assert weight_auc([0.1, 0.3, 0.3, 0.3], [True, False, False, False]) == 1.0
  assert weight_auc([0.25] * 4, [True, True, False, False]) == 0.5
  assert weight_auc([0.4, 0.2, 0.2, 0.2], [True, False, False, False]) == 0.0
  # pairs (attacker, honest): 0.2 < 0.3 yes; 0.2 < 0.1 no; 0.4 vs both no -> 1/4
  assert weight_auc([0.2, 0.3, 0.4, 0.1], [True, False, True, False]) == 0.25
  assert weight_auc([0.2, 0.2, 0.3], [True, False, False]) == 0.75  # one tie counts half
  assert math.isnan(weight_auc([0.5, 0.5], [False, False]))
  assert math.isnan(weight_auc([float("nan"), 0.5], [True, False]))
  with pytest.raises(ValueError, match="shape"):
    weight_auc([0.5], [True, False])


CLI_SMOKE_ATTACKS = ("alie", "large_value")
"""A searching attack and the one of huge values (IPM tuned against each aggregator runs
in test_literature_attacks.py): the run loop treats every update
attack alike (``Attack.update_poisoning``); each attack's own numbers are tested against
oracles above and in test_attacks.py, and each task of every attack resolves
(test_model_poisoning_tasks_...)."""


@pytest.mark.usefixtures("fashion_mnist")
@pytest.mark.parametrize("attack", CLI_SMOKE_ATTACKS)
@pytest.mark.slow
def test_cli_smoke_run_per_attack(tmp_path, attack):
  from test_experiments_cli import run_cli
  code, out = run_cli(tmp_path, f"--task=fmnist_{attack}", "--preset=smoke",
                      "--aggregator=median,residual", "--clean_baseline=true")
  assert code == 0
  summary = json.load(open(os.path.join(out, "summary.json")))
  assert summary["num_attackers"] == 1  # smoke: 1 of 5 per round
  for name in ("median", "residual"):
    result = summary["results"][name]
    assert result["attack_success_rate"] is None  # untargeted: accuracy is the metric
    assert 0.0 <= result["detection_auc"] <= 1.0
    assert result["window_accuracy_drop"] == pytest.approx(
        result["window_clean_accuracy"] - result["window_accuracy"])
  rows = list(csv.DictReader(open(os.path.join(out, "metrics.csv"))))
  assert {"detection_auc", "attack_scale"} <= set(rows[0])
  searching = attack in ("alie", "min_max", "min_sum", "adaptive_residual")
  attacked = [r for r in rows if int(r["attackers_in_round"]) > 0]
  assert attacked and all((r["attack_scale"] != "") == searching for r in attacked)


def test_model_poisoning_tasks_default_to_two_attackers_of_the_familys_clients():
  from test_experiments_cli import CLI
  for task, clients in (("fmnist_alie", 10), ("loan_ipm", 10), ("amazon_min_max", 10)):
    config, _ = CLI.build_config(task)
    assert (config.num_attackers, config.num_clients) == (2, clients), task
    assert (config.ipm_epsilon, config.perturbation, config.alie_z) == (0.5, "std", None)


def test_bad_attack_settings_are_one_line_errors(tmp_path, capsys):
  from test_experiments_cli import run_cli
  code, _ = run_cli(tmp_path, "--task=fmnist_min_max", "--preset=smoke", "--perturbation=up")
  assert code == 2
  assert "--perturbation must be one of ('unit', 'std', 'sign'), got 'up'" in capsys.readouterr().err
  code, _ = run_cli(tmp_path, "--task=fmnist_ipm", "--preset=smoke", "--ipm_epsilon=-1",
                    name="ipm")
  assert code == 2 and "--ipm_epsilon must be a finite number > 0" in capsys.readouterr().err


@pytest.mark.usefixtures("fashion_mnist")
@pytest.mark.slow
def test_robustness_grid_quick_writes_csv_markdown_and_heatmap(tmp_path):
  from test_experiments_cli import run_cli
  grid = load_grid()
  out = str(tmp_path / "grid")
  argv = ["--quick", "--attacks", "ipm,backdoor", "--aggregators", "fedavg,krum,bulyan"]
  assert grid.main([*argv, "--output_dir", out]) == 0
  rows = list(csv.DictReader(open(os.path.join(out, "grid.csv"))))
  assert [(r["attack"], r["aggregator"]) for r in rows] == [
      ("ipm", "fedavg"), ("ipm", "krum"), ("backdoor", "fedavg"), ("backdoor", "krum")]
  assert all(r["num_attackers"] == "1" and r["dataset"] == "fmnist" for r in rows)
  assert rows[2]["excess_attack_success_rate"] != "" and rows[0]["excess_attack_success_rate"] == ""
  # the shared baseline equals the run's own clean twin (Krum keeps f = 1 in both)
  code, twin = run_cli(tmp_path, "--task=fmnist_ipm", "--preset=smoke", "--num_attackers=1",
                       "--aggregator=fedavg,krum", "--clean_baseline=true")
  assert code == 0
  results = json.load(open(os.path.join(twin, "summary.json")))["results"]
  for row in rows[:2]:
    own = results[row["aggregator"]]
    assert float(row["clean_accuracy"]) == pytest.approx(own["window_clean_accuracy"], abs=1e-6)
    assert float(row["accuracy"]) == pytest.approx(own["window_accuracy"], abs=1e-6)
  text = open(os.path.join(out, "grid.md")).read()
  bulyan = next(line for line in text.splitlines() if line.startswith("| bulyan"))
  assert bulyan == "| bulyan | needs K >= 7 | needs K >= 7 | - |"   # smoke: 5 clients per round
  krum = next(line for line in text.splitlines() if line.startswith("| krum"))
  ranked = [a for a in ("ipm", "backdoor") if grid.stats.hurts_fedavg(rows, "fmnist", a, 1)]
  worst = [float(r["accuracy"]) for r in rows if r["aggregator"] == "krum" and r["attack"] in ranked]
  assert krum.endswith(f"| {100 * min(worst):.1f} |" if worst else "| - |")  # ranked columns only
  for harm in ("accuracy_drop", "excess_asr"):
    assert os.path.getsize(os.path.join(out, f"heatmap_fmnist_{harm}.png")) > 1000
  # resumed: nothing runs again, the same table comes back
  assert grid.main([*argv, "--resume", out]) == 0
  assert open(os.path.join(out, "grid.md")).read().split("Wall time")[0] == text.split(
      "Wall time")[0]
  # two run.py subprocesses at a time (the backdoor's two runs): the same numbers, and each
  # run's log beside it
  parallel = str(tmp_path / "grid_jobs2")
  kept = str(tmp_path / "kept")
  backdoor = ["--quick", "--attacks", "backdoor", "--aggregators", "fedavg,krum,bulyan"]
  assert grid.main([*backdoor, "--output_dir", parallel, "--jobs", "2", "--archive", kept]) == 0
  header, *lines = open(os.path.join(out, "grid.csv")).read().splitlines()
  backdoor_rows = [header] + [line for line in lines if line.split(",")[1] == "backdoor"]
  assert len(backdoor_rows) == 3
  assert open(os.path.join(parallel, "grid.csv")).read().splitlines() == backdoor_rows == open(
      os.path.join(kept, "grid.csv")).read().splitlines()
  assert sorted(os.listdir(os.path.join(kept, "fmnist", "backdoor_f1", "seed0"))) == [
      "config.json", "summary.json"]   # archived by the subprocess path too
  assert "krum: accuracy" in open(os.path.join(parallel, "fmnist", "backdoor_f1", "seed0",
                                               "run.log")).read()


def load_grid():
  import importlib.util
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  spec = importlib.util.spec_from_file_location(
      "robustness_grid", os.path.join(root, "scripts", "robustness_grid.py"))
  grid = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(grid)
  return grid


def test_robustness_grid_jobs_stop_at_a_failed_run_and_print_its_error(tmp_path, capsys):
  grid = load_grid()
  commands = {str(tmp_path / str(i)): [f"--task=fmnist_no_such_attack_{i}",
                                        f"--output_dir={tmp_path / str(i)}"] for i in range(3)}
  assert grid.execute(None, commands, jobs=2) is False
  printed = capsys.readouterr().out
  assert "run failed (exit 2): " + str(tmp_path / "0") in printed
  # the log's own error under each failed run (runs 0 and 1 end in either order)
  own = printed.split("run failed (exit 2): " + str(tmp_path / "0"))[1].split("run failed")[0]
  assert "fmnist_no_such_attack_0" in own and "fmnist_no_such_attack_1" not in own
  assert not (tmp_path / "2").exists()   # no new run starts after a failure


def test_robustness_grid_refuses_to_resume_runs_made_with_other_batches(tmp_path):
  grid = load_grid()
  done = tmp_path / "loan" / "clean_model_poisoning_f1" / "seed0"
  done.mkdir(parents=True)
  (done / "summary.json").write_text(json.dumps({"results": {}}))
  (done / "config.json").write_text(json.dumps({"settings": {
      "seed": 0, "preset": "cpu", "aggregators": ["fedavg"], "rounds": 30,
      "max_batches_per_epoch": 31}}))
  argv = ["--datasets", "loan", "--attacks", "alie", "--num_attackers", "1", "--seeds", "0",
          "--aggregators", "fedavg", "--resume", str(tmp_path)]
  with pytest.raises(SystemExit, match="'max_batches_per_epoch': '31'}, not .*'10'}"):
    grid.main(argv)


def test_robustness_grid_names_the_best_aggregator_per_column():
  grid = load_grid()
  rows = []
  for aggregator, attack, accuracies, drop, excess in (
      ("fedavg", "ipm", (0.50, 0.50), 0.3, None), ("krum", "ipm", (0.80, 0.80), 0.0, None),
      ("residual", "ipm", (0.79, 0.81), 0.0, None),       # mean 0.80: a tie with krum
      ("fedavg", "backdoor", (0.90, 0.90), 0.0, 0.60), ("krum", "backdoor", (0.70, 0.70), 0.0,
                                                          0.02),
      ("residual", "backdoor", (0.84, 0.86), 0.0, 0.02),
      # FedAvg loses 4.9 points and gains 49 of excess ASR: no harm, not ranked
      ("fedavg", "label_flip", (0.60, 0.60), 0.049, 0.49),
      ("krum", "label_flip", (0.10, 0.10), 0.0, 0.0),
      ("residual", "label_flip", (0.95, 0.95), 0.0, 0.0)):
    for seed, accuracy in enumerate(accuracies):
      rows.append(dict(dataset="loan", attack=attack, num_attackers=1, aggregator=aggregator,
                       seed=seed, accuracy=accuracy, accuracy_drop=drop, detection_auc=None,
                       excess_attack_success_rate=excess))
  skipped = {("loan", attack, 1, "bulyan"): "needs K >= 7"
             for attack in ("ipm", "backdoor", "label_flip")}
  text = grid.markdown("loan", rows, skipped, ["fedavg", "krum", "residual", "bulyan"],
                       [("ipm", 1), ("backdoor", 1), ("label_flip", 1)], [0, 1], "cpu")
  lines = text.splitlines()
  assert "| label_flip, f = 1 (no harm to FedAvg) | worst case |" in text
  assert lines[-2] == ("| **highest accuracy** | krum, residual | fedavg | not ranked | "
                       "residual |")
  assert lines[-1] == "| **lowest excess ASR** | n/a | krum, residual | not ranked | |"
  # Krum's 10.0 under the unranked label flip is not its worst case, and no Δ is shown there
  assert next(line for line in lines if line.startswith("| krum")).endswith(
      "| 10.0 ± 0.0 [+0.0; ASR +0.0 ± 0.0] | 70.0 |")
  # ± = sample sd over the 2 seeds (ddof 1: |0.79 - 0.81| / sqrt 2); Δ against the column's
  # best: ipm (accuracy) krum, tied with residual at 80.0 and first; backdoor (excess ASR)
  # residual, tied with krum at +2.0 and more accurate. residual - krum under ipm is
  # -1 and +1 point on the two seeds: they disagree (†).
  assert ("| residual | 80.0 ± 1.4 [+0.0] Δ +0.0 ± 1.4 (0/2) † | 85.0 ± 1.4 [+0.0; ASR +2.0 ± "
          "0.0] best | 95.0 ± 0.0 [+0.0; ASR +0.0 ± 0.0] | 80.0 |") in lines
  assert ("| fedavg | 50.0 ± 0.0 [+30.0] Δ -30.0 ± 0.0 (2/2) | 90.0 ± 0.0 [+0.0; ASR +60.0 ± "
          "0.0] Δ +58.0 ± 0.0 (2/2) | 60.0 ± 0.0 [+4.9; ASR +49.0 ± 0.0] | 50.0 |") in lines
  assert "| krum | 80.0 ± 0.0 [+0.0] best |" in text


def test_robustness_grid_archives_each_run_and_resumes_from_the_archive(tmp_path, monkeypatch):
  """--archive keeps summary.json and config.json of each run as it ends; a grid whose
  output directory is gone resumes from the archive and runs nothing again."""
  grid = load_grid()
  settings = {"seed": 0, "preset": "cpu", "aggregators": ["fedavg"], "rounds": 30,
              "max_batches_per_epoch": 10}
  accuracies = {"clean_model_poisoning_f1": 0.8, "alie_f1": 0.6}

  class FakeCli:
    """Stands in for run.py: writes the two archived files and a model file."""
    calls, commands = [], []

    def main(self, command):
      flags = dict(a[2:].split("=", 1) for a in command if "=" in a)
      out = flags["output_dir"]
      self.calls.append(out)
      self.commands.append(command)
      os.makedirs(out, exist_ok=True)
      label = os.path.basename(os.path.dirname(out))
      json.dump({"results": {"fedavg": {"window_accuracy": accuracies[label],
                                        "wall_seconds": 60.0}}},
                open(os.path.join(out, "summary.json"), "w"))
      json.dump({"settings": settings}, open(os.path.join(out, "config.json"), "w"))
      open(os.path.join(out, "model.keras"), "w").write("weights")
      return 0

  archive, first, second = (str(tmp_path / name) for name in ("archive", "first", "second"))
  real_cli = grid.results_script.load_cli()
  fake = FakeCli()
  for name in ("build_config", "build_parser", "SETTING_NAMES"):   # the config, not the run
    setattr(fake, name, getattr(real_cli, name))
  monkeypatch.setattr(grid.results_script, "load_cli", lambda: fake)
  argv = ["--datasets", "loan", "--attacks", "alie", "--num_attackers", "1,2", "--seeds", "0",
          "--aggregators", "fedavg", "--archive", archive, "--data_paths", "loan=/data/x.csv",
          "--leave_out", "loan:alie@2", "--dataset_flags", "loan=--num_clients=12",
          "--attack_flags", "alie=--alie_z=1.5"]
  assert grid.main([*argv, "--output_dir", first]) == 0
  assert all("--num_clients=12" in command for command in fake.commands)
  assert [("--alie_z=1.5" in command, "--num_attackers=1" in command)
          for command in fake.commands] == [(False, False), (True, True)]   # attacked run only
  assert "Not run (--leave_out): loan alie, f = 2." in open(os.path.join(first, "grid.md")).read()
  for bad in ("alie@3", "fmnist:alie@2", "alie@x", "ipm@1"):   # not a cell of this grid
    with pytest.raises(SystemExit):
      grid.main([*argv[:-6], "--leave_out", bad, "--output_dir", str(tmp_path / "bad")])
  assert all("--data_path=/data/x.csv" in command for command in fake.commands)
  assert sorted(fake.calls) == [os.path.join(first, "loan", label, "seed0")
                                for label in ("alie_f1", "clean_model_poisoning_f1")]
  kept = sorted(os.path.relpath(os.path.join(d, f), archive)
                for d, _, files in os.walk(archive) for f in files)
  assert kept == ["grid.csv", "grid.md", "heatmap_loan_accuracy_drop.png",
                  "loan/alie_f1/seed0/config.json", "loan/alie_f1/seed0/summary.json",
                  "loan/clean_model_poisoning_f1/seed0/config.json",
                  "loan/clean_model_poisoning_f1/seed0/summary.json",
                  "verdict.md"]   # no model file
  row = next(csv.DictReader(open(os.path.join(archive, "grid.csv"))))
  assert float(row["accuracy_drop"]) == pytest.approx(0.2)
  assert ("2 aggregator runs); the runs' own time, summed over every run and aggregator: 2.0 min "
          "(this call's runs: 2.0 min). Own time per run, baselines included: "
          "loan model_poisoning 1.00 min (2 runs).") in open(os.path.join(first, "grid.md")).read()
  # the first output directory is lost: a new one resumes from the archive, running nothing
  fake.calls.clear()
  assert grid.main([*argv, "--output_dir", second]) == 0
  assert fake.calls == []
  assert open(os.path.join(second, "grid.csv")).read() == open(
      os.path.join(archive, "grid.csv")).read()
  assert "the runs' own time, summed over every run and aggregator: 2.0 min (this call's runs: " \
         "0.0 min)" in open(os.path.join(archive, "grid.md")).read()
  # --table_only: the tables of a grid in pieces, running nothing and naming what is missing
  os.remove(os.path.join(archive, "loan", "alie_f1", "seed0", "summary.json"))
  third = str(tmp_path / "third")
  assert grid.main([*argv, "--output_dir", third, "--table_only"]) == 0
  assert fake.calls == []
  text = open(os.path.join(third, "grid.md")).read()
  assert "Not run yet (1 of 2 runs; their cells are missing or averaged over fewer seeds): " \
         "loan/alie_f1 seed(s) 0." in text
  assert "| fedavg | - | - |" in text
  with pytest.raises(SystemExit):   # nothing to tabulate
    grid.main(["--datasets", "loan", "--attacks", "alie", "--num_attackers", "1", "--seeds", "0",
               "--aggregators", "fedavg", "--output_dir", str(tmp_path / "empty"),
               "--table_only"])


def test_robustness_grid_tells_the_trimmed_means_the_true_f():
  grid = load_grid()
  (flag,) = grid.true_f_flags(["residual", "arc+nnm+trimmed_mean"], 4, 11, "--num_clients=11")
  beta = float(flag.removeprefix("--beta="))
  assert math.floor(beta * 11) == 4 and math.floor(beta * 11 + 1e-9) == 4
  assert all(math.floor(float(grid.true_f_flags(["trimmed_mean"], f, k, "")[0][7:]) * k) == f
             for k in range(3, 40) for f in range(0, (k - 1) // 2 + 1))
  assert grid.true_f_flags(["median", "krum"], 4, 11, "") == ()
  assert grid.true_f_flags(["trimmed_mean"], 4, 11, "--beta=0.1") == ()


def test_grid_statistics_paired_differences_spreads_and_harm():
  import sys
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                  "scripts"))
  import grid_statistics as stats
  mean, sd = stats.spread([0.70, 0.72, 0.77])
  assert (mean, sd) == pytest.approx((0.73, np.std([0.70, 0.72, 0.77], ddof=1)))
  assert math.isnan(stats.spread([0.5])[1])   # one seed: no spread
  # seeds 0, 1, 2 against the best's 0, 1, 3: only the common seeds pair up
  assert stats.paired({0: 0.6, 1: 0.9, 2: 0.5}, {0: 0.7, 1: 0.8, 3: 0.1}) == pytest.approx(
      (0.0, np.std([-0.1, 0.1], ddof=1), 0, 2))
  assert stats.paired({0: 0.5, 1: 0.6, 2: 0.9}, {0: 0.7, 1: 0.7, 2: 0.8})[2:] == (2, 3)
  rows = [dict(dataset="d", attack=a, num_attackers=1, aggregator=n, seed=s, accuracy=0.5,
               accuracy_drop=drop, excess_attack_success_rate=None)
          for a, n, s, drop in (("ipm", "x", 0, 0.1), ("ipm", "x", 1, 0.3),
                                ("alie", "x", 0, -0.2), ("alie", "y", 0, 0.05))]
  grid = stats.harm_grid(rows, "d", ["x", "y"], [("ipm", 1), ("alie", 1)], "accuracy_drop")
  np.testing.assert_allclose(grid, [[20.0, -20.0, 20.0], [np.nan, 5.0, 5.0]])
  assert stats.column_metric(rows, "d", "ipm", 1) == "accuracy"
  # FedAvg loses 4 points under IPM (no harm: not ranked) and 6 under ALIE: the worst case
  # is ALIE's alone
  rows += [dict(dataset="d", attack=a, num_attackers=1, aggregator="fedavg", seed=0,
                accuracy=0.5, accuracy_drop=drop, excess_attack_success_rate=None)
           for a, drop in (("ipm", 0.04), ("alie", 0.06))]
  assert [stats.hurts_fedavg(rows, "d", a, 1) for a in ("ipm", "alie", "sign_flip")] == [
      False, True, None]
  grid = stats.harm_grid(rows, "d", ["x", "y"], [("ipm", 1), ("alie", 1)], "accuracy_drop")
  np.testing.assert_allclose(grid, [[20.0, -20.0, -20.0], [np.nan, 5.0, 5.0]])
  targeted = [dict(dataset="d", attack="backdoor", num_attackers=2, aggregator="fedavg", seed=s,
                   accuracy=0.9, accuracy_drop=0.0, excess_attack_success_rate=e)
              for s, e in ((0, 0.45), (1, 0.56))]
  assert stats.hurts_fedavg(targeted, "d", "backdoor", 2)   # mean excess 50.5 points
  targeted += [dict(dataset="d", attack="backdoor", num_attackers=2, aggregator=n, seed=s,
                    accuracy=0.9, accuracy_drop=0.0, excess_attack_success_rate=e)
               for n, s, e in (("residual", 0, 0.02), ("residual", 1, 0.04), ("median", 0, 0.01),
                               ("median", 1, 0.03), ("trimmed_mean", 0, 0.03),
                               ("trimmed_mean", 1, 0.01))]   # tied with the median: named
  matrix = stats.verdict_matrix(rows + targeted, ["d"], [("ipm", 1), ("backdoor", 2)])
  assert matrix.splitlines()[2:] == [
      "| ipm | 1 | d | no harm to FedAvg: not ranked | - | 50.0 (drop +4.0) |",
      "| backdoor | 2 | d | median, trimmed_mean: +2.0 ± 1.4 excess ASR | +3.0 ± 1.4 excess ASR "
      "Δ +1.0 ± 0.0 (2/2) | +50.5 ± 7.8 excess ASR |"]


def test_the_grid_continues_a_killed_run_from_its_checkpoint(tmp_path):
  grid = load_grid()
  command = ["--task=fmnist_ipm", "--seed=1"]
  killed = tmp_path / "killed"             # stopped after some rounds: resumed
  killed.mkdir()
  for name in ("checkpoint.npz", "config.json", "metrics.csv"):
    (killed / name).write_text("x")
  assert grid.resumable(str(killed), command) == [f"--resume={killed}", "--no_progress"]
  assert (killed / "metrics.csv").exists()
  early = tmp_path / "early"               # stopped before its first round ended: cleared
  early.mkdir()
  (early / "config.json").write_text("x")
  assert grid.resumable(str(early), command) == command
  assert not early.exists()
  assert grid.resumable(str(tmp_path / "new"), command) == command
