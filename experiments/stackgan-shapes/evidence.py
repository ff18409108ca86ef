#!/usr/bin/env python
"""Evidence on captioned shapes at reduced resolution (Stage-I 32 px → Stage-II 64 px by default):

1. Stage-II samples vs Stage-I samples upsampled to Stage-II size: FID and KID on the features of the shapes
   attribute classifier ``attrs.shapes`` (a domain extractor in ``ganzoo_core.metrics``; it reads 64 px images
   resized to 32), against held-out images;
   the untrained Stage-II as the baseline;
2. caption accuracy (all four attributes right, ``caption_consistency`` of ``attrs.shapes``) of both;
3. diversity (mean pairwise feature distance of 8 samples per caption) with and without Conditioning Augmentation,
   the same budget otherwise;
4. a sample grid (held-out captions; rows: caption, columns: Stage-I upsampled, Stage-II, for 4 seeds) written to
   ``plugins/stackgan/docs/samples.png``.

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 .venv/bin/python plugins/stackgan/scripts/evidence.py --out runs/stackgan_evidence

Networks: Stage-I ``stackgan.s1_32`` with ngf 128 (D ndf 32); Stage-II the ``stackgan.s2_64`` objective (its D: 64
px, ndf 16, unconditional head) with the 32 px-input generator of ``s2_128`` built at image_size 64, ngf 16. Both
Ds read the text embedding (``cond_input="text"``, the small variants' default). Each stage halves its learning
rates half way.

Writes ``<out>/evidence.json`` and prints it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from ganzoo_stackgan.pipeline import (
    _condition_batch,
    caption_accuracy,
    compare_stages,
    diversity,
    train_stages,
    upsample_to,
)

import ganzoo_core as gz
from ganzoo_core.visual import save_grid

DOCS = Path(__file__).resolve().parent.parent / "docs"
REPO = DOCS.parents[2]


def shown(path: Path) -> str:
    """``path`` as a result file records it: relative to the repository when inside it."""
    resolved = path.resolve()
    return str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else str(path)


def sample_grid(objective, dataset, path: Path, n_captions: int = 6, seeds: int = 4) -> list[str]:
    batch, captions = _condition_batch(dataset, n_captions, seed=123)
    text = batch["text_emb"].repeat_interleave(seeds, 0)
    rows = []
    for s in range(seeds):  # one seed per column pair, every caption
        high, low = objective.sample_stages(n_captions, batch, seed=s)
        rows.append((upsample_to(low, high.shape[-1]).cpu(), high.cpu()))
    del text
    cells = [img for c in range(n_captions) for s in range(seeds) for img in (rows[s][0][c], rows[s][1][c])]
    save_grid(torch.stack(cells), path, nrow=2 * seeds)
    return captions


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stage1", default="stackgan.s1_32")
    p.add_argument("--stage2", default="stackgan.s2_64")
    p.add_argument("--steps1", type=int, default=2500, help="Stage-I steps")
    p.add_argument("--steps2", type=int, default=1500, help="Stage-II steps")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--n", type=int, default=3000, help="shapes images (train + test)")
    p.add_argument("--n-eval", type=int, default=500)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=Path("runs/stackgan_evidence"))
    p.add_argument("--grid", type=Path, default=DOCS / "samples.png")
    args = p.parse_args()
    small1 = {"generator_kwargs": {"ngf": 128}, "discriminator_kwargs": {"ndf": 32}}
    small2 = {"generator": "stackgan.s2_128", "stage1": args.stage1, "generator_kwargs": {"image_size": 64, "ngf": 16},
              "discriminator_kwargs": {"ndf": 16}}
    t0 = time.perf_counter()
    test = gz.create_dataset("stackgan.shapes", image_size=64, n=args.n, split="test", wrong_image=False)
    torch.manual_seed(0)
    untrained = gz.create_objective(args.stage2, **small2, stage1_kwargs=small1["generator_kwargs"])
    result: dict = {"protocol": {**vars(args), "out": shown(args.out), "grid": shown(args.grid), "reference":
                                 "stackgan.shapes test split at 64 px", "extractor": "attrs.shapes",
                                 "stage1_overrides": small1, "stage2_overrides": small2}}
    result["untrained"] = compare_stages(untrained, test, test.base, n_samples=args.n_eval)
    runs = {}
    for label, extra in (("ca", {}), ("no_ca", {"augment": False})):
        o1 = {**small1, "generator_kwargs": {**small1["generator_kwargs"], **extra}}
        o2 = {**small2, "generator_kwargs": {**small2["generator_kwargs"], **extra}}
        _, s2 = train_stages(args.out / label, stage1=args.stage1, stage2=args.stage2, steps1=args.steps1,
                             steps2=args.steps2, batch_size=args.batch_size, data_kwargs={"n": args.n},
                             stage1_overrides=o1, stage2_overrides=o2, lr_step=max(1, args.steps1 // 2),
                             lr_step2=max(1, args.steps2 // 2), device=args.device, log_every=250)
        runs[label] = gz.load(s2.checkpoint, device=args.device).eval()
    trained = runs["ca"]
    result["trained"] = compare_stages(trained, test, test.base, n_samples=args.n_eval, device=args.device)
    result["caption_accuracy"] = caption_accuracy(trained, test, n=args.n_eval)
    result["diversity"] = {k: diversity(v, test) for k, v in runs.items()}
    args.grid.parent.mkdir(parents=True, exist_ok=True)
    result["grid_captions"] = sample_grid(trained, test, args.grid)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "evidence.json").write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
