#!/usr/bin/env bash
# One short check of lengthgen on a machine with an NVIDIA GPU, in at most about 8 minutes:
#   1. the CUDA tests (tests/test_cuda.py: logits, KV cache, packing and a training run on the GPU);
#   2. training throughput against Hugging Face Llama at paper size (6 layers, d_model 384);
#   3. STEPS steps (default 2,000) of one paper-scale preset point (b-transfer-arith: reverse addition
#      with no-carry + carry-only, batch 1024), with its evaluation, timed.
# Every step has its own time limit, and a step that fails does not stop the next one; the numbers
# are printed as they come and the script exits non-zero if any step failed.
#
#   bash benchmarks/gpu_check.sh                       # on the GPU machine, from the repository root
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_SMOKE=1 bash benchmarks/gpu_check.sh   # the same script, tiny, on a CPU
#
# Settings (environment): GPU_CHECK_DEVICE (cuda), GPU_CHECK_STEPS (2000), GPU_CHECK_OUT (a new
# temporary directory), GPU_CHECK_SMOKE (1: tiny sizes, so that CI can run every line on a CPU).
set -uo pipefail
cd "$(dirname "$0")/.."

device=${GPU_CHECK_DEVICE:-cuda}
steps=${GPU_CHECK_STEPS:-2000}
out=${GPU_CHECK_OUT:-$(mktemp -d)}
smoke=${GPU_CHECK_SMOKE:-0}
python=${PYTHON:-python}
failed=0
start=$(date +%s)

step() {  # step NAME LIMIT_S COMMAND...: run with a time limit, report its wall time and status
  local name=$1 limit=$2
  shift 2
  local t0=$(date +%s)
  echo "== $name (limit ${limit}s)"
  timeout "$limit" "$@"
  local status=$?
  echo "== $name: exit $status after $(( $(date +%s) - t0 ))s"
  [ "$status" -eq 0 ] || failed=1
}

if [ "$smoke" = 1 ]; then
  bench_args=(--sizes small --batch 4 --seq-len 16 --steps 1 --warmup 1 --repeats 1)
  point_args=(data.batch_size=8 eval.n=4 "eval.lengths=[2,4]" model.layers=1 model.d_model=48 model.d_ff=96
              model.heads=2)
else
  bench_args=(--sizes base --batch 256 --seq-len 256 --steps 5 --warmup 2 --repeats 3)
  point_args=()
fi

echo "gpu_check: device $device, $steps steps, output in $out"
$python - <<'PY'
import torch
print(f"torch {torch.__version__}, CUDA available {torch.cuda.is_available()}"
      + (f", {torch.cuda.get_device_name(0)}, bf16 {torch.cuda.is_bf16_supported()}" if torch.cuda.is_available() else ""))
PY
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

step "CUDA tests" 150 $python -m pytest -m cuda -q -p no:cacheprovider tests/test_cuda.py -rs
step "throughput vs HF Llama" 180 $python benchmarks/train_throughput.py --device "$device" "${bench_args[@]}"

mkdir -p "$out"
$python benchmarks/preset_config.py b-transfer-arith --scale paper --point 0 > "$out/point.yaml" || failed=1
step "paper-scale point, $steps steps" 300 $python -m lengthgen.cli train "$out/point.yaml" "train.steps=$steps" \
  "train.eval_every=$(( steps / 2 > 0 ? steps / 2 : 1 ))" train.checkpoint_every=0 train.log_every=50 \
  "${point_args[@]}" --name gpu-check --dir "$out/runs" --device "$device" --force --quiet

run="$out/runs/gpu-check"
if [ -f "$run/done.json" ]; then
  $python - "$run" <<'PY'
import json, statistics, sys
from pathlib import Path
run = Path(sys.argv[1])
done = json.loads((run / "done.json").read_text())
rates = [json.loads(line)["tokens_per_s"] for line in (run / "metrics.jsonl").read_text().splitlines()]
env = json.loads((run / "env.json").read_text())[0]
print(f"paper-scale point: {done['steps']} steps in {done['seconds']:.0f} s ({done['seconds'] / done['steps'] * 1000:.1f} "
      f"ms/step, training and evaluation), median {statistics.median(rates):,.0f} input tokens/s, "
      f"device {env['device']}, precision {env['precision']}")
rows = [line.split(",") for line in (run / "eval.csv").read_text().splitlines()]
head, last = rows[0], max(int(r[0]) for r in rows[1:])
print("final exact match by task and length: " + "; ".join(
    f"{r[head.index('task')]}@{r[head.index('length')]} {float(r[head.index('exact_match')]):.2f}"
    for r in rows[1:] if int(r[0]) == last))
PY
fi
echo "gpu_check: $(( $(date +%s) - start ))s in all; $([ $failed = 0 ] && echo 'every step passed' || echo 'a step FAILED')"
exit $failed
