"""Write the ganzoo-weights model folders from the runs of train.sh (beside this script).

Each table of weights.toml names a run; its final checkpoint (or one network of it) is written as a model folder
with bf16 weights and the card facts of the table, into plugins/weights/ganzoo_weights/weights/<name>/. Then each
folder is loaded back and checked against the run's fp32 checkpoint (the largest output difference is printed).

    HF_HUB_OFFLINE=1 .venv/bin/python plugins/weights/scripts/export.py [--runs runs/pretrained] [--overwrite]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import tomllib
import torch

import ganzoo_core as gz
from ganzoo_core._api import SPEC_ATTR

HERE = Path(__file__).parent
REPO = HERE.parents[2]
OUT = HERE.parent / "ganzoo_weights" / "weights"
CARD_KEYS = ("data", "steps", "command", "result", "source")


def _draw(module: torch.nn.Module) -> torch.Tensor:
    """What the module generates for fixed inputs (a generator's example inputs, an objective's sample)."""
    module.eval()
    torch.manual_seed(0)
    with torch.no_grad():
        if isinstance(module, gz.Generator) or not hasattr(module, "sample"):
            return module(*module.example_inputs(4))
        return module.sample(4, seed=0)


def export_one(name: str, table: dict, runs: Path, overwrite: bool) -> float:
    checkpoint = runs / table["run"] / "checkpoint.safetensors"
    objective = gz.load(checkpoint)
    module = objective.networks[table["network"]] if "network" in table else objective
    kind, registry_name = getattr(module, SPEC_ATTR)
    if (kind, f"{registry_name}.{name.rsplit('.', 1)[1]}") != (table["kind"], name):
        raise SystemExit(f"{name}: run {table['run']} holds {kind} {registry_name}, not what weights.toml says")
    folder = gz.write_hub_folder(module, OUT / name, dtype="bf16", tag=name.rsplit(".", 1)[1], summary=table["summary"],
                                 training={k: table[k] for k in CARD_KEYS}, overwrite=overwrite)
    shipped = gz.load(folder)
    return (_draw(shipped) - _draw(module)).abs().max().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "pretrained")
    parser.add_argument("--only", action="append", help="export only these names")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    tables = tomllib.loads((HERE / "weights.toml").read_text())["weights"]
    for name, table in tables.items():
        if args.only and name not in args.only:
            continue
        diff = export_one(name, table, args.runs, args.overwrite)
        size = (OUT / name / "model.safetensors").stat().st_size / 2**20
        print(f"{name:<32} {size:6.2f} MB  bf16 vs fp32 output: max |diff| {diff:.4f}")


if __name__ == "__main__":
    main()
