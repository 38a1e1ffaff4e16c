"""What every method's config shares: the frozen dataclass base, its field helper
and the checks of hyper-parameter values.

Each aggregation method has one frozen config (``KrumConfig``,
``ResidualReweightingConfig``, ...) in its kernel module. It is the only place
where the method's hyper-parameters, their defaults and their validation are
written: the kernel reads it, ``method_table.METHODS`` names it, the TFF factory's
constructor takes its fields as keywords, and the CLI builds one flag for each
field declared with ``flag=True``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any


def hyper(default: Any = dataclasses.MISSING, help: str = "", flag: bool = False):  # noqa: A002
  """A config field: ``help`` is its one-line meaning; ``flag`` exposes it as
  ``experiments/run.py --NAME`` (fields of one name share one flag)."""
  return dataclasses.field(default=default, metadata={"help": help, "flag": flag})


SAMPLE_WEIGHTINGS = ("ignore", "multiply")


@dataclasses.dataclass(frozen=True, kw_only=True)
class MethodConfig:
  """Base of every method's config: frozen, keyword-only, validated on construction.

  ``sample_weighting``: "ignore" (default, as the paper's code: the weights TFF
  passes, e.g. example counts, are not used) or "multiply" (each method says
  how it uses them). Subclasses validate their own fields in ``__post_init__``
  after calling this one's.
  """

  sample_weighting: str = hyper("ignore", "ignore or multiply: how the clients' sample "
                                          "weights enter the aggregate")

  def __post_init__(self):
    check_choice("sample_weighting", self.sample_weighting, SAMPLE_WEIGHTINGS)

  def used_weights(self, sample_weights):
    """``sample_weights`` under "multiply", else None (the kernel ignores them)."""
    return sample_weights if self.sample_weighting == "multiply" else None

  def replace(self, **changes) -> "MethodConfig":
    return dataclasses.replace(self, **changes)

  def as_dict(self) -> dict:
    return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

  @classmethod
  def field_names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]

  @classmethod
  def from_params(cls, method: str, params: dict) -> "MethodConfig":
    """``cls(**params)``, with a TypeError naming the method and its fields for an
    unknown keyword (the dataclass's own message names neither)."""
    unknown = [name for name in params if name not in cls.field_names()]
    if unknown:
      raise TypeError(f"Unknown parameter(s) {unknown} for method {method!r}; expected some "
                      f"of {cls.field_names()}.")
    missing = [f.name for f in dataclasses.fields(cls)
               if f.default is dataclasses.MISSING and f.name not in params]
    if missing:
      raise TypeError(f"Method {method!r} needs the parameter(s) {missing}.")
    return cls(**params)


def is_number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_choice(name: str, value, allowed) -> None:
  if value not in allowed:
    raise ValueError(f"Unknown {name}={value!r}; expected one of {tuple(allowed)}.")


def check_positive(name: str, value, allow_zero: bool = False) -> None:
  if not is_number(value) or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
    bound = ">= 0" if allow_zero else "> 0"
    raise ValueError(f"{name} must be a finite number {bound}, got {value!r}.")


def check_int(name: str, value, minimum: int = 0, allow_none: bool = False) -> None:
  if value is None and allow_none:
    return
  if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
    raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ByzantineConfig(MethodConfig):
  """A method that is told f, the number of Byzantine clients it must tolerate."""

  num_byzantine: int = hyper(help="f, the Byzantine clients tolerated (krum, multi_krum, "
                                  "bulyan, nnm)", flag=True)

  def __post_init__(self):
    super().__post_init__()
    check_int("num_byzantine", self.num_byzantine, 0)
