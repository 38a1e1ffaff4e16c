"""Fang et al.'s full-knowledge attack on Krum (Fang, Cao, Jia, Gong, USENIX Security
2020, "Local model poisoning attacks to Byzantine-robust federated learning", §3.2).

In update space (an update is a client's model minus the round's global model), the
attackers push the model against the direction it would move without them: with
s = sign(mu), mu the honest updates' mean, every attacker submits

    m = -lambda s,

lambda the largest value, from an upper bound halved until Krum (told the true f)
selects an attacker among the H honest updates and f copies of m (or lambda falls
below 1e-5, the paper's threshold; then that lambda is sent):

    lambda_max = min_i sum_{l in N_i} ||x_l - x_i|| / ((K - 2f - 1) sqrt(d))
                 + max_i ||x_i|| / sqrt(d),

N_i the K - f - 2 honest updates closest to x_i, K = H + f clients, d coordinates
(the paper's eq. for lambda's upper bound, with the global model as origin).
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from tff_residual.attacks.base import UpdateContext
from tff_residual.attacks.omniscient import SharedMaliciousUpdate, pairwise_squared_distances

STOP_THRESHOLD = 1e-5
"""Fang et al.'s smallest lambda: the halving stops below it."""


def lambda_upper_bound(honest: np.ndarray, num_attackers: int) -> float:
  """Fang et al.'s lambda_max for the honest updates [H, d] and f attackers."""
  num_honest, dimension = honest.shape
  clients = num_honest + num_attackers
  neighbours = clients - num_attackers - 2
  if clients < 2 * num_attackers + 3:
    raise ValueError(f"fang_krum attacks Krum, which needs K >= 2f + 3 clients; got K = "
                     f"{clients}, f = {num_attackers}.")
  distances = np.sqrt(pairwise_squared_distances(honest))
  nearest = np.sort(distances + np.diag(np.full(num_honest, np.inf)), axis=1)[:, :neighbours]
  spread = nearest.sum(axis=1).min() / ((clients - 2 * num_attackers - 1) * math.sqrt(dimension))
  return float(spread + np.linalg.norm(honest, axis=1).max() / math.sqrt(dimension))


class FangKrum(SharedMaliciousUpdate):
  """``UpdatePoisoning``: -lambda sign(mu), lambda the largest that Krum selects."""

  description = ("Fang et al.'s attack on Krum: -lambda sign(honest mean), lambda halved from "
                 "its upper bound until Krum selects it")

  @staticmethod
  def krum_selects_attacker(honest: np.ndarray, candidate: np.ndarray,
                            num_attackers: int) -> bool:
    """Whether Krum with f = ``num_attackers`` selects one of the f copies of ``candidate``
    (the library's Krum kernel, compiled once per f by ``method_table.eager_kernel``)."""
    from tff_residual.kernels import method_table
    krum = method_table.eager_kernel(method_table.resolve("krum", num_byzantine=num_attackers))
    stacked = np.concatenate([honest, np.repeat(candidate[None, :], num_attackers, 0)])
    weights = krum([tf.constant(stacked, tf.float32)], None).client_weights
    return int(np.argmax(weights.numpy())) >= len(honest)

  def craft(self, honest: np.ndarray, context: UpdateContext) -> np.ndarray:
    attackers = max(context.num_attackers, 1)
    direction = np.sign(honest.mean(axis=0))
    scale = lambda_upper_bound(honest, attackers)
    while scale >= STOP_THRESHOLD and not self.krum_selects_attacker(
        honest, -scale * direction, attackers):
      scale *= 0.5
    self.last_scale = scale
    return -scale * direction
