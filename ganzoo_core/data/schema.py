"""The ganzoo HDF5 dataset schema, version 1 (docs/data.md), its writer, and its lazy reader.

Root attributes: ``ganzoo.schema_version`` (int), ``ganzoo.name``, ``ganzoo.source`` (where the data came from),
``ganzoo.meta`` (JSON). Datasets, all optional except that a file holds images or sentences:

=====================================  ===========================================================================
``images``        uint8 (N, H, W, C)    C = 1 or 3; chunked one image per chunk, gzip level 4
``images_b``      uint8 (N, H, W, C)    the paired image of each image (pix2pix A→B); ``images`` is A
``labels``        int64 (N,)            class labels; attribute ``names`` (JSON list)
``attributes``    uint8 (N, K)          binary attributes; attribute ``names`` (JSON list of K names)
``domains``       int64 (N,)            domain of each image (CycleGAN's A = 0, B = 1); attribute ``names``
``captions/text`` vlen str (T,)         every caption of every image, image by image
``captions/index`` int64 (N + 1,)       captions of image i are ``text[index[i]:index[i + 1]]``
``text_embeddings/<encoder>`` float32 (T, D)  one embedding per caption, keyed by registry encoder name
``sentences/text`` vlen str (S,)        an ordered sentence corpus (skip-thought training)
``sentences/doc`` int64 (S,)            the document (book) of each sentence; attribute ``names``
``splits/<name>`` int64 (M,)            indices of a named split (``train``, ``test``)
=====================================  ===========================================================================
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import h5py
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ganzoo_core._atomic import atomic_path
from ganzoo_core._registry import register_dataset
from ganzoo_core.errors import GanzooError, OutputPathError

SCHEMA_VERSION = 1
_STR = h5py.string_dtype(encoding="utf-8")


class DataError(GanzooError):
    """A dataset file or source folder that is not what it should be; the message names the file."""


@attrs.define(kw_only=True)
class ArrayBundle:
    """Everything a schema file can hold, in memory. ``validate()`` checks that the parts agree."""

    images: np.ndarray | None = None  # (N, H, W, C) uint8
    images_b: np.ndarray | None = None
    labels: np.ndarray | None = None  # (N,) int
    label_names: Sequence[str] = ()
    attributes: np.ndarray | None = None  # (N, K) {0, 1}
    attribute_names: Sequence[str] = ()
    domains: np.ndarray | None = None  # (N,) int
    domain_names: Sequence[str] = ()
    captions: Sequence[Sequence[str]] | None = None  # N lists of captions
    text_embeddings: Mapping[str, np.ndarray] = attrs.field(factory=dict)  # encoder name -> (T, D)
    sentences: Sequence[str] | None = None
    sentence_docs: np.ndarray | None = None
    doc_names: Sequence[str] = ()
    splits: Mapping[str, np.ndarray] = attrs.field(factory=dict)

    def __len__(self) -> int:
        if self.images is not None:
            return len(self.images)
        return len(self.sentences or ())

    def validate(self, where: str = "dataset") -> ArrayBundle:
        if self.images is None and self.sentences is None:
            raise DataError(f"{where}: holds neither images nor sentences")
        n = len(self)
        if n == 0:
            raise DataError(f"{where}: holds no items")
        if self.images is not None:
            _check_images(self.images, where, "images")
        if self.images_b is not None:
            _check_images(self.images_b, where, "images_b")
            if self.images_b.shape[0] != n:
                raise DataError(f"{where}: {n} images but {self.images_b.shape[0]} paired images")
        for name, array, names in (("labels", self.labels, self.label_names),
                                   ("domains", self.domains, self.domain_names)):
            if array is not None:
                if not np.issubdtype(np.asarray(array).dtype, np.integer):
                    raise DataError(f"{where}: {name} must be integers, got {array.dtype}")
                if array.shape != (n,):
                    raise DataError(f"{where}: {name} has shape {array.shape}, expected ({n},)")
                if names and (array.min() < 0 or array.max() >= len(names)):
                    raise DataError(f"{where}: {name} outside 0..{len(names) - 1} ({len(names)} names)")
        if self.attributes is not None:
            if not np.isin(self.attributes, (0, 1)).all():
                raise DataError(f"{where}: attributes must be 0 or 1 (map CelebA's -1/1 with a > 0)")
            if self.attributes.ndim != 2 or self.attributes.shape[0] != n:
                raise DataError(f"{where}: attributes have shape {self.attributes.shape}, expected ({n}, K)")
            if self.attribute_names and len(self.attribute_names) != self.attributes.shape[1]:
                raise DataError(f"{where}: {self.attributes.shape[1]} attribute columns but "
                                f"{len(self.attribute_names)} attribute names")
        if self.captions is not None:
            if len(self.captions) != n:
                raise DataError(f"{where}: {len(self.captions)} caption lists for {n} images; each image needs one "
                                "list (possibly empty)")
            for i, caps in enumerate(self.captions):
                _check_texts(caps, where, "caption", f" of image {i}")
            total = sum(len(c) for c in self.captions)
            for encoder, emb in self.text_embeddings.items():
                if emb.ndim != 2 or emb.shape[0] != total:
                    raise DataError(f"{where}: text embeddings {encoder!r} have shape {emb.shape}, expected "
                                    f"({total}, D): one row per caption")
        elif self.text_embeddings:
            raise DataError(f"{where}: text embeddings without captions")
        _check_texts(() if self.sentences is None else self.sentences, where, "sentence")
        for what, names in (("label name", self.label_names), ("attribute name", self.attribute_names),
                            ("domain name", self.domain_names), ("document name", self.doc_names)):
            _check_texts(names, where, what)
        if self.sentence_docs is not None and len(self.sentence_docs) != len(self.sentences or ()):
            raise DataError(f"{where}: {len(self.sentence_docs)} document ids for {len(self.sentences or ())} "
                            "sentences")
        for split, index in self.splits.items():
            if not np.issubdtype(np.asarray(index).dtype, np.integer):
                raise DataError(f"{where}: split {split!r} must hold integer indices, got {np.asarray(index).dtype}")
            if len(index) and (index.min() < 0 or index.max() >= n):
                raise DataError(f"{where}: split {split!r} has indices outside 0..{n - 1}")
        return self


def _check_texts(texts: Sequence[Any], where: str, what: str, of: str = "") -> None:
    """Every one of ``texts`` is a str without NUL (HDF5 cannot store a NUL in a string); an error names the first bad
    one as ``{what} {index}{of}``."""
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataError(f"{where}: {what} {i}{of} is not a str but {type(text).__name__} {text!r:.60}")
        if "\0" in text:
            raise DataError(f"{where}: {what} {i}{of} holds a NUL character ({text[:60]!r}); NUL is not allowed in "
                            "a dataset's text: remove it from the source")


def _check_images(images: np.ndarray, where: str, name: str) -> None:
    if not isinstance(images, np.ndarray):
        raise DataError(f"{where}: {name} must be a uint8 (N, H, W, C) numpy array, got a {type(images).__name__}; "
                        "stack the images with np.stack")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DataError(f"{where}: {name} must be uint8 (N, H, W, C) with C = 1 or 3, got {images.dtype} "
                        f"{images.shape}")


def write_h5(bundle: ArrayBundle, path: str | Path, *, name: str, source: str,
             meta: Mapping[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Write ``bundle`` as a schema-v1 file, atomically (a half-written file never replaces a good one).

    An existing ``path`` is replaced only with ``overwrite=True``; a folder or device (``/dev/null``) never is."""
    bundle.validate(str(path))
    try:
        with atomic_path(path, overwrite=overwrite, what="dataset file") as tmp:
            try:
                _write(bundle, tmp, name=name, source=source, meta=meta)
            except (ValueError, TypeError) as err:  # a value h5py cannot store (a NUL in name=, an object array)
                raise DataError(f"cannot write dataset file {str(path)!r}: {err}; nothing was replaced") from err
    except (OSError, ValueError) as err:  # a full disk, a vanished folder, a NUL in the path: the previous file (if
        # any) is untouched
        raise OutputPathError(f"cannot write dataset file {str(path)!r}: {getattr(err, 'strerror', None) or err}; "
                              "nothing was replaced") from err
    return Path(path)


