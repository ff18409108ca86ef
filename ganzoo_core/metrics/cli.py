"""``ganzoo eval CKPT --reference DATASET``: score a checkpoint's samples and write the result as JSON.

``add_eval_commands(subparsers)`` adds the command to any argparse sub-parser set; the built-in plugin
``ganzoo_core.metrics`` adds it to ``ganzoo`` through the ``ganzoo_add_commands`` hook.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ganzoo_core.argtypes import device as device_arg
from ganzoo_core.argtypes import seed as seed_arg
from ganzoo_core.errors import GanzooError


def default_cache_dir() -> Path:
    """Where reference features are cached: ``$XDG_CACHE_HOME/ganzoo/features`` (``~/.cache/ganzoo/features``)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "ganzoo" / "features"


def default_extractor(reference: str) -> str:
    """``domain.<family>`` for a reference ``<family>.<split>`` when such a classifier is registered."""
    from ganzoo_core._api import is_name

    name = f"domain.{reference.split('.', 1)[0]}"
    if not is_name("encoder", name):
        raise GanzooError(f"no domain classifier {name!r} for reference {reference!r}; pass --extractor NAME "
                          "(see 'ganzoo list --kind encoder')")
    return name


def _fmt(value: Any) -> str:
    if isinstance(value, Mapping):
        return f"{value['mean']:.4g} ± {value['std']:.2g}"
    return f"{value:.4g}"


def format_table(result: Mapping[str, Any]) -> str:
    """The scores (with the real-vs-real floor when present), the protocol in one line, and the warnings."""
    scores = result["scores"]
    floor = result.get("floor", {}).get("scores", {})
    lines = [f"{'metric':<10} {'score':<20} {'floor (real vs real)' if floor else ''}".rstrip()]
    for key, value in scores.items():
        lines.append(f"{key:<10} {_fmt(value):<20} {_fmt(floor[key]) if key in floor else ''}".rstrip())
    if "reference_scores" in result:
        lines.append(f"{'is (real)':<10} {_fmt(result['reference_scores']['is'])}")
    proto = result["protocol"]
    weights = proto["extractor"]["weights"]
    source = "RANDOM weights" if weights.get("random") else weights.get("path", weights["kind"])
    lines.append(f"extractor {proto['extractor']['name']} ({source}); {proto['samples']['n']} samples vs "
                 f"{proto['reference']['n']} images of {proto['reference']['dataset']}")
    lines += [f"warning: {w}" for w in result.get("warnings", [])]
    return "\n".join(lines)


def cmd_eval(args: argparse.Namespace) -> int:
    from ganzoo_core._atomic import check_destination
    from ganzoo_core.hub import load
    from ganzoo_core.metrics.evaluate import evaluate, result_json
    from ganzoo_core.progress import cli_progress

    if not args.reference:
        raise GanzooError("eval needs a reference dataset: --reference NAME, or reference = \"NAME\" in the [eval] "
                          "table of the --config file")
    out = args.out or args.checkpoint.with_name(f"{args.checkpoint.stem}.eval.json")
    check_destination(out, overwrite=args.overwrite, what="result file")  # before minutes of evaluation
    module = load(args.checkpoint, device=args.device, ema=args.ema)
    extractor = args.extractor or default_extractor(args.reference)
    kwargs = {"weights_file": str(args.extractor_weights)} if args.extractor_weights else None
    result = evaluate(
        module, args.reference, extractor=extractor, extractor_kwargs=kwargs, n_samples=args.n,
        n_reference=args.n_reference, batch_size=args.batch_size, seed=args.seed, metrics=args.metrics.split(","),
        device=args.device, cache_dir=None if args.no_cache else args.cache_dir, floor=args.floor,
        source_info={"checkpoint": str(args.checkpoint), "ema": args.ema}, out=out, progress=cli_progress(args),
    )
    if getattr(args, "json", False):
        print(result_json(result))
        return 0
    print(format_table(result))
    print(f"result: {result['path']}")
    return 0


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    """Every option of ``ganzoo eval`` (their dests are the keys of a run config's ``[eval]`` table)."""
    from ganzoo_core.argtypes import int_at_least

    p.add_argument("checkpoint", type=Path, help="a ganzoo checkpoint of an objective or a generator")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="a run config (TOML) whose [eval] table gives these options by name; flags override it")
    p.add_argument("--reference", help="reference dataset, e.g. fashion_mnist.test (required, here or in --config)")
    p.add_argument("--extractor", help="feature extractor (encoder name); default: domain.<reference family>")
    p.add_argument("--extractor-weights", type=Path, help="local weights file for the extractor (weights_file)")
    p.add_argument("--n", type=int_at_least(2), default=5000, help="number of samples (drawn --batch-size at a time)")
    p.add_argument("--n-reference", type=int_at_least(2), help="use the first N reference images (default: all)")
    p.add_argument("--batch-size", type=int_at_least(1), default=250, help="samples and reference images per batch")
    p.add_argument("--seed", type=seed_arg, default=0)
    p.add_argument("--metrics", default="fid,kid,is,pr", help="comma-separated: fid, kid, is, pr")
    p.add_argument("--device", type=device_arg, default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--ema", action="store_true", help="use the EMA weights the run kept (trained with --ema)")
    p.add_argument("--floor", action="store_true", help="also score two halves of the reference (the floor)")
    p.add_argument("--out", type=Path, help="result JSON (default: CHECKPOINT.eval.json beside the checkpoint)")
    p.add_argument("--overwrite", action="store_true", help="replace the result JSON if it exists")
    p.add_argument("--cache-dir", type=Path, default=default_cache_dir(), help="reference feature cache")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the feature cache")


def add_eval_commands(subparsers: Any) -> None:
    """Add ``eval`` to ``subparsers`` (the object ``ArgumentParser.add_subparsers()`` returns)."""
    p = subparsers.add_parser(
        "eval", help="score a checkpoint's samples against a dataset",
        description="FID, KID, Inception Score and precision/recall of a checkpoint's samples against a reference "
                    "dataset, with the full protocol written to a JSON file.")
    add_eval_arguments(p)
    _add_output_arguments(p)
    p.set_defaults(func=cmd_eval)


def _add_output_arguments(p: argparse.ArgumentParser) -> None:
    """``--json`` and ``--no-progress``: how ``ganzoo eval`` reports, not what it measures (so not run config keys)."""
    p.add_argument("--json", action="store_true",
                   help="print the result (what the result file holds) as JSON on stdout, and nothing else")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars (they show only when stderr is a terminal)")


__all__ = ["add_eval_arguments", "add_eval_commands", "cmd_eval", "default_cache_dir", "default_extractor", "format_table"]
