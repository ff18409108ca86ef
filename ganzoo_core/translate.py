"""Image-to-image models on the user's own files: ``ganzoo translate CKPT INPUT --out DIR``.

An objective translates images when it has the ``ImageTranslator`` members (``ganzoo_core.interfaces``):
``translate_images(images, **options)`` and ``translation_options``. This module reads INPUT (an image file, a
folder of images, or a ganzoo HDF5 file), fits each image to the networks' input (``objective.image_shape``: the
shorter side resized, then a centred square crop, said once), runs the model batch by batch with a progress bar, and
writes one PNG per input under DIR, keeping the input's relative path and stem (``photos/a.jpg`` → ``DIR/photos/a.png``;
HDF5 items as ``000042.png``). Outputs are written atomically; an existing output file is refused unless
``overwrite``. Memory is bounded by ``batch_size``.

Options are the objective's (``translation_options``: a name, its choices, default and help); the command's
``--direction AtoB|BtoA`` and ``--set-attr NAME=VALUE`` fill the options ``direction`` and ``attributes``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ganzoo_core.errors import GanzooError, InputError
from ganzoo_core.interfaces import TranslationOption
from ganzoo_core.progress import progress as show_progress
from ganzoo_core.visual import to_pil

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
H5_SUFFIXES = (".h5", ".hdf5")


def is_translator(objective: Any) -> bool:
    """Whether ``objective`` translates images (has ``translate_images`` and ``translation_options``)."""
    return callable(getattr(objective, "translate_images", None)) and hasattr(objective, "translation_options")


def input_size(objective: Any) -> tuple[int, int]:
    """(height, width) the objective's networks take: its ``translation_size``, else ``image_shape[1:]``."""
    size = getattr(objective, "translation_size", None)
    if size is not None:
        return int(size[0]), int(size[1])
    shape = getattr(objective, "image_shape", None)
    if shape is None or len(shape) != 3:
        raise GanzooError(f"{type(objective).__name__} has no image_shape (C, H, W); it cannot say what size its "
                          "networks take")
    return int(shape[1]), int(shape[2])


# -- inputs --------------------------------------------------------------------------------------------------------


@attrs.frozen
class InputItem:
    name: Path  # the output's relative path (".png")
    image: Tensor  # (3, H, W) in [-1, 1], fitted to the networks' size
    original_size: tuple[int, int]  # (width, height) as read


def list_inputs(path: Path) -> list[Path]:
    """The image files of ``path`` (a file, or a folder searched recursively), sorted; HDF5 files as they are."""
    if path.is_file():
        if path.suffix.lower() not in IMAGE_SUFFIXES + H5_SUFFIXES:
            raise InputError(f"{str(path)!r} is not an image ({', '.join(IMAGE_SUFFIXES)}) or an HDF5 file "
                             f"({', '.join(H5_SUFFIXES)})")
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"folder {str(path)!r} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        return files
    raise InputError(f"input {str(path)!r} does not exist; give an image, a folder of images or an HDF5 file")


def fit(image: Image.Image, size: tuple[int, int]) -> Tensor:
    """RGB ``image`` resized so that it covers ``size`` (H, W) (bicubic, antialiased), centre-cropped to it; as a
    (3, H, W) tensor in [-1, 1]."""
    h, w = size
    scale = max(h / image.height, w / image.width)
    if image.size != (w, h):
        image = image.resize((max(w, round(image.width * scale)), max(h, round(image.height * scale))),
                             Image.Resampling.BICUBIC)
        left, top = (image.width - w) // 2, (image.height - h) // 2
        image = image.crop((left, top, left + w, top + h))
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0  # (H, W, 3)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def read_inputs(path: Path, size: tuple[int, int]) -> Iterator[InputItem]:
    """Every input image of ``path`` as an ``InputItem``, in order."""
    files = list_inputs(path)
    if len(files) == 1 and files[0].suffix.lower() in H5_SUFFIXES:
        yield from _read_h5(files[0], size)
        return
    root = path if path.is_dir() else path.parent
    for file in files:
        try:
            with Image.open(file) as raw:
                raw.load()
                image = raw.convert("RGB")
        except (OSError, ValueError) as err:
            raise InputError(f"cannot read image {str(file)!r}: {err}") from err
        yield InputItem(name=file.relative_to(root).with_suffix(".png"), image=fit(image, size),
                        original_size=image.size)


