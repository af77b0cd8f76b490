"""Subcommands that read a trained run: eval (optionally with heads ablated), export, heads, align, context.

Every user error is a UserError, which `cli.main` turns into one line and exit status 2.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from ..analysis import context, tracking
from ..analysis.ablation import EvalSetup, ablator, check_hooked, parse_heads
from ..analysis.alignment import answer_alignment, plot_alignment
from ..analysis.alignment import summary_text as alignment_summary
from ..config import MAX_COUNT, parse_lengths
from ..errors import UserError
from ..evaluate import check_positions_fit, format_table
from ..experiment import build_experiment
from ..model.hf_export import export_llama
from ..store.checkpoint import find_checkpoint, load_weights
from ..store.eval_plot import plot_length_curve
from ..store.fileio import atomic_write_text, check_writable
from ..store.rundir import RunDir
from ..vocab import Vocab


def _load(args, device):
    """The run, its config and its experiment with the checkpoint `args.checkpoint` (newest if None) loaded."""
    run = RunDir(args.run).require()
    cfg = run.read_config()
    exp = build_experiment(cfg, vocab=Vocab.load(run.path / "vocab.json"), device=device)
    step = load_weights(exp.model, find_checkpoint(run.checkpoint_root, args.checkpoint))
    return run, cfg, exp, step


def cmd_eval(args) -> None:
    """Evaluate a run's checkpoint at chosen lengths; append to eval.csv and print the table. A --mode
    other than the run's own goes to eval-<mode>.csv instead, so that eval.csv, which reports and sweeps
    read, keeps one decoding protocol. With --ablate the chosen heads are ablated, and the table is
    printed only (eval.csv holds the model's own scores)."""
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
    own_mode = setup.mode
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
    if setup.mode != own_mode:
        table = f"eval-{setup.mode}.csv"
        run.append_eval(rows, table)
        print(f"decoded {setup.mode}, the run evaluates {own_mode}: written to {table}, not eval.csv")
        print(format_table(rows))
        return
    run.append_eval(rows)
    print(format_table(rows))
    train_max = {v.name: s.lengths[1] for s in specs for v in s.eval_variants()}
    plot_length_curve(rows, train_max, run.path / "eval.png", title=cfg.name)


def cmd_export(args) -> None:
    """Write a run's checkpoint as a Hugging Face LlamaForCausalLM directory."""
    run, _, exp, step = _load(args, "cpu")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{str(out)!r} is not a directory")
    if out.exists() and any(out.iterdir()) and not args.force:
        raise UserError(f"{str(out)!r} is not empty; use --force to write into it")
    check_writable(out)
    export_llama(exp.model, out, vocab=exp.vocab)
    exp.vocab.save(out / "lengthgen_vocab.json")
    print(f"exported step {step} of {run.path} to {out}")


def cmd_heads(args) -> None:
    """Ablation maps and attention differences of two tasks at a run's checkpoints, against the gap
    (lengthgen.analysis.tracking); prints the per-checkpoint table and the correlations."""
    run = RunDir(args.run).require()
    lengths = parse_lengths(args.lengths) if args.lengths else None
    settings = tracking.resolve_settings(run.read_config(), args.tasks, lengths, args.n, args.ablation, args.span)
    steps = tracking.select_checkpoints(run, args.checkpoints)
    print(tracking.summary_text(tracking.analyze_run(run, settings, steps, device=args.device, force=args.force),
                                settings))


def cmd_align(args) -> None:
    """Attention of the answer-predicting tokens on their source input tokens, and accuracy per answer
    position, of a copy, reverse or offset_parity run (lengthgen.analysis.alignment); writes two CSVs
    into the run."""
    if args.n is not None and not 1 <= args.n <= MAX_COUNT:
        raise UserError(f"-n must be in 1..{MAX_COUNT}")
    run, cfg, exp, step = _load(args, args.device)
    specs = {s.task.name: s for s in exp.specs}
    name = args.task or next(iter(specs))
    if name not in specs:
        raise UserError(f"task {name!r} is not in this run; its tasks: {', '.join(specs)}")
    check_hooked(exp.model)
    lengths = parse_lengths(args.lengths) if args.lengths else cfg.eval.length_list()
    setup = replace(EvalSetup.of(exp, args.n), mode="teacher_forced")
    check_positions_fit(exp.model, [specs[name]], lengths, cfg.seed.eval, cfg.positions.eval,
                        cfg.positions.settings(), setup.n)
    mass, positions = answer_alignment(exp.model, specs[name], lengths, setup, step)
    for table, file in ((mass, "alignment.csv"), (positions, "alignment_positions.csv")):
        atomic_write_text(run.path / file, table.to_csv(index=False))
    plot_alignment(mass, run.path / "alignment.png", f"{run.path.name}: {name}, step {step}")
    print(f"{name}, step {step}")
    print(alignment_summary(mass, positions))


def cmd_context(args) -> None:
    """Per-token far-context analysis of a text run (lengthgen.analysis.context): loss with full and
    truncated context, the gain, the sparsity k of each gaining token; prints the summary and bins."""
    run = RunDir(args.run).require()
    settings = context.resolve_settings(run.read_config(), args.eval_length, args.windows, args.threshold,
                                        args.fraction, args.ranking, args.max_tokens, args.checkpoint)
    analysis = context.analyze_run(run, settings, device=args.device, force=args.force, quiet=False)
    print(context.summary_text(analysis, settings))


def add_parsers(sub) -> None:
    """The subcommands eval, export, heads and context."""
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

    p = sub.add_parser("align", help="copy, reverse, mqar or offset_parity runs: attention of the answer-predicting "
                                     "tokens on the input tokens each answer reads, and accuracy per answer position")
    p.add_argument("run", help="run directory")
    p.add_argument("--lengths", help="'10,20,40' or '1:40' (default: the run's evaluation lengths)")
    p.add_argument("--task", help="which of the run's tasks (default: its first)")
    p.add_argument("-n", type=int, help="examples per length (default: the run's eval.n)")
    p.add_argument("--checkpoint", type=int, help="step (default: newest)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.set_defaults(fn=cmd_align)

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
