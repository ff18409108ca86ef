"""Text conditioning on top of any captioned dataset: registered text encoders by name and a dataset wrapper.

The core's caption datasets take ``encoder=<name>`` (items carry ``text_emb``) and ``wrong_image=True`` (items
carry ``image_wrong``). ``CaptionEmbeddings`` gives the same items on top of any dataset with ``caption(i)``
(``shapes.32``, ``emoji.*``) and any encoder with ``encode(list[str]) -> (B, D)``, and adds the ``nearest`` wrong
image. ``get_text_encoder`` builds a registered encoder by name: ``bow.hashed`` (the core's hashed bag of words and
bigrams, no training) by default.
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import attrs
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

import ganzoo_core as gz
from ganzoo_core import validators as v
from ganzoo_core.errors import GanzooError
from ganzoo_core.text import check_encoder_kwargs


class TextEncoder(Protocol):
    embed_dim: int

    def encode(self, batch: Sequence[str]) -> Tensor: ...


def get_text_encoder(name: str = "bow.hashed", **overrides: Any) -> TextEncoder:
    """The registered text encoder ``name`` (``bow.hashed``, ``minilm.l6_v2``, ...) with config ``overrides``; an
    unknown name raises ``UnknownNameError`` with suggestions."""
    return gz.create_encoder(name, **overrides)


class CaptionEmbeddings(Dataset[dict[str, Tensor]]):
    """Items of ``base`` plus ``text_emb`` (one random caption of the image, embedded, drawn anew per access) and
    ``image_wrong`` (a random image whose ``label`` differs, or any other image when there are no labels).

    ``wrong_pick="nearest"`` draws ``image_wrong`` among the images of another label that differ from item ``i`` in
    the fewest ``attributes`` (the base's multi-hot vectors; on shapes: the same colour, size and position, another
    shape), a hard mismatch pair for the matching-aware D; ``"random"`` (default) as the official code.

    Every caption is embedded once, up front. ``captions_of(i)`` returns the captions of item ``i``."""

    def __init__(self, base: Any, encoder: TextEncoder, *, wrong_image: bool = True, wrong_pick: str = "random",
                 seed: int = 0) -> None:
        if not hasattr(base, "caption"):
            raise GanzooError(f"{type(base).__name__} has no caption(i); use a captioned dataset (shapes.32, emoji.*)")
        if wrong_pick not in WRONG_PICKS:
            raise GanzooError(f"wrong_pick must be one of {WRONG_PICKS}, got {wrong_pick!r}")
        self.base, self.wrong_image = base, wrong_image
        captions = [list(base.caption(i)) for i in range(len(base))]
        if any(not c for c in captions):
            raise GanzooError("every image needs at least one caption to condition on")
        self.captions = captions
        self.offsets = np.concatenate([[0], np.cumsum([len(c) for c in captions])])
        self.embeddings = torch.cat([encoder.encode(c) for c in _chunks([t for cs in captions for t in cs], 512)])
        labels = getattr(base, "labels", None)
        self.labels = None if labels is None else torch.as_tensor(labels)
        self.rng = np.random.default_rng(seed)
        self._nearest = _nearest_other_label(base, self.labels) if wrong_image and wrong_pick == "nearest" else None

    def __len__(self) -> int:
        return len(self.base)

    def captions_of(self, i: int) -> list[str]:
        return self.captions[i]

    def _wrong(self, i: int) -> int:
        if self._nearest is not None:
            group, candidates = self._nearest
            pool = candidates[int(group[i])]
            return int(pool[self.rng.integers(len(pool))])
        n = len(self.base)
        for _ in range(100):
            j = int(self.rng.integers(n))
            if j != i and (self.labels is None or self.labels[j] != self.labels[i]):
                return j
        return (i + 1) % n

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        item = dict(self.base[i])
        k = int(self.offsets[i]) + int(self.rng.integers(len(self.captions[i])))
        item["text_emb"] = self.embeddings[k]
        if self.wrong_image:
            item["image_wrong"] = self.base[self._wrong(i)]["image"]
        return item


WRONG_PICKS = ("random", "nearest")


def _nearest_other_label(base: Any, labels: Tensor | None) -> tuple[np.ndarray, list[np.ndarray]]:
    """(group of each item, candidate items per group): items are grouped by attribute vector; a group's candidates
    are the items of the groups with another label at the smallest Hamming distance from it."""
    attributes = getattr(base, "attributes", None)
    if labels is None or attributes is None:
        raise GanzooError(f"wrong_pick='nearest' needs a dataset with labels and attributes; {type(base).__name__} "
                          "lacks them (use wrong_pick='random')")
    vectors = np.asarray(attributes) > 0.5  # (N, K) multi-hot
    if len(vectors) != len(base):
        raise GanzooError(f"{type(base).__name__} has {len(vectors)} attribute rows for {len(base)} items")
    keys, group = np.unique(vectors, axis=0, return_inverse=True)  # keys: (G, K) distinct vectors
    group = group.reshape(-1)
    label = np.asarray(labels).reshape(-1)
    if len(np.unique(np.stack([group, label]), axis=1)[0]) != len(keys):
        raise GanzooError("wrong_pick='nearest' needs the label to follow from the attributes (it does not here)")
    key_label = np.empty(len(keys), dtype=label.dtype)
    key_label[group] = label
    if len(np.unique(key_label)) < 2:
        raise GanzooError(f"wrong_pick='nearest' needs images of at least two labels, got only label {key_label[0]}")
    order = np.argsort(group, kind="stable")
    members = np.split(order, np.cumsum(np.bincount(group, minlength=len(keys)))[:-1])  # items of each group
    hot = keys.astype(np.float32)
    candidates = []
    for s in range(0, len(keys), 1024):  # Hamming distances a block of rows at a time: (rows, G)
        block = hot[s:s + 1024]
        distance = block.sum(1, keepdims=True) + hot.sum(1) - 2 * block @ hot.T
        distance[key_label[s:s + 1024, None] == key_label[None, :]] = np.inf  # only another label
        for row in distance:
            nearest = np.flatnonzero(row == row.min())
            candidates.append(np.concatenate([members[h] for h in nearest]))
    return group, candidates


def _frozen(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return types.MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class CaptionsCfg:
    base: str = "shapes.32"  # any registered dataset with caption(i)
    base_kwargs: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen)  # its config (n=, split=, ...)
    encoder: Any = "bow.hashed"  # a registered text encoder's name, or an encoder object (encode(list[str]))
    encoder_kwargs: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen,
                                                    validator=check_encoder_kwargs)  # a named encoder's config
    wrong_image: bool = True
    wrong_pick: str = attrs.field(default="random", validator=v.one_of(WRONG_PICKS))
    seed: int = attrs.field(default=0, validator=attrs.validators.ge(0))


@gz.register_dataset("gan_cls.captions", cfg=CaptionsCfg())
def captions(cfg: CaptionsCfg) -> CaptionEmbeddings:
    """A captioned dataset's items with text_emb (a random caption per access) and image_wrong (CaptionEmbeddings)."""
    base = gz.create_dataset(cfg.base, **cfg.base_kwargs)
    encoder = get_text_encoder(cfg.encoder, **cfg.encoder_kwargs) if isinstance(cfg.encoder, str) else cfg.encoder
    return CaptionEmbeddings(base, encoder, wrong_image=cfg.wrong_image, wrong_pick=cfg.wrong_pick, seed=cfg.seed)


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


__all__ = ["WRONG_PICKS", "CaptionEmbeddings", "CaptionsCfg", "TextEncoder", "captions", "get_text_encoder"]
