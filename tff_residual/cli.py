"""Poisoned federated learning on TensorFlow Federated: one task, one or more aggregators.

    python experiments/run.py --task=fmnist_backdoor --aggregator=fedavg,median,residual
    tff-residual-run --task=fmnist_backdoor ...         (the same, as a console script)
    python -c "from tff_residual import cli; cli.main([...])"   (from Python: returns the exit code)
    cli.build_config("fmnist_backdoor", num_attackers=2)       (a run's config from Python values)

A task is DATASET_ATTACK (--list_tasks prints them all). Every aggregator runs
the same rounds on identical data, attackers, initial model and seeds; the run
writes config.json, metrics.csv (one row per round per aggregator),
summary.json and PNG plots to --output_dir (default runs/<task>-<timestamp>)
and prints a comparison table.

Presets: paper (the paper's setup; meant for a GPU), cpu (default; minutes
on 2 CPU cores, the scaling is printed), smoke (seconds, for tests). Any flag
you set overrides the preset. Where the paper and the authors' code differ,
the default follows the code and a flag gives the paper's choice (printed,
and explained in config.json).

Bad input (unknown task or aggregator, missing or malformed data, impossible
settings) prints one line and exits with 2.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

from tff_residual.attacks.mix_rate import HONEST_ESTIMATES
from tff_residual.simulation.compared_aggregators import AGGREGATORS, METHOD_FLAGS, parse_aggregators
from tff_residual.simulation.experiment_config import ConfigError, config_from_preset
from tff_residual.simulation.placement import AGGREGATIONS, EXECUTIONS, where_it_runs
from tff_residual.tasks import presets
from tff_residual.tasks.base import DataError
from tff_residual.tasks.task_table import FAMILIES, attacks_of, parse_task, valid_tasks

DEFAULT_AGGREGATORS = "fedavg,median,residual"

def _boolean(text: str) -> bool:
  """argparse type for true/false flags (true, false, 1, 0, yes, no, on, off)."""
  value = str(text).strip().lower()
  if value in ("true", "1", "yes", "on"):
    return True
  if value in ("false", "0", "no", "off"):
    return False
  raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


# (flag, type, help) for every setting a preset fills in; unset flags keep the preset's value.
SETTINGS = (
    ("rounds", int, "federated rounds"),
    ("num_clients", int, "clients in total"),
    ("clients_per_round", int, "clients per round (0 = all, in id order)"),
    ("num_attackers", int, "attackers (noisy clients for gaussian) among the clients"),
    ("partition", str, "iid, dirichlet, class_shards (the paper's MNIST split), by_key (LOAN "
                       "states), natural (EMNIST writers)"),
    ("dirichlet_alpha", float, "alpha of the Dirichlet partition"),
    ("shards_per_client", int, "classes per client in class_shards"),
    ("client_train_fraction", float, "share of a client's data it trains on (code 0.7, paper 1)"),
    ("max_examples_per_client", int, "cap per client (0 = none)"),
    ("max_test_examples", int, "evaluate on a seeded subset of this size (0 = all)"),
    ("model", str, "model name (per dataset: cnn, mlp, cifar_cnn, resnet18, fasttext, loannet)"),
    ("optimizer", str, "client optimizer: sgdm or adam"),
    ("learning_rate", float, "client learning rate"),
    ("momentum", float, "SGD momentum"),
    ("batch_size", int, "local batch size"),
    ("local_epochs", int, "honest clients' local epochs"),
    ("max_batches_per_epoch", int, "batches per local epoch at most (code 31, paper 0 = all)"),
    ("attacker_epochs", int, "attackers' local epochs"),
    ("attacker_lr_multiplier", float, "attackers' learning rate factor (code: 10, LOAN 0.2)"),
    ("client_weighting", str, "weights given to aggregators: uniform (code) or num_examples"),
    ("source_label", int, "label flip: source class"),
    ("target_label", int, "label flip: target class"),
    ("backdoor_target", int, "backdoor: target class"),
    ("backdoor_per_batch", int, "backdoor: poisoned examples per batch"),
    ("trigger_value", str, "image backdoor pixels: reference (normalised 1.0) or white"),
    ("attack_round", int, "model replacement: 0-based round of the attack"),
    ("scale_factor", float, "model replacement: update scale"),
    ("noise_scale", float, "gaussian: noise std in percent of the weights"),
    ("mix_rate", float, "mix_rate: probability of keeping a poisoned coordinate"),
    ("alie_z", float, "alie: fixed z in mu - z sigma (default: Baruch et al.'s z for K, f)"),
    ("ipm_epsilon", float, "ipm: the attackers send -epsilon times the honest mean"),
    ("perturbation", str, "min_max, min_sum, adaptive_residual: deviation from the honest mean: "
                          "std (-sigma), unit (-mu/|mu|) or sign (-sign mu)"),
    ("large_value_magnitude", float, "large_value: the attackers' magnitude M (0 = the largest "
                                     "value the round's weighted mean keeps finite)"),
    ("large_value_pattern", str, "large_value: positive, negative, alternating, random (signs "
                                 "of M) or one (one coordinate set to M)"),
    ("mimic_warmup", int, "mimic: rounds in which the attackers choose the honest client to "
                          "copy (Karimireddy et al.: 1)"),
    ("feature_scaling", str, "loan: reference (the code's divide-by-10/100/10,000) or "
                             "standardize (z-scores from the training rows)"),
    ("clean_baseline", _boolean, "true/false: also run every aggregator without attackers (the "
                                 "attackers' clients train honestly) on the same clients, seeds "
                                 "and rounds, and report clean and excess attack success rates "
                                 "(paper and cpu presets: true; smoke: false)"),
    ("foolsgold_history", _boolean, "true/false: FoolsGold compares each client's features "
                                    "summed over its rounds, kept by client id (Fung et al.; "
                                    "the authors' code keeps them by list position), or this "
                                    "round's only (false; every FoolsGold number of results/ "
                                    "before 2026-12-07). Default true"),
)


class OneLineErrorParser(argparse.ArgumentParser):
  """argparse whose errors are one line (no usage block), exit code 2."""

  def error(self, message):
    self.exit(2, f"{self.prog}: error: {message}\n")


def parse_workers(spec: str | int | None) -> tuple[int, list[str] | None]:
  """``--workers``: ``N`` (owned local workers) or ``host:port,host:port,...``
  (workers started elsewhere) -> (number of workers, addresses or None)."""
  if spec is None or spec == "":
    return 1, None
  if isinstance(spec, int) or str(spec).isdigit():
    count = int(spec)
    if count < 1:
      raise ValueError(f"--workers must be at least 1, got {count}")
    return count, None
  addresses = [a.strip() for a in str(spec).split(",") if a.strip()]
  for address in addresses:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
      raise ValueError(f"--workers: {address!r} is neither a number of workers nor host:port")
  return len(addresses), addresses


def build_parser() -> argparse.ArgumentParser:
  aggregator_lines = "\n".join(f"  {name:<22} {description}"
                               for name, description in AGGREGATORS.items())
  parser = OneLineErrorParser(prog="run.py", description=__doc__,
                              epilog=f"aggregators (--aggregator):\n{aggregator_lines}",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--task", help="DATASET_ATTACK, e.g. fmnist_backdoor (see --list_tasks)")
  parser.add_argument("--list_tasks", action="store_true", help="print the valid tasks and exit")
  parser.add_argument("--aggregator", default=DEFAULT_AGGREGATORS,
                      help=f"comma-separated, from {', '.join(AGGREGATORS)} "
                           f"(default {DEFAULT_AGGREGATORS})")
  parser.add_argument("--preset", default="cpu", choices=presets.PRESETS)
  parser.add_argument("--seed", type=int, default=0, help="the run's seed (an integer >= 0)")
  parser.add_argument("--data_path", help="dataset file or directory (see --list_tasks)")
  parser.add_argument("--output_dir", help="default runs/<task>-<timestamp>")
  parser.add_argument("--label_column", default="loan_status", help="loan: the label column")
  parser.add_argument("--trigger_features", default=",".join(_loan_trigger_features()),
                      help="loan: comma-separated backdoor trigger columns")
  parser.add_argument("--mix_honest", default="residual", choices=HONEST_ESTIMATES,
                      help="mix_rate: the attacker's estimate of the honest update")
  parser.add_argument("--no_progress", action="store_true", help="no progress bars")
  parser.add_argument("--workers", default="1",
                      help="TFF workers for the aggregation: N owned local workers (default 1), "
                           "or host:port,... of workers started with `python -m "
                           "tff_residual.runtime.worker --port P`; each round's clients are split "
                           "across them, with the same results")
  parser.add_argument("--resume", metavar="DIR",
                      help="continue the stopped run in DIR (a run saves its progress after "
                           "every round) with DIR's own settings (config.json), where it ran "
                           "(its --execution and --aggregation, recorded there as runs_on); "
                           "only --workers and --no_progress may be given with it, and "
                           "--execution and --aggregation only as the run had them. Its "
                           "metrics.csv and summary.json end equal to an uninterrupted run's, "
                           "timings aside")
  parser.add_argument("--execution", default=None, choices=EXECUTIONS,
                      help="where each round runs: the clients' training as one TFF "
                           "computation on TFF's worker (tff, the default; the CPU: TFF "
                           "0.87's worker is CPU-only), or the same training and the "
                           "aggregation in this process, with no TFF worker (in_process: "
                           "TensorFlow's placement, the GPU when present); the same results")
  parser.add_argument("--aggregation", default=None, choices=AGGREGATIONS,
                      help="where each round's aggregation runs: in TFF's worker (tff, the "
                           "default under --execution=tff), or eagerly in this process "
                           "(in_process: TensorFlow's placement, the GPU when present; "
                           "always so under --execution=in_process); the same results")
  group = parser.add_argument_group("settings (defaults from the preset)")
  for name, kind, text in SETTINGS:
    group.add_argument(f"--{name}", type=kind, default=None, help=text)
  methods = parser.add_argument_group(
      "aggregator hyper-parameters (each goes to every aggregator whose config has it; "
      "unset: the config's default)")
  for name, (kind, text) in METHOD_FLAGS.items():
    methods.add_argument(f"--{name}", type=kind, default=None, help=text)
  return parser


def _loan_trigger_features():
  from tff_residual.tasks.loan import DEFAULT_TRIGGER_FEATURES
  return DEFAULT_TRIGGER_FEATURES


def list_tasks() -> str:
  lines = []
  for name, family in FAMILIES.items():
    lines.append(f"{name}: {family.description}")
    lines.append("  " + ", ".join(f"{name}_{attack}" for attack in attacks_of(family)))
  return "\n".join(lines)


SETTING_NAMES = frozenset(name for name, _, _ in SETTINGS)
"""The preset's settings that run.py's flags override."""

RUN_VALUES = dict(aggregator=DEFAULT_AGGREGATORS, preset="cpu", seed=0, data_path=None,
                  label_column="loan_status", trigger_features=None, mix_honest="residual")
"""The run's own values beside the preset's settings, with run.py's defaults
(``trigger_features`` None: the LOAN task's default columns)."""


def build_config(task: str, **values):
  """(config, family) of ``task`` from Python values: run.py's flag names without the
  dashes (``RUN_VALUES``, the settings of ``SETTINGS`` and the aggregators'
  hyper-parameters of ``METHOD_FLAGS``); ``aggregator`` and ``trigger_features`` take a
  sequence or a comma-separated string. A setting not given (or None) comes from the
  preset. run.py, ``scripts/results.py`` and ``scripts/robustness_grid.py`` build their
  configs here. ConfigError on an unknown name or a value that cannot work.

  >>> config, _ = build_config("fmnist_backdoor", aggregator=["median", "residual"],
  ...                          num_attackers=2, seed=3)
  >>> config.aggregators, config.num_attackers, config.preset
  (('median', 'residual'), 2, 'cpu')
  """
  if not task:
    raise ConfigError(f"--task is required; valid tasks: {', '.join(valid_tasks())}.")
  settings = SETTING_NAMES
  unknown = sorted(set(values) - set(RUN_VALUES) - settings - set(METHOD_FLAGS))
  if unknown:
    raise ConfigError(f"unknown setting(s) {unknown}; expected run.py's flag names "
                      f"(e.g. {', '.join(sorted(settings)[:4])}, ...).")
  run = {**RUN_VALUES, **{k: v for k, v in values.items() if k in RUN_VALUES}}
  if run["preset"] not in presets.PRESETS:
    raise ConfigError(f"--preset must be one of {presets.PRESETS}, got {run['preset']!r}.")
  if isinstance(run["seed"], bool) or not isinstance(run["seed"], int) or run["seed"] < 0:
    raise ConfigError(f"--seed must be an integer >= 0, got {run['seed']!r}.")
  aggregator, features = run["aggregator"], run["trigger_features"]
  if features is None:
    features = _loan_trigger_features()
  if isinstance(features, str):
    features = features.split(",")
  try:
    family, attack = parse_task(task)
    aggregators = parse_aggregators(aggregator if isinstance(aggregator, str)
                                    else ",".join(aggregator))
  except ValueError as error:
    raise ConfigError(str(error)) from None
  overrides = {name: values.get(name) for name in settings}
  overrides.update(task=task, aggregators=aggregators, seed=run["seed"],
                   data_path=run["data_path"], label_column=run["label_column"],
                   trigger_features=tuple(f.strip() for f in features if f.strip()),
                   mix_honest=run["mix_honest"],
                   aggregator_params={name: values[name] for name in METHOD_FLAGS
                                      if values.get(name) is not None})
  return config_from_preset(family, attack, run["preset"], overrides), family


RUN_NAMES = (*RUN_VALUES, *(name for name, _, _ in SETTINGS), *METHOD_FLAGS)
"""The flags that make a run's config (``config_from_args``)."""


def config_from_args(args):
  """(config, family) from parsed flags (``build_config``); ConfigError on bad input."""
  return build_config(args.task, **{name: getattr(args, name) for name in RUN_NAMES})


class Terminated(KeyboardInterrupt):
  """SIGTERM arrived (a scheduler's preemption, ``timeout``, ``kill PID``): it takes the
  path of Ctrl-C, so the workers stop and the finished rounds stay in metrics.csv."""


@contextlib.contextmanager
def sigterm_stops_the_run():
  """Within the block, SIGTERM raises ``Terminated`` in the main thread (Python's
  default lets the process die at once, with no cleanup); the previous handler returns
  after it."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return

  def stop(signum, frame):
    raise Terminated()

  previous = signal.signal(signal.SIGTERM, stop)
  try:
    yield
  finally:
    signal.signal(signal.SIGTERM, previous)


def _kept(output_dir: str | None) -> str:
  """What a stopped run says of its finished rounds."""
  if output_dir is None:
    return ""
  return ("; the rounds finished so far are in metrics.csv; "
          f"continue with --resume={output_dir}")


def main(argv=None) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  if args.list_tasks:
    print(list_tasks())
    return 0
  from tff_residual.simulation import runner
  try:
    num_workers, addresses = parse_workers(args.workers)
  except ValueError as error:
    parser.error(str(error))
  runtime_options = dict(num_workers=num_workers, workers=addresses)
  output_dir = None
  execution, aggregation = args.execution, args.aggregation
  try:
    if args.resume:
      given = [name for name in ("task", *RUN_NAMES, "output_dir")
               if getattr(args, name) != parser.get_default(name)]
      if given:
        raise ConfigError(f"--resume takes the run's settings from {args.resume}/config.json; "
                          f"drop --{', --'.join(given)}")
      if execution is None and aggregation is None:
        # A stopped run continues where it ran (its config.json's "runs_on"); runs
        # recorded before "runs_on" existed ran on TFF unless --execution says otherwise.
        execution, aggregation = runner.placement_of_run(args.resume)
    execution = execution or "tff"
    where_it_runs(execution, aggregation, runtime_options)  # before any data loads
    if args.resume:
      config, family = runner.config_of_run(args.resume)
      output_dir = args.resume
    else:
      config, family = config_from_args(args)
      output_dir = args.output_dir or runner.default_output_dir(config.task)
    prepared = runner.prepare(config, family)
    with sigterm_stops_the_run():
      runner.run(prepared, output_dir, progress=not args.no_progress,
                 runtime_options=runtime_options, aggregation=aggregation,
                 execution=execution, resume=bool(args.resume))
  except (ConfigError, DataError, FileExistsError) as error:
    print(f"run.py: error: {error}", file=sys.stderr)
    return 2
  except Terminated:
    print(f"run.py: terminated (SIGTERM){_kept(output_dir)}", file=sys.stderr)
    return 143
  except KeyboardInterrupt:
    print(f"run.py: interrupted{_kept(output_dir)}", file=sys.stderr)
    return 130
  except runner.RuntimeFailure as error:  # a worker died or never answered
    kept = _kept(output_dir) if error.during_run else ""
    print(f"run.py: error: {error}{kept}", file=sys.stderr)
    return 1
  return 0

