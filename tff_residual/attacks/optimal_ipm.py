"""Inner-product manipulation with its strength tuned against the defence in use
(ByzFL's ``Optimal_InnerProductManipulation``; Allouah et al., AISTATS 2023).

The attackers submit m(tau) = -tau mu (mu the mean of the round's honest updates),
with tau the scale that moves the server's aggregate farthest from mu:

    tau = argmax_tau || rule(x_1, ..., x_H, m(tau) x f) - mu ||,

found by ``omniscient.maximize_along_line`` (ByzFL's line search: 20 evaluations from
tau = 0, first step 10, contraction 0.8) against the run's own aggregator
(``UpdateContext.server_rule``). Against the plain mean the harm grows with tau
without bound, so the search ends at its largest step (tau = 10 (2^19 - 1)).
"""

from __future__ import annotations

import numpy as np

from tff_residual.attacks.base import UpdateContext
from tff_residual.attacks.omniscient import (SharedMaliciousUpdate, harm, maximize_along_line,
                                             require_server_rule)


class OptimalIPM(SharedMaliciousUpdate):
  """``UpdatePoisoning``: -tau mu, tau the most harmful against the run's rule."""

  description = ("optimal IPM: -tau times the honest mean, tau searched per round to move "
                 "the run's aggregate farthest from it")

  def craft(self, honest: np.ndarray, context: UpdateContext) -> np.ndarray:
    rule = require_server_rule(context, "optimal_ipm")
    mu = honest.mean(axis=0)
    attackers = max(context.num_attackers, 1)
    self.last_scale = maximize_along_line(lambda tau: harm(rule, honest, -tau * mu, attackers))
    return -self.last_scale * mu
