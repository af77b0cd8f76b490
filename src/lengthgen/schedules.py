"""Learning-rate schedules by name (`train.schedule`): multipliers of `train.lr` by step.

A schedule is a function `(step, settings) -> multiplier`, registered with `register_schedule`.
It reads only the four settings of `ScheduleSettings`, which `config.TrainConfig` has, so this
module needs nothing from the config and the config can validate names against `SCHEDULES`.
"""

from __future__ import annotations

import math
from typing import Callable, Protocol

from .registry import Registry


class ScheduleSettings(Protocol):
    """What a schedule reads of the training config."""

    steps: int
    warmup: float  # a fraction of the steps (< 1) or a number of steps (>= 1)
    decay: float  # wsd: the fraction of the steps spent decaying
    min_lr_ratio: float


Schedule = Callable[[int, ScheduleSettings], float]
SCHEDULES = Registry("schedule")
register_schedule = SCHEDULES.register


def warmup_steps(cfg: ScheduleSettings) -> int:
    """Warmup length: a fraction of the run if < 1, else a step count."""
    return int(cfg.warmup * cfg.steps) if cfg.warmup < 1 else int(cfg.warmup)


def _cosine(progress: float, floor: float) -> float:
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


@register_schedule("constant")
def constant(step: int, cfg: ScheduleSettings) -> float:
    """Linear warmup, then constant."""
    return min(1.0, (step + 1) / max(1, warmup_steps(cfg)))


@register_schedule("cosine")
def cosine(step: int, cfg: ScheduleSettings) -> float:
    """Linear warmup, then cosine decay toward min_lr_ratio (reached one step after the last: the last
    step's factor is a hair above it)."""
    warm = warmup_steps(cfg)
    if step < warm:
        return (step + 1) / warm
    return _cosine((step - warm) / max(1, cfg.steps - warm), cfg.min_lr_ratio)


@register_schedule("wsd")
def warmup_stable_decay(step: int, cfg: ScheduleSettings) -> float:
    """Warmup, constant, then cosine decay over the last `decay` fraction (Paper B's schedule)."""
    warm = warmup_steps(cfg)
    decay_start = cfg.steps - int(cfg.decay * cfg.steps)
    if step < warm:
        return (step + 1) / warm
    if step < decay_start:
        return 1.0
    return _cosine((step - decay_start) / max(1, cfg.steps - decay_start), cfg.min_lr_ratio)
