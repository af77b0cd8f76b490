"""Bad input never crashes: property-based tests (hypothesis) over task names, parameters, lengths,
config overrides, sweep specs and command-line arguments. Each input either works or ends with one
line on stderr and exit status 2 (a UserError in the library). Generators are also fuzzed for
label correctness against the independent references of the task tests.

max_examples is kept small so the file takes seconds; hypothesis picks new inputs every run.
"""

import contextlib
import dataclasses
import io
import json
import string
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lengthgen.cli.main import main
from lengthgen.config import load_config
from lengthgen.errors import UserError
from lengthgen.evaluate import check_positions_fit
from lengthgen.experiment import build_experiment
from lengthgen.model.plugins import ARCHITECTURES
from lengthgen.model.plugins import ENCODINGS as ENCODING_REGISTRY
from lengthgen.positions import POLICIES as POLICY_REGISTRY
from lengthgen.schedules import SCHEDULES
from lengthgen.store.rundir import RunDir
from lengthgen.sweeps.spec import expand, parse_spec
from lengthgen.tasks import TASKS, make_task
from lengthgen.tasks.groups import GROUPS
from lengthgen.train import run_training

from helpers import tiny_config
from references import (
    REFERENCES,
    bfs_path,
    node_id,
    parse_mqar,
    parse_prompt,
    ref_marked_sum,
    ref_mult_cot,
    ref_offset_parity,
    reference_dfs,
)

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Every registered plug-in is fuzzed: a new policy, encoding, schedule or group joins with no edit here.
POLICIES = sorted(POLICY_REGISTRY)
ENCODINGS = sorted(ENCODING_REGISTRY)
# `pretrained` needs a model on disk; its own tests (test_pretrained.py) fuzz nothing but build it.
ARCHS = sorted(a for a in ARCHITECTURES if a != "pretrained")

# Values of every type a YAML override or --param could produce, and some that break the syntax.
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 40), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5), st.just(99999999999999999999),
    st.sampled_from(["mixed", "equal", "local", "nonlocal", "random", "sorted", "aa", "=", "|", "ß", "1:8", "5:1"]))
values = st.one_of(scalars, st.lists(st.integers(-3, 12), max_size=4))


def yaml_text(value) -> str:
    """A value as override text (the way a user would type it)."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


@st.composite
def task_and_params(draw):
    """A task name (registered or not) and parameters (real ones with any values, or unknown)."""
    name = draw(st.one_of(st.sampled_from(sorted(TASKS)), st.text(max_size=5)))
    fields = [f.name for f in dataclasses.fields(TASKS[name])] if name in TASKS else []
    keys = draw(st.lists(st.sampled_from(fields + ["bogus"]), max_size=3, unique=True))
    return name, {key: draw(values) for key in keys}


def run_main(argv: list[str]) -> tuple[int, str, str]:
    """The command line in this process; any exception but a clean exit escapes to the test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def assert_clean(code: int, err: str, argv) -> None:
    """Exit 0, or exit 2 with one `error:` line (train's "run ..." and resume warnings aside)."""
    assert code in (0, 2), (argv, code, err)
    lines = [line for line in err.strip().splitlines() if not line.startswith(("run ", "warning: "))]
    assert "Traceback" not in err, (argv, err)
    if code == 2:
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err)


# --- tasks: make_task(...).sample and `lengthgen show` / `lengthgen data` ---------------------

@FAST
@given(task_and_params(), st.integers(-3, 45), st.integers(-2, 3), st.integers(0, 2**64),
       st.sampled_from(["train", "eval", "data"]))
def test_make_task_and_sample_work_or_raise_a_user_error(task, length, n, seed, split):
    name, params = task
    try:
        made = make_task(name, params)
        if split == "eval":
            made = made.with_params(**made.eval_overrides)
        examples = made.sample(np.random.default_rng(seed), n, length)
    except UserError as err:
        assert "\n" not in str(err)
        return
    assert len(examples) == n
    for ex in examples:
        assert ex.length == length and ex.task == name
        assert len(ex.positions.as_array()) == ex.seq_len


