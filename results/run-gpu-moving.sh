#!/usr/bin/env bash
# The moving task's five models trained side by side on one GPU, one process each, then gathered
# into one run folder (from the repository root):
#
#     OUT=gpu-out STEPS=2000 bash results/run-gpu-moving.sh
#
# Each model's training depends only on the seed and the step (python -m solutions.train moving
# trains the models one after the other, reseeding before each), so a process per model computes
# what the one-process run computes, and the GPU, which one such small model leaves mostly idle,
# serves five at once. The last command is the one-process command with --resume: it finds every
# model finished, evaluates nothing again, and writes the table, the plots and meta.json.
set -u
OUT=${OUT:-gpu-out}
WORK=${WORK:-/tmp/gpu-moving}
PYTHON=${PYTHON:-python3}
STEPS=${STEPS:-2000}
MODELS=${MODELS:-fc conv1 conv2 conv3 conv1x1}
OPTIONS=${OPTIONS:---preset gpu --amp --amp-dtype bfloat16}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$WORK"
exec > >(tee "$OUT/log-moving.txt") 2>&1
echo "== $(date -u +%H:%M:%S) five processes, --steps $STEPS"
jobs=()
for m in $MODELS; do
  # shellcheck disable=SC2086
  "$PYTHON" -m solutions.train moving $OPTIONS --steps "$STEPS" --models "$m" --workers 2 \
    --threads 2 --no-progress --out "$WORK/$m" > "$WORK/$m.log" 2>&1 &
  jobs+=($!)
done
wait "${jobs[@]}"
echo "== $(date -u +%H:%M:%S) gathering"
run=$WORK/moving
mkdir -p "$run"
for m in $MODELS; do
  tail -2 "$WORK/$m.log"
  mv "$WORK/$m/$m" "$run/$m"
done
"$PYTHON" - "$WORK" "$run" $MODELS <<'PY'
import json, sys
from pathlib import Path
work, run, models = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
config = json.loads((work / models[0] / "config.json").read_text())
(run / "config.json").write_text(json.dumps({**config, "models": models}, indent=2) + "\n")
walls = {m: json.loads((work / m / "meta.json").read_text())["wall_s"] for m in models}
(run / "wall_s_per_process.json").write_text(json.dumps(walls, indent=2) + "\n")
print("wall time of each process:", walls)
PY
# shellcheck disable=SC2086
"$PYTHON" -m solutions.train moving $OPTIONS --steps "$STEPS" --models "${MODELS// /,}" \
  --no-progress --resume --out "$run"
echo "== $(date -u +%H:%M:%S) packing"
tar czf "$OUT/moving.tgz" --exclude=checkpoint.pt -C "$WORK" .
ls -la "$OUT"
