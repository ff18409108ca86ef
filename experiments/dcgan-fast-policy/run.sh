#!/usr/bin/env bash
# Trains and scores the four runs of this experiment, two at a time (one thread each), then writes results.json.
# Usage, from the repository root: bash experiments/dcgan-fast-policy/run.sh [RUNS_DIR]   (default runs/fast-policy)
set -euo pipefail
here=experiments/dcgan-fast-policy
runs=${1:-runs/fast-policy}
py=${PYTHON:-.venv/bin/python}
mkdir -p "$runs"
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
# the reference policy: every op on its reference, through a choice cache that names "ref" for each op
ref_cache="$runs/ref-impls.json"
GANZOO_IMPL_CACHE="$ref_cache" "$py" -c \
  "from ganzoo_core import ops; ops.write_cache({f'{op}/cpu': 'ref' for op in ops.list_ops()})"
train() {  # NAME SEED FLAGS...
  local name=$1 seed=$2; shift 2
  "$py" -m ganzoo_core.cli train --config "$here/config.toml" --seed "$seed" --out "$runs/$name" --no-progress \
    --overwrite "$@" > "$runs/$name.log" 2>&1
}
for seed in 0 1; do
  GANZOO_IMPL_CACHE="$ref_cache" train "fp32-s$seed" "$seed" &
  train "fast-s$seed" "$seed" --precision bf16 --channels-last --fused-adam &
  wait
done
for name in fp32-s0 fp32-s1 fast-s0 fast-s1; do
  "$py" -m ganzoo_core.cli eval "$runs/$name/checkpoint.safetensors" --config "$here/config.toml" --no-progress \
    --out "$runs/$name.eval.json" --overwrite > /dev/null &
  [ "$name" = fp32-s1 ] && wait
done
wait
"$py" - "$runs" "$here/results.json" <<'PY'
import json, sys, time
from pathlib import Path
runs, out = Path(sys.argv[1]), Path(sys.argv[2])
scores = {name: json.loads((runs / f"{name}.eval.json").read_text()) for name in ("fp32-s0", "fp32-s1", "fast-s0", "fast-s1")}
first = next(iter(scores.values()))
result = {
    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    "policies": {"fp32": "fp32, NCHW, every op on its reference (GANZOO_IMPL_CACHE naming ref)",
                 "fast": "--precision bf16 --channels-last --fused-adam, ops impl='auto'"},
    "runs": {name: {"fid": s["scores"]["fid"], "kid": s["scores"].get("kid"), "precision": s["scores"].get("precision"),
                    "recall": s["scores"].get("recall")} for name, s in scores.items()},
    "protocol": first.get("protocol"),
}
fids = {p: [result["runs"][f"{p}-s{i}"]["fid"] for i in (0, 1)] for p in ("fp32", "fast")}
result["summary"] = {p: {"mean": sum(v) / 2, "seeds": v, "spread": max(v) - min(v)} for p, v in fids.items()}
out.write_text(json.dumps(result, indent=2) + "\n")
print(json.dumps(result["summary"], indent=2))
PY
