"""A run's output directory: config.json, metrics.csv, summary.json, plots.

* ``config.json``: every setting, the preset's scaling against ``paper``, the
  code-vs-paper choices, attackers, data source, notices.
* ``metrics.csv``: one row per round per aggregator (``METRIC_COLUMNS``),
  written as the run goes, so an interrupted run keeps its rounds.
* ``summary.json``: task, aggregators, num_attackers, rounds, data_source and
  per aggregator: final_accuracy and attack_success_rate (last round), their
  means over the last ``window_rounds`` rounds, the largest attack success
  rate, attackers_weight_share (mean over the rounds in which attackers
  poisoned; NaN where the aggregator reports no client weights) and
  wall_seconds.
* ``accuracy.png`` and ``attack_success_rate.png`` (if the attack has one):
  one line per aggregator.
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
    "attackers_in_round", "dropped_clients", "train_loss", "round_seconds", "train_seconds",
    "aggregation_seconds",
)


def _clean(value):
  """JSON-safe: NaN -> None, NumPy scalars -> Python."""
  if isinstance(value, dict):
    return {k: _clean(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_clean(v) for v in value]
  if hasattr(value, "item") and not isinstance(value, (str, bytes)):
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def write_json(path: str, payload: dict) -> None:
  with open(path, "w", encoding="utf-8") as f:
    json.dump(_clean(payload), f, indent=2, sort_keys=False)
    f.write("\n")


class RunOutputs:
  """Writes one run's files into ``directory`` (created; must not hold a previous run)."""

  def __init__(self, directory: str, config: dict[str, Any]):
    if os.path.exists(os.path.join(directory, "metrics.csv")):
      raise FileExistsError(f"--output_dir {directory} already holds a run (metrics.csv); "
                            "choose another directory.")
    os.makedirs(directory, exist_ok=True)
    self.directory = directory
    self.rows: list[dict[str, Any]] = []
    write_json(os.path.join(directory, "config.json"), config)
    self._metrics_path = os.path.join(directory, "metrics.csv")
    with open(self._metrics_path, "w", newline="", encoding="utf-8") as f:
      csv.writer(f).writerow(METRIC_COLUMNS)

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
    for column, label in (("accuracy", "test accuracy"),
                          ("attack_success_rate", "attack success rate")):
      series = {}
      for row in self.rows:
        value = row.get(column)
        if value is not None and math.isfinite(value):
          series.setdefault(row["aggregator"], []).append((row["round"] + 1, value))
      if not series:
        continue
      figure, axes = plt.subplots(figsize=(6, 4))
      for name, points in series.items():
        axes.plot(*zip(*points), label=name, marker="." if len(points) < 30 else None)
      axes.set_xlabel("round")
      axes.set_ylabel(label)
      axes.set_ylim(-0.02, 1.02)
      axes.grid(alpha=0.3)
      axes.legend()
      figure.tight_layout()
      path = os.path.join(self.directory, f"{column}.png")
      figure.savefig(path, dpi=100)
      plt.close(figure)
      paths.append(path)
    return paths


def _csv_value(value):
  if value is None:
    return ""
  if isinstance(value, float):
    return "" if not math.isfinite(value) else f"{value:.6g}"
  return value


def format_table(results: Sequence[dict[str, Any]]) -> str:
  """The end-of-run comparison table (Markdown)."""
  def percent(value):
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.2f}%"

  def share(value):
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"

  window = results[0]["window_rounds"] if results else 0
  lines = [f"| aggregator | accuracy: last round (mean of last {window}) | attack success rate: "
           f"last (mean of last {window}) | attackers' weight share | wall seconds |",
           "|---|---|---|---|---|"]
  for r in results:
    lines.append(f"| {r['aggregator']} | {percent(r['final_accuracy'])} "
                 f"({percent(r['window_accuracy'])}) | {percent(r['attack_success_rate'])} "
                 f"({percent(r['window_attack_success_rate'])}) | "
                 f"{share(r['attackers_weight_share'])} | {r['wall_seconds']:.1f} |")
  return "\n".join(lines)
