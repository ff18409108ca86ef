#!/usr/bin/env python
"""Train the shapes attribute classifier (``attrs.shapes``) the caption-consistency metrics use, and ship its weights.

    .venv/bin/python scripts/train_attribute_classifier.py

Trains ganzoo_core.metrics.attributes.AttributeClassifier on the train split of ``shapes.32`` (default 10,000
images: 9,000 train, 1,000 test), one softmax head per attribute block (colour, shape, size, pos: taken from the
dataset's attribute names). It then measures the per-block and all-blocks accuracy on the test split with the
weights rounded to float16 (as they are stored), also on the ``shapes.64`` test split resized to 32×32, and writes
``ganzoo_core/metrics/weights/attrs_shapes.safetensors``: float16 tensors plus metadata (attribute names, test
accuracies, epochs, seed, command, parameter count). The file is loaded back the way the registered encoder loads it
and the accuracy is checked again.

Training: AdamW with a one-cycle learning rate, the sum of the blocks' cross-entropies, random shifts of up to one
pixel (the quadrant never changes: a shape's centre stays more than a pixel inside its quadrant), mild darkening
and Gaussian noise (so that slightly off generated images are still read). Deterministic for a given seed and
thread count; one thread takes about three minutes (less on an idle machine).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor

import ganzoo_core as gz
from ganzoo_core.checkpoints import atomic_path
from ganzoo_core.metrics.attributes import (
    FORMAT,
    AttributeCfg,
    AttributeClassifier,
    gaussian_blur,
    shipped_attribute_weights,
)
from ganzoo_core.metrics.extractors import RANDOM


def load_split(size: int, split: str, n: int, seed: int) -> tuple[Tensor, Tensor, tuple[str, ...]]:
    """Images of a ``shapes.<size>`` split as float (N, 3, size, size) in [-1, 1], 0/1 attributes (N, A), names."""
    data = gz.create_dataset(f"shapes.{size}", n=n, seed=seed, split=split, captions_per_image=1)
    return data.images.float().div(127.5).sub(1.0), data.attributes, data.attribute_names


def block_targets(model: AttributeClassifier, attributes: Tensor) -> dict[str, Tensor]:
    """The one-hot blocks of ``attributes`` (N, A) as indices ``{block: (N,)}``."""
    sizes = [len(v) for v in model.blocks.values()]
    return {b: part.argmax(1) for b, part in zip(model.blocks, attributes.split(sizes, dim=1))}


def augment(x: Tensor, gen: torch.Generator, blur: float = 0.0) -> Tensor:
    """Per image: a shift of up to one pixel (black padding), darkening by up to 15 %, Gaussian noise σ ≤ 0.06, and
    with ``blur`` > 0, for half of the images a Gaussian blur of std up to ``blur`` pixels (generated images are
    often softer than the rendered ones; the shape must still be read)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (1, 1, 1, 1), value=-1.0)
    dx, dy = torch.randint(0, 3, (2, n), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]  # (n, 1, h, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]  # (n, 1, 1, w)
    shifted = padded[torch.arange(n)[:, None, None, None], torch.arange(3)[None, :, None, None], rows, cols]
    if blur > 0:
        sigma = blur * torch.rand(n, generator=gen) * (torch.rand(n, generator=gen) < 0.5)
        shifted = gaussian_blur(shifted, sigma)
    scale = 1 - 0.15 * torch.rand(n, 1, 1, 1, generator=gen)
    noise = torch.randn(x.shape, generator=gen) * (0.06 * torch.rand(n, 1, 1, 1, generator=gen))
    return ((shifted + 1) * scale - 1 + noise).clamp(-1, 1)


def accuracy(model: AttributeClassifier, x: Tensor, attributes: Tensor, batch: int = 500) -> tuple[dict[str, float], float]:
    """Per-block accuracy and the fraction of images with every block right."""
    targets = block_targets(model, attributes)
    right: dict[str, list[Tensor]] = {b: [] for b in targets}
    for i in range(0, len(x), batch):
        pred = model.predict(x[i:i + batch])
        for b in targets:
            right[b].append(pred[b] == targets[b][i:i + batch])
    joined = {b: torch.cat(r) for b, r in right.items()}
    every = torch.stack(list(joined.values())).all(0)
    return {b: float(r.double().mean()) for b, r in joined.items()}, float(every.double().mean())


