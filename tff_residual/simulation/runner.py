"""One experiment from settings to output files: load data, build the
federation and the attack, then run every aggregator on the owned TFF runtime.

``prepare`` does everything that can fail on bad input (data files, labels,
attackers) before TensorFlow Federated starts; ``run`` executes.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from tff_residual.simulation.experiment_config import ConfigError, ExperimentConfig
from tff_residual.simulation.federation import Federation, build_federation
from tff_residual.simulation import checkpoint
from tff_residual.simulation.placement import where_it_runs
from tff_residual.tasks import presets
from tff_residual.tasks.base import AttackTargets, TaskData, TaskFamily


@dataclasses.dataclass
class Prepared:
  config: ExperimentConfig
  family: TaskFamily
  data: TaskData
  targets: AttackTargets
  federation: Federation


def default_output_dir(task: str) -> str:
  return os.path.join("runs", f"{task}-{datetime.datetime.now():%Y%m%d-%H%M%S}")


def prepare(config: ExperimentConfig, family: TaskFamily) -> Prepared:
  """Loads and checks the data, partitions it, picks attackers."""
  data = family.load(config.data_settings())
  targets = family.attack_targets(config.target_settings(), data)
  federation = build_federation(config.federation_settings(), data, targets)
  return Prepared(config, family, data, targets, federation)


def recorded_run(output_dir: str) -> dict[str, Any]:
  """The config.json of the run in ``output_dir`` (``--resume``); ConfigError if there is none."""
  import json

  path = os.path.join(output_dir, "config.json")
  if not os.path.exists(path):
    raise ConfigError(f"--resume={output_dir}: no run to continue there (no config.json)")
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def config_of_run(output_dir: str) -> tuple[ExperimentConfig, TaskFamily]:
  """(config, family) of the run in ``output_dir``, from its config.json (``--resume``);
  ConfigError if there is none."""
  from tff_residual.simulation.experiment_config import validate
  from tff_residual.tasks.task_table import parse_task
  settings = dict(recorded_run(output_dir)["settings"])
  family, _ = parse_task(settings["task"])
  for name in ("aggregators", "trigger_features"):
    settings[name] = tuple(settings[name])
  try:
    config = ExperimentConfig(**settings)
  except TypeError as error:
    raise ConfigError(f"--resume={output_dir}: its config.json is not this version's: "
                      f"{error}") from None
  validate(config, family)
  return config, family


def placement_of_run(output_dir: str) -> tuple[str | None, str | None]:
  """(execution, aggregation) of the run in ``output_dir`` from its config.json's
  "runs_on", for ``--resume`` to continue it where it ran; (None, None) for a run
  recorded before "runs_on" existed. ConfigError if there is no config.json."""
  placed = recorded_run(output_dir).get("runs_on") or {}
  return placed.get("execution"), placed.get("aggregation")


def resumable_progress(output_dir: str, info: dict[str, Any]) -> dict[str, Any]:
  """The saved progress of the stopped run in ``output_dir`` (``checkpoint.load_meta``;
  none saved: start over); ConfigError if the run has finished, or if ``info`` (this
  run's data and settings) differs from the stopped run's config.json."""
  import json

  from tff_residual.simulation.outputs import json_safe
  recorded = recorded_run(output_dir)
  meta = checkpoint.load_meta(output_dir)
  if meta is None:
    if os.path.exists(os.path.join(output_dir, "summary.json")):
      raise ConfigError(f"--resume={output_dir}: that run has finished (summary.json); "
                        "nothing to continue")
    meta = {"finished": [], "rows": [], "aggregator": None}
  now = json.loads(json.dumps(json_safe(info)))
  if "runs_on" not in recorded:  # recorded before "runs_on" existed
    now.pop("runs_on", None)
  elif now.get("runs_on") != recorded["runs_on"]:
    was = recorded["runs_on"]
    raise ConfigError(f"--resume={output_dir}: the stopped run ran with --execution="
                      f"{was['execution']} --aggregation={was['aggregation']} (its config.json); "
                      "a resume continues it there: drop --execution and --aggregation")
  differ = sorted(k for k in set(now) | set(recorded) if now.get(k) != recorded.get(k))
  if differ:
    raise ConfigError(f"--resume={output_dir}: this run's {', '.join(differ)} differ(s) from "
                      "the stopped run's config.json (same data and settings needed)")
  return meta


def majority_class_accuracy(labels: np.ndarray) -> float:
  """Test accuracy of always predicting the most frequent test label (the floor to beat)."""
  labels = np.asarray(labels).reshape(-1)
  return float(np.bincount(labels).max() / len(labels)) if len(labels) else float("nan")


def describe(prepared: Prepared, attack_description: str) -> dict[str, Any]:
  """What the run prints at its start and records in config.json."""
  config, data = prepared.config, prepared.data
  sizes = [len(c) for c in prepared.federation.clients]
  scaling = presets.scaling(prepared.family.defaults, config.attack, config.preset)
  return {
      "settings": config.to_json(),
      "data_source": data.data_source,
      "train_examples": len(data.train),
      "test_examples": len(data.test),
      "majority_class_accuracy": majority_class_accuracy(data.test.y),
      "classes": data.class_names,
      "client_names": prepared.federation.names,
      "client_train_examples": sizes,
      "attackers": prepared.federation.attackers,
      "attack": attack_description,
      "preset_scaling": {k: {"paper": a, config.preset: b} for k, (a, b) in scaling.items()},
      "code_vs_paper_choices": {k: {"value": getattr(config, k, None), "meaning": text}
                                for k, text in presets.CHOICES.items()},
      "notices": (list(data.notices) + list(prepared.targets.notices) + size_notices(sizes)
                  + coverage_notices(data.train.y, [c.y for c in prepared.federation.clients],
                                     data.class_names)),
  }


UNEQUAL_CLIENTS = 5
"""A largest client holding this many times the median client's training examples gets a notice."""


def size_notices(sizes: list[int]) -> list[str]:
  """A notice when the largest client holds ``UNEQUAL_CLIENTS`` times the median client's
  training examples or more: coordinate-wise robust rules then follow the typical client's
  shorter update and give the large clients little weight (results/NOTES.md, "LOAN, default data",
  has the measured case)."""
  if not sizes:
    return []
  median = float(np.median(sizes))
  if max(sizes) < UNEQUAL_CLIENTS * max(median, 1.0):
    return []
  return [f"clients hold {min(sizes)}-{max(sizes)} training examples (median {median:g}): robust "
          "aggregators follow the typical client's update and give the large clients, whose "
          "updates are longer, little weight, which can cost accuracy against FedAvg; "
          "scripts/client_diagnostics.py prints each client's update norm and weights."]


SPARSE_CLASS = 0.25
"""A class gets a notice when the clients train on less than this share of what an even cut
would leave them of it."""


def coverage_notices(pool_labels: np.ndarray, client_labels: list[np.ndarray],
                     class_names: list[str]) -> list[str]:
  """A notice naming the classes the clients hardly train on: for class k, the clients'
  training examples of k over the pool's, below ``SPARSE_CLASS`` times the same ratio over
  all classes. Each client trains on the leading part of its list (``--client_train_fraction``,
  as the reference does); a partition that lists a client's examples class by class
  (Dirichlet) then loses the last classes (results/NOTES.md, "Class coverage", has the measured case)."""
  num_classes = len(class_names)
  pool = np.bincount(np.asarray(pool_labels).reshape(-1), minlength=num_classes)
  held = np.bincount(np.concatenate([np.asarray(y).reshape(-1) for y in client_labels] or [[]])
                     .astype(np.int64), minlength=num_classes)
  if not pool.sum():
    return []
  even = held.sum() / pool.sum()
  sparse = [k for k in range(num_classes) if pool[k] and held[k] < SPARSE_CLASS * even * pool[k]]
  if not sparse:
    return []
  listed = ", ".join(f"{k} '{class_names[k]}' ({held[k]} of {pool[k]})" for k in sparse)
  return [f"class coverage: the clients train on few or no examples of class(es) {listed}, against "
          f"{100 * even:.0f}% of every class on average, so the model can hardly learn them. Each "
          "client trains on the leading part of its example list (--client_train_fraction, "
          "--max_examples_per_client), which drops the last classes of a list ordered by class "
          "(the Dirichlet split's); --client_train_fraction=1.0 keeps every example."]


def header_lines(prepared: Prepared, info: dict[str, Any], output_dir: str) -> list[str]:
  config = prepared.config
  sizes = info["client_train_examples"]
  lines = [
      f"task {config.task}: preset {config.preset}, seed {config.seed}, {config.rounds} rounds, "
      f"aggregators {', '.join(config.aggregators)} -> {output_dir}",
      f"data: {info['data_source']}: {info['train_examples']} train / {info['test_examples']} "
      f"test examples, {len(info['classes'])} classes (always predicting the most frequent "
      f"test class scores {100 * info['majority_class_accuracy']:.2f}%)",
      f"clients: {config.num_clients} ({config.partition}), {config.participants_per_round} per "
      f"round, {min(sizes)}-{max(sizes)} training examples each; model {config.model}",
      f"attackers: {info['attackers'] or 'none'}; attack {info['attack']}",
  ]
  if config.runs_clean_baseline:
    lines.append("clean baseline: every aggregator also runs the same rounds without attackers "
                 "(their clients train honestly); excess attack success rate = attacked - clean "
                 "(--clean_baseline=false turns it off)")
  if info["preset_scaling"]:
    changes = ", ".join(f"{k} {v['paper']} -> {v[config.preset]}"
                        for k, v in info["preset_scaling"].items())
    lines.append(f"preset {config.preset} scales the paper's setup: {changes}")
  lines.append("code vs paper: " + "; ".join(
      f"{k}={getattr(config, k)}" for k in presets.CHOICES if hasattr(config, k))
      + " (config.json explains each)")
  lines += [f"NOTICE {n}" for n in info["notices"]]
  return lines


def model_and_attack(prepared: Prepared):
  """(the task's ``ModelSpec``, the run's ``Attack``); ConfigError for impossible attack settings."""
  from tff_residual.attacks import build_attack
  config, data = prepared.config, prepared.data
  model_spec = prepared.family.build_model(config.model, data, config.seed)
  try:
    attack = build_attack(config.attack, config.attack_settings(), prepared.targets,
                          data.num_classes)
  except ValueError as error:
    raise ConfigError(str(error)) from None
  return model_spec, attack


class RuntimeFailure(RuntimeError):
  """The TFF runtime failed under the run: a worker died, or never answered.
  ``during_run``: whether rounds may have finished (False: it failed to start)."""

  def __init__(self, message: str, during_run: bool):
    super().__init__(message)
    self.during_run = during_run


def run(prepared: Prepared, output_dir: str, progress: bool = True,
        out: Callable[[str], None] = print,
        runtime_options: dict | None = None, aggregation: str | None = None,
        execution: str = "tff", resume: bool = False) -> dict[str, Any]:
  """Runs every aggregator; writes the outputs; returns the summary.

  ``execution="tff"`` (the default) trains each round's clients as one TFF
  computation on TFF's worker(s); ``runtime_options`` go to
  ``managed_tff_runtime`` (``num_workers``, ``workers``), and
  ``aggregation="in_process"`` runs each round's aggregation eagerly in this
  process (``in_process.InProcessFactory``) instead of in TFF's worker.
  ``execution="in_process"`` runs both in this process, with no TFF runtime
  (``where_it_runs`` checks the combination). The results depend on none of
  them. A worker that dies or does not answer ends the run with
  ``RuntimeFailure`` (one line, naming it); the finished rounds stay in
  metrics.csv.

  After every round the run saves ``output_dir/checkpoint.npz``
  (``simulation/checkpoint.py``); ``resume=True`` continues the stopped run in
  ``output_dir`` from it (``prepared`` from its config.json: ``config_of_run``),
  so that metrics.csv and summary.json equal an uninterrupted run's, timings aside."""
  import tensorflow as tf  # noqa: F401  (TF and TFF start here)

  from tff_residual.simulation.outputs import RunOutputs, format_table
  from tff_residual.runtime.managed import WorkerLostError, managed_tff_runtime, no_tff_runtime

  aggregation = where_it_runs(execution, aggregation, runtime_options)
  config, data = prepared.config, prepared.data
  model_spec, attack = model_and_attack(prepared)
  info = {**describe(prepared, attack.describe()),
          "runs_on": {"execution": execution, "aggregation": aggregation}}
  saved = resumable_progress(output_dir, info) if resume else None
  outputs = RunOutputs(output_dir, info, resumed_rows=saved["rows"] if saved else None)
  for line in header_lines(prepared, info, output_dir):
    out(line)
  if saved:
    out(f"resuming {output_dir}: {len(saved['finished'])} of {len(config.aggregators)} "
        f"aggregators done" + (f", {saved['aggregator']} after round "
                               f"{sum(r['aggregator'] == saved['aggregator'] for r in saved['rows'])}"
                               if saved["aggregator"] else ""))
  if execution == "in_process":
    runtime = no_tff_runtime("--execution=in_process runs every round in this process")
  else:
    try:
      runtime = managed_tff_runtime(**(runtime_options or {})).start()
    except RuntimeError as error:  # a worker that never started or answered
      raise RuntimeFailure(str(error), during_run=False) from None
  with runtime:
    try:
      results = _run_aggregators(prepared, model_spec, attack, outputs, progress, out,
                                 aggregation, execution, saved)
    except WorkerLostError as error:
      raise RuntimeFailure(str(error), during_run=True) from None
  summary = {
      "task": config.task, "preset": config.preset, "seed": config.seed,
      "aggregators": list(config.aggregators), "num_attackers": config.num_attackers,
      "attackers": prepared.federation.attackers, "rounds": config.rounds,
      "data_source": data.data_source, "clean_baseline": config.runs_clean_baseline,
      "majority_class_accuracy": info["majority_class_accuracy"],
      "results": {r["aggregator"]: {k: v for k, v in r.items() if k != "aggregator"}
                  for r in results},
  }
  plots = outputs.finish(summary)
  checkpoint.remove(output_dir)
  out("")
  out(format_table(results))
  out(f"outputs: {output_dir} (config.json, metrics.csv, summary.json, "
      f"{', '.join(os.path.basename(p) for p in plots)})")
  return summary


def _run_aggregators(prepared: Prepared, model_spec, attack, outputs, progress: bool,
                     out: Callable[[str], None], aggregation: str,
                     execution: str = "tff", saved: dict | None = None) -> list[dict[str, Any]]:
  """Each aggregator's rounds on the installed runtime; its summary row each. ``saved``:
  the checkpoint's progress (``checkpoint.load_meta``) of a run to continue."""
  from tff_residual.simulation import compared_aggregators as aggregator_table
  from tff_residual.simulation.experiment import Experiment
  from tff_residual.simulation.in_process import InProcessFactory
  config = prepared.config
  experiment = Experiment(config.round_settings(), prepared.data, model_spec, attack,
                          prepared.federation, execution)
  aggregator_settings = config.aggregator_settings()
  results = list(saved["finished"]) if saved else []
  for result in results:
    out(f"{result['aggregator']}: done before the stop")

  def save_progress(progress):
    checkpoint.save(outputs.directory, dataclasses.replace(
        progress, finished=list(results), rows=list(outputs.rows)))

  for name in config.aggregators[len(results):]:
    factory = aggregator_table.build_factory(name, aggregator_settings)
    if aggregation == "in_process":
      factory = InProcessFactory(factory)
    resume_from, rounds_done = None, 0
    if saved and saved["aggregator"] == name:
      rounds_done = sum(row["aggregator"] == name for row in saved["rows"])

      def resume_from(initial_state, name=name):
        progress = checkpoint.load(outputs.directory, initial_state)
        progress.rows = progress.rows_of(name)
        return progress
    bar = _progress_bar(name, config.rounds) if progress else None

    def on_round(row, bar=bar):
      outputs.add_round(row)
      if bar is not None:
        bar.set_postfix_str(f"acc {row['accuracy']:.3f} asr {row['attack_success_rate']:.3f}",
                            refresh=False)
        bar.update(1)

    try:
      if bar is not None and rounds_done:
        bar.update(rounds_done)
      result = experiment.run(name, factory, on_round, clean_baseline=config.runs_clean_baseline,
                              server_rule=aggregator_table.server_rule_for_run(
                                  name, aggregator_settings),
                              resume_from=resume_from, on_checkpoint=save_progress)
    finally:
      if bar is not None:
        bar.close()
    results.append(result)
    save_progress(checkpoint.Progress(finished=[], rows=[]))
    line = (f"{name}: accuracy {_number(result['final_accuracy'])}, attack success rate "
            f"{_number(result['attack_success_rate'])}")
    if config.runs_clean_baseline:
      line += (f"; without attackers: accuracy {_number(result['clean_final_accuracy'])}, "
               f"attack success rate {_number(result['clean_attack_success_rate'])}")
    out(f"{line}; {result['wall_seconds']:.1f} s")
  return results


def _number(value) -> str:
  return "n/a" if value is None or value != value else f"{value:.4f}"


def _progress_bar(name: str, rounds: int):
  from tqdm import tqdm
  return tqdm(total=rounds, desc=f"{name:>15}", unit="round", file=sys.stderr, leave=True,
              mininterval=0.5, dynamic_ncols=True)
