"""pix2pix evidence: L1 + cGAN against L1 alone on the same step budget, and a colorization example grid.

    HF_HUB_OFFLINE=1 .venv/bin/python plugins/pix2pix-unet/scripts/evidence.py --steps 1000 --out runs/pix2pix_evidence

Both objectives train pix2pix.emoji_32 networks (U-Net 5 downs ngf 32, PatchGAN n_layers 2) on the emoji train split
(Symbola line art → Noto colour, 32×32) with the same seed, batch and steps; held-out L1 and PSNR on the test split
are measured with the generator in eval mode (running statistics, no dropout) and in the originals' test mode
(batch statistics, dropout on). Then pix2pix.colorize_32 (L → ab) trains on emoji.noto and writes
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
from ganzoo_core.training import TrainCfg, train
from ganzoo_core.visual import save_grid

HERE = Path(__file__).resolve().parents[1]


def stacked(data: Any) -> dict[str, torch.Tensor]:
    return {k: torch.stack([data[i][k] for i in range(len(data))]) for k in ("image", "image_b")}


def scores(objective: Any, batch: dict[str, torch.Tensor], **modes: Any) -> dict[str, float]:
    """Held-out L1 and PSNR (images in [-1, 1], peak-to-peak 2) of G(A) against B (colorization: in ab)."""
    objective.eval()
    probe = gz.create_objective(objective.spec_name, **{**objective.overrides, **modes, "output": "image"})
    probe.load_state_dict(objective.state_dict())
    fake = probe.eval().sample(len(batch["image"]), batch, seed=0)
    l1 = float((fake - batch["image_b"]).abs().mean())
    mse = float((fake - batch["image_b"]).square().flatten(1).mean(1).clamp_min(1e-10).log10().mean())
    return {"l1": round(l1, 4), "psnr_db": round(10 * math.log10(4.0) - 10 * mse, 2)}


def build(name: str, **overrides: Any) -> Any:
    torch.manual_seed(0)
    objective = gz.create_objective(name, **overrides)
    objective.spec_name, objective.overrides = name, overrides
    return objective


def run(name: str, steps: int, out: Path, data: str, test: dict[str, torch.Tensor]) -> dict[str, Any]:
    objective = build(name)
    eval_modes = {"sample_norm": "running", "sample_dropout": False}
    untrained = scores(objective, test, **eval_modes)
    train(objective, gz.create_dataset(data, split="train"), out / name,
          TrainCfg(steps=steps, batch_size=16, seed=0, log_every=max(steps // 5, 1), sample_every=0,
                   checkpoint_every=0, progress=False, tensorboard=False))
    return {"untrained_eval": untrained, "eval": scores(objective, test, **eval_modes),
            "train_mode": scores(objective, test), "objective": objective}


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
    parser.add_argument("--color-steps", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("runs/pix2pix_evidence"))
    args = parser.parse_args()
    test = stacked(gz.create_dataset("pix2pix.emoji", split="test"))
    report: dict[str, Any] = {"steps": args.steps, "batch_size": 16, "n_test": len(test["image"])}
    for name in ("pix2pix.emoji_32", "pix2pix.emoji_32_l1") if args.steps > 0 else ():  # --steps 0: colour only
        result = run(name, args.steps, args.out, "pix2pix.emoji", test)
        result.pop("objective")
        report[name] = result
        print(name, json.dumps(result), flush=True)
    lab_test = stacked(gz.create_dataset("pix2pix.lab", split="test"))
    color = run("pix2pix.colorize_32", args.color_steps, args.out, "pix2pix.lab", lab_test)
    grid = colorize_grid(color.pop("objective"), 8, HERE / "docs" / "colorize_grid.png")
    report["pix2pix.colorize_32"] = {**color, "steps": args.color_steps, "grid": str(grid)}
    print(json.dumps(report, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "evidence.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
