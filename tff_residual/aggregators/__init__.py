"""TFF aggregation factories: one module per aggregator and per wrapper, the shared
gather step, and ``build_factory(name, **params)`` for any name of the one name
table (``tff_residual.kernels.method_table``)."""

from tff_residual.aggregators.arc import ARCFactory
from tff_residual.aggregators.bucketing import BucketingFactory
from tff_residual.aggregators.build import build_factory
from tff_residual.aggregators.bulyan import BulyanFactory
from tff_residual.aggregators.centered_clipping import CenteredClippingFactory
from tff_residual.aggregators.coordinate_median import CoordinateMedianFactory
from tff_residual.aggregators.foolsgold import FoolsGoldFactory
from tff_residual.aggregators.geometric_median import GeometricMedianFactory
from tff_residual.aggregators.krum import KrumFactory, MultiKrumFactory
from tff_residual.aggregators.mean import MeanAggregationFactory
from tff_residual.aggregators.nnm import NNMFactory
from tff_residual.aggregators.repeated_median import RepeatedMedianFactory
from tff_residual.aggregators.residual_reweighting import ResidualReweightingFactory
from tff_residual.aggregators.robust_factory import RobustAggregationFactory
from tff_residual.aggregators.trimmed_mean import TrimmedMeanFactory
from tff_residual.aggregators.wrapper import WrapperFactory

__all__ = [
    "ARCFactory", "BucketingFactory", "BulyanFactory", "CenteredClippingFactory",
    "CoordinateMedianFactory", "FoolsGoldFactory", "GeometricMedianFactory", "KrumFactory",
    "MeanAggregationFactory", "MultiKrumFactory", "NNMFactory", "RepeatedMedianFactory",
    "ResidualReweightingFactory", "RobustAggregationFactory", "TrimmedMeanFactory",
    "WrapperFactory", "build_factory"]
