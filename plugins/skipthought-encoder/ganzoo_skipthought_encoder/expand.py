"""Vocabulary expansion (models.md §7.3): a linear map from a word-vector space (word2vec) to the RNN word space.

An un-regularised least-squares fit (with intercept, as sklearn's ``LinearRegression``) of ``table[w] ≈ v[w]·A + c``
on the words both vocabularies share; the map then gives a row for every word2vec word that is not in the encoder's
vocabulary and contains no ``_`` (phrases); the encoder's own words keep their learned rows.

Where no word2vec table is at hand, ``word_vectors`` derives one from any registered sentence encoder (each word
embedded as a one-word sentence, e.g. by ``minilm.l6_v2``) and ``write_word2vec`` saves a table in either format.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from ganzoo_core._api import SPEC_ATTR
from ganzoo_core.checkpoints import atomic_path
from ganzoo_core.errors import GanzooError, ShapeError
from ganzoo_skipthought_encoder.model import EOS, PAD, UNK, SkipThoughtEncoder

_SPECIAL = (PAD, EOS, UNK)


def _header(line: bytes, path: Path) -> tuple[int, int]:
    parts = line.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise GanzooError(f"{str(path)!r} does not start with a word2vec header 'COUNT DIM', got {line[:60]!r}")
    return int(parts[0]), int(parts[1])


def read_word2vec(path: str | Path, *, binary: bool | None = None, limit: int | None = None
                  ) -> tuple[list[str], np.ndarray]:
    """Words and (N, D) float32 vectors of a word2vec file, text or binary (``binary=None``: guessed from the
    suffix ``.bin``). ``limit`` reads the first N words only."""
    path = Path(path)
    if not path.is_file():
        raise GanzooError(f"word-vector file {str(path)!r} does not exist")
    binary = path.suffix == ".bin" if binary is None else binary
    with open(path, "rb") as handle:
        count, dim = _header(handle.readline(), path)
        n = count if limit is None else min(count, limit)
        return (_read_binary if binary else _read_text)(handle, n, dim, path)


def _read_text(handle, n: int, dim: int, path: Path) -> tuple[list[str], np.ndarray]:  # type: ignore[no-untyped-def]
    words, vectors = [], np.empty((n, dim), np.float32)
    for i in range(n):
        parts = handle.readline().decode("utf-8", errors="replace").rstrip("\n").rstrip().split(" ")
        if len(parts) != dim + 1:
            raise ShapeError(f"{str(path)!r} line {i + 2} has {len(parts) - 1} numbers, the header says {dim}")
        words.append(parts[0])
        vectors[i] = np.asarray(parts[1:], np.float32)
    return words, vectors


def _read_binary(handle, n: int, dim: int, path: Path) -> tuple[list[str], np.ndarray]:  # type: ignore[no-untyped-def]
    words, vectors = [], np.empty((n, dim), np.float32)
    for i in range(n):
        raw = bytearray()
        while (ch := handle.read(1)) not in (b" ", b""):
            raw += ch
        data = handle.read(4 * dim)
        if len(data) != 4 * dim:
            raise ShapeError(f"{str(path)!r} ends inside vector {i} (word {raw.decode(errors='replace')!r}); "
                             f"the header promises {n} vectors of {dim} floats")
        words.append(raw.decode("utf-8", errors="replace").lstrip("\n"))
        vectors[i] = np.frombuffer(data, "<f4")
    return words, vectors


def _is_trained(word: str) -> bool:
    """A word with a learned row: not padding / <eos> / UNK, nor a ``<w..>`` placeholder."""
    return word not in _SPECIAL and not word.startswith("<w")


def trained_words(encoder: SkipThoughtEncoder) -> list[str]:
    """The encoder's own words that have learned rows (the ones a vocabulary expansion fits its map on)."""
    return [w for w in encoder.words if _is_trained(w)]


def write_word2vec(path: str | Path, words: Sequence[str], vectors: np.ndarray, *, binary: bool = False) -> None:
    """Write ``words`` and their (N, d) ``vectors`` as a word2vec file (text, or binary little-endian float32),
    atomically; ``read_word2vec`` reads either back."""
    vectors = np.asarray(vectors, np.float32)
    if vectors.ndim != 2 or len(vectors) != len(words):
        raise ShapeError(f"need one row per word: {len(words)} words, vectors of shape {vectors.shape}")
    bad = [w for w in words if not w or any(ch.isspace() for ch in w)]
    if bad:
        raise GanzooError(f"word2vec words cannot be empty or contain whitespace: {bad[:3]!r}")
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(f"{len(words)} {vectors.shape[1]}\n".encode())
        for word, vec in zip(words, vectors):
            if binary:
                handle.write(word.encode() + b" " + vec.astype("<f4").tobytes() + b"\n")
            else:
                handle.write((word + " " + " ".join(f"{v:.9g}" for v in vec) + "\n").encode())


