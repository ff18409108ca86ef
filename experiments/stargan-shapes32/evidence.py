"""StarGAN experiments: train the objective of a run config on shapes attributes and judge the translations with the
shipped attribute classifiers, or train on emoji skin tones and write the translation grid.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/stargan-shapes32/evidence.py shapes \
        --config experiments/stargan-shapes32/config.toml --eval-at 2000 4000 --out runs/stargan-shapes32
    OMP_NUM_THREADS=1 .venv/bin/python experiments/stargan-shapes32/evidence.py emoji \
        --config experiments/stargan-emoji-tones/config.toml --out runs/stargan-emoji-tones

The objective (name and ``[set]``), the dataset (``data``, ``[data_set]``), batch size, seed and the other training
options come from ``--config``, as ``ganzoo train --config`` reads them. ``shapes`` prints and writes ``scores.json``
(untrained and trained: target-colour accuracy, preserved shape / position / size, reconstruction L1) on the 1,000
held-out images of the objective's dataset, read by each of ``--judges`` (the shipped ``attrs.shapes`` and the
blur-trained ``attrs.shapes_blur``) at each ``--eval-at`` mark (default: the config's ``steps``), and ``grid.png``
(input, then every target domain) at the end. ``emoji`` trains to the config's ``steps`` and writes ``grid.png``
(held-out emoji, then the 6 tones: none, light, medium-light, medium, medium-dark, dark) and ``scores.json`` (the
run's record). A checkpoint already under ``--out`` is resumed (``train_seconds`` then counts this run only), so a
run can be continued to later marks.
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
from ganzoo_core.metrics.attributes import JUDGES
from ganzoo_core.metrics.evaluate import write_result
from ganzoo_core.runconfig import RunConfig, read_run_config, train_cfg_of
from ganzoo_core.training import TrainCfg, dataset_for, train
from ganzoo_core.visual import save_grid


def _cfg(base: TrainCfg, steps: int, device: str) -> TrainCfg:
    return attrs.evolve(base, steps=steps, device=device, log_every=max(1, steps // 20), sample_every=0,
                        checkpoint_every=0, progress=False, tensorboard=False, resume=True)


def write_scores(out: Path, report: dict[str, Any]) -> None:
    write_result(report, out / "scores.json")  # atomically: an interrupted write leaves the previous file


def translation_grid(objective: Any, path: Path, batch: dict[str, torch.Tensor] | None = None,
                     n_inputs: int = 8) -> Path:
    """One row per input: the input, then its translation to every target domain (eval mode); without ``batch`` the
    inputs come from the objective's ``sample_dataset`` (what ``ganzoo stargan-grid`` draws)."""
    cols = 1 + objective.n_domains
    objective.eval()
    images = objective.sample(n_inputs * cols, batch=batch, seed=0)
    objective.train()
    return save_grid(images.float(), path, nrow=cols)


def build(config: RunConfig, base: TrainCfg, device: str) -> Any:
    torch.manual_seed(base.seed)
    return gz.create_objective(config.train["objective"], **config.set).to(device)


def shapes(args: argparse.Namespace, config: RunConfig, base: TrainCfg) -> dict:
    """Train to each ``--eval-at`` mark in turn (resuming exactly) and score the held-out translations there with
    every judge in ``--judges`` (the first one's numbers are the headline ``trained``)."""
    objective = build(config, base, args.device)
    test = gz.create_dataset(objective.cfg.dataset, split="test")  # the label vector the objective was built for
    judges = {name: gz.create_encoder(name) for name in args.judges}
    translation_scores = gz.create_metric("stargan.shapes_translation")

    def score() -> dict[str, Any]:
        return {name: translation_scores(objective, test, judge=net) for name, net in judges.items()}

    untrained = score()
    t0 = time.perf_counter()
    train_data = dataset_for(objective, config.train.get("data"), **config.data_set)
    curve: list[dict[str, Any]] = []

    def report() -> dict[str, Any]:
        return {"config": str(args.config), "objective": config.train["objective"], "overrides": dict(config.set),
                "steps": curve[-1]["step"], "batch_size": base.batch_size, "seed": base.seed,
                "train_seconds": curve[-1]["train_seconds"], "judges": args.judges,
                "untrained": untrained[args.judges[0]], "trained": curve[-1]["by_judge"][args.judges[0]],
                "untrained_by_judge": untrained, "curve": curve}

    for mark in args.eval_at or [base.steps]:
        if train(objective, train_data, args.out, _cfg(base, mark, args.device)).interrupted:
            raise SystemExit(f"stopped before the {mark}-step mark; run the same command again to resume")
        curve.append({"step": mark, "train_seconds": time.perf_counter() - t0, "by_judge": score()})
        for name, got in curve[-1]["by_judge"].items():
            print(f"step {mark} ({name}): target {got['target']:.3f} preserved {got['preserved']} "
                  f"rec L1 {got['rec_l1']:.3f}", flush=True)
        write_scores(args.out, report())  # after every mark: an interrupted run keeps the marks it reached
    translation_grid(objective, args.out / "grid.png")
    return report()


def emoji(args: argparse.Namespace, config: RunConfig, base: TrainCfg) -> dict:
    objective = build(config, base, args.device)
    t0 = time.perf_counter()
    data = dataset_for(objective, config.train.get("data"), **config.data_set)
    result = train(objective, data, args.out, _cfg(base, base.steps, args.device))
    test = dataset_for(objective, config.train.get("data"), **{**config.data_set, "split": "test"})
    batch = {k: torch.stack([test[i][k] for i in range(0, len(test), len(test) // 8)][:8]).to(args.device)
             for k in ("image", "label")}
    grid = translation_grid(objective, args.out / "grid.png", batch=batch)
    last = result.history[-1] if result.history else {}
    return {"config": str(args.config), "objective": config.train["objective"], "steps": base.steps,
            "train_seconds": time.perf_counter() - t0, "grid": str(grid), "last_log": last}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", choices=("shapes", "emoji"))
    p.add_argument("--config", type=Path, required=True, help="the experiment's run config (config.toml)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, help="run folder (default: runs/<the config's folder name>)")
    p.add_argument("--eval-at", type=int, nargs="+",
                   help="shapes: steps at which to score (ascending; default: the config's steps)")
    p.add_argument("--judges", nargs="+", default=list(JUDGES),
                   help="shapes: attribute classifiers that read the translations (the first is the headline)")
    args = p.parse_args()
    if args.eval_at and args.eval_at != sorted(args.eval_at):
        p.error(f"--eval-at must be ascending, got {args.eval_at}")
    config = read_run_config(args.config)
    base = train_cfg_of(config)
    args.out = args.out or Path("runs") / args.config.resolve().parent.name
    args.out.mkdir(parents=True, exist_ok=True)
    report = (shapes if args.task == "shapes" else emoji)(args, config, base)
    write_scores(args.out, report)
    print(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()
