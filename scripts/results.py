#!/usr/bin/env python
"""Runs the experiments behind RESULTS.md and prints their tables (Markdown).

    .venv/bin/python scripts/results.py [--seeds 0,1,2] [--only NAME[,NAME]] [--preset cpu]

Each experiment is one `experiments/run.py` command (printed with the table),
run once per seed; a table cell is the mean over seeds of the last-10-round
means of accuracy / attack success rate (± the standard deviation over seeds
when there are several). Outputs stay in runs/results-<timestamp>/.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_LOAN_DIR = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "loan"))
LOANSTATS = os.path.join(SHARED_LOAN_DIR, "LoanStats3a_2007_2011_39786x16.csv.gz")
KAGGLE_HEAD = os.path.join(SHARED_LOAN_DIR, "kaggle_loan2015_head_4999x74.csv.gz")
AGGREGATORS = "fedavg,median,trimmed_mean,foolsgold,residual"

# name -> (table title, list of (column label, run.py flags))
EXPERIMENTS = {
    "fmnist_backdoor": ("fmnist_backdoor: 10 clients, 1 attacker", [
        ("1 attacker", ["--task=fmnist_backdoor"])]),
    "fmnist_label_flip": ("fmnist_label_flip: 100 clients, 10 per round", [
        (f"{a} attackers", ["--task=fmnist_label_flip", f"--num_attackers={a}"]) for a in (0, 4, 8)]),
    "fmnist_gaussian": ("fmnist_gaussian: 100 clients, 10 per round, 10 noisy", [
        (f"s = {s}%", ["--task=fmnist_gaussian", f"--noise_scale={s}"]) for s in (0, 100, 300)]),
    "loan_backdoor": ("loan_backdoor: LendingClub LoanStats3a 2007-2011 (real), 10 states, 1 attacker", [
        ("1 attacker", ["--task=loan_backdoor", f"--data_path={LOANSTATS}"])]),
    "loan_backdoor_kaggle": ("loan_backdoor: Kaggle loan.csv, first 4,999 rows (real, 7 statuses), "
                             "10 states, 1 attacker", [
        ("1 attacker", ["--task=loan_backdoor", f"--data_path={KAGGLE_HEAD}"])]),
}


def load_cli():
  spec = importlib.util.spec_from_file_location("run_cli", os.path.join(ROOT, "experiments",
                                                                         "run.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def cell(values: list) -> str:
  values = [v for v in values if v is not None]
  if not values:
    return "n/a"
  text = f"{100 * np.mean(values):.2f}"
  return text + (f" ± {100 * np.std(values):.2f}" if len(values) > 1 else "")


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--seeds", default="0")
  parser.add_argument("--only", default=",".join(EXPERIMENTS))
  parser.add_argument("--preset", default="cpu")
  parser.add_argument("--aggregator", default=AGGREGATORS)
  args = parser.parse_args()
  seeds = [int(s) for s in args.seeds.split(",")]
  names = [n for n in args.only.split(",") if n]
  unknown = [n for n in names if n not in EXPERIMENTS]
  if unknown:
    parser.error(f"unknown experiment(s) {unknown}; expected some of {list(EXPERIMENTS)}")
  base = os.path.join("runs", f"results-{datetime.datetime.now():%Y%m%d-%H%M%S}")
  cli = load_cli()
  sections = []
  for name in names:
    title, columns = EXPERIMENTS[name]
    summaries = {}
    for label, flags in columns:
      for seed in seeds:
        output_dir = os.path.join(base, name, label.replace(" ", "").replace("%", "pct")
                                  .replace("=", ""), f"seed{seed}")
        command = [*flags, f"--aggregator={args.aggregator}", f"--preset={args.preset}",
                   f"--seed={seed}", f"--output_dir={output_dir}", "--no_progress"]
        print(f"\n### {name} / {label} / seed {seed}: run.py {' '.join(command)}", flush=True)
        if cli.main(command) != 0:
          return 1
        with open(os.path.join(output_dir, "summary.json")) as f:
          summaries.setdefault(label, []).append(json.load(f))
    sections.append(table(title, columns, summaries, args, seeds))
  report = "\n\n".join(sections)
  with open(os.path.join(base, "tables.md"), "w") as f:
    f.write(report + "\n")
  print("\n" + report)
  print(f"\n(tables in {base}/tables.md)")
  return 0


def table(title, columns, summaries, args, seeds) -> str:
  first = summaries[columns[0][0]][0]
  aggregators = first["aggregators"]
  lines = [f"#### {title}", "",
           f"Data: {first['data_source']}; {first['rounds']} rounds; preset {args.preset}; "
           f"always predicting the most frequent test class scores "
           f"{100 * first['majority_class_accuracy']:.2f}%; "
           f"seeds {','.join(map(str, seeds))}. Cells: accuracy % / attack success rate %, mean of "
           "the last 10 rounds" + (" (± std over seeds)" if len(seeds) > 1 else "") + "; "
           "w = attackers' mean share of the aggregation weight in poisoning rounds.", "",
           "| aggregator | " + " | ".join(label for label, _ in columns) + " |",
           "|---|" + "---|" * len(columns)]
  for name in aggregators:
    cells = []
    for label, _ in columns:
      results = [s["results"][name] for s in summaries[label]]
      text = (f"{cell([r['window_accuracy'] for r in results])} / "
              f"{cell([r['window_attack_success_rate'] for r in results])}")
      shares = [r["attackers_weight_share"] for r in results if r["attackers_weight_share"] is not None]
      if shares:
        text += f" (w {np.mean(shares):.3f})"
      cells.append(text)
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  lines += ["", "Commands (per seed S):", ""]
  lines += [f"    .venv/bin/python experiments/run.py {' '.join(flags)} --aggregator={args.aggregator}"
            f" --preset={args.preset} --seed=S" for _, flags in columns]
  return "\n".join(lines)


if __name__ == "__main__":
  sys.exit(main())
