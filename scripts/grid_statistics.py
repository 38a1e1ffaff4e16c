"""The robustness grid's statistics and pictures (``robustness_grid.py`` writes them).

A grid row is one (dataset, attack, f, aggregator, seed) with its accuracy, drop
(accuracy without attackers - with them) and, for a targeted attack, its excess
attack success rate. Seeds are paired: every aggregator of a column ran on the same
clients, data and seeds. For each cell:

* mean and sample standard deviation over seeds (ddof = 1; none for one seed);
* against the column's best rule (the highest mean accuracy for an untargeted
  attack, the lowest mean excess attack success rate for a targeted one), the
  paired difference d_s = cell_s - best_s over the seeds both ran, as mean ± sd, and
  on how many of them its sign is the mean's: a cell whose seeds disagree is marked.

The heatmaps show harm, so that a colour means "bad" the same way in both: the
accuracy drop in points (every attack) and the excess attack success rate in points
(targeted attacks), rules x (attack, f), with the worst case (the largest harm) last.
"""

from __future__ import annotations

import math
import os
import statistics

ACCURACY, EXCESS = "accuracy", "excess_attack_success_rate"

HARM_POINTS = 0.05
"""An attack hurts FedAvg when it costs FedAvg's mean accuracy at least 5 points or, for a
targeted attack, raises its mean attack success rate at least ``HARM_EXCESS`` over the
run without attackers (issue 31): only those columns rank the defences."""
HARM_EXCESS = 0.50


def finite(value) -> bool:
  return value is not None and value != "" and math.isfinite(float(value))


def by_seed(rows, dataset, aggregator, attack, f, key) -> dict[int, float]:
  """{seed: value} of one cell's finite ``key`` values."""
  return {int(r["seed"]): float(r[key]) for r in rows
          if (r["dataset"], r["aggregator"], r["attack"], int(r["num_attackers"]))
          == (dataset, aggregator, attack, f) and finite(r.get(key))}


def spread(values) -> tuple[float, float]:
  """(mean, sample standard deviation with ddof = 1; NaN for fewer than 2 values)."""
  values = list(values)
  if not values:
    return math.nan, math.nan
  return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan


def column_metric(rows, dataset, attack, f) -> str:
  """``EXCESS`` where the column's attack is targeted (it has an excess attack success
  rate), else ``ACCURACY``."""
  targeted = any(finite(r.get(EXCESS)) for r in rows
                 if (r["dataset"], r["attack"], int(r["num_attackers"])) == (dataset, attack, f))
  return EXCESS if targeted else ACCURACY


def best_rule(rows, dataset, attack, f, names) -> str | None:
  """The aggregator of the column with the best mean of its metric (``column_metric``);
  a tie goes to the higher mean accuracy, then to the first in ``names``. Against a
  targeted attack a rule whose mean accuracy drop is ``HARM_POINTS`` or more is no
  candidate (a collapsed model has no backdoor either)."""
  metric = column_metric(rows, dataset, attack, f)
  scored = []
  for position, name in enumerate(names):
    values = by_seed(rows, dataset, name, attack, f, metric)
    drop = spread(by_seed(rows, dataset, name, attack, f, "accuracy_drop").values())[0]
    if metric == EXCESS and math.isfinite(drop) and drop >= HARM_POINTS:
      continue   # a rule that loses 5 points of accuracy is no answer to a targeted attack
    if values:
      accuracy = spread(by_seed(rows, dataset, name, attack, f, ACCURACY).values())[0]
      key = spread(values.values())[0]
      scored.append(((key if metric == EXCESS else -key),
                     -accuracy if math.isfinite(accuracy) else 0.0, position, name))
  return min(scored)[-1] if scored else None


def harmful(mean_drop: float, mean_excess: float | None) -> bool:
  """An undefended mean hurt by an attack: ``HARM_POINTS`` of accuracy lost or, for a
  targeted attack, ``HARM_EXCESS`` of excess attack success gained (means over seeds)."""
  return mean_drop >= HARM_POINTS or (mean_excess is not None and mean_excess >= HARM_EXCESS)


def hurts_fedavg(rows, dataset, attack, f) -> bool | None:
  """Whether the column's attack hurts the undefended mean (``harmful``, FedAvg's means
  over seeds); None where FedAvg did not run."""
  drop = by_seed(rows, dataset, "fedavg", attack, f, "accuracy_drop")
  if not drop:
    return None
  excess = by_seed(rows, dataset, "fedavg", attack, f, EXCESS)
  return harmful(spread(drop.values())[0], spread(excess.values())[0] if excess else None)


