"""The aggregators an experiment can compare: every name of the one name table
(``tff_residual.kernels.method_table``: its rules, named settings, and wrapped names
such as ``arc+nnm+trimmed_mean``), built by ``tff_residual.aggregators.build_factory``
(``fedavg``: TFF's own ``MeanFactory``, weighted by ``--client_weighting``).

Every config field declared with ``flag=True`` is one ``run.py`` flag
(``METHOD_FLAGS``); a flag set on the command line goes to every aggregator
whose config has that field, the other fields keep their defaults. Where a
method needs ``num_byzantine`` and ``--num_byzantine`` is not given, f is the
number of attackers a round can hold: ``num_attackers``, at most the clients
per round. FoolsGold keeps its history by client id (``history_size`` = the
run's clients) unless ``--foolsgold_history=false``.
"""

from __future__ import annotations

import dataclasses

from tff_residual.kernels import method_table


@dataclasses.dataclass(frozen=True)
class AggregatorEntry:
  name: str
  description: str


def _flag_fields() -> dict[str, dataclasses.Field]:
  fields = {}
  for method in (*method_table.METHODS.values(), *method_table.WRAPPERS.values()):
    for field in dataclasses.fields(method.config):
      if field.metadata.get("flag"):
        fields.setdefault(field.name, field)
  return fields


def _flag_type(field: dataclasses.Field):
  text = str(field.type)
  return float if "float" in text else int if "int" in text else str


METHOD_FLAGS: dict[str, tuple[type, str]] = {
    name: (_flag_type(field), field.metadata["help"]) for name, field in _flag_fields().items()}
"""flag name -> (type, help), one per config field name declared with flag=True."""

AGGREGATORS: dict[str, str] = method_table.table()
"""Every name and wrapper prefix -> its description (``--help``)."""


def parse_aggregators(text: str) -> tuple[str, ...]:
  """Comma-separated names -> tuple; ValueError naming unknown ones."""
  names = tuple(n.strip() for n in str(text).split(",") if n.strip())
  if not names:
    raise ValueError(f"--aggregator names no aggregator; expected some of "
                     f"{', '.join(AGGREGATORS)} (comma-separated).")
  for name in names:
    try:
      method_table.parse(name)
    except ValueError as error:
      raise ValueError(f"--aggregator={name}: {error}") from None
  duplicates = sorted({n for n in names if names.count(n) > 1})
  if duplicates:
    raise ValueError(f"aggregator(s) {duplicates} named twice in --aggregator.")
  return names


@dataclasses.dataclass(frozen=True)
class AggregatorSettings:
  """What the aggregator table reads from the run's settings.

  Attributes:
    params: the methods' hyper-parameters set by flags (``METHOD_FLAGS``: ``--lambda_``,
      ``--num_byzantine``, ...); each aggregator takes those its config has.
    num_attackers, participants_per_round: the run's attackers and clients per round;
      f defaults to the attackers a round can hold, and a method needing more
      clients than a round has is refused (``check_aggregators``).
    num_clients: the run's clients (FoolsGold's history keeps one row per client id).
    foolsgold_history: FoolsGold over each client's summed features (by client id),
      as Fung et al. and the authors' code; False: this round's features only.
  """

  params: dict
  num_attackers: int
  participants_per_round: int
  num_clients: int = 0
  foolsgold_history: bool = True


def params_for_run(name: str, settings: AggregatorSettings) -> dict:
  """The hyper-parameters the run gives aggregator ``name``: the flags set that its
  config has, ``num_byzantine`` from the attackers where it needs one, and FoolsGold's
  ``history_size`` (the run's clients) unless the history is off."""
  fields = method_table.fields_of(name)
  params = {k: v for k, v in settings.params.items() if k in fields}
  if "num_byzantine" in fields and "num_byzantine" not in params:
    params["num_byzantine"] = min(settings.num_attackers, settings.participants_per_round)
  if ("history_size" in fields and settings.foolsgold_history and settings.num_clients
      and "history_size" not in params and "bucketing" not in method_table.parse(name)[0]):
    params["history_size"] = settings.num_clients
  return params


def server_rule_for_run(name: str, settings: AggregatorSettings):
  """Aggregator ``name`` with the run's parameters as the attackers model it: a function
  [K, N] -> [N] (float64) through the eager API, unweighted, from the rule's state before
  the first round (the attackers see the round's updates, not the server's state)."""
  import numpy as np

  import tff_residual
  params = params_for_run(name, settings)

  def rule(matrix):
    aggregate, _ = tff_residual.aggregate(list(np.asarray(matrix, np.float32)), name, **params)
    return np.asarray(aggregate, np.float64)
  return rule


def resolve_for_run(name: str, settings: AggregatorSettings) -> method_table.Resolved:
  """``method_table.resolve`` of ``name`` with the run's parameters (validates them)."""
  return method_table.resolve(name, **params_for_run(name, settings))


def check_aggregators(names: tuple[str, ...], settings: AggregatorSettings) -> None:
  """ValueError naming the first aggregator whose parameters cannot work, or that needs
  more clients per round than the run has."""
  if not names:
    raise ValueError("--aggregator names no aggregator.")
  for name in names:
    try:
      resolved = resolve_for_run(name, settings)
    except (TypeError, ValueError) as error:
      raise ValueError(f"--aggregator={name}: {error}") from None
    if resolved.minimum_clients() > settings.participants_per_round:
      raise ValueError(
          f"--aggregator={name} needs at least {resolved.minimum_clients()} clients per round "
          f"for num_byzantine f = {getattr(resolved.config, 'num_byzantine', 0)}; the run has "
          f"{settings.participants_per_round} (--clients_per_round, --num_clients).")


def build_factory(name: str, settings: AggregatorSettings):
  """The TFF factory of aggregator ``name`` for a run with ``settings``."""
  from tff_residual.aggregators import build
  return build.factory_for(resolve_for_run(name, settings))
