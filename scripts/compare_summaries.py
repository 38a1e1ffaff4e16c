#!/usr/bin/env python
"""Whether runs reproduce archived ones: every summary.json under RUNS against the
summary.json at the same relative path under ARCHIVE (e.g. ``results/``).

Timings (every field whose name holds "seconds") are left out. Fields that only the
newer summary has (added to the outputs after the archive was made) are named and
left out too. Prints one line per run and exits 1 if any run differs or has no
archived twin.

    python scripts/compare_summaries.py runs/check results
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys


def comparable(value):
  """``value`` without timing fields; NaN as a string, so that NaN equals NaN."""
  if isinstance(value, dict):
    return {k: comparable(v) for k, v in value.items() if "seconds" not in k}
  if isinstance(value, list):
    return [comparable(v) for v in value]
  if isinstance(value, float) and math.isnan(value):
    return "NaN"
  return value


def differences(new, old, path: str = "") -> list[str]:
  """Paths where ``new`` and ``old`` (both ``comparable``) differ, with both values."""
  if isinstance(new, dict) and isinstance(old, dict):
    return [d for key in sorted(set(new) | set(old))
            for d in (differences(new[key], old[key], f"{path}/{key}")
                      if key in new and key in old else [f"{path}/{key}: only in one"])]
  return [] if new == old else [f"{path}: {new!r} (run) != {old!r} (archive)"]


def compare(run_file: str, archived_file: str) -> tuple[list[str], list[str]]:
  """(differences, fields only the run has) of two summary.json files."""
  with open(run_file) as f:
    new = comparable(json.load(f))
  with open(archived_file) as f:
    old = comparable(json.load(f))
  newer = sorted({k for r in new["results"].values() for k in r}
                 - {k for r in old["results"].values() for k in r})
  for row in new["results"].values():
    for key in newer:
      row.pop(key, None)
  return differences(new, old), newer


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("runs")
  parser.add_argument("archive")
  args = parser.parse_args(argv)
  failed = found = 0
  for root, _, files in sorted(os.walk(args.runs)):
    if "summary.json" not in files:
      continue
    found += 1
    relative = os.path.relpath(root, args.runs)
    archived = os.path.join(args.archive, relative, "summary.json")
    if not os.path.exists(archived):
      print(f"{relative}: no archived summary at {archived}")
      failed += 1
      continue
    diffs, newer = compare(os.path.join(root, "summary.json"), archived)
    extra = f" (fields newer than the archive, left out: {', '.join(newer)})" if newer else ""
    if diffs:
      failed += 1
      print(f"{relative}: {len(diffs)} field(s) differ{extra}")
      for line in diffs[:20]:
        print(f"  {line}")
    else:
      print(f"{relative}: every non-timing field equals the archive's{extra}")
  if not found:
    print(f"no summary.json under {args.runs}")
    return 1
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
