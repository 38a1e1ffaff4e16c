"""A run's output directory: config.json, metrics.csv, summary.json, plots.

* ``config.json``: every setting, the preset's scaling against ``paper``, the
  code-vs-paper choices, attackers, data source, notices.
* ``metrics.csv``: one row per round per aggregator (``METRIC_COLUMNS``),
  written as the run goes, so an interrupted run keeps its rounds.
* ``summary.json``: task, aggregators, num_attackers, rounds, data_source and
  per aggregator: final_accuracy and attack_success_rate (last round), their
  means over the last ``window_rounds`` rounds, the largest attack success
  rate, attackers_weight_share and detection_auc (``detection.weight_auc``;
  both means over the rounds in which attackers poisoned, NaN where the
  aggregator reports no client weights) and wall_seconds; with a clean
  baseline also clean_final_accuracy, clean_attack_success_rate,
  excess_attack_success_rate (last round), their window means
  (``window_clean_accuracy``, ...) and window_accuracy_drop (clean - attacked
  accuracy, window means); null without one.
* ``accuracy.png`` and ``attack_success_rate.png`` (if the attack has one):
  one line per aggregator, and its clean baseline as a dashed line of the
  same colour.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from typing import Any

METRIC_COLUMNS = (
    "aggregator", "round", "accuracy", "loss", "attack_success_rate", "attackers_weight_share",
    "detection_auc", "attack_scale", "attackers_in_round", "dropped_clients", "train_loss",
    "round_seconds", "train_seconds", "aggregation_seconds", "clean_accuracy", "clean_attack_success_rate",
    "excess_attack_success_rate", "clean_round_seconds", "attackers_clip_factor",
    "honest_clip_factor",
)
"""The ``clean_*`` columns (the same round without attackers) and
``excess_attack_success_rate`` (attack success rate - the clean one) are empty
when the run has no clean baseline. ``detection_auc``: ``detection.weight_auc``
of the round's client weights; ``attack_scale``: the scale a searching attack
chose this round (ALIE's z, Min-Max's and Min-Sum's gamma, the adaptive
attack's s), empty for the others. ``attackers_clip_factor``,
``honest_clip_factor``: the mean ``clip_factors`` (centered clipping's) of the
round's attackers and honest clients, empty for aggregators that clip nothing."""
TIMING_COLUMNS = ("round_seconds", "train_seconds", "aggregation_seconds", "clean_round_seconds")
"""The ``METRIC_COLUMNS`` that measure time, not the run: two runs with the same
settings may differ in these only."""


def largest_metric_difference(first: Sequence[dict], second: Sequence[dict]
                              ) -> tuple[float, str]:
  """The largest |a - b| between two runs' metrics.csv rows (as ``csv.DictReader``
  reads them), the ``TIMING_COLUMNS`` aside, and where it is ("accuracy, round 3
  of median"). Infinite where the runs differ in kind: another number of rows, a
  text cell (the aggregator) that differs, or NaN on one side only (NaN on both
  sides is equal)."""
  if len(first) != len(second):
    return math.inf, f"{len(first)} rows against {len(second)}"
  largest, where = 0.0, "no difference"
  for row, other in zip(first, second):
    for column, value in row.items():
      if column in TIMING_COLUMNS:
        continue
      place = f"{column}, round {row.get('round')} of {row.get('aggregator')}"
      try:
        a, b = float(value), float(other[column])
      except ValueError:
        if value != other[column]:
          return math.inf, f"{place}: {value!r} against {other[column]!r}"
        continue
      if math.isnan(a) and math.isnan(b):
        continue
      difference = math.inf if math.isnan(a) or math.isnan(b) else abs(a - b)
      if difference > largest:
        largest, where = difference, f"{place}: {a!r} against {b!r}"
  return largest, where


def json_safe(value):
  """JSON-safe: NaN -> None, NumPy scalars -> Python."""
  if isinstance(value, dict):
    return {k: json_safe(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [json_safe(v) for v in value]
  if hasattr(value, "item") and not isinstance(value, (str, bytes)):
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def write_json(path: str, payload: dict) -> None:
  with open(path, "w", encoding="utf-8") as f:
    json.dump(json_safe(payload), f, indent=2, sort_keys=False)
    f.write("\n")


class RunOutputs:
  """Writes one run's files into ``directory`` (created; must not hold a previous run)."""

  def __init__(self, directory: str, config: dict[str, Any],
               resumed_rows: list[dict[str, Any]] | None = None):
    """``resumed_rows``: continue a stopped run in ``directory`` (``--resume``): its
    metrics.csv is rewritten with these rows (its checkpoint's), dropping any row
    written after the checkpoint."""
    if resumed_rows is None and os.path.exists(os.path.join(directory, "metrics.csv")):
      raise FileExistsError(f"--output_dir {directory} already holds a run (metrics.csv); "
                            "choose another directory, or continue it with --resume.")
    os.makedirs(directory, exist_ok=True)
    self.directory = directory
    self.rows: list[dict[str, Any]] = []
    write_json(os.path.join(directory, "config.json"), config)
    self._metrics_path = os.path.join(directory, "metrics.csv")
    with open(self._metrics_path, "w", newline="", encoding="utf-8") as f:
      csv.writer(f).writerow(METRIC_COLUMNS)
    for row in resumed_rows or []:
      self.add_round(row)

  def add_round(self, row: dict[str, Any]) -> None:
    self.rows.append(row)
    with open(self._metrics_path, "a", newline="", encoding="utf-8") as f:
      csv.writer(f).writerow([_csv_value(row.get(c)) for c in METRIC_COLUMNS])

  def finish(self, summary: dict[str, Any]) -> list[str]:
    """Writes summary.json and the plots; returns the plot paths."""
    plots = self.plot()
    summary = dict(summary, plots=[os.path.basename(p) for p in plots])
    write_json(os.path.join(self.directory, "summary.json"), summary)
    return plots

  def plot(self) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    paths = []
    for column, clean_column, label in (
        ("accuracy", "clean_accuracy", "test accuracy"),
        ("attack_success_rate", "clean_attack_success_rate", "attack success rate")):
      series, clean_series = _series(self.rows, column), _series(self.rows, clean_column)
      if not series:
        continue
      figure, axes = plt.subplots(figsize=(6, 4))
      for name, points in series.items():
        line, = axes.plot(*zip(*points), label=name, marker="." if len(points) < 30 else None)
        if name in clean_series:
          axes.plot(*zip(*clean_series[name]), linestyle="--", color=line.get_color(),
                    label=f"{name}, no attackers")
      axes.set_xlabel("round")
      axes.set_ylabel(label)
      axes.set_ylim(-0.02, 1.02)
      axes.grid(alpha=0.3)
      axes.legend(fontsize="small")
      figure.tight_layout()
      path = os.path.join(self.directory, f"{column}.png")
      figure.savefig(path, dpi=100)
      plt.close(figure)
      paths.append(path)
    return paths


def _series(rows, column) -> dict[str, list[tuple[int, float]]]:
  """Per aggregator, the (1-based round, value) points of ``column`` with a finite value."""
  series: dict[str, list[tuple[int, float]]] = {}
  for row in rows:
    value = row.get(column)
    if value is not None and math.isfinite(value):
      series.setdefault(row["aggregator"], []).append((row["round"] + 1, value))
  return series


def _csv_value(value):
  if value is None:
    return ""
  if isinstance(value, float):
    return "" if not math.isfinite(value) else f"{value:.6g}"
  return value


def format_table(results: Sequence[dict[str, Any]]) -> str:
  """The end-of-run comparison table (Markdown)."""
  def percent(value):
    return "n/a" if not _finite(value) else f"{100 * value:.2f}%"

  def share(value):
    return "n/a" if not _finite(value) else f"{value:.3f}"

  def signed_percent(value):
    return "n/a" if not _finite(value) else f"{100 * value:+.2f} points"

  window = results[0]["window_rounds"] if results else 0
  clean = any(_finite(r.get("window_clean_accuracy")) for r in results)
  header = (f"| aggregator | accuracy: last round (mean of last {window}) | attack success rate: "
            f"last (mean of last {window}) |")
  if clean:
    header += (f" without attackers: accuracy, attack success rate (means of last {window}) | "
               f"excess attack success rate (mean of last {window}) |")
  lines = [header + " attackers' weight share | detection AUC | wall seconds |",
           "|" + "---|" * (8 if clean else 6)]
  for r in results:
    line = (f"| {r['aggregator']} | {percent(r['final_accuracy'])} "
            f"({percent(r['window_accuracy'])}) | {percent(r['attack_success_rate'])} "
            f"({percent(r['window_attack_success_rate'])}) |")
    if clean:
      line += (f" {percent(r.get('window_clean_accuracy'))}, "
               f"{percent(r.get('window_clean_attack_success_rate'))} | "
               f"{signed_percent(r.get('window_excess_attack_success_rate'))} |")
    lines.append(line + f" {share(r['attackers_weight_share'])} | "
                 f"{share(r.get('detection_auc'))} | {r['wall_seconds']:.1f} |")
  return "\n".join(lines)


def _finite(value) -> bool:
  return value is not None and isinstance(value, (int, float)) and math.isfinite(value)
