"""Commands that train one run: train (a config) and finetune (a local Hugging Face causal LM).

Under torchrun every process runs the command, data-parallel; rank 0 alone writes the run
directory and prints.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .. import distributed
from ..config import apply_overrides, build_config, load_config, read_config_tree
from ..errors import UserError
from ..evaluate import check_positions_fit
from ..experiment import build_experiment
from ..model.pretrained import load_hf_config, load_tokenizer, resolve_source, token_map_for
from ..model.pretrained_tokens import LENGTHGEN_VOCAB, digit_report
from ..runtime import device_type
from ..store.rundir import RunDir
from ..train import run_training
from ..vocab import Vocab

RUNS_ROOT = Path("runs")


def cmd_train(args) -> None:
    """Train a config into runs/<name>/ and print the final per-length table."""
    _train(load_config(args.config, args.overrides), args)


def cmd_finetune(args) -> None:
    """`lengthgen train` for a local Hugging Face causal LM: CONFIG (default: reverse addition,
    `finetune_defaults`) with model.arch pretrained, model.path MODEL and --init; with
    --check-tokenizer, only report how the model's tokenizer and the tokenization rule compare."""
    overrides = list(args.overrides)
    config = overrides.pop(0) if overrides and "=" not in overrides[0] else None
    cfg = finetune_config(args.model, config, overrides, args.init)
    if args.check_tokenizer:
        lengths = sorted({n for entry in cfg.data.resolved_tasks() for n in entry.lengths}
                         | set(cfg.eval.length_list()))
        print(tokenizer_report(cfg.model.path, lengths))
        return
    _train(cfg, args)


def _train(cfg, args) -> None:
    """Train a validated config as `args` (name, dir, resume, force, device, quiet) say."""
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
        run_training(exp, run, resume=args.resume, quiet=args.quiet)
    if rank0:
        print(f"done in {time.perf_counter() - start:.1f}s; results in {run.path / 'eval.csv'}, "
              f"plot {run.path / 'eval.png'}")


def _prepare_run(run: RunDir, cfg, args) -> None:
    """Refuse to resume with another config; create (or with --force replace) the run directory."""
    if args.resume and run.exists():
        stored = run.read_config()
        if stored.model_dump() != cfg.model_dump():
            raise UserError(f"--resume: the config differs from the one stored in {str(run.path)!r}; "
                            "resume with the same config and overrides")
    run.prepare(force=args.force, resume=args.resume and run.exists())


def finetune_defaults() -> dict:
    """The config `lengthgen finetune MODEL` uses without a CONFIG file: reverse addition trained on
    1-8 digits, evaluated on 1-16, a short fine-tune at a fine-tuning learning rate."""
    return {
        "name": "finetune",
        "data": {"tasks": [{"task": "reverse_add", "lengths": [1, 8]}], "batch_size": 16},
        "positions": {"max_position": 1024},
        "train": {"steps": 300, "lr": 1e-4, "schedule": "cosine", "warmup": 0.1, "log_every": 10},
        "eval": {"lengths": "1:16", "n": 64, "batch_size": 64},
    }


def finetune_config(model_path: str, config_path: str | None, overrides: list[str], init: str | None):
    """The ExperimentConfig of `lengthgen finetune`: CONFIG (or `finetune_defaults`) with the
    overrides, then model.arch pretrained, model.path (resolved to an absolute path, so the run's
    config.yaml names the file used) and model.init (when given)."""
    source = resolve_source(model_path)  # the one-line error comes before anything else
    tree = read_config_tree(config_path) if config_path else finetune_defaults()
    tree = apply_overrides(tree, list(overrides))
    model = tree.setdefault("model", {})
    if not isinstance(model, dict):
        raise UserError("config key 'model' must be a mapping")
    model.update({"arch": "pretrained", "path": str(source.path)})
    if init is not None:
        model["init"] = init
    return build_config(tree)


def tokenizer_report(model_path: str, lengths: list[int]) -> str:
    """`lengthgen finetune MODEL --check-tokenizer`: how the tokenization rule maps lengthgen's
    vocabulary into the model, and whether the model's own tokenizer merges digits at `lengths`."""
    source = resolve_source(model_path)
    tokenizer = load_tokenizer(source)
    # The embedding size a loaded model would have (checked against the model in the tests).
    rows = int(load_hf_config(source).vocab_size)
    token_map = token_map_for(source, Vocab.default(), rows, tokenizer)
    counts = token_map.counts()
    lines = [f"model {source.path}",
             "lengthgen vocabulary -> model ids: " + ", ".join(f"{n} {how}" for how, n in counts.items()),
             f"new tokens added to the embedding: {len(token_map.new_tokens)} ({token_map.base_rows} -> "
             f"{token_map.rows} rows)"]
    if tokenizer is None:
        lines.append(f"no tokenizer: the directory's {LENGTHGEN_VOCAB} maps one to one")
        return "\n".join(lines)
    report = digit_report(tokenizer, token_map, lengths)
    verdict = "MERGES digits" if report["merges_digits"] else "keeps digits one per token"
    lines.append(f"the model's tokenizer {verdict} (random digit strings, tokenizer.encode vs the rule):")
    for row in report["lengths"]:
        lines.append(f"  length {row['length']:>4}: tokenizer {row['tokenizer_tokens']:>4} tokens, rule "
                     f"{row['rule_tokens']:>4}  {'same' if row['same'] else 'DIFFERENT'}")
    if report["merges_digits"]:
        lines.append("the rule maps every digit to its own id, so lengthgen sequences stay digit by digit")
    return "\n".join(lines)


def _run_options(p) -> None:
    """The options of a command that trains one run (train, finetune)."""
    p.add_argument("--name", help="run name (default: the config's name)")
    p.add_argument("--dir", default=str(RUNS_ROOT), help="parent directory of runs")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    p.add_argument("--force", action="store_true", help="replace an existing run directory")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--quiet", action="store_true", help="no progress bar or table")


def add_parsers(sub) -> None:
    """The subcommands train and finetune."""
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
