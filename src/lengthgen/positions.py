"""Position-ID policies, applied on the data side so that every encoding sees the same IDs.

A policy maps an example and a generator to a new `Positions`. Registered policies:
  consecutive            0, 1, 2, ... (the evaluation default)
  random_offset          consecutive, shifted by a uniform start so the whole sequence fits
                         below max_position (trains every ID up to max_position)
  coupled                the task's coupled IDs (position coupling, Cho et al. 2024)
  coupled_random_offset  coupled IDs, all but <bos> shifted by a uniform start
  pose                   PoSE: the sequence is cut into `pose_chunks` chunks, each consecutive,
                         the first from 0, with uniform random skips between them, within
                         max_position
  randomized             a uniformly random sorted subset of 0..max_position-1 (Ruoss et al. 2023)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from .errors import UserError
from .registry import Registry
from .tasks.base import Example, Positions


@dataclass(frozen=True)
class PolicySettings:
    """Knobs shared by the policies."""

    max_position: int = 256
    pose_chunks: int = 2


PolicyFn = Callable[[Example, np.random.Generator, PolicySettings], Positions]
POLICIES = Registry("position policy")
register_policy = POLICIES.register

# The policies that give the task's coupled IDs: the only IDs a PPC position head is trained to
# predict (model.position_head requires them for training and evaluation).
COUPLED_POLICIES = ("coupled", "coupled_random_offset")


def _slack(ex: Example, top: int, settings: PolicySettings) -> int:
    """How far IDs whose maximum is `top` can be shifted and stay below max_position."""
    slack = settings.max_position - 1 - top
    if slack < 0:
        raise UserError(
            f"{ex.task} length {ex.length} needs position IDs up to {top} but max_position is "
            f"{settings.max_position}; raise positions.max_position"
        )
    return slack


@register_policy("consecutive")
def consecutive(ex: Example, rng, settings: PolicySettings) -> Positions:
    """The canonical 0, 1, 2, ... IDs the task produced (unbounded: evaluation may go long)."""
    return ex.positions


@register_policy("random_offset")
def random_offset(ex: Example, rng, settings: PolicySettings) -> Positions:
    """Consecutive IDs starting at a uniform offset."""
    ids = np.arange(ex.seq_len)
    ids = ids + int(rng.integers(0, _slack(ex, ex.seq_len - 1, settings) + 1))
    return Positions.from_array(ids, len(ex.prompt))


def _coupled(ex: Example) -> Positions:
    if ex.coupled is None:
        raise UserError(f"task {ex.task!r} does not define coupled position IDs; use another policy")
    return ex.coupled


@register_policy("coupled")
def coupled(ex: Example, rng, settings: PolicySettings) -> Positions:
    """The task's coupled IDs as they are (unbounded, like consecutive)."""
    return _coupled(ex)


@register_policy("coupled_random_offset")
def coupled_random_offset(ex: Example, rng, settings: PolicySettings) -> Positions:
    """Coupled IDs shifted by a uniform start; <bos> keeps ID 0."""
    ids = _coupled(ex).as_array()
    shift = int(rng.integers(0, _slack(ex, int(ids.max()), settings) + 1))
    ids[1:] += shift
    return Positions.from_array(ids, len(ex.prompt))


@register_policy("pose")
def pose(ex: Example, rng, settings: PolicySettings) -> Positions:
    """Chunks of consecutive IDs separated by random skips (Zhu et al. 2023, PoSE).

    As in the paper and its code: the first chunk (with `<bos>`) starts at ID 0, and chunk i is
    shifted by a skip u_i drawn uniformly from u_{i-1}..max_position - seq_len (u_0 = 0), so with
    two chunks the skip is uniform over every value that fits and training covers every relative
    distance up to max_position - 1 evenly. Chunk boundaries are uniform distinct cut points.
    [ours] The tokens stay contiguous text (the authors' code also skips text between chunks).
    """
    n = ex.seq_len
    chunks = max(1, min(settings.pose_chunks, n))
    cuts = np.sort(rng.choice(np.arange(1, n), size=chunks - 1, replace=False)) if chunks > 1 else []
    slack = _slack(ex, n - 1, settings)
    # Non-decreasing offsets keep IDs increasing; chunk c is shifted by offsets[c].
    offsets = np.zeros(chunks, dtype=np.int64)
    for c in range(1, chunks):
        offsets[c] = rng.integers(offsets[c - 1], slack + 1)
    chunk_of = np.searchsorted(np.asarray(cuts, dtype=np.int64), np.arange(n), side="right")
    ids = np.arange(n) + offsets[chunk_of]
    return Positions.from_array(ids, len(ex.prompt))


@register_policy("randomized")
def randomized(ex: Example, rng, settings: PolicySettings) -> Positions:
    """A sorted uniform subset of 0..max_position-1."""
    _slack(ex, ex.seq_len - 1, settings)
    ids = np.sort(rng.choice(settings.max_position, size=ex.seq_len, replace=False))
    return Positions.from_array(ids, len(ex.prompt))


def apply_policy(examples: list[Example], name: str, rng, settings: PolicySettings) -> list[Example]:
    """The examples with their positions replaced by the policy's."""
    policy = POLICIES.lookup(name)
    return [replace(ex, positions=policy(ex, rng, settings)) for ex in examples]
