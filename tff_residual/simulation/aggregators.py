"""The aggregators an experiment can compare, derived from the one method table
(``tff_residual.kernels.registry``): its methods, its named settings, and
``nnm+NAME`` for any of them. ``fedavg`` runs TFF's own ``MeanFactory`` (the
mean, weighted by ``--client_weighting``).

Every config field declared with ``flag=True`` is one ``run.py`` flag
(``METHOD_FLAGS``); a flag set on the command line goes to every aggregator
whose config has that field, the other fields keep their defaults. Where a
method needs ``num_byzantine`` and ``--num_byzantine`` is not given, f is the
number of attackers a round can hold: ``num_attackers``, at most the clients
per round.
"""

from __future__ import annotations

import dataclasses

from tff_residual.kernels import registry


@dataclasses.dataclass(frozen=True)
class AggregatorEntry:
  name: str
  description: str


def _flag_fields() -> dict[str, dataclasses.Field]:
  fields = {}
  for method in (*registry.METHODS.values(), registry.NNM):
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

AGGREGATORS: dict[str, AggregatorEntry] = {
    e.name: e for e in (
        AggregatorEntry("fedavg", "TFF's MeanFactory (weighted by --client_weighting)"),
        *(AggregatorEntry(m.name, m.description) for m in registry.METHODS.values()
          if m.name != "mean"),
        *(AggregatorEntry(s.name, s.description) for s in registry.NAMED_SETTINGS.values()
          if s.name != "fedavg"),
        AggregatorEntry(f"{registry.NNM_PREFIX}NAME",
                        "nearest-neighbour mixing before NAME, e.g. nnm+residual "
                        "(--num_byzantine)"),
    )
}


def parse_aggregators(text: str) -> tuple[str, ...]:
  """Comma-separated names -> tuple; ValueError naming unknown ones."""
  names = tuple(n.strip() for n in str(text).split(",") if n.strip())
  def known(name):
    inner = name[len(registry.NNM_PREFIX):] if name.startswith(registry.NNM_PREFIX) else None
    return (name in AGGREGATORS and "NAME" not in name) or (
        inner is not None and inner in AGGREGATORS and inner != "fedavg"
        and not inner.startswith(registry.NNM_PREFIX))
  unknown = [n for n in names if not known(n)]
  if unknown or not names:
    raise ValueError(f"unknown aggregator(s) {unknown or [text]}; expected some of "
                     f"{', '.join(AGGREGATORS)} (comma-separated).")
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
  """

  params: dict
  num_attackers: int
  participants_per_round: int


def params_for_run(name: str, settings: AggregatorSettings) -> dict:
  """The hyper-parameters the run gives aggregator ``name``: the flags set that its
  config has, and ``num_byzantine`` from the attackers where it needs one."""
  fields = registry.fields_of(name)
  params = {k: v for k, v in settings.params.items() if k in fields}
  if "num_byzantine" in fields and "num_byzantine" not in params:
    params["num_byzantine"] = min(settings.num_attackers, settings.participants_per_round)
  return params


def resolve_for_run(name: str, settings: AggregatorSettings):
  """``registry.resolve`` of ``name`` with the run's parameters (validates them);
  None for fedavg."""
  if name == "fedavg":
    return None
  return registry.resolve(name, **params_for_run(name, settings))


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
    if resolved is not None and minimum_clients(resolved) > settings.participants_per_round:
      raise ValueError(
          f"--aggregator={name} needs at least {minimum_clients(resolved)} clients per round "
          f"for num_byzantine f = {getattr(resolved.config, 'num_byzantine', 0)}; the run has "
          f"{settings.participants_per_round} (--clients_per_round, --num_clients).")


def build_factory(name: str, settings: AggregatorSettings):
  """The TFF factory of aggregator ``name`` for a run with ``settings``."""
  if name == "fedavg":
    import tensorflow_federated as tff
    return tff.aggregators.MeanFactory()
  from tff_residual.aggregators import FACTORIES, NNMFactory
  params = params_for_run(name, settings)
  if name.startswith(registry.NNM_PREFIX):
    inner_name = name[len(registry.NNM_PREFIX):]
    mixing = {k: v for k, v in params.items() if k in registry.NNM.config.field_names()}
    inner_fields = registry.fields_of(inner_name)
    inner = build_factory_with(inner_name, {k: v for k, v in params.items()
                                            if k in inner_fields}, FACTORIES)
    return NNMFactory(inner, **mixing)
  return build_factory_with(name, params, FACTORIES)


def build_factory_with(name: str, params: dict, factories: dict):
  setting = registry.NAMED_SETTINGS.get(name)
  if setting is not None:
    return factories[setting.method](**setting.params, **params)
  return factories[name](**params)


def minimum_clients(resolved) -> int:
  """The fewest clients a round of ``resolved`` (and its inner method) can run on."""
  needs = [getattr(r.config, "minimum_clients", lambda: 1)()
           for r in (resolved, resolved.inner) if r is not None]
  return max(needs)
