"""Attribute classifier for the captioned-shapes dataset, and the conditional metrics it scores.

``attrs.shapes`` reads colour, shape, size and position off a ``shapes.32`` / ``shapes.64`` image (any size is
resized to 32×32; grey input is repeated to RGB). It is a small CNN trained by
``scripts/train_attribute_classifier.py`` and shipped as ``ganzoo_core/metrics/weights/attrs_shapes.safetensors``
(float16). ``attrs.shapes_blur`` is the same network trained with Gaussian blur augmentation (``--blur 1.2``,
shipped as ``attrs_shapes_blur.safetensors``): it still reads the shape of slightly soft generated images, where
``attrs.shapes`` falls back towards chance, so results judged by both separate "the image is soft" from "the shape
is wrong". It has one softmax head per attribute *block*: the dataset's attribute names are ``block=value``
one-hot blocks (``colour=red``, ``shape=star``, ``size=small``, ``pos=top_left`` …), and the weights file carries
those names in its metadata, so the classifier knows its blocks and their order. Like every extractor it is
frozen and always in eval mode; ``encode`` gives the penultimate features (so it also serves as a domain
feature extractor for FID/KID on shapes), ``probs`` / ``predict`` give per-block probabilities and indices.

Metrics (plain dicts, ready for JSON, with the classifier's protocol inside):

- ``caption_consistency(classifier, images, captions)``: do text-conditioned samples (GAN-CLS, StackGAN) show what
  their caption says? The ground truth of each caption comes from ``parse_caption``.
- ``attribute_accuracy(classifier, images, target_attributes, blocks=None)``: for label-conditioned and
  translation models (StarGAN: is the target attribute in the translated image, and are the other blocks kept?).

Registration: importing this module inside a plugin load registers ``attrs.shapes`` and ``attrs.shapes_blur``;
``ganzoo_core.metrics`` imports it, and it can also be loaded alone as a plugin (it declares ``GANZOO_API_VERSION``).
Both routes file the same class with the same configs, which the registry accepts (the later one only changes the attribution).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo_core import validators as v
from ganzoo_core._registry import register_encoder
from ganzoo_core.data.shapes import ATTRIBUTE_NAMES as SHAPES_ATTRIBUTE_NAMES
from ganzoo_core.data.shapes import parse_caption
from ganzoo_core.errors import GanzooError, ShapeError
from ganzoo_core.metrics.extractors import (
    RANDOM,
    SHIPPED,
    WEIGHTS_DIR,
    FeatureExtractor,
    InputProtocol,
    _conv_bn_relu,
    _widths,
    metadata_value,
)

GANZOO_API_VERSION = "1.0"  # lets the module load alone as a plugin too

FORMAT = "ganzoo.attribute_classifier.1"
TRAIN_HINT = "train it with '.venv/bin/python scripts/train_attribute_classifier.py'"


def shipped_attribute_weights(file_name: str = "attrs_shapes.safetensors") -> Path:
    return WEIGHTS_DIR / file_name


def attribute_blocks(names: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """``("colour=red", "colour=blue", "shape=star", …)`` → ``{"colour": ("red", "blue"), "shape": ("star", …)}``.

    Blocks keep the order of their first name; each block's names must be contiguous, unique, and at least two."""
    blocks: dict[str, list[str]] = {}
    last = None
    for name in names:
        block, sep, value = str(name).partition("=")
        if not sep or not block or not value:
            raise GanzooError(f"attribute name {name!r} is not 'block=value' (e.g. 'colour=red')")
        if block in blocks and block != last:
            raise GanzooError(f"the names of attribute block {block!r} are not contiguous in {list(names)}")
        if value in blocks.get(block, []):
            raise GanzooError(f"attribute name {name!r} appears twice")
        blocks.setdefault(block, []).append(value)
        last = block
    if not blocks:
        raise GanzooError("an attribute classifier needs attribute names; got none")
    small = [b for b, v in blocks.items() if len(v) < 2]
    if small:
        raise GanzooError(f"attribute blocks {small} have one value; a block needs at least two to classify")
    return {b: tuple(v) for b, v in blocks.items()}


# -- blur (the augmentation of attrs.shapes_blur; also how its robustness is tested) ----------------------------------


