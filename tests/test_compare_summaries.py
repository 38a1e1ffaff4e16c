"""scripts/compare_summaries.py: a rerun equals its archive except in timings and in
fields newer than the archive; any other difference, or a run without an archived
twin, fails."""

import copy
import importlib.util
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SUMMARY = {"task": "loan_backdoor", "seed": 0, "results": {
    "residual": {"window_accuracy": 0.7499, "attackers_weight_share": 0.089,
                 "excess_attack_success_rate": float("nan"), "wall_seconds": 41.0,
                 "mean_round_seconds": 1.3}}}


@pytest.fixture(scope="module")
def script():
  spec = importlib.util.spec_from_file_location(
      "compare_summaries", os.path.join(ROOT, "scripts", "compare_summaries.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def write(base, relative, summary):
  os.makedirs(base / relative, exist_ok=True)
  with open(base / relative / "summary.json", "w") as f:
    json.dump(summary, f)


def rerun(**changes):
  summary = copy.deepcopy(SUMMARY)
  summary["results"]["residual"].update(changes)
  return summary


@pytest.mark.parametrize("changes, code, printed", [
    (dict(wall_seconds=99.0, mean_round_seconds=2.0), 0, "every non-timing field equals"),
    (dict(detection_auc=1.0), 0, "newer than the archive, left out: detection_auc"),
    (dict(window_accuracy=0.7500), 1,
     "/results/residual/window_accuracy: 0.75 (run) != 0.7499 (archive)"),
    (dict(excess_attack_success_rate=0.0), 1, "/results/residual/excess_attack_success_rate"),
])
def test_a_rerun_equals_its_archive_up_to_timings(script, tmp_path, capsys, changes, code, printed):
  write(tmp_path / "archive", "exp/run/seed0", SUMMARY)
  write(tmp_path / "runs", "exp/run/seed0", rerun(**changes))
  assert script.main([str(tmp_path / "runs"), str(tmp_path / "archive")]) == code
  assert printed in capsys.readouterr().out


def test_a_run_without_an_archived_twin_fails(script, tmp_path, capsys):
  write(tmp_path / "archive", "exp/run/seed0", SUMMARY)
  write(tmp_path / "runs", "exp/run/seed1", SUMMARY)
  assert script.main([str(tmp_path / "runs"), str(tmp_path / "archive")]) == 1
  assert "exp/run/seed1: no archived summary" in capsys.readouterr().out
  assert script.main([str(tmp_path / "empty"), str(tmp_path / "archive")]) == 1


def test_paired_runs_prints_the_paired_difference_with_a_sample_deviation(tmp_path, capsys):
  """A - B per seed: accuracies 0.8 / 0.7, 0.9 / 0.7, 0.7 / 0.8 -> differences 0.1, 0.2,
  -0.1: mean +0.0667, sample standard deviation 0.1528 (ddof 1), A above B on 2 of 3."""
  spec = importlib.util.spec_from_file_location(
      "paired_runs", os.path.join(ROOT, "scripts", "paired_runs.py"))
  paired_runs = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(paired_runs)
  for seed, (a, b) in enumerate([(0.8, 0.7), (0.9, 0.7), (0.7, 0.8)]):
    for side, accuracy in (("A", a), ("B", b)):
      write(tmp_path, f"{side}/seed{seed}", {"seed": seed, "results": {
          "foolsgold": {"window_accuracy": accuracy, "attackers_weight_share": 0.1}}})
  write(tmp_path, "B/seed7", {"seed": 7, "results": {"foolsgold": {"window_accuracy": 0.0}}})
  assert paired_runs.main([str(tmp_path / "A"), str(tmp_path / "B"),
                           "--aggregator=foolsgold"]) == 0
  out = capsys.readouterr().out
  assert "seeds [0, 1, 2]" in out  # seed 7 has no pair
  assert "| accuracy | 0.8000 / 0.7000 | 0.9000 / 0.7000 | 0.7000 / 0.8000 | +0.0667 ± 0.1528 " \
         "(ddof 1); A above B on 2 of 3 seeds |" in out
  assert "| attackers' weight share |" in out and "+0.0000 ± 0.0000" in out
