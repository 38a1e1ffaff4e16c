#!/usr/bin/env python
"""Aggregator x attack x number of attackers: which defence stops which attack.

    .venv/bin/python scripts/robustness_grid.py --quick           # minutes (smoke preset)
    .venv/bin/python scripts/robustness_grid.py [--datasets fmnist,loan] [--seeds 0,1,2]
        [--attacks ...] [--num_attackers 1,2] [--aggregators ...] [--resume DIR] [--jobs 2]
        [--archive results/robustness_grid] [--table_only]

Each (dataset, attack, number of attackers f, seed) is one ``experiments/run.py``
call with every aggregator that can run with f (Krum needs K >= 2f + 3, Bulyan
K >= 4f + 3: the others are marked "needs K >= n"). Its baseline is one run
with ``--num_attackers=0 --num_byzantine=f`` (the same clients, seeds, rounds
and aggregator settings without attackers, which equals the built-in clean
twin), shared by the attacks that share a setup: the six model-poisoning
attacks share one per (dataset, f, seed), so the grid costs about half of
running each attack with ``--clean_baseline=true``. A cell is the mean ± sample
standard deviation (ddof = 1) over seeds of the last-10-round mean accuracy, with its
paired difference against the column's best rule (``grid_statistics``). Writes to the
output directory:

* ``grid.csv``: one row per (dataset, attack, f, aggregator, seed): accuracy,
  accuracy without attackers, the drop, attack success rate and its excess
  (targeted attacks), the attackers' weight share and the detection AUC;
* ``heatmap_<dataset>_accuracy_drop.png`` and ``heatmap_<dataset>_excess_asr.png``:
  the harm per (aggregator, attack x f), the accuracy drop against the run without
  attackers and (targeted attacks) the excess attack success rate, with a worst-case
  column (the largest harm; ByzFL's benchmark reports a worst case too);
* ``grid.md``: the same as Markdown tables, for RESULTS.md, each ending with the
  aggregator(s) of the highest accuracy and, for targeted attacks, of the lowest
  excess attack success rate per column.

An attack that does not hurt the undefended mean cannot rank defences: a column in
which FedAvg loses under 5 accuracy points and (targeted attacks) gains under 50
points of excess attack success is marked "no harm to FedAvg", names no best rule and
stays out of the worst case (``grid_statistics.hurts_fedavg``). ``--leave_out
ATTACK@F,...`` does not run such cells at all (found by a FedAvg-only calibration).

Every run trains at most ``--max_batches_per_epoch`` (default 10) local batches per
epoch, the cpu preset's CIFAR-10 value, against its 31 for Fashion-MNIST and LOAN, to
shorten the grid (its measured cost: results/NOTES.md, "Model-poisoning attacks").

Runs whose summary.json is in ``--resume DIR`` are not run again, so the grid
can be run in pieces (a run killed midway continues from its last finished round, `run.py
--resume`; one killed before its first round ended is run again). The runs go seed by seed (every
run of seed 0 first), so a grid stopped midway has every cell, over fewer seeds. ``--archive DIR`` (e.g.
results/robustness_grid) keeps each finished run's summary.json and config.json
there as soon as it ends, and the grid's CSV, Markdown and heatmaps at the end; a
run archived there counts as done, so a grid whose output directory was lost (runs/
is not committed) resumes from the archive. ``--table_only`` runs nothing and
writes the outputs of the runs already there, naming the missing ones. ``--jobs 2`` runs two
run.py processes at a time (each logs to run.log in its output directory); the
numbers equal those of ``--jobs 1`` (tested), only the order of the runs changes.
A resumed run made with another seed, preset, aggregator list, rounds or batches per
epoch, FoolsGold history, centered-clipping radius or trimmed-mean beta stops the grid
(``results.check_resumed``). The archived grid ran FoolsGold without its history and
centered clipping at tau = 10, which clipped nothing (``results.LEGACY_FLAGS``, kept by
default so that it regenerates); ``--current_defaults`` runs both at their best and
tells the trimmed means the true f (``true_f_flags``).
"""

from __future__ import annotations

import argparse
import collections
import csv
import datetime
import functools
import json
import math
import os
import shutil
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grid_statistics as stats  # noqa: E402
import results as results_script  # noqa: E402  (load_cli, run_directory)
from tff_residual.tasks.presets import MODEL_POISONING_ATTACKS  # noqa: E402