def gaussian_blur(x: Tensor, sigma: Tensor) -> Tensor:
    """Blur each image of ``x`` (N, C, H, W) with its own Gaussian of std ``sigma`` (N,) pixels (0: unchanged),
    a 5×5 kernel with replicated borders."""
    n, c, h, w = x.shape
    taps = torch.arange(-2, 3, dtype=x.dtype)
    k = torch.exp(-taps[None] ** 2 / (2 * sigma.clamp_min(1e-3)[:, None] ** 2))  # (N, 5)
    k = k / k.sum(1, keepdim=True)
    kernels = (k[:, :, None] * k[:, None, :]).repeat_interleave(c, dim=0)[:, None]  # (N·C, 1, 5, 5)
    padded = F.pad(x.reshape(1, n * c, h, w), (2, 2, 2, 2), mode="replicate")  # (1, N·C, H + 4, W + 4)
    return F.conv2d(padded, kernels, groups=n * c).reshape(n, c, h, w)


# -- the network ---------------------------------------------------------------------------------------------------


def _accuracies(text: str) -> dict[str, float]:
    """The ``test_accuracy`` metadata of a weights file: a JSON object of block → accuracy."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object of block → accuracy")
    return {str(b): float(v) for b, v in value.items()}


def _name_list(text: str) -> tuple[str, ...]:
    """The ``attribute_names`` metadata of a weights file: a JSON list of str."""
    value = json.loads(text)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a JSON list of 'block=value' names")
    return tuple(value)


def _str_tuple(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(str(v) for v in values)


def _int_tuple(values: Iterable[int]) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


@attrs.frozen(kw_only=True)
class AttributeCfg:
    weights_file: str | None = SHIPPED  # "shipped": weights/<shipped_file>; a path; "random" (or None)
    shipped_file: str = "attrs_shapes.safetensors"  # the file in ganzoo_core/metrics/weights/ "shipped" means
    attribute_names: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)  # (): the weights file's, or
    # for random weights the shapes dataset's; given and different from the file's: an error
    widths: tuple[int, ...] = attrs.field(default=(32, 64, 64), converter=_int_tuple, validator=_widths(3))  # the
    # three conv stages
    embed_dim: int = attrs.field(default=128, validator=v.size)


class AttributeNet(nn.Module):
    """conv(3→w0) ▸ conv(w0→w0) ▸ max-pool ▸ conv(w0→w1) ▸ max-pool ▸ conv(w1→w2) ▸ max-pool ▸ flatten (4×4 keeps
    where the shape is) ▸ linear → embed_dim ▸ ReLU (the features) ▸ linear → all blocks' logits side by side."""

    def __init__(self, widths: Sequence[int], embed_dim: int, num_logits: int) -> None:
        super().__init__()
        w0, w1, w2 = widths
        self.body = nn.Sequential(
            _conv_bn_relu(3, w0), _conv_bn_relu(w0, w0), nn.MaxPool2d(2),  # (B, w0, 16, 16)
            _conv_bn_relu(w0, w1), nn.MaxPool2d(2),  # (B, w1, 8, 8)
            _conv_bn_relu(w1, w2), nn.MaxPool2d(2),  # (B, w2, 4, 4)
        )
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(w2 * 16, embed_dim), nn.ReLU(inplace=True))
        self.head = nn.Linear(embed_dim, num_logits)  # one softmax per block over its slice of these logits

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.fc(self.body(x))  # (B, embed_dim)
        return features, self.head(features)


BLUR_FILE = "attrs_shapes_blur.safetensors"
JUDGES = ("attrs.shapes", "attrs.shapes_blur")  # the shipped shapes judges, as evidence scripts report them


