"""Task registry. Importing this package registers every built-in task."""

from . import arithmetic, assignment, language, maze, sparse, strings  # noqa: F401  (registration side effects)
from .base import SPLITS, TASKS, Example, Positions, Task, example_rng, make_task, register_task

__all__ = ["SPLITS", "TASKS", "Example", "Positions", "Task", "example_rng", "make_task", "register_task"]
