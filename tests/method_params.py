"""Hyper-parameters that let every method of the table run on a test's clients."""

from tff_residual.kernels import method_table

ORIGINAL_METHODS = ("foolsgold", "mean", "median", "repeated_median", "residual", "trimmed_mean")
"""The paper's methods; tests of their particular behaviour use these."""


def params_for(method: str, num_clients: int) -> dict:
  """``num_byzantine`` = 1 where the method needs f and K allows it, else 0."""
  config = method_table.METHODS[method].config
  if "num_byzantine" not in config.field_names():
    return {}
  needed = config(num_byzantine=1).minimum_clients()
  return {"num_byzantine": 1 if num_clients >= needed else 0}


FAST_METHODS = ("centered_clipping", "foolsgold", "krum", "median", "residual")
"""One method of each kind (stateful, per-tensor, selecting, coordinatewise, model-level):
the fast tier runs the every-method property tests on these; the full suite on all."""


def fast_cases(cases, fast) -> list:
  """``cases`` for pytest.mark.parametrize: those in ``fast`` run in the fast tier, the
  others are marked slow (the full suite runs them all). A case is a value or a tuple."""
  import pytest
  return [case if case in fast else pytest.param(*(case if isinstance(case, tuple) else (case,)),
                                                 marks=pytest.mark.slow)
          for case in cases]


def every_method(methods=None, fast=FAST_METHODS) -> list:
  """``methods`` (default: every method of the table), those outside ``fast`` slow."""
  return fast_cases(sorted(method_table.METHODS) if methods is None else list(methods), fast)
