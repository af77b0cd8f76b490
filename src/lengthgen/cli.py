"""The command line: lengthgen tasks | show | data | train | finetune | eval | export | heads | context | sweep |
report | repro.

Every user error ends with one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

from .cli_runs import cmd_context, cmd_eval, cmd_export, cmd_heads
from .cli_sweeps import cmd_repro, cmd_report, cmd_sweep, executor_options
from .errors import UserError
from .rundir import RunDir

RUNS_ROOT = Path("runs")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2."""

    def error(self, message):
        raise UserError(f"{self.prog}: {message}")


def _params(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"--param {item!r} must look like name=value")
        key, raw = item.split("=", 1)
        try:
            out[key] = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            from .config import yaml_problem

            raise UserError(f"--param {item!r}: the value is not valid YAML ({yaml_problem(err)})") from None
    return out


def cmd_tasks(args) -> None:
    """List tasks, their parameters and lengths; encodings and position policies too."""
    import dataclasses

    from .model.encodings import ENCODINGS
    from .positions import POLICIES
    from .tasks import TASKS

    for name, cls in sorted(TASKS.items()):
        task = cls()
        hi = cls.max_length if cls.max_length is not None else "inf"
        coupling = "yes" if task.supports_coupling else "no"
        print(f"{name:<14} {cls.description}")
        print(f"{'':<14} lengths {cls.min_length}..{hi}; coupled IDs: {coupling}")
        for field in dataclasses.fields(cls):
            print(f"{'':<14} param {field.name} = {getattr(task, field.name)!r}")
        if cls.eval_overrides:
            print(f"{'':<14} at evaluation: {cls.eval_overrides}")
    print(f"\nencodings: {', '.join(sorted(ENCODINGS))}")
    print(f"position policies: {', '.join(sorted(POLICIES))}")


def _sample(args):
    from .config import MAX_COUNT, MAX_LENGTH
    from .positions import PolicySettings, apply_policy
    from .tasks import example_rng, make_task

    if not 1 <= args.n <= 10 * MAX_COUNT:
        raise UserError(f"-n must be in 1..{10 * MAX_COUNT}; use several --seed values for more")
    if args.length > MAX_LENGTH:
        raise UserError(f"--length must be at most {MAX_LENGTH}")
    if args.seed < 0:  # numpy's generators take non-negative seeds only
        raise UserError(f"--seed must be >= 0, got {args.seed}")
    task = make_task(args.task, _params(args.param))
    if args.split == "eval":
        task = task.with_params(**task.eval_overrides)
    task.check_length(args.length)  # before the generator, which takes the length as entropy
    rng = example_rng(args.seed, args.split, task.name, args.length)
    examples = task.sample(rng, args.n, args.length)
    return apply_policy(examples, args.policy, rng, PolicySettings(args.max_position))


def cmd_show(args) -> None:
    """Print examples with every token above its position ID."""
    for ex in _sample(args):
        print(f"{ex.task}  length {ex.length}  {ex.meta or ''}".rstrip())
        print(f"  prompt  {''.join(ex.prompt)}")
        print(f"  answer  {''.join(ex.answer)}")
        tokens = ["<bos>", *ex.prompt, *ex.answer, "<eos>"]
        ids = [str(i) for i in ex.positions.as_array()]
        widths = [max(len(t), len(i)) for t, i in zip(tokens, ids)]
        print("  token   " + " ".join(t.rjust(w) for t, w in zip(tokens, widths)))
        print("  id      " + " ".join(i.rjust(w) for i, w in zip(ids, widths)))
        print()


def cmd_data(args) -> None:
    """Write examples as JSON lines (or one JSON array)."""
    records = [ex.to_json() for ex in _sample(args)]
    try:
        out = open(args.out, "w") if args.out else sys.stdout
    except OSError as err:
        raise UserError(f"cannot write {args.out!r}: {err.strerror}") from None
    try:
        if args.format == "jsonl":
            for record in records:
                out.write(json.dumps(record) + "\n")
        else:
            json.dump(records, out, indent=1)
            out.write("\n")
    finally:
        if args.out:
            out.close()


def cmd_train(args) -> None:
    """Train a config into runs/<name>/ and print the final per-length table (under torchrun every
    process runs this, data-parallel, and rank 0 alone writes the run directory and prints)."""
    from .config import load_config

    _train(load_config(args.config, args.overrides), args)


def cmd_finetune(args) -> None:
    """`lengthgen train` for a local Hugging Face causal LM: CONFIG (default: reverse addition,
    `pretrained.finetune_defaults`) with model.arch pretrained, model.path MODEL and --init; with
    --check-tokenizer, only report how the model's tokenizer and the tokenization rule compare."""
    from .pretrained import finetune_config, tokenizer_report

    overrides = list(args.overrides)
    config = overrides.pop(0) if overrides and "=" not in overrides[0] else None
    cfg = finetune_config(args.model, config, overrides, args.init)
    if args.check_tokenizer:
        lengths = sorted({n for entry in cfg.data.resolved_tasks() for n in entry.lengths} | set(cfg.eval.length_list()))
        print(tokenizer_report(cfg.model.path, lengths))
        return
    _train(cfg, args)


