"""``ganzoo bench ops|models|roofline``: measure, print ratios against the reference, save JSON and a PNG chart, and
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
    baselines = _check_models_args(args)
    if args.shapes is not None and args.suite != "ops":
        raise GanzooError("--shapes applies to the ops suite: 'ganzoo bench ops --shapes FILE'")
    bench_shapes = bench.read_bench_shapes(args.shapes) if args.shapes is not None else None
    for suffix in ("json",) if args.suite == "roofline" else ("json", "png"):  # before anything is measured
        check_destination(args.out / f"bench-{args.suite}.{suffix}", overwrite=args.overwrite, what="benchmark result")
    if args.threads:
        torch.set_num_threads(args.threads)
    shown = cli_progress(args)  # a bar on stderr, when it is a terminal
    machine = bench.machine_meta(args.device)  # before measuring: the load the run starts in, the matmul rates
    if args.suite == "roofline":
        assert baselines is not None
        return _roofline(args, baselines, machine)
    if args.suite == "ops":
        known = list_ops()
        unknown = [op for op in args.op if op not in known]
        if unknown:
            raise GanzooError(f"unknown op(s) {', '.join(map(repr, unknown))}; ops: {', '.join(known)}")
        rows = bench.bench_ops(args.op, dtypes=list(args.dtype), channels_last=args.channels_last,
                               device=args.device, repeat=args.repeat or 7, warmup=args.warmup, shapes=args.shape,
                               impls=args.impl, bench_shapes=bench_shapes, progress=shown)
        title = "op implementations vs reference (forward + backward)"
    else:
        note = bench.ort_note(args.device)  # the ONNX Runtime rows need onnxruntime and the CPU
        if note is not None:
            print(f"note: {note}", file=sys.stderr)
        # without a bar (--no-progress, or stderr not a terminal), one stderr line per row built and group timed
        bar = shown is None and sys.stderr.isatty()
        log = None if bar or args.json else (lambda line: print(line, file=sys.stderr, flush=True))
        common = {"device": args.device, "rounds": args.rounds, "repeat": args.repeat or 3, "warmup": args.warmup,
                  "compile": args.compile, "progress": shown, "onnxruntime": note is None, "log": log,
                  "summary": args.summary, "min_seconds": args.min_seconds}
        if baselines is not None:
            official = args.baseline == "official"
            rows = bench.bench_baselines(baselines, official=official, batch_size=args.batch_size, **common)
            sizes = "batch " + (str(args.batch_size) if args.batch_size else "as documented per family")
            title = (f"training step and generation, {sizes}, vs "
                     f"{'the official code, fp32 eager' if official else 'fp32 eager on reference ops'}")
        else:
            objectives = args.model
            generators = args.generator if args.generator is not None else objectives
            batch = args.batch_size or 64
            rows = bench.bench_models(objectives, generators, batch_size=batch, **common)
            title = f"training step and generation, batch {batch}, vs fp32 eager on reference ops"
    if not rows:
        raise GanzooError("nothing was measured: check --op, --shape (names: the ops' own or those of --shapes FILE) "
                          "and --impl")
    meta = bench.run_meta(args.device) | machine | {"loadavg_after": bench.load_average(), "suite": args.suite,
                                                    "argv": sys.argv[1:]}
    if args.suite == "models":
        meta["timing"] = {"method": "interleaved rounds, rotated order; ms = median over rounds of the per-round "
                                    "median; ratio = median over rounds of the per-round ratio to the group's first row",
                          "rounds": args.rounds, "min_seconds": args.min_seconds,
                          "calls_per_round": args.repeat or 3, "warmup": args.warmup}
    if not args.json:  # with --json, stdout holds only the JSON at the end, which names the files too
        print(bench.format_table(rows))
        print(f"\nx ref: the group's first row over this row, median of the per-round ratios; {bench.describe_machine(meta)}")
        if any("rel_diff" in r.extra for r in rows):
            print(f"out diff: ||y - y_ref|| / ||y_ref|| against fp32 eager on reference ops (same weights, inputs and "
                  f"noise); * the fastest row within {bench.PARITY_TOL:.0%} of it")
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
                          "png": None if png_path is None else str(png_path), "cache": cache, "meta": meta},
                         indent=2, default=str))
        return 0
    if png_path is not None:
        print(f"\nsaved {json_path} and {png_path}")
    else:
        print(f"\nsaved {json_path} (no chart: matplotlib is not installed; {PLOTS_HINT})")
    if choices is not None:
        print(f"impl='auto' now uses: {', '.join(f'{k}={v}' for k, v in sorted(choices.items()))} ({cache_path})")
    return 0


def _roofline(args: argparse.Namespace, baselines: list[Any], machine: dict[str, Any]) -> int:
    """``ganzoo bench roofline``: each family's per-layer roofline, printed and saved as one JSON."""
    from ganzoo_core import bench
    from ganzoo_core.roofline import format_roofline, roofline

    log = None if args.json or args.no_progress else (lambda line: print(line, file=sys.stderr, flush=True))
    results = []
    for b in baselines:
        result = roofline(b, device=args.device, batch_size=args.batch_size, rounds=args.rounds, warmup=args.warmup,
                          machine=machine, log=log)
        results.append(result)
        if not args.json:
            print(format_roofline(result), flush=True)
            print()
    meta = bench.run_meta(args.device) | machine | {"loadavg_after": bench.load_average(), "suite": "roofline",
                                                    "argv": sys.argv[1:]}
    args.out.mkdir(parents=True, exist_ok=True)
    from ganzoo_core.checkpoints import atomic_path

    path = args.out / "bench-roofline.json"
    with atomic_path(path, overwrite=args.overwrite, what="benchmark result") as tmp:
        Path(tmp).write_text(json.dumps({"meta": meta, "families": results}, indent=2, default=str))
    if args.json:
        print(json.dumps({"suite": "roofline", "families": results, "json": str(path), "meta": meta}, indent=2,
                         default=str))
    else:
        print(f"{bench.describe_machine(meta)}\nsaved {path}")
    return 0


