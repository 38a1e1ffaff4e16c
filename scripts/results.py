#!/usr/bin/env python
"""Runs the experiments behind RESULTS.md and prints their tables (Markdown).

    .venv/bin/python scripts/results.py [--seeds 0,1,2] [--only NAME[,NAME]] [--preset cpu]
    .venv/bin/python scripts/results.py --list

Each experiment is a few `experiments/run.py` commands (printed with the
table), each run once per seed. A cell is the mean over seeds of the
last-10-round means of accuracy % / attack success rate % (± the sample standard
deviation over seeds, ddof = 1, when there are several), then, where the run has its
clean baseline, [the excess attack success rate in points (attacked - the same
run without attackers); the accuracy without attackers]; w is the attackers'
mean share of the aggregation weight. Where the paper reports the experiment,
its number stands in a column beside ours. Outputs (config.json, metrics.csv,
summary.json, plots) stay in runs/results-<timestamp>/; each experiment's
tables also go to its README.md (all of them to tables.md). ``--archive results``
keeps each run's summary.json and config.json and each experiment's README.md in
the repository's results/<experiment>/. ``--check`` runs nothing: it rebuilds every
archived table from the summaries in results/ and fails if one differs from its
README.md (a fast test runs it).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grid_statistics  # noqa: E402  (spread: mean and sample standard deviation)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))
LOANSTATS = os.path.join(SHARED, "loan", "LoanStats3a_2007_2011_39786x16.csv.gz")
KAGGLE_HEAD = os.path.join(SHARED, "loan", "kaggle_loan2015_head_4999x74.csv.gz")
LOAN_2018 = os.path.join(SHARED, "loan", "lendingclub_2018_creditmodel_31766x55.csv.gz")
MNIST = os.path.join(SHARED, "mnist", "mnist.npz")
CIFAR10 = os.path.join(SHARED, "cifar10", "cifar10_jpeg.npz")
KINDLE = os.path.join(SHARED, "amazon_reviews", "kindle_store_5core_sample_4905.jsonl.gz")
AGGREGATORS = "fedavg,median,trimmed_mean,foolsgold,residual"
"""The compared aggregators (repeated_median is left out: the code's reduces to the median;
the paper's, ``repeated_median_paper``, has its own experiments, ``*_repeated_median``)."""


LEGACY_FLAGS = ("--foolsgold_history=false", "--tau=10")
"""The baselines' settings before 2026-12-07 (issue 30): FoolsGold on one round's
features, centered clipping with a fixed tau = 10 (it clipped nothing). The archived
tables were made with them; run.py's defaults are now FoolsGold's history by client id
and tau = the median distance to the centre."""


@dataclasses.dataclass(frozen=True)
class Experiment:
  """One table: its runs (a label and run.py flags each, every seed), which
  aggregators, and the paper's numbers.

  Attributes:
    runs_as_rows: rows are the runs and columns the aggregators (hyper-parameter
      grids); otherwise rows are the aggregators and columns the runs.
    paper: the paper's cell text, ``paper[row][column]`` with rows and
      columns named as in our table.
    note: where the paper's numbers come from, and what differs.
    legacy_baselines: the archived tables were made before issue 30's defaults:
      FoolsGold without its history and centered clipping at tau = 10 (``LEGACY_FLAGS``,
      added to the runs of an experiment with either, so that the commands beside its
      table regenerate it).
    clean_from: the label of the run whose training without attackers is every
      other run's clean baseline; those runs then skip their own clean twin
      (``--clean_baseline=false``). Either the run has no attackers (its own
      numbers are clean) or it has a clean twin. This holds because the clean twin
      is the run without attackers, round for round (the same clients, data,
      client samples, shuffles and seeds; ``clean_twin``; asserted in
      tests/test_experiments_cli.py), so every attacker count and attack of one
      task and seed shares it.
  """

  title: str
  runs: tuple[tuple[str, tuple[str, ...]], ...]
  aggregators: str = AGGREGATORS
  runs_as_rows: bool = False
  paper: dict = dataclasses.field(default_factory=dict)
  note: str = ""
  clean_from: str = ""
  legacy_baselines: bool = True

  def flags_of(self, label: str, flags: tuple[str, ...]) -> tuple[str, ...]:
    """``flags`` of run ``label``, without its clean twin where it borrows one, with
    ``LEGACY_FLAGS`` where the experiment keeps the archive's baseline settings."""
    if self.legacy_baselines and {"foolsgold", "centered_clipping"} & set(
        self.aggregators.split(",")):
      flags = (*flags, *LEGACY_FLAGS)
    if self.clean_from and label != self.clean_from:
      return (*flags, "--clean_baseline=false")
    return flags


def clean_numbers(result: dict) -> tuple[float | None, float | None]:
  """(accuracy, attack success rate) without attackers, last-10-round means, of one
  aggregator's result in a ``clean_from`` run: its clean twin's, or its own where
  it had no attackers (no twin)."""
  if result.get("window_clean_accuracy") is not None:
    return result["window_clean_accuracy"], result.get("window_clean_attack_success_rate")
  return result["window_accuracy"], result.get("window_attack_success_rate")


def borrow_clean_baseline(experiment: Experiment, summaries: dict) -> dict:
  """``summaries`` with the ``clean_from`` run's clean numbers filled into every
  other run of the same seed: ``window_clean_accuracy``,
  ``window_clean_attack_success_rate`` and ``window_excess_attack_success_rate`` =
  attack success rate - the clean one (the window mean of the per-round excess,
  as the run itself would report it)."""
  if not experiment.clean_from or experiment.clean_from not in summaries:
    return summaries
  sources = {source["seed"]: source for source in summaries[experiment.clean_from]}
  filled = {}
  for label, runs in summaries.items():
    seeds = [summary["seed"] for summary in runs]
    if len(set(seeds)) != len(seeds):
      raise ValueError(f"{label!r} holds a seed twice: {seeds}")
    if label == experiment.clean_from:
      filled[label] = runs
      continue
    filled[label] = []
    for summary in runs:
      source = sources.get(summary["seed"])
      if source is None:
        raise ValueError(f"{label!r} seed {summary['seed']} has no {experiment.clean_from!r} "
                         "run of the same seed (its clean baseline)")
      results = {}
      for aggregator, result in summary["results"].items():
        accuracy, rate = clean_numbers(source["results"][aggregator])
        attacked = result.get("window_attack_success_rate")
        results[aggregator] = dict(
            result, window_clean_accuracy=accuracy, window_clean_attack_success_rate=rate,
            window_excess_attack_success_rate=(None if attacked is None or rate is None
                                               else attacked - rate))
      filled[label].append(dict(summary, clean_baseline=True, results=results))
  return filled


def _by_column(columns, rows: dict[str, list[str]]) -> dict[str, dict[str, str]]:
  """``paper[row][column]`` from one list of cells per row, in ``columns`` order."""
  return {row: dict(zip(columns, cells)) for row, cells in rows.items()}


_ATTACKERS = tuple(f"{a} attackers" for a in range(5))
_LOAN_PAPER = _by_column(("naive backdoor", "model replacement"), {
    "fedavg": ["93.65 / 99.71", "94.11 / 98.96"], "residual": ["94.50 / 0.00", "95.06 / 0.00"],
    "median": ["- / 0.00", "- / 0.00"], "trimmed_mean": ["- / 0.00", "- / 0.00"],
    "foolsgold": ["- / 99.96", "-"]})


def _BACKDOOR_RUNS(dataset, *flags):
  """The naive backdoor and model replacement runs of ``dataset`` with ``flags``."""
  return (("naive backdoor", (f"--task={dataset}_backdoor", *flags)),
          ("model replacement", (f"--task={dataset}_model_replacement", *flags)))

_GRID_LAMBDAS, _GRID_DELTAS = (1.0, 2.0, 5.0), (0.01, 0.1)


def _grid_runs(*flags):
  return tuple((f"lambda {lam:g}, delta {delta:g}",
                (*flags, f"--lambda_={lam:g}", f"--delta={delta:g}"))
               for lam in _GRID_LAMBDAS for delta in _GRID_DELTAS)


EXPERIMENTS: dict[str, Experiment] = {
    "fmnist_backdoor": Experiment("fmnist_backdoor: 10 clients, 1 attacker", (
        ("1 attacker", ("--task=fmnist_backdoor",)),)),
    "fmnist_label_flip": Experiment("fmnist_label_flip: 100 clients, 10 per round", tuple(
        (f"{a} attackers", ("--task=fmnist_label_flip", f"--num_attackers={a}"))
        for a in (0, 4, 8)), clean_from="0 attackers"),
    "fmnist_gaussian": Experiment("fmnist_gaussian: 100 clients, 10 per round, 10 noisy", tuple(
        (f"s = {s}%", ("--task=fmnist_gaussian", f"--noise_scale={s}", "--clean_baseline=false"))
        for s in (0, 100, 300))),
    "loan_synthetic": Experiment(
        "LOAN, default data (synthetic stand-in for the paper's file), 10 states, 1 attacker",
        _BACKDOOR_RUNS("loan"), paper=_LOAN_PAPER,
        note="Paper: LOAN (Kaggle loan.csv, 2.26 M loans, 9 statuses), 100 rounds, §4.3 text; "
             "it gives the other baselines' attack success rates only (0.00%)."),
    "loan_2018": Experiment(
        "LOAN, LendingClub 2018 file (real: 31,766 loans, 2 statuses; trigger "
        "num_tl_90g_dpd_24m only), 10 states, 1 attacker",
        _BACKDOOR_RUNS("loan", f"--data_path={LOAN_2018}"), paper=_LOAN_PAPER,
        note="Paper: its own file (9 statuses, all 6 trigger features), so its accuracies are "
             "not comparable with this file's."),
    "loan_2018_standardized": Experiment(
        "LOAN, LendingClub 2018 file, features standardized (--feature_scaling=standardize), "
        "10 states, 1 attacker",
        _BACKDOOR_RUNS("loan", f"--data_path={LOAN_2018}", "--feature_scaling=standardize"),
        paper=_LOAN_PAPER, note="Paper: as above."),
    "loan_backdoor": Experiment(
        "loan_backdoor: LendingClub LoanStats3a 2007-2011 (real), 10 states, 1 attacker", (
            ("1 attacker", ("--task=loan_backdoor", f"--data_path={LOANSTATS}")),)),
    "loan_backdoor_kaggle": Experiment(
        "loan_backdoor: Kaggle loan.csv, first 4,999 rows (real, 7 statuses), 10 states, "
        "1 attacker", (("1 attacker", ("--task=loan_backdoor", f"--data_path={KAGGLE_HEAD}")),)),
    "table1_cifar10_label_flip": Experiment(
        "Table 1: CIFAR-10 label flipping (cat -> dog), 10 clients (Dirichlet 0.9), 0-4 "
        "attackers; cpu model: the small CNN (cifar_cnn, 315k parameters)",
        tuple((f"{a} attackers", ("--task=cifar10_label_flip", f"--num_attackers={a}",
                                  f"--data_path={CIFAR10}")) for a in range(5)),
        paper=_by_column(_ATTACKERS, {
            "fedavg": ["88.96", "85.74", "82.49", "82.35", "82.11"],
            "median": ["88.11", "87.69", "87.15", "85.85", "82.01"],
            "trimmed_mean": ["88.70", "88.52", "87.44", "85.36", "82.35"],
            "foolsgold": ["9.70", "9.57", "10.72", "11.42", "9.98"],
            "residual": ["89.17", "88.60", "86.66", "86.09", "85.81"]}),
        note="Paper: ResNet-18, 100 rounds, accuracy only.", clean_from="0 attackers"),
    "table2_amazon_label_flip": Experiment(
        "Table 2: Amazon reviews label flipping (every label), 10 clients, 0-4 attackers; real "
        "Kindle 5-core sample (4,905 reviews)",
        tuple((f"{a} attackers", ("--task=amazon_label_flip", f"--num_attackers={a}",
                                  f"--data_path={KINDLE}")) for a in range(5)),
        paper=_by_column(_ATTACKERS, {
            "fedavg": ["91.81", "86.91", "24.97", "12.52", "9.78"],
            "median": ["91.73", "91.87", "91.79", "91.43", "91.17"],
            "trimmed_mean": ["91.81", "91.82", "91.82", "91.49", "91.26"],
            "foolsgold": ["50.79", "49.45", "47.44", "49.71", "49.95"],
            "residual": ["91.71", "91.79", "91.76", "91.67", "91.38"]}),
        note="Paper: the full Kindle Store reviews (86k train), accuracy only."),
    "table3_mnist_backdoor": Experiment(
        "Table 3, MNIST: backdoor, 10 clients (Dirichlet 0.9), 1 attacker; full MNIST",
        _BACKDOOR_RUNS("mnist", f"--data_path={MNIST}"),
        paper=_by_column(("naive backdoor", "model replacement"), {
            "fedavg": ["99.08 / 99.71", "98.75 / 17.85"],
            "median": ["98.91 / 10.34", "98.87 / 10.35"],
            "trimmed_mean": ["98.97 / 10.34", "98.81 / 10.34"],
            "foolsgold": ["96.20 / 12.51", "97.96 / 10.27"],
            "residual": ["98.97 / 10.35", "98.88 / 10.31"]}),
        note="Paper: the CNN, 200 rounds; its attack success rate counts triggered images of "
             "every class (a ~10% floor), ours only those whose true label is not the target."),
    "table3_cifar10_backdoor": Experiment(
        "Table 3, CIFAR-10: backdoor, 10 clients (Dirichlet 0.9), 1 attacker; cpu model: "
        "cifar_cnn",
        _BACKDOOR_RUNS("cifar10", f"--data_path={CIFAR10}"),
        paper=_by_column(("naive backdoor", "model replacement"), {
            "fedavg": ["87.44 / 99.91", "69.72 / 38.59"],
            "median": ["88.58 / 73.06", "87.22 / 10.01"],
            "trimmed_mean": ["88.38 / 84.56", "87.30 / 9.85"],
            "foolsgold": ["10.00 / 0.00", "10.00 / 0.00"],
            "residual": ["88.89 / 9.65", "87.43 / 9.56"]}),
        note="Paper: ResNet-18, 100 rounds; attack success rate as for MNIST.",
        clean_from="naive backdoor"),
    "table4_mnist_gaussian": Experiment(
        "Table 4: MNIST Gaussian noise, 100 clients (10 per round), 10 noisy; full MNIST",
        tuple((f"s = {s}%", ("--task=mnist_gaussian", f"--noise_scale={s}",
                             f"--data_path={MNIST}", "--clean_baseline=false"))
              for s in (0, 100, 200, 300)),
        paper=_by_column(tuple(f"s = {s}%" for s in (0, 100, 200, 300)), {
            "fedavg": ["93.17", "78.80", "53.74", "9.26"],
            "median": ["73.92", "64.35", "71.54", "63.24"],
            "trimmed_mean": ["87.59", "74.87", "73.76", "75.74"],
            "foolsgold": ["86.72", "90.31", "86.96", "89.94"],
            "residual": ["90.06", "90.91", "89.06", "92.28"]}),
        note="Paper: the CNN, 200 rounds; accuracy only (s = 0% is the no-attack baseline)."),
    "table6_lambda_delta": Experiment(
        "Table 6 (reduced grid): lambda x delta, MNIST label flipping, 100 clients (10 per "
        "round), 9 attackers, non-iid (two-class shards) and iid",
        _grid_runs("--task=mnist_label_flip", "--num_attackers=9", f"--data_path={MNIST}")
        + tuple((f"iid, {label}", (*flags, "--partition=iid")) for label, flags in _grid_runs(
            "--task=mnist_label_flip", "--num_attackers=9", f"--data_path={MNIST}")),
        aggregators="residual", runs_as_rows=True,
        paper={
            "lambda 1, delta 0.01": {"residual": "94.41 (0) / 94.54 (9)"},
            "lambda 1, delta 0.1": {"residual": "86.93 (0) / 89.39 (9)"},
            "lambda 2, delta 0.01": {"residual": "94.95 (0) / 94.86 (9)"},
            "lambda 2, delta 0.1": {"residual": "93.08 (0) / 91.84 (9)"},
            "lambda 5, delta 0.01": {"residual": "92.62 (0) / 93.77 (9)"},
            "lambda 5, delta 0.1": {"residual": "94.23 (0) / 94.47 (9)"},
            "iid, lambda 1, delta 0.01": {"residual": "97.72 (0) / 97.44 (9)"},
            "iid, lambda 1, delta 0.1": {"residual": "97.69 (0) / 97.26 (9)"},
            "iid, lambda 2, delta 0.01": {"residual": "97.59 (0) / 97.75 (9)"},
            "iid, lambda 2, delta 0.1": {"residual": "97.94 (0) / 97.76 (9)"},
            "iid, lambda 5, delta 0.01": {"residual": "97.63 (0) / 97.60 (9)"},
            "iid, lambda 5, delta 0.1": {"residual": "97.69 (0) / 97.65 (9)"}},
        note="Paper: accuracy with 0 / 9 attackers (its 0-attacker runs; ours: the clean "
             "baseline of the same run), the CNN, 200 rounds; the grid is lambda {0.5, 1, 2, "
             "3, 5} x delta {0.01, 0.05, 0.1, 0.2} and 0 / 5 / 9 attackers."),
    "table7_estimators": Experiment(
        "Table 7 (reduced grid): estimators and weighting, MNIST label flipping, 100 clients "
        "(10 per round), 9 attackers, non-iid",
        _grid_runs("--task=mnist_label_flip", "--num_attackers=9", f"--data_path={MNIST}"),
        aggregators="residual_median_line,residual_theil_sen,residual_gaussian",
        runs_as_rows=True,
        paper=_by_column(("residual_median_line", "residual_theil_sen", "residual_gaussian"), {
            "lambda 1, delta 0.01": ["94.46 (0) / 95.19 (9)", "93.76 (0) / 92.87 (9)",
                                     "84.32 (0) / 92.22 (9)"],
            "lambda 1, delta 0.1": ["83.77 (0) / 90.93 (9)", "92.77 (0) / 94.31 (9)",
                                    "88.31 (0) / 89.23 (9)"],
            "lambda 2, delta 0.01": ["93.34 (0) / 94.36 (9)", "94.38 (0) / 49.28 (9)",
                                     "91.07 (0) / 92.70 (9)"],
            "lambda 2, delta 0.1": ["94.02 (0) / 93.48 (9)", "92.29 (0) / 93.07 (9)",
                                    "88.61 (0) / 93.15 (9)"],
            "lambda 5, delta 0.01": ["93.68 (0) / 84.26 (9)", "94.69 (0) / 93.27 (9)",
                                     "94.10 (0) / 93.58 (9)"],
            "lambda 5, delta 0.1": ["94.88 (0) / 94.69 (9)", "94.60 (0) / 92.85 (9)",
                                    "92.81 (0) / 93.83 (9)"]}),
        note="Paper: accuracy with 0 / 9 attackers, the CNN, 200 rounds; lambda {1, 2, 3, 5} x "
             "delta {0.01, 0.05, 0.1, 0.2}; for the Gaussian weighting lambda is its sigma."),
    "table8_amazon_mix_rate": Experiment(
        "Table 8: Amazon mix rate, 10 clients, 4 attackers; real Kindle 5-core sample",
        tuple((f"mix rate {m:g}", ("--task=amazon_mix_rate", f"--mix_rate={m:g}",
                                   f"--data_path={KINDLE}")) for m in (0.5, 0.1, 0.01, 0.0001)),
        aggregators="fedavg,median,residual",
        paper=_by_column(tuple(f"mix rate {m:g}" for m in (0.5, 0.1, 0.01, 0.0001)), {
            "residual": ["92.50", "92.71", "92.42", "92.56"]}),
        note="Paper: the full Kindle Store reviews; residual's accuracy only."),
}


def _foolsgold_history_runs(*flags):
  """FoolsGold with its history kept by client id (run.py's default) and without it."""
  return (("history by client id", flags),
          ("no history", (*flags, "--foolsgold_history=false")))


EXPERIMENTS["foolsgold_history_fmnist_backdoor"] = Experiment(
    "FoolsGold with and without its history: fmnist_backdoor, 10 clients, 1 attacker",
    _foolsgold_history_runs("--task=fmnist_backdoor"), aggregators="foolsgold",
    legacy_baselines=False,
    note="Before 2026-12-07 every FoolsGold number here was of the no-history variant.")
EXPERIMENTS["foolsgold_history_loan_backdoor"] = Experiment(
    "FoolsGold with and without its history: loan_backdoor (LoanStats3a, real), 10 states, "
    "1 attacker", _foolsgold_history_runs("--task=loan_backdoor", f"--data_path={LOANSTATS}"),
    aggregators="foolsgold", legacy_baselines=False,
    note="Before 2026-12-07 every FoolsGold number here was of the no-history variant.")

REPEATED_MEDIAN_PAPER = {
    "table1_cifar10_label_flip": ["88.60", "87.76", "86.97", "85.77", "81.82"],
    "table2_amazon_label_flip": ["91.55", "88.41", "23.22", "11.70", "9.62"],
    "table3_mnist_backdoor": ["98.96 / 10.36", "98.82 / 10.32"],
    "table3_cifar10_backdoor": ["88.22 / 75.25", "87.57 / 9.79"],
    "table4_mnist_gaussian": ["61.86", "75.53", "67.76", "73.63"],
}
"""The paper's Repeated Median row of each table that has one (Tables 1-4), in the
order of the table's runs."""

for _name, _cells in REPEATED_MEDIAN_PAPER.items():
  _parent = EXPERIMENTS[_name]
  EXPERIMENTS[f"{_name}_repeated_median"] = dataclasses.replace(
      _parent, title=f"{_parent.title}: the paper's Repeated Median (eq. 2)",
      aggregators="repeated_median_paper", legacy_baselines=False,
      paper={"repeated_median_paper": dict(zip([label for label, _ in _parent.runs], _cells))})


def load_cli():
  """The experiment CLI (``tff_residual.cli``, after TensorFlow's quiet import)."""
  from tff_residual import entry
  return entry.load_cli()


def cell(values: list, sign: bool = False) -> str:
  values = [v for v in values if v is not None]
  if not values:
    return "n/a"
  mean, sd = grid_statistics.spread(values)   # sd: ddof = 1, none for one seed
  text = f"{100 * mean:+.2f}" if sign else f"{100 * mean:.2f}"
  return text + (f" ± {100 * sd:.2f}" if len(values) > 1 else "")


def shown(flags) -> str:
  """Flags as a user types them from the repository root (``../shared/data/...``)."""
  return " ".join(flags).replace(SHARED, os.path.join("..", "shared", "data"))


def run_directory(base: str, name: str, label: str, seed: int) -> str:
  safe = "".join(ch if ch.isalnum() or ch in "._-" else "" for ch in label.replace(" ", "_"))
  return os.path.join(base, name, safe, f"seed{seed}")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--seeds", default="0")
  parser.add_argument("--only", default="", help="comma-separated experiments (default: all)")
  parser.add_argument("--preset", default="cpu")
  parser.add_argument("--aggregator", default=None,
                      help="override every experiment's aggregators")
  parser.add_argument("--list", action="store_true", help="print the experiments and exit")
  parser.add_argument("--from_runs", default=None,
                      help="write the tables from the summaries of an earlier "
                           "runs/results-<timestamp> directory (or results/) instead of "
                           "running; runs not there are named under their table")
  parser.add_argument("--resume", default=None,
                      help="run into an earlier runs/results-<timestamp> directory, skipping "
                           "every run whose summary.json is there (a long table in pieces)")
  parser.add_argument("--archive", default=None,
                      help="also copy each run's summary.json and config.json, and each "
                           "experiment's README.md, to ARCHIVE/<experiment>/ (e.g. results/)")
  parser.add_argument("--check", nargs="?", const="results", default=None, metavar="ARCHIVE",
                      help="run nothing: rebuild every archived experiment's table from its "
                           "summaries in ARCHIVE (default results/) and exit 1 if any differs "
                           "from the README.md there (its wall-time line aside) or, without "
                           "--only, if RESULTS.md's matrix differs from --matrix")
  parser.add_argument("--matrix", nargs="?", const="results", default=None, metavar="ARCHIVE",
                      help="print RESULTS.md's matrix of the paper's settings (best rule, "
                           "residual, FedAvg per attack and setting) from ARCHIVE (default "
                           "results/) and exit")
  args = parser.parse_args(argv)
  if args.list:
    for name, experiment in EXPERIMENTS.items():
      print(f"{name}: {experiment.title} ({len(experiment.runs)} runs per seed)")
    return 0
  names = [n for n in args.only.split(",") if n] or list(EXPERIMENTS)
  unknown = [n for n in names if n not in EXPERIMENTS]
  if unknown:
    parser.error(f"unknown experiment(s) {unknown}; expected some of {list(EXPERIMENTS)}")
  if args.matrix:
    print(matrix(args.matrix))
    return 0
  if args.check:
    tables = check_archive(args.check, names)
    if args.only:
      return tables
    return tables | (0 if check_matrix(args.check) else 1) | (
        0 if check_recommended(args.check) else 1)
  seeds = [int(s) for s in args.seeds.split(",")]
  if args.from_runs and args.resume:
    parser.error("--from_runs and --resume exclude each other")
  base = (args.from_runs or args.resume
          or os.path.join("runs", f"results-{datetime.datetime.now():%Y%m%d-%H%M%S}"))
  cli = None if args.from_runs else load_cli()
  sections = []
  for name in names:
    experiment = EXPERIMENTS[name]
    aggregators = args.aggregator or experiment.aggregators
    summaries, missing = {}, []
    resumed = 0
    start = datetime.datetime.now()
    for label, flags in experiment.runs:
      for seed in seeds:
        output_dir = run_directory(base, name, label, seed)
        command = [*experiment.flags_of(label, flags), f"--aggregator={aggregators}",
                   f"--preset={args.preset}", f"--seed={seed}", f"--output_dir={output_dir}",
                   "--no_progress"]
        done = os.path.exists(os.path.join(output_dir, "summary.json"))
        if args.resume and done:
          check_resumed(output_dir, command)
          resumed += 1
        elif cli is None:  # --from_runs: a table of the runs there, naming the missing ones
          if not done:
            missing.append((label, seed))
            continue
        else:
          if args.resume and os.path.exists(os.path.join(output_dir, "metrics.csv")):
            print(f"--resume: {output_dir} holds an unfinished run (no summary.json); "
                  "running it again", flush=True)
            shutil.rmtree(output_dir)
          print(f"\n### {name} / {label} / seed {seed}: run.py {' '.join(command)}", flush=True)
          if cli.main(command) != 0:
            return 1
        with open(os.path.join(output_dir, "summary.json")) as f:
          summaries.setdefault(label, []).append(json.load(f))
        if args.archive:
          kept = run_directory(args.archive, name, label, seed)
          os.makedirs(kept, exist_ok=True)
          for file in ("summary.json", "config.json"):
            shutil.copyfile(os.path.join(output_dir, file), os.path.join(kept, file))
    minutes = None if cli is None else (datetime.datetime.now() - start).total_seconds() / 60
    if resumed:  # in pieces: the runs' own wall seconds (aggregators' rounds), summed
      minutes = sum(r["wall_seconds"] for runs in summaries.values() for s in runs
                    for r in s["results"].values()) / 60
    summaries = borrow_clean_baseline(experiment, summaries)
    if not summaries:
      parser.error(f"{base} holds no run of {name} for seeds {args.seeds}")
    section = table(name, experiment, summaries, args.preset, aggregators, seeds, minutes,
                    in_pieces=bool(resumed), missing=missing)
    os.makedirs(os.path.join(base, name), exist_ok=True)
    with open(os.path.join(base, name, EXPERIMENT_README), "w") as f:
      f.write(section + "\n")
    if args.archive:
      with open(os.path.join(args.archive, name, EXPERIMENT_README), "w") as f:
        f.write(section + "\n")
    sections.append(section)
  report = "\n\n".join(sections)
  with open(os.path.join(base, "tables.md"), "w") as f:
    f.write(report + "\n")
  print("\n" + report)
  print(f"\n(tables in {base}/tables.md)")
  return 0


EXPERIMENT_README = "README.md"
"""Each experiment's table, commands and wall time, in its directory (of the run and of the
archive), so that results/<experiment>/ opens on it."""

WALL_TIME = "Wall time: "
"""The start of a table's one line that its summaries cannot rebuild (it was measured)."""


def archived_section(archive: str, name: str) -> str:
  """The table of experiment ``name`` rebuilt from the summaries archived in
  ``archive/<name>/<run>/seed<S>/`` (the seeds any run has; the runs that lack one are
  named under the table, as ``--from_runs`` does), without a wall time."""
  experiment = EXPERIMENTS[name]
  summaries, seeds, missing = archived_summaries(archive, name)
  first = next(iter(summaries.values()))[0]
  return table(name, experiment, borrow_clean_baseline(experiment, summaries), first["preset"],
               ",".join(first["aggregators"]), seeds, missing=missing)


def archived_summaries(archive: str, name: str):
  """({run label: [summary per seed]}, the seeds any run has, [(label, seed) missing]) of
  experiment ``name`` archived in ``archive/<name>/<run>/seed<S>/``."""
  experiment = EXPERIMENTS[name]
  found = {}
  for label, _ in experiment.runs:
    directory = os.path.dirname(run_directory(archive, name, label, 0))
    if os.path.isdir(directory):
      found[label] = sorted(int(d.removeprefix("seed")) for d in os.listdir(directory)
                            if d.startswith("seed") and os.path.exists(
                                os.path.join(directory, d, "summary.json")))
  seeds = sorted({seed for each in found.values() for seed in each})
  summaries, missing = {}, []
  for label, _ in experiment.runs:
    for seed in seeds:
      path = os.path.join(run_directory(archive, name, label, seed), "summary.json")
      if not os.path.exists(path):
        missing.append((label, seed))
        continue
      with open(path) as f:
        summaries.setdefault(label, []).append(json.load(f))
  if not summaries:
    raise FileNotFoundError(f"{archive}/{name} holds no archived run")
  return summaries, seeds, missing


def without_wall_time(text: str) -> str:
  """``text`` without its measured wall-time line (and the blank line before it)."""
  kept = []
  for line in text.replace("\r", "").splitlines():
    if line.startswith(WALL_TIME):
      if kept and not kept[-1]:
        kept.pop()
      continue
    kept.append(line)
  return "\n".join(kept).strip() + "\n"


MATRIX_ROWS = (
    # (attack, setting, experiment, run label, the baseline run of an untargeted attack)
    ("naive backdoor, 1 of 10", "Fashion-MNIST", "fmnist_backdoor", "1 attacker", None),
    ("naive backdoor, 1 of 10", "MNIST", "table3_mnist_backdoor", "naive backdoor", None),
    ("model replacement, 1 of 10", "MNIST", "table3_mnist_backdoor", "model replacement", None),
    ("naive backdoor, 1 of 10", "CIFAR-10", "table3_cifar10_backdoor", "naive backdoor", None),
    ("model replacement, 1 of 10", "CIFAR-10", "table3_cifar10_backdoor", "model replacement",
     None),
    ("naive backdoor, 1 of 10", "LOAN, synthetic", "loan_synthetic", "naive backdoor", None),
    ("model replacement, 1 of 10", "LOAN, synthetic", "loan_synthetic", "model replacement",
     None),
    ("naive backdoor, 1 of 10", "LOAN, LoanStats3a (real)", "loan_backdoor", "1 attacker", None),
    ("naive backdoor, 1 of 10", "LOAN, Kaggle head (real)", "loan_backdoor_kaggle", "1 attacker",
     None),
    ("naive backdoor, 1 of 10", "LOAN, 2018 file (real)", "loan_2018", "naive backdoor", None),
    ("naive backdoor, 1 of 10", "LOAN, 2018 file, standardized", "loan_2018_standardized",
     "naive backdoor", None),
    *((f"label flip, {a} of 10", "CIFAR-10", "table1_cifar10_label_flip", f"{a} attackers", None)
      for a in range(1, 5)),
    *((f"label flip (every label), {a} of 10", "Amazon reviews", "table2_amazon_label_flip",
       f"{a} attackers", None) for a in range(1, 5)),
    ("mix rate 0.5, 4 of 10", "Amazon reviews", "table8_amazon_mix_rate", "mix rate 0.5", None),
    *((f"Gaussian noise s = {s}%, 10 of 100", "MNIST", "table4_mnist_gaussian", f"s = {s}%",
       "s = 0%") for s in (100, 300)),
)
"""The rows of RESULTS.md's matrix of the paper's settings (``--matrix``): a targeted
attack is scored by its excess attack success rate (its run has the clean baseline), an
untargeted one by the accuracy, its drop against the baseline run beside it."""
MATRIX_LEGEND = (
    "Targeted attacks: the excess attack success rate in points (attacked - the same run "
    "without attackers); Gaussian noise: the accuracy %; each mean ± sample sd (ddof = 1) over "
    "3 seeds, with the accuracy drop against the run without attackers in points. Best: the "
    "lowest excess (among the rules that lose under 5 points of accuracy) or the highest "
    "accuracy, every rule tied at this precision named; the rules compared are FedAvg, "
    "median, trimmed mean, FoolsGold and residual reweighting (FoolsGold without its history "
    "in these tables, made before 2026-12-07; with it, it fails the backdoor too: "
    "results/foolsgold_history_*). \"not ranked *\": the attack costs FedAvg under 5 points "
    "and under 50 points of excess attack success.")
MATRIX_BEGIN, MATRIX_END = "<!-- results.py --matrix: begin -->", "<!-- results.py --matrix: end -->"


def matrix(archive: str) -> str:
  """RESULTS.md's matrix: per row of ``MATRIX_ROWS``, the best of the experiment's
  aggregators (every one tied with it at the shown precision), residual reweighting and
  FedAvg, mean ± sample sd (ddof 1) over the archived seeds. A row whose attack does not
  hurt FedAvg (under 5 points and under 50 points of excess attack success) ranks nothing
  ("not ranked *"); against a targeted attack, a rule that loses 5 accuracy points or more
  is not a candidate for the best."""
  lines = [MATRIX_LEGEND, "", "| attack | setting | best rule(s) | residual | FedAvg |",
           "|---|---|---|---|---|"]
  for attack, setting, name, label, baseline in MATRIX_ROWS:
    summaries = borrow_clean_baseline(EXPERIMENTS[name], archived_summaries(archive, name)[0])
    attacked = by_aggregator(summaries[label])
    clean = by_aggregator(summaries[baseline]) if baseline else None
    targeted = clean is None

    def scores(aggregator):
      key = "window_excess_attack_success_rate" if targeted else "window_accuracy"
      return [r[key] for r in attacked[aggregator].values()]

    def drop(aggregator):
      return float(np.mean([(r["window_clean_accuracy"] if targeted else
                             clean[aggregator][seed]["window_accuracy"]) - r["window_accuracy"]
                            for seed, r in attacked[aggregator].items()]))

    def shown(aggregator):
      return (f"{cell(scores(aggregator), sign=targeted)}{'' if targeted else '%'} "
              f"(drop {100 * drop(aggregator):+.2f})")

    # a rule that loses 5 points of accuracy is no answer to a targeted attack
    candidates = [a for a in attacked if not targeted
                  or drop(a) < grid_statistics.HARM_POINTS] or list(attacked)
    rounded = {a: round(100 * float(np.mean(scores(a))), 2) for a in candidates}
    best_value = (min if targeted else max)(rounded.values())
    best = [a for a, value in rounded.items() if value == best_value]
    hurts = grid_statistics.harmful(
        drop("fedavg"), float(np.mean(scores("fedavg"))) if targeted else None)
    best_text = f"{', '.join(best)}: {shown(best[0])}" if hurts else "not ranked *"
    lines.append(f"| {attack} | {setting} | {best_text} | {shown('residual')} | "
                 f"{shown('fedavg')} |")
  return "\n".join(lines)


def by_aggregator(summaries: list[dict]) -> dict[str, dict[int, dict]]:
  """{aggregator: {seed: result}} of one run's summaries (one per seed)."""
  found = {}
  for summary in summaries:
    for aggregator, result in summary["results"].items():
      found.setdefault(aggregator, {})[summary["seed"]] = result
  return found


def check_matrix(archive: str, results_md: str = os.path.join(ROOT, "RESULTS.md")) -> bool:
  """Whether RESULTS.md's block between ``MATRIX_BEGIN`` and ``MATRIX_END`` equals
  ``matrix(archive)``; prints the difference."""
  import difflib
  with open(results_md) as f:
    text = f.read()
  if MATRIX_BEGIN not in text or MATRIX_END not in text:
    print(f"--check: {results_md} has no {MATRIX_BEGIN} ... {MATRIX_END} block")
    return False
  committed = text.split(MATRIX_BEGIN, 1)[1].split(MATRIX_END, 1)[0].strip()
  rebuilt = matrix(archive).strip()
  if committed == rebuilt:
    print(f"--check: the matrix in {os.path.basename(results_md)} equals its rebuild from "
          f"{archive}/")
    return True
  print("\n".join(list(difflib.unified_diff(committed.splitlines(), rebuilt.splitlines(),
                                            "RESULTS.md (committed)", "matrix (rebuilt)",
                                            lineterm="", n=0))[:40]))
  return False


VERDICT_GRID = "verdict_grid"
"""The calibrated grid's archive (``robustness_grid.py --verdict``), below ``results/``."""


def check_recommended(archive: str) -> bool:
  """Whether ``tff_residual``'s "recommended" names the rule with the best worst case
  of the archived verdict grid (``grid_statistics.recommended_rule`` over its grid.csv);
  prints the rule."""
  import csv

  from tff_residual.kernels import method_table
  path = os.path.join(archive, VERDICT_GRID, "grid.csv")
  with open(path, newline="") as f:
    best = grid_statistics.recommended_rule(list(csv.DictReader(f)))
  named = method_table.ALIASES[method_table.RECOMMENDED].target
  print(f"--check: the best worst case of {path} is {best}'s; "
        f"method={method_table.RECOMMENDED!r} is {named}"
        + ("" if best == named else ": THEY DIFFER"))
  return best == named


def check_archive(archive: str, names: list[str]) -> int:
  """Rebuilds each experiment of ``names`` archived in ``archive`` (it has a README.md)
  and compares it with that README.md; prints each difference; 1 if any."""
  import difflib
  checked, differing = [], []
  for name in names:
    path = os.path.join(archive, name, EXPERIMENT_README)
    if not os.path.exists(path):
      continue
    with open(path) as f:
      committed = without_wall_time(f.read())
    rebuilt = without_wall_time(archived_section(archive, name))
    checked.append(name)
    if rebuilt != committed:
      differing.append(name)
      diff = difflib.unified_diff(committed.splitlines(), rebuilt.splitlines(),
                                  f"{path} (committed)", f"{name} (rebuilt)", lineterm="", n=0)
      print("\n".join(list(diff)[:40]))
  print(f"--check: {len(checked)} archived experiment(s) in {archive}/ rebuilt from their "
        f"summaries; {len(differing)} differ" + (f": {', '.join(differing)}" if differing
                                                   else "; every table equals its README.md"))
  return 1 if differing else 0


def check_resumed(output_dir: str, command: list[str]) -> None:
  """Refuses to resume a run whose config.json came from another seed, preset or
  aggregator list than ``command`` asks for, or other rounds or batches per epoch
  where ``command`` sets them."""
  with open(os.path.join(output_dir, "config.json")) as f:
    settings = json.load(f)["settings"]
  flags = dict(a[2:].split("=", 1) for a in command if a.startswith("--") and "=" in a)
  saved = {"seed": str(settings["seed"]), "preset": settings["preset"],
           "aggregator": ",".join(settings["aggregators"])}
  saved.update({key: str(settings[key]) for key in ("rounds", "max_batches_per_epoch")
                if key in flags})
  wanted = {key: flags[key] for key in saved}
  # FoolsGold's history and centered clipping's radius: a run made before they existed
  # (no foolsgold_history in its config) ran without history and at tau = 10.
  legacy = "foolsgold_history" not in settings
  if "foolsgold" in settings["aggregators"]:
    saved["foolsgold_history"] = "false" if legacy else str(settings["foolsgold_history"]).lower()
    wanted["foolsgold_history"] = flags.get("foolsgold_history", "true")
  if "centered_clipping" in settings["aggregators"]:
    tau = settings.get("aggregator_params", {}).get("tau", 10.0 if legacy else None)
    saved["tau"] = None if tau is None else float(tau)
    wanted["tau"] = float(flags["tau"]) if "tau" in flags else None
  if "trimmed_mean" in ",".join(settings["aggregators"]):
    beta = settings.get("aggregator_params", {}).get("beta")
    saved["beta"] = None if beta is None else float(beta)
    wanted["beta"] = float(flags["beta"]) if "beta" in flags else None
  if saved != wanted:
    raise SystemExit(f"--resume: {output_dir} holds a run with {saved}, not {wanted}; "
                     "resume into a fresh directory")


def our_cell(results: list[dict]) -> str:
  """Accuracy / attack success rate [excess; clean accuracy] (w) over seeds."""
  text = cell([r["window_accuracy"] for r in results])
  if any(r.get("window_attack_success_rate") is not None for r in results):
    text += f" / {cell([r.get('window_attack_success_rate') for r in results])}"
  if any(r.get("window_clean_accuracy") is not None for r in results):
    text += (f" [{cell([r.get('window_excess_attack_success_rate') for r in results], sign=True)}"
             f"; {cell([r.get('window_clean_accuracy') for r in results])}]")
  shares = [r["attackers_weight_share"] for r in results if r["attackers_weight_share"] is not None]
  if shares:
    text += f" (w {np.mean(shares):.3f})"
  return text


def table(name: str, experiment: Experiment, summaries: dict, preset: str, aggregators: str,
          seeds: list[int], minutes: float | None = None, in_pieces: bool = False,
          missing: list[tuple[str, int]] = ()) -> str:
  """The Markdown section of one experiment. ``missing``: (run, seed) pairs not run yet
  (``--from_runs`` of a table in pieces); a cell then averages the seeds it has, and the
  section names the missing ones ("n/a" where a run has none)."""
  runs = [label for label, _ in experiment.runs]
  first = next(summaries[label][0] for label in runs if summaries.get(label))
  names = first["aggregators"]
  rows, columns = (runs, names) if experiment.runs_as_rows else (names, runs)
  paper = experiment.paper
  headers = []
  for column in columns:
    headers.append(column)
    if paper:
      headers.append(f"{column}: paper")
  clean = any(s.get("clean_baseline") for results in summaries.values() for s in results)
  cell_text = "accuracy % / attack success rate %, mean of the last 10 rounds" + (
      " (± sample standard deviation over seeds, ddof = 1)" if len(seeds) > 1 else "")
  if clean:
    cell_text += ("; [excess attack success rate in points = attacked - the same run without "
                  "attackers; accuracy without attackers]")
  lines = [f"#### {experiment.title}", "",
           f"Data: {first['data_source']}; {first['rounds']} rounds; preset {preset}; "
           f"always predicting the most frequent test class scores "
           f"{100 * first['majority_class_accuracy']:.2f}%; "
           f"seeds {','.join(map(str, seeds))}. Cells: {cell_text}; "
           "w = attackers' mean share of the aggregation weight in poisoning rounds.", "",
           "| " + ("run" if experiment.runs_as_rows else "aggregator") + " | "
           + " | ".join(headers) + " |",
           "|---|" + "---|" * len(headers)]
  for row in rows:
    cells = []
    for column in columns:
      run, aggregator = (row, column) if experiment.runs_as_rows else (column, row)
      cells.append(our_cell([s["results"][aggregator] for s in summaries.get(run, [])]))
      if paper:
        cells.append(paper.get(row, {}).get(column, "-"))
    lines.append(f"| {row} | " + " | ".join(cells) + " |")
  legacy = [name for name in ("foolsgold", "centered_clipping")
            if name in aggregators.split(",") and experiment.legacy_baselines]
  if legacy:
    lines += ["", "Made with the settings before 2026-12-07 (" + " ".join(LEGACY_FLAGS) + "): "
              + "; ".join({"foolsgold": "foolsgold on one round's features, without its history",
                           "centered_clipping": "centered_clipping at a fixed tau = 10"}[name]
                          for name in legacy) + "."]
  if missing:
    lines += ["", "Not run yet (their cells average the other seeds): " + ", ".join(
        f"{label} seed {seed}" for label, seed in missing) + "."]
  if experiment.clean_from:
    lines += ["", f"Clean baseline of every run: the {experiment.clean_from!r} run's training "
              "without attackers (the same clients and seeds); the other runs skip their own "
              "twin, which is that run round for round."]
  if experiment.note:
    lines += ["", experiment.note]
  if minutes is not None:
    how = ("the runs' own seconds, summed: the table was run in pieces (--resume), perhaps on "
           "other machines" if in_pieces else "on this machine")
    lines += ["", f"Wall time: {minutes:.1f} min for {len(runs) * len(seeds) - len(missing)} "
                  f"runs ({how})."]
  for heading, chosen in (("Commands (per seed S):", preset),
                          ("The paper's setup (for a GPU; not run here):", "paper")):
    lines += ["", heading, ""]
    lines += [f"    .venv/bin/python experiments/run.py {shown(experiment.flags_of(label, flags))}"
              f" --aggregator={aggregators} --preset={chosen} --seed=S"
              for label, flags in experiment.runs]
  return "\n".join(lines)


if __name__ == "__main__":
  sys.exit(main())
