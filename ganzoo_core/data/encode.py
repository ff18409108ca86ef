"""``ganzoo encode``: embed a dataset file's captions with a registered text encoder, into the same file.

The embeddings go to ``text_embeddings/<encoder>`` (float32, one row per row of ``captions/text``), where the
``h5.file`` dataset serves them as ``text_emb`` with ``encoder=<encoder>``. The file is never modified in place: the
work is done on a copy beside it, synced, and renamed over the original, so an interrupted run leaves the original
file as it was.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from ganzoo_core.data.schema import DataError, open_h5

Progress = Callable[[int, int], None]


def encode_h5(path: str | Path, encoder: str, *, batch_size: int = 256, device: str = "cpu", force: bool = False,
              progress: Progress | None = None) -> tuple[int, int]:
    """Write ``text_embeddings/<encoder>`` into the schema file ``path``; returns (captions, embedding size)."""
    from ganzoo_core._api import create
    from ganzoo_core.text import encode_texts

    path = Path(path)
    with open_h5(path) as f:  # checks existence, readability and the schema version
        if "captions/text" not in f:
            raise DataError(f"{str(path)!r} has no captions/text to encode; build it with captions (e.g. 'ganzoo "
                            "data build captions ...' or a captioned built-in such as shapes.32)")
        if f"text_embeddings/{encoder}" in f and not force:
            raise DataError(f"{str(path)!r} already holds text_embeddings/{encoder} "
                            f"{tuple(f[f'text_embeddings/{encoder}'].shape)}; pass --force to recompute them")
        texts = [t.decode() if isinstance(t, bytes) else str(t) for t in f["captions/text"][()]]
    module = create("encoder", encoder)
    module.to(device)
    table = encode_texts(module, texts, batch_size=batch_size, progress=progress).numpy().astype(np.float32)
    tmp = path.with_name(f".{path.name}.encode-tmp")
    try:
        shutil.copy2(path, tmp)
        with h5py.File(tmp, "r+") as f:
            key = f"text_embeddings/{encoder}"
            if key in f:
                del f[key]
            f.create_dataset(key, data=table)
            f.flush()
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return table.shape[0], table.shape[1]


def print_progress(done: int, total: int) -> None:
    """A one-line progress counter on stderr (distinct captions embedded)."""
    end = "\n" if done >= total else ""
    print(f"\r  encoded {done}/{total} distinct captions", end=end, file=sys.stderr, flush=True)
