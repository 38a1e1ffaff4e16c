"""The narrow typed settings: the federation, the round loop and the aggregator table
each read their own frozen settings (never the whole ``ExperimentConfig``), check
their own flags, and ``ExperimentConfig`` hands each one its fields unchanged."""

import ast
import dataclasses
import pathlib

import numpy as np
import pytest

from task_helpers import make_config
from tff_residual.simulation.compared_aggregators import AggregatorSettings, check_aggregators
from tff_residual.simulation.federation import FederationSettings, build_federation
from tff_residual.simulation.round_settings import RoundSettings
from tff_residual.tasks.base import Arrays, AttackTargets, TaskData

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "tff_residual"

FEDERATION = FederationSettings(
    seed=4, num_clients=10, clients_per_round=0, num_attackers=2, partition="class_shards",
    dirichlet_alpha=0.9, shards_per_client=2, client_train_fraction=1.0,
    max_examples_per_client=0, attackers_hold_flip_source=True)

ROUNDS = RoundSettings(
    seed=0, rounds=3, batch_size=8, local_epochs=1, max_batches_per_epoch=0, attacker_epochs=2,
    attacker_lr_multiplier=10.0, optimizer="sgdm", learning_rate=0.1, momentum=0.9,
    client_weighting="uniform", max_test_examples=0)


def ten_class_data(per_class=40) -> TaskData:
  y = np.repeat(np.arange(10), per_class)
  x = np.arange(len(y), dtype=np.float32)[:, None]
  return TaskData(Arrays(x, y), Arrays(x[:10], y[:10]), 10, [str(c) for c in range(10)],
                  "ten-class test data")


@pytest.mark.parametrize("settings, message", [
    (FEDERATION, None),
    (dataclasses.replace(FEDERATION, num_clients=0), "--num_clients must be an integer >= 1"),
    (dataclasses.replace(FEDERATION, num_attackers=11),
     "--num_attackers=11 is more than the 10 clients"),
    (dataclasses.replace(FEDERATION, partition="shards"), "Unknown --partition='shards'"),
    (dataclasses.replace(FEDERATION, dirichlet_alpha=0.0), "--dirichlet_alpha must be a finite"),
    (dataclasses.replace(FEDERATION, client_train_fraction=1.5),
     "--client_train_fraction must be in (0, 1], got 1.5"),
    (dataclasses.replace(FEDERATION, clients_per_round=2.5), "--clients_per_round must be an "),
    (ROUNDS, None),
    (dataclasses.replace(ROUNDS, rounds=0), "--rounds must be an integer >= 1, got 0"),
    (dataclasses.replace(ROUNDS, momentum=1.0), "--momentum must be in [0, 1), got 1.0"),
    (dataclasses.replace(ROUNDS, optimizer="sgd"), "Unknown --optimizer='sgd'"),
    (dataclasses.replace(ROUNDS, client_weighting="size"), "Unknown --client_weighting='size'"),
    (dataclasses.replace(ROUNDS, learning_rate=float("nan")), "--learning_rate must be a finite"),
    (dataclasses.replace(ROUNDS, attacker_epochs=True), "--attacker_epochs must be an integer"),
], ids=lambda value: None if isinstance(value, str) or value is None else type(value).__name__)
def test_each_settings_group_checks_its_own_flags(settings, message):
  if message is None:
    settings.check()
    return
  with pytest.raises(ValueError) as raised:
    settings.check()
  assert message in str(raised.value)


@pytest.mark.parametrize("names, settings, message", [
    (("fedavg", "residual", "krum"), AggregatorSettings({}, 2, 7), None),
    ((), AggregatorSettings({}, 2, 7), "--aggregator names no aggregator"),
    (("krum",), AggregatorSettings({}, 2, 6),
     "--aggregator=krum needs at least 7 clients per round for num_byzantine f = 2; the run has 6"),
    (("residual",), AggregatorSettings({"lambda_": -1.0}, 0, 10), "--aggregator=residual: "),
    (("bulyan",), AggregatorSettings({"num_byzantine": 1}, 3, 7), None),  # the flag beats f = 3
])
def test_the_aggregator_table_checks_its_names_against_the_round(names, settings, message):
  if message is None:
    check_aggregators(names, settings)
    return
  with pytest.raises(ValueError) as raised:
    check_aggregators(names, settings)
  assert message in str(raised.value)


