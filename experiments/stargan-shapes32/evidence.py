"""Evidence for ganzoo-stargan: train on shapes attributes and judge the translations with ``attrs.shapes``;
train on emoji skin tones and write the translation grid.

    OMP_NUM_THREADS=1 .venv/bin/python plugins/stargan/scripts/evidence.py shapes --steps 3000 --out runs/stargan_shapes
    OMP_NUM_THREADS=1 .venv/bin/python plugins/stargan/scripts/evidence.py emoji --steps 3000 --out runs/stargan_emoji

``shapes`` prints and writes ``scores.json`` (untrained and trained: target-colour accuracy, preserved shape /
position / size, reconstruction L1) on the 1,000 held-out shapes images, read by each of ``--judges`` (the shipped
``attrs.shapes`` and the blur-trained ``attrs.shapes_blur``) at each ``--eval-at`` mark; ``emoji`` writes ``grid.png`` (held-out
emoji, then the 6 tones: none, light, medium-light, medium, medium-dark, dark). A checkpoint already under
``--out`` is resumed (``train_seconds`` then counts this run only), so a run can be continued to later marks.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from ganzoo_stargan.evaluate import shapes_translation_scores
from ganzoo_stargan.grid import write_translation_grid

import ganzoo_core as gz
from ganzoo_core.checkpoints import atomic_path
from ganzoo_core.metrics.attributes import JUDGES
from ganzoo_core.training import TrainCfg, train


def _cfg(args: argparse.Namespace, steps: int | None = None) -> TrainCfg:
    steps = args.steps if steps is None else steps
    return TrainCfg(steps=steps, batch_size=args.batch_size, seed=args.seed, device=args.device,
                    log_every=max(1, steps // 20), sample_every=0, checkpoint_every=0, progress=False,
                    tensorboard=False, resume=True)


def write_scores(out: Path, report: dict[str, Any]) -> None:
    with atomic_path(out / "scores.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2, default=float))


def shapes(args: argparse.Namespace) -> dict:
    """Train to each ``--eval-at`` mark in turn (resuming exactly) and score the held-out translations there with
    every judge in ``--judges`` (the first one's numbers are the headline ``trained``)."""
    torch.manual_seed(args.seed)
    objective = gz.create_objective(args.objective).to(args.device)
    data = objective.cfg.dataset  # the label vector the objective was built for (stargan.shapes, ...)
    test = gz.create_dataset(data, split="test")
    judges = {name: gz.create_encoder(name) for name in args.judges}

    def score() -> dict[str, Any]:
        return {name: shapes_translation_scores(objective, test, judge=net) for name, net in judges.items()}

    untrained = score()
    t0 = time.perf_counter()
    train_data = gz.create_dataset(data, split="train")
    curve: list[dict[str, Any]] = []

    def report() -> dict[str, Any]:
        return {"objective": args.objective, "steps": curve[-1]["step"], "batch_size": args.batch_size,
                "seed": args.seed, "train_seconds": curve[-1]["train_seconds"], "judges": args.judges,
                "untrained": untrained[args.judges[0]], "trained": curve[-1]["by_judge"][args.judges[0]],
                "untrained_by_judge": untrained, "curve": curve}

    for mark in args.eval_at or [args.steps]:
        if train(objective, train_data, args.out, _cfg(args, mark)).interrupted:
            raise SystemExit(f"stopped before the {mark}-step mark; run the same command again to resume")
        curve.append({"step": mark, "train_seconds": time.perf_counter() - t0, "by_judge": score()})
        for name, got in curve[-1]["by_judge"].items():
            print(f"step {mark} ({name}): target {got['target']:.3f} preserved {got['preserved']} "
                  f"rec L1 {got['rec_l1']:.3f}", flush=True)
        write_scores(args.out, report())  # after every mark: an interrupted run keeps the marks it reached
    write_translation_grid(objective, args.out / "grid.png", batch=None, n_inputs=8)
    return report()


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
    p.add_argument("--eval-at", type=int, nargs="+", help="shapes: steps at which to score (ascending; default --steps)")
    p.add_argument("--judges", nargs="+", default=list(JUDGES),
                   help="shapes: attribute classifiers that read the translations (the first is the headline)")
    args = p.parse_args()
    if args.eval_at and args.eval_at != sorted(args.eval_at):
        p.error(f"--eval-at must be ascending, got {args.eval_at}")
    args.objective = args.objective or {"shapes": "stargan.tiny32", "emoji": "stargan.emoji32"}[args.task]
    args.out = args.out or Path(f"runs/stargan_{args.task}")
    args.out.mkdir(parents=True, exist_ok=True)
    report = (shapes if args.task == "shapes" else emoji)(args)
    write_scores(args.out, report)
    print(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()
