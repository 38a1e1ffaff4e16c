"""How well an aggregator's client weights single out the attackers.

``weight_auc``: the ROC AUC of the score 1 - w_k (a lower weight = more
suspect) for telling attackers from honest clients, by the Mann-Whitney
count

    AUC = (#{(a, h): w_a < w_h} + #{(a, h): w_a = w_h} / 2) / (|A| |H|)

over attacker-honest pairs: 1 = every attacker weighs less than every honest
client, 0.5 = no better than chance (e.g. equal weights), 0 = the attackers
weigh the most.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def weight_auc(weights: Sequence[float], is_attacker: Sequence[bool]) -> float:
  """ROC AUC of 1 - ``weights`` for ``is_attacker``; NaN without both kinds or
  with a non-finite weight."""
  weights = np.asarray(weights, dtype=np.float64)
  attacker = np.asarray(is_attacker, dtype=bool)
  if weights.shape != attacker.shape:
    raise ValueError(f"weights {weights.shape} and is_attacker {attacker.shape} differ in shape.")
  if attacker.all() or not attacker.any() or not np.all(np.isfinite(weights)):
    return float("nan")
  ours, theirs = weights[attacker][:, None], weights[~attacker][None, :]
  return float(np.mean((ours < theirs) + 0.5 * (ours == theirs)))