def _write(bundle: ArrayBundle, tmp: Path, *, name: str, source: str, meta: Mapping[str, Any] | None) -> None:
    with h5py.File(tmp, "w") as f:
        f.attrs["ganzoo.schema_version"] = SCHEMA_VERSION
        f.attrs["ganzoo.name"] = name
        f.attrs["ganzoo.source"] = source
        f.attrs["ganzoo.meta"] = json.dumps(dict(meta or {}))
        for key in ("images", "images_b"):
            array = getattr(bundle, key)
            if array is not None:
                f.create_dataset(key, data=array, chunks=(1, *array.shape[1:]), compression="gzip",
                                 compression_opts=4)
        for key, array, names in (("labels", bundle.labels, bundle.label_names),
                                  ("domains", bundle.domains, bundle.domain_names),
                                  ("attributes", bundle.attributes, bundle.attribute_names)):
            if array is not None:
                dtype = np.uint8 if key == "attributes" else np.int64
                f.create_dataset(key, data=np.asarray(array, dtype=dtype)).attrs["names"] = json.dumps(list(names))
        if bundle.captions is not None:
            flat = [c for caps in bundle.captions for c in caps]
            index = np.concatenate([[0], np.cumsum([len(c) for c in bundle.captions])]).astype(np.int64)
            f.create_dataset("captions/text", data=np.array(flat, dtype=object), dtype=_STR)
            f.create_dataset("captions/index", data=index)
            for encoder, emb in bundle.text_embeddings.items():
                f.create_dataset(f"text_embeddings/{encoder}", data=np.asarray(emb, np.float32))
        if bundle.sentences is not None:
            f.create_dataset("sentences/text", data=np.array(list(bundle.sentences), dtype=object), dtype=_STR)
            if bundle.sentence_docs is not None:
                docs = f.create_dataset("sentences/doc", data=np.asarray(bundle.sentence_docs, np.int64))
                docs.attrs["names"] = json.dumps(list(bundle.doc_names))
        for split, index in bundle.splits.items():
            f.create_dataset(f"splits/{split}", data=np.asarray(index, np.int64))