def _check_models_args(args: argparse.Namespace) -> list[Any] | None:
    """Refuse option mixes of the models suite before anything is measured; the baselines to run (None: no
    baseline, the plain ``--model``/``--generator`` groups)."""
    from ganzoo_core import bench

    if args.suite == "roofline":
        if args.all == bool(args.model):
            raise GanzooError("'ganzoo bench roofline' needs --model FAMILY (repeatable) or --all, not both")
        return bench.list_baselines() if args.all else [bench.find_baseline(name) for name in args.model]
    if args.suite != "models":
        for flag, value in (("--baseline", args.baseline), ("--all", args.all)):
            if value:
                raise GanzooError(f"{flag} applies to the models suite: 'ganzoo bench models {flag} ...'")
        return None
    if args.all and args.model:
        raise GanzooError("--all runs every family that has a baseline at its documented size; leave out --model "
                          f"({', '.join(args.model)}), or drop --all")
    if not args.all and not args.model:
        raise GanzooError("'ganzoo bench models' needs --model NAME (an objective, repeatable; see 'ganzoo list --kind "
                          "objective') or --all")
    if (args.all or args.baseline) and args.generator is not None:
        raise GanzooError("--generator applies without --baseline and --all: their generation rows time the "
                          "objective's own generator")
    if args.all:
        found = bench.list_baselines()
        if not found:
            raise GanzooError("--all found no baselines: no installed plugin provides any (the ganzoo_bench_baselines "
                              "hook); install the families' plugins")
        return found
    if args.baseline:
        return [bench.find_baseline(name) for name in args.model]
    from ganzoo_core._api import get_entry

    for name in args.model:  # unknown names fail here, in one line, not after the machine is measured
        get_entry("objective", name)
    for name in args.generator or ():
        get_entry("generator", name)
    return None


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
    from ganzoo_core.argtypes import int_at_least, positive_float

    p = sub.add_parser(
        "bench", help="compare op implementations or model policies",
        description="Time every op implementation against its reference at benchmark shapes (suite 'ops': the "
                    "ops' generic ones, or those of a --shapes file such as benchmarks/shapes.toml), or a model's "
                    "training step and generation under each precision/speed policy (suite 'models'). Prints ratios "
                    "measured in the same run, saves JSON and a PNG chart. With --baseline official, the family's "
                    "official training iteration is the first row; --all runs every family that has one. Suite "
                    "'roofline' times each layer of a family's official iteration alone in fp32 and bf16 beside the "
                    "machine's peaks: the most any policy can gain on this machine.",
    )
    p.add_argument("suite", choices=("ops", "models", "roofline"))
    p.add_argument("--op", action="append", default=[], help="ops suite: only this op (repeatable)")
    p.add_argument("--impl", action="append", default=[], help="ops suite: only this implementation (and ref)")
    p.add_argument("--shape", action="append", default=[], help="ops suite: only this shape name")
    p.add_argument("--shapes", type=Path, metavar="FILE",
                   help="ops suite: measure at the shapes of this TOML file (e.g. benchmarks/shapes.toml) instead of "
                        "the ops' generic ones")
    p.add_argument("--dtype", type=dtype_list, default="fp32,bf16", help="ops suite: comma-separated fp32,bf16")
    p.add_argument("--channels-last", action="store_true", help="ops suite: channels_last inputs")
    p.add_argument("--model", action="append",
                   help="models suite: objective name (repeatable); with --baseline, and in the roofline suite, a "
                        "family name")
    p.add_argument("--generator", action="append", help="models suite: generator name (default: as --model)")
    p.add_argument("--baseline", choices=("official",),
                   help="models suite: time the family's official training iteration and generation (fp32 eager, "
                        "written as the official code does them) first and give ratios against it")
    p.add_argument("--all", action="store_true",
                   help="models and roofline suites: every family that has a baseline, each at its documented batch "
                        "size, in one run (one JSON, one chart)")
    p.add_argument("--batch-size", type=int_at_least(1),
                   help="default: 64; with --baseline or --all, each family's documented size")
    p.add_argument("--compile", nargs="?", const="all", default="none", choices=("none", "generate", "all"),
                   help="models suite: add torch.compile policies (slow start); --compile generate: only the compiled "
                        "generation graphs")
    p.add_argument("--summary", action="store_true",
                   help="models suite: only fp32 on reference ops and the fastest policies (not the rows between)")
    p.add_argument("--device", type=device_arg, default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--repeat", type=int_at_least(1),
                   help="timed calls per row (ops, default 7) or per row and round (models, default 3; generation "
                        "twice as many); the median is reported")
    p.add_argument("--rounds", type=int_at_least(1), default=5,
                   help="models and roofline suites: interleaved rounds (each runs every row of a group in a rotated "
                        "order); ms and ratios are medians over rounds")
    p.add_argument("--min-seconds", type=positive_float, default=0.0,
                   help="models suite: after --rounds, more rounds while a group's timed calls took less than this "
                        "many seconds (at most 30 rounds): more paired ratios for the fast groups")
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