PAPER_ATTACKS = ("label_flip", "backdoor", "gaussian")
MODEL_POISONING = MODEL_POISONING_ATTACKS
LATER_ATTACKS = ("large_value", "fang_krum", "fang_trimmed_mean", "optimal_alie", "optimal_ipm",
                 "mimic")
DEFAULT_ATTACKS = PAPER_ATTACKS + tuple(a for a in MODEL_POISONING if a not in LATER_ATTACKS)
"""The attacks of the archived grid (results/robustness_grid); ``--attacks`` runs the
attacks that came after it (``LATER_ATTACKS``: large values, Fang et al.'s two, the tuned
ALIE and IPM, Mimic)."""
AGGREGATORS = ("fedavg", "median", "trimmed_mean", "foolsgold", "residual", "residual_paper",
               "krum", "multi_krum", "geometric_median", "centered_clipping", "bulyan",
               "nnm+residual")
"""Every method of the library (repeated_median is left out: the code's reduces to
the median) and nearest-neighbour mixing around residual reweighting."""
CSV_COLUMNS = ("dataset", "attack", "num_attackers", "aggregator", "seed", "accuracy",
               "clean_accuracy", "accuracy_drop", "attack_success_rate",
               "excess_attack_success_rate", "attackers_weight_share", "detection_auc")
QUICK = dict(datasets="fmnist", seeds="0", num_attackers="1", preset="smoke", rounds=0,
             max_batches_per_epoch=0)
VERDICT_AGGREGATORS = ("fedavg", "median", "trimmed_mean", "foolsgold", "residual",
                       "repeated_median_paper", "krum", "multi_krum", "geometric_median",
                       "centered_clipping", "bulyan", "nnm+residual", "arc+nnm+trimmed_mean",
                       "bucketing+residual")
"""Every defence at its best (issue 31): every method, the paper's Repeated Median, ByzFL's
default pipeline (ARC, NNM, trimmed mean) and the two wrappers around residual
reweighting. The paper's variant of residual (``residual_paper``) is left out for the
budget: in the first grid it stayed within 1.4 accuracy points and 3.5 points of excess
attack success of ``residual`` in every cell (results/robustness_grid/grid.csv)."""
VERDICT_ATTACKS = ("label_flip", "backdoor", "gaussian", "sign_flip", "large_value",
                   "fang_trimmed_mean", "optimal_alie", "optimal_ipm", "mimic")
"""The attacks that hurt FedAvg (5 accuracy points or 50 points of excess attack success)
at f = 2 or 4 in the FedAvg-only calibration (one seed; Fashion-MNIST with 10 clients,
LOAN with 11: runs/calibration31_*, summarized in RESULTS.md). Left out: ALIE with
Baruch et al.'s z, IPM with epsilon 0.5, Min-Max and Fang et al.'s attack on Krum, which
cost FedAvg at most 4.4 points on either dataset (their tuned or general forms, the
optimal ALIE and IPM, are in); Min-Sum and the adaptive attack, which cost it 5.1 and 5.6
points on LOAN at f = 4 only, for the budget."""
VERDICT_LEFT_OUT = ("label_flip@2,fang_trimmed_mean@2,gaussian@2,large_value@2,backdoor@2,"
                    "loan:label_flip@4,loan:fang_trimmed_mean@4,loan:sign_flip@2,loan:mimic@2,"
                    "loan:mimic@4")
"""Cells not run. Harmless in the calibration (under 5 points and 50 points of excess for
FedAvg): label flipping and Fang et al.'s attack on the trimmed mean at f = 2 on both
datasets, and on LOAN label flipping (+0.3 points of excess) and Fang's attack at f = 4,
sign flipping at f = 2 and Mimic at both f. For the budget (about 10 hours): Gaussian
noise, large values and the backdoor at f = 2, where f = 4 hurts FedAvg as much or more
(Gaussian noise 46.8 against 36.8 points, large values the same 64.6, the backdoor +94.4
against +94.3 points of excess), so f = 4 ranks the rules against them."""
VERDICT = dict(
    datasets="fmnist,loan", attacks=",".join(VERDICT_ATTACKS), num_attackers="2,4",
    aggregators=",".join(VERDICT_AGGREGATORS), current_defaults=True,
    data_paths="loan=../shared/data/loan/kaggle_loan2015_head_4999x74.csv.gz",
    run_flags="--num_clients=11 --clients_per_round=0",
    dataset_flags="fmnist=--partition=dirichlet", attack_flags="gaussian=--noise_scale=300",
    leave_out=VERDICT_LEFT_OUT)
