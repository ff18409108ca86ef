"""Converters from the layouts users already have to a validated ``ArrayBundle`` (docs/data.md).

Every converter reads a folder (or a file), decodes its images with Pillow and returns a ``ConvertedBundle``: an
``ArrayBundle`` that also says what it read (``source``). Problems are ``DataError``s that name the file.

Rules shared by every image converter:

- Files and folders whose name starts with ``.`` (``.DS_Store``, ``._x.jpg``, ``.ipynb_checkpoints``) and the
  ``Thumbs.db`` / ``desktop.ini`` files that file managers leave behind are ignored. Any other file must be an image
  Pillow can read. Folders are read recursively, files in sorted path order.
- ``image_size=N`` makes every image N×N: the largest centred square-aspect region is cut out and resized
  (bilinear); ``None`` keeps the size, and then every image must have the same size.
- ``channels``: 1 (grey, ITU-R 601-2 luma as Pillow's ``convert("L")``) or 3; ``None``: 3 if any image has colour
  (a pixel whose R, G, B differ), else 1.
- Transparency (RGBA, LA, palette transparency) is composited on ``background``: white by default, because drawn
  images such as emoji and icons are made to be seen on white and a black background turns their dark outlines
  into nothing; ``background`` takes a colour name, ``#rrggbb``, a grey level 0..255 or an (r, g, b) tuple.
- EXIF orientation is applied; 16-bit greyscale is scaled to 8 bits; of a multi-frame file the first frame is read.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from PIL import Image, ImageColor, ImageOps, UnidentifiedImageError

from ganzoo_core.data.schema import ArrayBundle, DataError

IGNORED_NAMES = frozenset({"Thumbs.db", "desktop.ini"})
SPLITS = ("train", "val", "test")
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")
Background = str | int | tuple[int, int, int]
PathLike = str | Path


@attrs.define(kw_only=True)
class ConvertedBundle(ArrayBundle):
    """An ``ArrayBundle`` plus ``source``: what a converter read, for the file's ``ganzoo.source``."""

    source: str = ""


# -- options ---------------------------------------------------------------------------------------------------------


def _check_options(image_size: int | None, channels: int | None) -> None:
    if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
        raise DataError(f"image_size must be a positive int (or None to keep the size), got {image_size!r}")
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1, 3 or None (3 if any image has colour), got {channels!r}")


def _background(value: Background) -> tuple[int, int, int]:
    if isinstance(value, str):
        try:
            return ImageColor.getrgb(value)[:3]
        except ValueError:
            raise DataError(f"background {value!r} is not a colour; use 'white', 'black', '#rrggbb' or 0..255") from None
    if isinstance(value, int) and 0 <= value <= 255:
        return (value, value, value)
    if isinstance(value, Sequence) and len(value) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in value):
        return (int(value[0]), int(value[1]), int(value[2]))
    raise DataError(f"background must be a colour name, a grey level 0..255 or an (r, g, b) tuple, got {value!r}")


def _describe(image_size: int | None, channels: int, background: Background) -> str:
    size = f"{image_size}×{image_size} (centre crop, bilinear)" if image_size else "original size"
    return f"{size}, {channels} channel(s), transparency on {background}"


# -- finding files ---------------------------------------------------------------------------------------------------


def _ignored(path: Path) -> bool:
    return path.name.startswith(".") or path.name in IGNORED_NAMES


def _folder(path: PathLike, what: str) -> Path:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataError(f"{what} {str(folder)!r} is not a folder")
    return folder


def _children(folder: Path, skip: tuple[str, ...] = ()) -> tuple[list[Path], list[Path]]:
    """Visible (sub-folders, files) of ``folder``, sorted; files ending in a ``skip`` suffix are left out."""
    entries = sorted(p for p in folder.iterdir() if not _ignored(p))
    return [p for p in entries if p.is_dir()], [p for p in entries if not p.is_dir() and p.suffix not in skip]


def _walk(folder: Path, skip: tuple[str, ...]) -> list[Path]:
    dirs, files = _children(folder, skip)
    return files + [f for sub in dirs for f in _walk(sub, skip)]


def list_files(folder: Path, skip: tuple[str, ...] = ()) -> list[Path]:
    """Every visible file under ``folder`` (recursively, sorted); an empty folder is an error."""
    files = sorted(_walk(folder, skip))
    if not files:
        raise DataError(f"folder {str(folder)!r} holds no images; add some or remove the folder")
    return files


