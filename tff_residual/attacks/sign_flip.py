"""Sign flipping: the attacker trains honestly and submits -u, its own update
u with every sign flipped (as in ByzFL's ``SignFlipping`` on the attacker's
own vector; a gradient-ascent step of the same length)."""

from __future__ import annotations

from tff_residual.attacks.base import UpdateContext, Weights


class SignFlip:
  """``UpdatePoisoning``: u -> -u."""

  description = "the attacker's own update with its sign flipped"

  def poison_update(self, update: Weights, context: UpdateContext) -> Weights:
    return [-u for u in update]