"""``--verdict``: the grid behind RESULTS.md's verdict. 11 clients, every one in every
round (no cell whose attackers were never sampled), so that Krum runs at f = 4 (K >= 2f +
3) and Bulyan at f = 2 (K >= 4f + 3; at f = 4 it needs 19); Fashion-MNIST on a Dirichlet
(0.9) split, LOAN one client per state on the real Kaggle head (4,999 loans, 7 statuses,
the paper's 74-column schema; its model learns 16 points above the majority class, where
on LoanStats3a no rule beats it); every rule told the true f; the cells the calibration
found harmless left out."""


def runnable(aggregators, num_attackers: int, clients_per_round: int):
  """(aggregators that run with f attackers, {name: why not} for the others)."""
  from tff_residual.kernels import method_table
  ok, skipped = [], {}
  for name in aggregators:
    params = {"num_byzantine": num_attackers} if "num_byzantine" in method_table.fields_of(
        name) else {}
    needed = method_table.resolve(name, **params).minimum_clients()
    if needed > clients_per_round:
      skipped[name] = f"needs K >= {needed}"
    else:
      ok.append(name)
  return ok, skipped


def clients_per_round(cli, dataset: str, attack: str, preset: str, run_flags: str = "") -> int:
  """The task's clients per round, with the user's ``--run_flags`` on top."""
  given = cli.build_parser().parse_args(run_flags.split()) if run_flags else None
  values = {k: v for k, v in vars(given).items()
            if v is not None and k in cli.SETTING_NAMES} if given else {}
  config, _ = cli.build_config(f"{dataset}_{attack}", preset=preset, **values)
  return config.participants_per_round


