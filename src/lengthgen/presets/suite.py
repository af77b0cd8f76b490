"""The whole suite: every preset's sweep at one scale as one resumable queue (`lengthgen repro --all`).

Each preset keeps its own sweep directory (`<root>/<preset>-<scale>/`, as `lengthgen repro NAME`
lays it out), but their runs go to the workers as one queue:

- a run that several presets share (the same fingerprint, `sweeps.reuse`) is trained once, by the
  first preset in the queue, and copied into the others when it finishes; finished runs already
  under `root` are copied instead of trained;
- presets go in order of their estimated remaining cost (`sweeps.cost`), cheapest first, so verdicts
  arrive as early as they can; within a preset, runs go as in `sweeps.run` (interrupted ones
  first, then seed by seed, the costliest first within a seed);
- a preset's report (its verdict) is written the moment its last run is done;
- presets with a preparation step (b-pretrained pretrains the models its points start from) come
  after the queue: their preparation needs the run of a program, not a worker;
- one progress bar counts the estimated work (in GFLOP) of the whole queue, so its ETA is the
  suite's; the summary `<root>/repro-<scale>.md` is written at the end.

Ctrl-C stops the workers at once; running the same command again resumes every run from its last
checkpoint and skips what is done.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from ..errors import choices_error
from ..reports.report import write_report
from ..reports.summary import write_repro_summary
from ..store.fileio import atomic_write_text
from ..sweeps.cost import run_cost
from ..sweeps.executors import Job, get_executor
from ..sweeps.progress import WorkBar
from ..sweeps.reuse import adopt, fingerprint, finished_runs
from ..sweeps.run import SweepDir, execution_order
from ..sweeps.spec import RunPlan, expand
from .base import PRESETS, Preset


@dataclass
class SuiteItem:
    """One preset of the suite: its sweep, its runs, and what is left of them."""

    preset: Preset
    sweep: SweepDir
    plans: list[RunPlan]
    keys: dict[str, str]  # plan name -> fingerprint
    reported: bool = False
    trained: int = 0  # runs trained for it in this invocation (0: nothing to record in sessions.jsonl)

    @property
    def name(self) -> str:
        return self.preset.name


def plan_suite(scale: str, root: Path, seeds: list[int] | None = None) -> list[SuiteItem]:
    """Every preset that has `scale`, with its sweep directory under `root` and its planned runs."""
    scales = sorted({s for preset in PRESETS.values() for s in preset.scales})
    if scale not in scales:
        raise choices_error("scale", scale, scales)
    items = []
    for name, preset in sorted(PRESETS.items()):
        if scale not in preset.scales:
            continue
        spec = preset.spec(scale, seeds)
        sweep = SweepDir(root / spec.name)
        plans = expand(spec, sweep.path)  # every run's config is valid before anything is written
        items.append(SuiteItem(preset, sweep, plans, {p.name: fingerprint(p.config) for p in plans}))
    return items


def cheapest_first(items: list[SuiteItem], cost: dict[str, float], done: set[str]) -> list[SuiteItem]:
    """The items in queue order: repeatedly the one whose runs still to train cost least (a run an
    earlier item trains is free for the later ones); items with a preparation step last."""
    order, scheduled = [], set(done)
    waiting = [item for item in items if item.preset.prepare is None]
    while waiting:
        def remaining(item):
            return sum(cost[k] for k in set(item.keys.values()) - scheduled)

        best = min(waiting, key=lambda item: (remaining(item), item.name))
        order.append(best)
        scheduled |= set(best.keys.values())
        waiting.remove(best)
    return order + [item for item in items if item.preset.prepare is not None]


class Suite:
    """Runs the queue: jobs to the executor, copies of shared runs, a report per finished preset."""

    def __init__(self, items: list[SuiteItem], scale: str, *, executor: str, workers: int, threads: int,
                 address: str | None):
        self.items, self.scale = items, scale
        self.executor, self.workers, self.threads, self.address = executor, workers, threads, address
        self.start = time.perf_counter()
        self.started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.done: dict[str, Path] = {}  # fingerprint -> a finished run directory
        self.failed: dict[str, str] = {}  # fingerprint -> error
        self.cost: dict[str, float] = {}

    def adopt_finished(self, root: Path) -> None:
        """Runs already finished here or anywhere under `root` count as done; copies fill the rest."""
        found = finished_runs([root])
        for item in self.items:
            for plan in item.plans:
                run = item.sweep.run_dir(plan)
                key = item.keys[plan.name]
                if run.is_done():
                    self.done.setdefault(key, run.path)
                elif key in found:
                    adopt(found[key], run, plan.config)
                    self.done.setdefault(key, run.path)

    def jobs(self, items: list[SuiteItem], taken: set[str]) -> list[tuple[Job, str]]:
        """(job, fingerprint) for each run the items train themselves, in queue order."""
        out = []
        for item in items:
            status = item.sweep.status(item.plans)
            cost = {p.name: self.cost.get(item.keys[p.name], 0.0) for p in item.plans}
            for plan in execution_order(item.plans, sorted({p.seed for p in item.plans}), status, cost):
                key = item.keys[plan.name]
                if key in self.done or key in taken:
                    continue
                taken.add(key)
                item.trained += 1
                run = item.sweep.run_dir(plan)
                # Run names repeat across presets (their grids share points): the job's name is unique.
                name = f"{item.name}/{plan.name}"
                out.append((Job(name, plan.config.model_dump(mode="json"), str(run.path), self.threads), key))
        return out

    def settle(self, bar) -> None:
        """Copy shared runs into every item whose runs are all trained, and report those items."""
        for item in self.items:
            if item.reported:
                continue
            keys = set(item.keys.values())
            if not keys <= set(self.done) | set(self.failed):
                continue
            for plan in item.plans:
                run, key = item.sweep.run_dir(plan), item.keys[plan.name]
                if key in self.done and not run.is_done() and self.done[key] != run.path:
                    adopt(self.done[key], run, plan.config)
            elapsed = round(time.perf_counter() - self.start, 1)
            if item.trained:  # its wall time is the time to its verdict, from the start of the queue
                item.sweep.record_session({
                    "started": self.started, "wall_s": elapsed, "completed": True, "runs": item.trained,
                    "failed": sum(key in self.failed for key in keys), "executor": self.executor,
                    "workers": self.workers, "threads": self.threads, "cpus": os.cpu_count(), "queue": "suite"})
            report = write_report(item.sweep.path, preset=item.preset)
            verdict = next((line.strip("*") for line in report.read_text().splitlines()
                            if line.startswith("**Verdict")), "no verdict")
            item.reported = True
            message = f"{item.name}: {verdict} after {elapsed / 60:.1f} min ({report})"
            tqdm.write(message)

    def run(self, items: list[SuiteItem], bar: WorkBar, taken: set[str]) -> None:
        """Train the items' own runs on the executor, settling items as their last run finishes."""
        planned = self.jobs(items, taken)
        if not planned:
            self.settle(bar)
            return
        key_of = {job.name: key for job, key in planned}
        path_of = {job.name: Path(job.run_path) for job, _ in planned}
        for job, key in planned:
            bar.watch(job.run_path, job.name, job.config["train"]["steps"], self.cost[key])
        for result in get_executor(self.executor)([job for job, _ in planned], self.workers, self.address):
            key = key_of[result.name]
            if result.status == "done":
                self.done[key] = path_of[result.name]
            else:
                self.failed[key] = result.error
                tqdm.write(f"run {result.name} failed: {result.error}")
            bar.finish(result.name)
            self.settle(bar)


