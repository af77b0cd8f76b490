"""Commands on tasks and their data: tasks (list them), show (examples with position IDs), data (JSON)."""

from __future__ import annotations

import dataclasses
import json
import sys

import yaml

from ..config import MAX_COUNT, MAX_LENGTH, yaml_problem
from ..errors import UserError
from ..model.plugins import ENCODINGS
from ..positions import POLICIES, PolicySettings, apply_policy
from ..tasks import TASKS, example_rng, make_task


def parse_params(items: list[str]) -> dict:
    """`--param name=value` options as a dict, each value read as YAML."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"--param {item!r} must look like name=value")
        key, raw = item.split("=", 1)
        try:
            out[key] = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise UserError(f"--param {item!r}: the value is not valid YAML ({yaml_problem(err)})") from None
    return out


def cmd_tasks(args) -> None:
    """List tasks, their parameters and lengths; encodings and position policies too."""
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
    if not 1 <= args.n <= 10 * MAX_COUNT:
        raise UserError(f"-n must be in 1..{10 * MAX_COUNT}; use several --seed values for more")
    if args.length > MAX_LENGTH:
        raise UserError(f"--length must be at most {MAX_LENGTH}")
    if args.seed < 0:  # numpy's generators take non-negative seeds only
        raise UserError(f"--seed must be >= 0, got {args.seed}")
    task = make_task(args.task, parse_params(args.param))
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


def add_parsers(sub) -> None:
    """The subcommands tasks, show and data."""
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
