#!/usr/bin/env bash
# One prepared GPU check for a session that has a CUDA machine; everything goes to stdout.
#   bash bench/gpu_bench.sh [DATA_DIR]        (about 2 minutes on one H100/H200)
# Prints: device, inference latency/throughput on CUDA (bf16 autocast + channels_last), per-epoch time,
# full-recipe effnet-lite0 train wall time and images/s, and GPU utilisation sampled by nvidia-smi.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
DATA=${1:-${DANCE_DATA:-}}
OUT=${OUT:-$(mktemp -d)}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

echo "== machine"
date -u +%FT%TZ
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi missing"
"$PY" - <<'EOF'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0), "bf16", torch.cuda.is_bf16_supported())
EOF

echo "== inference on CUDA (bf16 autocast, channels_last), untrained weights"
"$PY" - <<'EOF'
import time, torch
from dance.models.registry import REGISTRY, get_spec
assert torch.cuda.is_available(), "no CUDA device"
dev = torch.device("cuda")
for name in REGISTRY:
    spec = get_spec(name)
    s = spec.input_size
    m = spec.create(8, s, pretrained=False).eval().to(dev).to(memory_format=torch.channels_last)
    for batch in (1, 32, 256):
        x = torch.randn(batch, 3, s, s, device=dev).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            for _ in range(10):
                m(x)
            torch.cuda.synchronize()
            times = []
            for _ in range(50):
                t = time.perf_counter(); m(x); torch.cuda.synchronize(); times.append(time.perf_counter() - t)
        times.sort()
        med = times[len(times) // 2]
        print(f"{name:14s} {s}px batch {batch:3d}: median {med*1e3:7.2f} ms  p95 {times[int(.95*len(times))]*1e3:7.2f} ms"
              f"  {batch/med:9.0f} images/s")
EOF

for WORKERS in 0 6; do
echo "== training on CUDA: full default recipe, effnet-lite0, --workers $WORKERS (nvidia-smi sampled every 200 ms)"
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -lms 200 \
  > "$OUT/smi.csv" 2>/dev/null &
SMI=$!
START=$(date +%s.%N)
"$PY" -m dance train ${DATA:+--data "$DATA"} --model effnet-lite0 --device cuda --workers "$WORKERS" \
  --output "$OUT/gpu-lite0-w$WORKERS" 2>/dev/null
RC=$?
END=$(date +%s.%N)
kill "$SMI" 2>/dev/null; wait "$SMI" 2>/dev/null
echo "train exit code $RC; wall time $("$PY" -c "print(round($END - $START, 1))") s (includes start-up and decoding the images once)"
"$PY" - "$OUT/gpu-lite0-w$WORKERS.json" "$OUT/smi.csv" <<'EOF'
import json, sys
from pathlib import Path
meta = json.loads(Path(sys.argv[1]).read_text())
n_train = meta["data"]["images"] - len(meta["split"]["val_images"])
for r in meta["history"]:
    print(f"epoch {r['epoch']:2d}: {r['seconds']:6.2f} s  {n_train / r['seconds']:7.1f} train images/s (epoch incl. validation)"
          f"  val_acc {r.get('val_acc', float('nan')):.3f}")
total = sum(r["seconds"] for r in meta["history"])
print(f"all epochs: {total:.1f} s, {n_train * len(meta['history']) / total:.1f} images/s; "
      f"hold-out accuracy {meta['metrics']['holdout']['accuracy']:.4f}")
rows = [line.split(", ") for line in Path(sys.argv[2]).read_text().splitlines() if line.count(",") == 2]
util = [float(r[1]) for r in rows if r[1].strip().replace(".", "").isdigit()]
mem = [float(r[2]) for r in rows if r[2].strip().replace(".", "").isdigit()]
if util:
    busy = [u for u in util if u > 0]
    print(f"GPU utilisation over {len(util)} samples: mean {sum(util)/len(util):.0f}%, "
          f"mean while busy {sum(busy)/max(len(busy),1):.0f}%, max {max(util):.0f}%; memory max {max(mem):.0f} MiB")
EOF
done

echo "== DDP smoke test on CUDA (nccl), when more than one GPU"
NGPU=$(nvidia-smi -L 2>/dev/null | wc -l)
if [ "$NGPU" -gt 1 ]; then
  "$PY" -m torch.distributed.run --standalone --nproc_per_node="$NGPU" -m dance train ${DATA:+--data "$DATA"} \
    --model effnet-lite0 --device cuda --epochs 2 --output "$OUT/ddp-lite0" 2>/dev/null | tail -4
else
  echo "one GPU: skipped"
fi
echo "== done; files in $OUT"
