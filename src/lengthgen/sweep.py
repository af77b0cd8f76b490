"""Sweeps: a base config, a grid of overrides and a list of seeds, run as one experiment.

A spec is a YAML file or a Python file defining `SWEEP` (a dict) or `sweep()` returning one:

    name: copy-encodings
    base: configs/copy.yaml          # path (relative to the spec) or an inline config mapping
    overrides: [train.steps=800]     # applied to the base before the grid
    grid:                            # cartesian product of dotted keys -> values
      model.encoding: [nope, rope]
    points:                          # optional explicit points, crossed with the grid
      - {data.tasks.0.lengths: [1, 8]}
    seeds: [0, 1]
    seed_keys: [seed.model]          # config seeds set to the sweep seed

A string value of a point may name `{sweep_dir}`: the sweep directory, as an absolute path, is
put in its place in the run's config (run names and result tables keep the text as written, so
they do not depend on where the sweep lives). A preset's preparation step writes models there.

The sweep directory holds `sweep.yaml` (the resolved spec) and `runs/<point>__seed<k>/`, one
run directory per grid point and seed. Running the same spec again skips finished runs and
resumes unfinished ones from their newest checkpoint.
"""

from __future__ import annotations

import itertools
import json
import re
import runpy
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from .config import ExperimentConfig, Strict, apply_overrides, build_config, yaml_problem
from .errors import UserError
from .fileio import atomic_write_text, check_writable, exclusive_lock
from .rundir import RunDir


class SweepSpec(Strict):
    """A validated sweep description."""

    name: str
    base: dict[str, Any]
    overrides: list[str] = Field(default_factory=list)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    points: list[dict[str, Any]] = Field(default_factory=list)
    seeds: list[int] = Field(default_factory=lambda: [0])
    seed_keys: list[str] = Field(default_factory=lambda: ["seed.model"])

    @field_validator("grid")
    @classmethod
    def _grid(cls, grid):
        for key, values in grid.items():
            if not values:
                raise ValueError(f"grid key {key!r} has no values")
        return grid

    @model_validator(mode="after")
    def _check(self) -> "SweepSpec":
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct integers, got {self.seeds}")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise ValueError(f"name {self.name!r} may use letters, digits, '_', '-', '.' only")
        bad = [k for k in self.seed_keys if k not in ("seed.model", "seed.data", "seed.eval")]
        if bad:
            raise ValueError(f"seed_keys {bad} invalid; valid: seed.model, seed.data, seed.eval")
        return self


@dataclass(frozen=True)
class RunPlan:
    """One run of a sweep: its grid values, seed, config and directory name."""

    name: str
    point: dict[str, Any]
    seed: int
    config: ExperimentConfig


