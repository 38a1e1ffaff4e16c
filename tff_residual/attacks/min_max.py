"""Min-Max (Shejwalkar and Houmansadr, NDSS 2021, "Manipulating the Byzantine",
the aggregation-agnostic attack).

The attackers submit m = mu + gamma p, p a deviation from the honest mean mu
(``omniscient.PERTURBATIONS``), with gamma the largest value, found by
bisection, for which m is no farther from any honest update than the honest
updates are from each other:

    max_i ||m - x_i|| <= max_{i,j} ||x_i - x_j||.
"""

from __future__ import annotations

import numpy as np

from tff_residual.attacks.base import UpdateContext
from tff_residual.attacks.omniscient import (SharedMaliciousUpdate, check_perturbation,
                                             pairwise_squared_distances, search_along)


class MinMax(SharedMaliciousUpdate):
  """``UpdatePoisoning``: mu + gamma p within the honest updates' largest distance."""

  def __init__(self, kind: str = "std"):
    super().__init__()
    check_perturbation(kind)
    self.kind = kind
    self.description = (f"min-max: mu + gamma p, p = {kind} deviation, gamma largest with "
                        "max distance to the honest updates within theirs")

  def craft(self, honest: np.ndarray, context: UpdateContext) -> np.ndarray:
    bound = pairwise_squared_distances(honest).max()
    self.last_scale, update = search_along(honest, self.kind, lambda d: d.max() <= bound)
    return update
