"""Data for StackGAN: captioned images with text embeddings and wrong images, and the original release's
char-CNN-RNN embedding pickles converted into the ganzoo HDF5 schema.

- ``CaptionedImages`` wraps any image dataset that has captions (``caption(i)``; the built-in ``shapes.*`` and
  ``emoji.*`` do) and serves ``{"image", "text_emb", "image_wrong", "caption_index", ...}``: ``text_emb`` is the
  embedding of one random caption of the image (PyTorch StackGAN: one random caption per sample), embedded once
  up front by any registered encoder (``bow.hashed`` by default); ``image_wrong`` is a random image whose captions
  differ (with ``attrs``: whose attributes differ). Registered as the dataset ``stackgan.shapes`` (captioned
  shapes), the default of the objectives; the core's caption datasets with ``encoder=`` / ``wrong_image=True``
  serve the same keys.
- ``read_char_cnn_rnn(root)`` reads ``<root>/<split>/char-CNN-RNN-embeddings.pickle`` ([N, captions, 1024]),
  ``filenames.pickle``, ``class_info.pickle`` and, when present, ``76images.pickle`` / ``304images.pickle`` or a
  folder of images, into an ``ArrayBundle`` (``text_embeddings/char_cnn_rnn``); ``convert_char_cnn_rnn`` writes
  it with ``write_h5``. The pickles were written by Python 2: they are read with ``encoding="latin1"`` through an
  unpickler that only admits numpy arrays and plain containers (no arbitrary code).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

import ganzoo_core as gz
from ganzoo_core import validators as v
from ganzoo_core.data.schema import ArrayBundle, DataError, write_h5
from ganzoo_core.text import check_encoder_kwargs

# ---------------------------------------------------------------------------------------------------------------
# Captioned images with text embeddings and wrong images
# ---------------------------------------------------------------------------------------------------------------


def embed_captions(encoder: Any, captions: Sequence[Sequence[str]], chunk: int = 512) -> tuple[Tensor, Tensor]:
    """Every caption embedded: (T, D) float32, and (N + 1,) offsets (captions of image i are rows index[i]:index[i+1])."""
    flat = [c for caps in captions for c in caps]
    if not flat:
        raise DataError("the dataset has no captions to embed; StackGAN needs captioned images")
    with torch.no_grad():
        rows = [encoder.encode(flat[i:i + chunk]).float().cpu() for i in range(0, len(flat), chunk)]
    index = torch.tensor([0, *np.cumsum([len(c) for c in captions]).tolist()], dtype=torch.long)
    return torch.cat(rows), index


class CaptionedImages(Dataset[dict[str, Tensor]]):
    """Items of ``base`` plus ``text_emb`` (a random caption's embedding), ``caption_index`` (which caption, into
    ``captions_flat``) and, with ``wrong_image``, ``image_wrong`` (an image with other captions/attributes)."""

    def __init__(self, base: Any, encoder: str = "bow.hashed", *, wrong_image: bool = True,
                 encoder_kwargs: dict[str, Any] | None = None) -> None:
        if not hasattr(base, "caption"):
            raise DataError(f"{type(base).__name__} has no captions (no caption(i)); use a captioned dataset such "
                            "as shapes.32, or an h5.file with captions")
        self.base, self.wrong_image = base, wrong_image
        self.captions = [base.caption(i) for i in range(len(base))]
        if any(not c for c in self.captions):
            raise DataError("every image needs at least one caption; image "
                            f"{next(i for i, c in enumerate(self.captions) if not c)} has none")
        self.encoder_name = encoder
        self.embeddings, self.index = embed_captions(gz.create_encoder(encoder, **(encoder_kwargs or {})),
                                                     self.captions)
        self.captions_flat = [c for caps in self.captions for c in caps]
        first = base[0]
        self._groups = self._group_keys(first)

    def _group_keys(self, first: dict[str, Tensor]) -> np.ndarray:
        """One key per image; wrong images are drawn from other keys (attributes if given, else the captions)."""
        if "attrs" in first:
            rows = [tuple(self.base[i]["attrs"].int().tolist()) for i in range(len(self.base))]
        else:
            rows = [tuple(sorted(c)) for c in self.captions]
        _, keys = np.unique(np.array([hash(r) for r in rows]), return_inverse=True)
        return keys

    @property
    def embed_dim(self) -> int:
        return int(self.embeddings.shape[1])

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        item = dict(self.base[i])
        lo, hi = int(self.index[i]), int(self.index[i + 1])
        k = lo + int(torch.randint(hi - lo, ()))
        item["text_emb"], item["caption_index"] = self.embeddings[k], torch.tensor(k)
        if self.wrong_image:
            item["image_wrong"] = self.base[self._wrong_of(i)]["image"]
        return item

    def _wrong_of(self, i: int) -> int:
        for _ in range(32):
            j = int(torch.randint(len(self.base), ()))
            if self._groups[j] != self._groups[i]:
                return j
        return (i + 1) % len(self.base)  # every image alike: any other one

    def caption(self, i: int) -> list[str]:
        return list(self.captions[i])

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.base[0]["image"].shape)


@attrs.frozen(kw_only=True)
class CaptionedShapesCfg:
    image_size: int = attrs.field(default=32, validator=attrs.validators.ge(16))  # `ganzoo train` sets it to the
    # objective's image size; shapes.* draws at 16 or more
    n: int = attrs.field(default=10_000, validator=v.size)
    split: str = attrs.field(default="train", validator=v.one_of(("train", "test", "all")))  # "train",
    # "test" or "all" (shapes: image i is test when i % 10 == 9)
    seed: int = attrs.field(default=0, validator=v.non_negative)  # numpy seeds are non-negative
    encoder: str = "bow.hashed"  # any registered text encoder; its embed_dim must be the networks' text_dim
    encoder_kwargs: Mapping[str, Any] = attrs.field(factory=dict, converter=dict, hash=False,
                                                    validator=check_encoder_kwargs)  # its config overrides
    wrong_image: bool = True


@gz.register_dataset("stackgan.shapes", cfg=CaptionedShapesCfg())
def captioned_shapes(cfg: CaptionedShapesCfg) -> CaptionedImages:
    """Captioned shapes (``shapes.*``) with text embeddings of a named encoder and wrong images, for StackGAN."""
    base = gz.create_dataset("shapes.32", image_size=cfg.image_size, n=cfg.n, split=cfg.split, seed=cfg.seed)
    return CaptionedImages(base, cfg.encoder, wrong_image=cfg.wrong_image, encoder_kwargs=dict(cfg.encoder_kwargs))


# ---------------------------------------------------------------------------------------------------------------
# The original release: char-CNN-RNN embedding pickles
# ---------------------------------------------------------------------------------------------------------------

EMBEDDINGS = "char-CNN-RNN-embeddings.pickle"
FILENAMES = "filenames.pickle"
CLASS_INFO = "class_info.pickle"
IMAGE_PICKLES = ("76images.pickle", "304images.pickle")  # TF release: pre-cropped uint8 arrays

_ALLOWED = {  # what a numpy array or a list of names needs, in Python 2 and 3 spellings
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
    ("__builtin__", "object"), ("builtins", "object"), ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Admits numpy arrays, scalars and builtin containers only."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: these pickles should hold only numpy "
                                         "arrays and lists")
        if module.startswith("numpy.core") and not hasattr(np, "core"):
            module = module.replace("numpy.core", "numpy._core")
        return super().find_class(module, name)


def read_pickle(path: str | Path) -> Any:
    """One pickle of the release, written by Python 2 (``encoding="latin1"``) or 3, arrays and lists only."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{str(path)!r} does not exist; expected the StackGAN release layout "
                        f"<root>/<split>/{{{EMBEDDINGS}, {FILENAMES}, {CLASS_INFO}}}")
    try:
        return _ArrayUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise DataError(f"{str(path)!r} is not a readable StackGAN pickle: {err}") from err