def scan_classes(root: Path, skip: tuple[str, ...] = ()) -> tuple[list[Path], np.ndarray | None, list[str]]:
    """Files of ``root`` with labels from its class sub-folders (sorted names), or no labels for a flat folder."""
    dirs, files = _children(root, skip)
    if not dirs:
        return list_files(root, skip), None, []
    if files:
        raise DataError(f"{str(root)!r} has class folders ({dirs[0].name!r}, ...) and also the loose file "
                        f"{files[0].name!r}; move it into a class folder or out of {str(root)!r}")
    paths: list[Path] = []
    labels: list[int] = []
    for label, sub in enumerate(dirs):
        found = list_files(sub, skip)
        paths += found
        labels += [label] * len(found)
    return paths, np.asarray(labels, np.int64), [d.name for d in dirs]


# -- decoding --------------------------------------------------------------------------------------------------------


def _to_rgb(image: Image.Image, background: tuple[int, int, int], path: Path) -> np.ndarray:
    if image.mode in _SIXTEEN_BIT:
        grey = ((np.asarray(image).astype(np.uint32) + 128) // 257).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    if image.mode in ("I", "F"):
        raise DataError(f"{str(path)!r} is a 32-bit {'float' if image.mode == 'F' else 'integer'} image; convert it "
                        "to 8-bit PNG or JPEG first")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        canvas = Image.new("RGBA", image.size, (*background, 255))
        return np.asarray(Image.alpha_composite(canvas, image.convert("RGBA")).convert("RGB"))
    return np.asarray(image.convert("RGB"))


def decode(path: Path, background: tuple[int, int, int]) -> np.ndarray:
    """One image file as (H, W, 3) uint8 RGB, upright, transparency composited on ``background``."""
    try:
        with Image.open(path) as image:
            return _to_rgb(ImageOps.exif_transpose(image), background, path)
    except UnidentifiedImageError:
        raise DataError(f"{str(path)!r} is not an image Pillow can read (another kind of file, or a damaged "
                       "image); move it out of the folder") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DataError(f"cannot decode {str(path)!r}: {err} (truncated or corrupt?)") from err


def fit(rgb: np.ndarray, image_size: int | None) -> np.ndarray:
    """The centred largest region with the target's aspect ratio, resized (bilinear) to image_size × image_size."""
    if image_size is None or rgb.shape[:2] == (image_size, image_size):
        return rgb
    resample = Image.Resampling.BILINEAR
    return np.asarray(ImageOps.fit(Image.fromarray(rgb), (image_size, image_size), method=resample))


def _same_size(first: tuple[Path, np.ndarray] | None, path: Path, rgb: np.ndarray) -> tuple[Path, np.ndarray]:
    if first is None:
        return path, rgb
    if first[1].shape[:2] != rgb.shape[:2]:
        (h0, w0), (h1, w1) = first[1].shape[:2], rgb.shape[:2]
        raise DataError(f"images have different sizes: {str(first[0])!r} is {w0} wide × {h0} high but {str(path)!r} "
                        f"is {w1} wide × {h1} high; pass image_size=N to make every image N×N")
    return first


def _halves(path: Path, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    width = rgb.shape[1]
    if width % 2:
        raise DataError(f"{str(path)!r} is {width} pixels wide; a side-by-side AB image needs an even width "
                        "(A is the left half, B the right half)")
    return rgb[:, : width // 2], rgb[:, width // 2:]


def decode_all(paths: Sequence[Path], *, image_size: int | None, background: tuple[int, int, int],
               halves: bool = False) -> list[list[np.ndarray]]:
    """Decode and fit every file: ``[images]``, or ``[lefts, rights]`` with ``halves``."""
    out: list[list[np.ndarray]] = [[], []] if halves else [[]]
    first: tuple[Path, np.ndarray] | None = None
    for path in paths:
        rgb = decode(path, background)
        parts = _halves(path, rgb) if halves else (rgb,)
        if image_size is None:
            first = _same_size(first, path, rgb)
        for bucket, part in zip(out, parts):
            bucket.append(fit(part, image_size))
    return out


def _is_colour(stack: np.ndarray) -> bool:
    return bool((stack[..., 0] != stack[..., 1]).any() or (stack[..., 1] != stack[..., 2]).any())


def _luma(stack: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma with Pillow's fixed-point rounding (grey stays exactly grey)."""
    rgb = stack.astype(np.uint32)
    return ((rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16).astype(np.uint8)


def finish_channels(stacks: Sequence[np.ndarray], channels: int | None) -> tuple[list[np.ndarray], int]:
    """(N, H, W, 3) stacks in the requested channels; ``None`` chooses 3 if any of them has colour, else 1."""
    if channels is None:
        channels = 3 if any(_is_colour(s) for s in stacks) else 1
    return ([s if channels == 3 else _luma(s)[..., None] for s in stacks], channels)


def load_images(paths: Sequence[Path], *, image_size: int | None, channels: int | None,
                background: Background) -> tuple[np.ndarray, int]:
    """Every file as one (N, H, W, C) uint8 array, and C."""
    _check_options(image_size, channels)
    (images,) = decode_all(paths, image_size=image_size, background=_background(background))
    (stack,), channels = finish_channels([np.stack(images)], channels)
    return stack, channels


def _done(bundle: ConvertedBundle, where: Path) -> ConvertedBundle:
    bundle.validate(str(where))
    return bundle


# -- converters ------------------------------------------------------------------------------------------------------


def from_image_folder(root: PathLike, *, image_size: int | None = None, channels: int | None = None,
                      background: Background = "white") -> ConvertedBundle:
    """A folder of images: class sub-folders give labels (sorted folder names), a flat folder gives none."""
    folder = _folder(root, "image folder")
    paths, labels, names = scan_classes(folder)
    images, c = load_images(paths, image_size=image_size, channels=channels, background=background)
    classes = f" in {len(names)} class folders" if names else ""
    source = f"image folder {str(root)!r}: {len(paths)} images{classes}; {_describe(image_size, c, background)}"
    return _done(ConvertedBundle(images=images, labels=labels, label_names=names, source=source), folder)


def split_folders(root: Path) -> dict[str, Path]:
    """``train/``, ``val/``, ``test/`` of a root that has them (nothing else beside them), else ``{}``."""
    dirs, files = _children(root)
    found = {d.name: d for d in dirs if d.name in SPLITS}
    if not found:
        return {}
    stray = [p for p in dirs + files if p.name not in found]
    if stray:
        raise DataError(f"{str(root)!r} has split folders {sorted(found)} and also {stray[0].name!r}; a root holds "
                        "either images or train/ val/ test/ folders of images")
    return {s: found[s] for s in SPLITS if s in found}


def _splits_of(counts: Sequence[tuple[str, int]]) -> dict[str, np.ndarray]:
    splits: dict[str, list[int]] = {}
    start = 0
    for name, n in counts:
        splits.setdefault(name, []).extend(range(start, start + n))
        start += n
    return {k: np.asarray(v, np.int64) for k, v in splits.items()}


def from_pix2pix_ab(root: PathLike, *, direction: str = "AtoB", image_size: int | None = None,
                    channels: int | None = None, background: Background = "white") -> ConvertedBundle:
    """pix2pix side-by-side AB images (A left, B right); train/ val/ test/ sub-folders become splits."""
    if direction not in ("AtoB", "BtoA"):
        raise DataError(f"direction must be 'AtoB' or 'BtoA', got {direction!r}")
    _check_options(image_size, channels)
    folder = _folder(root, "pix2pix folder")
    groups = split_folders(folder)
    per_split = [(s, list_files(d)) for s, d in groups.items()] if groups else [("", list_files(folder))]
    paths = [p for _, found in per_split for p in found]
    left, right = decode_all(paths, image_size=image_size, background=_background(background), halves=True)
    (a, b), c = finish_channels([np.stack(left), np.stack(right)], channels)
    images, images_b = (a, b) if direction == "AtoB" else (b, a)
    splits = _splits_of([(s, len(found)) for s, found in per_split]) if groups else {}
    source = (f"pix2pix AB folder {str(root)!r}: {len(paths)} pairs ({direction}, splits {list(groups) or 'none'}); "
              f"{_describe(image_size, c, background)}")
    return _done(ConvertedBundle(images=images, images_b=images_b, splits=splits, source=source), folder)


def _cyclegan_folders(root: Path) -> list[tuple[str, int, Path]]:
    found = [(s, d, root / f"{s}{'AB'[d]}") for s in SPLITS for d in (0, 1) if (root / f"{s}{'AB'[d]}").is_dir()]
    names = {f"{s}{'AB'[d]}" for s, d, _ in found}
    missing = [n for n in ("trainA", "trainB") if n not in names]
    if missing:
        there = sorted(p.name for p in _children(root)[0])
        raise DataError(f"{str(root)!r} has no {' or '.join(missing)} folder (it has {there}); a CycleGAN dataset "
                        "holds trainA/ and trainB/, optionally valA/ valB/ testA/ testB/")
    return found


def from_cyclegan(root: PathLike, *, image_size: int | None = None, channels: int | None = None,
                  background: Background = "white") -> ConvertedBundle:
    """CycleGAN's unpaired trainA/ trainB/ (and val*/ test*/) folders: domains A = 0, B = 1, splits by prefix."""
    folder = _folder(root, "CycleGAN folder")
    groups = [(s, d, list_files(p)) for s, d, p in _cyclegan_folders(folder)]
    paths = [p for _, _, found in groups for p in found]
    images, c = load_images(paths, image_size=image_size, channels=channels, background=background)
    domains = np.concatenate([np.full(len(found), d, np.int64) for _, d, found in groups])
    splits = _splits_of([(s, len(found)) for s, _, found in groups])
    counts = ", ".join(f"{s}{'AB'[d]} {len(found)}" for s, d, found in groups)
    source = f"CycleGAN folder {str(root)!r}: {counts}; {_describe(image_size, c, background)}"
    bundle = ConvertedBundle(images=images, domains=domains, domain_names=["A", "B"], splits=splits, source=source)
    return _done(bundle, folder)


# -- CelebA ----------------------------------------------------------------------------------------------------------


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{str(path)!r} is not UTF-8 text ({err})") from None
    except OSError as err:
        raise DataError(f"cannot read {str(path)!r}: {err}") from err


@attrs.frozen
class CelebAAttributes:
    files: list[str]
    names: list[str]
    values: np.ndarray  # (N, K) uint8 in {0, 1}


def _bad_value(path: Path, rows: list[tuple[int, list[str]]]) -> DataError:
    lineno, parts, bad = next((i, p, v) for i, p in rows for v in p[1:] if v not in ("-1", "0", "1"))
    return DataError(f"{str(path)!r} line {lineno}: value {bad!r} for {parts[0]!r}; attributes are -1 or 1")


def _attribute_values(path: Path, rows: list[tuple[int, list[str]]], k: int) -> np.ndarray:
    for lineno, parts in rows:
        if len(parts) != k + 1:
            raise DataError(f"{str(path)!r} line {lineno} has {len(parts) - 1} values, expected {k} (one per "
                            "attribute name on line 2)")
    try:
        values = np.asarray([parts[1:] for _, parts in rows], dtype=np.int8).reshape(len(rows), k)
    except (ValueError, OverflowError):
        raise _bad_value(path, rows) from None
    if not np.isin(values, (-1, 0, 1)).all():
        raise _bad_value(path, rows)
    return (values > 0).astype(np.uint8)


def parse_celeba_attributes(path: Path) -> CelebAAttributes:
    """``list_attr_celeba.txt``: a count, the attribute names, then ``file v1 .. vK`` rows of -1/1 (0 also means no)."""
    lines = read_text(path).splitlines()
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise DataError(f"{str(path)!r} does not start with an image count and a line of attribute names, as "
                        "CelebA's list_attr_celeba.txt does")
    names = lines[1].split()
    rows = [(i, line.split()) for i, line in enumerate(lines[2:], start=3) if line.strip()]
    if int(lines[0]) != len(rows):
        raise DataError(f"{str(path)!r} says {int(lines[0])} images on line 1 but has {len(rows)} rows; the file is "
                        "truncated or edited: download it again")
    values = _attribute_values(path, rows, len(names))
    files = [parts[0] for _, parts in rows]
    if len(set(files)) != len(files):
        dup = next(f for i, f in enumerate(files) if f in files[:i])
        raise DataError(f"{str(path)!r} lists {dup!r} twice")
    return CelebAAttributes(files, names, values)


def _select(names: list[str], wanted: Sequence[str] | str | None) -> list[int]:
    if wanted is None:
        return list(range(len(names)))
    wanted = [w.strip() for w in wanted.split(",")] if isinstance(wanted, str) else list(wanted)
    unknown = [w for w in wanted if w not in names]
    if unknown:
        close = difflib.get_close_matches(unknown[0], names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DataError(f"unknown CelebA attribute(s) {unknown}{hint}; valid: {', '.join(names)}")
    return [names.index(w) for w in wanted]


def _first_file(candidates: Sequence[Path], what: str, option: str) -> Path:
    found = next((p for p in candidates if p.exists()), None)
    if found is None:
        raise DataError(f"no {what} found; looked for {[str(p) for p in candidates]}: pass {option}=")
    return found


def _celeba_paths(root: PathLike, images_dir: PathLike | None) -> tuple[Path, Path, list[Path]]:
    """The attribute file, the images folder, and where a partition file may be."""
    base = Path(root).expanduser()
    if not base.exists():
        raise DataError(f"CelebA root {str(base)!r} does not exist")
    attr = base if base.is_file() else _first_file(
        [base / "list_attr_celeba.txt", base / "Anno" / "list_attr_celeba.txt"], "list_attr_celeba.txt", "root")
    near = (attr.parent, attr.parent.parent)
    images = Path(images_dir).expanduser() if images_dir is not None else _first_file(
        [b / sub for b in near for sub in ("img_align_celeba", "Img/img_align_celeba")], "img_align_celeba folder",
        "images_dir")
    partitions = [b / sub for b in near for sub in ("list_eval_partition.txt", "Eval/list_eval_partition.txt")]
    return attr, _folder(images, "CelebA images folder"), partitions


def parse_partition(path: Path, files: Sequence[str]) -> dict[str, np.ndarray]:
    """``list_eval_partition.txt`` (``file 0|1|2``) as train/val/test indices into ``files``."""
    split_of: dict[str, str] = {}
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        parts = line.split()
        if parts and (len(parts) != 2 or parts[1] not in ("0", "1", "2")):
            raise DataError(f"{str(path)!r} line {lineno}: expected 'file 0|1|2' (train/val/test), got {line!r}")
        if parts:
            split_of[parts[0]] = SPLITS[int(parts[1])]
    missing = [f for f in files if f not in split_of]
    if missing:
        raise DataError(f"{str(path)!r} has no line for {missing[0]!r} ({len(missing)} of {len(files)} images have "
                        "none); is it the partition file of the same CelebA release?")
    chosen = [split_of[f] for f in files]
    return {s: np.asarray([i for i, c in enumerate(chosen) if c == s], np.int64) for s in SPLITS if s in chosen}


def from_celeba(root: PathLike, images_dir: PathLike | None = None, *, attributes: Sequence[str] | str | None = None,
                image_size: int | None = 64, limit: int | None = None, partition_file: PathLike | None = None,
                channels: int | None = None) -> ConvertedBundle:
    """CelebA: list_attr_celeba.txt (root, or a folder holding it) → attributes {0, 1}, with images and splits."""
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise DataError(f"limit must be a positive int, got {limit!r}")
    attr_file, folder, partitions = _celeba_paths(root, images_dir)
    table = parse_celeba_attributes(attr_file)
    files = table.files[:limit]
    columns = _select(table.names, attributes)
    paths = [folder / f for f in files]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"CelebA image {str(missing[0])!r} is missing ({len(missing)} of {len(paths)} images "
                        f"listed in {str(attr_file)!r} are not in {str(folder)!r}); if they are elsewhere, pass images_dir=")
    partition = Path(partition_file).expanduser() if partition_file is not None else next(
        (p for p in partitions if p.is_file()), None)
    splits = parse_partition(partition, files) if partition is not None else {}
    images, c = load_images(paths, image_size=image_size, channels=channels, background="white")
    source = (f"CelebA {str(attr_file)!r} ({len(files)} of {len(table.files)} images, {len(columns)} attributes), "
              f"images {str(folder)!r}, partition {str(partition) if partition else 'none'}; "
              f"{_describe(image_size, c, 'white')}")
    bundle = ConvertedBundle(images=images, attributes=table.values[: len(files), columns],
                             attribute_names=[table.names[i] for i in columns], splits=splits, source=source)
    return _done(bundle, attr_file)


# -- captions --------------------------------------------------------------------------------------------------------


def index_captions(folder: Path) -> dict[str, Path]:
    """Every ``*.txt`` under ``folder`` by stem; two files with one stem are an error."""
    index: dict[str, Path] = {}
    for path in sorted(folder.rglob("*.txt")):
        if any(_ignored(Path(part)) for part in path.relative_to(folder).parts):
            continue
        if path.stem in index:
            raise DataError(f"two caption files for {path.stem!r}: {str(index[path.stem])!r} and {str(path)!r}")
        index[path.stem] = path
    return index


def read_captions(path: Path, per_image: int | None) -> list[str]:
    """Non-blank lines, stripped; ``per_image`` requires exactly that many."""
    captions = [line.strip() for line in read_text(path).splitlines() if line.strip()]
    if not captions:
        raise DataError(f"caption file {str(path)!r} holds no captions")
    if per_image is not None and len(captions) != per_image:
        raise DataError(f"caption file {str(path)!r} has {len(captions)} captions, expected {per_image} "
                        "(captions_per_image)")
    return captions


def _caption_files(paths: Sequence[Path], index: dict[str, Path], captions_dir: Path) -> list[Path]:
    found = []
    for path in paths:
        if path.stem not in index:
            raise DataError(f"image {str(path)!r} has no caption file {path.stem + '.txt'!r} under "
                            f"{str(captions_dir)!r}")
        found.append(index[path.stem])
    return found


def _labels_from_parents(files: Sequence[Path], root: Path) -> tuple[np.ndarray | None, list[str]]:
    """Class labels from the caption files' folders when every file sits one folder below ``root``."""
    if any(f.parent.parent != root for f in files):
        return None, []
    names = sorted({f.parent.name for f in files})
    return np.asarray([names.index(f.parent.name) for f in files], np.int64), names


def from_captions(images_dir: PathLike, captions_dir: PathLike, *, captions_per_image: int | None = None,
                  image_size: int | None = None, channels: int | None = None,
                  background: Background = "white") -> ConvertedBundle:
    """Images with one caption file each (same stem + .txt, a caption a line), as text_c10 folders."""
    if captions_per_image is not None and (not isinstance(captions_per_image, int) or captions_per_image < 1):
        raise DataError(f"captions_per_image must be a positive int (or None for any number), got {captions_per_image!r}")
    images_root, captions_root = _folder(images_dir, "images folder"), _folder(captions_dir, "captions folder")
    paths, labels, names = scan_classes(images_root, skip=(".txt",))  # captions may sit beside their images
    files = _caption_files(paths, index_captions(captions_root), captions_root)
    captions = [read_captions(f, captions_per_image) for f in files]
    if labels is None:
        labels, names = _labels_from_parents(files, captions_root)
    images, c = load_images(paths, image_size=image_size, channels=channels, background=background)
    source = (f"images {str(images_dir)!r} with captions {str(captions_dir)!r}: {len(paths)} images, "
              f"{sum(map(len, captions))} captions, {len(names)} classes; {_describe(image_size, c, background)}")
    bundle = ConvertedBundle(images=images, labels=labels, label_names=names, captions=captions, source=source)
    return _done(bundle, images_root)


CONVERTERS: dict[str, Callable[..., ConvertedBundle]] = {
    "folder": from_image_folder,
    "pix2pix-ab": from_pix2pix_ab,
    "cyclegan": from_cyclegan,
    "celeba": from_celeba,
    "captions": from_captions,
}
"""The converters ``ganzoo data build`` knows, by name."""


def run_converter(name: str, options: dict[str, Any]) -> ConvertedBundle:
    """Call converter ``name`` with ``options`` (from ``--set``); unknown or missing options name the valid ones."""
    if name not in CONVERTERS:
        raise DataError(f"unknown converter {name!r}; converters: {', '.join(CONVERTERS)}")
    params = inspect.signature(CONVERTERS[name]).parameters
    unknown = sorted(set(options) - set(params))
    missing = [p for p, v in params.items() if v.default is inspect.Parameter.empty and p not in options]
    if unknown or missing:
        what = f"has no option(s) {unknown}" if unknown else f"needs {', '.join(f'{m}=...' for m in missing)}"
        raise DataError(f"converter {name!r} {what}; options: {converter_usage(name)}")
    paths = {p for p, v in params.items() if "Path" in str(v.annotation)}
    kwargs = {k: str(v) if k in paths and v is not None else v for k, v in options.items()}
    return CONVERTERS[name](**kwargs)


def converter_usage(name: str) -> str:
    """``root=... [image_size=None] ...``: the required options, then the optional ones with their defaults."""
    params = inspect.signature(CONVERTERS[name]).parameters.values()
    return " ".join(f"{p.name}=..." if p.default is inspect.Parameter.empty else f"[{p.name}={p.default!r}]"
                    for p in params)
