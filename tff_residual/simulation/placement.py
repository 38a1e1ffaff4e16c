"""Where a round's two parts run: the clients' training (``execution``) and the
aggregation (``aggregation``), each "tff" (TFF's worker, CPU-only in TFF 0.87) or
"in_process" (this Python process, where TensorFlow places it: the GPU when one is
present). The results depend on neither (tested)."""

from __future__ import annotations

from tff_residual.simulation.errors import ConfigError

AGGREGATIONS = ("tff", "in_process")
"""Where each round's aggregation runs (``runner.run``'s ``aggregation``)."""

EXECUTIONS = ("tff", "in_process")
"""Where each round's client training runs (``runner.run``'s ``execution``,
``client_training.ClientTrainer``'s)."""


def where_it_runs(execution: str, aggregation: str | None,
                  runtime_options: dict | None) -> str:
  """The run's aggregation ("tff" or "in_process") for ``execution``; ConfigError for a
  combination that cannot hold. ``execution="in_process"`` trains the clients and
  aggregates in this process, with no TFF worker: ``aggregation`` None or "in_process",
  and no ``workers``. ``execution="tff"``: ``aggregation`` None means "tff"."""
  if execution not in EXECUTIONS:
    raise ConfigError(f"execution must be one of {EXECUTIONS}, got {execution!r}")
  if aggregation is not None and aggregation not in AGGREGATIONS:
    raise ConfigError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
  if execution == "tff":
    return aggregation or "tff"
  if aggregation == "tff":
    raise ConfigError("--execution=in_process aggregates in this process too; "
                      "--aggregation=tff needs --execution=tff")
  options = runtime_options or {}
  if options.get("workers") or options.get("num_workers", 1) != 1:
    raise ConfigError("--workers and --execution=in_process cannot go together: "
                      "in process, no TFF worker runs")
  return "in_process"
