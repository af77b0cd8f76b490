"""Running a sweep: its directory, the order of its runs, and what is copied, skipped or resumed.

The sweep directory holds `sweep.yaml` (the resolved spec), `sessions.jsonl` (one line per
invocation: when, how long, with what parallelism) and `runs/<point>__seed<k>/`, one run
directory per grid point and seed. Running the same spec again skips finished runs and resumes
unfinished ones from their newest checkpoint; finished runs of other sweeps with the same config
are copied instead of trained (`sweeps.reuse`). The runs execute on a registered executor
(`sweeps.executors`: local worker processes or Ray).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from ..config import yaml_problem
from ..errors import UserError
from ..store.fileio import atomic_write_text, check_writable, exclusive_lock
from ..store.rundir import RunDir
from .cost import run_cost
from .executors import Job, get_executor
from .progress import WorkBar
from .reuse import adopt, fingerprint, finished_runs
from .spec import RunPlan, SweepSpec, expand, parse_spec


def execution_order(plans: list[RunPlan], seeds: list[int], status: dict[str, str],
                    cost: dict[str, float] | None = None) -> list[RunPlan]:
    """Runs to resume first (their work is half done), then one seed of every grid point before the
    next seed: a sweep stopped early still covers the whole grid instead of a few points fully.
    Within a seed the costliest runs go first (`cost`: plan name -> estimated FLOPs, `sweeps.cost`),
    so that the workers do not wait at the end on one long run started last; equal costs keep grid
    order."""
    rank = {seed: i for i, seed in enumerate(seeds)}
    cost = cost or {}
    return sorted(plans, key=lambda p: (status[p.name] != "partial", rank[p.seed], -cost.get(p.name, 0.0)))


def _reuse_finished(sweep: SweepDir, plans: list[RunPlan], roots: list[str | Path]) -> list[str]:
    """Copy a finished run with the same config into the sweep for each plan that has one (the sweep
    itself is searched first); the names of the plans so filled."""
    if not plans:
        return []
    found = finished_runs([sweep.path, *roots])
    done = []
    for plan in plans:
        source = found.get(fingerprint(plan.config))
        if source is not None:
            adopt(source, sweep.run_dir(plan), plan.config)
            done.append(plan.name)
    return done


def _duplicates(plans: list[RunPlan]) -> list[RunPlan]:
    """The plans that repeat an earlier plan's experiment (`lengthgen.sweeps.reuse.fingerprint`)."""
    seen, repeats = set(), []
    for plan in plans:
        key = fingerprint(plan.config)
        (repeats.append(plan) if key in seen else seen.add(key))
    return repeats