def mean(values):
  values = [v for v in values if v is not None and math.isfinite(v)]
  return float(np.mean(values)) if values else float("nan")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--quick", action="store_true",
                      help="fmnist, seed 0, 1 attacker, smoke preset: minutes")
  parser.add_argument("--verdict", action="store_true",
                      help="the grid behind RESULTS.md's verdict (VERDICT: datasets, attacks, "
                           "f = 2 and 4 of 11 clients, every defence at its best); hours")
  parser.add_argument("--datasets", default="fmnist,loan")
  parser.add_argument("--attacks", default=",".join(DEFAULT_ATTACKS))
  parser.add_argument("--num_attackers", default="1,2")
  parser.add_argument("--aggregators", default=",".join(AGGREGATORS))
  parser.add_argument("--current_defaults", action="store_true",
                      help="run FoolsGold with its history and centered clipping with the "
                           "adaptive radius (run.py's defaults since 2026-12-07), and tell the "
                           "trimmed means the true f (beta = (f + 1/2) / K); without it "
                           "the grid keeps the archived grid's settings, "
                           "results.LEGACY_FLAGS")
  parser.add_argument("--data_paths", default="",
                      help="DATASET=PATH,...: each dataset's --data_path (e.g. "
                           "loan=../shared/data/loan/LoanStats3a_2007_2011_39786x16.csv.gz for "
                           "the real LOAN file; default: each task's own, the synthetic LOAN)")
  parser.add_argument("--run_flags", default="",
                      help="run.py flags added to every run, space-separated (e.g. "
                           "'--num_clients=10 --clients_per_round=0': every client, attackers "
                           "included, in every round)")
  parser.add_argument("--leave_out", default="",
                      help="[DATASET:]ATTACK@F,...: (attack, f) cells not to run, on every "
                           "dataset or on one, e.g. the ones that did not hurt FedAvg in a "
                           "calibration run (named under the tables)")
  parser.add_argument("--dataset_flags", default="",
                      help="DATASET=FLAGS;...: run.py flags for one dataset's runs (e.g. "
                           "'fmnist=--partition=dirichlet')")
  parser.add_argument("--attack_flags", default="",
                      help="ATTACK=FLAGS;...: run.py flags for one attack's attacked runs (e.g. "
                           "'gaussian=--noise_scale=300', the attack's strength)")
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--preset", default="cpu")
  parser.add_argument("--rounds", type=int, default=30,
                      help="rounds of every run (default 30, the cpu preset's backdoor and LOAN "
                           "rounds; 0 = each task's preset)")
  parser.add_argument("--max_batches_per_epoch", type=int, default=10,
                      help="local batches per epoch of every run (default 10, the cpu preset's "
                           "CIFAR-10 value, against 31 for Fashion-MNIST and LOAN; 0 = each "
                           "task's preset)")
  parser.add_argument("--output_dir", default=None, help="default runs/grid-<timestamp>")
  parser.add_argument("--resume", default=None, help="an earlier output directory to finish")
  parser.add_argument("--archive", default=None,
                      help="also keep each run's summary.json and config.json, and the grid's "
                           "outputs, in this directory (e.g. results/robustness_grid); runs "
                           "archived there are not run again")
  parser.add_argument("--table_only", action="store_true",
                      help="run nothing: write the CSV, tables and heatmaps of the runs already "
                           "in --resume / --archive (a grid in pieces); the missing runs are "
                           "counted under the tables")
  parser.add_argument("--jobs", type=int, default=1,
                      help="run.py processes at a time (1: in this process; more: subprocesses, "
                           "each logging to run.log in its output directory)")
  args = parser.parse_args(argv)
  if args.jobs < 1:
    parser.error(f"--jobs must be >= 1, got {args.jobs}")
  if args.quick and args.verdict:
    parser.error("--quick and --verdict exclude each other")
  for preset, chosen in ((QUICK, args.quick), (VERDICT, args.verdict)):
    for key, value in preset.items() if chosen else ():
      if getattr(args, key) == parser.get_default(key):
        setattr(args, key, value)
  datasets = [d for d in args.datasets.split(",") if d]
  attacks = [a for a in args.attacks.split(",") if a]
  dataset_flags = named_flags(parser, "--dataset_flags", args.dataset_flags, datasets)
  attack_flags = named_flags(parser, "--attack_flags", args.attack_flags, attacks)
  data_paths = dict(item.split("=", 1) for item in args.data_paths.split(",") if item)
  if set(data_paths) - set(datasets):
    parser.error(f"--data_paths names {sorted(set(data_paths) - set(datasets))}, which "
                 f"--datasets does not run")
  counts = [int(f) for f in args.num_attackers.split(",") if f]
  seeds = [int(s) for s in args.seeds.split(",") if s]
  aggregators = [a for a in args.aggregators.split(",") if a]
  left_out = parse_cells(parser, args.leave_out, datasets, attacks, counts)

  def columns_of(dataset):
    """The (attack, f) columns the grid runs on ``dataset``."""
    return [(a, f) for a in attacks for f in counts
            if (None, a, f) not in left_out and (dataset, a, f) not in left_out]

  columns = [(a, f) for a in attacks for f in counts
             if any((a, f) in columns_of(dataset) for dataset in datasets)]
  base = args.resume or args.output_dir or os.path.join(
      "runs", f"grid-{datetime.datetime.now():%Y%m%d-%H%M%S}")
  os.makedirs(base, exist_ok=True)
  cli = results_script.load_cli()
  start = datetime.datetime.now()
  rows, skipped, pairs, commands = [], {}, [], {}

  def planned(task, f, names, seed, output_dir, *extra):
    """Plans one run.py call (once per output directory); returns its directory."""
    dataset = task.split("_", 1)[0]
    if dataset in data_paths:
      extra = (*extra, f"--data_path={data_paths[dataset]}")
    extra = (*extra, *args.run_flags.split(), *dataset_flags.get(dataset, "").split())
    command = [f"--task={task}", f"--num_attackers={f}", f"--aggregator={','.join(names)}",
               f"--preset={args.preset}", f"--seed={seed}", f"--output_dir={output_dir}",
               "--no_progress", "--clean_baseline=false", *extra,
               *(() if args.current_defaults else results_script.LEGACY_FLAGS)]
    if args.rounds:
      command.append(f"--rounds={args.rounds}")
    if args.max_batches_per_epoch:
      command.append(f"--max_batches_per_epoch={args.max_batches_per_epoch}")
    commands.setdefault(output_dir, command)
    return output_dir

  for dataset in datasets:
    for attack in attacks:
      setup = "model_poisoning" if attack in MODEL_POISONING else attack
      for f in counts:
        if (attack, f) not in columns_of(dataset):
          continue
        flags = f"{args.run_flags} {dataset_flags.get(dataset, '')}".strip()
        k = clients_per_round(cli, dataset, attack, args.preset, flags)
        names, why = runnable(aggregators, f, k)
        skipped.update({(dataset, attack, f, name): text for name, text in why.items()})
        told = true_f_flags(names, f, k, flags) if args.current_defaults else ()
        for seed in seeds:
          clean = planned(f"{dataset}_{attack}", 0, names, seed,
                          results_script.run_directory(base, dataset, f"clean_{setup}_f{f}", seed),
                          f"--num_byzantine={f}", *told)
          attacked = planned(f"{dataset}_{attack}", f, names, seed,
                             results_script.run_directory(base, dataset, f"{attack}_f{f}", seed),
                             *told, *attack_flags.get(attack, "").split())
          pairs.append((dataset, attack, f, seed, clean, attacked))

  if args.archive:
    restored = restore_archived(list(commands), base, args.archive)
    if restored:
      print(f"{restored} runs restored from {args.archive}", flush=True)
  # seed by seed: a grid stopped midway has every cell, over fewer seeds
  to_run = sorted((d for d in commands if not os.path.exists(os.path.join(d, "summary.json"))),
                  key=lambda d: int(os.path.basename(d).removeprefix("seed")))
  for done in set(commands) - set(to_run):
    results_script.check_resumed(done, commands[done])
  print(f"{len(commands)} runs, {len(commands) - len(to_run)} already done, "
        f"{len(to_run)} to run ({args.jobs} at a time)", flush=True)
  keep = None
  if args.archive:
    for done in set(commands) - set(to_run):  # done here but perhaps not archived yet
      archive_run(done, base, args.archive)
    keep = functools.partial(archive_run, base=base, archive=args.archive)
  missing = to_run if args.table_only else []
  if args.table_only and len(missing) == len(commands):
    parser.error(f"--table_only: {base} holds no run of this grid")
  if not args.table_only and not execute(cli, {d: commands[d] for d in to_run}, args.jobs, keep):
    return 1
  summaries = {}
  for output_dir in set(commands) - set(missing):
    with open(os.path.join(output_dir, "summary.json")) as fh:
      summaries[output_dir] = json.load(fh)["results"]
  pairs = [p for p in pairs if p[4] in summaries and p[5] in summaries]
  def own_minutes(directories):
    """The runs' own time: each run's wall_seconds summed over its aggregators."""
    return sum(r["wall_seconds"] for d in directories for r in summaries[d].values()) / 60

  for dataset, attack, f, seed, clean_dir, attacked_dir in pairs:
    clean = summaries[clean_dir]
    for name, result in summaries[attacked_dir].items():
      baseline = clean[name]
      asr, clean_asr = (result.get("window_attack_success_rate"),
                        baseline.get("window_attack_success_rate"))
      rows.append(dict(
          dataset=dataset, attack=attack, num_attackers=f, aggregator=name, seed=seed,
          accuracy=result["window_accuracy"], clean_accuracy=baseline["window_accuracy"],
          accuracy_drop=baseline["window_accuracy"] - result["window_accuracy"],
          attack_success_rate=asr,
          excess_attack_success_rate=None if asr is None or clean_asr is None
          else asr - clean_asr,
          attackers_weight_share=result.get("attackers_weight_share"),
          detection_auc=result.get("detection_auc")))
  minutes = (datetime.datetime.now() - start).total_seconds() / 60
  with open(os.path.join(base, "grid.csv"), "w", newline="") as fh:
    writer = csv.DictWriter(fh, CSV_COLUMNS)
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
  report = [markdown(dataset, rows, skipped, aggregators, columns_of(dataset), seeds,
                     args.preset) for dataset in datasets]
  heatmaps = [name for dataset in datasets for name in stats.harm_heatmaps(
      base, dataset, rows, aggregators, columns_of(dataset))]
  left_out_text = ", ".join(f"{d + ' ' if d else ''}{a}, f = {f}"
                            for d, a, f in sorted(left_out, key=lambda c: (c[0] or "", *c[1:])))
  text = "\n\n".join(report) + (f"\n\nNot run (--leave_out): {left_out_text}." if left_out
                                   else "") + (
      f"\n\n{stats.recommendation_text(rows)}") + (
      (f"\n\nNot run yet ({len(missing)} of {len(commands)} runs; their cells are missing or "
       f"averaged over fewer seeds): {not_run(missing, base)}." if missing else "")
      + f"\n\nWall time: {minutes:.1f} min for this call ({len(to_run) - len(missing)} of "
      f"{len(commands)} runs; "
      f"{len(rows)} rows; {sum(map(len, summaries.values()))} aggregator runs); the runs' own "
      f"time, summed over every run and aggregator: {own_minutes(summaries):.1f} min (this "
      f"call's runs: {own_minutes([d for d in to_run if d in summaries]):.1f} min). Own time "
      f"per run, baselines included: {own_time_by_setup(summaries, base, own_minutes)}.\n")
  with open(os.path.join(base, "grid.md"), "w") as fh:
    fh.write(text)
  with open(os.path.join(base, "verdict.md"), "w") as fh:
    fh.write(f"{VERDICT_LEGEND}\n\n{stats.verdict_matrix(rows, datasets, columns)}\n")
  if args.archive:
    for name in ["grid.csv", "grid.md", "verdict.md", *heatmaps]:
      shutil.copyfile(os.path.join(base, name), os.path.join(args.archive, name))
  print("\n" + text + f"\n(grid.csv, grid.md and heatmaps in {base})")
  return 0