REBUILD = "rebuild it with 'ganzoo data build' (docs/data.md)"
# what h5py raises for a damaged file's metadata or data (TypeError: a damaged datatype, "data type '<i9' not understood")
_H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError)


@contextmanager
def h5_errors(path: str | Path, what: str = "") -> Iterator[None]:
    """Turn h5py's errors for a damaged file (found only when the damaged part is read) into a ``DataError`` naming
    ``path`` and, when given, ``what`` was being read; ganzoo's own errors pass unchanged."""
    try:
        yield
    except GanzooError:
        raise
    except _H5_ERRORS as err:
        part = f"{what} of " if what else ""
        raise DataError(f"cannot read {part}{str(path)!r} ({type(err).__name__}: {err}); the file is damaged; "
                        f"{REBUILD}") from err


def open_h5(path: str | Path) -> h5py.File:
    """Open a schema file for reading, with errors that say what is wrong with it.

    Checks the schema version and the dtype and shape of every schema dataset the file holds (``check_layout``), so
    a file that does not follow the schema is refused here, in one line naming the file and the dataset, and never
    halfway through training."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"dataset file {str(path)!r} is a folder; give the .h5 file inside it (or build one with "
                        "'ganzoo data build')")
    if not path.is_file():
        raise DataError(f"dataset file {str(path)!r} does not exist")
    try:
        f = h5py.File(path, "r")
    except _H5_ERRORS as err:
        raise DataError(f"{str(path)!r} is not a readable HDF5 file ({err}); it may be truncated: {REBUILD}") from err
    try:
        with h5_errors(path):
            version = f.attrs.get("ganzoo.schema_version")
            if np.ndim(version) != 0 or version != SCHEMA_VERSION:
                found = "no ganzoo schema version" if version is None else f"schema version {version}"
                raise DataError(f"{str(path)!r} has {found}; this ganzoo reads version {SCHEMA_VERSION}; {REBUILD}")
            check_layout(f, path)
    except BaseException:
        f.close()
        raise
    return f


@contextmanager
def read_h5(path: str | Path) -> Iterator[h5py.File]:
    """``open_h5(path)`` for a ``with`` block, closed at its end: h5py's errors for damaged metadata or data read
    in the block become a ``DataError`` naming the file (``h5_errors``)."""
    with open_h5(path) as f, h5_errors(path):
        yield f


# what each schema dataset must be: (dtype kinds, description, ndim); the row counts are checked in check_layout
_INTEGER, _FLOAT = "iu", "f"
_LAYOUT: dict[str, tuple[str, str, int]] = {
    "images": ("u", "uint8 (N, H, W, C) with C = 1 or 3", 4),
    "images_b": ("u", "uint8 (N, H, W, C) with C = 1 or 3, N as images", 4),
    "labels": (_INTEGER, "integers (N,), one per image", 1),
    "domains": (_INTEGER, "integers (N,), one per image", 1),
    "attributes": (_INTEGER, "uint8 0/1 (N, K), one row per image", 2),
    "captions/text": ("str", "variable-length str (T,)", 1),
    "captions/index": (_INTEGER, "integers (N + 1,), captions of image i are text[index[i]:index[i + 1]]", 1),
    "sentences/text": ("str", "variable-length str (S,)", 1),
    "sentences/doc": (_INTEGER, "integers (S,), one per sentence", 1),
}


def _describe(ds: h5py.Dataset) -> str:
    """A dataset's dtype and shape as an error message shows them: ``float64 (10, 28, 28, 1)``."""
    info = h5py.check_string_dtype(ds.dtype)
    if info is not None:
        kind = "variable-length str" if info.length is None else f"fixed-length bytes[{info.length}]"
    else:
        kind = str(ds.dtype)
    return f"{kind} {tuple(ds.shape)}"