@FAST
@given(task=task_and_params(), length=st.one_of(st.integers(-3, 45), st.sampled_from(["x", "", "1e3", "200000"])),
       n=st.one_of(st.integers(-1, 3), st.just(99999999999999999999)),
       seed=st.one_of(st.integers(-2**70, 2**70), st.just("x")), split=st.sampled_from(["train", "eval", "data", "xx"]),
       policy=st.sampled_from(POLICIES + ["zigzag"]), max_position=st.integers(-3, 300),
       command=st.sampled_from(["show", "data"]), fmt=st.sampled_from(["json", "jsonl", "csv"]))
def test_show_and_data_work_or_fail_in_one_line(task, length, n, seed, split, policy, max_position, command, fmt):
    name, params = task
    argv = [command, name, "--length", length, "-n", n, "--seed", seed, "--split", split, "--policy", policy,
            "--max-position", max_position]
    for key, value in params.items():
        argv += ["--param", f"{key}={yaml_text(value)}"]
    if command == "data":
        argv += ["--format", fmt]
    code, out, err = run_main(argv)
    assert_clean(code, err, argv)
    if code == 0 and command == "data":
        records = [json.loads(line) for line in out.splitlines()] if fmt == "jsonl" else json.loads(out)
        assert len(records) == n


# --- configs and sweep specs ------------------------------------------------------------------

CONFIG_KEYS = [
    "name", "data.tasks.0.task", "data.tasks.0.lengths", "data.tasks.0.weight", "data.tasks.0.params",
    "data.tasks.0.eval_params", "data.tasks.0.eval_grid", "data.tasks.1", "data.tasks", "data.group", "data.group_max",
    "data.aux", "data.markers", "data.marker_repeat", "data.batch_size", "positions.train", "positions.eval",
    "positions.max_position", "positions.pose_chunks", "model.layers", "model.heads", "model.d_model", "model.d_ff",
    "model.encoding", "model.arch", "model.position_head", "model.tie_embeddings", "model.attention", "model.window",
    "model.tuple_size", "model.hidden", "model.rope_theta", "model.fire_width", "model.norm", "model.norm_eps",
    "model.init_std", "train.steps", "train.lr", "train.schedule", "train.warmup", "train.decay", "train.betas",
    "train.weight_decay", "train.grad_clip", "train.precision", "train.threads", "train.device", "train.log_every",
    "train.keep_checkpoints", "eval.lengths", "eval.n", "eval.batch_size", "eval.mode", "seed.model", "seed.data",
    "seed.eval", "bogus", "model", "data.tasks.5.task", "data.tasks.x", "train.steps.x", "", "."]
CONFIG_WORDS = sorted(TASKS) + ENCODINGS + POLICIES + [
    "greedy", "teacher_forced", "cosine", "wsd", "bf16", "cpu", "cuda", "1:8", "0:3", "1:x", "1:10000000000",
    "arith-carry", "maze-dfs", "sparse_attention", "transformer", "[", "{a: 1}", "`", "\x91", '"']


@pytest.fixture(scope="module")
def base_config(tmp_path_factory) -> Path:
    tree = tiny_config()
    tree["model"].update(layers=1, d_model=16, d_ff=32)
    path = tmp_path_factory.mktemp("fuzz") / "base.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


@FAST
@given(st.lists(st.tuples(st.sampled_from(CONFIG_KEYS), st.one_of(values, st.sampled_from(CONFIG_WORDS))),
                min_size=1, max_size=3), st.booleans())
def test_config_overrides_build_or_fail_in_one_line(base_config, items, raw):
    """What `lengthgen train` does before its first step: load, override, build, check positions."""
    overrides = [f"{key}={value if raw and isinstance(value, str) else yaml_text(value)}" for key, value in items]
    try:
        cfg = load_config(base_config, overrides)
        if cfg.model.d_model * cfg.model.layers > 4096:  # valid, but too big to build in a test
            return
        exp = build_experiment(cfg, device="cpu")
        check_positions_fit(exp.model, exp.specs, cfg.eval.length_list(), cfg.seed.eval, cfg.positions.eval,
                            cfg.positions.settings(), min(cfg.eval.n, 64))
    except UserError as err:
        assert "\n" not in str(err), overrides


