"""The ``ganzoo`` command line: list, info, plugins, train, sample (plugins can add commands)."""

from __future__ import annotations

import argparse
import ast
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ganzoo_core._api import create, get_entry, list_names
from ganzoo_core._plugins import get_host
from ganzoo_core._registry import KINDS, Entry
from ganzoo_core._version import __version__
from ganzoo_core.argtypes import device as device_arg
from ganzoo_core.argtypes import int_at_least, positive_float
from ganzoo_core.argtypes import seed as seed_arg
from ganzoo_core.config import cfg_to_dict
from ganzoo_core.errors import GanzooError


def _parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are Python literals when they parse as one (``lr=1e-4``, ``betas=(0.5,0.99)``)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise GanzooError(f"--set expects key=value, got {item!r}")
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw
    return out


def cmd_list(args: argparse.Namespace) -> int:
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


def _entries_named(name: str) -> list[Entry]:
    host = get_host()
    found = [host.registry.get(k, name) for k in KINDS if host.registry.has(k, name)]
    if not found:
        host.registry.get("generator", name)  # raises the unknown-name error with suggestions and install hint
    return found


def cmd_info(args: argparse.Namespace) -> int:
    host = get_host()
    for entry in _entries_named(args.name):
        plugin = host.plugins.get(entry.plugin)
        dist = f"{plugin.distribution} {plugin.version}" if plugin else "?"
        print(f"{entry.name}  ({entry.kind})")
        print(f"  {entry.summary}")
        print(f"  plugin: {entry.plugin} ({dist})   defined in: {entry.module}.{entry.factory.__qualname__}")
        if entry.paper:
            print(f"  paper: {entry.paper}")
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


