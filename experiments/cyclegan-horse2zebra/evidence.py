"""CycleGAN experiment: train the objective of a run config on Animal-MNIST horse ↔ zebra and score it against the
untrained networks.

    OMP_NUM_THREADS=2 .venv/bin/python experiments/cyclegan-horse2zebra/evidence.py \
        --config experiments/cyclegan-horse2zebra/config.toml --seeds 0 1 --out runs/cyclegan-horse2zebra \
        --grid runs/cyclegan-horse2zebra/horse2zebra_samples.png

The objective (name and ``[set]``), the dataset, steps, batch size and the other training options come from
``--config``, as ``ganzoo train --config`` reads them; ``--seeds`` replaces the config's seed, one run per seed.
Per seed: the scores of the metric ``cyclegan.horse2zebra`` (judge accuracy in both directions, cycle L1, KID to the
target domain) before and after training, in eval mode on the 200 held-out test images; a JSON line per seed and a
summary go to stdout and ``OUT/evidence.json``. ``--grid`` writes rows of (horse, → zebra, → horse again) and
(zebra, → horse, → zebra again) for the first seed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import attrs
import torch

import ganzoo_core as gz
from ganzoo_core.runconfig import RunConfig, read_run_config, train_cfg_of
from ganzoo_core.training import TrainCfg, dataset_for, train
from ganzoo_core.visual import save_grid


def build(config: RunConfig, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return gz.create_objective(config.train["objective"], **config.set)


def run_seed(seed: int, args: argparse.Namespace, config: RunConfig, base: TrainCfg, real_a: torch.Tensor,
             real_b: torch.Tensor) -> dict:
    objective = build(config, seed)
    score = gz.create_metric("cyclegan.horse2zebra")
    untrained = score(objective, real_a, real_b)
    t0 = time.perf_counter()
    cfg = attrs.evolve(base, seed=seed, device=args.device, log_every=100, sample_every=0, checkpoint_every=0,
                       progress=False, tensorboard=False)
    train(objective, dataset_for(objective, config.train.get("data"), **config.data_set), args.out / f"seed{seed}",
          cfg)
    seconds = time.perf_counter() - t0
    trained = score(objective.cpu(), real_a, real_b)
    return {"seed": seed, "steps": base.steps, "train_seconds": round(seconds, 1), "untrained": untrained,
            "trained": trained, "objective": objective}


def write_grid(objective: Any, real_a: torch.Tensor, real_b: torch.Tensor, path: Path, n: int = 8) -> None:
    objective.eval()
    with torch.no_grad():
        a, b = real_a[:n], real_b[:n]
        fake_b, fake_a = objective.networks["G_A"](a), objective.networks["G_B"](b)
        rows = [a, fake_b, objective.networks["G_B"](fake_b), b, fake_a, objective.networks["G_A"](fake_a)]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_grid(torch.cat(rows).clamp(-1, 1), path, nrow=n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="the experiment's run config (config.toml)")
    parser.add_argument("--seeds", type=int, nargs="+", help="one run per seed (default: the config's seed)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, help="run folder (default: runs/<the config's folder name>)")
    parser.add_argument("--grid", type=Path, help="write a sample grid PNG of the first seed here")
    args = parser.parse_args()
    config = read_run_config(args.config)
    base = train_cfg_of(config)
    args.seeds = args.seeds or [base.seed]
    args.out = args.out or Path("runs") / args.config.resolve().parent.name
    probe = build(config, base.seed)  # the held-out images at the size and channels of the objective's networks
    test = dataset_for(probe, config.train.get("data"), **{**config.data_set, "split": "test"})
    real_a, real_b = test.domain("A"), test.domain("B")
    results = []
    for seed in args.seeds:
        result = run_seed(seed, args, config, base, real_a, real_b)
        objective = result.pop("objective")
        if args.grid is not None and seed == args.seeds[0]:
            write_grid(objective, real_a, real_b, args.grid)
        print(json.dumps(result), flush=True)
        results.append(result)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {"config": str(args.config), "objective": config.train["objective"], "overrides": dict(config.set),
                "steps": base.steps, "batch_size": base.batch_size, "seeds": args.seeds, "device": args.device,
                "out": str(args.out), "grid": str(args.grid)}
    (args.out / "evidence.json").write_text(json.dumps({"config": settings, "results": results}, indent=2))


if __name__ == "__main__":
    main()
