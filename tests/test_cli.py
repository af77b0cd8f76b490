"""The command line: the documented commands work; bad input is one line and exit status 2."""

import json
import subprocess
import sys

import pytest
import torch
import yaml

from lengthgen.cli.main import main

from helpers import tiny_config


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_tasks_lists_tasks_and_plugins(capsys):
    code, out, _ = run_cli(capsys, "tasks")
    assert code == 0
    for word in ("copy", "reverse", "reverse_add", "operand_digits", "rope", "coupled_random_offset"):
        assert word in out


def test_show_prints_tokens_over_ids(capsys):
    code, out, _ = run_cli(capsys, "show", "copy", "--length", "12", "-n", "3")
    assert code == 0
    token_lines = [line for line in out.splitlines() if line.strip().startswith("token")]
    id_lines = [line for line in out.splitlines() if line.strip().startswith("id")]
    assert len(token_lines) == 3 and len(id_lines) == 3
    assert id_lines[0].split()[1:] == [str(i) for i in range(12 + 1 + 12 + 2)]


def test_data_writes_json_lines(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "data", "reverse_add", "--length", "20", "-n", "50", "--seed", "0",
                           "--format", "jsonl")
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 50
    assert set(records[0]) >= {"task", "length", "prompt", "answer", "prompt_positions", "answer_positions", "meta"}
    assert all(len(r["prompt_positions"]) == len(r["prompt"]) for r in records)
    target = tmp_path / "d.jsonl"
    run_cli(capsys, "data", "reverse_add", "--length", "20", "-n", "50", "--seed", "0", "--out", str(target))
    assert target.read_text() == out


@pytest.mark.parametrize("argv,needle", [
    (["show", "nosuch", "--length", "3"], "unknown task 'nosuch'; valid: "),
    (["show", "copy", "--length", "0"], "cannot make length 0"),
    (["show", "copy", "--length", "3", "--policy", "zigzag"], "unknown position policy"),
    (["show", "copy", "--length", "3", "--param", "k=2"], "no parameter 'k'"),
    (["data", "copy"], "--length"),
    (["eval", "does/not/exist"], "does not exist"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_is_one_line_exit_2(capsys, argv, needle):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err


def write_config(tmp_path, **sections):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(**sections)))
    return path


@pytest.mark.parametrize("override,needle", [
    ("model.encoding=t5", "unknown encoding 't5'; valid: alibi"),
    ("model.colour=red", "unknown config key 'model.colour'; valid: layers"),
    ("data.tasks.0.task=nosuch", "unknown task 'nosuch'"),
    ("data.tasks.0.lengths=[0,5]", "cannot make length 0"),
    ("train.steps=abc", "train.steps"),
    ("nonsense", "must look like key.path=value"),
])
def test_bad_config_is_one_line_exit_2(capsys, tmp_path, override, needle):
    code, _, err = run_cli(capsys, "train", str(write_config(tmp_path)), override, "--dir", str(tmp_path / "runs"))
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs" / "tiny").exists()


@pytest.mark.slow
def test_train_eval_and_no_overwrite(capsys, tmp_path):
    config = write_config(tmp_path)
    runs = tmp_path / "runs"
    code, out, _ = run_cli(capsys, "train", str(config), "train.steps=12", "--name", "t1", "--dir", str(runs),
                           "--quiet")
    assert code == 0 and (runs / "t1" / "eval.png").is_file()
    code, out, _ = run_cli(capsys, "eval", str(runs / "t1"), "--lengths", "1:12", "-n", "8")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[2:14]] == [str(n) for n in range(1, 13)]
    assert len((runs / "t1" / "eval.csv").read_text().splitlines()) == 1 + 8 + 12
    # Another decoding mode than the run's (teacher-forced) goes beside eval.csv, not into it.
    code, out, _ = run_cli(capsys, "eval", str(runs / "t1"), "--lengths", "1:3", "--mode", "greedy", "-n", "8")
    assert code == 0 and "eval-greedy.csv" in out
    assert len((runs / "t1" / "eval.csv").read_text().splitlines()) == 1 + 8 + 12
    assert len((runs / "t1" / "eval-greedy.csv").read_text().splitlines()) == 1 + 3
    before = (runs / "t1" / "eval.csv").read_text()
    code, _, err = run_cli(capsys, "train", str(config), "train.steps=12", "--name", "t1", "--dir", str(runs))
    assert code == 2 and "--force" in err and (runs / "t1" / "eval.csv").read_text() == before
    code, _, err = run_cli(capsys, "train", str(config), "train.steps=13", "--name", "t1", "--dir", str(runs),
                           "--resume")
    assert code == 2 and "differs" in err
    code, _, _ = run_cli(capsys, "train", str(config), "train.steps=12", "--name", "t1", "--dir", str(runs),
                         "--force", "--quiet")
    assert code == 0 and len((runs / "t1" / "eval.csv").read_text().splitlines()) == 1 + 8

    code, _, _ = run_cli(capsys, "export", str(runs / "t1"), str(tmp_path / "hf"))
    assert code == 0 and (tmp_path / "hf" / "config.json").is_file()
    code, _, err = run_cli(capsys, "export", str(runs / "t1"), str(tmp_path / "hf"))
    assert code == 2 and "--force" in err
    from lengthgen.experiment import build_experiment
    from lengthgen.model.hf_export import load_llama
    from lengthgen.store.checkpoint import find_checkpoint, load_weights
    from lengthgen.store.rundir import RunDir

    exp = build_experiment(RunDir(runs / "t1").read_config())
    load_weights(exp.model, find_checkpoint(runs / "t1" / "checkpoints"))
    back = load_llama(tmp_path / "hf")
    tokens = torch.randint(0, 100, (2, 9))
    positions = torch.arange(9).expand(2, 9)
    with torch.no_grad():
        assert torch.allclose(exp.model(tokens, positions), back(tokens, positions), atol=1e-6)


@pytest.mark.slow
def test_console_script_exits_2_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "lengthgen.cli", "train", "missing.yaml"], capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: config file 'missing.yaml' does not exist"


def test_overrides_may_follow_options(capsys, tmp_path):
    config = write_config(tmp_path)
    runs = tmp_path / "runs"
    code, _, _ = run_cli(capsys, "train", str(config), "--dir", str(runs), "--quiet", "train.steps=3", "eval.n=4")
    saved = yaml.safe_load((runs / "tiny" / "config.yaml").read_text())
    assert code == 0 and saved["train"]["steps"] == 3 and saved["eval"]["n"] == 4
    code, _, err = run_cli(capsys, "train", str(config), "--dir", str(runs), "--colour", "red")
    assert code == 2 and "unrecognized arguments: --colour red" in err
