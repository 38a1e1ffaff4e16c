"""Gaussian noise on the model (paper §4.4, Table 4; reference
``attack.add_gaussian_noise``, which the released code never calls).

A noisy client trains honestly, then every weight of its *full* model is
multiplied by eps ~ N(1, (s/100)^2): w' = w (1 + (s/100) n), n ~ N(0, 1)
elementwise, s = ``--noise_scale`` in percent (Table 4: 0, 100, 200, 300).
As an update (w = g + u): u' = w' - g = u + (s/100) n (g + u).
"""

from __future__ import annotations


from tff_residual.attacks.base import UpdateContext, Weights
from tff_residual.kernels.method_config import check_positive


class MultiplicativeNoise:
  """``UpdatePoisoning``: multiplicative Gaussian noise on the client's full weights."""

  def __init__(self, scale_percent: float):
    check_positive("--noise_scale (percent)", scale_percent, allow_zero=True)
    self.scale = float(scale_percent) / 100.0
    self.description = f"weights w -> w (1 + {self.scale:g} n), n ~ N(0, 1)"

  def poison_update(self, update: Weights, context: UpdateContext) -> Weights:
    poisoned = []
    for u, g in zip(update, context.global_weights):
      noise = context.rng.standard_normal(u.shape).astype(u.dtype)
      poisoned.append(u + u.dtype.type(self.scale) * noise * (g + u))
    return poisoned
