#!/usr/bin/env bash
# A short GPU lease for bench/speed.md: the training input pipelines compared on CUDA (where the model no
# longer hides the input cost), then the shipped default's recipe timed alone on a quiet GPU.
#
#   here:   python bench/gpu_pack.py --variants 0        (data + the lite0 weight package, git-ignored)
#   device: bash bench/gpu_speed.sh                       (about 2 minutes on one H100/H200)
#   smoke:  PY=.venv/bin/python DEVICE=cpu BENCH="--train-images 48 --train-steps 2" \
#           EXTRA="--epochs 3 --limit 48 --image-size 64" bash bench/gpu_speed.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
DEADLINE=${DEADLINE:-170}   # seconds; the teacher's run is skipped when too little is left
export PYTHONPATH=$PWD/.device/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 DANCE_DATA=$PWD/.device/data
DEVICE=${DEVICE:-cuda}
BENCH=${BENCH:---train-images 364 --train-steps 40}
EXTRA=${EXTRA:-}
WORK=$(mktemp -d)   # checkpoints stay here: the figures go to stdout
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
nproc

echo "== input pipelines on CUDA: ours in-process, ours with 8 workers, naive with 8 workers"
timeout $((DEADLINE - SECONDS)) "$PY" -m bench.speed --no-latency --train-device "$DEVICE" --workers 8 $BENCH \
  --output - 2>/dev/null | sed -n '/## Training input/,/^## Notes/p'

timed_train() {  # timed_train NAME ARGS...: one training run alone, its wall time and its epochs
  local name=$1; shift
  local start=$SECONDS
  timeout $((DEADLINE - SECONDS)) "$PY" -m dance train "$@" $EXTRA --output "$WORK/$name" >"$WORK/$name.log" 2>&1
  echo "$name: exit $? after $((SECONDS - start)) s wall (start-up, decoding and the teacher's load included): python -m dance train $*"
  "$PY" - "$WORK/$name.json" <<'EOF'
import json, sys
from pathlib import Path
path = Path(sys.argv[1])
if path.is_file():
    h = json.loads(path.read_text())["history"]
    secs = [r["seconds"] for r in h]
    print(f"  {len(h)} epochs in {sum(secs):.1f} s (first {secs[0]:.1f} s, second {secs[1]:.1f} s, "
          f"median of the rest {sorted(secs[2:])[len(secs[2:]) // 2]:.2f} s)")
EOF
}

echo "== the shipped default's recipe alone on the GPU"
timed_train student --model effnet-lite0 --epochs 30 --val-fraction 0 --teacher weights/large --workers 8 --device "$DEVICE"
if [ $((DEADLINE - SECONDS)) -gt 70 ]; then
  timed_train teacher --model effnet-lite2 --image-size 320 --epochs 30 --val-fraction 0 --workers 8 --device "$DEVICE"
else
  echo "teacher: skipped, $((DEADLINE - SECONDS)) s left"
fi
tail -n 3 "$WORK"/*.log
echo "== done after $SECONDS s"
