"""``ganzoo data list | build | info | fetch``: registered datasets and converters to schema files, what a file holds,
and the Debian packages some datasets read, fetched without root (``ganzoo_core.data.fetch``).

A dataset factory may carry an ``available(cfg) -> bool`` function attribute that says cheaply (no loading) whether
its source files are on this machine; ``ganzoo data list`` shows ``yes``/``no`` from it, and ``?`` without it.
"""

from __future__ import annotations

import argparse
import difflib
import json
from pathlib import Path
from typing import Any

from ganzoo_core._api import create, get_entry, is_name, list_names
from ganzoo_core._atomic import check_destination
from ganzoo_core._registry import Entry
from ganzoo_core.argtypes import device as device_arg
from ganzoo_core.argtypes import int_at_least
from ganzoo_core.data import fetch
from ganzoo_core.data.convert import CONVERTERS, converter_usage, run_converter
from ganzoo_core.data.schema import ArrayBundle, bundle_from_dataset, read_h5_info, write_h5
from ganzoo_core.errors import GanzooError
from ganzoo_core.overrides import parse_overrides
from ganzoo_core.progress import CountBar, busy, cli_progress


def availability(entry: Entry) -> str:
    """``yes``/``no`` from the factory's ``available(cfg)``, ``?`` when it has none (or it fails)."""
    check = getattr(entry.factory, "available", None)
    if not callable(check):
        return "?"
    try:
        return "yes" if check(entry.cfg) else "no"
    except Exception:  # a broken check must not break the listing
        return "?"


def cmd_data_list(args: argparse.Namespace) -> int:
    names = list_names("dataset")
    width = max((len(n) for n in [*names, *CONVERTERS]), default=0)
    print("datasets: ganzoo data build NAME OUT.h5 [--set key=value ...]   (source here: yes, no, ? = not known "
          "without loading it)")
    for name in names:
        entry = get_entry("dataset", name)
        print(f"  {name:<{width}}  {availability(entry):<3}  {entry.summary}")
    print("converters: ganzoo data build CONVERTER OUT.h5 --set key=value ...   (docs/data.md)")
    for name, func in CONVERTERS.items():
        summary = (func.__doc__ or "").strip().splitlines()[0]
        print(f"  {name:<{width}}  {summary}\n  {'':<{width}}    options: {converter_usage(name)}")
    return 0


def _unknown_source(name: str) -> GanzooError:
    pool = [*CONVERTERS, *list_names("dataset")]
    close = difflib.get_close_matches(name, pool, n=3)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    return GanzooError(f"{name!r} is neither a converter ({', '.join(CONVERTERS)}) nor a registered dataset{hint} "
                       "(see 'ganzoo data list')")


def build_bundle(name: str, options: dict[str, Any]) -> tuple[ArrayBundle, str, str]:
    """(bundle, source, registered name or "") of a converter or of a registered dataset that has ``bundle()``."""
    if name in CONVERTERS:
        converted = run_converter(name, options)
        return converted, converted.source, ""
    if not is_name("dataset", name):
        raise _unknown_source(name)
    entry = get_entry("dataset", name)
    bundle = bundle_from_dataset(create("dataset", name, **options))
    given = f" with {', '.join(f'{k}={v!r}' for k, v in options.items())}" if options else ""
    return bundle, f"registered dataset {entry.name}{given} ({entry.summary})", entry.name


def cmd_data_build(args: argparse.Namespace) -> int:
    options = parse_overrides(args.set)
    check_destination(args.out, overwrite=args.overwrite, what="dataset file")  # before the (long) build
    with busy(f"reading {args.name}", cli_progress(args)):
        bundle, source, registered = build_bundle(args.name, options)
    meta = {"built_from": args.name, "options": {k: _jsonable(v) for k, v in options.items()}}
    name = args.file_name or registered or args.out.stem
    with busy(f"writing {args.out} ({len(bundle)} items)", cli_progress(args)):
        path = write_h5(bundle, args.out, name=name, source=source, meta=meta, overwrite=args.overwrite)
    shape = "" if bundle.images is None else f", images of shape {bundle.images.shape[1:]} (H, W, C)"
    print(f"wrote {path}: {len(bundle)} items{shape}; see 'ganzoo data info {path}'")
    return 0


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except TypeError:
        return repr(value)
    return value