@register_encoder("attrs.shapes_blur", cfg=AttributeCfg(shipped_file=BLUR_FILE))
@register_encoder("attrs.shapes", cfg=AttributeCfg())
class AttributeClassifier(FeatureExtractor):
    """Reads colour, shape, size and position off a shapes image (shipped weights); one softmax per attribute block."""

    def __init__(self, cfg: AttributeCfg = AttributeCfg()) -> None:
        super().__init__()
        self.cfg = cfg
        path: Path | None = None
        metadata: dict[str, str] = {}
        if cfg.weights_file not in (None, RANDOM):
            shipped = shipped_attribute_weights(cfg.shipped_file)
            path = shipped if cfg.weights_file == SHIPPED else Path(cfg.weights_file)
            if not path.is_file():
                raise GanzooError(f"attribute classifier weights {str(path)!r} are missing; {TRAIN_HINT} (with "
                                  f"--out ganzoo_core/metrics/weights/{shipped.name}), or pass "
                                  "weights_file='random' for an untrained network")
            metadata = self._read_file(path)[1]
            if metadata.get("format", FORMAT) != FORMAT:
                raise GanzooError(f"{str(path)!r} is a {metadata['format']!r} file, not an attribute classifier "
                                  f"({FORMAT!r}); {TRAIN_HINT}")
        self.attribute_names: tuple[str, ...] = self._names(cfg, metadata, path)
        self.blocks: dict[str, tuple[str, ...]] = attribute_blocks(self.attribute_names)
        self.embed_dim, self.num_classes = cfg.embed_dim, 0  # no single class head: probs is per block
        self.input_protocol = InputProtocol(
            size=32, channels=3, resize="bilinear, antialiased, align_corners=False (shapes.64 → 32×32)",
            channel_rule="grey → repeated to RGB", normalize="none: the network takes [-1, 1]",
        )
        self.net = AttributeNet(cfg.widths, cfg.embed_dim, len(self.attribute_names))
        self.trained_accuracy: dict[str, float] | None = None  # per-block test accuracy recorded in the weights file
        self.trained_all_blocks: float | None = None
        if path is not None:
            self._load_file(path)
            if cfg.weights_file == SHIPPED:
                self.weights_info["path"] = f"ganzoo_core/metrics/weights/{path.name} (shipped)"
            if "test_accuracy" in metadata:
                self.trained_accuracy = metadata_value(metadata, "test_accuracy", path, _accuracies)
                self.weights_info["test_accuracy"] = dict(self.trained_accuracy)
            if "test_all_blocks" in metadata:
                self.trained_all_blocks = metadata_value(metadata, "test_all_blocks", path, float)
                self.weights_info["test_all_blocks"] = self.trained_all_blocks
        self._freeze()

    @staticmethod
    def _names(cfg: AttributeCfg, metadata: Mapping[str, str], path: Path | None) -> tuple[str, ...]:
        from_file = metadata_value(metadata, "attribute_names", path, _name_list) if "attribute_names" in metadata else ()
        if cfg.attribute_names and from_file and cfg.attribute_names != from_file:
            raise GanzooError(f"attribute_names {list(cfg.attribute_names)} differ from those of the weights file "
                              f"{str(path)!r} ({list(from_file)}); leave attribute_names empty to use the file's")
        return from_file or cfg.attribute_names or SHAPES_ATTRIBUTE_NAMES

    def _expected_weights(self) -> str:
        return (f"an attribute classifier ({FORMAT!r}, widths {self.cfg.widths}, embed_dim {self.cfg.embed_dim}) as "
                f"{TRAIN_HINT.removeprefix('train it with ')} writes it")

    def _run(self, x: Tensor) -> tuple[Tensor, None]:
        return self.net(x)[0], None  # no single softmax over all logits (that would be meaningless for IS)

    # -- per-block outputs --
    def block_logits(self, images: Tensor) -> dict[str, Tensor]:
        """Logits per block, ``{block: (B, K)}`` (with gradients when the input has them)."""
        logits = self.net(self.prepare(images))[1].float()
        return dict(zip(self.blocks, logits.split([len(v) for v in self.blocks.values()], dim=1)))

    @torch.no_grad()
    def probs(self, images: Tensor) -> dict[str, Tensor]:  # type: ignore[override]
        """Probabilities per block, ``{block: (B, K)}``, columns in the order of ``blocks[block]``."""
        return {b: v.softmax(1) for b, v in self.block_logits(images).items()}

    @torch.no_grad()
    def predict(self, images: Tensor) -> dict[str, Tensor]:
        """The most probable value per block, ``{block: (B,) index into blocks[block]}``."""
        return {b: v.argmax(1) for b, v in self.block_logits(images).items()}

    def describe(self, images: Tensor) -> list[dict[str, str]]:
        """What the classifier sees, per image, as ``{block: value}`` (the form ``parse_caption`` returns)."""
        pred = self.predict(images)
        return [{b: self.blocks[b][int(pred[b][i])] for b in self.blocks} for i in range(len(images))]

    def protocol(self) -> dict[str, Any]:
        return {**super().protocol(), "blocks": {b: list(v) for b, v in self.blocks.items()}}


