"""TFF aggregation factories: one module per aggregator, plus the shared gather step."""

from tff_residual.aggregators.coordinate_median import CoordinateMedianFactory
from tff_residual.aggregators.foolsgold import FoolsGoldFactory
from tff_residual.aggregators.repeated_median import RepeatedMedianFactory
from tff_residual.aggregators.residual_reweighting import ResidualReweightingFactory
from tff_residual.aggregators.robust_factory import RobustAggregationFactory
from tff_residual.aggregators.trimmed_mean import TrimmedMeanFactory