VERDICT_LEGEND = (
    "Per attack, f and dataset: the best rule (lowest mean excess attack success rate for a "
    "targeted attack, highest mean accuracy for an untargeted one), residual reweighting and "
    "FedAvg, mean ± sample sd (ddof = 1) over seeds; residual's Δ is its paired difference "
    "against the best, (k/n) the seeds on which its sign holds, † where they disagree. A row "
    "whose attack costs FedAvg under 5 points and under 50 points of excess attack success "
    "ranks nothing.")


def parse_cells(parser, text: str, datasets, attacks, counts) -> set:
  """{(dataset or None for every dataset, attack, f)} of ``[DATASET:]ATTACK@F,...``; a
  cell the grid does not have is a parser error."""
  cells = set()
  for cell in (c for c in text.split(",") if c):
    dataset, _, rest = cell.rpartition(":")
    attack, _, f = rest.partition("@")
    if not f.isdigit() or (dataset and dataset not in datasets) or attack not in attacks \
        or int(f) not in counts:
      parser.error(f"--leave_out takes [DATASET:]ATTACK@F,... of the grid's datasets, attacks "
                   f"and f; got {cell!r}")
    cells.add((dataset or None, attack, int(f)))
  return cells


def named_flags(parser, option: str, text: str, names: list[str]) -> dict[str, str]:
  """{name: run.py flags} of ``NAME=FLAGS;...``; an unknown name is a parser error."""
  try:
    flags = {name: value for name, value in (item.split("=", 1) for item in text.split(";")
                                             if item)}
  except ValueError:
    parser.error(f"{option} takes NAME=FLAGS;..., got {text!r}")
  if set(flags) - set(names):
    parser.error(f"{option} names {sorted(set(flags) - set(names))}, which the grid does not "
                 f"run")
  return flags