# -- metrics -------------------------------------------------------------------------------------------------------


def _classifier(classifier: AttributeClassifier | str) -> AttributeClassifier:
    if isinstance(classifier, str):
        from ganzoo_core._api import create

        classifier = create("encoder", classifier)
    if not isinstance(classifier, AttributeClassifier):
        raise GanzooError(f"expected an attribute classifier (e.g. 'attrs.shapes'), got {type(classifier).__name__}")
    return classifier


def _value_index(clf: AttributeClassifier, block: str, value: Any, where: str) -> int:
    values = clf.blocks[block]
    if isinstance(value, str):
        if value not in values:
            raise GanzooError(f"{where}: {block} value {value!r} is not one of {list(values)}")
        return values.index(value)
    index = int(value)
    if not 0 <= index < len(values):
        raise GanzooError(f"{where}: {block} index {index} is outside 0..{len(values) - 1}")
    return index


def _check_blocks(clf: AttributeClassifier, blocks: Sequence[str], given: Sequence[str]) -> list[str]:
    unknown = [b for b in blocks if b not in clf.blocks]
    if unknown:
        raise GanzooError(f"blocks {unknown} are not the classifier's; it knows {list(clf.blocks)}")
    missing = [b for b in blocks if b not in given]
    if missing:
        raise GanzooError(f"the targets give no values for blocks {missing}")
    return [b for b in clf.blocks if b in blocks]  # the classifier's order


def _targets(clf: AttributeClassifier, target: Any, blocks: Sequence[str] | None) -> dict[str, Tensor]:
    """Per-block target indices ``{block: (N,) long}`` from a multi-hot matrix, a block → values mapping, or a list
    of ``{block: value}`` dicts."""
    if isinstance(target, (Tensor, np.ndarray)):
        matrix = torch.as_tensor(np.asarray(target.detach().cpu() if isinstance(target, Tensor) else target))
        if matrix.ndim != 2 or matrix.shape[1] != len(clf.attribute_names):
            raise ShapeError(f"target attributes must be (N, {len(clf.attribute_names)}) 0/1 in the order of the "
                             f"classifier's attribute_names, got {tuple(matrix.shape)}")
        chosen = _check_blocks(clf, list(clf.blocks) if blocks is None else blocks, list(clf.blocks))
        out, start = {}, 0
        for block, values in clf.blocks.items():
            part = matrix[:, start:start + len(values)] > 0.5
            start += len(values)
            if block not in chosen:
                continue
            bad = torch.nonzero(part.sum(1) != 1).flatten()
            if len(bad):
                raise GanzooError(f"target row {int(bad[0])} sets {int(part[bad[0]].sum())} values of block {block!r}; "
                                  "each scored block needs exactly one")
            out[block] = part.float().argmax(1)
        return out
    if isinstance(target, Mapping):
        chosen = _check_blocks(clf, [b for b in clf.blocks if b in target] if blocks is None else blocks, list(target))
        out = {}
        for block in chosen:
            column = target[block]
            column = column.detach().cpu().tolist() if isinstance(column, Tensor) else list(column)
            out[block] = torch.tensor([_value_index(clf, block, v, f"targets[{block!r}][{i}]")
                                       for i, v in enumerate(column)], dtype=torch.long)
        if len({len(v) for v in out.values()}) > 1:
            raise ShapeError(f"target blocks have different lengths {({b: len(v) for b, v in out.items()})}")
        return out
    rows = list(target)
    if not all(isinstance(r, Mapping) for r in rows):
        raise GanzooError("target attributes must be an (N, A) 0/1 matrix, a mapping {block: N values}, or a list of "
                          "{block: value} dicts")
    common = [b for b in clf.blocks if all(b in r for r in rows)]
    chosen = _check_blocks(clf, common if blocks is None else blocks, common)
    return {b: torch.tensor([_value_index(clf, b, r[b], f"target {i}") for i, r in enumerate(rows)], dtype=torch.long)
            for b in chosen}


