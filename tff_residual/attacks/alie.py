"""A little is enough (Baruch, Baruch, Goldberg, NeurIPS 2019).

The attackers submit, coordinate by coordinate,

    m = mu - z sigma,

mu and sigma the mean and standard deviation of the round's honest updates.
Baruch et al. choose z so that the attackers, with enough honest clients
beside them, still look like the majority: with K clients of which f attack,
s = floor(K / 2 + 1) - f honest clients must be won over, and

    z = Phi^-1((K - s) / K)

(Phi the standard normal CDF). ``--alie_z`` fixes z instead.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from tff_residual.attacks.base import UpdateContext
from tff_residual.attacks.omniscient import SharedMaliciousUpdate, mean_and_std
from tff_residual.kernels.method_config import is_number


def baruch_z(num_clients: int, num_attackers: int) -> float:
  """z of Baruch et al. for K clients and f attackers; ValueError if K < 1."""
  if num_clients < 1 or not 0 <= num_attackers <= num_clients:
    raise ValueError(f"ALIE needs 0 <= f <= K and K >= 1; got K = {num_clients}, "
                     f"f = {num_attackers}.")
  supporters = math.floor(num_clients / 2 + 1) - num_attackers
  quantile = min(max((num_clients - supporters) / num_clients, 1e-6), 1 - 1e-6)
  return NormalDist().inv_cdf(quantile)


class ALittleIsEnough(SharedMaliciousUpdate):
  """``UpdatePoisoning``: mu - z sigma; z from ``baruch_z`` per round, or fixed."""

  def __init__(self, z: float | None = None):
    super().__init__()
    if z is not None and not (is_number(z) and math.isfinite(z)):
      raise ValueError(f"--alie_z must be a finite number, got {z!r}.")
    self.z = z
    self.description = ("mu - z sigma of the honest updates, z = "
                        + ("Baruch et al.'s for the round's K and f" if z is None else f"{z:g}"))

  def craft(self, honest: np.ndarray, context: UpdateContext) -> np.ndarray:
    z = self.z if self.z is not None else baruch_z(context.num_clients, context.num_attackers)
    self.last_scale = z
    mu, sigma = mean_and_std(honest)
    return mu - z * sigma
