"""Prints README's methods table from the one method table (``kernels.registry``).

    .venv/bin/python scripts/methods_table.py

``tests/test_aggregator_table.py`` checks that README.md holds this output.
"""

from __future__ import annotations

import dataclasses
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tff_residual.aggregators import FACTORIES  # noqa: E402
from tff_residual.kernels import registry  # noqa: E402

HIDDEN = ("chunk_size", "memory_budget_bytes", "implementation")
"""Tuning fields, the same for every chunked method: left out of the table."""


def hyper_parameters(config_class) -> str:
  parts = []
  for field in dataclasses.fields(config_class):
    if field.name in HIDDEN:
      continue
    default = "required" if field.default is dataclasses.MISSING else repr(field.default)
    parts.append(f"`{field.name}`={default}")
  return ", ".join(parts)


def table() -> str:
  factory_of = {name: cls.__name__ for name, cls in FACTORIES.items()}
  rows = ["| method (`aggregate`, `--aggregator`) | factory | hyper-parameters (defaults) | "
          "paper | clients needed | state |", "|---|---|---|---|---|---|"]
  for method in (*registry.METHODS.values(), registry.NNM):
    factory = "`NNMFactory(inner, ...)`" if method is registry.NNM else (
        f"`{factory_of[method.name]}`" if method.name in factory_of else
        "`RobustAggregationFactory(\"mean\")`; `fedavg` in the CLI: TFF's `MeanFactory`")
    name = "`nnm+NAME`" if method is registry.NNM else f"`{method.name}`"
    state = "previous aggregate" if method.stateful else (
        "the inner method's" if method is registry.NNM else "none")
    rows.append(f"| {name} | {factory} | {hyper_parameters(method.config)} | {method.paper} | "
                f"{method.needs} | {state} |")
  settings = ", ".join(f"`{s.name}` = `{s.method}` with "
                       + (", ".join(f"{k}={v!r}" for k, v in s.params.items()) or "nothing else")
                       for s in registry.NAMED_SETTINGS.values())
  return "\n".join(rows) + f"\n\nNamed settings: {settings}."


if __name__ == "__main__":
  sys.stdout.write(table() + "\n")
