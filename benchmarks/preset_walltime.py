"""Wall time of preset sweeps, read from their sweep directories.

Run (from the repository root, with the venv active), after `lengthgen repro NAME` has run:

    python benchmarks/preset_walltime.py                 # every sweep under sweeps/
    python benchmarks/preset_walltime.py sweeps/a-sparsity-cpu sweeps/a-ppc-cpu

Per sweep: the runs and how many finished, the sum of the runs' own training + evaluation
seconds (done.json), and the sweep's wall time summed over its invocations (sessions.jsonl,
written by every `lengthgen sweep` / `repro`; sweeps made before it existed show "-"), with the
workers x threads it ran on. A sweep resumed after an interruption counts every invocation.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lengthgen.sweeps.run import SweepDir


def run_seconds(sweep: Path) -> tuple[int, int, float]:
    """(runs, finished runs, summed seconds of the finished runs)."""
    runs = [p for p in (sweep / "runs").iterdir() if p.is_dir()] if (sweep / "runs").is_dir() else []
    done = [json.loads((p / "done.json").read_text()) for p in runs if (p / "done.json").is_file()]
    return len(runs), len(done), sum(d.get("seconds", 0.0) for d in done)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("sweeps", nargs="*", help="sweep directories (default: every one under sweeps/)")
    args = p.parse_args()
    paths = [Path(s) for s in args.sweeps] or sorted(q.parent for q in Path("sweeps").glob("*/sweep.yaml"))
    header = f"{'sweep':<28} {'runs':>9} {'run s':>8} {'wall s':>8} {'wall':>9}  parallelism"
    print(header + "\n" + "-" * len(header))
    for path in paths:
        runs, done, seconds = run_seconds(path)
        sessions = SweepDir(path).sessions()
        wall = sum(s["wall_s"] for s in sessions)
        how = ", ".join(sorted({f"{s['workers']}x{s['threads']}" for s in sessions})) or "-"
        wall_text = f"{wall:>8.0f} {wall // 60:>5.0f}m{wall % 60:02.0f}s" if sessions else f"{'-':>8} {'-':>9}"
        print(f"{path.name:<28} {f'{done}/{runs}':>9} {seconds:>8.0f} {wall_text}  {how}")


if __name__ == "__main__":
    main()
