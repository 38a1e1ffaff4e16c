"""Task families: data loading (real first, offline always), client partitions,
models and attack targets, one module per dataset. ``task_table`` is the table."""

from tff_residual.tasks.base import (Arrays, AttackTargets, DataError, ModelSpec, TaskData,
                                     TaskFamily, Trigger)
from tff_residual.tasks.task_table import FAMILIES, parse_task, valid_tasks