def word_vectors(encoder: Any, words: Sequence[str], *, batch_size: int = 256) -> np.ndarray:
    """(len(words), encoder.embed_dim) float32: each word embedded as a one-word sentence by ``encoder`` (anything
    with ``encode(list[str]) -> (B, d)``, e.g. ``gz.create_encoder("minilm.l6_v2")``), a word-vector table for
    ``expand_vocabulary`` when no word2vec file is available."""
    words = list(words)
    if not words:
        raise GanzooError("word_vectors needs at least one word")
    rows = [encoder.encode(words[i:i + batch_size]).detach().float().cpu().numpy()
            for i in range(0, len(words), batch_size)]
    out = np.concatenate(rows)
    if out.shape[0] != len(words):
        raise ShapeError(f"{type(encoder).__name__}.encode gave {out.shape[0]} rows for {len(words)} words")
    return out


def fit_linear_map(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least squares ``target ≈ source @ A + c`` (no regularisation): returns (A (d_in, d_out), c (d_out,))."""
    if source.ndim != 2 or target.ndim != 2 or len(source) != len(target):
        raise ShapeError(f"need paired (N, d) arrays, got {source.shape} and {target.shape}")
    if len(source) <= source.shape[1]:
        raise GanzooError(f"only {len(source)} shared words for a {source.shape[1]}-d map; the fit needs more shared "
                          "words than dimensions")
    design = np.hstack([source.astype(np.float64), np.ones((len(source), 1))])
    solution, *_ = np.linalg.lstsq(design, target.astype(np.float64), rcond=None)
    return solution[:-1].astype(np.float32), solution[-1].astype(np.float32)


@attrs.frozen(kw_only=True)
class Expansion:
    encoder: SkipThoughtEncoder  # the expanded encoder
    shared: int  # words used for the fit
    added: int  # new words


def expand_vocabulary(encoder: SkipThoughtEncoder, words: list[str], vectors: np.ndarray) -> Expansion:
    """A new encoder whose vocabulary adds every ``_``-free word of ``words`` it lacked, with word-table rows from
    a linear map fitted per table (uni, bi) on the shared words; its own words keep their learned rows."""
    if len(words) != len(vectors):
        raise ShapeError(f"{len(words)} words but {len(vectors)} vectors")
    own = encoder.words
    index = encoder.word_index()
    trained = [(i, w) for i, w in enumerate(own) if _is_trained(w)]
    w2v = {w: k for k, w in reversed(list(enumerate(words)))}
    shared = [(i, w2v[w]) for i, w in trained if w in w2v]
    new = sorted({w for w in words if "_" not in w and w not in index}, key=w2v.__getitem__)
    spec = getattr(encoder, SPEC_ATTR, ("encoder", f"skipthought.{encoder.cfg.mode}"))
    all_words = [*own, *new]
    cfg = attrs.evolve(encoder.cfg, vocab_size=len(all_words), weights_file=None, original_dir=None,
                       max_word_bytes=max(encoder.cfg.max_word_bytes, *(len(w.encode()) for w in new)) if new
                       else encoder.cfg.max_word_bytes)
    out = SkipThoughtEncoder(cfg, words=all_words)  # not create_encoder: it drops None overrides (weights_file)
    setattr(out, SPEC_ATTR, spec)
    out.to(encoder.vocab_bytes.device)
    state = {k: v for k, v in encoder.state_dict().items() if not k.endswith("emb.weight") and k != "vocab_bytes"}
    out.load_state_dict(state, strict=False)
    src = vectors[[k for _, k in shared]]
    new_vectors = vectors[[w2v[w] for w in new]] if new else np.zeros((0, vectors.shape[1]), np.float32)
    with torch.no_grad():
        for emb_old, emb_new in zip(encoder._embeddings(), out._embeddings()):
            table = emb_old.weight.detach().cpu().numpy()
            A, c = fit_linear_map(src, table[[i for i, _ in shared]])
            emb_new.weight[:len(own)].copy_(emb_old.weight)
            if new:
                emb_new.weight[len(own):].copy_(torch.from_numpy(new_vectors @ A + c))
    return Expansion(encoder=out, shared=len(shared), added=len(new))
