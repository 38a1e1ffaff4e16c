"""Residual-based reweighting (Fu, Xie, Li, Chen, "Attack-Resistant Federated
Learning with Residual-based Reweighting"), one module per step:

* ``reweighting``: the kernel and its config (``ResidualReweightingConfig``,
  ``residual_reweighting``): per coordinate, the repeated-median line through the
  sorted client values (eqs. 1-2), then eqs. 3-11 chunk by chunk;
* ``equations``: eqs. 3-11 from a chunk's order statistics (standardised residuals,
  IRLS confidences, corrected values, the per-client sums of eq. 10);
* ``fused``: the fast ways to the order statistics (counted ranks under XLA and
  selection networks when K is known, networks of plain TF ops in TFF's worker);
* ``sorting_networks``: the comparator networks ``fused`` builds from.
"""

from tff_residual.kernels.residual.reweighting import ResidualReweightingConfig, residual_reweighting

__all__ = ["ResidualReweightingConfig", "residual_reweighting"]