def _read_spec_file(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"sweep spec {str(path)!r} does not exist")
    if path.suffix == ".py":
        try:
            namespace = runpy.run_path(str(path))
            if "SWEEP" in namespace:
                tree = namespace["SWEEP"]
            elif callable(namespace.get("sweep")):
                tree = namespace["sweep"]()
            else:
                raise UserError(f"{str(path)!r} must define SWEEP (a dict) or sweep() returning one")
        except UserError:
            raise
        except Exception as err:  # noqa: BLE001 -- the user's code: report it in one line, whatever it raised
            where = f" (line {err.lineno})" if isinstance(err, SyntaxError) and err.lineno else ""
            first = (str(err).strip().splitlines() or [""])[0]
            raise UserError(f"sweep spec {str(path)!r} failed to run{where}: {type(err).__name__}: {first}") from None
        if not isinstance(tree, dict):
            raise UserError(f"{str(path)!r} must define SWEEP (a dict) or sweep() returning one, not "
                            f"{type(tree).__name__}")
        return tree
    try:
        tree = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise UserError(f"sweep spec {str(path)!r} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(tree, dict):
        raise UserError(f"sweep spec {str(path)!r} must hold a mapping")
    return tree


def _describe(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"unknown sweep key {where!r}; valid: {', '.join(SweepSpec.model_fields)}"
    return f"sweep {where or 'spec'}: {first['msg'].removeprefix('Value error, ')}"


def parse_spec(tree: dict, relative_to: Path | None = None) -> SweepSpec:
    """Validate a raw spec; a `base` path is read relative to the spec's folder."""
    tree = dict(tree)
    base = tree.get("base", {})
    if isinstance(base, str):
        path = Path(base)
        if not path.is_absolute() and relative_to is not None and not path.exists():
            path = relative_to / path
        if not path.is_file():
            raise UserError(f"sweep base config {base!r} does not exist")
        tree["base"] = yaml.safe_load(path.read_text()) or {}
    try:
        return SweepSpec.model_validate(tree)
    except ValidationError as err:
        raise UserError(_describe(err)) from None


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a YAML or Python sweep spec."""
    path = Path(path)
    return parse_spec(_read_spec_file(path), path.parent)


def _short_keys(keys: list[str]) -> dict[str, str]:
    last = [k.split(".")[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def _value_text(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True).strip() if isinstance(value, (list, dict)) else value
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-")


SWEEP_DIR = "{sweep_dir}"  # in a point's string values: the sweep directory (see the module docstring)


def _place(value: Any, root: Path | None) -> Any:
    """`value` with SWEEP_DIR replaced by `root` in every string inside it (unchanged without a root)."""
    if root is None:
        return value
    if isinstance(value, str):
        return value.replace(SWEEP_DIR, str(root))
    if isinstance(value, list):
        return [_place(v, root) for v in value]
    if isinstance(value, dict):
        return {k: _place(v, root) for k, v in value.items()}
    return value


def expand(spec: SweepSpec, root: str | Path | None = None) -> list[RunPlan]:
    """Every (grid point, seed) as a validated config, in a stable order; `root` is the sweep
    directory that `{sweep_dir}` in point values stands for (left as written without one)."""
    root = Path(root).resolve() if root is not None else None
    keys = list(spec.grid)
    grid_points = [dict(zip(keys, values)) for values in itertools.product(*(spec.grid[k] for k in keys))]
    points = [{**p, **g} for p in (spec.points or [{}]) for g in grid_points]
    all_keys = list(dict.fromkeys(k for p in points for k in p))
    short = _short_keys(all_keys)
    plans, names = [], set()
    for point in points:
        label = ",".join(f"{short[k]}={_value_text(v)}" for k, v in point.items()) or "base"
        for seed in spec.seeds:
            tree = yaml.safe_load(yaml.safe_dump(spec.base))  # deep copy
            apply_overrides(tree, spec.overrides)
            for key, value in point.items():
                # A plain scalar dumps with YAML's document-end marker ("copy\n..."); drop it so an
                # error message quoting the override stays on one line.
                text = yaml.safe_dump(_place(value, root), default_flow_style=True).strip().removesuffix("...").strip()
                apply_overrides(tree, [f"{key}={text}"])
            for key in spec.seed_keys:
                apply_overrides(tree, [f"{key}={seed}"])
            name = f"{label}__seed{seed}"
            if name in names:
                raise UserError(f"two sweep points share the name {name!r}; make the grid values distinct")
            names.add(name)
            tree["name"] = name
            plans.append(RunPlan(name, point, seed, build_config(tree)))
    return plans


def _execution_order(plans: list[RunPlan], seeds: list[int], status: dict[str, str]) -> list[RunPlan]:
    """Runs to resume first (their work is half done), then one seed of every grid point before the
    next seed: a sweep stopped early still covers the whole grid instead of a few points fully."""
    rank = {seed: i for i, seed in enumerate(seeds)}
    return sorted(plans, key=lambda p: (status[p.name] != "partial", rank[p.seed]))  # stable: grid order kept


def _reuse_finished(sweep: "SweepDir", plans: list[RunPlan], roots: list[str | Path]) -> list[str]:
    """Copy a finished run with the same config into the sweep for each plan that has one (the sweep
    itself is searched first); the names of the plans so filled."""
    if not plans:
        return []
    from .reuse import adopt, finished_runs, fingerprint

    found = finished_runs([sweep.path, *roots])
    done = []
    for plan in plans:
        source = found.get(fingerprint(plan.config))
        if source is not None:
            adopt(source, sweep.run_dir(plan), plan.config)
            done.append(plan.name)
    return done


def _duplicates(plans: list[RunPlan]) -> list[RunPlan]:
    """The plans that repeat an earlier plan's experiment (`lengthgen.reuse.fingerprint`)."""
    from .reuse import fingerprint

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
            import shutil

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
    run with the same config (`lengthgen.reuse`); runs already started here are resumed instead.
    """
    import os

    from tqdm import tqdm

    from .executors import Job, get_executor

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
        todo = _execution_order([p for p in plans if status[p.name] in ("new", "partial")], spec.seeds, status)
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
            with tqdm(total=len(jobs), disable=quiet or not jobs, desc=spec.name, unit="run") as bar:
                for result in outcomes:
                    results.append(result)
                    bar.update(1)
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
