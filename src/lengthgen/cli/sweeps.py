"""Subcommands that run or report sweeps: sweep, report, repro.

Every user error is a UserError, which `cli.main` turns into one line and exit status 2.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..errors import UserError
from ..presets import PRESETS, get_preset, preset_of
from ..presets.suite import run_suite
from ..reports.reach import check_reach_tasks
from ..reports.replication import write_replication_report
from ..reports.report import write_report
from ..reports.summary import write_repro_summary
from ..store.fileio import atomic_write_text
from ..sweeps.run import SweepDir, run_sweep
from ..sweeps.spec import expand, load_spec


def _parse_gaps(items: list[str] | None) -> list[tuple[str, str]]:
    out = []
    for item in items or []:
        if item.count(":") != 1:
            raise UserError(f"--gap {item!r} must look like MAIN:AUX")
        main_task, aux = item.split(":")
        out.append((main_task, aux))
    return out


def _sweep_and_report(spec, path: Path, args, reuse_siblings: bool = False) -> None:
    start = time.perf_counter()
    missing = [d for d in args.reuse if not Path(d).is_dir()]
    if missing:
        raise UserError(f"--reuse {missing[0]!r} is not a directory")
    reuse = [] if args.no_reuse else [*args.reuse, *([path.parent] if reuse_siblings else [])]
    results = run_sweep(spec, path, executor=args.executor, workers=args.workers, threads=args.threads,
                        address=args.address, force=args.force, reuse=reuse)
    report = write_report(path, _parse_gaps(getattr(args, "gap", None)), preset_of(path),
                          getattr(args, "reach", None) or [])
    failed = [r for r in results if r.status != "done"]
    print(f"{len(results)} runs executed ({len(failed)} failed) in {time.perf_counter() - start:.0f}s; "
          f"report {report}")
    verdict = next((line for line in report.read_text().splitlines() if line.startswith("**Verdict")), None)
    if verdict:
        print(verdict.strip("*"))


def cmd_sweep(args) -> None:
    """Run a sweep spec (skipping finished runs) and write its report."""
    spec = load_spec(args.spec)
    check_reach_tasks(spec, args.reach or [])  # a typo is an error now, not after hours of training
    _sweep_and_report(spec, Path(args.dir) / spec.name, args)


def cmd_report(args) -> None:
    """Aggregate a sweep directory and write report.md, tables and plots."""
    sweep = SweepDir(args.sweep)
    if not sweep.path.is_dir():
        raise UserError(f"sweep directory {str(sweep.path)!r} does not exist")
    check_reach_tasks(sweep.read_spec(), args.reach or [])
    print(write_report(sweep.path, _parse_gaps(args.gap), preset_of(sweep.path), args.reach or []))


def _print_summary(path: Path, table) -> None:
    for row in table.itertuples():
        print(f"{row.preset:<20} {row.verdict}" + (f"  ({row.runs} runs)" if row.runs else ""))
    print(f"summary {path}")


def _seeds(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise UserError(f"--seeds {text!r} must be comma-separated integers") from None
    if min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {text!r} must be distinct integers >= 0")
    return seeds


def cmd_repro(args) -> None:
    """Run a paper-claim preset at a scale and report its verdict (or every preset, or the summary)."""
    if args.summary or args.all:
        flag = "--summary" if args.summary else "--all"
        if args.name:
            raise UserError(f"{flag} covers every preset; give no preset name")
        if args.summary and args.all:
            raise UserError("give --all (run every preset) or --summary (report what is there), not both")
    if args.summary:
        _print_summary(*write_repro_summary(args.dir, args.scale))
        return
    if args.all:
        if args.reuse or args.no_reuse:
            raise UserError("--all trains each shared run once and copies finished ones from --dir; "
                            "--reuse and --no-reuse do not apply")
        if args.set:
            raise UserError("--set applies to one preset's runs (keys differ between presets); give a preset name")
        _print_summary(*run_suite(args.scale, args.dir, executor=args.executor, workers=args.workers,
                                  threads=args.threads, address=args.address, force=args.force,
                                  seeds=_seeds(args.seeds)))
        return
    if args.replication and not args.name:
        raise UserError("--replication needs a preset name: lengthgen repro NAME --replication")
    if args.list or not args.name:
        for name, preset in sorted(PRESETS.items()):
            print(f"{name:<20} [{preset.claim_id}] {preset.claim}")
        return
    preset = get_preset(args.name)
    if args.replication:
        if args.seeds or args.set:
            raise UserError("--replication reads every seed set already in --dir; give no --seeds or --set")
        print(write_replication_report(args.dir, preset, args.scale))
        return
    spec = preset.spec(args.scale, _seeds(args.seeds), args.set)
    path = Path(args.dir) / spec.name
    expand(spec)  # every run's config is valid (seeds included) before the directory is made

    sweep = SweepDir(path)
    with sweep.lock():  # run_sweep takes it again (re-entrant); preparing must be covered too
        sweep.prepare(spec, args.force)
        atomic_write_text(path / "preset.json", json.dumps({"name": preset.name, "scale": args.scale}))
        if preset.prepare is not None:  # e.g. b-pretrained's pretraining run; reused when already done
            preset.prepare(args.scale, sweep.path)
        args.force = False  # already applied above
        # Presets share runs (b-rope's RoPE points are b-transfer-arith's), so search the sweeps beside this one.
        _sweep_and_report(spec, path, args, reuse_siblings=True)
    if not args.set and spec.name != f"{preset.name}-{args.scale}" \
            and (Path(args.dir) / f"{preset.name}-{args.scale}").is_dir():
        # A replication beside its original: say at once whether the verdict survived the fresh seeds.
        try:
            print(write_replication_report(args.dir, preset, args.scale))
        except UserError as error:  # the sweep itself finished; only the comparison is not possible
            print(f"no replication report: {error}")


def executor_options(p) -> None:
    """The options of a command that runs a sweep (sweep, repro)."""
    p.add_argument("--dir", default="sweeps", help="parent directory of sweeps")
    p.add_argument("--executor", default="local", help="local or ray")
    p.add_argument("--address", help="ray: cluster address, or 'local' to start one here")
    p.add_argument("--workers", type=int, default=0, help="parallel runs (default: cores / threads)")
    p.add_argument("--threads", type=int, default=1, help="threads per run")
    p.add_argument("--force", action="store_true", help="replace a sweep directory holding another spec")
    p.add_argument("--reuse", action="append", default=[], metavar="DIR",
                   help="copy finished runs with the same config from this sweep directory (or folder of sweeps) "
                        "instead of training them again; repeatable (repro also searches the sweeps beside its own)")
    p.add_argument("--no-reuse", action="store_true", help="train every run here, copying nothing")


def add_parsers(sub) -> None:
    """The subcommands sweep, report and repro."""
    p = sub.add_parser("sweep", help="run a sweep spec (YAML or Python) and report it")
    p.add_argument("spec")
    p.add_argument("--gap", action="append", metavar="MAIN:AUX", help="report the generalization gap")
    p.add_argument("--reach", action="append", metavar="MAIN",
                   help="report how far MAIN reaches past its training lengths (band score, furthest length) "
                        "against the sweep's varying grid key")
    executor_options(p)
    p.set_defaults(fn=cmd_sweep)

    p = sub.add_parser("report", help="aggregate a sweep and write report.md")
    p.add_argument("sweep", help="sweep directory")
    p.add_argument("--gap", action="append", metavar="MAIN:AUX", help="report the generalization gap")
    p.add_argument("--reach", action="append", metavar="MAIN",
                   help="report how far MAIN reaches past its training lengths (band score, furthest length) "
                        "against the sweep's varying grid key")
    p.set_defaults(fn=cmd_report)

    p = sub.add_parser("repro", help="reproduce a paper claim (see --list)")
    p.add_argument("name", nargs="?")
    p.add_argument("--list", action="store_true")
    p.add_argument("--all", action="store_true",
                   help="every preset at --scale as one resumable queue: shared runs trained once, cheapest verdicts "
                        "first, one progress bar; ends with <dir>/repro-<scale>.md")
    p.add_argument("--summary", action="store_true",
                   help="every preset's verdict, runs, seeds and wall time at --scale from the sweeps in --dir; "
                        "writes <dir>/repro-<scale>.md")
    p.add_argument("--scale", default="cpu", help="cpu or paper")
    p.add_argument("--seeds", help="comma-separated seeds (default: the preset's); any other seed set makes a "
                                   "replication, a sweep of its own beside the original")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a dotted override applied to every run of the preset (it wins over the preset's grid "
                        "points), e.g. --set data.tasks.0.lengths=[1,12] --set eval.lengths=1:48; repeatable. The "
                        "runs go to a sweep of their own, <name>-<scale>-set-<hash>, judged by the preset's check")
    p.add_argument("--replication", action="store_true",
                   help="write <dir>/<name>-<scale>-replication.md from the sweeps on disk: every seed set's verdict "
                        "(original and `--seeds` replications), the rule over all seeds, every seed's score plotted")
    executor_options(p)
    p.set_defaults(fn=cmd_repro)
