"""The ``ganzoo`` command line: list, info, plugins, train, sample, translate here; the core's ``data``, ``encode``, ``eval``
and ``bench`` come from its built-in plugins (``ganzoo_core.data``, ``.metrics``, ``.ops``) through the
``ganzoo_add_commands`` hook, as any plugin's commands do."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ganzoo_core._api import get_entry, list_names
from ganzoo_core._plugins import get_host
from ganzoo_core._registry import KINDS, Entry
from ganzoo_core._version import __version__
from ganzoo_core.argtypes import device as device_arg
from ganzoo_core.argtypes import int_at_least
from ganzoo_core.argtypes import seed as seed_arg
from ganzoo_core.config import cfg_to_dict
from ganzoo_core.errors import GanzooError, UnknownPretrainedError
from ganzoo_core.overrides import parse_overrides
from ganzoo_core.runconfig import parse_args_with_config
from ganzoo_core.train_cli import add_train_arguments, cmd_train


def cmd_list(args: argparse.Namespace) -> int:
    if args.pretrained:
        return _list_pretrained(args)
    kinds = [args.kind] if args.kind else list(KINDS)
    rows = [(kind, name) for kind in kinds for name in list_names(kind, args.pattern or "*", plugin=args.plugin)]
    if args.json:
        print(json.dumps([{"kind": k, "name": n} for k, n in rows], indent=2))
        return 0
    width = max((len(n) for _, n in rows), default=0)
    for kind, name in rows:
        entry = get_entry(kind, name)
        print(f"{kind:<14} {name:<{width}}  {entry.summary}")
    if not rows:
        print(f"nothing matches {args.pattern or '*'!r}", file=sys.stderr)
    return 0


def _list_pretrained(args: argparse.Namespace) -> int:
    """``ganzoo list --pretrained``: the pretrained names installed plugins ship (``ganzoo_core.hub``)."""
    from ganzoo_core.hub import get_pretrained, list_pretrained

    found = [get_pretrained(n, kind=args.kind) for n in list_pretrained(args.pattern or "*", kind=args.kind)]
    if args.plugin:
        found = [p for p in found if args.plugin in (p.distribution, f"ganzoo-{args.plugin}")]
    rows = [{"name": p.full_name, "kind": p.kind, "registry_name": p.name, "tag": p.tag, "summary": p.summary,
             "distribution": p.distribution, "megabytes": round(p.file.stat().st_size / 2**20, 2)} for p in found]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max((len(r["name"]) for r in rows), default=0)
    for r in rows:
        print(f"{r['kind']:<10} {r['name']:<{width}}  {r['megabytes']:6.1f} MB  {r['summary']}")
    if not rows:
        print(f"no pretrained weights match {args.pattern or '*'!r} (pip install ganzoo-weights ships the "
              "first-party ones)", file=sys.stderr)
    return 0


def _entries_named(name: str) -> list[Entry]:
    host = get_host()
    found = [host.registry.get(k, name) for k in KINDS if host.registry.has(k, name)]
    if not found:
        host.registry.get("generator", name)  # raises the unknown-name error with suggestions and install hint
    return found


def _describe_entry(entry: Entry) -> dict[str, Any]:
    """What ``ganzoo info`` shows of one entry, as plain data (for ``--json``)."""
    plugin = get_host().plugins.get(entry.plugin)
    return {
        "kind": entry.kind, "name": entry.name, "summary": entry.summary, "plugin": entry.plugin,
        "distribution": plugin.distribution if plugin else None, "version": plugin.version if plugin else None,
        "module": entry.module, "factory": f"{entry.module}.{entry.factory.__qualname__}", "paper": entry.paper or None,
        "config": None if entry.cfg is None else type(entry.cfg).__name__,
        "options": None if entry.cfg is None else cfg_to_dict(entry.cfg),
    }


def _json_value(value: Any) -> Any:
    """``json.dumps``' fallback for option values: paths and other objects as text, sets as lists."""
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return str(value) if isinstance(value, Path) else repr(value)


