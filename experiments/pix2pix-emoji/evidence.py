"""pix2pix experiment: L1 + cGAN against L1 alone on the same step budget, and a colorization example grid.

    HF_HUB_OFFLINE=1 .venv/bin/python experiments/pix2pix-emoji/evidence.py \
        --config experiments/pix2pix-emoji/config.toml --out runs/pix2pix-emoji

The objective of ``--config`` (``pix2pix.emoji_32``: U-Net 5 downs ngf 32, PatchGAN n_layers 2, λ_L1 = 100) trains
on the emoji train split (Symbola line art → Noto colour, 32×32), and so does the same objective with
``gan_weight=0`` (L1 alone), with the config's seed, batch and steps. Held-out L1 and PSNR on the test split are
measured with the generator in eval mode (running statistics, no dropout) and in the originals' test mode (batch
statistics, dropout on), and so is the domain FID / KID: the translations of the held-out line art against the
held-out colour emoji, in the feature space of ``domain.emoji`` (the shipped CLDR-group classifier of Noto emoji,
trained on the emoji.noto train split, which holds none of the test emoji). ``real_floor`` is the same distance
between the train and test colour emoji: what a perfect generator would score with this few test images.
Then ``pix2pix.colorize_32`` (L → ab) trains on ``pix2pix.lab`` for ``--color-steps`` and writes
``--grid`` (default ``OUT/colorize_grid.png``): rows of grey input, prediction, truth for held-out emoji (the grey
and colour images of ``pix2pix.gray``, the same source images).
Everything is written to ``OUT/evidence.json`` and printed.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import attrs
import torch

import ganzoo_core as gz
from ganzoo_core.metrics.scores import fid, kid
from ganzoo_core.runconfig import RunConfig, read_run_config, train_cfg_of
from ganzoo_core.training import TrainCfg, dataset_for, train
from ganzoo_core.visual import save_grid

COLORIZE = "pix2pix.colorize_32"  # L → ab on pix2pix.lab, the same networks with one / two channels
GREY = "pix2pix.gray"  # (grey RGB, colour RGB) pairs of the same source images, in the same order as pix2pix.lab


def stacked(data: Any) -> dict[str, torch.Tensor]:
    return {k: torch.stack([data[i][k] for i in range(len(data))]) for k in ("image", "image_b")}


def domain_distance(extractor: Any, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    """FID and KID (×1000, mean over 100 subsets) of ``fake`` against ``real`` in ``extractor``'s feature space."""
    f_real, f_fake = extractor.encode(real), extractor.encode(fake.clamp(-1, 1))
    return {"domain_fid": round(fid(f_real, f_fake), 2), "domain_kid_x1000": round(1000 * kid(f_real, f_fake).mean, 2)}


def scores(objective: Any, batch: dict[str, torch.Tensor], extractor: Any = None, **modes: Any) -> dict[str, float]:
    """Held-out L1 and PSNR (images in [-1, 1], peak-to-peak 2) of G(A) against B (colorization: in ab), and with an
    ``extractor`` the domain FID / KID of G(A) against B."""
    objective.eval()
    probe = gz.create_objective(objective.spec_name, **{**objective.overrides, **modes, "output": "image"})
    probe.load_state_dict(objective.state_dict())
    fake = probe.eval().sample(len(batch["image"]), batch, seed=0)
    l1 = float((fake - batch["image_b"]).abs().mean())
    mse = float((fake - batch["image_b"]).square().flatten(1).mean(1).clamp_min(1e-10).log10().mean())
    out = {"l1": round(l1, 4), "psnr_db": round(10 * math.log10(4.0) - 10 * mse, 2)}
    if extractor is not None:
        out.update(domain_distance(extractor, batch["image_b"], fake))
    return out


def build(name: str, seed: int = 0, **overrides: Any) -> Any:
    torch.manual_seed(seed)
    objective = gz.create_objective(name, **overrides)
    objective.spec_name, objective.overrides = name, overrides
    return objective


def split_of(objective: Any, config: RunConfig, split: str, data: str | None = None) -> Any:
    """The objective's dataset (or ``data``) with the config's ``[data_set]`` options, at ``split``."""
    options = {**config.data_set, "split": split} if data is None else {"split": split}
    return dataset_for(objective, data or config.train.get("data"), **options)


