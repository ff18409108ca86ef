"""The paper's translation grid (each input, then one column per target domain) and ``ganzoo stargan-grid``."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader

import ganzoo_core as gz
from ganzoo_core.argtypes import device as device_arg
from ganzoo_core.visual import save_grid


def write_translation_grid(objective: Any, path: str | Path, *, batch: Mapping[str, Tensor] | None = None,
                           n_inputs: int = 8, seed: int = 0) -> Path:
    """A PNG with one row per input: the input, then its translation to every target domain (eval mode).

    ``batch`` gives the inputs and their labels; without one they come from the objective's ``sample_dataset``."""
    if n_inputs < 1:
        raise gz.GanzooError(f"n_inputs must be at least 1, got {n_inputs}")
    cols = 1 + objective.n_domains
    was_training = objective.training
    objective.eval()
    try:
        images = objective.sample(n_inputs * cols, batch=batch, seed=seed)  # (n_inputs · cols, C, H, W)
    finally:
        objective.train(was_training)
    return save_grid(images.float(), path, nrow=cols)


def _grid_command(args: argparse.Namespace) -> int:
    from ganzoo_core.overrides import parse_overrides  # the same KEY=VALUE parsing as `ganzoo train --data-set`

    objective = gz.load(args.checkpoint, device=args.device)
    if not hasattr(objective, "n_domains"):
        raise gz.GanzooError(f"{args.checkpoint} holds a {type(objective).__name__}, not a StarGAN objective")
    batch = None
    if args.data:
        data = gz.create_dataset(args.data, **parse_overrides(args.data_set, option="--data-set"))
        loader = DataLoader(data, batch_size=args.n_inputs, shuffle=True,
                            generator=torch.Generator().manual_seed(args.seed))
        batch = {k: v.to(args.device) for k, v in next(iter(loader)).items()}
    out = write_translation_grid(objective, args.out, batch=batch, n_inputs=args.n_inputs, seed=args.seed)
    print(f"wrote {args.n_inputs} × (input + {objective.n_domains} domains) to {out}")
    return 0


@gz.hookimpl
def ganzoo_add_commands(subparsers: argparse._SubParsersAction, context: Mapping[str, Any]) -> None:
    p = subparsers.add_parser(
        "stargan-grid", help="StarGAN translation grid: each input, then one column per target domain",
        description=f"e.g. {context['prog']} stargan-grid runs/stargan/checkpoint.safetensors --out grid.png")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--out", type=Path, default=Path("stargan_grid.png"))
    p.add_argument("--n-inputs", type=int, default=8, help="rows (input images)")
    p.add_argument("--seed", type=int, default=0, help="which inputs")
    p.add_argument("--data", help="dataset of the inputs (default: the objective's sample_dataset)")
    p.add_argument("--data-set", action="append", default=[], metavar="KEY=VALUE", help="dataset option")
    p.add_argument("--device", type=device_arg, default="cpu", help="cpu, cuda, cuda:1, ...")
    p.set_defaults(func=_grid_command)