def _names(value: Any, path: Path) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, (str, bytes)) for v in value):
        raise DataError(f"{str(path)!r} should hold a list of file names, got {type(value).__name__}")
    return [v.decode("latin1") if isinstance(v, bytes) else v for v in value]


def _split_images(split_dir: Path, filenames: Sequence[str], images_dir: Path | None, image_size: int
                  ) -> np.ndarray:
    for name in IMAGE_PICKLES:
        if (split_dir / name).is_file():
            images = np.asarray(read_pickle(split_dir / name))
            if images.ndim != 4 or images.shape[-1] != 3 or len(images) != len(filenames):
                raise DataError(f"{str(split_dir / name)!r} has shape {images.shape}, expected "
                                f"({len(filenames)}, H, W, 3)")
            return _resize(images.astype(np.uint8), image_size)
    if images_dir is None:
        raise DataError(f"{str(split_dir)!r} has no {' or '.join(IMAGE_PICKLES)}; pass images_dir (the folder "
                        "holding <filename>.jpg, e.g. CUB_200_2011/images)")
    from PIL import Image

    out = []
    for name in filenames:
        path = next((images_dir / f"{name}{ext}" for ext in (".jpg", ".png", "") if (images_dir / f"{name}{ext}")
                     .is_file()), None)
        if path is None:
            raise DataError(f"no image for {name!r} under {str(images_dir)!r} (tried .jpg and .png)")
        with Image.open(path) as im:
            out.append(np.asarray(im.convert("RGB").resize((image_size, image_size), Image.BICUBIC)))
    return np.stack(out)


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    if images.shape[1:3] == (size, size):
        return images
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BICUBIC)) for im in images])


