"""A little is enough with its strength tuned against the defence in use (ByzFL's
``Optimal_ALittleIsEnough``; Allouah et al., AISTATS 2023, "Fixing by mixing").

The attackers submit, coordinate by coordinate, m(tau) = mu + tau sigma (mu and sigma
the mean and standard deviation, ddof 1, of the round's honest updates; ByzFL's sign
convention, Baruch et al. write mu - z sigma), with tau the scale that moves the
server's aggregate farthest from the honest mean:

    tau = argmax_tau || rule(x_1, ..., x_H, m(tau) x f) - mu ||,

found by ``omniscient.maximize_along_line`` (ByzFL's line search: 20 evaluations from
tau = 0, first step 10, contraction 0.8). ``rule`` is the run's own aggregator
(``UpdateContext.server_rule``), so the same attack is tuned against each defence.
"""

from __future__ import annotations

import numpy as np

from tff_residual.attacks.base import UpdateContext
from tff_residual.attacks.omniscient import (SharedMaliciousUpdate, harm, mean_and_std,
                                             maximize_along_line, require_server_rule)


class OptimalALIE(SharedMaliciousUpdate):
  """``UpdatePoisoning``: mu + tau sigma, tau the most harmful against the run's rule."""

  description = ("optimal ALIE: mu + tau sigma of the honest updates, tau searched per round "
                 "to move the run's aggregate farthest from the honest mean")

  def craft(self, honest: np.ndarray, context: UpdateContext) -> np.ndarray:
    rule = require_server_rule(context, "optimal_alie")
    mu, sigma = mean_and_std(honest)
    attackers = max(context.num_attackers, 1)
    self.last_scale = maximize_along_line(
        lambda tau: harm(rule, honest, mu + tau * sigma, attackers))
    return mu + self.last_scale * sigma