TRAIN_CHOICES = {
    "data.tasks.0.task": st.sampled_from(sorted(TASKS)),
    "data.tasks.0.lengths": st.lists(st.integers(0, 10), min_size=2, max_size=2),
    "data.markers": st.booleans(), "data.marker_repeat": st.integers(0, 3),
    "data.group": st.sampled_from(sorted(GROUPS)),
    "positions.train": st.sampled_from(POLICIES), "positions.eval": st.sampled_from(POLICIES),
    "positions.max_position": st.integers(1, 80), "positions.pose_chunks": st.integers(0, 4),
    "model.encoding": st.sampled_from(ENCODINGS), "model.arch": st.sampled_from(ARCHS),
    "model.position_head": st.booleans(), "model.tie_embeddings": st.booleans(),
    "model.window": st.integers(0, 6), "model.tuple_size": st.integers(0, 3), "model.hidden": st.integers(0, 8),
    "train.schedule": st.sampled_from(sorted(SCHEDULES)), "train.warmup": st.floats(-1, 5),
    "train.betas": st.lists(st.floats(-0.5, 1.5), min_size=2, max_size=2), "train.grad_clip": st.floats(-1, 2),
    "train.eval_every": st.integers(0, 3), "train.checkpoint_every": st.integers(0, 3),
    "train.keep_checkpoints": st.integers(0, 3), "train.precision": st.sampled_from(["float32", "bf16"]),
    "eval.mode": st.sampled_from(["teacher_forced", "greedy"]),
    "eval.lengths": st.sampled_from(["1:3", "2", "3:1", "20"]),
    "eval.n": st.integers(0, 5),
}


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(sorted(TRAIN_CHOICES)), min_size=1, max_size=4, unique=True).flatmap(
    lambda keys: st.tuples(*[st.tuples(st.just(k), TRAIN_CHOICES[k]) for k in keys])))
def test_valid_configs_train_and_invalid_ones_fail_in_one_line(tmp_path_factory, items):
    """Three steps of training and an evaluation, for whatever the overrides make."""
    tree = tiny_config()
    tree["model"].update(layers=1, d_model=16, d_ff=32, heads=2)
    tree["train"].update(steps=3, log_every=1, threads=1)
    tree["eval"].update(n=4, lengths="1:3", batch_size=4)
    tree["data"]["batch_size"] = 4
    root = tmp_path_factory.mktemp("train")
    (root / "base.yaml").write_text(yaml.safe_dump(tree))
    try:
        cfg = load_config(root / "base.yaml", [f"{k}={yaml_text(v)}" for k, v in items])
        run = RunDir(root / "run")
        run.prepare(force=False, resume=False)
        run_training(build_experiment(cfg, device="cpu"), run, quiet=True)
    except UserError as err:
        assert "\n" not in str(err)


spec_keys = st.sampled_from(["model.encoding", "train.lr", "seed.model", "data.tasks.0.lengths", "", ".", "a..b",
                             "model", "data.tasks.9.task", "train.steps"])


@FAST
@given(st.fixed_dictionaries(
    {"name": st.one_of(st.just("s"), st.text(max_size=4)),
     "base": st.one_of(st.just(tiny_config()), st.just({}), st.just("nothere.yaml"), st.integers())},
    optional={"grid": st.one_of(st.dictionaries(spec_keys, st.lists(values, max_size=3), max_size=2), values),
              "points": st.one_of(st.lists(st.dictionaries(spec_keys, values, max_size=2), max_size=2), values),
              "seeds": st.one_of(st.lists(st.integers(-2, 3), max_size=3), values),
              "seed_keys": st.one_of(st.lists(st.sampled_from(["seed.model", "seed.data", "x"]), max_size=2), values),
              "overrides": st.one_of(st.lists(st.sampled_from(["train.steps=3", "x", "a=[", "model.encoding=t5"]),
                                              max_size=2), values),
              "bogus": values}))
def test_sweep_specs_expand_or_fail_in_one_line(tree):
    try:
        expand(parse_spec(tree))
    except UserError as err:
        assert "\n" not in str(err)


# --- every subcommand's arguments -------------------------------------------------------------

