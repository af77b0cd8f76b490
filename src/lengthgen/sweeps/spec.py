"""Sweeps: a base config, a grid of overrides and a list of seeds, run as one experiment.

A spec is a YAML file or a Python file defining `SWEEP` (a dict) or `sweep()` returning one:

    name: copy-encodings
    base: configs/copy.yaml          # path (relative to the spec) or an inline config mapping
    overrides: [train.steps=800]     # applied to the base before the grid
    grid:                            # cartesian product of dotted keys -> values
      model.encoding: [nope, rope]
    points:                          # optional explicit points, crossed with the grid
      - {data.tasks.0.lengths: [1, 8]}
    seeds: [0, 1]
    seed_keys: [seed.model]          # config seeds set to the sweep seed

A string value of a point may name `{sweep_dir}`: the sweep directory, as an absolute path, is
put in its place in the run's config (run names and result tables keep the text as written, so
they do not depend on where the sweep lives). A preset's preparation step writes models there.

Running a spec (its directory, its runs, what is skipped or resumed) is `sweeps.run`.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import runpy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from ..config import ExperimentConfig, Strict, apply_overrides, build_config
from ..errors import UserError


class SweepSpec(Strict):
    """A validated sweep description."""

    name: str
    base: dict[str, Any]
    overrides: list[str] = Field(default_factory=list)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    points: list[dict[str, Any]] = Field(default_factory=list)
    seeds: list[int] = Field(default_factory=lambda: [0])
    seed_keys: list[str] = Field(default_factory=lambda: ["seed.model"])

    @field_validator("grid")
    @classmethod
    def _grid(cls, grid):
        for key, values in grid.items():
            if not values:
                raise ValueError(f"grid key {key!r} has no values")
        return grid

    @model_validator(mode="after")
    def _check(self) -> "SweepSpec":
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct integers, got {self.seeds}")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise ValueError(f"name {self.name!r} may use letters, digits, '_', '-', '.' only")
        bad = [k for k in self.seed_keys if k not in ("seed.model", "seed.data", "seed.eval")]
        if bad:
            raise ValueError(f"seed_keys {bad} invalid; valid: seed.model, seed.data, seed.eval")
        return self


@dataclass(frozen=True)
class RunPlan:
    """One run of a sweep: its grid values, seed, config and directory name."""

    name: str
    point: dict[str, Any]
    seed: int
    config: ExperimentConfig


def _read_spec_file(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"sweep spec {str(path)!r} does not exist")
    if path.suffix == ".py":
        try:
            namespace = runpy.run_path(str(path))
            if "SWEEP" in namespace:
                tree = namespace["SWEEP"]
            elif callable(namespace.get("sweep")):
                tree = namespace["sweep"]()
            else:
                raise UserError(f"{str(path)!r} must define SWEEP (a dict) or sweep() returning one")
        except UserError:
            raise
        except Exception as err:  # noqa: BLE001 -- the user's code: report it in one line, whatever it raised
            where = f" (line {err.lineno})" if isinstance(err, SyntaxError) and err.lineno else ""
            first = (str(err).strip().splitlines() or [""])[0]
            raise UserError(f"sweep spec {str(path)!r} failed to run{where}: {type(err).__name__}: {first}") from None
        if not isinstance(tree, dict):
            raise UserError(f"{str(path)!r} must define SWEEP (a dict) or sweep() returning one, not "
                            f"{type(tree).__name__}")
        return tree
    try:
        tree = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise UserError(f"sweep spec {str(path)!r} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(tree, dict):
        raise UserError(f"sweep spec {str(path)!r} must hold a mapping")
    return tree


def _describe(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"unknown sweep key {where!r}; valid: {', '.join(SweepSpec.model_fields)}"
    return f"sweep {where or 'spec'}: {first['msg'].removeprefix('Value error, ')}"


def parse_spec(tree: dict, relative_to: Path | None = None) -> SweepSpec:
    """Validate a raw spec; a `base` path is read relative to the spec's folder."""
    tree = dict(tree)
    base = tree.get("base", {})
    if isinstance(base, str):
        path = Path(base)
        if not path.is_absolute() and relative_to is not None and not path.exists():
            path = relative_to / path
        if not path.is_file():
            raise UserError(f"sweep base config {base!r} does not exist")
        tree["base"] = yaml.safe_load(path.read_text()) or {}
    try:
        return SweepSpec.model_validate(tree)
    except ValidationError as err:
        raise UserError(_describe(err)) from None


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a YAML or Python sweep spec."""
    path = Path(path)
    return parse_spec(_read_spec_file(path), path.parent)


def _short_keys(keys: list[str]) -> dict[str, str]:
    last = [k.split(".")[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def _value_text(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True).strip() if isinstance(value, (list, dict)) else value
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-")


# Run directories are named "<label>__seed<n>"; most file systems cap a name at 255 bytes, and a run
# copied from another sweep is staged as "<name>.partial" (sweeps/reuse.py).
MAX_NAME = 255 - len(".partial")


def _fit_label(label: str, suffix: int) -> str:
    """`label`, or, when it and a `suffix`-character seed part would pass MAX_NAME, its start and a hash
    of the whole: one name per point, stable across runs (so --resume and reuse find the directory
    again), and every name that fits is left as it was."""
    if len(label) + suffix <= MAX_NAME:
        return label
    digest = hashlib.sha1(label.encode()).hexdigest()[:12]
    return f"{label[:MAX_NAME - suffix - len(digest) - 1]}~{digest}"


SWEEP_DIR = "{sweep_dir}"  # in a point's string values: the sweep directory (see the module docstring)


def _place(value: Any, root: Path | None) -> Any:
    """`value` with SWEEP_DIR replaced by `root` in every string inside it (unchanged without a root)."""
    if root is None:
        return value
    if isinstance(value, str):
        return value.replace(SWEEP_DIR, str(root))
    if isinstance(value, list):
        return [_place(v, root) for v in value]
    if isinstance(value, dict):
        return {k: _place(v, root) for k, v in value.items()}
    return value


def expand(spec: SweepSpec, root: str | Path | None = None) -> list[RunPlan]:
    """Every (grid point, seed) as a validated config, in a stable order; `root` is the sweep
    directory that `{sweep_dir}` in point values stands for (left as written without one)."""
    root = Path(root).resolve() if root is not None else None
    keys = list(spec.grid)
    grid_points = [dict(zip(keys, values)) for values in itertools.product(*(spec.grid[k] for k in keys))]
    points = [{**p, **g} for p in (spec.points or [{}]) for g in grid_points]
    all_keys = list(dict.fromkeys(k for p in points for k in p))
    short = _short_keys(all_keys)
    plans, names = [], set()
    for point in points:
        label = _fit_label(",".join(f"{short[k]}={_value_text(v)}" for k, v in point.items()) or "base",
                           len(f"__seed{max(spec.seeds)}"))
        for seed in spec.seeds:
            tree = yaml.safe_load(yaml.safe_dump(spec.base))  # deep copy
            apply_overrides(tree, spec.overrides)
            for key, value in point.items():
                # A plain scalar dumps with YAML's document-end marker ("copy\n..."); drop it so an
                # error message quoting the override stays on one line.
                text = yaml.safe_dump(_place(value, root), default_flow_style=True).strip().removesuffix("...").strip()
                apply_overrides(tree, [f"{key}={text}"])
            for key in spec.seed_keys:
                apply_overrides(tree, [f"{key}={seed}"])
            name = f"{label}__seed{seed}"
            if name in names:
                raise UserError(f"two sweep points share the name {name!r}; make the grid values distinct")
            names.add(name)
            tree["name"] = name
            plans.append(RunPlan(name, point, seed, build_config(tree)))
    return plans