def ranked_columns(rows, dataset, columns) -> list[tuple[str, int]]:
  """The columns whose attack hurts FedAvg (all of them where FedAvg did not run)."""
  return [(a, f) for a, f in columns if hurts_fedavg(rows, dataset, a, f) is not False]


def paired(cell: dict[int, float], best: dict[int, float]) -> tuple[float, float, int, int]:
  """(mean, sd (ddof 1), seeds whose difference has the mean's sign, seeds) of
  cell_s - best_s over the seeds both have."""
  seeds = sorted(set(cell) & set(best))
  differences = [cell[s] - best[s] for s in seeds]
  mean, sd = spread(differences)
  if not differences:
    return mean, sd, 0, 0
  sign = (mean > 0) - (mean < 0)
  agree = sum(((d > 0) - (d < 0)) == sign for d in differences)
  return mean, sd, agree, len(differences)


def points(mean: float, sd: float, sign: bool = False) -> str:
  """'m ± s' in points (x 100, one decimal); the ± only where sd is defined."""
  text = f"{100 * mean:+.1f}" if sign else f"{100 * mean:.1f}"
  return text + (f" ± {100 * sd:.1f}" if math.isfinite(sd) else "")


def difference_text(rows, dataset, name, attack, f, best: str | None) -> str:
  """'best', or 'Δ m ± s (k/n)' against the column's best rule, with ' †' where the
  seeds disagree on the sign."""
  if best is None:
    return ""
  if name == best:
    return " best"
  metric = column_metric(rows, dataset, attack, f)
  mean, sd, agree, count = paired(by_seed(rows, dataset, name, attack, f, metric),
                                  by_seed(rows, dataset, best, attack, f, metric))
  if not count:
    return ""
  return f" Δ {points(mean, sd, sign=True)} ({agree}/{count}){' †' if agree < count else ''}"


LEGEND = ("Cells: accuracy % (mean of the last 10 rounds; mean ± sample standard deviation over "
          "seeds, ddof = 1) [drop in points against the same run without attackers; for "
          "targeted attacks the excess attack success rate in points; detection AUC of 1 - "
          "client weight]; Δ: the paired difference against the column's best rule (highest "
          "accuracy for an untargeted attack, lowest excess attack success rate for a targeted "
          "one; in that metric's points), mean ± sd over the seeds both ran, (k/n) = the seeds "
          "on which its sign holds, † = the seeds disagree. worst case = the lowest accuracy "
          "over the ranked attacks: a column marked \"no harm to FedAvg\" (FedAvg loses under "
          "5 points and, if targeted, gains under 50 points of excess attack success) ranks "
          "nothing and is left out of the worst case. The last two rows name the best "
          "aggregator(s) per ranked column (ties at the shown precision are listed).")


def verdict_matrix(rows, datasets, columns, residual: str = "residual") -> str:
  """One Markdown row per (attack, f, dataset) of ``columns``: the best rule of the column
  (``best_rule``, over the rules that ran; every candidate tied with it at the shown
  precision named after it), its metric, residual reweighting's and
  FedAvg's, each mean ± sd over seeds, and residual's paired difference against the best
  with the seeds on which its sign holds. The metric is the excess attack success rate
  of a targeted attack and the accuracy (with its drop) of an untargeted one; a column
  that does not hurt FedAvg ranks nothing."""
  lines = ["| attack | f | dataset | best rule | residual | FedAvg |", "|---|---|---|---|---|---|"]
  for attack, f in columns:
    for dataset in datasets:
      names = sorted({r["aggregator"] for r in rows if (r["dataset"], r["attack"],
                      int(r["num_attackers"])) == (dataset, attack, f)})
      if not names:
        continue
      metric = column_metric(rows, dataset, attack, f)

      def shown(name):
        values = by_seed(rows, dataset, name, attack, f, metric)
        if not values:
          return "-"
        text = points(*spread(values.values()), sign=metric == EXCESS)
        if metric == ACCURACY:
          drop = spread(by_seed(rows, dataset, name, attack, f, "accuracy_drop").values())[0]
          text += f" (drop {100 * drop:+.1f})"
        return text + (" excess ASR" if metric == EXCESS else "")

      def rounded(name):
        values = by_seed(rows, dataset, name, attack, f, metric)
        return round(100 * spread(values.values())[0], 1) if values else None

      if hurts_fedavg(rows, dataset, attack, f) is False:
        best_text = "no harm to FedAvg: not ranked"
        residual_text = shown(residual)
      else:
        best = best_rule(rows, dataset, attack, f, names)
        tied = [n for n in names if n != best and rounded(n) == rounded(best)
                and best_rule(rows, dataset, attack, f, [n]) == n]   # n is a candidate
        best_text = f"{', '.join([best, *tied])}: {shown(best)}"
        residual_text = shown(residual) + (difference_text(
            rows, dataset, residual, attack, f, best) if residual in names else "")
      lines.append(f"| {attack} | {f} | {dataset} | {best_text} | {residual_text} | "
                   f"{shown('fedavg')} |")
  return "\n".join(lines)