def output_names(path: Path) -> list[Path]:
    """The relative output names ``read_inputs(path, ...)`` gives, in order, without reading any image."""
    files = list_inputs(path)
    if len(files) == 1 and files[0].suffix.lower() in H5_SUFFIXES:
        from ganzoo_core.data.schema import read_h5

        with read_h5(files[0]) as f:
            n = f["images"].shape[0] if "images" in f else 0
        width = max(6, len(str(n - 1)))
        return [Path(f"{i:0{width}d}.png") for i in range(n)]
    root = path if path.is_dir() else path.parent
    return [file.relative_to(root).with_suffix(".png") for file in files]


def _read_h5(path: Path, size: tuple[int, int]) -> Iterator[InputItem]:
    from ganzoo_core.data.schema import H5Cfg, H5Dataset

    data = H5Dataset(H5Cfg(path=str(path)))
    width = max(6, len(str(len(data) - 1)))
    for i in range(len(data)):
        image = data[i]["image"]  # (C, H, W) in [-1, 1]
        pil = to_pil(image.repeat(3, 1, 1) if image.shape[0] == 1 else image)
        yield InputItem(name=Path(f"{i:0{width}d}.png"), image=fit(pil, size), original_size=pil.size)


# -- options -------------------------------------------------------------------------------------------------------


