"""Inner-product manipulation (Xie, Koyejo, Gupta, UAI 2020, "Fall of empires").

The attackers submit m = -epsilon mu, mu the mean of the round's honest
updates, so that the aggregate's inner product with the true gradient turns
negative once the defence lets enough of m through. Xie et al. use epsilon =
0.1 (against Krum) and 100 (against the median); ByzFL's default is 2,
FLPoison's 0.5 (ours, ``--ipm_epsilon``).
"""

from __future__ import annotations


import numpy as np

from tff_residual.attacks.base import UpdateContext
from tff_residual.attacks.omniscient import SharedMaliciousUpdate
from tff_residual.kernels.method_config import check_positive


class InnerProductManipulation(SharedMaliciousUpdate):
  """``UpdatePoisoning``: -epsilon times the honest mean."""

  def __init__(self, epsilon: float):
    super().__init__()
    check_positive("--ipm_epsilon", epsilon)
    self.epsilon = float(epsilon)
    self.description = f"-{epsilon:g} times the mean of the honest updates"

  def craft(self, honest: np.ndarray, context: UpdateContext) -> np.ndarray:
    return -self.epsilon * honest.mean(axis=0)