def ranked_by_dataset(rows) -> dict[str, list[tuple[str, int]]]:
  """dataset -> its ranked columns (``ranked_columns`` over every (attack, f) it ran)."""
  ranked = {}
  for dataset in sorted({r["dataset"] for r in rows}):
    columns = sorted({(r["attack"], int(r["num_attackers"])) for r in rows
                      if r["dataset"] == dataset})
    ranked[dataset] = ranked_columns(rows, dataset, columns)
  return ranked


def worst_cases(rows, ranked=None) -> dict[str, dict[str, tuple[float, float, int]]]:
  """aggregator -> dataset -> (its lowest mean accuracy over the dataset's ranked
  columns, its highest mean excess attack success rate over the ranked targeted ones
  (NaN: none), how many ranked columns it ran). ``ranked``: ``ranked_by_dataset(rows)``."""
  ranked = ranked_by_dataset(rows) if ranked is None else ranked
  table = {}
  for dataset, columns in ranked.items():
    for name in sorted({r["aggregator"] for r in rows if r["dataset"] == dataset}):
      accuracy, excess = [], []
      for attack, f in columns:
        values = by_seed(rows, dataset, name, attack, f, ACCURACY)
        if values:
          accuracy.append(spread(values.values())[0])
          targeted = by_seed(rows, dataset, name, attack, f, EXCESS)
          if targeted:
            excess.append(spread(targeted.values())[0])
      if accuracy:
        table.setdefault(name, {})[dataset] = (min(accuracy), max(excess, default=math.nan),
                                               len(accuracy))
  return table


def complete_rules(table, ranked) -> list[str]:
  """The rules of ``worst_cases``' table that ran every ranked column of every dataset,
  best first: by their lowest mean accuracy over all of them, then by the sum of their
  per-dataset worst cases (both the higher the better), then by name."""
  complete = [name for name, per in table.items()
              if set(per) == set(ranked) and all(per[d][2] == len(ranked[d]) for d in ranked)]
  worst = lambda name: [w for w, _, _ in table[name].values()]
  return sorted(complete, key=lambda name: (-min(worst(name)), -sum(worst(name)), name))


def recommended_rule(rows) -> str:
  """The rule with the best worst case over the grid on every dataset: among the rules
  that ran every ranked column of every dataset, the one whose lowest mean accuracy over
  all of them is the highest (``complete_rules``' order)."""
  ranked = ranked_by_dataset(rows)
  complete = complete_rules(worst_cases(rows, ranked), ranked)
  if not complete:
    raise ValueError("no rule ran every ranked column of every dataset")
  return complete[0]


def seed_worst_cases(rows, name: str, ranked=None) -> dict[int, float]:
  """{seed: the rule's lowest accuracy at that seed over every ranked column of every
  dataset} (the worst case seed by seed, for a paired difference)."""
  ranked = ranked_by_dataset(rows) if ranked is None else ranked
  worst = {}
  for dataset, columns in ranked.items():
    for attack, f in columns:
      for seed, value in by_seed(rows, dataset, name, attack, f, ACCURACY).items():
        worst[seed] = min(worst.get(seed, math.inf), value)
  return worst


