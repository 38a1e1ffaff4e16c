"""TFF aggregation factories: one module per aggregator, plus the shared gather step."""

from tff_residual.aggregators.bulyan import BulyanFactory
from tff_residual.aggregators.centered_clipping import CenteredClippingFactory
from tff_residual.aggregators.coordinate_median import CoordinateMedianFactory
from tff_residual.aggregators.foolsgold import FoolsGoldFactory
from tff_residual.aggregators.geometric_median import GeometricMedianFactory
from tff_residual.aggregators.krum import KrumFactory, MultiKrumFactory
from tff_residual.aggregators.nnm import NNMFactory
from tff_residual.aggregators.repeated_median import RepeatedMedianFactory
from tff_residual.aggregators.residual_reweighting import ResidualReweightingFactory
from tff_residual.aggregators.robust_factory import RobustAggregationFactory
from tff_residual.aggregators.trimmed_mean import TrimmedMeanFactory

FACTORIES = {factory.METHOD: factory for factory in (
    BulyanFactory, CenteredClippingFactory, CoordinateMedianFactory, FoolsGoldFactory,
    GeometricMedianFactory, KrumFactory, MultiKrumFactory, RepeatedMedianFactory,
    ResidualReweightingFactory, TrimmedMeanFactory)}
"""Method name -> its factory class (``NNMFactory`` wraps any of them)."""
