"""``ganzoo bench ops|models``: measure, print ratios against the reference, save JSON and a PNG chart, and
optionally write the cache ``impl="auto"`` reads. The built-in plugin ``ganzoo_core.ops`` adds the command through
the ``ganzoo_add_commands`` hook."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ganzoo_core.argtypes import device as device_arg
from ganzoo_core.errors import GanzooError


def cmd_bench(args: argparse.Namespace) -> int:
    import attrs
    import torch

    from ganzoo_core import bench
    from ganzoo_core._atomic import check_destination
    from ganzoo_core.ops._dispatch import list_ops
    from ganzoo_core.progress import cli_progress

    if args.write_cache and args.suite != "ops":  # before anything is measured
        raise GanzooError("--write-cache needs the ops suite: 'ganzoo bench ops --write-cache'")
    if args.suite == "models" and not args.model:
        raise GanzooError("'ganzoo bench models' needs --model NAME (an objective, repeatable; see 'ganzoo list --kind "
                          "objective')")
    if args.shapes is not None and args.suite != "ops":
        raise GanzooError("--shapes applies to the ops suite: 'ganzoo bench ops --shapes FILE'")
    bench_shapes = bench.read_bench_shapes(args.shapes) if args.shapes is not None else None
    for suffix in ("json", "png"):  # before anything is measured, not after
        check_destination(args.out / f"bench-{args.suite}.{suffix}", overwrite=args.overwrite, what="benchmark result")
    if args.threads:
        torch.set_num_threads(args.threads)
    shown = cli_progress(args)  # a bar on stderr, when it is a terminal
    if args.suite == "ops":
        known = list_ops()
        unknown = [op for op in args.op if op not in known]
        if unknown:
            raise GanzooError(f"unknown op(s) {', '.join(map(repr, unknown))}; ops: {', '.join(known)}")
        rows = bench.bench_ops(args.op, dtypes=list(args.dtype), channels_last=args.channels_last,
                               device=args.device, repeat=args.repeat, warmup=args.warmup, shapes=args.shape,
                               impls=args.impl, bench_shapes=bench_shapes, progress=shown)
        title = "op implementations vs reference (forward + backward)"
    else:
        objectives = args.model
        generators = args.generator if args.generator is not None else objectives
        note = bench.ort_note(args.device)  # the ONNX Runtime rows need onnxruntime and the CPU
        if note is not None:
            print(f"note: {note}", file=sys.stderr)
        rows = bench.bench_models(objectives, generators, device=args.device, batch_size=args.batch_size,
                                  repeat=args.repeat, warmup=args.warmup, compile=args.compile, progress=shown,
                                  onnxruntime=note is None)
        title = f"training step and generation, batch {args.batch_size}, vs fp32 eager on reference ops"
    if not rows:
        raise GanzooError("nothing was measured: check --op, --shape (names: the ops' own or those of --shapes FILE) "
                          "and --impl")
    if not args.json:  # with --json, stdout holds only the JSON at the end, which names the files too
        print(bench.format_table(rows))
    meta = bench.run_meta(args.device) | {"suite": args.suite, "argv": sys.argv[1:]}
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = bench.save_json(rows, args.out / f"bench-{args.suite}.json", meta, overwrite=args.overwrite)
    from ganzoo_core.plots import PLOTS_HINT, plotting_available

    png_path = None
    if plotting_available():
        png_path = bench.draw_chart(rows, args.out / f"bench-{args.suite}.png",
                                    f"{title}\n{meta['device_name']}, torch {meta['torch_version']}",
                                    overwrite=args.overwrite)
    choices, cache_path = None, None
    if args.write_cache:
        cache_path, choices = bench.write_impl_cache(rows)
    if args.json:
        if png_path is None:
            print(f"no chart: matplotlib is not installed; {PLOTS_HINT}", file=sys.stderr)
        cache = None if choices is None else {"path": str(cache_path), "choices": dict(sorted(choices.items()))}
        print(json.dumps({"suite": args.suite, "rows": [attrs.asdict(r) for r in rows], "json": str(json_path),
                          "png": None if png_path is None else str(png_path), "cache": cache, "meta": meta}, indent=2))
        return 0
    if png_path is not None:
        print(f"\nsaved {json_path} and {png_path}")
    else:
        print(f"\nsaved {json_path} (no chart: matplotlib is not installed; {PLOTS_HINT})")
    if choices is not None:
        print(f"impl='auto' now uses: {', '.join(f'{k}={v}' for k, v in sorted(choices.items()))} ({cache_path})")
    return 0


def dtype_list(text: str) -> tuple[str, ...]:
    """An argparse ``type=``: comma-separated dtype names, each one of ``bench.DTYPES``."""
    from ganzoo_core.bench import DTYPES

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in DTYPES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown dtype(s) {', '.join(unknown) or repr(text)}; choose from "
                                         f"{', '.join(DTYPES)} (comma-separated)")
    return names


def add_bench_commands(sub: Any) -> None:
    from ganzoo_core.argtypes import int_at_least

    p = sub.add_parser(
        "bench", help="compare op implementations or model policies",
        description="Time every op implementation against its reference at benchmark shapes (suite 'ops': the "
                    "ops' generic ones, or those of a --shapes file such as benchmarks/shapes.toml), or a model's "
                    "training step and generation under each precision/speed policy (suite 'models'). Prints ratios "
                    "measured in the same run, saves JSON and a PNG chart.",
    )
    p.add_argument("suite", choices=("ops", "models"))
    p.add_argument("--op", action="append", default=[], help="ops suite: only this op (repeatable)")
    p.add_argument("--impl", action="append", default=[], help="ops suite: only this implementation (and ref)")
    p.add_argument("--shape", action="append", default=[], help="ops suite: only this shape name")
    p.add_argument("--shapes", type=Path, metavar="FILE",
                   help="ops suite: measure at the shapes of this TOML file (e.g. benchmarks/shapes.toml) instead of "
                        "the ops' generic ones")
    p.add_argument("--dtype", type=dtype_list, default="fp32,bf16", help="ops suite: comma-separated fp32,bf16")
    p.add_argument("--channels-last", action="store_true", help="ops suite: channels_last inputs")
    p.add_argument("--model", action="append", help="models suite: objective name (required; repeatable)")
    p.add_argument("--generator", action="append", help="models suite: generator name (default: as --model)")
    p.add_argument("--batch-size", type=int_at_least(1), default=64)
    p.add_argument("--compile", action="store_true", help="models suite: add torch.compile policies (slow start)")
    p.add_argument("--device", type=device_arg, default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--repeat", type=int_at_least(1), default=7, help="timed calls per row (the median is reported)")
    p.add_argument("--warmup", type=int_at_least(0), default=2)
    p.add_argument("--threads", type=int_at_least(1, 4096), help="torch.set_num_threads")
    p.add_argument("--out", type=Path, default=Path("bench"), help="folder for JSON and PNG")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier result of the same suite in --out")
    p.add_argument("--write-cache", action="store_true",
                   help="ops suite: store the fastest implementation per op for impl='auto'")
    p.add_argument("--no-progress", "--quiet", dest="no_progress", action="store_true",
                   help="no progress bar (it shows only when stderr is a terminal)")
    p.add_argument("--json", action="store_true",
                   help="print the rows, the files saved and the impl='auto' choices as JSON on stdout, nothing else")
    p.set_defaults(func=cmd_bench)
