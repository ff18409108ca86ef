#!/usr/bin/env bash
# Trains every checkpoint the ganzoo-weights distribution ships, each from its experiment's config, in two lanes of
# one thread each (about 70 minutes on a 2-core CPU). Then export.py (beside this script) writes the weights folders.
#   plugins/weights/scripts/train.sh [RUNS_DIR]        (default: runs/pretrained)
set -euo pipefail
cd "$(dirname "$0")/../../.."
RUNS=${1:-runs/pretrained}
GZ=".venv/bin/ganzoo"
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
common=(--no-progress --sample-every 0 --resume)

lane_a() {
  $GZ train --config experiments/dcgan-fashion32/config.toml --out "$RUNS/dcgan-fashion32" "${common[@]}"
  # the first row of experiments/stargan-shapes32/README.md: 4,000 D steps
  $GZ train --config experiments/stargan-shapes32/config.toml --steps 4000 --out "$RUNS/stargan-shapes32" "${common[@]}"
}

lane_b() {
  $GZ train --config experiments/cyclegan-horse2zebra/config.toml --out "$RUNS/cyclegan-horse2zebra" "${common[@]}"
  $GZ train --config experiments/pix2pix-emoji/config.toml --out "$RUNS/pix2pix-emoji" "${common[@]}"
  $GZ train --config experiments/pix2pix-emoji/config.toml pix2pix.colorize_32 --out "$RUNS/pix2pix-colorize" \
    "${common[@]}"
  $GZ train --config experiments/gan-cls-emoji/config.toml --out "$RUNS/gan-cls-emoji" "${common[@]}"
  $GZ train --config experiments/stackgan-shapes/config.toml --out "$RUNS/stackgan-shapes/stage1" "${common[@]}"
  $GZ train --config experiments/stackgan-shapes/stage2.toml --out "$RUNS/stackgan-shapes/stage2" "${common[@]}" \
    --set "stage1_checkpoint=$RUNS/stackgan-shapes/stage1/checkpoint.safetensors"
}

lane_a > "$RUNS.lane_a.log" 2>&1 &
a=$!
lane_b > "$RUNS.lane_b.log" 2>&1 &
b=$!
wait $a; wait $b
