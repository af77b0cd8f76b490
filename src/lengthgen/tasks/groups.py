"""Named task groups: the main/auxiliary mixtures of Paper B (PAPERS.md B2).

Use one from any config with `data.group: NAME` (and usually `data.markers: true`, since
related tasks can have byte-identical prompts). Each entry is (task, min length, max length);
the first task is the main task. Length is max operand digits for arithmetic, characters for
strings, tree nodes for mazes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import Registry


@dataclass(frozen=True)
class TaskGroup:
    """A main task trained short and its auxiliaries trained long."""

    description: str
    tasks: tuple[tuple[str, int, int], ...]

    @property
    def main(self) -> str:
        """The main task's name."""
        return self.tasks[0][0]


GROUPS = Registry("task group")


def add_group(name: str, description: str, *tasks: tuple[str, int, int]) -> TaskGroup:
    """Register a group: its description and its (task, min length, max length) entries, main task first."""
    return GROUPS.register(name)(TaskGroup(description, tasks))


add_group("arith-carry", "reverse add (16) + no-carry and carry-only (32)",
          ("reverse_add", 1, 16), ("no_carry", 1, 32), ("carry_only", 1, 32))
add_group("arith-sub", "reverse add (16) + reverse subtract (32)",
          ("reverse_add", 1, 16), ("reverse_sub", 1, 32))
add_group("arith-mult", "reverse add (8) + n x 3 CoT multiply (16)",
          ("reverse_add", 1, 8), ("mult_cot", 1, 16))
add_group("string-mqar", "copy (16) + MQAR (32)",
          ("copy", 1, 16), ("mqar", 1, 32))
add_group("string-swapcase", "swapcase-reverse (16) + swapcase (32) + reverse (32)",
          ("swapcase_reverse", 1, 16), ("swapcase", 1, 32), ("reverse", 1, 32))
add_group("maze-dfs", "DFS trace (32) + shortest path (64)",
          ("maze_dfs_trace", 2, 32), ("maze_shortest_path", 2, 64))
add_group("maze-path", "shortest path (32) + DFS trace (64): the swapped direction",
          ("maze_shortest_path", 2, 32), ("maze_dfs_trace", 2, 64))
# One auxiliary at a time (the paper's single-aux comparison, PAPERS.md B4).
add_group("arith-nocarry-only", "reverse add (16) + no-carry (32)",
          ("reverse_add", 1, 16), ("no_carry", 1, 32))
add_group("arith-carry-only", "reverse add (16) + carry-only (32)",
          ("reverse_add", 1, 16), ("carry_only", 1, 32))
add_group("string-reverse-only", "swapcase-reverse (16) + reverse (32)",
          ("swapcase_reverse", 1, 16), ("reverse", 1, 32))
add_group("string-swapcase-only", "swapcase-reverse (16) + swapcase (32)",
          ("swapcase_reverse", 1, 16), ("swapcase", 1, 32))
add_group("control-copy-first-op", "control: reverse add (16) + copy-first-op (32), no transfer expected",
          ("reverse_add", 1, 16), ("copy_first_op", 1, 32))
add_group("control-copy-reverse", "control: copy (16) + reverse (32), no transfer expected",
          ("copy", 1, 16), ("reverse", 1, 32))
