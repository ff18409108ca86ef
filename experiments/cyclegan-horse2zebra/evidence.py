"""CycleGAN experiment: train the objective of a run config on Animal-MNIST horse ↔ zebra and score it against the
untrained networks.

    OMP_NUM_THREADS=2 .venv/bin/python experiments/cyclegan-horse2zebra/evidence.py \
        --config experiments/cyclegan-horse2zebra/config.toml --seeds 0 1 --out runs/cyclegan-horse2zebra \
        --grid runs/cyclegan-horse2zebra/horse2zebra_samples.png

The objective (name and ``[set]``), the dataset, steps, batch size and the other training options come from
``--config``, as ``ganzoo train --config`` reads them; ``--seeds`` replaces the config's seed, one run per seed.
Per seed: the scores of ``score`` (judge accuracy in both directions, cycle L1, KID to the target domain) before
and after training, in eval mode on the 200 held-out test images; a JSON line per seed and a summary go to stdout
and ``OUT/evidence.json``. ``--grid`` writes rows of (horse, → zebra, → horse again) and (zebra, → horse, → zebra
again) for the first seed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import attrs
import torch

# Not yet reachable through the registry (the only plugin import left here): the shipped horse/zebra judge.
from ganzoo_cyclegan.judge import load_judge

import ganzoo_core as gz
from ganzoo_core.metrics.scores import mmd2_unbiased
from ganzoo_core.runconfig import RunConfig, command_defaults, read_run_config, validate_run_config
from ganzoo_core.train_cli import add_train_arguments, train_cfg_from_args
from ganzoo_core.training import TrainCfg, dataset_for, train
from ganzoo_core.visual import save_grid


def run_setting(path: Path) -> tuple[RunConfig, TrainCfg]:
    """The run config at ``path`` (checked against the registry) and the ``TrainCfg`` that ``ganzoo train --config``
    builds from it."""
    config = read_run_config(path)
    validate_run_config(config, sections=("train",))
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    parser.set_defaults(**command_defaults(config, "train", parser))
    return config, train_cfg_from_args(parser.parse_args([]))


HORSE, ZEBRA = 0, 1  # the judge's classes


@torch.no_grad()
def score(objective: Any, real_a: torch.Tensor, real_b: torch.Tensor, batch_size: int = 50) -> dict[str, float]:
    """In eval mode on test horses ``real_a`` and zebras ``real_b``: ``acc_a2b`` / ``acc_b2a``, the fraction of
    translations the horse/zebra judge puts in the target domain; ``cycle_l1``, mean |G_B(G_A(a)) − a| and
    |G_A(G_B(b)) − b| over both directions on the [-1, 1] scale; ``kid_a2b`` / ``kid_b2a``, the unbiased squared MMD
    (the KID kernel) between ``domain.animal_mnist`` features of the translations and of the real images of the
    target domain (an extractor independent of the judge); ``real_acc``, the judge on the real images."""
    was_training = objective.training
    objective.eval()
    device = next(objective.parameters()).device
    try:
        def run(net: str, x: torch.Tensor) -> torch.Tensor:
            g = objective.networks[net]
            return torch.cat([g(chunk.to(device)).float().cpu() for chunk in x.split(batch_size)]).clamp(-1, 1)

        fake_b, fake_a = run("G_A", real_a), run("G_B", real_b)
        rec_a, rec_b = run("G_B", fake_b), run("G_A", fake_a)
    finally:
        objective.train(was_training)
    judge = load_judge()
    features = gz.create_encoder("domain.animal_mnist")
    return {
        "acc_a2b": float((judge.predict(fake_b) == ZEBRA).float().mean()),
        "acc_b2a": float((judge.predict(fake_a) == HORSE).float().mean()),
        "cycle_l1": 0.5 * float((rec_a - real_a).abs().mean() + (rec_b - real_b).abs().mean()),
        "kid_a2b": mmd2_unbiased(features.encode(real_b), features.encode(fake_b)),
        "kid_b2a": mmd2_unbiased(features.encode(real_a), features.encode(fake_a)),
        "real_acc": 0.5 * float((judge.predict(real_a) == HORSE).float().mean()
                                + (judge.predict(real_b) == ZEBRA).float().mean()),
    }


def build(config: RunConfig, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return gz.create_objective(config.train["objective"], **config.set)


def run_seed(seed: int, args: argparse.Namespace, config: RunConfig, base: TrainCfg, real_a: torch.Tensor,
             real_b: torch.Tensor) -> dict:
    objective = build(config, seed)
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
    config, base = run_setting(args.config)
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
