#!/usr/bin/env bash
# Set everything up, then run the whole test suite (learning and packaging tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=1
.venv/bin/ruff check ganzoo_core plugins tests scripts benchmarks experiments
# two worker processes (pytest-xdist), one thread each: the suite's many small tests keep both cores busy, and the
# slowest tests are listed at the end so the CI budget can be watched
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
.venv/bin/python -m pytest -n "${GANZOO_TEST_WORKERS:-2}" --durations=25 "$@"
