"""What the omniscient model-poisoning attacks share: the round's honest updates
as one matrix, their statistics, the perturbation directions, the scale
search, and one malicious update per round for all attackers.

Threat model (Baruch et al. 2019; Xie et al. 2020; Shejwalkar and Houmansadr
2021): the f attackers of a round collude, see every honest update of the
round (``UpdateContext.honest_updates``) and the number of clients K, and all
submit the same crafted update. They do not see the server's randomness or
the aggregate before they submit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from tff_residual.attacks.base import UpdateContext, Weights

PERTURBATIONS = ("unit", "std", "sign")
"""Shejwalkar and Houmansadr's deviations p, each pointing away from the honest
mean mu: ``unit`` = -mu / ||mu||, ``std`` = -sigma (the coordinate-wise standard
deviation), ``sign`` = -sign(mu)."""


def stack(updates: Sequence[Weights]) -> np.ndarray:
  """float64 [K, N]: each update's tensors, flattened and concatenated."""
  return np.stack([np.concatenate([np.ravel(t) for t in u]).astype(np.float64) for u in updates])


def unstack(vector: np.ndarray, like: Weights) -> Weights:
  """``vector`` [N] cut into ``like``'s shapes and dtypes."""
  out, start = [], 0
  for tensor in like:
    size = np.size(tensor)
    out.append(vector[start:start + size].reshape(np.shape(tensor)).astype(tensor.dtype))
    start += size
  return out


def mean_and_std(honest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Coordinate-wise mean and standard deviation (ddof 1, as torch.std in ByzFL
  and FLPoison; 0 for a single honest update) of the honest updates [H, N]."""
  mu = honest.mean(axis=0)
  sigma = honest.std(axis=0, ddof=1) if len(honest) > 1 else np.zeros_like(mu)
  return mu, sigma


def check_perturbation(kind: str) -> None:
  """ValueError unless ``kind`` is one of ``PERTURBATIONS``."""
  if kind not in PERTURBATIONS:
    raise ValueError(f"--perturbation must be one of {PERTURBATIONS}, got {kind!r}.")


def perturbation(kind: str, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
  """The deviation p of ``kind`` (see ``PERTURBATIONS``)."""
  if kind == "unit":
    norm = np.linalg.norm(mu)
    return -mu / norm if norm > 0 else np.zeros_like(mu)
  if kind == "std":
    return -sigma
  if kind == "sign":
    return -np.sign(mu)
  raise ValueError(f"--perturbation must be one of {PERTURBATIONS}, got {kind!r}.")


def largest_feasible_scale(feasible: Callable[[float], bool], start: float = 1.0,
                           tolerance: float = 1e-3, max_doublings: int = 30,
                           max_halvings: int = 40) -> float:
  """The largest s >= 0 with ``feasible(s)``, for a constraint that holds up to
  some s* and fails beyond it (the attacks' constraints grow with s).

  Expansion doubles s from ``start`` until it fails (or ``max_doublings``
  times: then that s is returned); bisection then halves [feasible, failed]
  until its width is at most ``tolerance`` times the feasible end (or
  ``max_halvings`` times). The returned s always satisfies ``feasible``; 0
  when even ``start / 2**max_halvings`` fails.
  """
  if not (start > 0 and math.isfinite(start)):
    raise ValueError(f"start must be positive and finite, got {start!r}.")
  low, high = 0.0, start
  for _ in range(max_doublings):
    if not feasible(high):
      break
    low, high = high, 2.0 * high
  else:
    return low
  for _ in range(max_halvings):
    if low > 0 and high - low <= tolerance * low:
      break
    middle = 0.5 * (low + high)
    if feasible(middle):
      low = middle
    else:
      high = middle
  return low


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


def search_along(honest: np.ndarray, kind: str, within: Callable[[np.ndarray], bool]):
  """(gamma, mu + gamma p): the largest gamma whose squared distances [H] to the
  honest updates satisfy ``within`` (Shejwalkar and Houmansadr's search)."""
  mu, sigma = mean_and_std(honest)
  p = perturbation(kind, mu, sigma)
  along = squared_distances_along(honest, mu, p)
  gamma = largest_feasible_scale(lambda s: within(along(s)))
  return gamma, mu + gamma * p


def maximize_along_line(objective: Callable[[float], float], start: float = 0.0,
                        delta: float = 10.0, evals: int = 20, ratio: float = 0.8) -> float:
  """The scale s that ``objective(s)`` is largest at, among ``evals`` evaluations
  (ByzFL's line search of ``Optimal_ALittleIsEnough`` and ``Optimal_InnerProductManipulation``).

  Expansion: from s = ``start``, try s + delta; on a gain move there and double
  delta, else multiply delta by ``ratio`` and stop. Contraction: with the evaluations
  left, try best + delta (a gain moves there) and multiply delta by ``ratio`` each time.
  Every proposal lies on the + side of the best point so far.
  """
  if not (isinstance(evals, int) and evals >= 1):
    raise ValueError(f"evals must be an integer >= 1, got {evals!r}.")
  if not 0.5 < ratio < 1:
    raise ValueError(f"ratio must lie in (0.5, 1), got {ratio!r}.")
  best_s, best = start, objective(start)
  remaining = evals - 1
  while remaining > 0:
    remaining -= 1
    value = objective(best_s + delta)
    if value > best:
      best_s, best, delta = best_s + delta, value, 2.0 * delta
    else:
      delta *= ratio
      break
  while remaining > 0:
    remaining -= 1
    value = objective(best_s + delta)
    if value > best:
      best_s, best = best_s + delta, value
    delta *= ratio
  return best_s


def harm(server_rule: Callable[[np.ndarray], np.ndarray], honest: np.ndarray,
         candidate: np.ndarray, num_attackers: int) -> float:
  """||rule(honest + f copies of ``candidate``) - mean(honest)||: how far the f
  attackers move the aggregate from the honest mean (ByzFL's objective); +inf where
  the aggregate is not finite."""
  stacked = np.concatenate([honest, np.repeat(candidate[None, :], num_attackers, 0)])
  aggregate = np.asarray(server_rule(stacked), np.float64)
  distance = float(np.linalg.norm(aggregate - honest.mean(axis=0)))
  return distance if math.isfinite(distance) else math.inf


def require_server_rule(context: UpdateContext, attack: str) -> Callable:
  """``context.server_rule``; ValueError naming ``attack`` where the run gave none."""
  if context.server_rule is None:
    raise ValueError(f"{attack} searches against the run's aggregator, and this round's "
                     "context has none (UpdateContext.server_rule).")
  return context.server_rule


class SharedMaliciousUpdate:
  """``UpdatePoisoning`` base: every attacker of a round submits the same update,
  ``craft(honest [H, N], context)`` -> [N], computed once per round. With no
  honest update in the round the attacker's own update is sent unchanged."""

  description = ""

  def __init__(self):
    self.reset()

  def craft(self, honest: np.ndarray, context: UpdateContext) -> np.ndarray:
    raise NotImplementedError

  def reset(self) -> None:
    """Forgets the cached round (each aggregator's run starts afresh); ``last_scale`` is
    the searched scale of the last round, if any."""
    self._cached: tuple[int, np.ndarray] | None = None
    self.last_scale: float | None = None

  def poison_update(self, update: Weights, context: UpdateContext) -> Weights:
    if not context.honest_updates:
      return update
    if self._cached is None or self._cached[0] != context.round_index:
      self._cached = (context.round_index, self.craft(stack(context.honest_updates), context))
    return unstack(self._cached[1], update)
