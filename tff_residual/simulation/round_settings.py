"""What the round loop (``simulation.experiment``) reads from the run's settings.

Kept apart from the loop, which imports TensorFlow Federated, so that the CLI
checks these flags before anything starts.
"""

from __future__ import annotations

import dataclasses

OPTIMIZERS = ("sgdm", "adam")
CLIENT_WEIGHTINGS = ("uniform", "num_examples")


@dataclasses.dataclass(frozen=True)
class RoundSettings:
  """How clients train and how rounds run (the flags of the same names; ``check``
  validates them).

  Attributes:
    seed: every random choice of the rounds derives from it (client shuffles,
      attackers' randomness, the test subset, the initial model).
    rounds: rounds per aggregator.
    batch_size, local_epochs, max_batches_per_epoch: an honest client's local
      training (``max_batches_per_epoch`` 0 = the whole local set per epoch).
    attacker_epochs, attacker_lr_multiplier: an attacker's, where its attack
      trains with the boosted epochs and learning rate (``Attack.boosted_training``).
    optimizer, learning_rate, momentum: the clients' optimizer (``OPTIMIZERS``).
    client_weighting: the weight TFF passes with each update (``CLIENT_WEIGHTINGS``):
      1, or the client's example count.
    max_test_examples: a seeded subset of the test set evaluated each round (0 = all).
  """

  seed: int
  rounds: int
  batch_size: int
  local_epochs: int
  max_batches_per_epoch: int
  attacker_epochs: int
  attacker_lr_multiplier: float
  optimizer: str
  learning_rate: float
  momentum: float
  client_weighting: str
  max_test_examples: int

  def check(self) -> None:
    """ValueError naming the first flag whose value cannot work."""
    from tff_residual.kernels.method_config import check_choice, check_int, check_positive
    for name, lowest in (("rounds", 1), ("batch_size", 1), ("local_epochs", 1),
                         ("max_batches_per_epoch", 0), ("attacker_epochs", 1),
                         ("max_test_examples", 0)):
      check_int(f"--{name}", getattr(self, name), lowest)
    check_positive("--learning_rate", self.learning_rate)
    check_positive("--attacker_lr_multiplier", self.attacker_lr_multiplier)
    if not (isinstance(self.momentum, (int, float)) and 0 <= self.momentum < 1):
      raise ValueError(f"--momentum must be in [0, 1), got {self.momentum!r}.")
    check_choice("--optimizer", self.optimizer, OPTIMIZERS)
    check_choice("--client_weighting", self.client_weighting, CLIENT_WEIGHTINGS)
