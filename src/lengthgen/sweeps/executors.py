"""Where sweep runs execute: local worker processes, or a Ray cluster.

Each run is a `Job` (config, run directory, thread budget) executed by `execute_job`, which
trains the run, resuming it when it already has a checkpoint. Executors are registered by name.
"""

from __future__ import annotations

import contextlib
import json
import time
import traceback
from concurrent.futures import BrokenExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from .. import optional
from ..config import build_config
from ..errors import UserError
from ..experiment import build_experiment
from ..registry import Registry
from ..runtime import in_processes, set_threads
from ..store.fileio import atomic_write_text
from ..store.rundir import RunDir
from ..train import run_training


@dataclass(frozen=True)
class Job:
    """One run to execute: the resolved config as a dict, its directory, and its threads."""

    name: str
    config: dict[str, Any]
    run_path: str
    threads: int


@dataclass(frozen=True)
class JobResult:
    """How a job ended: status 'done' or 'failed' (with a one-line error)."""

    name: str
    status: str
    seconds: float
    error: str = ""


def execute_job(job: Job) -> JobResult:
    """Train one run (resuming it if it has a checkpoint); failures are recorded, not raised."""
    start = time.perf_counter()
    set_threads(job.threads)
    run = RunDir(job.run_path)
    try:
        resume = run.exists()
        # A directory without a config crashed before it started: start it afresh.
        run.prepare(force=not resume, resume=resume)
        (run.path / "failed.json").unlink(missing_ok=True)
        exp = build_experiment(build_config(job.config))
        run_training(exp, run, resume=resume, quiet=True)
        return JobResult(job.name, "done", time.perf_counter() - start)
    except Exception as err:  # noqa: BLE001 -- a sweep must outlive any one run
        # A UserError is written to be read as it is; anything else is a bug, named by its type.
        text = str(err) if isinstance(err, UserError) else f"{type(err).__name__}: {err}"
        message = (text.strip().splitlines() or [type(err).__name__])[0]
        if run.path.is_dir():
            try:
                atomic_write_text(run.path / "failed.json",
                                  json.dumps({"error": message, "traceback": traceback.format_exc()}))
            except OSError:  # a full disk may refuse even this; the sweep still reports the error
                pass
        return JobResult(job.name, "failed", time.perf_counter() - start, message)


# An executor is a function (jobs, workers, address) -> iterator of results. It checks its
# arguments before returning, so a bad option fails before any progress output.
Executor = Callable[..., Iterator[JobResult]]
EXECUTORS = Registry("executor")
register_executor = EXECUTORS.register


@register_executor("local")
def run_local(jobs: list[Job], workers: int, address: str | None = None) -> Iterator[JobResult]:
    """Worker processes on this machine (spawned, so each sets its own thread count).

    If the sweep stops early (Ctrl-C, an error, the caller stops reading), queued runs are
    cancelled and running ones stopped at once; each resumes from its last checkpoint when the
    sweep is run again. Waiting for them instead would make Ctrl-C wait for the whole sweep.
    """
    if address:
        raise UserError("--address is only for the ray executor")
    # Checked above, before the caller starts reading (and drawing a progress bar); the work
    # itself is a generator.
    return _local_results(jobs, workers)


def _local_results(jobs: list[Job], workers: int) -> Iterator[JobResult]:
    with contextlib.closing(in_processes(execute_job, jobs, workers)) as finished:
        for job, future in finished:
            try:
                yield future.result()
            except BrokenExecutor as err:  # a worker was killed (out of memory, signal): record it, go on
                yield JobResult(job.name, "failed", 0.0, f"worker process died: {err}")


@register_executor("ray")
def run_ray(jobs: list[Job], workers: int, address: str | None = None) -> Iterator[JobResult]:
    """Ray tasks, one per run, each reserving what `ray_resources` declares for it.

    address: a cluster address ('auto', 'ray://host:port', 'host:port'), or 'local' / none
    to start a Ray instance on this machine.
    """
    ray = optional.ray()
    if not ray.is_initialized():
        target = None if address in (None, "local") else address
        try:
            ray.init(address=target, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except Exception as err:  # noqa: BLE001 -- Ray raises several types for an unreachable cluster
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise UserError(f"cannot start or reach Ray at address {address!r}: {first}") from None
    cluster_gpus = ray.cluster_resources().get("GPU", 0)
    # Declared before any task starts, so an impossible request fails now instead of queueing forever.
    resources = [ray_resources(job, cluster_gpus) for job in jobs]
    return _ray_results(ray, jobs, resources)


def ray_resources(job: Job, cluster_gpus: float) -> dict[str, float]:
    """What one run reserves on a Ray cluster: its threads as CPUs, and a whole GPU when it trains
    on CUDA (train.device cuda, or auto on a cluster with GPUs), so Ray places one run per GPU.

    Ray hides GPUs from tasks that reserve none, so 'auto' must reserve one to see it.
    """
    device = job.config.get("train", {}).get("device", "auto")
    if device == "cuda" and cluster_gpus < 1:
        raise UserError(f"run {job.name} asks for train.device cuda, but the Ray cluster has no GPU; use "
                        "train.device=auto or cpu, or add GPU nodes")
    gpus = 1 if device == "cuda" or (device == "auto" and cluster_gpus >= 1) else 0
    return {"num_cpus": job.threads, "num_gpus": gpus}


def _ray_results(ray, jobs: list[Job], resources: list[dict[str, float]]) -> Iterator[JobResult]:
    pending = {}
    for job, reserve in zip(jobs, resources):
        remote = ray.remote(max_retries=0, **reserve)(execute_job)
        pending[remote.remote(job)] = job
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            pending.pop(ref)
            yield ray.get(ref)


def get_executor(name: str) -> Executor:
    """The executor registered under `name`."""
    return EXECUTORS.lookup(name)
