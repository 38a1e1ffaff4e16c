"""tff-residual: attack-resistant aggregation for TensorFlow Federated.

The residual-based reweighting of Fu, Xie, Li and Chen ("Attack-Resistant
Federated Learning with Residual-based Reweighting", arXiv 1912.11464) and the
paper's baselines and the field's standard defences (Krum, Multi-Krum, the
geometric median, centered clipping, Bulyan; nearest-neighbour mixing, ARC and
bucketing around any of them), as
``tff.aggregators`` factories and as an eager function.

Everything is imported lazily (TensorFlow and TFF load on first use, so that
``tff_residual.tasks`` and the CLI's argument checks stay fast);
``tff_residual.aggregate`` and ``tff_residual.kernels`` need TensorFlow only.
"""

__version__ = "0.1.0"

_LAZY_EXPORTS = {
    "aggregate": "tff_residual.api",
    "ResidualReweightingFactory": "tff_residual.aggregators",
    "CoordinateMedianFactory": "tff_residual.aggregators",
    "TrimmedMeanFactory": "tff_residual.aggregators",
    "RepeatedMedianFactory": "tff_residual.aggregators",
    "FoolsGoldFactory": "tff_residual.aggregators",
    "KrumFactory": "tff_residual.aggregators",
    "MultiKrumFactory": "tff_residual.aggregators",
    "GeometricMedianFactory": "tff_residual.aggregators",
    "CenteredClippingFactory": "tff_residual.aggregators",
    "BulyanFactory": "tff_residual.aggregators",
    "NNMFactory": "tff_residual.aggregators",
    "ARCFactory": "tff_residual.aggregators",
    "BucketingFactory": "tff_residual.aggregators",
    "MeanAggregationFactory": "tff_residual.aggregators",
    "build_factory": "tff_residual.aggregators",
    "RobustAggregationFactory": "tff_residual.aggregators",
    "managed_tff_runtime": "tff_residual.runtime.managed",
    "ManagedTffRuntime": "tff_residual.runtime.managed",
}

__all__ = list(_LAZY_EXPORTS)


def __getattr__(name):
  if name in _LAZY_EXPORTS:
    import importlib
    return getattr(importlib.import_module(_LAZY_EXPORTS[name]), name)
  raise AttributeError(f"module 'tff_residual' has no attribute {name!r}")


def __dir__():
  """The public names too (they load lazily), so that tab completion and ``dir()`` show
  them."""
  return sorted(set(globals()) | set(__all__))
