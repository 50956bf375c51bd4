#!/usr/bin/env bash
# The GPU results of the three training tasks, in one script (from the repository root):
#
#     OUT=gpu-out bash results/run-gpu.sh
#
# 1. smoke runs of every task on CUDA with --amp, and one torchrun process on NCCL, side by side;
# 2. the throughput table of benchmarks/bench_train.py on the GPU, alone on the machine;
# 3. the moving task's five models (the gpu preset, bfloat16 autocast), with the ocr and adding
#    tasks running beside it on the same GPU.
# The moving task's steps are the gpu preset's, or fewer where the throughput of step 2 says that
# the preset's would not fit in MOVING_BUDGET_S seconds; the log and the run's config.json say
# which. (results/moving-gpu-1000 is this script's run with the default budget; the preset's steps
# for all five models are in results/moving-gpu, made by results/run-gpu-moving.sh.)
# Run folders go to $WORK; $OUT gets a tarball of them (checkpoints left out), the throughput
# JSON and the log.
set -u
OUT=${OUT:-gpu-out}
WORK=${WORK:-/tmp/gpu-runs}
PYTHON=${PYTHON:-python3}
MOVING_BUDGET_S=${MOVING_BUDGET_S:-300}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$WORK"
exec > >(tee "$OUT/log.txt") 2>&1
stamp() { echo "== $(date -u +%H:%M:%S) $*"; }
train() { "$PYTHON" -m solutions.train "$@" --no-progress; }

stamp "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
"$PYTHON" -c "import os, platform, torch; print('torch', torch.__version__, 'python',
platform.python_version(), 'cuda', torch.cuda.is_available(), 'cpus', os.cpu_count())"

stamp "1. smoke runs on CUDA"
train moving --preset smoke --device cuda --amp --out "$WORK/smoke-moving" > "$WORK/smoke-moving.log" 2>&1 &
jobs=($!)
train ocr --device cuda --amp --steps 20 --batch-size 16 --eval-every 10 --eval-size 32 --ctc reference --lstm reference \
  --out "$WORK/smoke-ocr" > "$WORK/smoke-ocr.log" 2>&1 &
jobs+=($!)
train adding --device cuda --amp --impl reference --steps 20 --seq-len 20 --eval-size 64 \
  --out "$WORK/smoke-adding" > "$WORK/smoke-adding.log" 2>&1 &
jobs+=($!)
"$PYTHON" -m torch.distributed.run --standalone --nproc_per_node=1 -m solutions.train adding \
  --device cuda --steps 20 --seq-len 20 --eval-size 64 --no-progress \
  --out "$WORK/smoke-nccl" > "$WORK/smoke-nccl.log" 2>&1 &
jobs+=($!)
wait "${jobs[@]}"  # a bare wait would also wait for the tee of the log
for job in moving ocr adding nccl; do
  if [ -f "$WORK/smoke-$job/meta.json" ] && grep -q wall_s "$WORK/smoke-$job/meta.json"; then
    echo "smoke $job: ok"
  else
    echo "smoke $job: FAILED"; tail -25 "$WORK/smoke-$job.log"
  fi
done

stamp "2. throughput on the GPU"
"$PYTHON" benchmarks/bench_train.py --device cuda --amp --steps 20 \
  --out "$OUT/throughput-cuda.json"

STEPS=$("$PYTHON" - "$OUT/throughput-cuda.json" "$MOVING_BUDGET_S" <<'EOF'
import json, math, sys
from solutions.train.moving import Config
preset = Config.preset("gpu")
rows = json.load(open(sys.argv[1]))["results"]
rate = {r["variant"]: r["samples_per_s"] for r in rows if r["task"] == "moving"}
batch = preset.batch_size
# per step of all five models: conv1, conv2, conv1x1 about one conv2 step each, conv3 1.5, the
# FC-LSTM its own; 1.3 for what the benchmark leaves out (logging, evaluations, a busy GPU)
per_step = 1.3 * (4.5 * batch / rate["conv2"] + batch / rate["fc"])
steps = min(preset.steps, 250 * math.floor(float(sys.argv[2]) / per_step / 250))
print(max(steps, 250))
print(f"moving: about {per_step * 1e3:.0f} ms per step of all five models", file=sys.stderr)
EOF
)
echo "moving: --steps $STEPS (budget $MOVING_BUDGET_S s)"

stamp "3. moving (five models), ocr and adding, side by side"
train ocr --device cuda --amp --workers 4 --threads 2 --out "$WORK/ocr-gpu" \
  > "$WORK/ocr-gpu.log" 2>&1 &
jobs=($!)
train adding --device cuda --seq-len 100 --steps 3000 --lr 1e-2 --eval-every 250 --log-every 25 \
  --threads 2 --out "$WORK/adding-gpu" > "$WORK/adding-gpu.log" 2>&1 &
jobs+=($!)
timeout $((MOVING_BUDGET_S * 8 / 5)) "$PYTHON" -m solutions.train moving --preset gpu --amp \
  --amp-dtype bfloat16 --steps "$STEPS" --workers 3 --threads 2 --no-progress \
  --out "$WORK/moving-gpu" 2>&1 | tee "$WORK/moving-gpu.log" | grep -v Warning
echo "moving exit: ${PIPESTATUS[0]}"
wait "${jobs[@]}"
for run in ocr-gpu adding-gpu moving-gpu; do
  stamp "$run"; tail -5 "$WORK/$run.log"; cat "$WORK/$run/meta.json" 2>/dev/null
done

stamp "packing"
tar czf "$OUT/runs.tgz" --exclude=checkpoint.pt -C "$WORK" .
ls -la "$OUT"
stamp "done"