def recommendation_text(rows) -> str:
  """One paragraph: the recommended rule (``recommended_rule``: the first of
  ``complete_rules``), the paired difference of its seed-by-seed worst case against the
  runner-up's (``seed_worst_cases``), and each complete rule's worst cases per dataset,
  best first."""
  ranked = ranked_by_dataset(rows)
  table = worst_cases(rows, ranked)
  complete = complete_rules(table, ranked)
  if not complete:
    return "No recommendation yet: no rule ran every ranked column of every dataset."
  best = complete[0]

  def worst(name):
    return ", ".join(
        f"{d} {100 * table[name][d][0]:.1f}%"
        + ("" if math.isnan(table[name][d][1]) else f" / {100 * table[name][d][1]:+.1f} excess")
        for d in ranked)
  left = sorted(set(table) - set(complete))
  against = ""
  if len(complete) > 1:
    mean, sd, agree, seeds = paired(seed_worst_cases(rows, best, ranked),
                                    seed_worst_cases(rows, complete[1], ranked))
    against = (f" Its worst case seed by seed against {complete[1]}'s: Δ {points(mean, sd, True)}"
               f" points, the sign holding on {agree} of {seeds} seeds.")
  return (f"Best worst case over every ranked column of every dataset "
          f"({', '.join(f'{d}: {len(c)} columns' for d, c in ranked.items())}): **{best}**."
          f"{against} Worst mean accuracy / worst mean excess attack success per dataset: "
          + "; ".join(f"{n} ({worst(n)})" for n in complete)
          + (f". Not ranked (did not run every ranked column): {', '.join(left)}." if left
             else "."))


def harm_grid(rows, dataset, names, columns, key):
  """[len(names), len(columns) + 1] of mean harm in points (NaN where not run), the
  last column the row's worst case (its largest harm over the ranked columns,
  ``ranked_columns``)."""
  import numpy as np
  grid = np.full((len(names), len(columns) + 1), np.nan)
  for i, name in enumerate(names):
    for j, (attack, f) in enumerate(columns):
      values = by_seed(rows, dataset, name, attack, f, key)
      if values:
        grid[i, j] = 100 * spread(values.values())[0]
  ranked_set = set(ranked_columns(rows, dataset, columns))   # once, not once per column
  ranked = [j for j, column in enumerate(columns) if column in ranked_set]
  for i in range(len(names)):
    if ranked and np.isfinite(grid[i, ranked]).any():
      grid[i, -1] = np.nanmax(grid[i, ranked])
  return grid


def harm_heatmaps(directory, dataset, rows, aggregators, grid_columns) -> list[str]:
  """Writes heatmap_<dataset>_accuracy_drop.png (every (attack, f) of ``grid_columns``)
  and, where some attack is targeted, heatmap_<dataset>_excess_asr.png; a column that
  does not hurt FedAvg is labelled so; returns their file names."""
  import matplotlib
  matplotlib.use("Agg")
  import numpy as np
  from matplotlib import pyplot as plt
  written = []
  for key, suffix, title in (("accuracy_drop", "accuracy_drop", "accuracy drop, points"),
                             (EXCESS, "excess_asr", "excess attack success rate, points")):
    columns = [(a, f) for a, f in grid_columns
               if key != EXCESS or column_metric(rows, dataset, a, f) == EXCESS]
    names = [n for n in aggregators if any(by_seed(rows, dataset, n, a, f, key)
                                           for a, f in columns)]
    if not columns or not names:
      continue
    grid = harm_grid(rows, dataset, names, columns, key)
    top = max(10.0, float(np.nanmax(grid))) if np.isfinite(grid).any() else 10.0
    figure, axes = plt.subplots(figsize=(max(4.5, 1.0 + 0.75 * grid.shape[1]),
                                         1.2 + 0.4 * len(names)))
    colours = plt.get_cmap("Reds").copy()
    colours.set_bad("#d9d9d9")  # not run (a rule that needs more clients)
    image = axes.imshow(np.ma.masked_invalid(grid), cmap=colours, aspect="auto", vmin=0,
                        vmax=top)
    for (i, j), value in np.ndenumerate(grid):
      if np.isfinite(value):
        axes.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=7,
                  color="white" if value > 0.6 * top else "black")
    ranked = ranked_columns(rows, dataset, columns)
    axes.set_xticks(range(grid.shape[1]),
                    [f"{a}\nf={f}" + ("" if (a, f) in ranked else "\n(no harm\nto FedAvg)")
                     for a, f in columns] + ["worst\ncase"], fontsize=7, rotation=90)
    axes.set_yticks(range(len(names)), names, fontsize=8)
    axes.set_title(f"{dataset}: {title}\n(mean over seeds; darker = worse, grey = not run)",
                   fontsize=8)
    figure.colorbar(image, ax=axes, fraction=0.03)
    figure.tight_layout()
    name = f"heatmap_{dataset}_{suffix}.png"
    figure.savefig(os.path.join(directory, name), dpi=110)
    plt.close(figure)
    written.append(name)
  return written
