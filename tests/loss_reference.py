"""One fixed tiny training run whose loss curve guards every speed optimization.

The stored curves in tests/data/loss_reference.json were made by the unoptimized model (the
commit named in the file, before the fused norm, activation-dtype RoPE, additive attention mask
and fused AdamW). tests/test_loss_reference.py reruns the same run and requires the current
code to stay within noise of them. Regenerate (only when a change is meant to alter numerics):

    python tests/loss_reference.py tests/data/loss_reference.json
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

PRECISIONS = ("float32", "bf16")


def reference_config(precision: str) -> dict:
    """Reverse addition (answer-only loss, carries) on a 2-layer RoPE model, one thread."""
    return {
        "name": f"loss-reference-{precision}",
        "data": {"tasks": [{"task": "reverse_add", "lengths": [1, 6]}], "batch_size": 32},
        "model": {"layers": 2, "heads": 4, "d_model": 64, "d_ff": 128, "encoding": "rope"},
        "train": {"steps": 60, "lr": 3e-3, "warmup": 0.1, "log_every": 5, "precision": precision,
                  "threads": 1, "eval_every": 0, "checkpoint_every": 0},
        "eval": {"lengths": [3, 6], "n": 16},
        "positions": {"max_position": 64},
    }


def loss_curve(precision: str, parent: Path) -> list[float]:
    """Train the reference run under `parent` and return its logged losses."""
    from lengthgen.config import build_config
    from lengthgen.experiment import build_experiment
    from lengthgen.store.rundir import RunDir
    from lengthgen.train import run_training

    cfg = build_config(reference_config(precision))
    run = RunDir(parent / cfg.name)
    run.prepare(force=False, resume=False)
    run_training(build_experiment(cfg), run, quiet=True)
    lines = (run.path / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines if "loss" in json.loads(line)]


def main(out: str) -> None:
    """Write the reference curves for every precision, with the commit that made them."""
    revision = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        curves = {p: loss_curve(p, Path(tmp)) for p in PRECISIONS}
    Path(out).write_text(json.dumps({"commit": revision, "curves": curves}, indent=1) + "\n")
    print(f"wrote {out}: " + ", ".join(f"{p} final {c[-1]:.4f}" for p, c in curves.items()))


if __name__ == "__main__":
    main(sys.argv[1])