class SweepDir:
    """The directory of one sweep."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def spec_path(self) -> Path:
        return self.path / "sweep.yaml"

    def run_dir(self, plan: RunPlan) -> RunDir:
        """Where a planned run lives."""
        return RunDir(self.path / "runs" / plan.name)

    def read_spec(self) -> SweepSpec:
        """The resolved spec stored in the sweep."""
        if not self.spec_path.is_file():
            raise UserError(f"{str(self.path)!r} is not a sweep directory (no sweep.yaml)")
        try:
            tree = yaml.safe_load(self.spec_path.read_text())
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as err:
            reason = yaml_problem(err) if isinstance(err, yaml.YAMLError) else str(err).strip().splitlines()[0]
            raise UserError(f"cannot read {str(self.spec_path)!r}: {reason}") from None
        if not isinstance(tree, dict):
            raise UserError(f"{str(self.spec_path)!r} does not hold a sweep mapping")
        return parse_spec(tree)

    @property
    def sessions_path(self) -> Path:
        return self.path / "sessions.jsonl"

    def record_session(self, record: dict[str, Any]) -> None:
        """Append one line for one invocation of the sweep: when, how long, with what parallelism."""
        with open(self.sessions_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def sessions(self) -> list[dict[str, Any]]:
        """Every recorded invocation, oldest first; a line cut short by a crash is skipped."""
        if not self.sessions_path.is_file():
            return []
        out = []
        for line in self.sessions_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    @property
    def lock_path(self) -> Path:
        return self.path / ".lock"

    def lock(self):
        """Context manager: hold this sweep directory for this process, or fail at once with a
        one-line error naming the PID that holds it (two sweeps writing one directory would train
        the same runs twice and interleave their files). Re-entrant within a process."""
        self._mkdir()
        return exclusive_lock(self.lock_path, f"sweep directory {str(self.path)!r}")

    def _mkdir(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"cannot create sweep directory {str(self.path)!r}: {err.strerror}") from None

    def prepare(self, spec: SweepSpec, force: bool) -> None:
        """Store the spec; an existing sweep must have the same spec unless forced."""
        if self.spec_path.is_file() and not force:
            if self.read_spec().model_dump(mode="json") != spec.model_dump(mode="json"):
                raise UserError(f"{str(self.path)!r} holds a different sweep; use --force to replace it")
        elif self.path.exists() and force:
            # Everything but the lock file: the caller may hold it, and a new file would not be locked.
            for child in self.path.iterdir():
                if child.name == self.lock_path.name:
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        self._mkdir()
        check_writable(self.path)
        atomic_write_text(self.spec_path, yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))

    def status(self, plans: list[RunPlan]) -> dict[str, str]:
        """done / partial / new for every planned run."""
        out = {}
        for plan in plans:
            run = self.run_dir(plan)
            out[plan.name] = "done" if run.is_done() else ("partial" if run.exists() else "new")
        return out


def run_sweep(spec: SweepSpec, path: str | Path, *, executor: str = "local", workers: int = 0, threads: int = 1,
              address: str | None = None, force: bool = False, quiet: bool = False,
              reuse: list[str | Path] = ()) -> list:
    """Run every unfinished run of the spec; returns the JobResults of what ran.

    reuse: sweep directories, or folders of them, whose finished runs are copied in place of a new
    run with the same config (`lengthgen.sweeps.reuse`); runs already started here are resumed instead.
    """
    run_jobs = get_executor(executor)
    if threads < 1:
        raise UserError("--threads must be >= 1")
    if workers < 0:
        raise UserError("--workers must be >= 0 (0: cores / threads)")
    workers = workers or max(1, (os.cpu_count() or 1) // threads)
    sweep = SweepDir(path)
    plans = expand(spec, sweep.path)  # the whole grid is validated before anything is created
    with sweep.lock():
        sweep.prepare(spec, force)
        status = sweep.status(plans)
        reused = _reuse_finished(sweep, [p for p in plans if status[p.name] == "new"], reuse)
        status.update({name: "reused" for name in reused})
        # A plan repeating another's experiment (the main task alone, named through two groups) waits
        # for that one and is copied from it.
        repeats = [p for p in _duplicates(plans) if status[p.name] == "new"]
        status.update({p.name: "repeat" for p in repeats})
        todo = [p for p in plans if status[p.name] in ("new", "partial")]
        cost = {p.name: run_cost(p.config) for p in todo}
        todo = execution_order(todo, spec.seeds, status, cost)
        if not quiet:
            counts = {s: list(status.values()).count(s) for s in ("done", "reused", "repeat", "partial", "new")}
            print(f"sweep {sweep.path}: {len(plans)} runs ({counts['done']} done, {counts['reused']} copied from "
                  f"finished runs, {counts['repeat']} to copy once trained, {counts['partial']} to resume, "
                  f"{counts['new']} new); {executor} executor, {workers} workers x {threads} threads")
        jobs = [Job(p.name, p.config.model_dump(mode="json"), str(sweep.run_dir(p).path), threads) for p in todo]
        results = []
        outcomes = run_jobs(jobs, workers, address)  # checks its options before the progress bar appears
        started, t0 = datetime.now(timezone.utc).isoformat(timespec="seconds"), time.perf_counter()
        completed = False
        try:
            # The bar counts estimated GFLOP, not runs: a sweep's runs can differ 10x in cost, and the
            # ETA should not take a short run finished first as the pace of the long ones.
            # It also moves while runs train (`WorkBar` reads their logged steps).
            with tqdm(total=sum(cost.values()) / 1e9, disable=quiet or not jobs, desc=f"{spec.name} 0/{len(jobs)} runs",
                      bar_format="{l_bar}{bar}| {n:,.0f}/{total:,.0f} GFLOP [{elapsed}<{remaining}]",
                      smoothing=0.05, dynamic_ncols=True) as bar, WorkBar(bar) as work:
                for job in jobs:
                    work.watch(job.run_path, job.name, job.config["train"]["steps"], cost[job.name])
                for result in outcomes:
                    results.append(result)
                    bar.set_description_str(f"{spec.name} {len(results)}/{len(jobs)} runs", refresh=False)
                    work.finish(result.name)
                    if result.status != "done":
                        tqdm.write(f"run {result.name} failed: {result.error}")
            completed = True
            _reuse_finished(sweep, repeats, [])
        finally:
            # Also on Ctrl-C: the preset wall times in docs/performance.md are read from here.
            if jobs:
                sweep.record_session({
                    "started": started, "wall_s": round(time.perf_counter() - t0, 1), "completed": completed,
                    "runs": len(jobs), "failed": sum(r.status != "done" for r in results),
                    "executor": executor, "workers": workers, "threads": threads, "cpus": os.cpu_count()})
    return results
