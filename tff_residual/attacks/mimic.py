"""Mimic (Karimireddy, He, Jaggi, ICLR 2022, "Byzantine-robust learning on heterogeneous
datasets via bucketing", §4 and their code's ``MimicVariantAttacker``).

Every attacker sends a copy of one honest client's update, the client that most
over-represents the honest clients' main direction of spread, so that heterogeneity is
amplified rather than averaged out. No update is out of place, so no defence can tell
the attackers from that client.

In the first ``warmup`` rounds the attackers estimate that direction z (one power
iteration per round over the honest updates' deviations from their running mean, from
a seeded Gaussian start) and pick the honest client with the largest <x_i, z>; from
then on they copy that client (by client id). When it is not among a round's clients,
they pick again by the last z.
"""

from __future__ import annotations

import numpy as np

from tff_residual.attacks.base import UpdateContext
from tff_residual.attacks.omniscient import SharedMaliciousUpdate
from tff_residual.kernels.method_config import check_int


def power_step(honest: np.ndarray, mean: np.ndarray, z: np.ndarray) -> np.ndarray:
  """sum_i <x_i - mean, z> (x_i - mean), normalised (z itself where that is 0)."""
  deviations = honest - mean
  step = (deviations @ z) @ deviations
  norm = np.linalg.norm(step)
  return step / norm if norm > 0 else z


class Mimic(SharedMaliciousUpdate):
  """``UpdatePoisoning``: a copy of the honest client that spreads the most along z."""

  def __init__(self, warmup: int = 1):
    super().__init__()
    check_int("--mimic_warmup", warmup, 1)
    self.warmup = warmup
    self.description = (f"mimic: copies the honest client farthest along the honest updates' "
                        f"main direction of spread, chosen in the first {warmup} round(s)")

  def reset(self) -> None:
    super().reset()
    self.rounds_seen, self.mean, self.z, self.target = 0, None, None, None

  def craft(self, honest: np.ndarray, context: UpdateContext) -> np.ndarray:
    ids = list(context.honest_clients) or list(range(len(honest)))
    mean = honest.mean(axis=0)
    t = self.rounds_seen
    if t == 0:
      self.mean = mean
      start = np.random.default_rng(0).standard_normal(honest.shape[1])
      self.z = power_step(honest, self.mean, start)
    elif t < self.warmup:
      self.mean = t / (t + 1) * self.mean + mean / (t + 1)
      z = t / (t + 1) * self.z + power_step(honest, self.mean, self.z) / (t + 1)
      self.z = z / max(np.linalg.norm(z), np.finfo(np.float64).tiny)
    self.rounds_seen += 1
    if t < self.warmup or self.target not in ids:
      self.target = ids[int(np.argmax(honest @ self.z))]
    return honest[ids.index(self.target)].copy()
