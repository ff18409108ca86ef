"""Caption consistency on the captioned shapes: does a sample show the colour and shape its caption names?

``shapes_data(split, encoder, ...)`` gives ``shapes.32`` items with ``text_emb`` (and ``image_wrong``), through the
core dataset's own ``encoder=`` / ``wrong_image=`` options when it has them, else through ``CaptionEmbeddings``.
``caption_accuracy(objective, data, ...)`` conditions on one caption of each image (held-out when ``data`` is the
test split), samples in eval mode and scores the samples with the core's shipped ``attrs.shapes`` classifier
(``ganzoo_core.metrics.attributes.caption_consistency``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

import ganzoo_core as gz
from ganzoo_core.data.shapes import parse_caption
from ganzoo_core.metrics.attributes import caption_consistency
from ganzoo_gan_cls.text import CaptionEmbeddings, TextEncoder, get_text_encoder


def shapes_data(split: str, encoder: str | TextEncoder = "bow.hashed", *, n: int = 10_000, image_size: int = 32,
                seed: int = 0, wrong_pick: str = "random") -> CaptionEmbeddings:
    """The ``shapes.<image_size>`` split as items with ``text_emb`` and ``image_wrong``; ``captions_of(i)``.
    ``encoder``: a registered encoder's name, or an encoder object (e.g. a vocabulary-expanded skip-thought);
    ``wrong_pick="nearest"``: ``image_wrong`` has another shape and the same colour, size and position."""
    base = gz.create_dataset(f"shapes.{image_size}", n=n, split=split)
    text = get_text_encoder(encoder) if isinstance(encoder, str) else encoder
    return CaptionEmbeddings(base, text, wrong_image=True, wrong_pick=wrong_pick, seed=seed)


def caption_accuracy(objective: nn.Module, data: CaptionEmbeddings, *, n: int = 500, seed: int = 0,
                     blocks: tuple[str, ...] = ("colour", "shape"), judge: nn.Module | None = None) -> dict[str, Any]:
    """Colour, shape and both-right accuracy of ``n`` samples, each conditioned on the first caption of a data
    item (the first ``n`` items); eval mode, noise fixed by ``seed``. ``judge``: the attribute classifier (default
    the shipped ``attrs.shapes``; e.g. ``gz.create_encoder("attrs.shapes", weights_file=path)`` for another)."""
    n = min(n, len(data))
    captions = [data.captions_of(i)[0] for i in range(n)]
    rows = torch.from_numpy(np.asarray(data.offsets[:n], np.int64))
    text = data.embeddings[rows]  # (n, D): the embedding of each first caption
    was = objective.training
    objective.eval()
    images = objective.sample(n, text_emb=text, seed=seed)
    objective.train(was)
    clf = (gz.create_encoder("attrs.shapes") if judge is None else judge).to(images.device)
    result = caption_consistency(clf, images, captions)
    right = {b: result["per_block"][b] for b in blocks}
    truths = [parse_caption(c) for c in captions]
    pred = clf.describe(images)
    both = float(np.mean([all(p[b] == t[b] for b in blocks) for p, t in zip(pred, truths)]))
    return {"n": n, **right, "both": both, "all_blocks": result["all_blocks"]}


@gz.register_metric("gan_cls.caption_accuracy")
def caption_accuracy_metric() -> Callable[..., dict[str, Any]]:
    """Per-attribute accuracy of samples conditioned on held-out captions, read by an attribute classifier.

    The callable is ``caption_accuracy``."""
    return caption_accuracy


__all__ = ["caption_accuracy", "caption_accuracy_metric", "shapes_data"]
