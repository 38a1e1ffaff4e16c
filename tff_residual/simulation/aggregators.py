"""The one table of aggregators an experiment can compare: name -> TFF factory.

Factories are built on use (TFF is imported then), from the run's
hyper-parameters: ``lambda_`` and ``delta`` for the residual methods, ``beta``
for the trimmed mean. The ``residual_*`` names are the paper's variants
(Table 7: Theil-Sen or median estimator, Gaussian weighting), all on the
authors' code's variant otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class AggregatorEntry:
  name: str
  build: Callable[[Any], Any]
  description: str


def _fedavg(config):
  import tensorflow_federated as tff
  return tff.aggregators.MeanFactory()


def _median(config):
  from tff_residual.aggregators import CoordinateMedianFactory
  return CoordinateMedianFactory()


def _trimmed_mean(config):
  from tff_residual.aggregators import TrimmedMeanFactory
  return TrimmedMeanFactory(beta=config.beta)


def _repeated_median(config):
  from tff_residual.aggregators import RepeatedMedianFactory
  return RepeatedMedianFactory()


def _foolsgold(config):
  from tff_residual.aggregators import FoolsGoldFactory
  return FoolsGoldFactory()


def _residual(variant: str = "reference", estimator: str = "repeated_median",
              weighting: str = "huber"):
  """Builder of a ``ResidualReweightingFactory`` with these kernel options (Table 7's rows)."""
  def build(config):
    from tff_residual.aggregators import ResidualReweightingFactory
    return ResidualReweightingFactory(lambda_=config.lambda_, delta=config.delta, variant=variant,
                                      estimator=estimator, weighting=weighting)
  return build


AGGREGATORS: dict[str, AggregatorEntry] = {
    e.name: e for e in (
        AggregatorEntry("fedavg", _fedavg, "TFF's MeanFactory (weighted by --client_weighting)"),
        AggregatorEntry("median", _median, "coordinate-wise median"),
        AggregatorEntry("trimmed_mean", _trimmed_mean, "coordinate-wise trimmed mean (--beta)"),
        AggregatorEntry("repeated_median", _repeated_median,
                        "coordinate-wise repeated median (the code's = the median)"),
        AggregatorEntry("foolsgold", _foolsgold, "FoolsGold, per round"),
        AggregatorEntry("residual", _residual("reference"),
                        "residual reweighting as the authors' code (--lambda_, --delta)"),
        AggregatorEntry("residual_paper", _residual("paper"),
                        "residual reweighting, eqs. 1-11 literally"),
        AggregatorEntry("residual_theil_sen", _residual(estimator="theil_sen"),
                        "residual reweighting with the Theil-Sen line (Table 7)"),
        AggregatorEntry("residual_median_line", _residual(estimator="median"),
                        "residual reweighting around the coordinate median, no slope (Table 7)"),
        AggregatorEntry("residual_gaussian", _residual(weighting="gaussian"),
                        "residual reweighting with Gaussian weights, sigma = --lambda_ (Table 7)"),
    )
}


def parse_aggregators(text: str) -> tuple[str, ...]:
  """Comma-separated names -> tuple; ValueError naming unknown ones."""
  names = tuple(n.strip() for n in str(text).split(",") if n.strip())
  unknown = [n for n in names if n not in AGGREGATORS]
  if unknown or not names:
    raise ValueError(f"unknown aggregator(s) {unknown or [text]}; expected some of "
                     f"{', '.join(AGGREGATORS)} (comma-separated).")
  duplicates = sorted({n for n in names if names.count(n) > 1})
  if duplicates:
    raise ValueError(f"aggregator(s) {duplicates} named twice in --aggregator.")
  return names


def build_factory(name: str, config):
  return AGGREGATORS[name].build(config)
