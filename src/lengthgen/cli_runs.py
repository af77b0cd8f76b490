"""Subcommands that read a trained run: eval (optionally with heads ablated), export, heads, context.

Every user error is a UserError, which `cli.main` turns into one line and exit status 2.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .errors import UserError
from .rundir import RunDir


def _load(args, device):
    """The run, its config and its experiment with the checkpoint `args.checkpoint` (newest if None) loaded."""
    from .checkpoint import find_checkpoint, load_weights
    from .experiment import build_experiment
    from .vocab import Vocab

    run = RunDir(args.run).require()
    cfg = run.read_config()
    exp = build_experiment(cfg, vocab=Vocab.load(run.path / "vocab.json"), device=device)
    step = load_weights(exp.model, find_checkpoint(run.checkpoint_root, args.checkpoint))
    return run, cfg, exp, step


def cmd_eval(args) -> None:
    """Evaluate a run's checkpoint at chosen lengths; append to eval.csv and print the table. With
    --ablate the chosen heads are ablated, and the table is printed only (eval.csv holds the model's
    own scores)."""
    from .analysis.ablation import EvalSetup, ablator, check_hooked, parse_heads
    from .config import MAX_COUNT, parse_lengths
    from .evaluate import check_positions_fit, format_table
    from .plots import plot_length_curve
    from tqdm import tqdm

    if args.ablation and not args.ablate:
        raise UserError("--ablation needs --ablate LAYER.HEAD,...")
    run, cfg, exp, step = _load(args, args.device)
    specs = exp.specs
    if args.tasks:
        known = {s.task.name: s for s in specs}
        missing = [t for t in args.tasks if t not in known]
        if missing:
            raise UserError(f"task {missing[0]!r} is not in this run; its tasks: {', '.join(known)}")
        specs = [known[t] for t in args.tasks]
    lengths = parse_lengths(args.lengths) if args.lengths else cfg.eval.length_list()
    if args.n is not None and not 1 <= args.n <= MAX_COUNT:
        raise UserError(f"-n must be in 1..{MAX_COUNT}")
    setup = EvalSetup.of(exp, args.n)
    if args.mode:
        setup = replace(setup, mode=args.mode)
    adapt, heads = None, []
    if args.ablate:
        heads = parse_heads(args.ablate, *check_hooked(exp.model))
        adapt = ablator(args.ablation or "mean", heads, setup)
    check_positions_fit(exp.model, specs, lengths, cfg.seed.eval, cfg.positions.eval, cfg.positions.settings(),
                        setup.n)
    with tqdm(desc=f"eval {cfg.name}", unit="batch", dynamic_ncols=True, leave=False) as bar:
        def advance(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        rows = setup.evaluate(exp.model, specs, lengths, step, adapt, advance)
    if not rows:
        raise UserError(f"none of the tasks {[s.task.name for s in specs]} can make lengths {lengths}")
    if heads:
        listed = ", ".join(f"{layer}.{head}" for layer, head in heads)
        print(f"heads {listed} ablated ({args.ablation or 'mean'}); not written to eval.csv")
        print(format_table(rows))
        return
    run.append_eval(rows)
    print(format_table(rows))
    train_max = {v.name: s.lengths[1] for s in specs for v in s.eval_variants()}
    plot_length_curve(rows, train_max, run.path / "eval.png", title=cfg.name)


def cmd_export(args) -> None:
    """Write a run's checkpoint as a Hugging Face LlamaForCausalLM directory."""
    from .fileio import check_writable
    from .hf import export_llama

    run, _, exp, step = _load(args, "cpu")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{str(out)!r} is not a directory")
    if out.exists() and any(out.iterdir()) and not args.force:
        raise UserError(f"{str(out)!r} is not empty; use --force to write into it")
    check_writable(out)
    export_llama(exp.model, out)
    exp.vocab.save(out / "lengthgen_vocab.json")
    print(f"exported step {step} of {run.path} to {out}")


def cmd_heads(args) -> None:
    """Ablation maps and attention differences of two tasks at a run's checkpoints, against the gap
    (lengthgen.analysis.tracking); prints the per-checkpoint table and the correlations."""
    from .analysis.tracking import analyze_run, resolve_settings, select_checkpoints, summary_text
    from .config import parse_lengths

    run = RunDir(args.run).require()
    lengths = parse_lengths(args.lengths) if args.lengths else None
    settings = resolve_settings(run.read_config(), args.tasks, lengths, args.n, args.ablation, args.span)
    steps = select_checkpoints(run, args.checkpoints)
    print(summary_text(analyze_run(run, settings, steps, device=args.device, force=args.force), settings))


def cmd_context(args) -> None:
    """Per-token far-context analysis of a text run (lengthgen.analysis.context): loss with full and
    truncated context, the gain, the sparsity k of each gaining token; prints the summary and bins."""
    from .analysis.context import analyze_run, resolve_settings, summary_text

    run = RunDir(args.run).require()
    settings = resolve_settings(run.read_config(), args.eval_length, args.windows, args.threshold, args.fraction,
                                args.ranking, args.max_tokens, args.checkpoint)
    print(summary_text(analyze_run(run, settings, device=args.device, force=args.force, quiet=False), settings))
