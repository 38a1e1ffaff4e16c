"""The settings of one experiment, resolved from preset defaults and flags.

``ExperimentConfig`` holds every hyper-parameter of a run; ``build_config``
layers the task family's preset defaults (``tff_residual.tasks.presets``)
under the user's explicit flags and validates the result. Errors are
``ConfigError`` (a ``ValueError``) with a message naming the flag.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from tff_residual.tasks import presets
from tff_residual.tasks.base import DataSettings, TargetSettings, TaskFamily
from tff_residual.tasks.loan import FEATURE_SCALINGS

OPTIMIZERS = ("sgdm", "adam")
CLIENT_WEIGHTINGS = ("uniform", "num_examples")
PARTITIONS = ("iid", "dirichlet", "class_shards", "by_key", "natural")


class ConfigError(ValueError):
  """An invalid setting; the CLI prints it as one line and exits with 2."""


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """Every setting of a run (see ``experiments/run.py --help`` for each flag)."""

  task: str
  dataset: str
  attack: str
  preset: str
  aggregators: tuple[str, ...]
  seed: int
  data_path: str | None
  label_column: str
  trigger_features: tuple[str, ...]
  mix_honest: str
  rounds: int
  num_clients: int
  clients_per_round: int
  num_attackers: int
  partition: str
  dirichlet_alpha: float
  shards_per_client: int
  client_train_fraction: float
  max_examples_per_client: int
  max_test_examples: int
  model: str
  optimizer: str
  learning_rate: float
  momentum: float
  batch_size: int
  local_epochs: int
  max_batches_per_epoch: int
  attacker_epochs: int
  attacker_lr_multiplier: float
  client_weighting: str
  source_label: int | None
  target_label: int | None
  backdoor_target: int | None
  backdoor_per_batch: int
  trigger_value: str
  attack_round: int
  scale_factor: float
  noise_scale: float
  mix_rate: float
  alie_z: float | None
  ipm_epsilon: float
  perturbation: str
  feature_scaling: str
  clean_baseline: bool
  aggregator_params: dict
  """The aggregators' hyper-parameters set by flags (``--lambda_``, ``--num_byzantine``,
  ...; ``simulation.aggregators.METHOD_FLAGS``); the rest keep their configs' defaults."""

  @property
  def runs_clean_baseline(self) -> bool:
    """Whether the run also measures its metrics without attackers (only a run
    that has attackers needs it)."""
    return self.clean_baseline and self.num_attackers > 0 and self.attack != "none"

  @property
  def participants_per_round(self) -> int:
    """Clients per round; ``clients_per_round`` 0 (or >= num_clients) = all."""
    if self.clients_per_round <= 0 or self.clients_per_round >= self.num_clients:
      return self.num_clients
    return self.clients_per_round

  def data_settings(self) -> DataSettings:
    """What the task's ``load`` reads."""
    return DataSettings(data_path=self.data_path, seed=self.seed, num_clients=self.num_clients,
                        label_column=self.label_column, feature_scaling=self.feature_scaling)

  def target_settings(self) -> TargetSettings:
    """What the task's ``attack_targets`` reads."""
    from tff_residual.attacks import TRIGGER_ATTACKS
    return TargetSettings(source_label=self.source_label, target_label=self.target_label,
                          backdoor_target=self.backdoor_target,
                          trigger_features=self.trigger_features,
                          trigger_value=self.trigger_value,
                          needs_trigger=self.attack in TRIGGER_ATTACKS)

  def attack_settings(self):
    """What the attack table reads (``attacks.AttackSettings``)."""
    from tff_residual.attacks.base import AttackSettings
    return AttackSettings(
        rounds=self.rounds, attack_round=self.attack_round,
        backdoor_per_batch=self.backdoor_per_batch, scale_factor=self.scale_factor,
        noise_scale=self.noise_scale, mix_rate=self.mix_rate, mix_honest=self.mix_honest,
        alie_z=self.alie_z, ipm_epsilon=self.ipm_epsilon, perturbation=self.perturbation,
        residual_params={k: v for k, v in self.aggregator_params.items()
                         if k in ("lambda_", "delta")})

  def to_json(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


def build_config(family: TaskFamily, attack: str, preset: str, overrides: dict[str, Any],
                 ) -> ExperimentConfig:
  """Preset defaults of ``family``/``attack`` with ``overrides`` (flags the user set) on top."""
  values = presets.resolve(family.defaults, attack, preset)
  # None means "not set" for preset settings; other settings are taken as given.
  values.update({k: v for k, v in overrides.items() if v is not None or k not in values})
  values.update(dataset=family.name, attack=attack, preset=preset)
  values["aggregator_params"] = dict(values.get("aggregator_params") or {})  # none set: defaults
  if values.get("model") is None:
    values["model"] = family.models[0]
  names = {f.name for f in dataclasses.fields(ExperimentConfig)}
  unknown = sorted(set(values) - names)
  if unknown:
    raise ConfigError(f"unknown setting(s) {unknown}.")
  missing = sorted(names - set(values))
  if missing:
    raise ConfigError(f"missing setting(s) {missing}.")
  config = ExperimentConfig(**values)
  validate(config, family)
  return config


def _require(condition: bool, message: str) -> None:
  if not condition:
    raise ConfigError(message)


def validate(config: ExperimentConfig, family: TaskFamily) -> None:
  """ConfigError naming the first flag whose value cannot work."""
  ints_at_least = {"rounds": 1, "num_clients": 1, "clients_per_round": 0, "num_attackers": 0,
                   "shards_per_client": 1, "max_examples_per_client": 0, "max_test_examples": 0,
                   "batch_size": 1, "local_epochs": 1, "max_batches_per_epoch": 0,
                   "attacker_epochs": 1, "attack_round": 0}
  for name, lowest in ints_at_least.items():
    value = getattr(config, name)
    _require(isinstance(value, int) and not isinstance(value, bool) and value >= lowest,
             f"--{name} must be an integer >= {lowest}, got {value!r}.")
  positive = ("learning_rate", "dirichlet_alpha", "attacker_lr_multiplier")
  for name in positive:
    value = getattr(config, name)
    _require(isinstance(value, (int, float)) and math.isfinite(value) and value > 0,
             f"--{name} must be a finite number > 0, got {value!r}.")
  _require(0 <= config.momentum < 1, f"--momentum must be in [0, 1), got {config.momentum!r}.")
  _require(0 < config.client_train_fraction <= 1,
           f"--client_train_fraction must be in (0, 1], got {config.client_train_fraction!r}.")
  from tff_residual.attacks import check_settings  # the attacks' own checks (imports TF)
  try:
    check_settings(config.attack_settings(), config.attack)
  except (TypeError, ValueError) as error:
    raise ConfigError(str(error)) from None
  _require(config.optimizer in OPTIMIZERS,
           f"--optimizer must be one of {OPTIMIZERS}, got {config.optimizer!r}.")
  _require(config.client_weighting in CLIENT_WEIGHTINGS,
           f"--client_weighting must be one of {CLIENT_WEIGHTINGS}, got {config.client_weighting!r}.")
  _require(config.partition in PARTITIONS,
           f"--partition must be one of {PARTITIONS}, got {config.partition!r}.")
  _require(config.model in family.models,
           f"--model={config.model} is not offered for {family.name}; expected one of "
           f"{list(family.models)}.")
  _require(config.num_attackers <= config.num_clients,
           f"--num_attackers={config.num_attackers} is more than the {config.num_clients} "
           "clients (--num_clients).")
  _require(config.attack != "none" or config.num_attackers == 0,
           f"task {config.task} has no attack; --num_attackers must be 0.")
  _require(len(config.aggregators) > 0, "--aggregator names no aggregator.")
  _require(config.feature_scaling in FEATURE_SCALINGS,
           f"--feature_scaling must be one of {FEATURE_SCALINGS}, got {config.feature_scaling!r}.")
  _require(config.feature_scaling == "reference" or config.dataset == "loan",
           f"--feature_scaling applies to loan tasks only, not {config.dataset}.")
  _require(isinstance(config.clean_baseline, bool),
           f"--clean_baseline must be true or false, got {config.clean_baseline!r}.")
  from tff_residual.simulation import aggregators  # the methods' own checks (imports TF)
  for name in config.aggregators:
    try:
      resolved = aggregators.resolve_for_run(name, config)
    except (TypeError, ValueError) as error:
      raise ConfigError(f"--aggregator={name}: {error}") from None
    if resolved is not None:
      needed = aggregators.minimum_clients(resolved)
      _require(needed <= config.participants_per_round,
               f"--aggregator={name} needs at least {needed} clients per round for "
               f"num_byzantine f = {getattr(resolved.config, 'num_byzantine', 0)}; the run has "
               f"{config.participants_per_round} (--clients_per_round, --num_clients).")