def _members(f: h5py.File, key: str, where: str) -> Mapping[str, Any]:
    """The members of group ``key`` (empty when absent); a dataset where the schema has a group is an error."""
    obj = f.get(key)
    if obj is None:
        return {}
    if not isinstance(obj, h5py.Group):
        raise DataError(f"{where!r}: {key!r} is {_describe(obj)}; expected a group of arrays; {REBUILD}")
    return obj


def _names(ds: h5py.Dataset, where: str) -> list[str]:
    """The JSON ``names`` attribute of a labels/attributes/domains dataset ([] when absent)."""
    raw = ds.attrs.get("names", "[]")
    try:
        names = json.loads(raw)
    except (TypeError, ValueError):
        names = None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DataError(f"{where!r}: the 'names' attribute of {ds.name.lstrip('/')!r} is {str(raw)[:80]!r}; expected a "
                        f"JSON list of str; {REBUILD}")
    return names


def _check_ids(ids: np.ndarray, names: Sequence[str], key: str, where: str) -> None:
    """Class or domain ids are 0.. and, when the file names them, below the number of names."""
    if not len(ids):
        return
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or (names and hi >= len(names)):
        allowed = f"0..{len(names) - 1} ({len(names)} names)" if names else "0 or more"
        raise DataError(f"{where!r}: dataset {key!r} holds ids {lo}..{hi}; expected {allowed}; {REBUILD}")


def check_layout(f: h5py.File, path: str | Path) -> None:
    """Raise ``DataError`` unless every schema dataset in ``f`` has the schema's dtype and shape, and they agree on the
    number of images (N), captions (T) and sentences (S). Reads metadata only, no arrays."""
    where = str(path)

    def bad(key: str, expected: str, found: str | None = None) -> DataError:
        found = found if found is not None else _describe(f[key])
        return DataError(f"{where!r}: dataset {key!r} is {found}; expected {expected}; {REBUILD}")

    def dataset(key: str) -> h5py.Dataset | None:
        obj = f.get(key)
        if obj is not None and not isinstance(obj, h5py.Dataset):
            raise bad(key, "an array", found="a group")
        return obj

    for key, (kinds, expected, ndim) in _LAYOUT.items():
        ds = dataset(key)
        if ds is None:
            continue
        is_str = h5py.check_string_dtype(ds.dtype) is not None
        if (kinds == "str") != is_str or (not is_str and ds.dtype.kind not in kinds) or ds.ndim != ndim:
            raise bad(key, expected)
        if key.startswith("images") and (ds.dtype != np.uint8 or ds.shape[-1] not in (1, 3) or 0 in ds.shape):
            raise bad(key, expected + ", at least one image of at least 1×1")
    images, sentences = dataset("images"), dataset("sentences/text")
    if images is None and sentences is None:
        raise DataError(f"{where!r} holds neither 'images' nor 'sentences/text'; {REBUILD}")
    n = None if images is None else images.shape[0]
    if n is not None:
        for key in ("images_b", "labels", "domains", "attributes"):
            if key in f and f[key].shape[0] != n:
                raise bad(key, f"a first dimension of {n}, one row per image ('images' holds {n})")
    if "captions/text" in f or "captions/index" in f:
        if n is None or "captions/text" not in f or "captions/index" not in f:
            raise DataError(f"{where!r}: captions need 'images', 'captions/text' and 'captions/index' together; "
                            f"{REBUILD}")
        if f["captions/index"].shape != (n + 1,):
            raise bad("captions/index", f"integers ({n + 1},), one more than the {n} images")
    text_rows = f["captions/text"].shape[0] if "captions/text" in f else None
    for name, ds in _members(f, "text_embeddings", where).items():
        key = f"text_embeddings/{name}"
        if not isinstance(ds, h5py.Dataset):
            raise bad(key, "an array", found="a group")
        if text_rows is None:
            raise DataError(f"{where!r}: {key!r} without captions/text; {REBUILD}")
        if h5py.check_string_dtype(ds.dtype) is not None or ds.dtype.kind != _FLOAT or ds.ndim != 2 \
                or ds.shape[0] != text_rows:
            raise bad(key, f"float32 ({text_rows}, D), one row per caption")
    if sentences is not None and "sentences/doc" in f and f["sentences/doc"].shape != sentences.shape:
        raise bad("sentences/doc", f"integers ({sentences.shape[0]},), one per sentence")
    for name, ds in _members(f, "splits", where).items():
        key = f"splits/{name}"
        if not isinstance(ds, h5py.Dataset) or h5py.check_string_dtype(ds.dtype) is not None \
                or ds.dtype.kind not in _INTEGER or ds.ndim != 1:
            raise bad(key, "integers (M,), indices of the split's items",
                      found="a group" if not isinstance(ds, h5py.Dataset) else None)


