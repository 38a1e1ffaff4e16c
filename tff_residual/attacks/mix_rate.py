"""Mix-rate (blending) attack (paper A.6, Table 8; reference ``change_weight``).

An attacker who sees the round's honest updates trains a poisoned model
(label flipping), then submits, coordinate by coordinate, its own value with
probability ``mix_rate`` and the honest estimate otherwise (mix rate 1 = fully
adversarial). The honest estimate is the residual-reweighting aggregate of the
round's honest updates (the reference aggregates the models collected so far
with its IRLS; here all honest updates of the round, so an attacker that comes
first in the round is well defined), or their mean (``--mix_honest=mean``).
"""

from __future__ import annotations

import numpy as np

from tff_residual.attacks.base import UpdateContext, Weights
from tff_residual.kernels.method_config import is_number

HONEST_ESTIMATES = ("residual", "mean")


class BlendWithHonest:
  """``UpdatePoisoning``: keep each coordinate of the poisoned update with probability ``rate``."""

  def __init__(self, rate: float, honest_estimate: str = "residual"):
    if not (is_number(rate) and 0.0 <= rate <= 1.0):
      raise ValueError(f"--mix_rate must be in [0, 1], got {rate!r}.")
    if honest_estimate not in HONEST_ESTIMATES:
      raise ValueError(f"--mix_honest must be one of {HONEST_ESTIMATES}, got {honest_estimate!r}.")
    self.rate, self.honest_estimate = float(rate), honest_estimate
    self._cached: tuple[int, Weights | None] | None = None  # (round, estimate): one per round
    self.description = (f"each coordinate poisoned with probability {rate:g}, else the "
                        f"{honest_estimate} of the round's honest updates")

  def honest(self, context: UpdateContext) -> Weights | None:
    """The honest estimate of this round, computed once for all attackers."""
    if self._cached is None or self._cached[0] != context.round_index:
      estimate = None
      if context.honest_updates:
        from tff_residual.api import aggregate
        estimate, _ = aggregate([list(u) for u in context.honest_updates],
                                method=self.honest_estimate)
        estimate = list(estimate)
      self._cached = (context.round_index, estimate)
    return self._cached[1]

  def poison_update(self, update: Weights, context: UpdateContext) -> Weights:
    honest = self.honest(context)
    if honest is None:  # no honest client this round: nothing to blend with
      return update
    return [np.where(context.rng.random(u.shape) < self.rate, u, h).astype(u.dtype)
            for u, h in zip(update, honest)]
