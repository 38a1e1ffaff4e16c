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
from tff_residual.attacks.omniscient import (SharedMaliciousUpdate, largest_feasible_scale,
                                             mean_and_std, perturbation)


def squared_distances_along(honest: np.ndarray, mu: np.ndarray, p: np.ndarray):
  """s -> [H] ||mu + s p - x_i||^2, from three precomputed terms (O(H) per s)."""
  offsets = mu[None, :] - honest
  base, cross, length = np.sum(offsets ** 2, axis=1), offsets @ p, float(p @ p)
  return lambda s: base + 2.0 * s * cross + s * s * length


def pairwise_squared_distances(honest: np.ndarray) -> np.ndarray:
  """[H, H] ||x_i - x_j||^2 of the honest updates (centred Gram matrix)."""
  centred = honest - honest.mean(axis=0)
  gram = centred @ centred.T
  diagonal = np.diag(gram)
  return np.maximum(diagonal[:, None] + diagonal[None, :] - 2.0 * gram, 0.0)


class MinMax(SharedMaliciousUpdate):
  """``UpdatePoisoning``: mu + gamma p within the honest updates' largest distance."""

  def __init__(self, kind: str = "std"):
    super().__init__()
    perturbation(kind, np.zeros(1), np.zeros(1))  # validates the name
    self.kind = kind
    self.description = (f"min-max: mu + gamma p, p = {kind} deviation, gamma largest with "
                        "max distance to the honest updates within theirs")

  def craft(self, honest: np.ndarray, context: UpdateContext) -> np.ndarray:
    mu, sigma = mean_and_std(honest)
    p = perturbation(self.kind, mu, sigma)
    along = squared_distances_along(honest, mu, p)
    bound = pairwise_squared_distances(honest).max()
    self.last_scale = largest_feasible_scale(lambda s: along(s).max() <= bound)
    return mu + self.last_scale * p