def train_cfg_from_args(args: argparse.Namespace) -> Any:
    from ganzoo_core.policy import Policy
    from ganzoo_core.schedules import ScheduleCfg
    from ganzoo_core.training import TrainCfg

    try:
        policy = Policy(precision=args.precision, channels_last=args.channels_last, compile=args.compile)
        schedule = ScheduleCfg(kind=args.lr_schedule, decay_start=args.decay_start, step_size=args.step_size,
                               gamma=args.gamma)
    except ValueError as err:
        raise GanzooError(str(err)) from err
    accept = tuple(k.strip() for k in (args.accept_changes or "").split(",") if k.strip())
    if accept and not args.resume:
        raise GanzooError("--accept-changes applies to --resume only")
    return TrainCfg(steps=args.steps, max_minutes=args.max_minutes, batch_size=args.batch_size, seed=args.seed,
                    device=args.device, sample_every=args.sample_every, checkpoint_every=args.checkpoint_every,
                    log_every=args.log_every,
                    num_workers=args.workers, policy=policy, schedule=schedule, ema=args.ema, resume=args.resume,
                    overwrite=args.overwrite, accept_changes=accept, progress=not args.no_progress)


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from ganzoo_core.training import train

    cfg = train_cfg_from_args(args)
    torch.manual_seed(args.seed)
    objective = create("objective", args.objective, **_parse_overrides(args.set))
    data_name = args.data or getattr(objective.cfg, "dataset", None)
    if not data_name:
        raise GanzooError(f"objective {args.objective!r} names no default dataset; pass --data NAME")
    data_entry = get_entry("dataset", data_name)
    data_kwargs = _parse_overrides(args.data_set)
    shape = getattr(objective, "image_shape", None)
    fields = set(cfg_to_dict(data_entry.cfg))
    if shape is not None:  # make the data fit the networks unless the user said otherwise
        for key, value in (("channels", shape[0]), ("image_size", shape[-1])):
            if key in fields:
                given = data_kwargs.setdefault(key, value)
                if given != value:
                    raise GanzooError(f"--data-set {key}={given!r} does not fit {args.objective!r}, whose networks "
                                      f"take {key} {value}; change the objective instead (--set ...)")
    dataset = create("dataset", data_name, **data_kwargs)
    main_process = os.environ.get("RANK", "0") == "0"
    if main_process:
        print(f"training {args.objective} on {data_name} ({len(dataset)} images) for {cfg.steps} steps, "
              f"policy {cfg.policy.name} → {args.out}")
    result = train(objective, dataset, args.out, cfg)
    if result.interrupted:
        if main_process:
            print(f"interrupted at step {result.step}; checkpoint: {result.checkpoint}; continue with the same "
                  "command plus --resume", file=sys.stderr)
        return 130
    if main_process:
        print(f"checkpoint: {result.checkpoint}\nsamples:    {result.out_dir / 'samples.png'}\n"
              f"loss curve: {result.out_dir / 'loss_curve.png'}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    import torch

    from ganzoo_core._atomic import check_destination
    from ganzoo_core.checkpoints import load
    from ganzoo_core.distributed import check_device
    from ganzoo_core.visual import save_grid

    check_destination(args.out, overwrite=args.overwrite, what="--out")  # before minutes of sampling, not after
    device = check_device(args.device)
    module = load(args.checkpoint, device=device, ema=args.ema, verify=not args.no_verify)
    module.eval()
    nrow = None
    with torch.no_grad():
        if args.text:
            images, nrow = _sample_from_text(module, args)
        else:
            images = torch.cat([chunk.to("cpu", torch.float16) for chunk in _sample_chunks(module, args)])
    save_grid(images, args.out, nrow=nrow, overwrite=args.overwrite)
    print(f"wrote {len(images)} samples from {args.checkpoint} to {args.out}")
    return 0


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
    """``--text`` captions, each embedded with the objective's encoder (``cfg.encoder``, or ``--encoder``) and
    repeated ``--n`` times with different noise: one row of the grid per caption."""
    from ganzoo_core.text import encode_texts

    encoder = args.encoder or getattr(getattr(module, "cfg", None), "encoder", None)
    if not hasattr(module, "sample") or encoder is None:
        raise GanzooError(f"{args.checkpoint}: --text needs a text-conditioned objective checkpoint whose config "
                          "names its encoder (cfg.encoder), or --encoder NAME")
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
    p.add_argument("pattern", nargs="?", help="wildcard pattern, e.g. 'dcgan.*'")
    p.add_argument("--kind", choices=KINDS, help="only this kind")
    p.add_argument("--plugin", help="only names registered by this plugin")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="describe a name", description="Options, defaults, paper and plugin of a name.")
    p.add_argument("name", help="a registry name, e.g. dcgan.64")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("plugins", help="loaded and failed plugins", description="Plugins: loaded, failed and why.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("train", help="train an objective", description="Train a registered objective on a dataset.")
    p.add_argument("objective", help="objective name, e.g. dcgan.28")
    p.add_argument("--data", help="dataset name (default: the objective's own)")
    p.add_argument("--steps", type=int_at_least(1), default=2000)
    p.add_argument("--max-minutes", type=positive_float, metavar="M",
                   help="also stop after M minutes of training (checkpointed; --resume continues to --steps)")
    p.add_argument("--batch-size", type=int_at_least(1), default=64)
    p.add_argument("--seed", type=seed_arg, default=0)
    p.add_argument("--device", type=device_arg, default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--out", type=Path, default=Path("runs/latest"), help="output folder")
    p.add_argument("--sample-every", type=int_at_least(0), default=500, help="0: only at the end")
    p.add_argument("--checkpoint-every", type=int_at_least(0), default=1000, help="0: only at the end")
    p.add_argument("--log-every", type=int_at_least(1), default=50)
    p.add_argument("--workers", type=int_at_least(0), default=0, help="DataLoader worker processes")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="objective config override")
    p.add_argument("--data-set", action="append", default=[], metavar="KEY=VALUE", help="dataset config override")
    g = p.add_argument_group("precision and speed")
    g.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="bf16: autocast on CPU or CUDA; fp16: autocast with a grad scaler, CUDA only")
    g.add_argument("--channels-last", action="store_true", help="NHWC memory format")
    g.add_argument("--compile", action="store_true", help="torch.compile every network")
    g = p.add_argument_group("schedule and averaging")
    g.add_argument("--lr-schedule", choices=("constant", "linear", "step"), default="constant")
    g.add_argument("--decay-start", type=int, help="linear: first step of the decay to 0 (default: half way)")
    g.add_argument("--step-size", type=int, default=1000, help="step: steps between LR multiplications")
    g.add_argument("--gamma", type=float, default=0.5, help="step: the LR factor")
    g.add_argument("--ema", type=float, help="keep an EMA of the generator with this decay (e.g. 0.999)")
    g = p.add_argument_group("runs")
    g.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.safetensors if it exists")
    g.add_argument("--overwrite", action="store_true",
                   help="OUT holds a run: delete its checkpoint, metrics and samples and start again")
    g.add_argument("--accept-changes", metavar="KEY[,KEY]",
                   help="with --resume: settings allowed to differ from the saved run's (e.g. lr,batch_size; 'all')")
    g.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="generate images from a checkpoint",
                       description="Generate an image grid from a ganzoo checkpoint.")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--n", type=int_at_least(1), default=64, help="number of images (with --text: per caption)")
    p.add_argument("--batch-size", type=int_at_least(1), default=64,
                   help="images generated per forward pass (memory grows with this, not with --n)")
    p.add_argument("--seed", type=seed_arg, default=1)
    p.add_argument("--device", type=device_arg, default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--out", type=Path, default=Path("samples.png"))
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--no-verify", action="store_true", help="skip the check of the checkpoint's tensor hash")
    p.add_argument("--ema", action="store_true", help="use the EMA weights the run kept (trained with --ema)")
    p.add_argument("--text", action="append", metavar="CAPTION",
                   help="text-to-image: a caption (repeat for several); --n samples each, one grid row per caption")
    p.add_argument("--encoder", help="with --text: the text encoder (default: the objective's cfg.encoder)")
    p.set_defaults(func=cmd_sample)

    from ganzoo_core.bench_cli import add_bench_commands
    from ganzoo_core.data.cli import add_data_commands
    from ganzoo_core.metrics.cli import add_eval_commands

    add_data_commands(sub)
    add_eval_commands(sub)
    add_bench_commands(sub)
    get_host().add_commands(sub, {"prog": parser.prog})
    return parser


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
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except _expected_errors() as err:
        if verbose:
            raise
        print(f"ganzoo: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ganzoo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `ganzoo list | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
