"""Hyper-parameter defaults: the common base, per task family, per attack, per preset.

Presets:
  paper  the paper's setup (rounds, clients, epochs, models; meant for a GPU);
  cpu    (default) scaled so that one run finishes in minutes on 2 CPU cores;
  smoke  seconds, for tests.

``resolve(family, attack, preset)`` layers, later winning:
``COMMON`` -> family ``"*"`` paper -> family ``attack`` paper, then for cpu and
smoke the family's cpu layers, then for smoke ``SMOKE`` and the family's smoke
layers. ``scaling(...)`` lists what a preset changed against ``paper``, which
every run prints.

``COMMON`` holds the authors' code defaults (docs/reference_differences.md §4.0, §4.5);
where the paper says otherwise the flag is documented in ``CHOICES``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PRESETS = ("paper", "cpu", "smoke")

COMMON: dict[str, Any] = dict(
    rounds=100,
    num_clients=10,
    clients_per_round=0,          # 0 = every client, in id order
    num_attackers=1,
    partition="dirichlet",
    dirichlet_alpha=0.9,
    shards_per_client=2,
    client_train_fraction=0.7,    # the code trains on the first 70% of a client's data
    max_examples_per_client=0,    # 0 = no cap
    max_test_examples=0,          # 0 = the whole test set
    model=None,                   # the family's first model
    optimizer="sgdm",
    learning_rate=0.01,
    momentum=0.5,
    batch_size=64,
    local_epochs=5,
    max_batches_per_epoch=31,     # the code stops an epoch after 31 mini-batches
    attacker_epochs=10,
    attacker_lr_multiplier=10.0,  # the code's boost when attacker_epochs != local_epochs
    client_weighting="uniform",   # the code's FedAvg is an unweighted mean
    source_label=None,            # label flip; None = the family's default
    target_label=None,
    backdoor_target=None,
    backdoor_per_batch=20,
    trigger_value="reference",
    attack_round=5,               # model replacement: 0-based round index (paper's round 6)
    scale_factor=100.0,           # model replacement scale (paper; README: 10)
    noise_scale=100.0,            # Gaussian attack, percent (paper Table 4: 0/100/200/300)
    mix_rate=0.5,
    alie_z=None,                  # ALIE: None = Baruch et al.'s z for the round's K and f
    ipm_epsilon=0.5,              # IPM: -epsilon mu (FLPoison's default; ByzFL's 2)
    perturbation="std",           # min_max, min_sum, adaptive_residual: deviation p
    large_value_magnitude=0.0,    # large_value: M; 0 = the largest the round's mean keeps finite
    large_value_pattern="positive",  # large_value: sign pattern (or one coordinate)
    mimic_warmup=1,               # mimic: rounds to choose the client (Karimireddy et al.'s 1)
    feature_scaling="reference",  # LOAN: the code's divide-by-10/100/10,000
    clean_baseline=True,          # every attacked run also runs without attackers
    foolsgold_history=True,       # FoolsGold over each client's summed features, by client id
)

MODEL_POISONING_ATTACKS = ("alie", "ipm", "sign_flip", "min_max", "min_sum", "adaptive_residual",
                           "large_value", "fang_krum", "fang_trimmed_mean", "optimal_alie",
                           "optimal_ipm", "mimic")
"""The omniscient model-poisoning attacks: they act on updates only, so every
task family offers them (``tasks.task_table``)."""

MODEL_POISONING: dict[str, dict[str, Any]] = {
    name: dict(num_attackers=2) for name in MODEL_POISONING_ATTACKS}
"""What they lay over a family's own setup (before its per-attack layer): 2
attackers (of the usual 10 clients, 20%)."""

SMOKE: dict[str, Any] = dict(
    rounds=2,
    num_clients=10,
    clients_per_round=5,
    num_attackers=1,
    local_epochs=1,
    attacker_epochs=2,
    max_batches_per_epoch=2,
    batch_size=32,
    max_examples_per_client=64,
    max_test_examples=256,
    attack_round=1,
    clean_baseline=False,
)

CHOICES: dict[str, str] = {
    "client_weighting": "uniform = the code's unweighted FedAvg mean; num_examples = McMahan et al.'s "
                        "(the paper's FedAvg citation)",
    "client_train_fraction": "0.7 = the code (first 70% of each client's data in stored order); "
                             "1.0 = all of it (the paper's description)",
    "max_batches_per_epoch": "31 = the code (--local_iter 30, off by one); 0 = full epochs (paper)",
    "attacker_lr_multiplier": "10 = the code's boost (0.2 for LOAN); the paper states it only for "
                              "backdoor and mix-rate attackers: set 1 for its label flipping",
    "trigger_value": "reference = 1.0 in normalised space (grey for MNIST), white = the paper's figure",
    "scale_factor": "100 = the paper's model replacement (the README's command uses 10)",
    "backdoor_per_batch": "20 = the paper and the code's default (the README's LOAN command uses 10)",
    "aggregator residual": "the authors' code (variant=reference); residual_paper = eqs. 1-11",
}


def resolve(defaults: Mapping[str, Mapping[str, Mapping[str, Any]]], attack: str,
            preset: str) -> dict[str, Any]:
  """The defaults of ``attack`` under ``preset`` for a family's ``defaults`` table."""
  if preset not in PRESETS:
    raise ValueError(f"unknown preset {preset!r}; expected one of {PRESETS}.")
  layers = [COMMON, _layer(defaults, "*", "paper"), MODEL_POISONING.get(attack, {}),
            _layer(defaults, attack, "paper")]
  if preset in ("cpu", "smoke"):
    layers += [_layer(defaults, "*", "cpu"), _layer(defaults, attack, "cpu")]
  if preset == "smoke":
    layers += [SMOKE, _layer(defaults, "*", "smoke"), _layer(defaults, attack, "smoke")]
  resolved: dict[str, Any] = {}
  for layer in layers:
    resolved.update(layer)
  return resolved


def scaling(defaults, attack: str, preset: str) -> dict[str, tuple[Any, Any]]:
  """``{name: (paper value, preset value)}`` for every default the preset changed."""
  paper = resolve(defaults, attack, "paper")
  chosen = resolve(defaults, attack, preset)
  return {k: (paper[k], v) for k, v in chosen.items() if paper.get(k) != v}


def _layer(defaults, attack: str, preset: str) -> Mapping[str, Any]:
  return defaults.get(attack, {}).get(preset, {})
