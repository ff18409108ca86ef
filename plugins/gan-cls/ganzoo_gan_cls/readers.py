"""Readers for the data layouts of the original text-to-image projects (models.md §2.4), into the ganzoo schema.

- ``read_skipthought_h5(path, images_dir, ...)``: paarthneekhara/text-to-image's ``flower_tv.hdf5``: one HDF5
  dataset per image file name (``image_00001.jpg``) of shape (captions, 4800), the combine-skip vectors of that
  image's first captions. The images come from ``images_dir``; the caption text, when ``captions_dir`` is given,
  from the ``text_c10`` files (``<stem>.txt``, one caption per line, the first rows matching the vectors; a class
  folder above the file gives the label). Splits as that project: the first 75% of the sorted names are ``train``,
  the rest ``test``. ``uni_skip_only=True`` keeps the first 2400 dimensions (what it trained on by default).
- ``read_grouped_h5(path, ...)``: aelnouby/Text-to-Image-Synthesis's file: groups ``train`` / ``valid`` /
  ``test``, one sub-group per (image, caption) holding ``name``, ``img`` (the raw JPEG bytes as ``np.void``),
  ``embeddings`` (1024 floats), ``class`` and ``txt``. Sub-groups of the same image (``name``) become one image
  with several captions; splits ``train`` / ``val`` / ``test``; labels from the sorted class names.

Both return a validated ``ArrayBundle`` (embeddings under ``text_embeddings/<encoder_name>``, one row per caption)
for ``ganzoo_core.data.schema.write_h5``; ``convert_to_ganzoo(bundle, out, ...)`` writes it. Images are resized to
``image_size`` × ``image_size`` without a crop (bilinear), as both projects do.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from PIL import Image, UnidentifiedImageError

from ganzoo_core.data.schema import ArrayBundle, DataError, write_h5

SKIPTHOUGHT_DIM = 4800
UNI_SKIP_DIM = 2400


def _image(data: bytes | Path, image_size: int, where: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as img:
            rgb = img.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
            return np.asarray(rgb, np.uint8)
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(f"{where}: not a readable image ({err})") from err


def _open(path: str | Path) -> h5py.File:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{str(path)!r} does not exist")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise DataError(f"{str(path)!r} is not a readable HDF5 file ({err})") from err


# -- paarthneekhara: one dataset per image -------------------------------------------------------------------------


def _caption_files(captions_dir: Path | None) -> dict[str, Path]:
    if captions_dir is None:
        return {}
    if not captions_dir.is_dir():
        raise DataError(f"captions_dir {str(captions_dir)!r} is not a folder")
    return {p.stem: p for p in sorted(captions_dir.rglob("*.txt"))}


def read_skipthought_h5(path: str | Path, images_dir: str | Path, *, captions_dir: str | Path | None = None,
                        image_size: int = 64, uni_skip_only: bool = False, train_fraction: float = 0.75,
                        encoder_name: str | None = None) -> ArrayBundle:
    """The per-image skip-thought HDF5 (``flower_tv.hdf5``) with its images as an ``ArrayBundle``.

    Without ``captions_dir`` the caption texts are unknown and stored as empty strings (the embeddings still
    line up, one row per caption). ``encoder_name`` defaults to ``skipthought.combine`` (``skipthought.uni`` with
    ``uni_skip_only``)."""
    images_dir = Path(images_dir)
    captions = _caption_files(None if captions_dir is None else Path(captions_dir))
    name = encoder_name or ("skipthought.uni" if uni_skip_only else "skipthought.combine")
    dim = UNI_SKIP_DIM if uni_skip_only else SKIPTHOUGHT_DIM
    images, texts, vectors, classes = [], [], [], []
    with _open(path) as f:
        names = sorted(k for k in f.keys() if isinstance(f[k], h5py.Dataset))
        if not names:
            raise DataError(f"{str(path)!r} holds no per-image datasets (expected e.g. 'image_00001.jpg', "
                            f"captions × {SKIPTHOUGHT_DIM})")
        for key in names:
            vec = np.asarray(f[key][()], np.float32)
            if vec.ndim != 2 or vec.shape[1] != SKIPTHOUGHT_DIM or len(vec) == 0:
                raise DataError(f"{str(path)!r}: dataset {key!r} has shape {vec.shape}, expected (captions, "
                                f"{SKIPTHOUGHT_DIM}) skip-thought vectors")
            image_path = images_dir / key
            if not image_path.is_file():
                raise DataError(f"{str(path)!r}: no image {key!r} in images_dir {str(images_dir)!r}")
            images.append(_image(image_path, image_size, str(image_path)))
            vectors.append(vec[:, :dim])
            texts.append(_captions_for(key, len(vec), captions))
            classes.append(captions[Path(key).stem].parent.name if Path(key).stem in captions else None)
    n_train = int(train_fraction * len(names))  # the first 75% of the sorted names, as the project
    bundle = ArrayBundle(images=np.stack(images), captions=texts, text_embeddings={name: np.concatenate(vectors)},
                         splits={"train": np.arange(n_train), "test": np.arange(n_train, len(names))})
    if captions and all(c is not None for c in classes):
        class_names = sorted(set(classes))
        bundle.labels = np.array([class_names.index(c) for c in classes], np.int64)
        bundle.label_names = class_names
    return bundle.validate(str(path))


def _captions_for(key: str, n: int, files: Mapping[str, Path]) -> list[str]:
    stem = Path(key).stem
    if not files:
        return [""] * n
    if stem not in files:
        raise DataError(f"no caption file {stem}.txt for image {key!r} under captions_dir")
    lines = [line.strip() for line in files[stem].read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(lines) < n:
        raise DataError(f"{str(files[stem])!r} has {len(lines)} captions but the HDF5 file has {n} vectors for {key!r}")
    return lines[:n]


# -- aelnouby: groups of (image, caption) sub-groups ---------------------------------------------------------------

SPLITS = {"train": "train", "valid": "val", "test": "test"}
_FIELDS = ("name", "img", "embeddings", "class", "txt")


def _text(value: Any) -> str:
    value = value[()] if isinstance(value, h5py.Dataset) else value
    if isinstance(value, np.ndarray):
        value = value.item() if value.size == 1 else value.tobytes()
    return value.decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else str(value)


def read_grouped_h5(path: str | Path, *, image_size: int = 64, encoder_name: str = "reed.char_cnn_rnn") -> ArrayBundle:
    """The aelnouby grouped HDF5 (``flowers.hdf5`` / ``birds.hdf5``) as an ``ArrayBundle``."""
    images: list[np.ndarray] = []
    captions: list[list[str]] = []
    vectors: list[list[np.ndarray]] = []
    classes: list[str] = []
    splits: dict[str, list[int]] = {}
    index: dict[tuple[str, str], int] = {}  # (split, image name) → image number
    dim = None
    with _open(path) as f:
        groups = [g for g in SPLITS if g in f]
        if not groups:
            raise DataError(f"{str(path)!r} has none of the groups {list(SPLITS)}; it has {sorted(f.keys())}")
        for split in groups:
            for key in sorted(f[split].keys()):
                entry = f[split][key]
                missing = [k for k in _FIELDS if k not in entry]
                if missing:
                    raise DataError(f"{str(path)!r}: {split}/{key} lacks {missing} (expected {list(_FIELDS)})")
                emb = np.asarray(entry["embeddings"][()], np.float32).reshape(-1)
                if dim is not None and len(emb) != dim:
                    raise DataError(f"{str(path)!r}: {split}/{key} has a {len(emb)}-d embedding, others {dim}-d")
                dim = len(emb)
                name = _text(entry["name"])
                if (split, name) not in index:
                    index[(split, name)] = len(images)
                    splits.setdefault(SPLITS[split], []).append(len(images))
                    raw = np.asarray(entry["img"][()]).tobytes()  # np.void → the JPEG file's bytes
                    images.append(_image(raw, image_size, f"{path}: {split}/{key}/img"))
                    captions.append([])
                    vectors.append([])
                    classes.append(_text(entry["class"]))
                i = index[(split, name)]
                captions[i].append(_text(entry["txt"]).strip())
                vectors[i].append(emb)
    if not images:
        raise DataError(f"{str(path)!r} holds no (image, caption) entries")
    class_names = sorted(set(classes))
    return ArrayBundle(
        images=np.stack(images), labels=np.array([class_names.index(c) for c in classes], np.int64),
        label_names=class_names, captions=captions,
        text_embeddings={encoder_name: np.stack([v for vs in vectors for v in vs])},
        splits={k: np.array(v, np.int64) for k, v in splits.items()},
    ).validate(str(path))


def convert_to_ganzoo(bundle: ArrayBundle, out: str | Path, *, name: str, source: str, overwrite: bool = False
                      ) -> Path:
    """Write a bundle from either reader as a ganzoo schema file (``h5.file`` serves it); an existing ``out`` is
    replaced only with ``overwrite=True``."""
    return write_h5(bundle, out, name=name, source=source, meta={"converted_by": "ganzoo_gan_cls.readers"},
                    overwrite=overwrite)


__all__ = ["convert_to_ganzoo", "read_grouped_h5", "read_skipthought_h5"]
