"""Text conditioning without the core's text datasets: a tiny hashed bag-of-words encoder and a dataset wrapper.

The core's caption datasets take ``encoder=<name>`` (items carry ``text_emb``) and ``wrong_image=True`` (items
carry ``image_wrong``). ``CaptionEmbeddings`` gives the same items on top of any dataset with ``caption(i)``
(``shapes.32``, ``emoji.*``) and any encoder with ``encode(list[str]) -> (B, D)``, so this plugin's tests and
evidence run whether or not those options exist. ``HashedBow`` is a stand-in encoder (not registered): every word
and word bigram is hashed (CRC-32, stable across processes) to a fixed random ±1 vector; a sentence is the
L2-normalised sum. Captions that share words get close embeddings, and the words of the shapes captions (colour,
shape, size, position) are separate directions.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ganzoo_core.errors import GanzooError


class TextEncoder(Protocol):
    embed_dim: int

    def encode(self, batch: Sequence[str]) -> Tensor: ...


def get_text_encoder(name: str = "bow.hashed") -> TextEncoder:
    """The registered encoder ``name`` when it exists, else (only for ``bow.hashed``) this module's ``HashedBow``."""
    import ganzoo_core as gz

    if name == "bow.hashed" and not gz.is_encoder(name):
        return HashedBow()
    return gz.create_encoder(name)  # an unknown name raises UnknownNameError with suggestions


class HashedBow:
    """Hashed bag of words and bigrams → (B, dim) L2-normalised float32; no training, no vocabulary."""

    def __init__(self, dim: int = 512) -> None:
        self.embed_dim = dim
        self._cache: dict[str, np.ndarray] = {}

    def _vector(self, token: str) -> np.ndarray:
        if token not in self._cache:
            rng = np.random.default_rng(zlib.crc32(token.encode("utf-8")))
            self._cache[token] = rng.choice(np.array([-1.0, 1.0], np.float32), self.embed_dim)
        return self._cache[token]

    def encode(self, batch: Sequence[str]) -> Tensor:
        if isinstance(batch, str):
            raise GanzooError("encode takes a list of sentences, got one str; wrap it in a list")
        rows = []
        for sentence in batch:
            words = re.findall(r"[a-z0-9]+", sentence.lower())
            if not words:
                raise GanzooError(f"cannot embed {sentence!r}: it has no words")
            tokens = words + [f"{a}_{b}" for a, b in zip(words, words[1:])]
            v = np.sum([self._vector(t) for t in tokens], axis=0)
            rows.append(v / np.linalg.norm(v))
        return torch.from_numpy(np.stack(rows).astype(np.float32))


class CaptionEmbeddings(Dataset[dict[str, Tensor]]):
    """Items of ``base`` plus ``text_emb`` (one random caption of the image, embedded, drawn anew per access) and
    ``image_wrong`` (a random image whose ``label`` differs, or any other image when there are no labels).

    Every caption is embedded once, up front. ``captions_of(i)`` returns the captions of item ``i``."""

    def __init__(self, base: Any, encoder: TextEncoder, *, wrong_image: bool = True, seed: int = 0) -> None:
        if not hasattr(base, "caption"):
            raise GanzooError(f"{type(base).__name__} has no caption(i); use a captioned dataset (shapes.32, emoji.*)")
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

    def __len__(self) -> int:
        return len(self.base)

    def captions_of(self, i: int) -> list[str]:
        return self.captions[i]

    def _wrong(self, i: int) -> int:
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


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


__all__ = ["CaptionEmbeddings", "HashedBow", "TextEncoder", "get_text_encoder"]