def _human(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"


def cmd_data_info(args: argparse.Namespace) -> int:
    info = read_h5_info(args.file)
    print(f"{info.path}  ({_human(info.path.stat().st_size)})")
    print(f"  name:    {info.name}\n  source:  {info.source}\n  schema:  version {info.version}")
    if info.meta:
        print(f"  meta:    {json.dumps(info.meta, sort_keys=True)}")
    width = max((len(k) for k in info.datasets), default=0)
    print("  arrays:")
    for key, (shape, dtype) in sorted(info.datasets.items()):
        print(f"    {key:<{width}}  {dtype:<8} {shape}")
    splits = ", ".join(f"{k} {n}" for k, n in info.splits.items())
    print(f"  splits:  {splits or 'none'}")
    for key, values in info.names.items():
        print(f"  {key} names ({len(values)}): {', '.join(values)}")
    return 0


def cmd_data_fetch(args: argparse.Namespace) -> int:
    def log(line: str) -> None:
        print(line, flush=True)

    for name in fetch.fetch_names(args.name):
        folder, fetched = fetch.fetch(name, args.dest, force=args.force, log=log)
        if fetched:
            print(f"{name}: unpacked {', '.join(fetch.SOURCES[name].packages)} into {folder}", flush=True)
        else:
            print(f"{name}: kept {folder} (already fetched; --force fetches it again)", flush=True)
    if args.dest is not None and args.dest.expanduser().resolve() not in {d.resolve() for d in fetch.data_dirs()}:
        print(f"the datasets look in {' and '.join(map(str, fetch.data_dirs()))} only: set "
              f"{fetch.ENV}={args.dest} to use {args.dest}")
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    from ganzoo_core.data.encode import encode_h5

    bar = CountBar(f"encoding with {args.encoder}", unit="caption", enabled=cli_progress(args))
    try:
        rows, dim = encode_h5(args.file, args.encoder, batch_size=args.batch_size, device=args.device,
                              force=args.force, progress=bar, weights=args.weights, overrides=parse_overrides(args.set))
    finally:
        bar.close()
    print(f"wrote text_embeddings/{args.encoder} ({rows} captions x {dim}) into {args.file}")
    return 0


def add_data_commands(subparsers: Any) -> None:
    """Add ``data`` with ``list``, ``build``, ``info`` and ``fetch`` to a ``ganzoo`` sub-parser set."""
    data = subparsers.add_parser("data", help="dataset files: list, build, info, fetch",
                                 description="Build ganzoo HDF5 dataset files and look inside them (docs/data.md).")
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("list", help="registered datasets and converters",
                       description="Registered datasets (and whether their source is here) and the converters.")
    p.set_defaults(func=cmd_data_list)
    p = sub.add_parser("build", help="write a dataset file",
                       description="Write a registered dataset or a converted folder as a schema-v1 HDF5 file.")
    p.add_argument("name", metavar="NAME", help="a registered dataset (animal_mnist.test) or a converter (folder, "
                   "pix2pix-ab, cyclegan, celeba, captions)")
    p.add_argument("out", metavar="OUT.h5", type=Path, help="the file to write (atomically; an existing file only "
                   "with --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT.h5 if it exists")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="dataset or converter option, e.g. --set root=imgs --set image_size=64")
    p.add_argument("--name", dest="file_name",
                   help="the name stored in the file (default: the registered NAME, or OUT's stem for a converter)")
    p.add_argument("--no-progress", action="store_true", help="no progress line (it shows on a terminal only)")
    p.set_defaults(func=cmd_data_build)
    p = sub.add_parser("info", help="what a dataset file holds",
                       description="Name, source, schema version, arrays, splits and names of a dataset file.")
    p.add_argument("file", metavar="FILE.h5", type=Path)
    p.set_defaults(func=cmd_data_info)
    p = sub.add_parser("fetch", help="download a dataset's Debian packages without root",
                       description="Download the Debian packages some built-in datasets read (apt-get download) and "
                       "unpack them (dpkg-deb -x) into the ganzoo data directory, where those datasets find them; no "
                       "root needed. fashion_mnist: dataset-fashion-mnist; emoji_fonts: fonts-noto-color-emoji, "
                       "fonts-symbola, unicode-cldr-core; austen: r-cran-janeaustenr; all: each of them.")
    p.add_argument("name", metavar="NAME", choices=fetch.NAMES, help=f"one of {', '.join(fetch.NAMES)}")
    p.add_argument("--dest", type=Path, metavar="DIR", help=f"the data directory; NAME goes into a folder in it "
                   f"(default: ${fetch.ENV}, else ~/.cache/ganzoo)")
    p.add_argument("--force", action="store_true", help="fetch again into a folder that is there already")
    p.set_defaults(func=cmd_data_fetch)

    p = subparsers.add_parser("encode", help="embed a dataset file's captions",
                              description="Embed every caption of a dataset file with a registered text encoder and "
                              "store them in the file as text_embeddings/<encoder> (h5.file serves them as text_emb). "
                              "Captions longer than ganzoo_core.text.MAX_CAPTION_CHARS characters are cut, with a "
                              "warning.")
    p.add_argument("file", metavar="FILE.h5", type=Path)
    p.add_argument("--encoder", required=True, help="a registered text encoder: bow.hashed, minilm.l6_v2, ... "
                   "(see 'ganzoo list --kind encoder')")
    p.add_argument("--weights", type=Path, metavar="PATH",
                   help="the encoder's trained or released weights (safetensors, a torch state dict, or a format a "
                   "plugin converts, e.g. Torch7); default: the registered encoder as built")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="encoder config option")
    p.add_argument("--batch-size", type=int_at_least(1), default=256, help="distinct captions per encoder call")
    p.add_argument("--device", type=device_arg, default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--force", action="store_true", help="recompute embeddings the file already has")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (it shows on a terminal only)")
    p.set_defaults(func=cmd_encode)
