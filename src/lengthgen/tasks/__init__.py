"""Tasks: what a model is trained and measured on. A task knows nothing of models.

base.py            the Task interface (`sample(rng, n, length)`), Example, Positions, TASKS, make_task
strings.py         copy, reverse, swapcase, swapcase_reverse, MQAR
arithmetic.py      Paper B's reversed arithmetic: reverse_add, no_carry, carry_only, reverse_sub,
                   copy_first_op, mult_cot
sparse.py          Paper A's sparse tasks: sparse_parity, sparse_sum, offset_parity
assignment.py      Paper A's variable assignment (the PPC showcase)
maze.py            Paper B's mazes: shortest path and DFS trace on spanning trees
text.py            language modelling on windows of a local corpus
corpus.py          a corpus split into train and validation, cached on disk (read by text.py)
corpus_sources.py  what a corpus name or path stands for, its documents, character normalization
groups.py          Paper B's named task mixtures (`data.group`)

Importing the package registers every task.
"""

from . import arithmetic, assignment, maze, sparse, strings, text  # noqa: F401  (registration side effects)
from .base import SPLITS, TASKS, Example, Positions, Task, example_rng, make_task, register_task

__all__ = ["SPLITS", "TASKS", "Example", "Positions", "Task", "example_rng", "make_task", "register_task"]
