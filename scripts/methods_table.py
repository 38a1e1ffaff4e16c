"""Prints README's name table from the one name table (``kernels.method_table``).

    .venv/bin/python scripts/methods_table.py

``tests/test_aggregator_table.py`` checks that README.md holds this output.
"""

from __future__ import annotations

import dataclasses
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tff_residual.kernels import method_table  # noqa: E402

HIDDEN = ("chunk_size", "memory_budget_bytes", "implementation")
"""Tuning fields, the same for every chunked method: left out of the table."""


def hyper_parameters(config_class, wrapper: bool = False) -> str:
  parts = []
  for field in dataclasses.fields(config_class):
    if field.name in HIDDEN or (wrapper and field.name == "sample_weighting"):
      continue
    default = "required" if field.default is dataclasses.MISSING else repr(field.default)
    parts.append(f"`{field.name}`={default}")
  return ", ".join(parts)


STATES = {"centered_clipping": "previous aggregate", "foolsgold": "with history_size: each "
          "client id's summed features", "bucketing": "the round number, then the inner's"}


def factory_name(path: str) -> str:
  return path.split(":")[1]


def table() -> str:
  rows = ["| name (`aggregate`, `build_factory`, `--aggregator`) | factory | hyper-parameters "
          "(defaults) | paper | clients needed | state |", "|---|---|---|---|---|---|"]
  for method in (*method_table.METHODS.values(), *method_table.WRAPPERS.values()):
    wrapper = method.name in method_table.WRAPPERS
    name = f"`{method.name}{method_table.SEPARATOR}NAME`" if wrapper else f"`{method.name}`"
    factory = f"`{factory_name(method.factory)}" + ("(inner, ...)`" if wrapper else "`")
    state = STATES.get(method.name, "the inner method's" if wrapper else "none")
    rows.append(f"| {name} | {factory} | {hyper_parameters(method.config, wrapper)} | {method.paper} | "
                f"{method.needs} | {state} |")
  settings = ", ".join(
      f"`{s.name}` = `{s.method}` with "
      + (", ".join(f"{k}={v!r}" for k, v in s.params.items()) or "nothing else")
      + (f" (factory: `{factory_name(s.factory)}`)" if s.factory else "")
      for s in method_table.NAMED_SETTINGS.values())
  aliases = ", ".join(
      f"`{a.name}` = `{a.target}` with "
      + ", ".join(f"{k} = {source}" for k, source in a.tied.items())
      for a in method_table.ALIASES.values())
  return ("\n".join(rows) + f"\n\nNamed settings: {settings}. Wrappers compose, each once, "
          "outermost first: `arc+nnm+trimmed_mean` is ARC, then NNM, then the trimmed mean "
          f"(ByzFL's default pipeline). Aliases: {aliases}.")


if __name__ == "__main__":
  sys.stdout.write(table() + "\n")
