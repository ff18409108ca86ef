"""Both stages in one call, and the Stage-II-versus-upsampled-Stage-I evaluation.

The core engine trains one objective per run, so two-stage training is two runs: Stage-I into ``<out>/stage1``,
then Stage-II into ``<out>/stage2`` with ``stage1_checkpoint=<out>/stage1/checkpoint.safetensors``. The same is two
``ganzoo train`` commands (README), or one ``ganzoo stackgan-train`` (added by this plugin's
``ganzoo_add_commands`` hook). The LR halving of the release is the engine's ``step`` schedule
(``ScheduleCfg(kind="step", step_size=N, gamma=0.5)``; ``--lr-schedule step --step-size N``), counted in steps.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

import ganzoo_core as gz
from ganzoo_core.argtypes import device as device_arg
from ganzoo_core.schedules import ScheduleCfg
from ganzoo_core.text import match_data_encoder
from ganzoo_core.training import TrainCfg, TrainResult, dataset_for, train


def train_stages(out_dir: str | Path, *, stage1: str = "stackgan.s1_16", stage2: str = "stackgan.s2_64",
                 steps1: int = 2000, steps2: int = 2000, batch_size: int = 64, lr_step: int | None = None,
                 lr_step2: int | None = None,
                 data: str = "stackgan.shapes", data_kwargs: Mapping[str, Any] | None = None,
                 stage1_overrides: Mapping[str, Any] | None = None,
                 stage2_overrides: Mapping[str, Any] | None = None, device: str = "cpu", seed: int = 0,
                 log_every: int = 100, on_log: Callable[[dict[str, float]], None] | None = None,
                 ) -> tuple[TrainResult, TrainResult]:
    """Train Stage-I objective ``stage1``, then Stage-II objective ``stage2`` on top of its checkpoint.

    ``lr_step``: halve both learning rates every that many steps (None: constant); ``lr_step2``: Stage-II's, when
    it differs. The dataset is built at each stage's image size (``data_kwargs`` plus ``image_size``), embedding
    captions with the stage's encoder unless ``data_kwargs`` names one (then the stage records that one)."""
    out = Path(out_dir)
    results, encoders = [], []
    for i, (name, steps, overrides, every) in enumerate(((stage1, steps1, stage1_overrides, lr_step),
                                                         (stage2, steps2, stage2_overrides, lr_step2 or lr_step))):
        schedule = ScheduleCfg() if every is None else ScheduleCfg(kind="step", step_size=every, gamma=0.5)
        torch.manual_seed(seed)
        extra = dict(overrides or {})
        if i == 1:
            extra["stage1_checkpoint"] = str(results[0].checkpoint)
            if not {"encoder", "encoder_kwargs"} & set(extra):  # Stage-II reads captions as its Stage-I did
                extra["encoder"], extra["encoder_kwargs"] = encoders[0]
        objective = gz.create_objective(name, **extra)
        match_data_encoder(objective, data, data_kwargs, overrides)  # the checkpoint names what the data embeds with
        dataset = dataset_for(objective, data, **dict(data_kwargs or {}))  # at the stage's image size
        cfg = TrainCfg(steps=steps, batch_size=batch_size, seed=seed, device=device, log_every=log_every,
                       sample_every=0, checkpoint_every=0, schedule=schedule, progress=False, tensorboard=False)
        results.append(train(objective, dataset, out / f"stage{i + 1}", cfg, on_log=on_log))
        encoders.append(objective.text_encoder)  # what the data embedded with (match_data_encoder)
        if results[-1].interrupted:
            raise gz.GanzooError(f"stage {i + 1} was interrupted at step {results[-1].step}; its checkpoint is "
                                 f"{results[-1].checkpoint} (resume it with ganzoo train ... --resume)")
    return results[0], results[1]


# -- evaluation --------------------------------------------------------------------------------------------------


def upsample_to(images: Tensor, size: int) -> Tensor:
    """Stage-I images brought to Stage-II size (bilinear, clamped to [-1, 1]): the baseline Stage-II must beat."""
    if images.shape[-1] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp(-1, 1)


