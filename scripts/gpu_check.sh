#!/usr/bin/env bash
# The GPU checks in one command, for a bare CUDA machine that has Python and PyTorch but no .venv (and no network):
#   1. make ganzoo and its plugins importable: `pip install --no-deps --no-build-isolation -e . -e plugins/...` with
#      the machine's python (plugins whose dependencies are missing are left out); where that cannot run (no pip, no
#      hatchling), PYTHONPATH plus entry-point records written under $OUT/site, which need neither;
#   2. the op parity tests (tests/test_ops*.py, not the slow ones): on a CUDA machine they run the Triton kernels and
#      the CUDA cases on the GPU;
#   3. ganzoo bench ops --device cuda;
#   4. ganzoo bench models --all --baseline official --device cuda (every family's official iteration beside
#      ganzoo's engine, each at its documented batch size).
# Everything (JSON, charts, logs, nvidia-smi -L, a summary) goes under $OUT (default: ./gpu-check). Each step runs
# under `timeout`; a failing step is recorded and the next one runs. The step limits add up to 7.5 minutes, so the
# whole check ends within 8 on one GPU.
#
#   OUT=/tmp/gpu-check scripts/gpu_check.sh
#   GPU_CHECK_DRY=1 scripts/gpu_check.sh      # print the steps and their limits, run nothing, write nothing
#   PYTHON=python3.12 scripts/gpu_check.sh   # another interpreter (default: python3, else python)
set -u -o pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$REPO/gpu-check}
DRY=${GPU_CHECK_DRY:-0}
BUDGET_S=${GPU_CHECK_BUDGET_S:-450}  # what the steps may use together; setup and the summary take seconds
PY=${PYTHON:-$(command -v python3 || command -v python || echo python3)}
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
STEPS=()  # "name|rc|seconds" per step, for the summary
START=$SECONDS

# step NAME LIMIT_S COMMAND...: run COMMAND under `timeout` (cut to what is left of the budget), its output in
# $OUT/logs/NAME.log; in dry mode print it instead.
step() {
  local name=$1 limit=$2
  shift 2
  if [[ $DRY == 1 ]]; then
    printf 'step %-12s limit %4ss: %s\n' "$name" "$limit" "$*"
    return 0
  fi
  local left=$((BUDGET_S - (SECONDS - START)))
  if ((left < 20)); then
    echo "== $name: skipped, ${left}s left of the ${BUDGET_S}s budget"
    STEPS+=("$name|skipped|0")
    return 0
  fi
  ((limit > left)) && limit=$left
  echo "== $name (limit ${limit}s): $*"
  local t0=$SECONDS rc
  timeout --kill-after=10 "$limit" "$@" >"$OUT/logs/$name.log" 2>&1
  rc=$?
  tail -n 5 "$OUT/logs/$name.log" | sed 's/^/   /'
  ((rc == 124 || rc == 137)) && echo "   timed out after ${limit}s"
  STEPS+=("$name|$rc|$((SECONDS - t0))")
  return 0
}