def _train(cfg, args) -> None:
    """Train a validated config as `args` (name, dir, resume, force, device, quiet) say."""
    from . import distributed
    from .evaluate import check_positions_fit
    from .experiment import build_experiment
    from .plots import plot_length_curve
    from .runtime import device_type
    from .train import run_training

    if args.name:
        cfg = cfg.model_copy(update={"name": args.name})
    run = RunDir(Path(args.dir) / cfg.name)
    device = args.device or cfg.train.device
    with distributed.process_group(device_type(device), cfg.train.collective_timeout):
        rank0 = distributed.is_main()
        distributed.shard_range(cfg.data.shards)  # the process count fits the data shards
        exp = build_experiment(cfg, device=device)  # validates tasks before anything is written
        check_positions_fit(exp.model, exp.specs, cfg.eval.length_list(), cfg.seed.eval, cfg.positions.eval,
                            cfg.positions.settings(), cfg.eval.n)
        distributed.on_main(lambda: _prepare_run(run, cfg, args))
        if rank0:
            print(f"run {run.path}  device {exp.device}  precision {exp.precision}  "
                  f"parameters {exp.model.num_parameters():,}  processes {distributed.world_size()}", file=sys.stderr)
        start = time.perf_counter()
        rows = run_training(exp, run, resume=args.resume, quiet=args.quiet)
    if rank0:
        train_max = {v.name: s.lengths[1] for s in exp.specs for v in s.eval_variants()}
        plot = plot_length_curve(rows, train_max, run.path / "eval.png", title=cfg.name)
        print(f"done in {time.perf_counter() - start:.1f}s; results in {run.path / 'eval.csv'}, plot {plot}")


def _prepare_run(run: RunDir, cfg, args) -> None:
    """Refuse to resume with another config; create (or with --force replace) the run directory."""
    if args.resume and run.exists():
        stored = run.read_config()
        if stored.model_dump() != cfg.model_dump():
            raise UserError(f"--resume: the config differs from the one stored in {str(run.path)!r}; "
                            "resume with the same config and overrides")
    run.prepare(force=args.force, resume=args.resume and run.exists())


