"""Evidence run: train a small CycleGAN on Animal-MNIST horse ↔ zebra and score it against the untrained networks.

    OMP_NUM_THREADS=2 .venv/bin/python plugins/cyclegan/scripts/evidence.py --steps 800 --seeds 0 1 \
        --out runs/cyclegan_evidence --grid plugins/cyclegan/docs/horse2zebra_samples.png

Per seed: the scores of ``ganzoo_cyclegan.evaluate`` (judge accuracy in both directions, cycle L1, KID to the
target domain) before and after training, in eval mode on the 200 held-out test images; a JSON line per seed and a
summary go to stdout and ``OUT/evidence.json``. ``--grid`` writes rows of (horse, → zebra, → horse again) and
(zebra, → horse, → zebra again) for the first seed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from ganzoo_cyclegan.evaluate import held_out_domains, score

import ganzoo_core as gz
from ganzoo_core.training import TrainCfg, train
from ganzoo_core.visual import save_grid

SMALL = {"ngf": 32, "n_blocks": 3}  # the small CycleGAN: ngf 32, 3 residual blocks


def build(seed: int, ngf: int, n_blocks: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return gz.create_objective("cyclegan.small32", generator_kwargs={"ngf": ngf, "n_blocks": n_blocks})


def run_seed(seed: int, args: argparse.Namespace, real_a: torch.Tensor, real_b: torch.Tensor) -> dict:
    objective = build(seed, args.ngf, args.n_blocks)
    untrained = score(objective, real_a, real_b)
    t0 = time.perf_counter()
    cfg = TrainCfg(steps=args.steps, batch_size=args.batch_size, seed=seed, device=args.device, log_every=100,
                   sample_every=0, checkpoint_every=0, progress=False, tensorboard=False)
    train(objective, gz.create_dataset("cyclegan.horse2zebra"), args.out / f"seed{seed}", cfg)
    seconds = time.perf_counter() - t0
    trained = score(objective.cpu(), real_a, real_b)
    return {"seed": seed, "steps": args.steps, "train_seconds": round(seconds, 1), "untrained": untrained,
            "trained": trained, "objective": objective}


def write_grid(objective: torch.nn.Module, real_a: torch.Tensor, real_b: torch.Tensor, path: Path, n: int = 8) -> None:
    objective.eval()
    with torch.no_grad():
        a, b = real_a[:n], real_b[:n]
        fake_b, fake_a = objective.networks["G_A"](a), objective.networks["G_B"](b)
        rows = [a, fake_b, objective.networks["G_B"](fake_b), b, fake_a, objective.networks["G_A"](fake_a)]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_grid(torch.cat(rows).clamp(-1, 1), path, nrow=n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--ngf", type=int, default=SMALL["ngf"])
    parser.add_argument("--n-blocks", type=int, default=SMALL["n_blocks"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("runs/cyclegan_evidence"))
    parser.add_argument("--grid", type=Path, help="write a sample grid PNG of the first seed here")
    args = parser.parse_args()
    real_a, real_b = held_out_domains()
    results = []
    for seed in args.seeds:
        result = run_seed(seed, args, real_a, real_b)
        objective = result.pop("objective")
        if args.grid is not None and seed == args.seeds[0]:
            write_grid(objective, real_a, real_b, args.grid)
        print(json.dumps(result), flush=True)
        results.append(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "evidence.json").write_text(json.dumps(
        {"config": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=2))


if __name__ == "__main__":
    main()