def true_f_flags(names, f: int, clients: int, run_flags: str) -> tuple[str, ...]:
  """Every rule told the true f: Krum, Bulyan and the wrappers take ``num_byzantine``
  = f from run.py; a trimmed mean (alone or inside a wrapper) trims f per side, beta =
  (f + 1/2) / K (floor(beta K) = f), unless ``run_flags`` sets ``--beta``."""
  if not any("trimmed_mean" in name for name in names) or "--beta=" in run_flags:
    return ()
  return (f"--beta={(f + 0.5) / clients:.6g}",)


def not_run(output_dirs: list[str], base: str) -> str:
  """``dataset/label seeds a,b`` per setting, for the runs of ``output_dirs``."""
  seeds = {}
  for output_dir in output_dirs:
    setting, seed = os.path.split(os.path.relpath(output_dir, base))
    seeds.setdefault(setting, []).append(seed.removeprefix("seed"))
  return "; ".join(f"{setting} seed(s) {','.join(sorted(found))}"
                   for setting, found in sorted(seeds.items()))


ARCHIVED_FILES = ("summary.json", "config.json")


def archive_run(output_dir: str, base: str, archive: str) -> None:
  """Copies a finished run's summary.json and config.json from ``base/X`` to
  ``archive/X``."""
  kept = os.path.join(archive, os.path.relpath(output_dir, base))
  os.makedirs(kept, exist_ok=True)
  for name in ARCHIVED_FILES:
    shutil.copyfile(os.path.join(output_dir, name), os.path.join(kept, name))


