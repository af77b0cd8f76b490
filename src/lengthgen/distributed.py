"""Data-parallel training across processes: the process group, ranks, data shards, collectives.

A launcher (torchrun) starts one process per device and tells each its RANK, LOCAL_RANK and
WORLD_SIZE. `process_group` joins them (gloo on CPU, NCCL on CUDA). Every other helper here works
unchanged in a single process, where it does nothing (a sum over one rank is the value itself),
so the trainer and the evaluator have one code path whatever the world size.

Who does what (see docs/design.md, "Data-parallel training"):
- every rank draws its own shards of each step's global batch (`shard_range`);
- rank 0 alone reads and writes the run directory; `on_main` runs such work on rank 0 and hands
  its result, or its error, to every rank, so no rank waits on a partner that has stopped;
- collectives time out (`train.collective_timeout`), so a hung rank becomes an error.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
from datetime import timedelta
from typing import Any, Callable, Iterator, TypeVar

import torch
import torch.distributed as dist

from .errors import UserError

T = TypeVar("T")


def launched_world_size() -> int:
    """How many processes the launcher started (1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    """This process's index on its machine, which picks its GPU (0 without a launcher)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_distributed() -> bool:
    """Whether this process is one of several in a process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Processes in the job (1 in a single process)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's rank (0 in a single process)."""
    return dist.get_rank() if is_distributed() else 0


def is_main() -> bool:
    """Whether this process is rank 0, the only one that touches the run directory."""
    return rank() == 0


@contextlib.contextmanager
def process_group(device_type: str, timeout_s: float) -> Iterator[None]:
    """Join the launcher's process group for the duration (nothing when launched as one process).

    gloo on CPU, NCCL on CUDA (each process makes GPU LOCAL_RANK its current device). A
    collective that waits longer than `timeout_s` fails instead of hanging.
    """
    if launched_world_size() <= 1 or is_distributed():
        yield
        return
    if device_type == "cuda":
        torch.cuda.set_device(local_rank())
    backend = "nccl" if device_type == "cuda" else "gloo"
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError) as err:  # missing MASTER_ADDR, unreachable store, ...
        raise UserError(f"cannot join the {backend} process group of {launched_world_size()} processes: "
                        f"{describe(err)}") from None
    # torchrun stops the surviving ranks with SIGTERM when one fails; by default that kills them
    # without a word. As an exception it ends the run with a message naming the step and the
    # checkpoint that was kept (see train.run_training).
    previous = signal.signal(signal.SIGTERM, _raise_stopped)
    failed = True
    try:
        yield
        failed = False
    finally:
        # The launcher's SIGTERM often arrives while a failed rank tears gloo down or prints its
        # report; raised there it would replace the report ("rank 0 of 2 stopped at step N ...")
        # with a bare interruption. A process that is stopping anyway ignores it.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            dist.destroy_process_group()
        finally:
            if not failed:
                signal.signal(signal.SIGTERM, previous)


class Stopped(UserError):
    """The launcher stopped this process (SIGTERM), usually because another rank failed."""


def _raise_stopped(signum, frame) -> None:
    # Once is enough: a second SIGTERM while the first is being reported would replace the report.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Stopped("stopped by the launcher (SIGTERM)")


def is_lost_rank(err: BaseException) -> bool:
    """Whether an error means another rank is gone or hung (rather than a bug in this process).

    NCCL and c10d raise DistError; gloo reports a peer that closed its connection, or a collective
    that timed out, as a plain RuntimeError whose message names gloo's source file.
    """
    return isinstance(err, (dist.DistError, Stopped)) or (isinstance(err, RuntimeError) and "gloo" in str(err))


def lost_rank_reason(err: BaseException) -> str:
    """A short reason for an error that `is_lost_rank` accepts: the launcher's SIGTERM as it is,
    a collective's error as its first sentence, without the source location gloo puts first."""
    if isinstance(err, Stopped):
        return str(err)
    text = re.sub(r"^\[[^\]]*\]\s*", "", describe(err))
    return f"lost contact with another process ({text.split('. ')[0].rstrip('.')})"


def shard_range(shards: int) -> range:
    """The data shards of each step's global batch that this rank draws: a contiguous block.

    The global batch is the concatenation of `shards` sub-batches, shard k drawn from
    rng(data seed, step, k), so any world size that divides `shards` sees the same batches.
    """
    world = world_size()
    if shards % world:
        raise UserError(f"data.shards ({shards}) must be a multiple of the number of processes ({world}); set "
                        f"data.shards={world} (a single process with the same data.shards trains on the same "
                        "batches)")
    per = shards // world
    return range(rank() * per, (rank() + 1) * per)


def _comm_device() -> torch.device:
    """Where collective tensors live: NCCL only moves CUDA tensors."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of `values` over ranks (the tensor itself in one process)."""
    if not is_distributed():
        return values
    summed = values.to(_comm_device())
    dist.all_reduce(summed, op=dist.ReduceOp.SUM)
    return summed.to(values.device)


def all_reduce_counts(counts: list[int]) -> list[int]:
    """Integer counts summed over ranks."""
    if not is_distributed():
        return counts
    return [int(x) for x in all_reduce_sum(torch.tensor(counts, dtype=torch.int64)).tolist()]


def gather_objects(obj: T) -> list[T]:
    """Every rank's `obj`, in rank order, on every rank ([obj] in one process)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: T) -> T:
    """Rank 0's `obj` on every rank (pickled: keep tensors in it on the CPU)."""
    if not is_distributed():
        return obj
    box = [obj if is_main() else None]
    dist.broadcast_object_list(box, src=0, device=_comm_device())
    return box[0]


def broadcast_module(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers into every rank's module, in place."""
    if not is_distributed():
        return
    with torch.no_grad():
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)


def on_main(fn: Callable[[], T]) -> T:
    """Run `fn` on rank 0 only and return its result on every rank.

    A UserError or OSError raised on rank 0 is raised there as it is, and on every other rank as
    a UserError naming it, so the whole job stops with the same reason instead of the other ranks
    waiting at their next collective for a rank that has left.
    """
    if not is_distributed():
        return fn()
    outcome: tuple[bool, Any] = (True, None)
    error: BaseException | None = None
    if is_main():
        try:
            outcome = (True, fn())
        except Stopped:  # the others are being stopped too: nobody is left to tell
            raise
        except (UserError, OSError) as err:
            error, outcome = err, (False, str(err))
    ok, value = broadcast_object(outcome)
    if error is not None:
        raise error
    if not ok:
        raise UserError(f"rank 0 stopped: {value}")
    return value


def wrap_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The module the training step calls: DistributedDataParallel across ranks, else the model.

    DDP averages gradients over ranks during backward (the trainer scales each rank's loss so that
    the average is the single-process gradient). Every parameter takes part in every forward pass
    of lengthgen's models, so unused-parameter detection (an extra pass per step) stays off.
    """
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def no_sync(module: torch.nn.Module, skip: bool):
    """A context in which `module`'s backward passes skip DDP's gradient all-reduce when `skip`
    (gradient accumulation: synchronize once, at the last micro-batch); a no-op otherwise and
    outside data-parallel jobs. `module` may be torch.compile's wrapper of the DDP module."""
    ddp = getattr(module, "_orig_mod", module)
    if skip and hasattr(ddp, "no_sync"):
        return ddp.no_sync()
    return contextlib.nullcontext()


def describe(err: BaseException) -> str:
    """The first line of an error's message (collective errors carry pages of C++ context)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
