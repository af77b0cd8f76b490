"""A progress bar over a queue of runs that moves while the runs train, not only when they end.

Sweeps and the suite count their work in estimated GFLOP (`sweeps.cost`). A CPU run takes 10-40
minutes, so a bar that moves only when a run finishes sits at 0% with no ETA for the first quarter
of an hour. `WorkBar` also reads how far each run in flight has got (the last step in its
metrics.jsonl, which the trainer appends every `log_every` steps) every few seconds, and counts
that share of the run's cost as done. A run resumed from a checkpoint counts only the steps it has
still to train, so the ETA after Ctrl-C and a rerun is the time left, not the time since the start.
A killed run resumes from its newest checkpoint and logs again the steps after it, so its metrics.jsonl
counts only once it has been written in this invocation (the trainer first cuts it back to the
checkpoint); until then the run shows the checkpoint's share.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from ..store.checkpoint import checkpoint_dirs, checkpoint_step
from ..store.rundir import RunDir


def trained_fraction(run_path: str | Path, steps: int) -> float:
    """How much of a run's `steps` its directory shows as trained (0 for a run not started)."""
    if steps <= 0:
        return 0.0
    step = RunDir(run_path).last_logged_step()
    return min(1.0, max(0, step or 0) / steps)


def resumed_fraction(run_path: str | Path, steps: int) -> float:
    """How much of a run's `steps` a rerun does not train again: the share up to its newest complete
    checkpoint (0 for a run without one), where training picks up."""
    found = checkpoint_dirs(RunDir(run_path).checkpoint_root)
    if steps <= 0 or not found:
        return 0.0
    return min(1.0, checkpoint_step(found[-1]) / steps)


def _written_since(run_path: Path, since: float) -> bool:
    """Whether the run's metrics.jsonl was written at or after `since` (a wall-clock time)."""
    try:
        return os.stat(run_path / "metrics.jsonl").st_mtime >= since
    except FileNotFoundError:
        return False


class WorkBar:
    """Wraps a tqdm bar whose total is the estimated GFLOP of the queue: `watch` the runs, `finish`
    each as it ends; a background thread adds the trained share of the runs in between.

    Use as a context manager around the loop over results; the polling stops when it exits.
    """

    def __init__(self, bar, interval: float = 5.0):
        self.bar = bar
        self.interval = interval
        # name -> (path, steps, flops, fraction at start, when watching began)
        self._runs: dict[str, tuple[Path, int, float, float, float]] = {}
        self._counted: dict[str, float] = {}  # name -> GFLOP already added to the bar
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, run_path: str | Path, name: str, steps: int, flops: float) -> None:
        """Count this run's work from now on; what it will not train again (up to its newest
        checkpoint) is taken off the bar's total (the estimate was for the whole run)."""
        start = resumed_fraction(run_path, steps)
        with self._lock:
            # The kernel stamps files from a coarse clock, a few ms behind time.time(): allow for it.
            self._runs[name] = (Path(run_path), steps, flops, start, time.time() - 0.05)
            self._counted[name] = 0.0
            self.bar.total = max(0.0, self.bar.total - flops * start / 1e9)

    def _advance(self, name: str, fraction: float) -> None:
        _, _, flops, start, _ = self._runs[name]
        done = flops * max(0.0, fraction - start) / 1e9
        if done > self._counted[name]:
            # The bar's total is the same numbers summed in another order: do not let rounding pass it.
            self.bar.update(min(done - self._counted[name], max(0.0, self.bar.total - self.bar.n)))
            self._counted[name] = done

    def finish(self, name: str) -> None:
        """The run ended (done or failed): its whole remaining estimate counts as done."""
        with self._lock:
            self._advance(name, 1.0)
            self._runs.pop(name)

    def poll(self) -> None:
        """Count the trained share of every run still watched (the thread calls this)."""
        with self._lock:
            for name, (path, steps, _, _, since) in list(self._runs.items()):
                # Before the run writes its log, the steps there are an earlier attempt's, past the checkpoint.
                if _written_since(path, since):
                    self._advance(name, trained_fraction(path, steps))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except OSError:  # a run directory being replaced mid-read: the next poll sees it whole
                continue

    def __enter__(self) -> "WorkBar":
        if not self.bar.disable:
            self._thread = threading.Thread(target=self._loop, name="workbar", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