def _info_pretrained(args: argparse.Namespace) -> int:
    """``ganzoo info family.variant.tag``: a pretrained folder's config.json (card facts), without its tensors."""
    from ganzoo_core.hub import get_pretrained

    p = get_pretrained(args.name)
    data = p.config()
    if args.json:
        print(json.dumps({"name": p.full_name, "folder": str(p.folder), "distribution": p.distribution, **data},
                         indent=2))
        return 0
    print(f"{p.full_name}  (pretrained {p.kind} {p.name}, tag {p.tag}; {p.distribution})")
    print(f"  {p.summary}")
    print(f"  folder: {p.folder}   weights: {data.get('dtype')}, {int(data.get('parameters', 0)):,} parameters")
    for key, value in (data.get("training") or {}).items():
        print(f"  {key}: {value}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from ganzoo_core.hub import is_pretrained, pretrained_of

    host = get_host()
    if not any(host.registry.has(k, args.name) for k in KINDS) and is_pretrained(args.name):
        return _info_pretrained(args)
    entries = _entries_named(args.name)
    if args.json:
        print(json.dumps([_describe_entry(e) | {"pretrained": [p.tag for p in pretrained_of(e.kind, e.name)]}
                          for e in entries], indent=2, default=_json_value))
        return 0
    for entry in entries:
        plugin = host.plugins.get(entry.plugin)
        dist = f"{plugin.distribution} {plugin.version}" if plugin else "?"
        print(f"{entry.name}  ({entry.kind})")
        print(f"  {entry.summary}")
        print(f"  plugin: {entry.plugin} ({dist})   defined in: {entry.module}.{entry.factory.__qualname__}")
        if entry.paper:
            print(f"  paper: {entry.paper}")
        tags = [p.tag for p in pretrained_of(entry.kind, entry.name)]
        if tags:
            print(f"  pretrained: {', '.join(tags)} (create_{entry.kind}({entry.name!r}, pretrained=TAG))")
        if entry.cfg is None:
            print("  options: none")
        else:
            print(f"  options ({type(entry.cfg).__name__}):")
            for key, value in cfg_to_dict(entry.cfg).items():
                print(f"    {key} = {value!r}")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    host = get_host()
    if args.json:
        data = {
            "loaded": [{"name": p.name, "distribution": p.distribution, "version": p.version, "module": p.module,
                        "hooks": list(p.hooks), "entries": list(p.entries)} for p in host.plugins.values()],
            "failed": [{"name": f.name, "distribution": f.distribution, "version": f.version, "error": f.error}
                       for f in host.failures],
        }
        print(json.dumps(data, indent=2))
        return 0
    for p in host.plugins.values():
        hooks = f"  hooks: {', '.join(p.hooks)}" if p.hooks else ""
        print(f"loaded  {p.name:<16} {p.distribution} {p.version}  ({len(p.entries)} names){hooks}")
    for f in host.failures:
        print(f"FAILED  {f.name:<16} {f.distribution} {f.version}: {f.error}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    import torch

    from ganzoo_core._atomic import check_destination
    from ganzoo_core.distributed import check_device
    from ganzoo_core.progress import cli_progress, progress
    from ganzoo_core.visual import save_grid

    _check_sample_options(args)
    if args.dir is None:
        check_destination(args.out, overwrite=args.overwrite, what="--out")  # before minutes of sampling, not after
    device = check_device(args.device)
    module = _released_objective(args, device) if args.objective else _checkpoint_module(args, device)
    module.eval()
    if args.dir is not None:
        return _sample_to_dir(module, args)
    nrow = None
    with torch.no_grad():
        if args.text:
            images, nrow = _sample_from_text(module, args)
        else:
            batches = -(-args.n // args.batch_size)
            chunks = progress(_sample_chunks(module, args), total=batches, desc="sampling", unit="batch",
                              enabled=False if batches == 1 else cli_progress(args))
            images = torch.cat([chunk.to("cpu", torch.float16) for chunk in chunks])
    save_grid(images, args.out, nrow=nrow, overwrite=args.overwrite)
    if args.json:
        print(json.dumps(_sample_summary(module, images, nrow, args), indent=2))
    else:
        print(f"wrote {len(images)} samples from {args.checkpoint} to {args.out}")
    return 0


def _sample_to_dir(module: Any, args: argparse.Namespace) -> int:
    """``--dir DIR``: one PNG per image (``000000.png``, ...; with --text, ``<caption index>_<sample>.png``), written
    batch by batch, so memory holds one batch whatever --n is (the files FID tools such as clean-fid read)."""
    import torch

    from ganzoo_core._atomic import atomic_path, check_destination
    from ganzoo_core.progress import cli_progress, progress
    from ganzoo_core.visual import to_pil

    out = Path(args.dir)
    if out.exists() and not out.is_dir():
        raise GanzooError(f"--dir {str(out)!r} is a file; give a folder")
    total = args.n * (len(args.text) if args.text else 1)
    width = max(6, len(str(total - 1)))
    names = ([f"{c:03d}_{i:0{width}d}.png" for c in range(len(args.text)) for i in range(args.n)] if args.text
             else [f"{i:0{width}d}.png" for i in range(total)])
    for name in names:  # refuse before drawing anything
        check_destination(out / name, overwrite=args.overwrite, what="sample image")
    with torch.no_grad():
        if args.text:
            images, _ = _sample_from_text(module, args)
            chunks = iter(images.split(args.batch_size))
            batches = -(-total // args.batch_size)
        else:
            batches = -(-args.n // args.batch_size)
            chunks = _sample_chunks(module, args)
        index = 0
        for chunk in progress(chunks, total=batches, desc="sampling", unit="batch",
                              enabled=False if batches == 1 else cli_progress(args)):
            for image in chunk:
                with atomic_path(out / names[index], overwrite=args.overwrite, what="sample image") as tmp:
                    to_pil(image).save(tmp, format="PNG")
                index += 1
    if args.json:
        print(json.dumps({"dir": str(out), "n": index, "checkpoint": str(args.checkpoint), "seed": args.seed,
                          "text": args.text, "files": [names[0], names[index - 1]]}, indent=2))
    else:
        print(f"wrote {index} samples from {args.checkpoint} to {out}/ ({names[0]} ... {names[index - 1]})")
    return 0


def _sample_summary(module: Any, images: Any, nrow: int | None, args: argparse.Namespace) -> dict[str, Any]:
    """What ``ganzoo sample --json`` prints: the grid written, what drew it, and how."""
    import math

    from ganzoo_core._api import SPEC_ATTR

    count, _, height, width = images.shape
    columns = nrow or math.ceil(math.sqrt(count))  # as visual.make_grid lays it out, 2 px padding
    rows = math.ceil(count / columns)
    kind, name = getattr(module, SPEC_ATTR, (None, None))[:2]
    return {
        "out": str(args.out), "n": int(count), "checkpoint": str(args.checkpoint), "objective": args.objective,
        "kind": kind, "name": name, "seed": args.seed, "batch_size": args.batch_size, "ema": args.ema,
        "device": str(args.device), "text": args.text,
        "grid": {"rows": rows, "columns": columns, "image_size": [int(height), int(width)],
                 "width": columns * (width + 2) + 2, "height": rows * (height + 2) + 2},
    }


def _check_sample_options(args: argparse.Namespace) -> None:
    if args.pretrained is not None and args.objective:
        raise GanzooError("--pretrained takes shipped weights by name; --objective loads a released file into an "
                          "objective: use one of them")
    if args.set and not args.objective:
        raise GanzooError(f"--set {args.set[0]} needs --objective NAME (it overrides that objective's config); a "
                          "ganzoo checkpoint keeps the config it was saved with")
    if args.objective and args.ema:
        raise GanzooError("--ema reads the EMA weights a ganzoo checkpoint kept; a released file given with "
                          "--objective has none: drop --ema")
    if args.encoder_weights is not None and not args.text:
        raise GanzooError(f"--encoder-weights {str(args.encoder_weights)!r} needs --text CAPTION (the encoder embeds "
                          "captions)")


def _checkpoint_module(args: argparse.Namespace, device: Any) -> Any:
    """The module a ganzoo checkpoint rebuilds; another file (released weights) is refused in one line that says to
    name the objective."""
    from ganzoo_core.checkpoints import load, read_info
    from ganzoo_core.errors import CheckpointError
    from ganzoo_core.hub import resolve_source

    if args.pretrained is not None:  # `ganzoo sample NAME --pretrained [TAG]`
        return _pretrained_module(args, device)
    path = resolve_source(args.checkpoint)  # a model folder, hf-hub:ORG/NAME or a pretrained name too
    try:
        read_info(path)
    except CheckpointError as err:
        if path.is_file() and not _damaged_checkpoint(path):
            raise CheckpointError(f"{str(path)!r} is not a ganzoo checkpoint; to sample from released "
                                  "generator weights, pass --objective NAME (the registered objective whose "
                                  "generator takes the file; see 'ganzoo list --kind objective')") from err
        raise
    return load(path, device=device, ema=args.ema, verify=not args.no_verify)


def _pretrained_module(args: argparse.Namespace, device: Any) -> Any:
    """``SOURCE --pretrained [TAG]``: SOURCE is a registry name (a generator or objective) with shipped weights."""
    from ganzoo_core._api import create
    from ganzoo_core.hub import split_tag

    name = str(args.checkpoint)
    host = get_host()
    kinds = [k for k in ("objective", "generator") if host.registry.has(k, split_tag(k, name)[0])]
    if not kinds:
        raise GanzooError(f"--pretrained needs a generator or objective name, got {name!r} (see 'ganzoo list "
                          "--pretrained')")
    if args.ema:
        raise GanzooError("--ema reads the EMA weights a training checkpoint kept; pretrained weights are the ones "
                          "shipped: drop --ema")
    errors = []
    for kind in kinds:  # an objective name is also its generator's name: the objective first (it samples with text)
        try:
            return create(kind, name, pretrained=args.pretrained or True, device=device)
        except UnknownPretrainedError as err:
            errors.append(err)
    raise errors[-1]


def _damaged_checkpoint(path: Path) -> bool:
    """Whether ``path`` looks like a ganzoo checkpoint that does not read (a safetensors header that does not parse,
    or ganzoo metadata that is damaged), rather than another kind of file."""
    from safetensors import SafetensorError, safe_open

    with path.open("rb") as f:
        head = f.read(9)
    if len(head) < 9 or head[8:9] != b"{":  # not safetensors: a torch.save, Torch7 or other file
        return False
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError):
        return True
    return "ganzoo.format" in meta


def _released_objective(args: argparse.Namespace, device: Any) -> Any:
    """``--objective NAME`` (with ``--set`` overrides) built by name, with the released file ``FILE`` loaded into its
    generator by the objective's own rule (``gan_objective.load_generator_weights``)."""
    from ganzoo_core._api import create
    from ganzoo_core.errors import CheckpointError
    from ganzoo_core.gan_objective import load_generator_weights

    if not args.checkpoint.is_file():  # before building a large objective
        raise CheckpointError(f"weights file {str(args.checkpoint)!r} does not exist")
    objective = create("objective", args.objective, **parse_overrides(args.set))
    return load_generator_weights(objective, args.checkpoint).to(device)


def _sample_chunks(module: Any, args: argparse.Namespace) -> Any:
    """``--n`` images, ``--batch-size`` at a time (memory bounded by the batch, not by --n). One batch uses
    ``--seed`` itself; more batches draw their seeds from it."""
    import torch

    sizes = [min(args.batch_size, args.n - start) for start in range(0, args.n, args.batch_size)]
    seeds = [args.seed] if len(sizes) == 1 else torch.randint(
        0, 2**31 - 1, (len(sizes),), generator=torch.Generator().manual_seed(args.seed)).tolist()
    for size, seed in zip(sizes, seeds):
        if hasattr(module, "sample"):
            yield module.sample(size, seed=seed)
        else:  # a bare generator: feed it its own example inputs, seeded
            torch.manual_seed(seed)
            yield module(*module.example_inputs(size))


def _sample_from_text(module: Any, args: argparse.Namespace) -> tuple[Any, int]:
    """``--text`` captions, each embedded with the text encoder the checkpoint records (its name and config:
    ``ganzoo_core.text.text_encoder_for``; ``--encoder`` names another, ``--encoder-weights`` loads a weights file into
    it) and repeated ``--n`` times with different noise: one row of the grid per caption."""
    from ganzoo_core.text import encode_texts, text_encoder_for

    if not hasattr(module, "sample"):
        raise GanzooError(f"{args.checkpoint}: --text needs a text-to-image objective checkpoint; this one holds a "
                          f"{type(module).__name__}")
    encoder = text_encoder_for(module, args.encoder, weights=args.encoder_weights, where=str(args.checkpoint))
    emb = encode_texts(encoder, args.text)  # (captions, D)
    device = next(module.parameters()).device
    batch = {"text_emb": emb.repeat_interleave(args.n, dim=0).to(device)}  # caption-major: (captions · n, D)
    return module.sample(len(batch["text_emb"]), batch=batch, seed=args.seed), args.n


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ganzoo", description="A plugin-based, modular GAN zoo for PyTorch.")
    parser.add_argument("--version", action="version", version=f"ganzoo-core {__version__}")
    parser.add_argument("-v", "--verbose", "--debug", action="store_true",
                        help="show debug logs, and a full traceback instead of the one-line error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("list", help="list registered names", description="List registered names, by kind.")
    p.add_argument("pattern", nargs="?", help="wildcard pattern, e.g. 'gan.*'")
    p.add_argument("--kind", choices=KINDS, help="only this kind")
    p.add_argument("--plugin", help="only names registered by this plugin")
    p.add_argument("--pretrained", action="store_true",
                   help="list pretrained weights (family.variant.tag) instead of registered names")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="describe a name", description="Options, defaults, paper and plugin of a name.")
    p.add_argument("name", help="a registry name, e.g. gan.hinge (see 'ganzoo list')")
    p.add_argument("--json", action="store_true",
                   help="machine-readable output: a list with one object per kind the name is registered as")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("plugins", help="loaded and failed plugins", description="Plugins: loaded, failed and why.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("train", help="train an objective", description="Train a registered objective on a dataset.")
    add_train_arguments(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="generate images from a checkpoint",
                       description="Generate an image grid from a ganzoo checkpoint, a model folder, hf-hub:ORG/NAME, "
                       "pretrained weights (NAME --pretrained [TAG], or family.variant.tag), or from a released "
                       "generator weights file with --objective.")
    p.add_argument("checkpoint", type=Path, metavar="SOURCE",
                   help="a ganzoo checkpoint, a model folder, hf-hub:ORG/NAME or a pretrained name "
                   "(family.variant.tag); with --pretrained, a registry name; with --objective, a generator weights "
                   "file (e.g. a released one)")
    p.add_argument("--pretrained", nargs="?", const="", metavar="TAG",
                   help="SOURCE is a generator or objective name: use its shipped weights (TAG, or its default; see "
                   "'ganzoo list --pretrained')")
    p.add_argument("--objective", metavar="NAME",
                   help="build this registered objective and load FILE into its generator")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="with --objective: objective config override")
    p.add_argument("--n", type=int_at_least(1), default=64, help="number of images (with --text: per caption)")
    p.add_argument("--batch-size", type=int_at_least(1), default=64,
                   help="images generated per forward pass (memory grows with this, not with --n)")
    p.add_argument("--seed", type=seed_arg, default=1)
    p.add_argument("--device", type=device_arg, default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--out", type=Path, default=Path("samples.png"), help="the grid")
    p.add_argument("--dir", type=Path, metavar="DIR",
                   help="instead of a grid, one PNG per image in DIR, batch by batch (any --n in bounded memory)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--no-verify", action="store_true", help="skip the check of the checkpoint's tensor hash")
    p.add_argument("--ema", action="store_true", help="use the EMA weights the run kept (trained with --ema)")
    p.add_argument("--text", action="append", metavar="CAPTION",
                   help="text-to-image: a caption (repeat for several); --n samples each, one grid row per caption")
    p.add_argument("--encoder", help="with --text: the text encoder (default: the objective's cfg.encoder)")
    p.add_argument("--encoder-weights", type=Path, metavar="PATH",
                   help="with --text: the encoder's trained or released weights (e.g. a char-CNN-RNN Torch7 file)")
    p.add_argument("--json", action="store_true",
                   help="print what was written (path, count, grid, checkpoint, seed) as JSON on stdout, nothing else")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it shows only when stderr is a terminal and --n takes several batches)")
    p.set_defaults(func=cmd_sample)

    from ganzoo_core.demo import add_demo_command
    from ganzoo_core.export import add_export_command
    from ganzoo_core.translate import add_translate_command

    add_translate_command(sub)
    add_export_command(sub)
    add_demo_command(sub)
    get_host().add_commands(sub, {"prog": parser.prog})  # the core's data, encode, eval, bench, then plugins
    show_defaults(parser)
    return parser


class _DefaultsHelp(argparse.HelpFormatter):
    """Appends "(default: X)" to an option's help where X says something (not None, False or empty)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if ("%(default)" in text or default in (None, False, argparse.SUPPRESS) or default == []
                or not (action.option_strings or action.nargs in ("?", "*"))):
            return action.help
        return f"{text} (default: %(default)s)".strip()


def show_defaults(parser: argparse.ArgumentParser) -> None:
    """Make ``--help`` of ``parser`` and of every sub-command below it (plugins' too) show the options' defaults."""
    if parser.formatter_class is argparse.HelpFormatter:
        parser.formatter_class = _DefaultsHelp
    for action in parser._actions:
        if action.help is None and action.option_strings and action.default not in (None, False, argparse.SUPPRESS) \
                and action.default != []:
            action.help = "default: %(default)s"
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                show_defaults(child)


def _expected_errors() -> tuple[type[BaseException], ...]:
    """What the CLI prints as one line (exit status 2): ganzoo's own errors and the I/O errors of the files it
    reads and writes (the operating system's, safetensors', HDF5's), plus running out of memory."""
    errors: list[type[BaseException]] = [GanzooError, OSError, MemoryError]
    for module, name in (("safetensors", "SafetensorError"),):
        found = getattr(sys.modules.get(module), name, None)
        if isinstance(found, type):
            errors.append(found)
    return tuple(errors)


def _one_line(err: BaseException) -> str:
    if isinstance(err, GanzooError):
        text = str(err)
    elif isinstance(err, OSError) and err.strerror:
        where = f" {str(err.filename)!r}" if err.filename else ""
        advice = {28: "free some disk space", 13: "choose a path you may write"}.get(err.errno or 0, "")
        text = f"{err.strerror}:{where}" + (f"; {advice}" if advice else "")
    elif isinstance(err, MemoryError):
        text = "out of memory; use a smaller --batch-size or --n"
    else:
        text = f"{type(err).__name__}: {err}"
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = any(a in argv for a in ("-v", "--verbose", "--debug"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s")
    if not verbose:
        import warnings

        warnings.filterwarnings("ignore", message="ganzoo plugin skipped")  # 'ganzoo plugins' reports them
    code = _run(argv, verbose)
    if "torch.distributed" in sys.modules:  # a process group needs it imported
        from ganzoo_core.distributed import end_process

        end_process(code)  # in a torchrun process: the process ends here
    return code


def _run(argv: list[str], verbose: bool) -> int:
    try:
        args = parse_args_with_config(build_parser(), argv)  # --config FILE: the file's options, then the flags
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `ganzoo list | head` (an OSError: handled before the others)
        sys.stderr.close()
        return 0
    except _expected_errors() as err:
        if verbose:
            raise
        print(f"ganzoo: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ganzoo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
