"""Model replacement (Bagdasaryan et al.; paper §4.3, reference
``--backdoor_single_shot_scale_epoch``): in one round (default round index 5,
the paper's round 6) the attacker trains on backdoored batches and submits
g + S (w_local - g), i.e. its update scaled by S (default 100, the paper; the
README's command uses 10). In other rounds it trains clean (with the boosted
epochs and learning rate, as the code does)."""

from __future__ import annotations

from tff_residual.attacks.base import UpdateContext, Weights
from tff_residual.kernels.method_config import check_positive


class ScaleUpdate:
  """``UpdatePoisoning``: the update times ``factor``."""

  def __init__(self, factor: float):
    check_positive("--scale_factor", factor)
    self.factor = float(factor)
    self.description = f"update scaled by {factor:g}"

  def poison_update(self, update: Weights, context: UpdateContext) -> Weights:
    return [u * u.dtype.type(self.factor) for u in update]
