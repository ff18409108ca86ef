#!/usr/bin/env python
"""Train the domain classifiers the metrics use as feature extractors, and ship their weights.

    .venv/bin/python scripts/train_domain_classifier.py --dataset all

For each dataset (``fashion_mnist``, ``animal_mnist``: 10 classes, 28×28 grey; ``emoji``: the 8 CLDR emoji groups of
``emoji.noto`` at 32×32 RGB, emoji newer than the installed CLDR left out) this trains ``domain.<dataset>``
(ganzoo_core.metrics.extractors.DomainClassifier) on the train split, measures its accuracy on the test split with
the weights rounded to float16 (as they are stored), and writes
``ganzoo_core/metrics/weights/domain_<dataset>.safetensors``: float16 tensors plus metadata (test accuracy, epochs,
seed, command, parameter count). The file is then loaded back the way the registered encoder loads it and the
accuracy is checked again.

Training: AdamW with a one-cycle learning rate, cross-entropy, random shifts of up to 2 pixels (the new border is the
background: black for the MNIST-style sets, white for emoji) and horizontal flips. Deterministic for a given seed
and thread count. The emoji groups are unbalanced (Smileys & People, with its skin tones, is 2/3 of the images), so
the emoji run also reports the balanced (mean per-class) accuracy.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import attrs
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor

import ganzoo_core as gz
from ganzoo_core.checkpoints import atomic_path
from ganzoo_core.data.emoji import UNLISTED
from ganzoo_core.metrics.extractors import DOMAIN_VARIANTS, RANDOM, WEIGHTS_DIR, DomainClassifier

EPOCHS = {"fashion_mnist": 3, "animal_mnist": 15, "emoji": 40}  # about 2-4 minutes each on one CPU core
BACKGROUND = {"fashion_mnist": -1.0, "animal_mnist": -1.0, "emoji": 1.0}  # the value shifts pad with


def load_split(domain: str, split: str) -> tuple[Tensor, Tensor]:
    """All images of a split as float (N, C, S, S) in [-1, 1], and labels (N,)."""
    if domain == "emoji":
        size = DOMAIN_VARIANTS["emoji"].image_size
        data = gz.create_dataset("emoji.noto", split=split, image_size=size, category=True)
        keep = data.domains != data.domain_names.index(UNLISTED)
        return data.images[keep].float().div(127.5).sub(1.0), data.domains[keep]
    data = gz.create_dataset(f"{domain}.{split}")
    return data.images.float().div(127.5).sub(1.0), data.labels


def augment(x: Tensor, gen: torch.Generator, background: float = -1.0) -> Tensor:
    """Random shifts of up to 2 pixels (the border filled with ``background``) and random horizontal flips."""
    n, _, size = x.shape[0], x.shape[1], x.shape[-1]
    padded = F.pad(x, (2, 2, 2, 2), value=background)
    dx, dy = torch.randint(0, 5, (2, n), generator=gen)
    rows = (dy[:, None] + torch.arange(size))[:, None, :, None]  # (n, 1, S, 1)
    cols = (dx[:, None] + torch.arange(size))[:, None, None, :]  # (n, 1, 1, S)
    chans = torch.arange(x.shape[1])[None, :, None, None]  # (1, C, 1, 1)
    shifted = padded[torch.arange(n)[:, None, None, None], chans, rows, cols]  # (n, C, S, S)
    flip = torch.rand(n, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], shifted.flip(-1), shifted)


def predict(model: DomainClassifier, x: Tensor, batch: int = 1000) -> Tensor:
    model.eval()
    with torch.no_grad():
        return torch.cat([model.probs(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])


def accuracy(model: DomainClassifier, x: Tensor, y: Tensor) -> float:
    return float((predict(model, x) == y).float().mean())


def balanced_accuracy(model: DomainClassifier, x: Tensor, y: Tensor) -> float:
    """Mean over the classes present in ``y`` of the fraction of that class predicted right."""
    right = predict(model, x) == y
    return float(torch.stack([right[y == c].float().mean() for c in y.unique()]).mean())


def train(domain: str, epochs: int, batch_size: int, lr: float, seed: int) -> DomainClassifier:
    torch.manual_seed(seed)
    model = DomainClassifier(attrs.evolve(DOMAIN_VARIANTS[domain], weights_file=RANDOM))
    net = model.net.requires_grad_(True)  # the extractor is frozen; train its network directly
    x, y = load_split(domain, "train")
    steps = epochs * (len(x) // batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    step = 0
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(x), generator=gen)
        for i in range(len(x) // batch_size):
            idx = order[i * batch_size:(i + 1) * batch_size]
            loss = F.cross_entropy(net(augment(x[idx], gen, BACKGROUND[domain]))[1], y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
        print(f"  {domain} epoch {epoch + 1}/{epochs}: last loss {loss.item():.3f}", flush=True)
    model.requires_grad_(False)
    return model.eval()


def save_fp16(model: DomainClassifier, path: Path, metadata: dict[str, str]) -> None:
    tensors = {k: (v.half() if v.is_floating_point() else v).contiguous()
               for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def round_to_fp16(model: DomainClassifier) -> None:
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.half().float())


def run(domain: str, args: argparse.Namespace) -> None:
    epochs = args.epochs or EPOCHS[domain]
    started = time.perf_counter()
    model = train(domain, epochs, args.batch_size, args.lr, args.seed)
    seconds = time.perf_counter() - started
    round_to_fp16(model)
    x_test, y_test = load_split(domain, "test")
    acc = accuracy(model, x_test, y_test)
    balanced = balanced_accuracy(model, x_test, y_test)
    n_params = sum(p.numel() for p in model.parameters())
    path = Path(args.out_dir) / f"domain_{domain}.safetensors"
    save_fp16(model, path, {
        "format": "ganzoo.domain_classifier.1", "domain": domain, "test_accuracy": f"{acc:.4f}",
        "test_balanced_accuracy": f"{balanced:.4f}",
        "test_images": str(len(y_test)), "epochs": str(epochs), "batch_size": str(args.batch_size),
        "lr": str(args.lr), "seed": str(args.seed), "parameters": str(n_params), "train_seconds": f"{seconds:.0f}",
        "torch": torch.__version__, "ganzoo": gz.__version__,
        "command": "python scripts/train_domain_classifier.py " + shlex.join(sys.argv[1:]),
    })
    reloaded = DomainClassifier(attrs.evolve(DOMAIN_VARIANTS[domain], weights_file=str(path)))
    check = accuracy(reloaded, x_test, y_test)
    print(f"{domain}: {n_params:,} parameters, test accuracy {acc:.4f} (reloaded: {check:.4f}, balanced "
          f"{balanced:.4f}), "
          f"trained in {seconds:.0f} s, {path} ({path.stat().st_size / 1024:.0f} KiB)")
    if abs(check - acc) > 1e-9:
        raise SystemExit(f"the saved weights give {check:.4f}, not {acc:.4f}: the float16 round trip is broken")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=(*EPOCHS, "all"), default="all")
    parser.add_argument("--epochs", type=int, help=f"default: {EPOCHS}")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="one thread is fastest on a shared 2-core machine")
    parser.add_argument("--out-dir", type=Path, default=WEIGHTS_DIR)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for domain in EPOCHS if args.dataset == "all" else (args.dataset,):
        run(domain, args)


if __name__ == "__main__":
    main()
