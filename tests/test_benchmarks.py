"""The benchmark scripts still run: each one end to end at its smallest setting (timings not checked)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # subprocesses: every test here starts Python (or torchrun) anew

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

# script -> (smallest arguments, lines the output must contain)
CASES = {
    "train_throughput.py": (["--sizes", "small", "--steps", "1", "--warmup", "1", "--repeats", "1", "--batch", "4",
                             "--seq-len", "16"], ["lengthgen (math)", "HF Llama (sdpa)", "peak matmul"]),
    "eval_throughput.py": (["--sizes", "small", "--repeats", "1", "--n", "4", "--batch", "4", "--lengths", "3",
                            "--precisions", "float32"],
                           ["lengthgen teacher_forced", "HF generate", "equal to HF's: 100.0%"]),
    "data_generation.py": (["--batch", "4", "--max-length", "4", "--repeats", "1"],
                           ["reverse_add", "maze_dfs_trace", "text", "worst task per family"]),
    "batching.py": (["--groups", "arith-carry", "--variants", "padded,micro2,packed", "--steps", "2", "--repeats", "1"],
                    ["arith-carry", "speed-up", "useful tok/s", "packed"]),
    "step_profile.py": (["--presets", "a-sparsity", "--steps", "2", "--warmup", "1"],
                        ["a-sparsity point 0", "projected run", "operators (self CPU time)"]),
    "preset_config.py": (["b-transfer-arith", "--scale", "paper", "--list"], ["group=arith-carry"]),
    "thread_policy.py": (["--steps", "1", "--repeats", "1"], ["steps/s in total", "one job per core"]),
    "head_analysis.py": (["--lengths", "1:2", "--n", "4", "--rows", "8", "--model", "2,2,16,32"],
                         ["one head at a time", "shared passes, rows 8", "same map:"]),
    "rope_rotation.py": (["--sizes", "small", "--batch", "2", "--seq-len", "8", "--layers", "1", "--repeats", "1"],
                         ["Llama rotate_half (autograd)", "lengthgen Rotary.rotate", "speed-up"]),
    "elementwise_fusion.py": (["--batch", "2", "--seq-len", "8", "--calls", "1", "--repeats", "1"],
                              ["SwiGLU MLP", "RMSNorm + projection", "attention probabilities", "whole training step"]),
    "matmul_ceiling.py": (["--sizes", "small", "--batch", "2", "--seq-len", "8", "--reps", "1", "--steps", "1",
                           "--precisions", "fp32"],
                          ["gate/up weight grad", "dK = dS^T Q", "ceiling MFU", "the matmuls' share of it"]),
    "hooks_overhead.py": (["--sizes", "small", "--batch", "2", "--seq-len", "8", "--forwards", "1", "--repeats", "1"],
                          ["hooks=None", "empty Hooks()", "capture one pattern", "ratio to hooks=None"]),
}


@pytest.mark.parametrize("script", sorted(CASES))
def test_benchmark_script_runs(script, tmp_path):
    args, needles = CASES[script]
    out = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    for needle in needles:
        assert needle in out.stdout, f"{script}: {needle!r} missing from\n{out.stdout}"


def test_matmul_ceiling_lists_exactly_the_model_flops_of_a_training_step(monkeypatch):
    """The matmuls matmul_ceiling.py times add up to the model FLOPs train_throughput.py divides by: every
    weight of the Decoder three times (forward, input and weight gradient) plus the attention products."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from common import SIZES, build_lengthgen
    from matmul_ceiling import step_matmuls
    from train_throughput import matmul_params

    vocab, batch, seq_len = 371, 3, 7
    for size in SIZES.values():
        listed = sum(2 * a[-2] * a[-1] * b[-1] * (a[0] if len(a) == 3 else 1) * count
                     for _, a, b, _, _, count in step_matmuls(size, batch, seq_len, vocab))
        params = matmul_params(build_lengthgen(size, vocab))
        model_flops = 6 * params * batch * seq_len + 12 * size["layers"] * batch * seq_len**2 * size["d_model"]
        assert listed == model_flops


def test_preset_walltime_reads_sessions(tmp_path):
    from lengthgen.sweeps.run import SweepDir

    sweep = tmp_path / "demo-cpu"
    (sweep / "runs" / "a").mkdir(parents=True)
    (sweep / "runs" / "a" / "done.json").write_text('{"steps": 10, "seconds": 12.5}')
    SweepDir(sweep).record_session({"started": "t", "wall_s": 75.0, "completed": True, "runs": 1, "failed": 0,
                                    "executor": "local", "workers": 2, "threads": 1, "cpus": 2})
    out = subprocess.run([sys.executable, str(BENCHMARKS / "preset_walltime.py"), str(sweep)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    row = out.stdout.splitlines()[-1].split()
    assert row[:4] == ["demo-cpu", "1/1", "12", "75"] and row[-1] == "2x1"


def test_gpu_check_script_runs_every_step_on_the_cpu(tmp_path):
    # Everything but CUDA itself: the same script, at tiny sizes, with the CPU as its device.
    env = {**os.environ, "GPU_CHECK_DEVICE": "cpu", "GPU_CHECK_SMOKE": "1", "GPU_CHECK_STEPS": "4",
           "GPU_CHECK_OUT": str(tmp_path), "PYTHON": sys.executable}
    out = subprocess.run(["bash", str(BENCHMARKS / "gpu_check.sh")], capture_output=True, text=True, timeout=600,
                         env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    for needle in ("== CUDA tests: exit 0", "HF Llama (sdpa)", "paper-scale point: 4 steps",
                   "final exact match by task and length: reverse_add@2", "every step passed"):
        assert needle in out.stdout, needle
    assert (tmp_path / "runs" / "gpu-check" / "done.json").is_file()


def test_sweep_order_and_preset_cost_read_a_finished_sweep(tmp_path):
    """Both scripts read a real finished sweep: the replay of its runs in both orders, and the rate
    (estimated FLOPs per second) that scales every preset's estimate."""
    from lengthgen.sweeps.run import run_sweep
    from lengthgen.sweeps.spec import parse_spec

    tree = {"name": "order-demo", "seeds": [0], "grid": {"train.steps": [4, 12]},
            "base": {"data": {"tasks": [{"task": "copy", "lengths": [1, 4]}], "batch_size": 8},
                     "model": {"layers": 1, "heads": 2, "d_model": 16, "d_ff": 32},
                     "train": {"eval_every": 4, "checkpoint_every": 4, "log_every": 2, "precision": "float32"},
                     "eval": {"lengths": "1:5", "n": 8}}}
    sweep = tmp_path / "order-demo"
    assert all(r.status == "done" for r in run_sweep(parse_spec(tree), sweep, workers=1, quiet=True))
    out = subprocess.run([sys.executable, str(BENCHMARKS / "sweep_order.py"), str(sweep), "--workers", "2"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    header, row = out.stdout.splitlines()[-2:]
    assert header.split()[:4] == ["sweep", "runs", "run_s", "grid_order_s"] and row.split()[:2] == ["order-demo", "2"]
    out = subprocess.run([sys.executable, str(BENCHMARKS / "preset_cost.py"), "--calibrate", str(sweep)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "rate measured over 2 finished runs" in out.stdout
    assert any(line.startswith("b-transfer-arith ") for line in out.stdout.splitlines())
    assert "the suite, shared runs once" in out.stdout
