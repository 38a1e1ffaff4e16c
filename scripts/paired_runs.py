#!/usr/bin/env python
"""Two settings of one experiment, seed by seed: the paired difference A - B.

    python scripts/paired_runs.py A_DIR B_DIR [--aggregator NAME] [--aggregator_b NAME]

A_DIR and B_DIR hold ``seed<S>/summary.json`` (e.g. ``results/<experiment>/<run label>``,
as ``scripts/results.py --archive`` keeps them). For the seeds both hold, prints per seed
the last-10-round accuracy, attack success rate and its excess over the clean twin, and
the attackers' weight share of A and B, then each difference as mean ± sample standard
deviation (ddof = 1) over the seeds and on how many seeds A is above B.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import re
import sys

import numpy as np

FIELDS = (("accuracy", "window_accuracy"), ("attack success", "window_attack_success_rate"),
          ("excess attack success", "window_excess_attack_success_rate"),
          ("attackers' weight share", "attackers_weight_share"))


def load(directory: str, aggregator: str) -> dict[int, dict]:
  """seed -> the aggregator's result in ``directory/seed<S>/summary.json``."""
  runs = {}
  for path in glob.glob(os.path.join(directory, "seed*", "summary.json")):
    seed = int(re.search(r"seed(\d+)", path).group(1))
    with open(path) as f:
      results = json.load(f)["results"]
    if aggregator not in results:
      raise SystemExit(f"{path} has no aggregator {aggregator!r}; it has {sorted(results)}")
    runs[seed] = results[aggregator]
  return runs


def paired(a: dict[int, dict], b: dict[int, dict], key: str) -> tuple[list, str]:
  """(per-seed (a, b) pairs, "mean ± sd (ddof 1); A above B on n of m seeds")."""
  seeds = sorted(set(a) & set(b))
  pairs = [(a[s].get(key), b[s].get(key)) for s in seeds]
  diffs = [x - y for x, y in pairs if x is not None and y is not None
           and math.isfinite(x) and math.isfinite(y)]
  if not diffs:
    return pairs, "n/a"
  spread = f" ± {np.std(diffs, ddof=1):.4f}" if len(diffs) > 1 else ""
  above = sum(d > 0 for d in diffs)
  return pairs, (f"{np.mean(diffs):+.4f}{spread} (ddof 1); A above B on {above} of "
                 f"{len(diffs)} seeds")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("a")
  parser.add_argument("b")
  parser.add_argument("--aggregator", default="residual")
  parser.add_argument("--aggregator_b", default=None, help="B's aggregator (default: the same)")
  args = parser.parse_args(argv)
  a, b = load(args.a, args.aggregator), load(args.b, args.aggregator_b or args.aggregator)
  seeds = sorted(set(a) & set(b))
  if not seeds:
    raise SystemExit(f"no seed in both {args.a} and {args.b}")
  print(f"A = {args.a} ({args.aggregator}), B = {args.b} "
        f"({args.aggregator_b or args.aggregator}); seeds {seeds}")
  print("| measure | " + " | ".join(f"seed {s}: A / B" for s in seeds) + " | A - B |")
  print("|---|" + "---|" * (len(seeds) + 1))
  for label, key in FIELDS:
    pairs, summary = paired(a, b, key)
    cells = " | ".join("n/a" if x is None or y is None else f"{x:.4f} / {y:.4f}"
                       for x, y in pairs)
    print(f"| {label} | {cells} | {summary} |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