def restore_archived(output_dirs: list[str], base: str, archive: str) -> int:
  """Copies back into ``base`` the archived files of each run that has no
  summary.json there but has one in ``archive``; returns how many."""
  restored = 0
  for output_dir in output_dirs:
    kept = os.path.join(archive, os.path.relpath(output_dir, base))
    if (not os.path.exists(os.path.join(output_dir, "summary.json"))
        and os.path.exists(os.path.join(kept, "summary.json"))):
      if os.path.exists(output_dir):
        shutil.rmtree(output_dir)  # a run killed before its summary
      os.makedirs(output_dir)
      for name in ARCHIVED_FILES:
        shutil.copyfile(os.path.join(kept, name), os.path.join(output_dir, name))
      restored += 1
  return restored


def resumable(output_dir: str, command: list[str]) -> list[str]:
  """The command line that finishes the run of ``output_dir``: ``--resume`` where a killed
  run left its checkpoint and config.json (run.py takes every setting from there and
  checks the data against it), else ``command`` on a cleared directory."""
  from tff_residual.simulation.checkpoint import FILE as CHECKPOINT
  if all(os.path.exists(os.path.join(output_dir, name)) for name in (CHECKPOINT, "config.json")):
    return [f"--resume={output_dir}", "--no_progress"]
  if os.path.exists(output_dir):
    shutil.rmtree(output_dir)  # killed before its first round ended: run it again
  return command


def execute(cli, commands: dict[str, list[str]], jobs: int, on_done=None) -> bool:
  """Runs each run.py command line of ``{output directory: command}``: in this
  process (jobs = 1) or as ``jobs`` subprocesses at a time, each writing its
  output to run.log in its output directory; ``on_done(output directory)`` is
  called as each run ends well (the grid archives it). A run that fails stops the grid: no
  new run starts, the running ones finish, and its log's last lines are printed.
  A directory left without summary.json by a run killed before its end continues
  from its last round (``run.py --resume``) where it holds the run's checkpoint and
  config.json; it is cleared and run again otherwise."""
  commands = {output_dir: resumable(output_dir, command) for output_dir, command in commands.items()}
  if jobs == 1:
    for output_dir, command in commands.items():
      print(f"\n### run.py {' '.join(command)}", flush=True)
      if cli.main(command) != 0:
        print(f"run failed: {output_dir}", flush=True)
        return False
      if on_done:
        on_done(output_dir)
    return True
  import subprocess
  script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "experiments", "run.py")
  waiting, running, failed = list(commands.items()), [], []
  while waiting or running:
    while waiting and len(running) < jobs and not failed:
      output_dir, command = waiting.pop(0)
      os.makedirs(output_dir, exist_ok=True)
      log = open(os.path.join(output_dir, "run.log"), "a")  # a resumed run's log goes on
      print(f"### run.py {' '.join(command)}", flush=True)
      running.append((subprocess.Popen([sys.executable, script, *command], stdout=log,
                                       stderr=subprocess.STDOUT), output_dir, log))
    if failed and not running:
      break
    finished = next((r for r in running if r[0].poll() is not None), None)
    if finished is None:
      time.sleep(1)
      continue
    running.remove(finished)
    process, output_dir, log = finished
    log.close()
    if process.returncode != 0:
      failed.append(output_dir)
      with open(os.path.join(output_dir, "run.log")) as fh:
        tail = fh.read().splitlines()[-15:]
      print(f"run failed (exit {process.returncode}): {output_dir}\n  "
            + "\n  ".join(tail), flush=True)
    else:
      print(f"done: {output_dir}", flush=True)
      if on_done:
        on_done(output_dir)
  return not failed


def own_time_by_setup(summaries, base, own_minutes) -> str:
  """'dataset setup M min (n runs)' per setup: an attack, or the model-poisoning six together,
  with their baselines (what --jobs and --max_batches_per_epoch trade against)."""
  groups = collections.defaultdict(list)
  for directory in summaries:
    dataset, label = os.path.relpath(directory, base).split(os.sep)[:2]
    setup = label.rsplit("_f", 1)[0].removeprefix("clean_")
    groups[dataset, "model_poisoning" if setup in MODEL_POISONING else setup].append(directory)
  return "; ".join(f"{dataset} {setup} {own_minutes(dirs) / len(dirs):.2f} min ({len(dirs)} runs)"
                   for (dataset, setup), dirs in sorted(groups.items()))


def cell_means(rows, dataset, aggregators, columns):
  """{(aggregator, attack, f): (mean accuracy, drop, AUC, excess attack success
  rate)} over seeds, for each (attack, f) of ``columns``."""
  means = {}
  for name in aggregators:
    for attack, f in columns:
        chosen = [r for r in rows if (r["dataset"], r["aggregator"], r["attack"],
                                      r["num_attackers"]) == (dataset, name, attack, f)]
        if chosen:
          means[(name, attack, f)] = tuple(mean([r[key] for r in chosen]) for key in (
              "accuracy", "accuracy_drop", "detection_auc", "excess_attack_success_rate"))
  return means