def _score(clf: AttributeClassifier, images: Tensor, targets: Mapping[str, Tensor], metric: str,
           batch_size: int) -> dict[str, Any]:
    if not isinstance(images, Tensor) or images.ndim != 4:
        raise ShapeError(f"images must be a (N, C, H, W) tensor in [-1, 1], got {getattr(images, 'shape', images)!r}")
    n = len(images)
    if n == 0 or not targets:
        raise GanzooError(f"{metric} needs at least one image and one scored block")
    if any(len(t) != n for t in targets.values()):
        raise ShapeError(f"{n} images but {len(next(iter(targets.values())))} targets")
    device = next(clf.parameters()).device
    preds: dict[str, list[Tensor]] = {b: [] for b in targets}
    for start in range(0, n, batch_size):
        batch = clf.predict(images[start:start + batch_size].to(device))
        for b in targets:
            preds[b].append(batch[b].cpu())
    right = {b: torch.cat(preds[b]) == targets[b] for b in targets}
    every = torch.stack(list(right.values())).all(0)
    sizes = {b: len(clf.blocks[b]) for b in targets}
    return {
        "metric": metric, "n": n, "blocks": list(targets),
        "per_block": {b: float(r.double().mean()) for b, r in right.items()},
        "all_blocks": float(every.double().mean()),
        "chance": {"per_block": {b: 1 / k for b, k in sizes.items()}, "all_blocks": 1 / math.prod(sizes.values())},
        "classifier": clf.protocol(),
    }


def caption_consistency(classifier: AttributeClassifier | str, images: Tensor, captions: Sequence[str], *,
                        batch_size: int = 500) -> dict[str, Any]:
    """How often each image shows what its caption says: per-block accuracy and all-blocks-correct accuracy.

    ``captions[i]`` is the caption image ``i`` was generated from; ``parse_caption`` reads its ground truth
    (colour, shape, size, pos), which must be blocks of the classifier. ``classifier`` is an ``attrs.shapes``
    encoder or its registry name. Returns ``{"metric", "n", "blocks", "per_block", "all_blocks", "chance",
    "classifier"}`` (chance: a uniform guess per block; the classifier's protocol and weights)."""
    clf = _classifier(classifier)
    if isinstance(captions, str) or not all(isinstance(c, str) for c in captions):
        raise GanzooError("captions must be a sequence of strings, one per image (the caption it was generated from)")
    truths = [parse_caption(c) for c in captions]
    if len(truths) != len(images):
        raise ShapeError(f"{len(images)} images but {len(truths)} captions")
    targets = _targets(clf, truths, list(truths[0]) if truths else None)
    return _score(clf, images, targets, "caption_consistency", batch_size)


def attribute_accuracy(classifier: AttributeClassifier | str, images: Tensor, target_attributes: Any,
                       blocks: Sequence[str] | None = None, *, batch_size: int = 500) -> dict[str, Any]:
    """How often each image shows its target attributes, per block and with all scored blocks right at once.

    ``target_attributes`` is one of: an (N, A) 0/1 matrix over the classifier's ``attribute_names`` (a dataset's
    ``attrs``, a StarGAN target label); a mapping ``{block: N values}`` of indices or value names (``predict``'s
    output, e.g. of the source images, to test that a translation kept them); a list of ``{block: value}`` dicts.
    ``blocks`` picks the scored blocks (default: every block the targets give). For a translation, score the target
    block and the preserved blocks separately: ``blocks=["colour"]`` against the target, ``blocks=[the others]``
    against the source's attributes. Returns the same dict as ``caption_consistency``."""
    clf = _classifier(classifier)
    return _score(clf, images, _targets(clf, target_attributes, blocks), "attribute_accuracy", batch_size)


__all__ = [
    "JUDGES", "AttributeCfg", "AttributeClassifier", "AttributeNet", "attribute_accuracy", "attribute_blocks",
    "caption_consistency", "gaussian_blur", "shipped_attribute_weights",
]
