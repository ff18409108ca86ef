#!/usr/bin/env python
"""StackGAN experiment on captioned shapes at reduced resolution (Stage-I 32 px → Stage-II 64 px):

1. Stage-II samples vs Stage-I samples upsampled to Stage-II size: FID and KID on the features of the shapes
   attribute classifier ``attrs.shapes`` (a domain extractor in ``ganzoo_core.metrics``; it reads 64 px images
   resized to 32), against held-out images; the untrained Stage-II as the baseline;
2. caption accuracy (all four attributes right, ``caption_consistency`` of ``attrs.shapes``) of both;
3. diversity (mean pairwise feature distance of 8 samples per caption) with and without Conditioning Augmentation,
   the same budget otherwise;
4. a sample grid (held-out captions; rows: caption, columns: Stage-I upsampled, Stage-II, for 4 seeds).

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 .venv/bin/python experiments/stackgan-shapes/evidence.py \
        --config experiments/stackgan-shapes/config.toml --stage2 experiments/stackgan-shapes/stage2.toml \
        --out runs/stackgan-shapes

Stage-I is the objective of ``--config``, Stage-II that of ``--stage2`` (its Stage-I: the checkpoint Stage-I just
wrote), each with its file's dataset options, steps, batch size, seed and schedule, as ``ganzoo train --config``
reads them. The run without CA trains both stages again with ``augment=False`` added to both generators' kwargs.
Writes ``<out>/evidence.json`` and the grid (``--grid``, default ``<out>/samples.png``) and prints the result.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import attrs
import torch
import torch.nn.functional as F

import ganzoo_core as gz
from ganzoo_core.runconfig import RunConfig, read_run_config, train_cfg_of
from ganzoo_core.training import TrainCfg, dataset_for, train
from ganzoo_core.visual import save_grid

EXTRACTOR = "attrs.shapes"


def with_generator_kwargs(overrides: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {**overrides, "generator_kwargs": {**overrides.get("generator_kwargs", {}), **extra}}


def train_stage(config: RunConfig, base: TrainCfg, out: Path, device: str, **overrides: Any) -> Path:
    """Train the objective of ``config`` (plus ``overrides``) into ``out``; its checkpoint."""
    torch.manual_seed(base.seed)
    objective = gz.create_objective(config.train["objective"], **{**config.set, **overrides})
    data = dataset_for(objective, config.train.get("data"), **config.data_set)
    cfg = attrs.evolve(base, device=device, log_every=250, sample_every=0, checkpoint_every=0, progress=False,
                       tensorboard=False)
    result = train(objective, data, out, cfg)
    if result.interrupted:
        raise SystemExit(f"{out} was interrupted at step {result.step}; run the same command again")
    return Path(result.checkpoint)


# -- evaluation: the plugin's metrics (stackgan.stages / caption_accuracy / diversity); the grid ----------------


def upsample_to(images: torch.Tensor, size: int) -> torch.Tensor:
    """Stage-I images brought to Stage-II size (bilinear, clamped to [-1, 1]): the baseline Stage-II must beat."""
    if images.shape[-1] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp(-1, 1)


def condition_batch(dataset: Any, n: int, seed: int) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``n`` held-out (text_emb, caption) pairs drawn with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randint(len(dataset.embeddings), (n,), generator=gen)
    return {"text_emb": dataset.embeddings[rows]}, [dataset.captions_flat[int(r)] for r in rows]


def sample_grid(objective: Any, dataset: Any, path: Path, n_captions: int = 6, seeds: int = 4) -> list[str]:
    batch, captions = condition_batch(dataset, n_captions, seed=123)
    rows = []
    for s in range(seeds):  # one seed per column pair, every caption
        with torch.no_grad():
            high, low = objective.sample_stages(n_captions, batch, seed=s)
        rows.append((upsample_to(low, high.shape[-1]).cpu(), high.cpu()))
    cells = [img for c in range(n_captions) for s in range(seeds) for img in (rows[s][0][c], rows[s][1][c])]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_grid(torch.stack(cells), path, nrow=2 * seeds)
    return captions


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, required=True, help="Stage-I run config (config.toml)")
    p.add_argument("--stage2", type=Path, required=True, help="Stage-II run config (stage2.toml)")
    p.add_argument("--n-eval", type=int, default=500)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, help="run folder (default: runs/<the config's folder name>)")
    p.add_argument("--grid", type=Path, help="the sample grid (default: OUT/samples.png)")
    args = p.parse_args()
    args.out = args.out or Path("runs") / args.config.resolve().parent.name
    args.grid = args.grid or args.out / "samples.png"
    c1, c2 = read_run_config(args.config), read_run_config(args.stage2)
    t1, t2 = train_cfg_of(c1), train_cfg_of(c2)
    compare_stages, caption_accuracy, diversity = (gz.create_metric(f"stackgan.{name}")
                                                   for name in ("stages", "caption_accuracy", "diversity"))
    t0 = time.perf_counter()
    torch.manual_seed(0)
    untrained = gz.create_objective(c2.train["objective"], **c2.set,
                                    stage1_kwargs=dict(c1.set.get("generator_kwargs", {})))
    test = dataset_for(untrained, c2.train.get("data"), **{**c2.data_set, "split": "test", "wrong_image": False})
    result: dict[str, Any] = {"protocol": {
        "config": str(args.config), "stage2_config": str(args.stage2), "stage1": c1.train["objective"],
        "stage2": c2.train["objective"], "steps1": t1.steps, "steps2": t2.steps, "batch_size": t1.batch_size,
        "n_eval": args.n_eval, "device": args.device, "out": str(args.out), "grid": str(args.grid),
        "reference": "the stage-II dataset's test split at Stage-II size", "extractor": EXTRACTOR,
        "stage1_overrides": dict(c1.set), "stage2_overrides": dict(c2.set), "data_overrides": dict(c1.data_set)}}
    result["untrained"] = compare_stages(untrained, test, test.base, extractor=EXTRACTOR, n_samples=args.n_eval)
    runs = {}
    for label, extra in (("ca", {}), ("no_ca", {"augment": False})):
        s1 = train_stage(c1, t1, args.out / label / "stage1", args.device,
                         **with_generator_kwargs(dict(c1.set), **extra))
        s2 = train_stage(c2, t2, args.out / label / "stage2", args.device,
                         **with_generator_kwargs(dict(c2.set), **extra), stage1_checkpoint=str(s1))
        runs[label] = gz.load(s2, device=args.device).eval()
    trained = runs["ca"]
    result["trained"] = compare_stages(trained, test, test.base, extractor=EXTRACTOR, n_samples=args.n_eval,
                                        device=args.device)
    result["caption_accuracy"] = caption_accuracy(trained, test, n=args.n_eval, classifier=EXTRACTOR)
    result["diversity"] = {k: diversity(v, test, extractor=EXTRACTOR) for k, v in runs.items()}
    result["grid_captions"] = sample_grid(trained, test, args.grid)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "evidence.json").write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
