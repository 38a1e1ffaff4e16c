"""Fang et al.'s full-knowledge attack on the trimmed mean, which they also use against
the median (Fang, Cao, Jia, Gong, USENIX Security 2020, §3.2).

Coordinate by coordinate, the attackers push against the direction s_j = sign(mu_j)
that the honest updates' mean moves in, from the honest extreme on the other side:
with w_max,j and w_min,j the largest and smallest honest value and b = 2, each
attacker draws its value uniformly from

    s_j < 0:  [w_max,j, b w_max,j] if w_max,j > 0, else [w_max,j, w_max,j / b]
    s_j >= 0: [w_min,j / b, w_min,j] if w_min,j > 0, else [b w_min,j, w_min,j]

(its own seeded stream, so the f attackers send f different updates).
"""

from __future__ import annotations

import numpy as np

from tff_residual.attacks.base import UpdateContext, Weights
from tff_residual.attacks.omniscient import stack, unstack

B = 2.0
"""Fang et al.'s b: how far beyond the honest extreme the attackers may go."""


def intervals(honest: np.ndarray, b: float = B) -> tuple[np.ndarray, np.ndarray]:
  """(low [d], high [d]): each coordinate's interval (module docstring)."""
  decreasing = honest.mean(axis=0) < 0
  top, bottom = honest.max(axis=0), honest.min(axis=0)
  low = np.where(decreasing, top, np.where(bottom > 0, bottom / b, b * bottom))
  high = np.where(decreasing, np.where(top > 0, b * top, top / b), bottom)
  return low, high


class FangTrimmedMean:
  """``UpdatePoisoning``: each attacker's values drawn beyond the honest extremes."""

  description = ("Fang et al.'s attack on the trimmed mean and median: each coordinate drawn "
                 "from [w, 2w] beyond the honest extreme against the mean's direction")

  def __init__(self):
    self.reset()

  def reset(self) -> None:
    self._cached: tuple[int, tuple[np.ndarray, np.ndarray]] | None = None

  def poison_update(self, update: Weights, context: UpdateContext) -> Weights:
    if not context.honest_updates:
      return update
    if self._cached is None or self._cached[0] != context.round_index:
      self._cached = (context.round_index, intervals(stack(context.honest_updates)))
    low, high = self._cached[1]
    return unstack(low + context.rng.random(low.shape) * (high - low), update)