@attrs.frozen(kw_only=True)
class H5Info:
    path: Path
    name: str
    source: str
    meta: dict[str, Any]
    datasets: dict[str, tuple[tuple[int, ...], str]]  # HDF5 path -> (shape, dtype)
    splits: dict[str, int]
    version: int = SCHEMA_VERSION  # ganzoo.schema_version
    names: dict[str, list[str]] = attrs.field(factory=dict)  # the 'names' of labels, attributes, domains, sentences/doc


def read_h5_info(path: str | Path) -> H5Info:
    """What a schema file holds, without reading its arrays."""
    with read_h5(path) as f:
        datasets: dict[str, tuple[tuple[int, ...], str]] = {}
        f.visititems(lambda key, obj: datasets.__setitem__(key, (obj.shape, str(obj.dtype)))
                     if isinstance(obj, h5py.Dataset) else None)
        try:
            meta = json.loads(f.attrs.get("ganzoo.meta", "{}"))
        except (TypeError, ValueError):
            meta = {"unreadable": str(f.attrs.get("ganzoo.meta"))[:200]}
        names = {key: _names(f[key], str(path)) for key in ("labels", "attributes", "domains", "sentences/doc")
                 if key in f and "names" in f[key].attrs}
        return H5Info(path=Path(path), name=str(f.attrs.get("ganzoo.name", "")),
                      source=str(f.attrs.get("ganzoo.source", "")), meta=meta if isinstance(meta, dict) else {"meta": meta},
                      datasets=datasets, splits={k: len(v) for k, v in _members(f, "splits", str(path)).items()},
                      version=int(f.attrs["ganzoo.schema_version"]), names=names)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


_OPT_CHANNELS = attrs.validators.optional(attrs.validators.in_((1, 3)))
_OPT_SIZE = attrs.validators.optional(attrs.validators.ge(4))


CAPTION_AVERAGE = """``text_emb`` is the mean of the embeddings of this many distinct captions of the image, drawn anew
per access (all of them when it has fewer); 1: one caption's. GAN-CLS's CUB and flowers scripts average 4, its COCO
script 3."""


@attrs.frozen(kw_only=True)
class H5Cfg:
    path: str | None = attrs.field(default=None, converter=_opt_str)  # the schema file
    split: str | None = None  # a name under /splits; None: every item
    encoder: str | None = None  # text_embeddings/<encoder> to serve as "text_emb" (a random caption's, per item)
    caption_average: int = attrs.field(default=1, validator=attrs.validators.ge(1))  # see CAPTION_AVERAGE
    wrong_image: bool = False  # also serve "image_wrong": a random image of another label (any other without labels)
    channels: int | None = attrs.field(default=None, validator=_OPT_CHANNELS)  # 1 or 3 (grey repeated to RGB, RGB
    # averaged to grey); None keeps the file's
    image_size: int | None = attrs.field(default=None, validator=_OPT_SIZE)  # resize (bilinear, antialiased); None
    # keeps the file's


