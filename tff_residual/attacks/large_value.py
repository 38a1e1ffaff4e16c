"""Large values: the attacker sends huge but finite numbers.

In the spirit of ByzFL's ``Inf`` attack, which sends +inf; a server that drops
non-finite updates (as this simulation does, and as the reference does) never
sees that one. This attack stays finite, so the update reaches the aggregator,
and tests whether the aggregator's own arithmetic survives it (distances that
square 1e20 overflow float32; the mean takes it whole).

The attacker replaces its update u by M times a sign pattern over its flattened
coordinates (``PATTERNS``):

    positive     +M everywhere
    negative     -M everywhere
    alternating  +M, -M, +M, ...
    random       +-M, a seeded random sign per coordinate
    one          u itself, with one seeded random coordinate set to +M

M is ``--large_value_magnitude``, or by default (0) the largest value the round's
arithmetic keeps finite: M = finfo(dtype).max / (2 K w), K the round's clients and
w the attacker's aggregation weight (1, or its example count under
``--client_weighting=num_examples``). Then the undefended weighted sum
sum_k w_k u_k of the round stays below half the dtype's range (rounding included:
finfo.max / K added K times can round past it), so FedAvg takes a huge finite
model rather than an infinite one.
"""

from __future__ import annotations

import numpy as np

from tff_residual.attacks.base import UpdateContext, Weights
from tff_residual.kernels.method_config import check_choice, check_positive

PATTERNS = ("positive", "negative", "alternating", "random", "one")


def largest_safe_magnitude(dtype, num_clients: int, weight: float) -> float:
  """finfo(dtype).max / (2 K w): K values of this size, each weighted by ``weight``,
  sum to at most half the dtype's range."""
  return float(np.finfo(dtype).max) / (2 * max(num_clients, 1) * max(float(weight), 1.0))


class LargeValue:
  """``UpdatePoisoning``: M times ``pattern`` (module docstring)."""

  def __init__(self, magnitude: float = 0.0, pattern: str = "positive"):
    check_positive("--large_value_magnitude", magnitude, allow_zero=True)
    check_choice("--large_value_pattern", pattern, PATTERNS)
    self.magnitude, self.pattern = float(magnitude), pattern
    size = (f"{magnitude:g}" if magnitude else
            "the largest finite value the round's weighted mean keeps finite")
    self.description = f"{pattern} pattern of magnitude {size}"

  def magnitude_for(self, dtype, context: UpdateContext) -> float:
    """M for an update of ``dtype`` in the round of ``context`` (never past the dtype's range)."""
    largest = float(np.finfo(dtype).max)
    if self.magnitude:
      return min(self.magnitude, largest)
    return largest_safe_magnitude(dtype, context.num_clients, context.weight)

  def poison_update(self, update: Weights, context: UpdateContext) -> Weights:
    sizes = [int(np.size(u)) for u in update]
    total = sum(sizes)
    # The narrowest float dtype among the tensors bounds M (every tensor stays finite).
    dtype = min((np.asarray(u).dtype for u in update), key=lambda d: np.finfo(d).max)
    magnitude = self.magnitude_for(dtype, context)
    if self.pattern == "one":
      flat = np.concatenate([np.ravel(u).astype(np.float64) for u in update])
      if total:
        flat[int(context.rng.integers(total))] = magnitude
    else:
      signs = {"positive": lambda: np.ones(total),
               "negative": lambda: -np.ones(total),
               "alternating": lambda: np.where(np.arange(total) % 2 == 0, 1.0, -1.0),
               "random": lambda: np.where(context.rng.random(total) < 0.5, -1.0, 1.0)}
      flat = magnitude * signs[self.pattern]()
    out, start = [], 0
    for u, size in zip(update, sizes):
      piece = flat[start:start + size].reshape(np.shape(u))
      out.append(piece.astype(u.dtype))
      start += size
    return out
