"""Min-Sum (Shejwalkar and Houmansadr, NDSS 2021), Min-Max's sibling.

m = mu + gamma p as in ``min_max``, with gamma the largest value, found by
bisection, for which m's sum of squared distances to the honest updates is
no larger than that of any honest update:

    sum_i ||m - x_i||^2 <= max_j sum_i ||x_j - x_i||^2.
"""

from __future__ import annotations

import numpy as np

from tff_residual.attacks.base import UpdateContext
from tff_residual.attacks.omniscient import (SharedMaliciousUpdate, check_perturbation,
                                             pairwise_squared_distances, search_along)


class MinSum(SharedMaliciousUpdate):
  """``UpdatePoisoning``: mu + gamma p within the honest updates' largest distance sum."""

  def __init__(self, kind: str = "std"):
    super().__init__()
    check_perturbation(kind)
    self.kind = kind
    self.description = (f"min-sum: mu + gamma p, p = {kind} deviation, gamma largest with "
                        "squared-distance sum within the honest updates' largest")

  def craft(self, honest: np.ndarray, context: UpdateContext) -> np.ndarray:
    bound = pairwise_squared_distances(honest).sum(axis=1).max()
    self.last_scale, update = search_along(honest, self.kind, lambda d: d.sum() <= bound)
    return update
