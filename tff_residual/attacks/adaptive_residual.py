"""An adaptive, white-box attack on residual reweighting (ours; in the spirit of
Shejwalkar and Houmansadr's aggregation-tailored attacks).

Threat model: the f colluding attackers of a round know Algorithm 1 and the
server's hyper-parameters (method, lambda, delta), see every honest update of
the round and K, and all submit the same update m. They do not see the
server's randomness (there is none in Algorithm 1) or other rounds' honest
updates in advance.

Search: m(s) = mu + s p, mu the honest mean and p a harmful deviation
(``--perturbation``: -sigma, -mu/||mu|| or -sign(mu)). The attackers run the
library's own eager kernel on the honest updates plus f copies of m(s) and
call s feasible when (a) none of the attackers' coordinates is corrected
(eq. 11: every standardised residual inside the band) and (b) no attacker's
weight falls below the smallest honest client's (eq. 12: it is not cut).
Bisection (``omniscient.largest_feasible_scale``) finds the largest feasible
s; its m is submitted. ``last_scale`` keeps s, and the run reports the weight
the attackers obtained (``attackers_weight_share``) and the damage (accuracy
against the same run without attackers).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tff_residual.attacks.base import UpdateContext
from tff_residual.attacks.omniscient import (SharedMaliciousUpdate, check_perturbation,
                                             largest_feasible_scale, mean_and_std, perturbation)


class AdaptiveResidual(SharedMaliciousUpdate):
  """``UpdatePoisoning``: the largest mu + s p that residual reweighting neither
  corrects nor down-weights."""

  def __init__(self, kind: str = "std", method: str = "residual", **params):
    super().__init__()
    from tff_residual.kernels import method_table
    check_perturbation(kind)
    self.kind, self.method = kind, method
    self.kernel = method_table.build_kernel(method, **params)
    self.description = (f"adaptive: mu + s p, p = {kind} deviation, s largest that {method} "
                        f"({', '.join(f'{k}={v}' for k, v in params.items()) or 'defaults'}) "
                        "neither corrects nor down-weights")

  def feasible(self, honest: np.ndarray, candidate: np.ndarray, num_attackers: int) -> bool:
    """Whether ``num_attackers`` copies of ``candidate`` pass unnoticed beside ``honest``."""
    stacked = np.concatenate([honest, np.repeat(candidate[None, :], num_attackers, 0)])
    output = self.kernel([tf.constant(stacked, tf.float32)], None)
    weights = output.client_weights.numpy()
    corrected = output.corrected_fraction.numpy()
    attackers = slice(len(honest), None)
    return bool(np.all(corrected[attackers] == 0)
                and weights[attackers].min() >= weights[:len(honest)].min())

  def craft(self, honest: np.ndarray, context: UpdateContext) -> np.ndarray:
    mu, sigma = mean_and_std(honest)
    p = perturbation(self.kind, mu, sigma)
    attackers = max(context.num_attackers, 1)
    self.last_scale = largest_feasible_scale(
        lambda s: self.feasible(honest, mu + s * p, attackers), tolerance=1e-2)
    return mu + self.last_scale * p
