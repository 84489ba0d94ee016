#!/usr/bin/env bash
# Issue #14's GPU rows for bench/accuracy.md: grouped 5-fold CV x 3 repeats, each repeat a parallel job
# (`cv --only-repeat R`, joined by `cv-merge`), paired comparisons on the same folds, printed to stdout.
# Three leases, each sized to finish in about 9 minutes on one H200 (the 2026-11-26 sweep ran ten 5-fold jobs
# in 521 s there; augmentation on the 16 cores, not the GPU, was the limit):
#
#   a  teachers: lite2 320 strong and mild (fold models kept), mild ungrouped (both protocols), and the lite0
#      student distilled from the ensemble of both fold teachers with the 156 unlabelled test/ photos
#   b  levers on mild lite2 320: balanced class weights; whole-photo crops (squash first, crop scale 0.8);
#      lite0 without a teacher (the student's baseline on the same folds)
#   c  mild lite2 at 380 px; mild lite2 for 60 epochs
#
#   here:   python bench/gpu_pack.py --variants 0 2 --unlabelled --shrink 368 --xz      (a)
#           python bench/gpu_pack.py --variants 0 2 --shrink 368 --xz                   (b)
#           python bench/gpu_pack.py --variants 2 --shrink 448 --xz                     (c)
#   device: bash bench/gpu_sweep2.sh a          (run's carry: [".device"]; results.tgz comes back in $OUT)
#   smoke:  PY=.venv/bin/python EXTRA="--limit 60 --epochs 1 --image-size 48 --folds 2 --freeze-epochs 0" \
#           DANCE_DATA=../shared/data/dance bash bench/gpu_sweep2.sh a
#
# Every job is an ordinary `python -m dance ...` command; the same line runs on a CPU (slowly).
set -uo pipefail
cd "$(dirname "$0")/.."
SWEEP=${1:?usage: bash bench/gpu_sweep2.sh a|b|c}
PY=${PY:-python3}
EXTRA=${EXTRA:-}
OUT=${OUT:-$(mktemp -d)}
DEADLINE=${DEADLINE:-480}   # seconds after start by which every training job must have ended
[ -f .device/pack.tar.xz ] && tar xJf .device/pack.tar.xz
export PYTHONPATH=$PWD/.device/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 DANCE_DATA=${DANCE_DATA:-$PWD/.device/data}
LOG=runs/logs
rm -rf runs/cv/gpu2-* "$LOG"
mkdir -p "$LOG"
"$PY" -c "import torch, dance.cli, efficientnet_lite_pytorch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU')" || exit 1

source bench/gpu_jobs.sh  # left, job
repeats() {  # repeats NAME ARGS...: the 3 repeats of one recipe as 3 parallel jobs named runs/cv/NAME-r<R>
  local name=$1; shift
  for r in 0 1 2; do job "$name-r$r" cv --repeats 3 --only-repeat "$r" --tta --workers 2 "$@" --name "$name-r$r"; done
}
await() {  # await RUN...: until every run's report exists, the deadline nears, or nothing is running
  for run in "$@"; do
    while [ ! -f "runs/cv/$run/report.json" ] && [ "$(left)" -gt 60 ] && jobs -r | grep -q .; do sleep 2; done
  done
}
merge() {  # merge NAME: join NAME-r0..2 into NAME (when all three finished)
  local name=$1
  if ls runs/cv/"$name"-r{0,1,2}/report.json >/dev/null 2>&1; then
    "$PY" -m dance cv-merge "$name" runs/cv/"$name"-r{0,1,2}
  else echo "[$name] not merged: a repeat did not finish"; fi
}
compare() {  # compare A B [options]: paired comparison on the same folds, if both exist
  if [ -f "runs/cv/$1/report.json" ] && [ -f "runs/cv/$2/report.json" ]; then
    "$PY" -m dance cv-compare "runs/cv/$1" "runs/cv/$2" "${@:3}"; fi
}

L2="--model effnet-lite2 --image-size 320 --epochs 30"
echo "== sweep $SWEEP, $(date -u +%T)"
case $SWEEP in
a)
  repeats gpu2-lite2-320-strong $L2 --save-fold-models
  repeats gpu2-lite2-320-mild --recipe mild $L2 --save-fold-models
  job gpu2-lite2-320-mild-ungrouped cv --recipe mild $L2 --ungrouped --tta --workers 2 --name gpu2-lite2-320-mild-ungrouped
  for r in 0 1 2; do  # each student repeat starts as soon as both of its teachers' repeats are done
    await "gpu2-lite2-320-strong-r$r" "gpu2-lite2-320-mild-r$r"
    job "gpu2-lite0-distil-ens-unl-r$r" cv --model effnet-lite0 --epochs 30 --repeats 3 --only-repeat "$r" --tta \
      --workers 2 --unlabelled "$DANCE_DATA/test" --name "gpu2-lite0-distil-ens-unl-r$r" \
      --teacher "runs/cv/gpu2-lite2-320-strong-r$r/folds/fold-{fold},runs/cv/gpu2-lite2-320-mild-r$r/folds/fold-{fold}"
  done
  wait
  for name in gpu2-lite2-320-strong gpu2-lite2-320-mild gpu2-lite0-distil-ens-unl; do merge $name; done
  [ -f runs/cv/gpu2-lite2-320-mild/report.json ] && "$PY" -m dance cv-ensemble runs/cv/gpu2-lite2-320-strong \
    runs/cv/gpu2-lite2-320-mild --tta --name gpu2-ensemble-strong-mild
  compare gpu2-lite2-320-strong gpu2-lite2-320-mild
  compare gpu2-lite2-320-strong gpu2-lite2-320-mild --tta
  compare gpu2-lite2-320-strong gpu2-lite2-320-mild --metric f1:kuchipudi
  compare gpu2-lite2-320-mild gpu2-ensemble-strong-mild
  compare gpu2-lite2-320-strong gpu2-lite0-distil-ens-unl
  ;;
b)
  repeats gpu2-lite2-320-mild-balanced --recipe mild $L2 --class-weights balanced
  repeats gpu2-lite2-320-mild-whole --recipe mild $L2 --aug-squash-first true --aug-crop-scale 0.8
  repeats gpu2-lite0-224 --model effnet-lite0 --epochs 30
  wait
  for name in gpu2-lite2-320-mild-balanced gpu2-lite2-320-mild-whole gpu2-lite0-224; do merge $name; done
  ;;
c)
  repeats gpu2-lite2-380-mild --recipe mild --model effnet-lite2 --image-size 380 --epochs 30
  repeats gpu2-lite2-320-mild-e60 --recipe mild $L2 --epochs 60
  wait
  for name in gpu2-lite2-380-mild gpu2-lite2-320-mild-e60; do merge $name; done
  ;;
*) echo "unknown sweep $SWEEP (a, b or c)"; exit 2 ;;
esac
echo "== sweep $SWEEP done, $(date -u +%T), $SECONDS s"
grep -h "^\[" "$LOG"/*.log
"$PY" -m bench.accuracy_table runs/cv --only 'gpu2-*' --compare-to gpu2-lite2-320-strong

mkdir -p "$OUT"
# reports, out-of-fold files and logs come back (fold models stay: they are teachers for this lease only)
tar czf "$OUT/results.tgz" runs/logs $(ls runs/cv/gpu2-*/report.* runs/cv/gpu2-*/oof*.csv 2>/dev/null)
ls -l "$OUT"