# The machine's interpreter, with ganzoo importable; sets GANZOO (the command line) and the environment.
setup() {
  if [[ $DRY == 1 ]]; then
    echo "setup: $PY -m pip install --no-deps --no-build-isolation -e $REPO -e <each plugin whose deps import>"
    echo "       (no pip or hatchling: PYTHONPATH=$REPO:$REPO/plugins/* and entry points under $OUT/site)"
    return 0
  fi
  mkdir -p "$OUT/logs"
  {
    echo "python: $PY ($("$PY" --version 2>&1))"
    "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available",
torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")' 2>&1
    for mod in numpy pluggy attrs safetensors h5py PIL tqdm pytest matplotlib onnxruntime triton; do
      "$PY" -c "import $mod" 2>/dev/null && echo "have $mod" || echo "MISSING $mod"
    done
  } >"$OUT/env.txt" 2>&1
  (nvidia-smi -L || echo "nvidia-smi: not available") >"$OUT/nvidia-smi.txt" 2>&1
  cat "$OUT/env.txt" "$OUT/nvidia-smi.txt"
  # plugins whose own dependencies import here (their pyproject's, ganzoo-core's extras left to the core)
  PLUGINS=()
  local dir pkg
  for dir in "$REPO"/plugins/*/; do
    pkg=
    for candidate in "$dir"ganzoo_*/__init__.py; do [[ -f $candidate ]] && pkg=$(basename "$(dirname "$candidate")"); done
    [[ -n $pkg ]] || continue
    if PYTHONPATH="$REPO:$dir" "$PY" -c "import $pkg" >>"$OUT/logs/setup.log" 2>&1; then
      PLUGINS+=("$dir")
    else
      echo "plugin $(basename "$dir"): left out (its import fails here; see logs/setup.log)"
    fi
  done
  local editable=()
  for dir in "${PLUGINS[@]}"; do editable+=(-e "$dir"); done
  if "$PY" -m pip --version >/dev/null 2>&1 &&
    timeout 120 "$PY" -m pip install --no-deps --no-build-isolation --no-index -e "$REPO" "${editable[@]}" \
      >>"$OUT/logs/setup.log" 2>&1; then
    echo "installed (editable): ganzoo-core and ${#PLUGINS[@]} plugins"
  else
    echo "pip install -e did not run (no pip or no hatchling; logs/setup.log): PYTHONPATH and entry points in $OUT/site"
    "$PY" - "$OUT/site" "$REPO" "${PLUGINS[@]}" <<'EOF' >>"$OUT/logs/setup.log" 2>&1
import sys, tomllib
from pathlib import Path

site, repo, plugins = Path(sys.argv[1]), Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]]
for folder in [repo, *plugins]:
    project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    groups = project.get("entry-points", {})
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) for group, eps in groups.items()))
    (info / "RECORD").write_text("")
    print("entry points of", project["name"], "->", info)
EOF
    local path="$OUT/site:$REPO"
    for dir in "${PLUGINS[@]}"; do path+=":${dir%/}"; done
    export PYTHONPATH="$path${PYTHONPATH:+:$PYTHONPATH}"
  fi
  GANZOO=("$PY" -m ganzoo_core.cli)
  "${GANZOO[@]}" plugins >>"$OUT/logs/setup.log" 2>&1 && grep -E "^(loaded|FAILED)" "$OUT/logs/setup.log" | sed 's/^/   /'
}

summary() {
  [[ $DRY == 1 ]] && return 0
  local failed=0 entry name rc secs status
  {
    echo "gpu_check: $(date -u +%Y-%m-%dT%H:%M:%SZ), $((SECONDS - START))s in all, results in $OUT"
    printf '%-12s %8s %8s\n' step status seconds
    for entry in "${STEPS[@]}"; do
      IFS='|' read -r name rc secs <<<"$entry"
      status=ok
      [[ $rc == 0 ]] || status=$rc
      [[ $rc == 124 || $rc == 137 ]] && status=timeout
      printf '%-12s %8s %8s   logs/%s.log\n' "$name" "$status" "$secs" "$name"
    done
  } >"$OUT/summary.txt"
  cat "$OUT/summary.txt"
  for entry in "${STEPS[@]}"; do [[ ${entry#*|} == 0\|* ]] || failed=1; done
  return $failed
}

cd "$REPO" || exit 2
GANZOO=("$PY" -m ganzoo_core.cli)
setup
step op-tests 150 "$PY" -m pytest tests/test_ops.py tests/test_ops_dispatch.py tests/test_ops_norm_act.py \
  -m "not slow" -q --junitxml="$OUT/op-tests.xml"
step bench-ops 60 "${GANZOO[@]}" bench ops --device cuda --out "$OUT/ops" --overwrite --quiet
step bench-models 240 "${GANZOO[@]}" bench models --all --baseline official --device cuda --out "$OUT/models" \
  --overwrite --quiet
summary