class H5Dataset(Dataset[dict[str, Tensor]]):
    """Lazy reader of a schema file: items are ``{"image", "label", "attrs", "domain", "image_b", "text_emb"}`` as
    present (images float C×H×W in [-1, 1]). Each DataLoader worker opens its own file handle."""

    def __init__(self, cfg: H5Cfg) -> None:
        if cfg.path is None:
            raise DataError("dataset h5.file needs path=<file.h5> (build one with 'ganzoo data build')")
        self.cfg, self.path = cfg, Path(cfg.path)
        self._file: h5py.File | None = None
        self._pid = -1
        with read_h5(self.path) as f:
            if "images" not in f:
                raise DataError(f"{str(self.path)!r} holds no images (a sentence corpus?); read it with "
                                "ganzoo_core.data.schema.open_h5")
            n = f["images"].shape[0]
            if cfg.split is None:
                self.index = np.arange(n)
            elif f"splits/{cfg.split}" in f:
                self.index = f[f"splits/{cfg.split}"][()]
                if len(self.index) and (self.index.min() < 0 or self.index.max() >= n):
                    raise DataError(f"{str(self.path)!r}: split {cfg.split!r} has indices in {self.index.min()}.."
                                    f"{self.index.max()}, outside the {n} images 0..{n - 1}; {REBUILD}")
            else:
                raise DataError(f"{str(self.path)!r} has no split {cfg.split!r}; it has {sorted(f.get('splits', {}))}")
            if cfg.encoder is not None and f"text_embeddings/{cfg.encoder}" not in f:
                raise DataError(f"{str(self.path)!r} has no text embeddings of {cfg.encoder!r}; it has "
                                f"{sorted(f.get('text_embeddings', {}))}: write them under text_embeddings/<encoder>, "
                                "one row per caption")
            self.keys = [k for k in ("labels", "attributes", "domains", "images_b") if k in f]
            self.names = {k: _names(f[k], str(self.path)) for k in ("labels", "attributes", "domains") if k in f}
            self.caption_index = f["captions/index"][()] if cfg.encoder is not None else None
            if self.caption_index is not None:
                texts = f["captions/text"].shape[0]
                if self.caption_index[0] != 0 or self.caption_index[-1] != texts or (np.diff(self.caption_index) < 0).any():
                    raise DataError(f"{str(self.path)!r}: 'captions/index' must rise from 0 to {texts} (the number "
                                    f"of captions), got {self.caption_index[0]}..{self.caption_index[-1]}; {REBUILD}")
            for key in ("labels", "domains"):  # out-of-range ids would fail inside an embedding, mid-training
                if key in f:
                    _check_ids(f[key][()], self.names[key], key, str(self.path))
            self.labels = f["labels"][()][self.index] if "labels" in f else None
            if cfg.wrong_image and len(self.index) < 2:
                raise DataError(f"{str(self.path)!r}: wrong_image=True needs at least 2 images")

    def _handle(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():  # a fresh handle in every worker process
            self._file, self._pid = open_h5(self.path), os.getpid()
        return self._file

    def __len__(self) -> int:
        return len(self.index)

    def _image(self, array: np.ndarray) -> Tensor:
        image = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).float()  # (H, W, C) → (C, H, W)
        if self.cfg.image_size is not None and tuple(image.shape[-2:]) != (self.cfg.image_size,) * 2:
            image = torch.nn.functional.interpolate(image[None], size=(self.cfg.image_size,) * 2, mode="bilinear",
                                                    antialias=True, align_corners=False)[0]
        if self.cfg.channels == 3 and image.shape[0] == 1:
            image = image.expand(3, -1, -1)
        elif self.cfg.channels == 1 and image.shape[0] == 3:
            image = image.mean(0, keepdim=True)
        return image.div(127.5).sub(1.0)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        j = int(self.index[i])
        with h5_errors(self.path, f"image {j}"):  # a damaged chunk is only found when it is read
            return self._read(self._handle(), i, j)

    def _read(self, f: h5py.File, i: int, j: int) -> dict[str, Tensor]:
        item = {"image": self._image(f["images"][j])}
        if "labels" in self.keys:
            item["label"] = torch.tensor(int(f["labels"][j]))
        if "domains" in self.keys:
            item["domain"] = torch.tensor(int(f["domains"][j]))
        if "attributes" in self.keys:
            item["attrs"] = torch.from_numpy(f["attributes"][j].astype(np.float32))
        if "images_b" in self.keys:
            item["image_b"] = self._image(f["images_b"][j])
        if self.caption_index is not None:
            lo, hi = int(self.caption_index[j]), int(self.caption_index[j + 1])
            if hi == lo:
                raise DataError(f"{str(self.path)!r}: image {j} has no caption to condition on")
            rows = np.sort(pick_captions(lo, hi, self.cfg.caption_average))  # h5py reads increasing indices
            item["text_emb"] = torch.from_numpy(f[f"text_embeddings/{self.cfg.encoder}"][rows]).mean(0)
        if self.cfg.wrong_image:
            item["image_wrong"] = self._image(f["images"][int(self.index[self._wrong_index(i)])])
        return item

    def _wrong_index(self, i: int) -> int:
        """A random other item of another label (any other item when the file has no labels or one label)."""
        n = len(self.index)
        for _ in range(64):
            j = int(torch.randint(n - 1, ()))
            j += j >= i
            if self.labels is None or self.labels[j] != self.labels[i]:
                return j
        return j

    def __getstate__(self) -> dict[str, Any]:  # h5py handles do not pickle: workers reopen
        return {**self.__dict__, "_file": None, "_pid": -1}