def markdown(dataset, rows, skipped, aggregators, columns, seeds, preset) -> str:
  """The grid of one dataset, a column per (attack, f) of ``columns``: a column whose
  attack does not hurt FedAvg (``grid_statistics.hurts_fedavg``) names no best rule
  and stays out of the worst case."""
  means = cell_means(rows, dataset, aggregators, columns)
  ranked = stats.ranked_columns(rows, dataset, columns)
  worst_case = {name: per[dataset][0] for name, per in
                stats.worst_cases(rows, {dataset: ranked}).items() if dataset in per}
  best = {(a, f): stats.best_rule(rows, dataset, a, f, [
      n for n in aggregators if (dataset, a, f, n) not in skipped]) if (a, f) in ranked
      else None for a, f in columns}
  header = [f"{a}, f = {f}" + ("" if (a, f) in ranked else " (no harm to FedAvg)")
            for a, f in columns]
  lines = [f"#### Robustness grid: {dataset}, preset {preset}, seeds {','.join(map(str, seeds))}",
           "", stats.LEGEND, "",
           "| aggregator | " + " | ".join(header) + " | worst case |",
           "|---|" + "---|" * (len(columns) + 1)]
  for name in aggregators:
    cells = []
    for attack, f in columns:
      if (dataset, attack, f, name) in skipped:
        cells.append(skipped[(dataset, attack, f, name)])
        continue
      value = means.get((name, attack, f))
      if value is None:
        cells.append("-")
        continue
      accuracy, drop, auc, excess = value
      seeds_of = lambda key: stats.by_seed(rows, dataset, name, attack, f, key).values()
      extra = ("" if math.isnan(excess) else
               f"; ASR {stats.points(*stats.spread(seeds_of(stats.EXCESS)), sign=True)}")
      extra += "" if math.isnan(auc) else f"; AUC {auc:.2f}"
      cells.append(f"{stats.points(*stats.spread(seeds_of(stats.ACCURACY)))} "
                   f"[{100 * drop:+.1f}{extra}]"
                   + stats.difference_text(rows, dataset, name, attack, f, best[attack, f]))
    worst_text = f"{100 * worst_case[name]:.1f}" if name in worst_case else "-"
    lines.append(f"| {name} | " + " | ".join(cells) + f" | {worst_text} |")
  lines += best_rows(means, aggregators, columns, ranked, worst_case)
  return "\n".join(lines)


def leaders(scores: dict[str, float], highest: bool) -> str:
  """The names whose score, rounded to 0.1 point as the table shows it, is the
  best (the highest or the lowest); "-" when no score is finite."""
  shown = {name: round(100 * value, 1) for name, value in scores.items() if math.isfinite(value)}
  if not shown:
    return "-"
  best = (max if highest else min)(shown.values())
  return ", ".join(name for name, value in shown.items() if value == best)


def best_rows(means, aggregators, columns, ranked, worst_case) -> list[str]:
  """Two rows under the grid: per ranked column, the aggregator(s) with the highest mean
  accuracy (worst-case column: the highest worst case over the ranked columns) and, for
  targeted attacks, the lowest mean excess attack success rate ("n/a" for untargeted
  ones); "not ranked" under a column whose attack does not hurt FedAvg. ``worst_case``:
  aggregator -> its worst case (``grid_statistics.worst_cases``)."""
  accuracy = [leaders({n: means[(n, a, f)][0] for n in aggregators if (n, a, f) in means}, True)
              if (a, f) in ranked else "not ranked" for a, f in columns]
  worst_cases = {n: worst_case[n] for n in aggregators if n in worst_case}
  excess = []
  for a, f in columns:
    scores = {n: means[(n, a, f)][3] for n in aggregators if (n, a, f) in means}
    excess.append("not ranked" if (a, f) not in ranked else leaders(scores, False)
                  if any(map(math.isfinite, scores.values())) else "n/a")
  return ["| **highest accuracy** | " + " | ".join(accuracy)
          + f" | {leaders(worst_cases, True)} |",
          "| **lowest excess ASR** | " + " | ".join(excess) + " | |"]


if __name__ == "__main__":
  sys.exit(main())
