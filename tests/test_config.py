"""Config loading: dotted overrides, length ranges, validation messages."""

import re
from pathlib import Path

import pytest
import yaml

from lengthgen.config import apply_overrides, build_config, load_config, parse_lengths
from lengthgen.errors import UserError
from lengthgen.experiment import build_experiment
from lengthgen.sweeps.spec import expand, load_spec

from helpers import tiny_config


def test_overrides_reach_nested_keys_and_list_items(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config()))
    cfg = load_config(path, ["model.encoding=alibi", "data.tasks.0.lengths=[2,9]", "eval.lengths=1:40",
                             "train.betas=[0.9,0.95]", "data.tasks.0.params={alphabet: xyz}"])
    assert cfg.model.encoding == "alibi"
    assert cfg.data.tasks[0].lengths == (2, 9)
    assert cfg.eval.length_list() == list(range(1, 41))
    assert cfg.train.betas == (0.9, 0.95)
    assert cfg.data.tasks[0].params == {"alphabet": "xyz"}


def test_resolved_config_round_trips():
    cfg = build_config(tiny_config())
    assert build_config(yaml.safe_load(cfg.to_yaml())) == cfg


@pytest.mark.parametrize("text,expected", [("1:5", [1, 2, 3, 4, 5]), ("2:10:4", [2, 6, 10]), ("4,8,16", [4, 8, 16]),
                                           ([3, 5], [3, 5]), (7, [7])])
def test_parse_lengths(text, expected):
    assert parse_lengths(text) == expected


@pytest.mark.parametrize("bad", ["a:b", "1:2:3:4", "0:3", "", [0]])
def test_bad_lengths(bad):
    with pytest.raises(UserError):
        parse_lengths(bad)


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(UserError, match="no such place"):
        apply_overrides({"data": {"tasks": []}}, ["data.tasks.3.task=copy"])
    with pytest.raises(UserError, match="data.tasks"):
        build_config({"data": {"tasks": []}})
    # The same task twice would share one evaluation label (and one eval set): refused, naming it.
    twice = [{"task": "copy", "lengths": [1, 4]}, {"task": "copy", "lengths": [5, 8]}]
    with pytest.raises(UserError, match="names copy more than once"):
        build_config({"data": {"tasks": twice}})


ROOT = Path(__file__).parent.parent
# Run configs: the canonical ones, and the frozen probes whose rerun commands docs/experiments.md gives.
SHIPPED = sorted([*(ROOT / "configs").glob("*.yaml"), *(ROOT / "experiments").rglob("*.yaml")])
SWEEP_SPECS = sorted(p for p in (ROOT / "configs" / "sweeps").iterdir() if p.suffix in (".yaml", ".py"))
# The probes' sweep specs (Python files with a `sweep()`; the other .py files there are scripts that train
# when run): their rerun commands are in docs/experiments.md and the experiments READMEs.
PROBE_SPECS = sorted(p for p in (ROOT / "experiments").rglob("*.py") if "\ndef sweep(" in p.read_text())


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_validates_and_builds(path):
    # A config the docs tell users to run must not rot as the schema moves; its run directory
    # is named after it, so the name must match the file.
    cfg = load_config(path)
    assert cfg.name == path.stem
    experiment = build_experiment(cfg, device="cpu")
    assert len(experiment.specs) == len(cfg.data.resolved_tasks()) > 0


@pytest.mark.parametrize("path", PROBE_SPECS, ids=lambda p: p.name)
def test_every_probe_sweep_spec_expands_into_valid_runs(path):
    # A probe's rerun command must keep working as presets and the schema move under it.
    plans = expand(load_spec(path))
    assert plans and all(plan.config.train.steps > 0 for plan in plans)


@pytest.mark.parametrize("path", SWEEP_SPECS, ids=lambda p: p.name)
def test_every_example_sweep_spec_expands_into_valid_runs(path):
    # The README's sweep examples: every grid point and seed must be a valid config.
    spec = load_spec(path)
    plans = expand(spec)
    assert spec.name == path.stem and len(plans) >= 2 * len(spec.seeds)
    assert len({p.name for p in plans}) == len(plans)


def test_the_readme_names_only_files_that_exist():
    named = re.findall(r"\b((?:configs|experiments|docs|benchmarks)/[\w./-]+\.(?:ya?ml|py|md))",
                       (ROOT / "README.md").read_text())
    assert named and [n for n in named if not (ROOT / n).is_file()] == []
