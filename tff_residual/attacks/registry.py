"""The one table of attacks: name -> how to build it from the run's settings.

``build_attack(name, config, targets, num_classes)`` returns the ``Attack``
the simulation runs (``none``: an attack without poisoning, for the clean
baseline).
"""

from __future__ import annotations

from collections.abc import Callable

from tff_residual.attacks.adaptive_residual import AdaptiveResidual
from tff_residual.attacks.alie import ALittleIsEnough
from tff_residual.attacks.backdoor import Backdoor, check_per_batch
from tff_residual.attacks.base import Attack
from tff_residual.attacks.gaussian import MultiplicativeNoise
from tff_residual.attacks.ipm import InnerProductManipulation
from tff_residual.attacks.label_flip import LabelFlip
from tff_residual.attacks.min_max import MinMax
from tff_residual.attacks.min_sum import MinSum
from tff_residual.attacks.mix_rate import BlendWithHonest
from tff_residual.attacks.model_replacement import ScaleUpdate
from tff_residual.attacks.omniscient import check_perturbation
from tff_residual.attacks.sign_flip import SignFlip
from tff_residual.tasks.base import AttackTargets


def _label_flip(config, targets: AttackTargets, num_classes: int) -> LabelFlip:
  return LabelFlip(targets.flip_source, targets.flip_target, num_classes)


def _backdoor(config, targets: AttackTargets) -> Backdoor:
  if targets.trigger is None:
    raise ValueError(f"task {config.task} has no backdoor trigger.")
  return Backdoor(targets.trigger, targets.backdoor_target, config.backdoor_per_batch)


def _none(config, targets, num_classes):
  return Attack("none", boosted_training=False)


def _label_flip_attack(config, targets, num_classes):
  flip = _label_flip(config, targets, num_classes)
  return Attack("label_flip", data_poisoning=flip, success_metric=flip)


def _backdoor_attack(config, targets, num_classes):
  backdoor = _backdoor(config, targets)
  return Attack("backdoor", data_poisoning=backdoor, success_metric=backdoor)


def _check_attack_round(config) -> None:
  if config.attack_round >= config.rounds:
    raise ValueError(f"--attack_round={config.attack_round} is not among the {config.rounds} "
                     "rounds (0-based).")


def _model_replacement(config, targets, num_classes):
  backdoor = _backdoor(config, targets)
  _check_attack_round(config)
  return Attack("model_replacement", data_poisoning=backdoor,
                update_poisoning=ScaleUpdate(config.scale_factor),
                poison_round=config.attack_round, success_metric=backdoor)


def _gaussian(config, targets, num_classes):
  return Attack("gaussian", update_poisoning=MultiplicativeNoise(config.noise_scale),
                boosted_training=False)


def _mix_rate(config, targets, num_classes):
  flip = _label_flip(config, targets, num_classes)
  return Attack("mix_rate", data_poisoning=flip,
                update_poisoning=BlendWithHonest(config.mix_rate, config.mix_honest),
                success_metric=flip)


def _model_poisoning(name: str, build: Callable[[object], object]):
  """An untargeted attack on the attackers' (honestly trained) updates, every round."""
  return lambda config, targets, num_classes: Attack(
      name, update_poisoning=build(config), boosted_training=False)


def _adaptive_residual(config):
  """The white-box attack on ``residual`` with the run's own lambda and delta."""
  params = {k: v for k, v in config.aggregator_params.items() if k in ("lambda_", "delta")}
  return AdaptiveResidual(config.perturbation, "residual", **params)


ATTACKS: dict[str, Callable[..., Attack]] = {
    "none": _none,
    "label_flip": _label_flip_attack,
    "backdoor": _backdoor_attack,
    "model_replacement": _model_replacement,
    "gaussian": _gaussian,
    "mix_rate": _mix_rate,
    "alie": _model_poisoning("alie", lambda config: ALittleIsEnough(config.alie_z)),
    "ipm": _model_poisoning("ipm", lambda config: InnerProductManipulation(config.ipm_epsilon)),
    "sign_flip": _model_poisoning("sign_flip", lambda config: SignFlip()),
    "min_max": _model_poisoning("min_max", lambda config: MinMax(config.perturbation)),
    "min_sum": _model_poisoning("min_sum", lambda config: MinSum(config.perturbation)),
    "adaptive_residual": _model_poisoning("adaptive_residual", _adaptive_residual),
}


TRIGGER_ATTACKS = frozenset({"backdoor", "model_replacement"})
"""The attacks that stamp the task's backdoor trigger (``_backdoor``): the task
builds a trigger only for them (``TargetSettings.needs_trigger``)."""


def check_settings(config) -> None:
  """ValueError naming the first attack flag whose value cannot work, before any
  data is loaded. Each check is the attack class's own (the class is built from
  the flag here, whatever the run's attack), so every flag is checked in one place."""
  check_per_batch(config.backdoor_per_batch)
  ScaleUpdate(config.scale_factor)
  MultiplicativeNoise(config.noise_scale)
  BlendWithHonest(config.mix_rate, config.mix_honest)
  ALittleIsEnough(config.alie_z)
  InnerProductManipulation(config.ipm_epsilon)
  check_perturbation(config.perturbation)
  if config.attack == "model_replacement":
    _check_attack_round(config)


def build_attack(name: str, config, targets: AttackTargets, num_classes: int) -> Attack:
  if name not in ATTACKS:
    raise ValueError(f"unknown attack {name!r}; expected one of {sorted(ATTACKS)}.")
  return ATTACKS[name](config, targets, num_classes)