def _read_split(split_dir: Path, images_dir: Path | None, image_size: int
                ) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    emb = np.asarray(read_pickle(split_dir / EMBEDDINGS), dtype=np.float32)
    if emb.ndim == 2:
        emb = emb[:, None]  # one caption per image
    if emb.ndim != 3:
        raise DataError(f"{str(split_dir / EMBEDDINGS)!r} has shape {emb.shape}, expected [N, captions, D]")
    filenames = _names(read_pickle(split_dir / FILENAMES), split_dir / FILENAMES)
    classes = np.asarray(read_pickle(split_dir / CLASS_INFO)).reshape(-1).astype(np.int64)
    if not len(filenames) == len(classes) == len(emb):
        raise DataError(f"{str(split_dir)!r}: {len(emb)} embedding rows, {len(filenames)} file names and "
                        f"{len(classes)} class ids; they must be one per image")
    images = _split_images(split_dir, filenames, images_dir, image_size)
    return images, emb, filenames, classes


def _captions(filenames: Sequence[str], n_captions: int, text_dir: Path | None) -> list[list[str]]:
    """The caption texts (``<text_dir>/<filename>.txt``, one per line, as CUB's text_c10) or stand-ins that name
    the image and caption number (the embedding pickles carry no text)."""
    out = []
    for name in filenames:
        path = None if text_dir is None else text_dir / f"{name}.txt"
        if path is not None and path.is_file():
            lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
            if len(lines) < n_captions:
                raise DataError(f"{str(path)!r} has {len(lines)} captions, the embeddings {n_captions}")
            out.append(lines[:n_captions])
        else:
            out.append([f"<{name} caption {k} (text not given)>" for k in range(n_captions)])
    return out


def read_char_cnn_rnn(root: str | Path, *, splits: Sequence[str] = ("train", "test"), image_size: int = 76,
                      images_dir: str | Path | None = None, text_dir: str | Path | None = None,
                      embedding_name: str = "char_cnn_rnn") -> ArrayBundle:
    """The release's per-split pickles under ``root`` as one ``ArrayBundle``: images (``image_size``², from the
    image pickles or ``images_dir``), class labels (the release's ids, renumbered from 0; names are the ids),
    captions (``text_dir`` or stand-ins), ``text_embeddings[embedding_name]`` (one row per caption) and the splits."""
    root = Path(root)
    images_path = None if images_dir is None else Path(images_dir)
    parts = [(s, _read_split(root / s, images_path, image_size)) for s in splits if (root / s).is_dir()]
    if not parts:
        raise DataError(f"{str(root)!r} holds none of the split folders {list(splits)}")
    dims = {p[1].shape[1:] for _, p in parts}
    if len(dims) != 1:
        raise DataError(f"the splits' embeddings differ in shape [captions, D]: {sorted(dims)}")
    images = np.concatenate([p[0] for _, p in parts])
    emb = np.concatenate([p[1] for _, p in parts])
    filenames = [f for _, p in parts for f in p[2]]
    ids = np.concatenate([p[3] for _, p in parts])
    names, labels = np.unique(ids, return_inverse=True)
    offsets = np.cumsum([0, *(len(p[0]) for _, p in parts)])
    captions = _captions(filenames, emb.shape[1], None if text_dir is None else Path(text_dir))
    return ArrayBundle(
        images=images, labels=labels.astype(np.int64), label_names=[str(int(v)) for v in names], captions=captions,
        text_embeddings={embedding_name: emb.reshape(-1, emb.shape[-1])},  # (N·captions, D), image by image
        splits={s: np.arange(offsets[i], offsets[i + 1]) for i, (s, _) in enumerate(parts)},
    ).validate(str(root))


def convert_char_cnn_rnn(root: str | Path, out: str | Path, *, name: str = "stackgan.birds", overwrite: bool = False,
                         **kwargs: Any) -> Path:
    """``read_char_cnn_rnn(root, **kwargs)`` written as a schema file at ``out`` (then ``h5.file`` with
    ``encoder="char_cnn_rnn"`` serves ``text_emb``); an existing ``out`` is replaced only with ``overwrite=True``."""
    bundle = read_char_cnn_rnn(root, **kwargs)
    filenames = [n for s in kwargs.get("splits", ("train", "test")) if (Path(root) / s).is_dir()
                 for n in _names(read_pickle(Path(root) / s / FILENAMES), Path(root) / s / FILENAMES)]
    return write_h5(bundle, out, name=name, source=f"StackGAN char-CNN-RNN pickles at {root}",
                    meta={"filenames": filenames, "embeddings": kwargs.get("embedding_name", "char_cnn_rnn")},
                    overwrite=overwrite)
