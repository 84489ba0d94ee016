#!/usr/bin/env bash
# The one prepared GPU lease for bench/accuracy.md and bench/speed.md: speed benchmark first (quiet GPU),
# then the cross-validation sweep, its jobs in parallel (16 CPU cores augment, one GPU trains), then the
# distilled students, which need the sweep's teachers. Everything prints to stdout; results come back in $OUT.
#
#   here:   python bench/gpu_pack.py                     (builds .device/: data + weight packages, git-ignored)
#   device: bash bench/gpu_sweep.sh                      (about 7 minutes on one H100/H200)
#   smoke:  PY=.venv/bin/python SKIP_BENCH=1 EXTRA="--limit 48 --epochs 1 --image-size 64" bash bench/gpu_sweep.sh
#
# Every job is an ordinary `python -m dance ...` command; the same line runs on a CPU (slowly).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
EXTRA=${EXTRA:-}
OUT=${OUT:-$(mktemp -d)}
DEADLINE=${DEADLINE:-530}   # seconds after start by which every job must have ended, so the results still pack
export PYTHONPATH=$PWD/.device/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 DANCE_DATA=$PWD/.device/data
LOG=runs/logs
rm -rf runs/cv/gpu-* runs/gpu "$LOG"
mkdir -p "$LOG" runs/gpu

"$PY" -c "import torch, torchvision, dance.cli, efficientnet_lite_pytorch; print('torch', torch.__version__, 'torchvision', torchvision.__version__)" || exit 1
[ -n "${SKIP_BENCH:-}" ] || OUT=$(mktemp -d) bash bench/gpu_bench.sh "$DANCE_DATA"

source bench/gpu_jobs.sh  # left, job

echo "== sweep, phase 1 (parallel), $(date -u +%T)"
job lite2-320 cv --model effnet-lite2 --image-size 320 --epochs 30 --tta --workers 4 --save-fold-models --name gpu-lite2-320-e30
job lite2-320-mixup cv --model effnet-lite2 --image-size 320 --epochs 30 --mixup 0.2 --tta --workers 3 --name gpu-lite2-320-e30-mixup
job lite1-260 cv --model effnet-lite1 --image-size 260 --epochs 30 --tta --workers 3 --name gpu-lite1-260-e30
job lite0-224 cv --model effnet-lite0 --epochs 30 --tta --workers 2 --name gpu-lite0-224-e30
job lite0-224-e12 cv --model effnet-lite0 --tta --workers 2 --name gpu-lite0-224-e12
job seed-article cv --recipe article --tta --workers 2 --name gpu-seed-cnn-article
job seed-bn-article cv --recipe article --model seed-cnn-bn --tta --workers 2 --name gpu-seed-cnn-bn-article
job seed-default cv --model seed-cnn --epochs 60 --tta --workers 2 --name gpu-seed-cnn-e60
job teacher-all train --model effnet-lite2 --image-size 320 --epochs 30 --val-fraction 0 --workers 3 --output runs/gpu/lite2-320-e30-all
job lite0-all train --model effnet-lite0 --epochs 30 --val-fraction 0 --workers 2 --output runs/gpu/lite0-224-e30-all
# phase 2 needs the fold teachers and the all-data teacher; start each student as soon as its teacher exists
while [ ! -f runs/cv/gpu-lite2-320-e30/report.json ] && [ "$(left)" -gt 60 ] && jobs -r | grep -q .; do sleep 2; done
echo "== sweep, phase 2: distilled students, $(date -u +%T)"
job distil-cv cv --model effnet-lite0 --epochs 30 --tta --workers 4 --teacher 'runs/cv/gpu-lite2-320-e30/folds/fold-{fold}' --name gpu-lite0-224-e30-distil-lite2
while [ ! -f runs/gpu/lite2-320-e30-all.json ] && [ "$(left)" -gt 60 ] && jobs -r | grep -q .; do sleep 2; done
job distil-all train --model effnet-lite0 --epochs 30 --val-fraction 0 --workers 3 --teacher runs/gpu/lite2-320-e30-all --output runs/gpu/lite0-224-e30-distil-lite2-all
wait
echo "== sweep done, $(date -u +%T), $SECONDS s"

"$PY" - <<'EOF'
import json
from pathlib import Path
for path in sorted(Path("runs/cv").glob("gpu-*/report.json")):
    r = json.loads(path.read_text())
    t = r.get("tta_metrics") or {}
    tta = f"  TTA macro-F1 {t['macro_f1']['mean']:.4f} ± {t['macro_f1']['std']:.4f} acc {t['accuracy']['mean']:.4f}" if t else ""
    print(f"{r['name']:34s} macro-F1 {r['macro_f1']['mean']:.4f} ± {r['macro_f1']['std']:.4f}  "
          f"acc {r['accuracy']['mean']:.4f} ± {r['accuracy']['std']:.4f}{tta}  {r['train_seconds_total']} s  {r['device']}")
for weights in sorted(Path("runs/gpu").glob("*.safetensors")):
    path = weights.with_suffix(".json")
    meta = json.loads(path.read_text())
    h = meta.get("history", [])
    print(f"{path.stem:34s} trained {len(h)} epochs in {sum(r['seconds'] for r in h):.1f} s, final train loss "
          f"{h[-1]['train_loss']:.4f}" if h else path.stem)
EOF

mkdir -p "$OUT"
# at most 8 files of <= 16 MiB come back: one archive of reports and logs, the checkpoints in 15 MiB parts
tar czf "$OUT/results.tgz" runs/logs $(ls runs/cv/gpu-*/report.* runs/cv/gpu-*/oof*.csv 2>/dev/null)
tar cf - --exclude='*.html' runs/gpu | split -b 15m - "$OUT/checkpoints.tar.part-"
ls -l "$OUT"
