"""The settings of one experiment, resolved from preset defaults and flags.

``ExperimentConfig`` holds every hyper-parameter of a run; ``build_config``
layers the task family's preset defaults (``tff_residual.tasks.presets``)
under the user's explicit flags and validates the result. Errors are
``ConfigError`` (a ``ValueError``) with a message naming the flag.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tff_residual.tasks import presets
from tff_residual.tasks.base import DataSettings, TargetSettings, TaskFamily
from tff_residual.simulation.errors import ConfigError
from tff_residual.simulation.federation import FederationSettings
from tff_residual.tasks.loan import FEATURE_SCALINGS


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
  large_value_magnitude: float
  large_value_pattern: str
  mimic_warmup: int
  feature_scaling: str
  clean_baseline: bool
  foolsgold_history: bool
  aggregator_params: dict
  """The aggregators' hyper-parameters set by flags (``--lambda_``, ``--num_byzantine``,
  ...; ``compared_aggregators.METHOD_FLAGS``); the rest keep their configs' defaults."""

  @property
  def runs_clean_baseline(self) -> bool:
    """Whether the run also measures its metrics without attackers (only a run
    that has attackers needs it)."""
    return self.clean_baseline and self.num_attackers > 0 and self.attack != "none"

  @property
  def participants_per_round(self) -> int:
    """Clients per round (``FederationSettings.participants_per_round``)."""
    return self.federation_settings().participants_per_round

  def narrow(self, settings_type, **derived):
    """One layer's settings (a frozen dataclass): each field is this config's field of
    the same name, except those in ``derived``, which the config has no field for."""
    return settings_type(**{f.name: getattr(self, f.name) for f in dataclasses.fields(settings_type)
                            if f.name not in derived}, **derived)

  def data_settings(self) -> DataSettings:
    """What the task's ``load`` reads."""
    return self.narrow(DataSettings)

  def target_settings(self) -> TargetSettings:
    """What the task's ``attack_targets`` reads."""
    from tff_residual.attacks import TRIGGER_ATTACKS
    return self.narrow(TargetSettings, needs_trigger=self.attack in TRIGGER_ATTACKS)

  def attack_settings(self):
    """What the attack table reads (``attacks.AttackSettings``)."""
    from tff_residual.attacks.base import AttackSettings
    return self.narrow(AttackSettings, residual_params={
        k: v for k, v in self.aggregator_params.items() if k in ("lambda_", "delta")})

  def federation_settings(self):
    """What the federation reads (``federation.FederationSettings``)."""
    from tff_residual.attacks import LABEL_FLIP_ATTACKS
    return self.narrow(FederationSettings,
                       attackers_hold_flip_source=self.attack in LABEL_FLIP_ATTACKS)

  def round_settings(self):
    """What the round loop reads (``round_settings.RoundSettings``)."""
    from tff_residual.simulation.round_settings import RoundSettings
    return self.narrow(RoundSettings)

  def aggregator_settings(self):
    """What the aggregator table reads (``aggregators.AggregatorSettings``)."""
    from tff_residual.simulation.compared_aggregators import AggregatorSettings
    return self.narrow(AggregatorSettings, params=dict(self.aggregator_params))

  def to_json(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


def config_from_preset(family: TaskFamily, attack: str, preset: str, overrides: dict[str, Any],
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
  """ConfigError naming the first flag whose value cannot work. Each group of settings
  is checked by the module that uses it (the federation, the round loop, the attacks,
  the aggregator table); what is left here ties settings of several groups together."""
  from tff_residual.attacks import check_settings  # these import TF
  from tff_residual.simulation.compared_aggregators import check_aggregators
  try:
    config.federation_settings().check()
    config.round_settings().check()
    check_settings(config.attack_settings(), config.attack)
    check_aggregators(config.aggregators, config.aggregator_settings())
  except (TypeError, ValueError) as error:
    raise ConfigError(str(error)) from None
  _require(config.model in family.models,
           f"--model={config.model} is not offered for {family.name}; expected one of "
           f"{list(family.models)}.")
  _require(config.attack != "none" or config.num_attackers == 0,
           f"task {config.task} has no attack; --num_attackers must be 0.")
  _require(config.feature_scaling in FEATURE_SCALINGS,
           f"--feature_scaling must be one of {FEATURE_SCALINGS}, got {config.feature_scaling!r}.")
  _require(config.feature_scaling == "reference" or config.dataset == "loan",
           f"--feature_scaling applies to loan tasks only, not {config.dataset}.")
  _require(isinstance(config.clean_baseline, bool),
           f"--clean_baseline must be true or false, got {config.clean_baseline!r}.")
  _require(isinstance(config.foolsgold_history, bool),
           f"--foolsgold_history must be true or false, got {config.foolsgold_history!r}.")
