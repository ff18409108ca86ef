#!/usr/bin/env bash
# Set everything up, then run the whole test suite (learning and packaging tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=1
.venv/bin/ruff check ganzoo_core plugins tests scripts benchmarks experiments
.venv/bin/python -m pytest "$@"
