#!/usr/bin/env bash
# Set everything up, train DCGAN (dcgan.28) on real Animal-MNIST silhouettes, then sample new images.
# Leaves runs/dcgan-animal/: checkpoint.safetensors, samples.png, metrics.jsonl, new_samples.png and report.html.
# Run again, it continues the same run (--resume) and redraws new_samples.png; STEPS=300 makes a quick run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
STEPS=${STEPS:-3000}
.venv/bin/ganzoo train dcgan.28 --steps "$STEPS" --out runs/dcgan-animal --resume
.venv/bin/ganzoo sample runs/dcgan-animal/checkpoint.safetensors --n 64 --seed 7 --out runs/dcgan-animal/new_samples.png \
  --overwrite
.venv/bin/ganzoo report runs/dcgan-animal
