"""Built-in dataset ``shapes.32`` / ``shapes.64``: procedural captioned shapes whose captions are exact ground truth.

Each image is one shape (circle, square, triangle, star) of one colour (7), one size (small, large) in one quadrant
(top/bottom × left/right) of a black square, drawn with Pillow at 4× and box-filtered down (antialiased). Image ``i``
depends only on ``(seed, i)``, so ``n`` never changes the earlier images; image ``i`` is in the test split when
``i % 10 == 9``. Every image has ``captions_per_image`` captions phrased differently from the same ground truth, and
``parse_caption`` recovers that ground truth from any of them. The dataset is served as a ``schema.BundleDataset``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
from PIL import Image, ImageDraw

from ganzoo_core import validators as v
from ganzoo_core._registry import register_dataset
from ganzoo_core.data.schema import ArrayBundle, BundleDataset, DataError

SHAPES = ("circle", "square", "triangle", "star")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 25, 25), "green": (30, 200, 30), "blue": (40, 80, 255), "yellow": (240, 220, 30),
    "magenta": (220, 40, 220), "cyan": (30, 210, 220), "white": (240, 240, 240),
}
SIZES = ("small", "large")
POSITIONS = ("top_left", "top_right", "bottom_left", "bottom_right")
ATTRIBUTE_NAMES: tuple[str, ...] = (
    *(f"colour={c}" for c in COLOURS), *(f"shape={s}" for s in SHAPES), *(f"size={s}" for s in SIZES),
    *(f"pos={p}" for p in POSITIONS),
)
RADIUS = {"small": 0.10, "large": 0.19}  # circumradius as a fraction of the image side
_SUPERSAMPLE = 4
_MARGIN = 0.02  # fraction of the side a shape keeps from its quadrant's edges

_TEMPLATES = (
    "a {size} {colour} {shape} in the {pos}",
    "{colour} {shape}, {size}, {pos} corner",
    "there is a {size} {colour} {shape} in the {pos} of the image",
    "the {pos} corner holds a {size} {colour} {shape}",
    "{size} {shape}, {colour}, {pos_hyphen}",
    "a {colour} {shape} that is {size_alt}, placed at the {pos_alt}",
    "in the {pos_alt} corner: a {size_alt} {colour} {shape}",
    "one {size} {shape} coloured {colour}, {pos}",
)
_SIZE_WORDS = {"small": "small", "little": "small", "large": "large", "big": "large"}
_SIZE_ALT = {"small": "little", "large": "big"}
_VERTICAL_WORDS = {"top": "top", "upper": "top", "bottom": "bottom", "lower": "bottom"}
_VERTICAL_ALT = {"top": "upper", "bottom": "lower"}


# -- captions ---------------------------------------------------------------------------------------------------------


def write_caption(truth: dict[str, str], template: int) -> str:
    """Caption ``truth`` (``{"shape", "colour", "size", "pos"}``) with template number ``template``."""
    vertical, horizontal = truth["pos"].split("_")
    words = {
        "shape": truth["shape"], "colour": truth["colour"], "size": truth["size"], "size_alt": _SIZE_ALT[truth["size"]],
        "pos": f"{vertical} {horizontal}", "pos_hyphen": f"{vertical}-{horizontal}",
        "pos_alt": f"{_VERTICAL_ALT[vertical]} {horizontal}",
    }
    return _TEMPLATES[template % len(_TEMPLATES)].format(**words)


def parse_caption(text: str) -> dict[str, str]:
    """The ground truth ``{"shape", "colour", "size", "pos"}`` of any caption ``write_caption`` writes.

    Raises ``DataError`` when a caption names none, or more than one, of a property's values."""
    words = re.findall(r"[a-z]+", text.lower())
    found = {
        "shape": [w for w in words if w in SHAPES],
        "colour": [w for w in words if w in COLOURS],
        "size": [_SIZE_WORDS[w] for w in words if w in _SIZE_WORDS],
        "vertical": [_VERTICAL_WORDS[w] for w in words if w in _VERTICAL_WORDS],
        "horizontal": [w for w in words if w in ("left", "right")],
    }
    for key, values in found.items():
        if len(set(values)) != 1:
            raise DataError(f"caption {text!r} names {len(set(values))} {key} values {sorted(set(values))}, "
                            "expected exactly one")
    one = {k: v[0] for k, v in found.items()}
    return {"shape": one["shape"], "colour": one["colour"], "size": one["size"],
            "pos": f"{one['vertical']}_{one['horizontal']}"}


def attribute_row(truth: dict[str, str]) -> np.ndarray:
    """The one-hot blocks (colour, shape, size, pos) of ``truth``, in ``ATTRIBUTE_NAMES`` order."""
    keys = {f"colour={truth['colour']}", f"shape={truth['shape']}", f"size={truth['size']}", f"pos={truth['pos']}"}
    return np.array([name in keys for name in ATTRIBUTE_NAMES], np.uint8)


# -- drawing ----------------------------------------------------------------------------------------------------------