def resolve_options(objective: Any, given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` checked against the objective's ``translation_options``, defaults filled in."""
    spec: Mapping[str, TranslationOption] = objective.translation_options
    unknown = sorted(set(given) - set(spec))
    if unknown:
        flag = {"direction": "--direction", "attributes": "--set-attr"}
        raise InputError(f"{type(objective).__name__} takes no {', '.join(flag.get(u, u) for u in unknown)}; its "
                         f"options: {', '.join(flag.get(k, k) for k in spec) or 'none'}")
    out: dict[str, Any] = {}
    for name, opt in spec.items():
        value = given.get(name, opt.default)
        if opt.kind == "attributes":
            value = dict(value or {})
            bad = [k for k in value if opt.choices is not None and k not in opt.choices]
            if bad:
                raise InputError(f"unknown attribute {bad[0]!r}; expected one of {', '.join(opt.choices or ())}")
        elif opt.choices is not None and value not in opt.choices:
            raise InputError(f"{name} {value!r} is not one of {', '.join(opt.choices)}")
        out[name] = value
    return out


def parse_attribute(text: str) -> tuple[str, float]:
    """``NAME=VALUE`` (VALUE a number, e.g. ``Blond_Hair=1``; a NAME may hold "=": ``size=large=1``)."""
    name, sep, value = text.rpartition("=")
    try:
        if not sep or not name:
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE with a number, e.g. Blond_Hair=1; got {text!r}") from None


# -- running -------------------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class TranslateResult:
    outputs: tuple[Path, ...]
    size: tuple[int, int]  # (H, W) the inputs were fitted to
    resized: int  # inputs whose size differed from it
    options: Mapping[str, Any]


def translate_files(objective: Any, source: str | Path, out_dir: str | Path, *, options: Mapping[str, Any] | None = None,
                    batch_size: int = 16, device: str | torch.device = "cpu", overwrite: bool = False,
                    progress: bool | None = None, seed: int = 0) -> TranslateResult:
    """Translate every image of ``source`` with ``objective`` and write one PNG each under ``out_dir``; a model that
    draws noise at test time (pix2pix's dropout) draws it from ``seed``, so a rerun writes the same images."""
    from ganzoo_core._atomic import atomic_path, check_destination

    if not is_translator(objective):
        raise GanzooError(f"{type(objective).__name__} does not translate images (no translate_images); "
                          "`ganzoo translate` takes an image-to-image checkpoint (pix2pix, CycleGAN, StarGAN, ...)")
    opts = resolve_options(objective, dict(options or {}))
    size = input_size(objective)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {str(out)!r} is a file; give a folder")
    names = output_names(Path(source))
    clash = sorted(str(n) for n, k in collections.Counter(names).items() if k > 1)
    if clash:
        raise InputError(f"several inputs (one name, several image types) would write {clash[0]!r}; keep one of them")
    for name in names:  # refuse before writing anything
        check_destination(out / name, overwrite=overwrite, what="translated image")
    objective.eval()
    written: list[Path] = []
    resized = 0
    cuda = [torch.device(device)] if torch.device(device).type == "cuda" else []
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(show_progress(total=len(names), desc="translate", unit="img",
                                                enabled=False if len(names) < 2 else progress))
        stack.enter_context(torch.random.fork_rng(devices=cuda))
        torch.manual_seed(seed)
        for batch in _batched(read_inputs(Path(source), size), batch_size):  # one batch in memory at a time
            images = torch.stack([item.image for item in batch]).to(device)
            with torch.no_grad():
                result = objective.translate_images(images, **opts).float().clamp(-1, 1).cpu()
            for item, image in zip(batch, result):
                resized += item.original_size != (size[1], size[0])
                target = out / item.name
                with atomic_path(target, overwrite=overwrite, what="translated image") as tmp:
                    to_pil(image).save(tmp, format="PNG")
                written.append(target)
            bar.update(len(batch))
    return TranslateResult(outputs=tuple(written), size=size, resized=resized, options=opts)


def _batched(items: Iterator[InputItem], n: int) -> Iterator[list[InputItem]]:
    batch: list[InputItem] = []
    for item in items:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


# -- the command ---------------------------------------------------------------------------------------------------


def add_translate_command(subparsers: Any) -> None:
    """``ganzoo translate CKPT INPUT --out DIR [--direction D] [--set-attr NAME=V ...]``."""
    from ganzoo_core.argtypes import device as device_arg
    from ganzoo_core.argtypes import int_at_least
    from ganzoo_core.argtypes import seed as seed_arg

    p = subparsers.add_parser(
        "translate", help="run an image-to-image checkpoint on your own images",
        description="Translate an image, a folder of images or an HDF5 file with an image-to-image checkpoint "
                    "(pix2pix, CycleGAN, StarGAN, ...): each input is resized and centre-cropped to the size the "
                    "networks take, and written as DIR/<its name>.png.")
    p.add_argument("checkpoint", type=Path, help="a ganzoo checkpoint of an image-to-image objective")
    p.add_argument("input", type=Path, help="an image file, a folder of images (searched recursively) or an HDF5 file")
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")
    p.add_argument("--direction", help="CycleGAN: AtoB (G_A) or BtoA (G_B)")
    p.add_argument("--set-attr", action="append", type=parse_attribute, default=[], metavar="NAME=VALUE",
                   help="StarGAN: a target attribute, e.g. Blond_Hair=1 (repeat; others keep their default)")
    p.add_argument("--batch-size", type=int_at_least(1), default=16, help="images per forward pass")
    p.add_argument("--seed", type=seed_arg, default=0, help="noise a model draws at test time (pix2pix's dropout)")
    p.add_argument("--device", type=device_arg, default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--no-verify", action="store_true", help="skip the check of the checkpoint's tensor hash")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_cmd_translate)


def _cmd_translate(args: argparse.Namespace) -> int:
    import sys

    from ganzoo_core.hub import load

    objective = load(args.checkpoint, device=args.device, verify=not args.no_verify)
    given: dict[str, Any] = {}
    if args.direction is not None:
        given["direction"] = args.direction
    if args.set_attr:
        given["attributes"] = dict(args.set_attr)
    result = translate_files(objective, args.input, args.out, options=given, batch_size=args.batch_size,
                             device=args.device, overwrite=args.overwrite,
                             progress=False if (args.no_progress or args.json) else None, seed=args.seed)
    h, w = result.size
    if args.json:
        print(json.dumps({"outputs": [str(p) for p in result.outputs], "size": [h, w], "resized": result.resized,
                          "options": result.options}, indent=2, default=str))
        return 0
    if result.resized:
        print(f"resized and centre-cropped {result.resized} of {len(result.outputs)} inputs to {w}×{h}, the size "
              "the networks take", file=sys.stderr)
    print(f"wrote {len(result.outputs)} translated images to {args.out}")
    return 0


def option_summary(options: Mapping[str, TranslationOption]) -> Sequence[str]:
    """Lines describing the options, for ``ganzoo info`` and the demo page."""
    return [f"{name}: {', '.join(o.choices) if o.choices else 'any'} (default {o.default!r}) {o.help}".rstrip()
            for name, o in options.items()]
