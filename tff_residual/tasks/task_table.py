"""The one table of task families, and task-name parsing.

A task name is ``<dataset>_<attack>``, e.g. ``fmnist_backdoor`` or
``amazon_mix_rate``; ``valid_tasks()`` lists every combination that makes
sense (``experiments/run.py --list_tasks``).
"""

from __future__ import annotations

from tff_residual.tasks import amazon, cifar10, emnist, fmnist, loan, mnist
from tff_residual.tasks.base import TaskFamily
from tff_residual.tasks.presets import MODEL_POISONING_ATTACKS

FAMILIES: dict[str, TaskFamily] = {
    f.name: f for f in (mnist.FAMILY, fmnist.FAMILY, emnist.FAMILY, cifar10.FAMILY,
                        amazon.FAMILY, loan.FAMILY)
}


def attacks_of(family: TaskFamily) -> tuple[str, ...]:
  """The family's own attacks, then the model-poisoning ones every family has."""
  return family.attacks + tuple(a for a in MODEL_POISONING_ATTACKS if a not in family.attacks)


def valid_tasks() -> list[str]:
  return [f"{name}_{attack}" for name, family in FAMILIES.items()
          for attack in attacks_of(family)]


def parse_task(task: str) -> tuple[TaskFamily, str]:
  """(family, attack) of ``task``; ValueError listing the valid tasks otherwise."""
  dataset, _, attack = str(task).partition("_")
  family = FAMILIES.get(dataset)
  if family is None or attack not in attacks_of(family):
    raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(valid_tasks())} "
                     "(--list_tasks prints them).")
  return family, attack