def _polygon(cx: float, cy: float, radii: Sequence[float], angle: float) -> list[tuple[float, float]]:
    """Vertices at equal angular steps, the first pointing up, rotated by ``angle`` radians."""
    step = 2 * math.pi / len(radii)
    return [(cx + r * math.sin(angle + k * step), cy - r * math.cos(angle + k * step)) for k, r in enumerate(radii)]


def _draw(mask: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, angle: float) -> None:
    if shape == "circle":
        mask.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    elif shape == "square":
        mask.polygon(_polygon(cx, cy, [r * 1.2] * 4, angle + math.pi / 4), fill=255)  # half side 0.85 r
    elif shape == "triangle":
        mask.polygon(_polygon(cx, cy, [r * 1.1] * 3, angle), fill=255)
    else:
        mask.polygon(_polygon(cx, cy, [r * 1.1, r * 0.5] * 5, angle), fill=255)


def render_shape(truth: dict[str, str], size: int, rng: np.random.Generator) -> np.ndarray:
    """One antialiased (size, size, 3) uint8 image of ``truth`` on black; ``rng`` jitters position and angle."""
    big = size * _SUPERSAMPLE
    r = RADIUS[truth["size"]] * big
    slack = max(0.0, 0.25 * big - 1.1 * r - _MARGIN * big)  # how far the centre may move inside its quadrant
    vertical, horizontal = truth["pos"].split("_")
    cx = (0.75 if horizontal == "right" else 0.25) * big + rng.uniform(-slack, slack)
    cy = (0.75 if vertical == "bottom" else 0.25) * big + rng.uniform(-slack, slack)
    canvas = Image.new("L", (big, big), 0)
    _draw(ImageDraw.Draw(canvas), truth["shape"], cx, cy, r, rng.uniform(-math.pi / 12, math.pi / 12))
    cover = np.asarray(canvas.resize((size, size), Image.Resampling.BOX), np.float32) / 255.0
    colour = np.array(COLOURS[truth["colour"]], np.float32)
    return np.rint(cover[..., None] * colour).astype(np.uint8)


def _sample_truth(rng: np.random.Generator) -> dict[str, str]:
    return {"shape": SHAPES[rng.integers(len(SHAPES))], "colour": list(COLOURS)[rng.integers(len(COLOURS))],
            "size": SIZES[rng.integers(len(SIZES))], "pos": POSITIONS[rng.integers(len(POSITIONS))]}


def make_shapes(n: int, size: int, seed: int, captions_per_image: int) -> ArrayBundle:
    """``n`` captioned shapes; image ``i`` depends only on ``(seed, i)``; test split: ``i % 10 == 9``."""
    images, rows, labels, captions = [], [], [], []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        truth = _sample_truth(rng)
        images.append(render_shape(truth, size, rng))
        rows.append(attribute_row(truth))
        labels.append(SHAPES.index(truth["shape"]))
        templates = rng.choice(len(_TEMPLATES), captions_per_image, replace=False)
        captions.append([write_caption(truth, int(t)) for t in templates])
    index = np.arange(n)
    return ArrayBundle(
        images=np.stack(images), labels=np.array(labels, np.int64), label_names=SHAPES,
        attributes=np.stack(rows), attribute_names=ATTRIBUTE_NAMES, captions=captions,
        splits={"train": index[index % 10 != 9], "test": index[index % 10 == 9]},
    ).validate("shapes")


# -- registration -----------------------------------------------------------------------------------------------------


def _check_split(_: Any, attribute: attrs.Attribute, value: str) -> None:
    if value not in ("all", "train", "test"):
        raise ValueError(f"{attribute.name} must be 'all', 'train' or 'test', got {value!r}")


@attrs.frozen(kw_only=True)
class ShapesCfg:
    n: int = attrs.field(default=10_000, validator=v.size)  # images (train + test)
    image_size: int = attrs.field(default=32, validator=attrs.validators.ge(16))
    seed: int = attrs.field(default=0, validator=v.non_negative)  # numpy seeds are non-negative
    split: str = attrs.field(default="all", validator=_check_split)  # "all" (with splits in bundle()), "train", "test"
    captions_per_image: int = attrs.field(default=5, validator=attrs.validators.in_(range(1, len(_TEMPLATES) + 1)))
    encoder: str | None = None  # a text encoder's name: items carry "text_emb", one random caption's embedding
    wrong_image: bool = False  # items carry "image_wrong", an image with other captions (matching-aware D)
    caption_average: int = attrs.field(default=1, validator=v.size)  # captions averaged into text_emb (CAPTION_AVERAGE)


@register_dataset("shapes", variants={"32": ShapesCfg(image_size=32), "64": ShapesCfg(image_size=64)})
def captioned_shapes(cfg: ShapesCfg) -> BundleDataset:
    """Captioned shapes: one coloured shape per image, with exact captions and one-hot attributes (procedural)."""
    bundle = make_shapes(cfg.n, cfg.image_size, cfg.seed, cfg.captions_per_image)
    return BundleDataset(bundle, cfg.split, where=f"shapes.{cfg.image_size}", encoder=cfg.encoder,
                         wrong_image=cfg.wrong_image, caption_average=cfg.caption_average)