def train(args: argparse.Namespace, x: Tensor, attributes: Tensor, names: tuple[str, ...]) -> AttributeClassifier:
    torch.manual_seed(args.seed)
    model = AttributeClassifier(AttributeCfg(weights_file=RANDOM, attribute_names=names))
    net = model.net.requires_grad_(True)  # the extractor is frozen; train its network directly
    targets = block_targets(model, attributes)
    sizes = [len(v) for v in model.blocks.values()]
    per_epoch = len(x) // args.batch_size
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * per_epoch)
    gen = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(per_epoch):
            idx = order[i * args.batch_size:(i + 1) * args.batch_size]
            logits = net(augment(x[idx], gen, args.blur))[1].split(sizes, dim=1)
            loss = sum(F.cross_entropy(lg, targets[b][idx]) for b, lg in zip(model.blocks, logits))
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[union-attr]
            opt.step()
            sched.step()
            total += float(loss.detach())  # type: ignore[union-attr]
        print(f"  epoch {epoch + 1}/{args.epochs}: mean loss {total / per_epoch:.4f}", flush=True)
    model.requires_grad_(False)
    return model.eval()


def round_to_fp16(model: AttributeClassifier) -> None:
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.half().float())


def save_fp16(model: AttributeClassifier, path: Path, metadata: dict[str, str]) -> None:
    tensors = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="shapes.32 images generated (every 10th is a test image)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0, help="training seed (the data always uses dataset seed 0)")
    parser.add_argument("--blur", type=float, default=0.0,
                        help="blur half of the training images with a Gaussian of std up to this many pixels")
    parser.add_argument("--threads", type=int, default=1, help="one thread is fastest on a shared 2-core machine")
    parser.add_argument("--out", type=Path, default=shipped_attribute_weights())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    x_train, a_train, names = load_split(32, "train", args.n, 0)
    x_test, a_test, _ = load_split(32, "test", args.n, 0)
    x_64, a_64, names_64 = load_split(64, "test", args.n, 0)
    assert names_64 == names
    print(f"shapes.32: {len(x_train)} train, {len(x_test)} test images; blocks from {len(names)} attribute names")
    started = time.perf_counter()
    model = train(args, x_train, a_train, names)
    seconds = time.perf_counter() - started
    round_to_fp16(model)
    per_block, all_blocks = accuracy(model, x_test, a_test)
    per_block_64, all_blocks_64 = accuracy(model, x_64, a_64)
    n_params = sum(p.numel() for p in model.parameters())
    save_fp16(model, args.out, {
        "format": FORMAT, "dataset": "shapes.32", "attribute_names": json.dumps(list(names)),
        "test_accuracy": json.dumps({b: round(v, 4) for b, v in per_block.items()}),
        "test_all_blocks": f"{all_blocks:.4f}",
        "test_accuracy_shapes64": json.dumps({b: round(v, 4) for b, v in per_block_64.items()}),
        "test_all_blocks_shapes64": f"{all_blocks_64:.4f}",
        "data": f"n={args.n} seed=0 (train: i % 10 != 9, test: i % 10 == 9)", "test_images": str(len(x_test)),
        "epochs": str(args.epochs), "blur": str(args.blur),
        "batch_size": str(args.batch_size), "lr": str(args.lr), "seed": str(args.seed),
        "parameters": str(n_params), "train_seconds": f"{seconds:.0f}", "threads": str(args.threads),
        "torch": torch.__version__, "ganzoo": gz.__version__,
        "command": "python scripts/train_attribute_classifier.py " + shlex.join(sys.argv[1:]),
    })
    reloaded = AttributeClassifier(AttributeCfg(weights_file=str(args.out)))
    check, check_all = accuracy(reloaded, x_test, a_test)
    print(f"attrs.shapes: {n_params:,} parameters, trained in {seconds:.0f} s, {args.out} "
          f"({args.out.stat().st_size / 1024:.0f} KiB)")
    print(f"  shapes.32 test: {json.dumps({b: round(v, 4) for b, v in per_block.items()})}, all blocks {all_blocks:.4f}")
    print(f"  shapes.64 test (resized): {json.dumps({b: round(v, 4) for b, v in per_block_64.items()})}, "
          f"all blocks {all_blocks_64:.4f}")
    if check != per_block or check_all != all_blocks:
        raise SystemExit(f"the saved weights give {check}, not {per_block}: the float16 round trip is broken")


if __name__ == "__main__":
    main()
