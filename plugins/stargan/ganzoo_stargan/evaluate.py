"""Judge StarGAN translations on the shapes dataset with the core's shipped attribute classifier ``attrs.shapes``.

Each held-out image gets a target colour other than its own (its size kept); the translation should show the
target colour (``target``) and keep the source's shape, position and size (``preserved``). ``rec_l1`` is
mean |x − G(G(x, c_trg), c_org)| on [-1, 1] images. Samples are drawn in eval mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

import ganzoo_core as gz
from ganzoo_core.metrics.attributes import attribute_accuracy

N_COLOURS = 7  # the first 7 labels of stargan.shapes' default label vector (and of shapes' attribute names)


def colour_targets(attrs: Tensor, seed: int = 0) -> Tensor:
    """Target labels: a random colour other than each image's own (one-hot over the first 7 labels), rest kept."""
    gen = gz.seeded_rng(seed)
    own = attrs[:, :N_COLOURS].argmax(1)
    shift = torch.randint(1, N_COLOURS, (len(attrs),), generator=gen)  # 1..6: never the same colour
    target = attrs.clone()
    target[:, :N_COLOURS] = torch.nn.functional.one_hot((own + shift) % N_COLOURS, N_COLOURS).float()
    return target


@torch.no_grad()
def shapes_translation_scores(objective: Any, dataset: Any, *, n: int | None = None, seed: int = 0,
                              batch_size: int = 250, judge: Any = None) -> dict[str, Any]:
    """{"target": colour accuracy, "preserved": {shape, pos, size} accuracies, "preserved_min", "rec_l1", "n"};
    ``judge``: the attribute classifier (default the shipped ``attrs.shapes``)."""
    n = len(dataset) if n is None else min(n, len(dataset))
    items = [dataset[i] for i in range(n)]
    images = torch.stack([it["image"] for it in items])
    attrs, attrs_all = torch.stack([it["attrs"] for it in items]), torch.stack([it["attrs_all"] for it in items])
    target = colour_targets(attrs, seed)
    G = objective.networks["G"]
    device = next(G.parameters()).device
    was_training = objective.training
    objective.eval()
    fakes, rec = [], 0.0
    try:
        for s in range(0, n, batch_size):
            x, c_org, c_trg = (t[s:s + batch_size].to(device) for t in (images, attrs, target))
            fake = G(x, c_trg)
            rec += float((x - G(fake, c_org)).abs().mean()) * len(x)
            fakes.append(fake.cpu())
    finally:
        objective.train(was_training)
    fake = torch.cat(fakes)
    clf = gz.create_encoder("attrs.shapes") if judge is None else judge
    want = attrs_all.clone()
    want[:, :N_COLOURS] = target[:, :N_COLOURS]  # the classifier's names start with the 7 colours too
    hit = attribute_accuracy(clf, fake, want, blocks=["colour"])
    kept = attribute_accuracy(clf, fake, attrs_all, blocks=["shape", "pos", "size"])
    real = attribute_accuracy(clf, images, attrs_all)  # the judge on the real held-out images
    return {"n": n, "target": hit["per_block"]["colour"], "preserved": kept["per_block"],
            "preserved_min": min(kept["per_block"].values()), "rec_l1": rec / n,
            "judge_on_real": real["per_block"]}


@gz.register_metric("stargan.shapes_translation")
def shapes_translation() -> Callable[..., dict[str, Any]]:
    """Shapes recoloured: target-colour accuracy, kept shape / position / size, reconstruction L1.

    The callable is ``shapes_translation_scores``."""
    return shapes_translation_scores
