"""The one table of attacks: name -> how to build it from the run's settings.

``build_attack(name, settings, targets, num_classes)`` (``AttackSettings``) returns the ``Attack``
the simulation runs (``none``: an attack without poisoning, for the clean
baseline).
"""

from __future__ import annotations

from collections.abc import Callable

from tff_residual.attacks.adaptive_residual import AdaptiveResidual
from tff_residual.attacks.alie import ALittleIsEnough
from tff_residual.attacks.backdoor import Backdoor, check_per_batch
from tff_residual.attacks.base import Attack, AttackSettings
from tff_residual.attacks.fang_krum import FangKrum
from tff_residual.attacks.fang_trimmed_mean import FangTrimmedMean
from tff_residual.attacks.gaussian import MultiplicativeNoise
from tff_residual.attacks.ipm import InnerProductManipulation
from tff_residual.attacks.large_value import LargeValue
from tff_residual.attacks.label_flip import LabelFlip
from tff_residual.attacks.min_max import MinMax
from tff_residual.attacks.mimic import Mimic
from tff_residual.attacks.min_sum import MinSum
from tff_residual.attacks.mix_rate import BlendWithHonest
from tff_residual.attacks.model_replacement import ScaleUpdate
from tff_residual.attacks.omniscient import check_perturbation
from tff_residual.attacks.optimal_alie import OptimalALIE
from tff_residual.attacks.optimal_ipm import OptimalIPM
from tff_residual.attacks.sign_flip import SignFlip
from tff_residual.kernels.method_config import check_int
from tff_residual.tasks.base import AttackTargets


def _label_flip(settings, targets: AttackTargets, num_classes: int) -> LabelFlip:
  return LabelFlip(targets.flip_source, targets.flip_target, num_classes)


def _backdoor(settings, targets: AttackTargets) -> Backdoor:
  if targets.trigger is None:
    raise ValueError("this task has no backdoor trigger.")
  return Backdoor(targets.trigger, targets.backdoor_target, settings.backdoor_per_batch)


def _none(settings, targets, num_classes):
  return Attack("none", boosted_training=False)


def _label_flip_attack(settings, targets, num_classes):
  flip = _label_flip(settings, targets, num_classes)
  return Attack("label_flip", data_poisoning=flip, success_metric=flip)


def _backdoor_attack(settings, targets, num_classes):
  backdoor = _backdoor(settings, targets)
  return Attack("backdoor", data_poisoning=backdoor, success_metric=backdoor)


def _check_attack_round(settings) -> None:
  if settings.attack_round >= settings.rounds:
    raise ValueError(f"--attack_round={settings.attack_round} is not among the {settings.rounds} "
                     "rounds (0-based).")


def _model_replacement(settings, targets, num_classes):
  backdoor = _backdoor(settings, targets)
  _check_attack_round(settings)
  return Attack("model_replacement", data_poisoning=backdoor,
                update_poisoning=ScaleUpdate(settings.scale_factor),
                poison_round=settings.attack_round, success_metric=backdoor)


def _gaussian(settings, targets, num_classes):
  return Attack("gaussian", update_poisoning=MultiplicativeNoise(settings.noise_scale),
                boosted_training=False)


def _mix_rate(settings, targets, num_classes):
  flip = _label_flip(settings, targets, num_classes)
  return Attack("mix_rate", data_poisoning=flip,
                update_poisoning=BlendWithHonest(settings.mix_rate, settings.mix_honest),
                success_metric=flip)


def _model_poisoning(name: str, build: Callable[[object], object]):
  """An untargeted attack on the attackers' (honestly trained) updates, every round."""
  return lambda settings, targets, num_classes: Attack(
      name, update_poisoning=build(settings), boosted_training=False)


def _adaptive_residual(settings):
  """The white-box attack on ``residual`` with the run's own lambda and delta."""
  return AdaptiveResidual(settings.perturbation, "residual", **settings.residual_params)


ATTACKS: dict[str, Callable[..., Attack]] = {
    "none": _none,
    "label_flip": _label_flip_attack,
    "backdoor": _backdoor_attack,
    "model_replacement": _model_replacement,
    "gaussian": _gaussian,
    "mix_rate": _mix_rate,
    "alie": _model_poisoning("alie", lambda settings: ALittleIsEnough(settings.alie_z)),
    "ipm": _model_poisoning("ipm", lambda settings: InnerProductManipulation(settings.ipm_epsilon)),
    "sign_flip": _model_poisoning("sign_flip", lambda settings: SignFlip()),
    "min_max": _model_poisoning("min_max", lambda settings: MinMax(settings.perturbation)),
    "min_sum": _model_poisoning("min_sum", lambda settings: MinSum(settings.perturbation)),
    "adaptive_residual": _model_poisoning("adaptive_residual", _adaptive_residual),
    "large_value": _model_poisoning("large_value", lambda settings: LargeValue(
        settings.large_value_magnitude, settings.large_value_pattern)),
    "fang_krum": _model_poisoning("fang_krum", lambda settings: FangKrum()),
    "fang_trimmed_mean": _model_poisoning("fang_trimmed_mean", lambda settings: FangTrimmedMean()),
    "optimal_alie": _model_poisoning("optimal_alie", lambda settings: OptimalALIE()),
    "optimal_ipm": _model_poisoning("optimal_ipm", lambda settings: OptimalIPM()),
    "mimic": _model_poisoning("mimic", lambda settings: Mimic(settings.mimic_warmup)),
}


TRIGGER_ATTACKS = frozenset({"backdoor", "model_replacement"})
"""The attacks that stamp the task's backdoor trigger (``_backdoor``): the task
builds a trigger only for them (``TargetSettings.needs_trigger``)."""

LABEL_FLIP_ATTACKS = frozenset({"label_flip", "mix_rate"})
"""The attacks whose attackers relabel the task's flip source class: with the
paper's ``class_shards`` split, the attackers are drawn among the clients that
hold that class (``FederationSettings.attackers_hold_flip_source``)."""


def check_settings(settings: AttackSettings, attack: str) -> None:
  """ValueError naming the first attack flag whose value cannot work, before any
  data is loaded. Each check is the attack class's own (the class is built from
  the flag here, whatever the run's attack), so every flag is checked in one place."""
  check_per_batch(settings.backdoor_per_batch)
  check_int("--attack_round", settings.attack_round, 0)
  ScaleUpdate(settings.scale_factor)
  MultiplicativeNoise(settings.noise_scale)
  BlendWithHonest(settings.mix_rate, settings.mix_honest)
  ALittleIsEnough(settings.alie_z)
  InnerProductManipulation(settings.ipm_epsilon)
  check_perturbation(settings.perturbation)
  LargeValue(settings.large_value_magnitude, settings.large_value_pattern)
  Mimic(settings.mimic_warmup)
  if attack == "model_replacement":
    _check_attack_round(settings)


def build_attack(name: str, settings: AttackSettings, targets: AttackTargets,
                 num_classes: int) -> Attack:
  if name not in ATTACKS:
    raise ValueError(f"unknown attack {name!r}; expected one of {sorted(ATTACKS)}.")
  return ATTACKS[name](settings, targets, num_classes)