def test_a_federation_from_its_settings_alone():
  """No run config: class shards with a flip attack draw the attackers among the holders
  of the flipped class; otherwise they are the last ids. All clients train each round
  for 0, a seeded sample (the same for the same seed and round) below num_clients."""
  data = ten_class_data()
  targets = AttackTargets(flip_source=3, flip_target=5)
  federation = build_federation(FEDERATION, data, targets)
  holders = [c for c, part in enumerate(federation.clients) if 3 in part.y]
  assert len(federation.clients) == 10 and set(federation.attackers) <= set(holders)
  assert federation.attackers == sorted(federation.attackers) and len(federation.attackers) == 2
  assert federation.participants(5) == list(range(10))
  not_flip = dataclasses.replace(FEDERATION, attackers_hold_flip_source=False)
  assert build_federation(not_flip, data, targets).attackers == [8, 9]
  sampled = build_federation(dataclasses.replace(FEDERATION, clients_per_round=4), data, targets)
  assert sampled.settings.participants_per_round == 4
  rounds = [sampled.participants(r) for r in range(6)]
  assert all(len(set(r)) == 4 and set(r) <= set(range(10)) for r in rounds)
  assert len({tuple(r) for r in rounds}) > 1 and sampled.participants(2) == rounds[2]


@pytest.mark.parametrize("task, overrides", [
    ("fmnist_label_flip", dict(partition="class_shards", num_attackers=2, clients_per_round=4)),
    ("loan_backdoor", dict(num_attackers=1, client_weighting="num_examples", lambda_=None)),
    ("mnist_gaussian", dict(num_attackers=3, momentum=0.5, max_test_examples=99)),
])
def test_the_run_config_hands_each_group_its_own_values(task, overrides):
  """Each settings group gets the config's value for every field of the same name (a
  swapped or stale field fails here), and the derived ones follow the attack."""
  overrides = {k: v for k, v in overrides.items() if v is not None}
  config, _ = make_config(task, **overrides)
  groups = (config.federation_settings(), config.round_settings(), config.data_settings(),
            config.target_settings(), config.attack_settings())
  for group in groups:
    for field in dataclasses.fields(group):
      if hasattr(config, field.name):
        assert getattr(group, field.name) == getattr(config, field.name), field.name
  assert config.federation_settings().attackers_hold_flip_source == (task == "fmnist_label_flip")
  aggregators = config.aggregator_settings()
  assert aggregators.params == config.aggregator_params
  assert aggregators.participants_per_round == config.federation_settings().participants_per_round
  assert aggregators.num_attackers == config.num_attackers


NARROW_MODULES = ("tasks", "attacks", "simulation/federation.py", "simulation/experiment.py",
                  "simulation/compared_aggregators.py", "simulation/round_settings.py")


@pytest.mark.parametrize("module", NARROW_MODULES)
def test_tasks_attacks_the_federation_and_the_round_loop_never_see_the_run_config(module):
  path = PACKAGE / module
  for file in sorted(path.glob("*.py")) if path.is_dir() else [path]:
    nodes = list(ast.walk(ast.parse(file.read_text())))
    names = {node.id for node in nodes if isinstance(node, ast.Name)}
    names |= {alias.name for node in nodes if isinstance(node, ast.ImportFrom)
              for alias in node.names}
    assert "ExperimentConfig" not in names, file


@pytest.mark.parametrize("module", NARROW_MODULES)
def test_no_narrow_module_imports_the_config_module(module):
  """The config reads them, never the other way round (no import cycle: ConfigError lives
  in simulation/errors.py)."""
  path = PACKAGE / module
  for file in sorted(path.glob("*.py")) if path.is_dir() else [path]:
    imported = {node.module for node in ast.walk(ast.parse(file.read_text()))
                if isinstance(node, ast.ImportFrom)}
    assert "tff_residual.simulation.experiment_config" not in imported, file


def test_build_config_takes_python_values_as_run_py_takes_flags():
  from tff_residual import cli
  from tff_residual.simulation.experiment_config import ConfigError
  flags = ["--task=loan_backdoor", "--aggregator=median,residual", "--num_attackers=1",
           "--lambda_=1.5", "--seed=3", "--preset=smoke", "--trigger_features=a,b"]
  from_flags, _ = cli.config_from_args(cli.build_parser().parse_args(flags))
  from_values, family = cli.build_config(
      "loan_backdoor", aggregator=["median", "residual"], num_attackers=1, lambda_=1.5, seed=3,
      preset="smoke", trigger_features=("a", "b"))
  assert from_values == from_flags and family.name == "loan"
  assert from_values.aggregator_params == {"lambda_": 1.5}
  assert from_values.trigger_features == ("a", "b")
  default, _ = cli.build_config("fmnist_alie")   # run.py's defaults and the preset's
  assert (default.aggregators, default.seed, default.preset, default.num_attackers) == (
      ("fedavg", "median", "residual"), 0, "cpu", 2)
  for values, message in ((dict(num_atackers=2), r"unknown setting\(s\) \['num_atackers'\]"),
                          (dict(seed=-1), "--seed must be an integer >= 0, got -1"),
                          (dict(seed="3"), "--seed must be an integer >= 0, got '3'"),
                          (dict(preset="gpu"), "--preset must be one of"),
                          (dict(aggregator="medain"), "--aggregator=medain: Unknown method")):
    with pytest.raises(ConfigError, match=message):
      cli.build_config("fmnist_alie", **values)
