"""``ganzoo encode``: embed a dataset file's captions with a registered text encoder, into the same file.

The embeddings go to ``text_embeddings/<encoder>`` (float32, one row per row of ``captions/text``), where the
``h5.file`` dataset serves them as ``text_emb`` with ``encoder=<encoder>``. A caption longer than
``ganzoo_core.text.MAX_CAPTION_CHARS`` characters is embedded from its first ``MAX_CAPTION_CHARS`` (with a warning
naming it). The file is never modified in place: the work is done on a copy beside it, synced, and renamed over the
original, so an interrupted run leaves the original file as it was.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ganzoo_core._atomic import atomic_path
from ganzoo_core.data.schema import DataError, read_h5
from ganzoo_core.errors import OutputPathError

Progress = Callable[[int, int], None]


def encode_h5(path: str | Path, encoder: str, *, batch_size: int = 256, device: str = "cpu", force: bool = False,
              progress: Progress | None = None, weights: str | Path | None = None,
              overrides: dict[str, Any] | None = None) -> tuple[int, int]:
    """Write ``text_embeddings/<encoder>`` into the schema file ``path``; returns (captions, embedding size).

    ``weights`` (a trained or released encoder file, read as ``create_encoder(..., weights=)`` reads it) and
    ``overrides`` (the encoder's config options) build the encoder; without them it is the registered default."""
    from ganzoo_core._api import create
    from ganzoo_core.text import encode_texts

    path = Path(path)
    if batch_size < 1:
        raise DataError(f"batch_size must be at least 1, got {batch_size}")
    with read_h5(path) as f:  # checks existence, readability and the schema version
        if "captions/text" not in f:
            raise DataError(f"{str(path)!r} has no captions/text to encode; build it with captions (e.g. 'ganzoo "
                            "data build captions ...' or a captioned built-in such as shapes.32)")
        if f"text_embeddings/{encoder}" in f and not force:
            raise DataError(f"{str(path)!r} already holds text_embeddings/{encoder} "
                            f"{tuple(f[f'text_embeddings/{encoder}'].shape)}; pass --force to recompute them")
        texts = [_text(t, i, path) for i, t in enumerate(f["captions/text"][()])]
    module = create("encoder", encoder, weights=weights, **(overrides or {}))
    module.to(device)
    table = encode_texts(module, texts, batch_size=batch_size, progress=progress).numpy().astype(np.float32)
    try:
        with atomic_path(path, overwrite=True, what="dataset file") as tmp:  # a copy, renamed over the original
            shutil.copy2(path, tmp)
            with h5py.File(tmp, "r+") as f:
                key = f"text_embeddings/{encoder}"
                if key in f:
                    del f[key]
                f.create_dataset(key, data=table)
    except OSError as err:  # a full disk: the original file is untouched
        raise OutputPathError(f"cannot write the embeddings into {str(path)!r}: {err.strerror or err}; the file is "
                              "unchanged") from err
    return table.shape[0], table.shape[1]


def _text(value: bytes | str, index: int, path: Path) -> str:
    if not isinstance(value, bytes):
        return str(value)
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{str(path)!r}: caption {index} is not UTF-8 ({err}); rebuild the file with "
                        "'ganzoo data build'") from err