@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A directory with a tiny finished run and files of every kind of wrong."""
    root = tmp_path_factory.mktemp("cli")
    tree = tiny_config()
    tree["model"].update(layers=1, d_model=16, d_ff=32)
    tree["train"].update(steps=2, log_every=1, threads=1)
    tree["eval"].update(n=4, lengths="1:3")
    files = {
        "tiny.yaml": yaml.safe_dump(tree), "list.yaml": "- 1\n", "bad.yaml": "a: [\n", "empty.yaml": "",
        "spec.yaml": yaml.safe_dump({"name": "s", "base": tree, "seeds": [0]}), "int.py": "SWEEP = 3\n",
        "raise.py": "raise ValueError('boom')\n", "syntax.py": "def (:\n", "nothing.py": "x = 1\n",
        "fake_run/config.yaml": "a: 1\n", "fake_run2/config.yaml": yaml.safe_dump(tree),
        "fake_sweep/sweep.yaml": "name: [\n", "fake_sweep2/sweep.yaml": "- 1\n"}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "binary.yaml").write_bytes(b"\xff\xfe\x00garbage")
    (root / "adir").mkdir()
    assert main(["train", str(root / "tiny.yaml"), "--name", "r", "--dir", str(root / "runs"), "--quiet"]) == 0
    return root


def opt(name, strategy):
    """An optional `name value` pair."""
    return st.one_of(st.just([]), strategy.map(lambda v: [name, v]))


def command(name, *parts):
    return st.tuples(*parts).map(lambda ps: [name] + [x for p in ps for x in (p if isinstance(p, list) else [p])])


numbers = st.one_of(st.integers(-3, 5), st.just(99999999999999999999), st.just("x")).map(str)
lengths_text = st.text(alphabet="0123456789:,-x .", max_size=6)
run_dirs = st.sampled_from(["runs/r", "fake_run", "fake_run2", "nothere", "adir", "runs/r/eval.csv", "/proc/x"])
arguments = st.one_of(
    command("tasks"),
    command("eval", run_dirs, opt("--lengths", lengths_text), opt("--tasks", st.sampled_from(["copy", "zz"])),
            opt("-n", numbers), opt("--mode", st.sampled_from(["greedy", "teacher_forced", "zz"])),
            opt("--checkpoint", numbers), opt("--device", st.sampled_from(["cpu", "cuda", "zz"]))),
    command("eval", run_dirs, st.sampled_from([["--ablate", "0.0"], ["--ablate", "9.9"], ["--ablate", "x"],
                                               ["--ablate", "0.1,0.1"], ["--ablation", "zero"],
                                               ["--ablate", "0.0", "--ablation", "zz"]]), opt("-n", numbers)),
    command("heads", run_dirs, st.sampled_from([[], ["--tasks", "copy", "reverse"], ["--tasks", "copy"],
                                                ["--tasks", "zz", "copy"]]),
            opt("--checkpoints", st.sampled_from(["all", "1", "x"])), opt("-n", numbers),
            opt("--lengths", lengths_text), opt("--ablation", st.sampled_from(["mean", "zz"]))),
    command("export", run_dirs, st.sampled_from(["adir/out", "/proc/x", "runs/r/eval.csv/x", "adir", "runs/r"]),
            opt("--checkpoint", numbers)),
    command("report", st.sampled_from(["fake_sweep", "fake_sweep2", "nothere", "adir", "runs/r", "runs/r/eval.csv"]),
            opt("--gap", st.sampled_from(["copy:reverse", "a:b:c", "x"]))),
    command("sweep", st.sampled_from(["int.py", "raise.py", "syntax.py", "nothing.py", "list.yaml", "bad.yaml",
                                      "empty.yaml", "binary.yaml", "adir", "nothere", "tiny.yaml"]),
            # not ray: a valid spec would start a Ray instance (test_sweep.py runs it once, on purpose)
            opt("--workers", numbers), opt("--threads", numbers), opt("--executor", st.sampled_from(["local", "zz"])),
            opt("--dir", st.sampled_from(["adir", "/proc/x", "runs/r/eval.csv"]))),
    # A valid spec only with an option that must stop it before it runs.
    command("sweep", st.just("spec.yaml"), st.sampled_from([["--threads", "0"], ["--workers", "-1"],
                                                            ["--executor", "zz"], ["--address", "x"],
                                                            ["--dir", "/proc/x"], ["--dir", "runs/r/eval.csv"]])),
    command("repro", st.sampled_from(["zz", "a-sparsity", "copy-encodings"]),
            st.sampled_from([["--scale", "zz"], ["--seeds", "a,b"], ["--seeds", "-1"], ["--dir", "/proc/x"],
                             ["--executor", "zz"], ["--threads", "0"]])),
    command("repro", st.just("--list")),
    command("train", st.sampled_from(["tiny.yaml", "list.yaml", "bad.yaml", "empty.yaml", "binary.yaml", "adir",
                                      "nothere"]),
            st.lists(st.sampled_from(["train.steps=x", "model.d_model=[", "x", "=", "a=b", "data.tasks.0.lengths=[0,1]",
                                      "seed.model=-1", "train.lr=.nan", "eval.lengths=1:2:0", "train.steps=1"]),
                     max_size=2),
            opt("--device", st.sampled_from(["cpu", "cuda", "zz"])), opt("--name", st.sampled_from(["r", "", "a/b"])),
            opt("--dir", st.sampled_from(["adir", "/proc/x", "runs/r/eval.csv", "runs"])),
            st.sampled_from([[], ["--resume"], ["--force"], ["--quiet"], ["--colour"]])),
    st.lists(st.sampled_from(["frobnicate", "show", "train", "-n", "--length", "--dir", "=", "-", "--", "x"]),
             max_size=3),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arguments)
def test_every_command_works_or_fails_in_one_line(workdir, monkeypatch, argv):
    monkeypatch.chdir(workdir)
    code, _, err = run_main(argv)
    assert_clean(code, err, argv)


# --- labels against the independent references of the task tests -----------------------------

@settings(max_examples=30, deadline=None)
@given(st.sampled_from(sorted(REFERENCES)), st.integers(1, 25), st.integers(0, 2**32),
       st.sampled_from(["mixed", "equal"]), st.booleans(), st.integers(1, 4))
def test_arithmetic_labels_match_references(name, length, seed, operand_digits, pad, second_digits):
    params = {"second_digits": second_digits, "pad": pad} if name == "mult_cot" else {"operand_digits": operand_digits}
    for ex in make_task(name, params).sample(np.random.default_rng(seed), 8, length):
        prompt, answer = "".join(ex.prompt), "".join(ex.answer)
        expected = ref_mult_cot(prompt, pad=pad) if name == "mult_cot" else REFERENCES[name](prompt)
        assert answer == expected, (name, params, prompt)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["copy", "reverse", "swapcase", "swapcase_reverse", "mqar", "sparse_parity", "sparse_sum",
                        "offset_parity", "maze_shortest_path", "maze_dfs_trace"]),
       st.integers(1, 40), st.integers(0, 2**32), st.integers(0, 3))
def test_other_labels_match_references(name, length, seed, choice):
    params = {"sparse_parity": {"k": 1 + choice}, "sparse_sum": {"k": 1 + choice, "modulus": 3 + choice},
              "offset_parity": [{"dependency": "nonlocal"}, {"offsets": [1, 3]}, {}, {"offsets": [2]}][choice],
              "mqar": {"num_queries": choice}}.get(name, {})
    if name.startswith("maze"):
        params = {"size": 4 + choice, "neighbor_order": "random" if choice % 2 else "sorted"}
        length = min(length, (4 + choice) ** 2)
    task = make_task(name, params)
    if name.startswith("maze"):
        length = max(length, task.min_length)
    elif length < task.min_length or (name == "mqar" and length < params["num_queries"]) or \
            (name.startswith("sparse") and length < params["k"]):
        return  # sizes the task rejects (its own tests check the messages)
    for ex in task.sample(np.random.default_rng(seed), 8, length):
        prompt, answer = "".join(ex.prompt), "".join(ex.answer)
        s = prompt[:-1]
        if name in ("copy", "reverse", "swapcase", "swapcase_reverse"):
            assert len(s) == length and set(s) <= set(string.ascii_letters)
            expected = {"copy": s, "reverse": s[::-1], "swapcase": s.swapcase(),
                        "swapcase_reverse": s.swapcase()[::-1]}[name]
        elif name == "mqar":
            pairs, queries = parse_mqar(prompt)
            assert len(pairs) == length
            expected = "".join(dict(pairs)[q] for q in queries)
        elif name == "offset_parity":
            expected = ref_offset_parity(s, params.get("dependency", "local"), params.get("offsets", (1, 2)))
        elif name.startswith("sparse"):
            expected = ref_marked_sum(prompt, params.get("modulus", 2))
        else:
            adjacency, start, goal = parse_prompt(ex.prompt)
            walk = (bfs_path if name == "maze_shortest_path" else reference_dfs)(adjacency, start, goal)
            assert [node_id(token) for token in ex.answer] == walk
            continue
        assert answer == expected, (name, params, prompt)
