"""Evidence for ganzoo-stargan: train on shapes attributes and judge the translations with ``attrs.shapes``;
train on emoji skin tones and write the translation grid.

    OMP_NUM_THREADS=1 .venv/bin/python plugins/stargan/scripts/evidence.py shapes --steps 3000 --out runs/stargan_shapes
    OMP_NUM_THREADS=1 .venv/bin/python plugins/stargan/scripts/evidence.py emoji --steps 3000 --out runs/stargan_emoji

``shapes`` prints and writes ``scores.json`` (untrained and trained: target-colour accuracy, preserved shape /
position / size, reconstruction L1) on the 1,000 held-out shapes images; ``emoji`` writes ``grid.png`` (held-out
emoji, then the 6 tones: none, light, medium-light, medium, medium-dark, dark).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from ganzoo_stargan.evaluate import shapes_translation_scores
from ganzoo_stargan.grid import write_translation_grid

import ganzoo_core as gz
from ganzoo_core.training import TrainCfg, train


def _cfg(args: argparse.Namespace) -> TrainCfg:
    return TrainCfg(steps=args.steps, batch_size=args.batch_size, seed=args.seed, device=args.device,
                    log_every=max(1, args.steps // 20), sample_every=0, checkpoint_every=0, progress=False,
                    tensorboard=False)


def shapes(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    objective = gz.create_objective(args.objective).to(args.device)
    test = gz.create_dataset("stargan.shapes", split="test")
    untrained = shapes_translation_scores(objective, test)
    t0 = time.perf_counter()
    train(objective, gz.create_dataset("stargan.shapes", split="train"), args.out, _cfg(args))
    trained = shapes_translation_scores(objective, test)
    write_translation_grid(objective, args.out / "grid.png", batch=None, n_inputs=8)
    return {"objective": args.objective, "steps": args.steps, "batch_size": args.batch_size, "seed": args.seed,
            "train_seconds": time.perf_counter() - t0, "untrained": untrained, "trained": trained}


def emoji(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    objective = gz.create_objective(args.objective).to(args.device)
    t0 = time.perf_counter()
    result = train(objective, gz.create_dataset("emoji.tones", split="train", image_size=32), args.out, _cfg(args))
    test = gz.create_dataset("emoji.tones", split="test", image_size=32)
    batch = {k: torch.stack([test[i][k] for i in range(0, len(test), len(test) // 8)][:8]).to(args.device)
             for k in ("image", "label")}
    grid = write_translation_grid(objective, args.out / "grid.png", batch=batch, n_inputs=8)
    last = result.history[-1] if result.history else {}
    return {"objective": args.objective, "steps": args.steps, "train_seconds": time.perf_counter() - t0,
            "grid": str(grid), "last_log": last}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", choices=("shapes", "emoji"))
    p.add_argument("--objective", default=None, help="default: stargan.tiny32 (shapes), stargan.emoji32 (emoji)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    args.objective = args.objective or {"shapes": "stargan.tiny32", "emoji": "stargan.emoji32"}[args.task]
    args.out = args.out or Path(f"runs/stargan_{args.task}")
    args.out.mkdir(parents=True, exist_ok=True)
    report = (shapes if args.task == "shapes" else emoji)(args)
    (args.out / "scores.json").write_text(json.dumps(report, indent=2, default=float))
    print(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()