def run_suite(scale: str, root: str | Path, *, executor: str = "local", workers: int = 0, threads: int = 1,
              address: str | None = None, force: bool = False, seeds: list[int] | None = None,
              quiet: bool = False) -> tuple[Path, object]:
    """Run every preset at `scale` under `root` as one queue; the summary's path and table (it writes
    `<root>/repro-<scale>.md` at the end, as `lengthgen repro --summary` does)."""
    root = Path(root)
    workers = workers or max(1, (os.cpu_count() or 1) // threads)
    items = plan_suite(scale, root, seeds)
    suite = Suite(items, scale, executor=executor, workers=workers, threads=threads, address=address)
    with contextlib.ExitStack() as held:
        for item in items:
            held.enter_context(item.sweep.lock())
        for item in items:
            item.sweep.prepare(item.preset.spec(scale, seeds), force)
            atomic_write_text(item.sweep.path / "preset.json", json.dumps({"name": item.name, "scale": scale}))
        suite.adopt_finished(root)
        keys = {key for item in items for key in item.keys.values()}
        plan_of = {item.keys[p.name]: p for item in items for p in item.plans}
        suite.cost = {key: run_cost(plan_of[key].config) for key in keys}
        order = cheapest_first(items, suite.cost, set(suite.done))
        todo = sum(suite.cost[k] for k in keys - set(suite.done)) / 1e9
        print(f"suite {root} at {scale} scale: {len(order)} presets, {sum(len(i.plans) for i in items)} runs "
              f"({len(keys)} distinct, {len(suite.done)} already done); order: {', '.join(i.name for i in order)}; "
              f"{executor} executor, {workers} workers x {threads} threads")
        taken: set[str] = set()
        with tqdm(total=todo, unit="GFLOP", desc=f"suite {scale}", disable=quiet, dynamic_ncols=True,
                  bar_format="{l_bar}{bar}| {n:,.0f}/{total:,.0f} GFLOP [{elapsed}<{remaining}]",
                  smoothing=0.05) as shown, WorkBar(shown) as bar:
            ordinary = [item for item in order if item.preset.prepare is None]
            suite.run(ordinary, bar, taken)
            for item in order:
                if item.preset.prepare is not None:
                    item.preset.prepare(scale, item.sweep.path)
                    # Its models exist now: their sizes replace the guesses in the estimate.
                    for key in set(item.keys.values()) - set(suite.done):
                        new = run_cost(plan_of[key].config)
                        shown.total += (new - suite.cost[key]) / 1e9
                        suite.cost[key] = new
                    shown.refresh()
                    suite.run([item], bar, taken)
        return write_repro_summary(root, scale)