register_dataset("h5.file", cfg=H5Cfg(), summary="A ganzoo HDF5 schema file, read lazily (see ganzoo data build)")(H5Dataset)


# -- the torch view of a bundle -----------------------------------------------------------------------------------------


def take(bundle: ArrayBundle, index: np.ndarray) -> ArrayBundle:
    """The images ``index`` of an image bundle (labels, attributes, paired images, captions follow; no splits)."""
    def pick(array: np.ndarray | None) -> np.ndarray | None:
        return None if array is None else array[index]

    embeddings = dict(bundle.text_embeddings)
    if bundle.captions is not None and embeddings:  # caption rows follow their images
        starts = np.concatenate([[0], np.cumsum([len(c) for c in bundle.captions])]).astype(np.int64)
        rows = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in index]) if len(index) else np.zeros(0, int)
        embeddings = {name: np.asarray(emb)[rows] for name, emb in embeddings.items()}
    return attrs.evolve(
        bundle, images=pick(bundle.images), images_b=pick(bundle.images_b), labels=pick(bundle.labels),
        attributes=pick(bundle.attributes), domains=pick(bundle.domains),
        captions=None if bundle.captions is None else [bundle.captions[i] for i in index], splits={},
        text_embeddings=embeddings,
    )


def pick_captions(lo: int, hi: int, k: int) -> np.ndarray:
    """``min(k, hi - lo)`` distinct caption rows in ``[lo, hi)``, drawn with torch's RNG (seeded per worker)."""
    if k == 1:
        return np.array([lo + int(torch.randint(hi - lo, ()))])
    return lo + torch.randperm(hi - lo)[:k].numpy()