def _condition_batch(dataset: Any, n: int, seed: int) -> tuple[dict[str, Tensor], list[str]]:
    """``n`` held-out (text_emb, caption) pairs drawn with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randint(len(dataset.embeddings), (n,), generator=gen)
    return {"text_emb": dataset.embeddings[rows]}, [dataset.captions_flat[int(r)] for r in rows]


def stage_sources(objective: Any, dataset: Any) -> dict[str, Callable[[int, int], Tensor]]:
    """Sample functions ``f(n, seed)`` (eval mode, held-out captions of ``dataset``) for ``evaluate``:
    ``stage2`` (the objective's output) and ``stage1_upsampled`` (its Stage-I output at the same size)."""
    size = objective.image_shape[-1]

    def draw(n: int, seed: int, which: int) -> Tensor:
        objective.eval()
        batch, _ = _condition_batch(dataset, n, seed)
        high, low = objective.sample_stages(n, batch, seed=seed)
        return high.cpu() if which == 2 else upsample_to(low, size).cpu()

    return {"stage2": lambda n, s: draw(n, s, 2), "stage1_upsampled": lambda n, s: draw(n, s, 1)}


def compare_stages(objective: Any, dataset: Any, reference: Any, *, extractor: str = "attrs.shapes",
                   metrics: Sequence[str] = ("fid", "kid"), n_samples: int = 1000, seed: int = 0,
                   batch_size: int = 250, device: str = "cpu") -> dict[str, dict[str, Any]]:
    """FID/KID (and IS where the extractor has a class head: ``fid.inception_v3``) of Stage-II samples and of
    Stage-I samples upsampled to the same size, against ``reference`` (held-out real images at Stage-II size),
    through ``ganzoo_core.metrics.evaluate``. ``dataset`` gives the captions (a ``CaptionedImages``)."""
    from ganzoo_core.metrics import evaluate

    out = {}
    for name, source in stage_sources(objective, dataset).items():
        result = evaluate(source, reference, extractor=extractor, n_samples=n_samples, metrics=metrics, seed=seed,
                          batch_size=batch_size, device=device, source_info={"stage": name})
        out[name] = result["scores"]
    return out


def caption_accuracy(objective: Any, dataset: Any, *, n: int = 500, seed: int = 0,
                     classifier: str = "attrs.shapes") -> dict[str, float]:
    """All-attributes-right accuracy (``caption_consistency`` of the shapes classifier) of Stage-II samples and
    of upsampled Stage-I samples for ``n`` held-out captions."""
    from ganzoo_core.metrics.attributes import caption_consistency

    objective.eval()
    batch, captions = _condition_batch(dataset, n, seed)
    high, low = objective.sample_stages(n, batch, seed=seed)
    size = objective.image_shape[-1]
    return {"stage2": caption_consistency(classifier, high.cpu(), captions)["all_blocks"],
            "stage1_upsampled": caption_consistency(classifier, upsample_to(low, size).cpu(), captions)["all_blocks"]}


def diversity(objective: Any, dataset: Any, *, n_captions: int = 50, per_caption: int = 8, seed: int = 0,
              extractor: str = "attrs.shapes") -> float:
    """Mean pairwise feature distance between samples of the same caption (higher: more varied), in the
    extractor's feature space, averaged over ``n_captions`` held-out captions."""
    net = gz.create_encoder(extractor)
    objective.eval()
    batch, _ = _condition_batch(dataset, n_captions, seed)
    text = batch["text_emb"].repeat_interleave(per_caption, 0)  # (n·k, D): k samples per caption
    images = objective.sample(len(text), {"text_emb": text}, seed=seed).cpu()
    feats = net.encode(images).view(n_captions, per_caption, -1)
    dists = torch.cdist(feats, feats)  # (n, k, k)
    k = per_caption
    return float(dists.sum() / (n_captions * k * (k - 1)))


@gz.register_metric("stackgan.stages")
def stages_metric() -> Callable[..., dict[str, dict[str, Any]]]:
    """FID / KID of Stage-II samples and of upsampled Stage-I samples against held-out images.

    The callable is ``compare_stages``."""
    return compare_stages


@gz.register_metric("stackgan.caption_accuracy")
def caption_accuracy_metric() -> Callable[..., dict[str, float]]:
    """All-attributes-right accuracy of Stage-II and of upsampled Stage-I samples for held-out captions.

    The callable is ``caption_accuracy``."""
    return caption_accuracy


@gz.register_metric("stackgan.diversity")
def diversity_metric() -> Callable[..., float]:
    """Mean pairwise feature distance between samples of the same caption.

    The callable is ``diversity``."""
    return diversity


# -- command line --------------------------------------------------------------------------------------------------


def cmd_train_stages(args: argparse.Namespace) -> int:
    s1, s2 = train_stages(args.out, stage1=args.stage1, stage2=args.stage2, steps1=args.steps1,
                          steps2=args.steps2, batch_size=args.batch_size, lr_step=args.lr_step,
                          lr_step2=args.lr_step2, data=args.data, device=args.device, seed=args.seed)
    print(f"stage I:  {s1.checkpoint}\nstage II: {s2.checkpoint}")
    return 0


def add_commands(subparsers: Any, prog: str) -> None:
    p = subparsers.add_parser("stackgan-train", help="train StackGAN Stage-I, then Stage-II on top of it",
                              description=f"e.g. {prog} stackgan-train --steps1 2000 --steps2 2000 --out runs/sg")
    p.add_argument("--stage1", default="stackgan.s1_16", help="Stage-I objective")
    p.add_argument("--stage2", default="stackgan.s2_64", help="Stage-II objective (its Stage-I must fit)")
    p.add_argument("--steps1", type=int, default=2000)
    p.add_argument("--steps2", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr-step", type=int, default=None, help="halve the learning rates every N steps")
    p.add_argument("--lr-step2", type=int, default=None, help="Stage-II's --lr-step, when it differs")
    p.add_argument("--data", default="stackgan.shapes")
    p.add_argument("--device", type=device_arg, default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/stackgan"))
    p.set_defaults(func=cmd_train_stages)
