"""pix2pix evidence: L1 + cGAN against L1 alone on the same step budget, and a colorization example grid.

    HF_HUB_OFFLINE=1 .venv/bin/python plugins/pix2pix-unet/scripts/evidence.py --steps 1000 --out runs/pix2pix_evidence

Both objectives train pix2pix.emoji_32 networks (U-Net 5 downs ngf 32, PatchGAN n_layers 2) on the emoji train split
(Symbola line art → Noto colour, 32×32) with the same seed, batch and steps; held-out L1 and PSNR on the test split
are measured with the generator in eval mode (running statistics, no dropout) and in the originals' test mode
(batch statistics, dropout on), and so is the domain FID / KID: the translations of the held-out line art against
the held-out colour emoji, in the feature space of ``domain.emoji`` (the shipped CLDR-group classifier of Noto emoji,
trained on the emoji.noto train split, which holds none of the test emoji). ``real_floor`` is the same distance
between the train and test colour emoji: what a perfect generator would score with this few test images.
Then pix2pix.colorize_32 (L → ab) trains on emoji.noto and writes
plugins/pix2pix-unet/docs/colorize_grid.png: rows of grey input, prediction, truth for held-out emoji.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import torch

import ganzoo_core as gz
from ganzoo_core.metrics.scores import fid, kid
from ganzoo_core.training import TrainCfg, train
from ganzoo_core.visual import save_grid

HERE = Path(__file__).resolve().parents[1]


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


def run(name: str, steps: int, out: Path, data: str, test: dict[str, torch.Tensor],
        extractor: Any = None, seed: int = 0) -> dict[str, Any]:
    objective = build(name, seed)
    eval_modes = {"sample_norm": "running", "sample_dropout": False}
    untrained = scores(objective, test, extractor, **eval_modes)
    train(objective, gz.create_dataset(data, split="train"), out / name,
          TrainCfg(steps=steps, batch_size=16, seed=seed, log_every=max(steps // 5, 1), sample_every=0,
                   checkpoint_every=0, progress=False, tensorboard=False))
    return {"untrained_eval": untrained, "eval": scores(objective, test, extractor, **eval_modes),
            "train_mode": scores(objective, test, extractor), "objective": objective}


def colorize_grid(objective: Any, n: int, path: Path) -> Path:
    test = stacked(gz.create_dataset("pix2pix.lab", split="test"))
    batch = {k: v[:n] for k, v in test.items()}
    objective.eval()
    pred = objective.sample(n, batch, seed=0)
    from ganzoo_pix2pix_unet.color import pix2pix_to_rgb

    grey = pix2pix_to_rgb(batch["image"], torch.zeros_like(batch["image_b"]))
    truth = pix2pix_to_rgb(batch["image"], batch["image_b"])
    return save_grid(torch.cat([grey, pred, truth]).float(), path, nrow=n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--color-steps", type=int, default=1000, help="0: no colorization run, no grid")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and data order of both objectives")
    parser.add_argument("--out", type=Path, default=Path("runs/pix2pix_evidence"))
    args = parser.parse_args()
    test = stacked(gz.create_dataset("pix2pix.emoji", split="test"))
    extractor = gz.create_encoder("domain.emoji")
    train_b = stacked(gz.create_dataset("pix2pix.emoji", split="train"))["image_b"]
    report: dict[str, Any] = {"steps": args.steps, "batch_size": 16, "seed": args.seed, "n_test": len(test["image"]),
                              "extractor": extractor.protocol(),
                              "real_floor": domain_distance(extractor, test["image_b"], train_b)}
    for name in ("pix2pix.emoji_32", "pix2pix.emoji_32_l1") if args.steps > 0 else ():  # --steps 0: colour only
        result = run(name, args.steps, args.out, "pix2pix.emoji", test, extractor, args.seed)
        result.pop("objective")
        report[name] = result
        print(name, json.dumps(result), flush=True)
    if args.color_steps > 0:  # --color-steps 0: the emoji comparison only (the shipped grid is left as it is)
        lab_test = stacked(gz.create_dataset("pix2pix.lab", split="test"))
        color = run("pix2pix.colorize_32", args.color_steps, args.out, "pix2pix.lab", lab_test)
        grid = colorize_grid(color.pop("objective"), 8, HERE / "docs" / "colorize_grid.png")
        report["pix2pix.colorize_32"] = {**color, "steps": args.color_steps,
                                         "grid": str(grid.relative_to(HERE.parents[1]))}
    print(json.dumps(report, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "evidence.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