class BundleDataset(Dataset[dict[str, Tensor]]):
    """An in-memory image ``ArrayBundle`` as a torch Dataset: ``{"image": float C×H×W in [-1, 1], "label", "attrs"}``
    (plus ``"image_b"`` for paired sets, ``"domain"`` where the bundle has domains); ``caption(i)`` / ``captions``
    give the text; ``bundle()`` the arrays."""

    def __init__(self, bundle: ArrayBundle, split: str = "all", *, where: str = "dataset", encoder: str | None = None,
                 wrong_image: bool = False, caption_average: int = 1) -> None:
        bundle.validate(where)
        if bundle.images is None:
            raise DataError(f"{where}: a BundleDataset needs images")
        if encoder is not None and encoder not in bundle.text_embeddings:  # embed every caption once, then keep it
            if bundle.captions is None:
                raise DataError(f"{where} has no captions, so encoder={encoder!r} has nothing to embed")
            from ganzoo_core.text import encode_texts  # late: text imports the registry

            flat = [c for caps in bundle.captions for c in caps]
            bundle = attrs.evolve(bundle, text_embeddings={**bundle.text_embeddings,
                                                           encoder: encode_texts(encoder, flat).numpy()})
        if split != "all":
            if split not in bundle.splits:
                raise DataError(f"{where} has no split {split!r}; use one of {['all', *sorted(bundle.splits)]}")
            bundle = take(bundle, bundle.splits[split])
        self._bundle = bundle
        if caption_average < 1:
            raise DataError(f"{where}: caption_average must be >= 1, got {caption_average}")
        self.encoder, self.wrong_image, self.caption_average = encoder, wrong_image, caption_average
        self.text_emb: Tensor | None = None
        if encoder is not None:
            assert bundle.captions is not None
            self.text_emb = torch.from_numpy(np.asarray(bundle.text_embeddings[encoder], np.float32))
            self.caption_starts = np.concatenate([[0], np.cumsum([len(c) for c in bundle.captions])]).astype(np.int64)
            if (np.diff(self.caption_starts) == 0).any():
                empty = int(np.flatnonzero(np.diff(self.caption_starts) == 0)[0])
                raise DataError(f"{where}: image {empty} has no caption to condition on (encoder={encoder!r})")
        # what makes another image "wrong" for image i: other captions (text-to-image), else another label
        self._wrong_key: list[Any] | None = None
        if wrong_image:
            if len(bundle.images) < 2:
                raise DataError(f"{where}: wrong_image=True needs at least 2 images")
            self._wrong_key = ([tuple(c) for c in bundle.captions] if bundle.captions is not None
                               else list(bundle.labels) if bundle.labels is not None else list(range(len(bundle.images))))
        self.images = torch.from_numpy(np.ascontiguousarray(bundle.images)).permute(0, 3, 1, 2)  # uint8 (N, C, H, W)
        self.images_b = None if bundle.images_b is None else torch.from_numpy(bundle.images_b).permute(0, 3, 1, 2)
        self.labels = None if bundle.labels is None else torch.from_numpy(np.asarray(bundle.labels, np.int64))
        self.attributes = None if bundle.attributes is None else torch.from_numpy(bundle.attributes.astype(np.float32))
        self.domains = None if bundle.domains is None else torch.from_numpy(np.asarray(bundle.domains, np.int64))
        self.domain_names = tuple(bundle.domain_names)
        self.class_names = tuple(bundle.label_names)
        self.attribute_names = tuple(bundle.attribute_names)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        item = {"image": self.images[i].float().div(127.5).sub(1.0)}
        if self.labels is not None:
            item["label"] = self.labels[i]
        if self.attributes is not None:
            item["attrs"] = self.attributes[i]
        if self.images_b is not None:
            item["image_b"] = self.images_b[i].float().div(127.5).sub(1.0)
        if self.domains is not None:
            item["domain"] = self.domains[i]
        if self.text_emb is not None:  # the image's captions, drawn anew each time (CAPTION_AVERAGE)
            lo, hi = int(self.caption_starts[i]), int(self.caption_starts[i + 1])
            item["text_emb"] = self.text_emb[pick_captions(lo, hi, self.caption_average)].mean(0)
        if self._wrong_key is not None:
            item["image_wrong"] = self.images[self._wrong_index(i)].float().div(127.5).sub(1.0)
        return item

    def _wrong_index(self, i: int) -> int:
        """A random image whose captions (or label) differ from image ``i``'s; any other image if none differ."""
        assert self._wrong_key is not None
        n = len(self.images)
        for _ in range(64):
            j = int(torch.randint(n - 1, ()))
            j += j >= i  # never i itself
            if self._wrong_key[j] != self._wrong_key[i]:
                return j
        return j

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def captions(self) -> list[list[str]]:
        return [list(c) for c in self._bundle.captions or [[] for _ in range(len(self))]]

    def caption(self, i: int) -> list[str]:
        """The captions of image ``i``."""
        return list(self._bundle.captions[i]) if self._bundle.captions is not None else []

    def bundle(self) -> ArrayBundle:
        """The arrays, captions and (for split ``"all"``) splits, for ``ganzoo data build``."""
        return self._bundle


def bundle_from_dataset(dataset: Any) -> ArrayBundle:
    """The ``ArrayBundle`` of a registered dataset that can give one (built-ins implement ``bundle()``)."""
    make = getattr(dataset, "bundle", None)
    if make is None:
        raise DataError(f"{type(dataset).__name__} cannot be written to HDF5 (it has no bundle() method)")
    return make()