def run(name: str, overrides: dict[str, Any], out: Path, config: RunConfig, base: TrainCfg, test: dict[str, Any],
        extractor: Any = None, data: str | None = None) -> dict[str, Any]:
    objective = build(name, base.seed, **overrides)
    eval_modes = {"sample_norm": "running", "sample_dropout": False}
    untrained = scores(objective, test, extractor, **eval_modes)
    cfg = attrs.evolve(base, log_every=max(base.steps // 5, 1), sample_every=0, checkpoint_every=0, progress=False,
                       tensorboard=False)
    train(objective, split_of(objective, config, "train", data), out, cfg)
    return {"objective": name, "overrides": overrides, "untrained_eval": untrained,
            "eval": scores(objective, test, extractor, **eval_modes), "train_mode": scores(objective, test, extractor),
            "module": objective}


def colorize_grid(objective: Any, test: dict[str, torch.Tensor], n: int, path: Path) -> Path:
    """Rows: the grey input, the prediction (the objective's RGB output: input L with the predicted ab), the true
    colour image; the first ``n`` held-out images (``test``: pix2pix.lab's test split)."""
    batch = {k: v[:n] for k, v in test.items()}
    objective.eval()
    pred = objective.sample(n, batch, seed=0)
    source = objective.cfg.dataset
    cfg = gz.get_dataset_cfg(source)
    pairs = gz.create_dataset(GREY, source=cfg.source, source_kwargs=dict(cfg.source_kwargs), split="test",
                              image_size=cfg.image_size)
    grey, truth = (torch.stack([pairs[i][key] for i in range(n)]) for key in ("image", "image_b"))
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_grid(torch.cat([grey, pred, truth]).float(), path, nrow=n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="the experiment's run config (config.toml)")
    parser.add_argument("--steps", type=int, help="steps of both emoji objectives (default: the config's; 0: none)")
    parser.add_argument("--color-steps", type=int, default=1000, help="0: no colorization run, no grid")
    parser.add_argument("--out", type=Path, help="run folder (default: runs/<the config's folder name>)")
    parser.add_argument("--grid", type=Path, help="the colorization grid (default: OUT/colorize_grid.png)")
    args = parser.parse_args()
    config = read_run_config(args.config)
    base = train_cfg_of(config)
    if args.steps is not None:
        base = attrs.evolve(base, steps=max(args.steps, 1))
    args.out = args.out or Path("runs") / args.config.resolve().parent.name
    name = config.train["objective"]
    probe = build(name, base.seed, **config.set)
    test = stacked(split_of(probe, config, "test"))
    extractor = gz.create_encoder("domain.emoji")
    train_b = stacked(split_of(probe, config, "train"))["image_b"]
    report: dict[str, Any] = {"config": str(args.config), "steps": base.steps, "batch_size": base.batch_size,
                              "seed": base.seed, "n_test": len(test["image"]), "extractor": extractor.protocol(),
                              "real_floor": domain_distance(extractor, test["image_b"], train_b)}
    runs = {"l1_cgan": dict(config.set), "l1_only": {**config.set, "gan_weight": 0.0}}
    for label, overrides in runs.items() if args.steps != 0 else ():  # --steps 0: colour only
        result = run(name, overrides, args.out / label, config, base, test, extractor)
        result.pop("module")
        report[label] = result
        print(label, json.dumps(result), flush=True)
    if args.color_steps > 0:  # --color-steps 0: the emoji comparison only
        probe = build(COLORIZE, base.seed)
        lab_test = stacked(split_of(probe, config, "test", data=probe.cfg.dataset))
        color = run(COLORIZE, {}, args.out / "colorize", config, attrs.evolve(base, steps=args.color_steps), lab_test,
                    data=probe.cfg.dataset)
        grid = colorize_grid(color.pop("module"), lab_test, 8, args.grid or args.out / "colorize_grid.png")
        report["colorize"] = {**color, "steps": args.color_steps, "grid": str(grid)}
    print(json.dumps(report, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "evidence.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