def _run_options(p) -> None:
    """The options of a command that trains one run (train, finetune)."""
    p.add_argument("--name", help="run name (default: the config's name)")
    p.add_argument("--dir", default=str(RUNS_ROOT), help="parent directory of runs")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    p.add_argument("--force", action="store_true", help="replace an existing run directory")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--quiet", action="store_true", help="no progress bar or table")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = _Parser(prog="lengthgen", description="Length generalization bench for transformers.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("tasks", help="list tasks, encodings and position policies").set_defaults(fn=cmd_tasks)

    for name, fn, help_text in (("show", cmd_show, "print examples with position IDs"),
                                ("data", cmd_data, "write examples as JSON")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("task")
        p.add_argument("--length", type=int, required=True)
        p.add_argument("-n", type=int, default=3 if name == "show" else 100)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--split", choices=["train", "eval", "data"], default="data")
        p.add_argument("--policy", default="consecutive", help="position policy")
        p.add_argument("--max-position", type=int, default=256)
        p.add_argument("--param", action="append", metavar="NAME=VALUE", help="task parameter")
        if name == "data":
            p.add_argument("--format", choices=["jsonl", "json"], default="jsonl")
            p.add_argument("--out", help="file to write (default: stdout)")
        p.set_defaults(fn=fn)

    p = sub.add_parser("train", help="train a config into runs/<name>/")
    p.add_argument("config", help="YAML config file")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. model.encoding=rope")
    _run_options(p)
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("finetune", help="fine-tune a local Hugging Face causal LM (directory or .gguf) like train")
    p.add_argument("model", help="model directory (config.json + safetensors), .gguf file, or alias (smollm2)")
    p.add_argument("overrides", nargs="*", metavar="[CONFIG] OVERRIDES",
                   help="a YAML config (default: reverse addition 1-8, evaluated 1-16), then dotted overrides")
    p.add_argument("--init", choices=["pretrained", "random"], help="model weights, or a random init of the same "
                                                                   "architecture (default: the config's, pretrained)")
    p.add_argument("--check-tokenizer", action="store_true",
                   help="report the token mapping and whether the model's tokenizer merges digits; do not train")
    _run_options(p)
    p.set_defaults(fn=cmd_finetune)

    p = sub.add_parser("eval", help="evaluate a run at chosen lengths")
    p.add_argument("run", help="run directory")
    p.add_argument("--lengths", help="'1:40', '1:40:5' or '8,16,32'")
    p.add_argument("--tasks", nargs="+")
    p.add_argument("-n", type=int, help="examples per length")
    p.add_argument("--mode", choices=["teacher_forced", "greedy"])
    p.add_argument("--checkpoint", type=int, help="step (default: newest)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--ablate", metavar="L.H,...", help="ablate these heads (0-based layer.head, e.g. 1.3,0.1); "
                                                        "the table is printed, not written to eval.csv")
    p.add_argument("--ablation", help="with --ablate: mean (default) or zero")
    p.set_defaults(fn=cmd_eval)

    p = sub.add_parser("export", help="export a rope/nope run to transformers' LlamaForCausalLM")
    p.add_argument("run", help="run directory")
    p.add_argument("out", help="output directory")
    p.add_argument("--checkpoint", type=int, help="step (default: newest)")
    p.add_argument("--force", action="store_true", help="write into a non-empty directory")
    p.set_defaults(fn=cmd_export)

    p = sub.add_parser("heads", help="head ablation maps and attention differences of two tasks at every "
                                     "checkpoint, against the generalization gap")
    p.add_argument("run", help="run directory")
    p.add_argument("--tasks", nargs=2, metavar=("MAIN", "AUX"), help="default: the run's first two tasks")
    p.add_argument("--lengths", help="'1:16', '1:16:2' or '4,8,16' (default: evaluation lengths up to L_aux)")
    p.add_argument("--checkpoints", nargs="+", default=["all"], metavar="all|STEP", help="default: all")
    p.add_argument("-n", type=int, default=64, help="examples per (task, length), also the mean's reference batch")
    p.add_argument("--ablation", default="mean", help="mean or zero")
    p.add_argument("--span", default="sequence", help="attention positions compared: sequence or prompt")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--force", action="store_true", help="recompute even when stored results match")
    p.set_defaults(fn=cmd_heads)

    p = sub.add_parser("context", help="text runs: per-token loss gain from far context and how sparse its "
                                       "dependency is, beyond the training length")
    p.add_argument("run", help="run directory (of the text task)")
    p.add_argument("--eval-length", type=int, help="window length analysed (default: 4 x the training length)")
    p.add_argument("--windows", type=int, default=8, help="validation windows analysed")
    p.add_argument("--threshold", type=float, default=0.1, help="gain (nats) above which a token's k is estimated")
    p.add_argument("--fraction", type=float, default=0.8, help="share of the gain the kept far tokens must recover")
    p.add_argument("--ranking", default="occlusion", help="far-token ranking: occlusion or attention")
    p.add_argument("--max-tokens", type=int, default=0, help="estimate k for at most this many tokens per window "
                                                             "(the largest gains; 0: all)")
    p.add_argument("--checkpoint", type=int, help="step (default: newest)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--force", action="store_true", help="recompute even when stored results match")
    p.set_defaults(fn=cmd_context)

    p = sub.add_parser("sweep", help="run a sweep spec (YAML or Python) and report it")
    p.add_argument("spec")
    p.add_argument("--gap", action="append", metavar="MAIN:AUX", help="report the generalization gap")
    executor_options(p)
    p.set_defaults(fn=cmd_sweep)

    p = sub.add_parser("report", help="aggregate a sweep and write report.md")
    p.add_argument("sweep", help="sweep directory")
    p.add_argument("--gap", action="append", metavar="MAIN:AUX", help="report the generalization gap")
    p.set_defaults(fn=cmd_report)

    p = sub.add_parser("repro", help="reproduce a paper claim (see --list)")
    p.add_argument("name", nargs="?")
    p.add_argument("--list", action="store_true")
    p.add_argument("--summary", action="store_true",
                   help="every preset's verdict, runs, seeds and wall time at --scale from the sweeps in --dir; "
                        "writes <dir>/repro-<scale>.md")
    p.add_argument("--scale", default="cpu", help="cpu or paper")
    p.add_argument("--seeds", help="comma-separated seeds (default: the preset's)")
    executor_options(p)
    p.set_defaults(fn=cmd_repro)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's preemption, `kill`, `timeout`): stop as Ctrl-C does, checkpoints kept."""


def _terminate(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: a second signal must not cut the cleanup short
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `lengthgen` console script."""
    # Without a handler SIGTERM kills at once: a sweep's worker processes would train on unowned
    # and the sweep's session record would be lost. Only the main thread may set handlers.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        # Overrides may come after options (`train cfg.yaml --quiet a.b=1`): argparse leaves them over.
        if extra and hasattr(args, "overrides") and not any(x.startswith("-") for x in extra):
            args.overrides = [*args.overrides, *extra]
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.fn(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the environment (a full disk, a permission), not a bug: one line too
        from .fileio import is_disk_full

        why = "disk full" if is_disk_full(err) else (err.strerror or str(err))
        print(f"error: {why}" + (f": {err.filename}" if err.filename else ""), file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        how = "stopped by SIGTERM" if isinstance(stop, Terminated) else "interrupted"
        print(f"{how}; run the same command again to resume from the last checkpoints", file=sys.stderr)
        return 143 if isinstance(stop, Terminated) else 130
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
