"""Benchmarks that compare: every op implementation against its reference at benchmark shapes, and whole training
steps and generation of a registered model under each policy against eager fp32 on reference ops.

The ops' own benchmark shapes are generic layers; a shapes file (TOML, ``read_bench_shapes``) gives others, e.g.
``benchmarks/shapes.toml``, which holds the layers of this repository's models (``ganzoo bench ops --shapes FILE``).
Everything in one table is measured in the same process, one row after another, so ratios are comparable; absolute
times are printed for context only. ``ganzoo bench`` is the command; ``benchmarks/`` holds the same cases as
pytest-benchmark suites.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import math
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import tomllib
import torch
from torch import Tensor, nn

from ganzoo_core.config import check_types
from ganzoo_core.errors import ConfigError, GanzooError
from ganzoo_core.ops._dispatch import Case, available_impls, get_op_spec, list_op_specs, use_impls, write_cache
from ganzoo_core.policy import Policy
from ganzoo_core.progress import progress as progress_bar

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@attrs.frozen(kw_only=True)
class Row:
    suite: str  # "ops" or "models"
    group: str  # what is compared within: "<op> <shape> bf16", "<objective> train step"
    name: str  # the implementation or policy
    ms: float  # median milliseconds per call
    spread: float  # (max - min) / median over the repeats
    ratio: float  # reference time / this time (> 1: faster than the reference)
    extra: Mapping[str, Any] = attrs.field(factory=dict)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device, *, warmup: int = 2, repeat: int = 7) -> list[float]:
    """Milliseconds of each of ``repeat`` calls after ``warmup`` calls."""
    if repeat < 1 or warmup < 0:
        raise GanzooError(f"repeat must be at least 1 and warmup at least 0, got repeat={repeat}, warmup={warmup}")
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _rows(suite: str, group: str, timed: Sequence[tuple[str, list[float], Mapping[str, Any]]]) -> list[Row]:
    base = statistics.median(timed[0][1])
    rows = []
    for name, times, extra in timed:
        med = statistics.median(times)
        rows.append(Row(suite=suite, group=group, name=name, ms=med, spread=(max(times) - min(times)) / med,
                        ratio=base / med, extra=dict(extra)))
    return rows


# -- ops -----------------------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class BenchShape:
    """One benchmark shape of an op: its name, what it stands for, and the op's parameters (its ``spec.shape_type``)."""

    op: str
    name: str
    layer: str
    params: Any


def builtin_shapes(op: str) -> list[BenchShape]:
    """The benchmark shapes an op's spec carries (generic layers)."""
    spec = get_op_spec(op)
    return [BenchShape(op=op, name=name, layer=layer, params=None) for name, layer in spec.shapes.items()]


def _shape_params(where: str, cls: type, table: Mapping[str, Any]) -> Any:
    fields = {f.name: f for f in attrs.fields(cls)}
    unknown = [k for k in table if k not in fields]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(fields), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}{hint} (valid keys: layer, {', '.join(fields)})")
    missing = [n for n, f in fields.items() if f.default is attrs.NOTHING and n not in table]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")
    check_types(cls, table, what=where)
    try:
        params = cls(**table)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err.args[0] if err.args and isinstance(err.args[0], str) else err}") from None
    check_types(cls, {k: getattr(params, k) for k in table}, what=where, converted=True)
    return params


def read_bench_shapes(path: str | Path) -> list[BenchShape]:
    """The benchmark shapes of a TOML file: one table per op, one sub-table per shape, holding ``layer`` (what the
    shape stands for) and the op's shape parameters (the fields of its ``spec.shape_type``)::

        [bias_act."g.out"]
        layer = "the generator's output, tanh"
        x = [64, 3, 64, 64]
        act = "tanh"
        bias = false

    Raises ``ConfigError`` (one line naming the file, op and shape) for an unknown op or key, a missing or mistyped
    value; ``OSError`` when the file cannot be read.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not a valid TOML file: {err}") from None
    known = [s.name for s in list_op_specs()]
    shapes = []
    for op, table in data.items():
        if op not in known:
            close = difflib.get_close_matches(op, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{path}: no op {op!r}{hint} (ops: {', '.join(known)})")
        spec = get_op_spec(op)
        if not isinstance(table, Mapping) or spec.shape_type is None:
            raise ConfigError(f"{path}: [{op}] must hold one table per shape, e.g. [{op}.\"name\"]"
                              if spec.shape_type is not None else f"{path}: op {op!r} takes no shapes from a file")
        for name, entry in table.items():
            where = f"{path}: [{op}.{name!r}]"
            if not isinstance(entry, Mapping):
                raise ConfigError(f"{where} must be a table (layer = ..., and the shape's parameters)")
            layer = entry.get("layer", "")
            if not isinstance(layer, str):
                raise ConfigError(f"{where}: layer = {layer!r} must be a string")
            params = _shape_params(where, spec.shape_type, {k: v for k, v in entry.items() if k != "layer"})
            shapes.append(BenchShape(op=op, name=name, layer=layer, params=params))
    return shapes


def op_step(op: str, impl: str, case: Case, seed: int = 0) -> Callable[[], Any]:
    """One forward (and backward, for differentiable ops) of ``op`` with ``impl`` on fixed random inputs."""
    spec = get_op_spec(op)
    args, kwargs = spec.sample(case, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        out = spec.call(*args, impl="ref", **kwargs)
    outs = [o for o in (out if isinstance(out, (tuple, list)) else [out]) if isinstance(o, Tensor)]
    gen = torch.Generator().manual_seed(seed + 1)
    grads = [torch.randn(o.shape, generator=gen).to(o.device, o.dtype) for o in outs]
    train = spec.grad and case.requires_grad

    def step() -> Any:
        if not train:
            with torch.no_grad():
                return spec.call(*args, impl=impl, **kwargs)
        result = spec.call(*args, impl=impl, **kwargs)
        results = [o for o in (result if isinstance(result, (tuple, list)) else [result]) if isinstance(o, Tensor)]
        torch.autograd.backward(results, grads)
        for value in [*args, *kwargs.values()]:  # drop accumulated grads so every call does the same work
            if isinstance(value, Tensor):
                value.grad = None
            elif isinstance(value, nn.Module):
                value.zero_grad(set_to_none=True)
        return result

    return step


def bench_ops(ops: Sequence[str] = (), *, dtypes: Sequence[str] = ("fp32", "bf16"), channels_last: bool = False,
              device: str = "cpu", repeat: int = 7, warmup: int = 2, shapes: Sequence[str] = (),
              impls: Sequence[str] = (), bench_shapes: Sequence[BenchShape] | None = None,
              log: Callable[[str], None] | None = None, progress: bool | None = False) -> list[Row]:
    """Each op's available implementations side by side, forward + backward, at the ops' own benchmark shapes or,
    when given, at ``bench_shapes`` (``read_bench_shapes``) instead; ``ops``, ``shapes`` and ``impls`` filter.
    ``log`` gets one line per measured case; ``progress`` shows a bar on stderr (None: when it is a terminal)."""
    unknown = [dt for dt in dtypes if dt not in DTYPES]
    if unknown:
        raise GanzooError(f"unknown dtype(s) {unknown}; choose from {', '.join(DTYPES)}")
    dev = torch.device(device)
    # (op spec, shape, dtype, implementations): everything to measure, counted before the first is timed
    plan: list[tuple[Any, BenchShape, str, list[str]]] = []
    for spec in list_op_specs():
        if ops and spec.name not in ops:
            continue
        names = [i for i in available_impls(spec.name, dev) if not impls or i == "ref" or i in impls]
        op_shapes = builtin_shapes(spec.name) if bench_shapes is None else [
            s for s in bench_shapes if s.op == spec.name]
        plan += [(spec, bs, dt, names) for bs in op_shapes if not shapes or bs.name in shapes for dt in dtypes]
    rows: list[Row] = []
    with progress_bar(total=sum(len(p[3]) for p in plan), desc="bench ops", unit="case", enabled=progress) as bar:
        for spec, bs, dt, names in plan:
            shape = bs.name
            case = Case(dtype=DTYPES[dt], device=device, channels_last=channels_last, shape=shape,
                        variant=spec.variants[0], params=bs.params)
            group = f"{spec.name} {shape} {dt}{' cl' if channels_last else ''}"
            timed = []
            for impl in names:
                _announce(f"{group}: {impl}", log, bar)
                times = time_call(op_step(spec.name, impl, case), dev, warmup=warmup, repeat=repeat)
                timed.append((impl, times, {"op": spec.name, "shape": shape, "dtype": dt,
                                            "layer": bs.layer, "device": device}))
                bar.update(1)
            rows += _rows("ops", group, timed)
    return rows


def _announce(case: str, log: Callable[[str], None] | None, bar: Any) -> None:
    """Name the case about to be measured: a ``log`` line, and the bar's postfix."""
    if log:
        log(f"  {case}")
    bar.set_postfix_str(case, refresh=True)


def choose_impls(rows: Sequence[Row], min_gain: float = 1.05) -> tuple[dict[str, str], dict[str, Any]]:
    """Per ``op/device``, the implementation with the best geometric-mean ratio over the measured shapes and
    dtypes; the reference unless another is at least ``min_gain`` times faster."""
    gains: dict[tuple[str, str], dict[str, list[float]]] = {}
    for r in rows:
        if r.suite == "ops":
            gains.setdefault((r.extra["op"], r.extra["device"]), {}).setdefault(r.name, []).append(r.ratio)
    choices, measured = {}, {}
    for (op, dev), per_impl in gains.items():
        geo = {i: math.exp(statistics.fmean(math.log(v) for v in vs)) for i, vs in per_impl.items()}
        best = max(geo, key=lambda i: geo[i])
        key = f"{op}/{dev}"
        choices[key] = best if geo[best] >= min_gain else "ref"
        measured[key] = {i: round(g, 3) for i, g in geo.items()}
    return choices, measured


# -- models --------------------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ModelPolicy:
    """A training or generation setting: a precision policy, which op implementations, and inference folding."""

    name: str
    policy: Policy = attrs.field(factory=Policy)
    ops: str = "auto"  # "ref": every op on its reference (the model as plain PyTorch writes it), "auto": fastest
    fold: bool = False  # generation only: fold BatchNorm into the convolutions
    inference_graph: bool = False  # generation only: weights in the policy's precision, compiled with them frozen
    fused_adam: bool = False  # training only: Adam's fused (single-kernel) step
    skip_frozen_grads: bool = True  # training only: no weight gradients for networks the phase does not update
    # generation only: "onnxruntime" runs the generator's ONNX graph (ganzoo_core.export, fp32) in ONNX Runtime on
    # the CPU, with ``ort_level`` graph optimisations and torch's thread count, instead of PyTorch
    runtime: str = attrs.field(default="torch", validator=attrs.validators.in_(("torch", "onnxruntime")))
    ort_level: str = attrs.field(default="all", validator=attrs.validators.in_(("basic", "extended", "all")))


TRAIN_POLICIES = (
    # the first two train as pytorch/examples writes it: every op plain PyTorch, D's weight gradients computed in
    # the G step too
    ModelPolicy(name="fp32 eager (as pytorch/examples)", ops="ref", skip_frozen_grads=False),
    ModelPolicy(name="bf16 autocast (as pytorch/examples)", policy=Policy(precision="bf16"), ops="ref",
                skip_frozen_grads=False),
    ModelPolicy(name="bf16 + channels_last", policy=Policy(precision="bf16", channels_last=True), ops="ref",
                skip_frozen_grads=False),
    ModelPolicy(name="bf16 + channels_last + no frozen grads", policy=Policy(precision="bf16", channels_last=True),
                ops="ref"),
    ModelPolicy(name="bf16 + channels_last + no frozen grads + fast ops + fused Adam",
                policy=Policy(precision="bf16", channels_last=True), fused_adam=True),
)
COMPILED_TRAIN = ModelPolicy(name="bf16 + channels_last + compile + fused Adam",
                             policy=Policy(precision="bf16", channels_last=True, compile=True), fused_adam=True)
GENERATE_POLICIES = (
    ModelPolicy(name="fp32 eager (reference ops)", ops="ref"),
    ModelPolicy(name="bf16 autocast (reference ops)", policy=Policy(precision="bf16"), ops="ref"),
    ModelPolicy(name="bf16 + channels_last + fast ops + folded BN",
                policy=Policy(precision="bf16", channels_last=True), fold=True),
)
COMPILED_GENERATE = (
    ModelPolicy(name="bf16 + channels_last + folded BN + compile",
                policy=Policy(precision="bf16", channels_last=True, compile=True), fold=True),
    # an inference graph: bf16 weights (no autocast casts), compiled with the weights as constants, so inductor
    # prepacks them for oneDNN once and fuses bias + activation into the convolutions
    ModelPolicy(name="bf16 weights + channels_last + folded BN + compile, weights frozen",
                policy=Policy(precision="bf16", channels_last=True), fold=True, inference_graph=True),
)
ORT_GENERATE = (  # the generator as an exported ONNX graph, served by ONNX Runtime (CPU); "all" is ORT's default
    ModelPolicy(name="onnxruntime fp32, basic graph optimisations", runtime="onnxruntime", ort_level="basic"),
    ModelPolicy(name="onnxruntime fp32, all graph optimisations", runtime="onnxruntime", ort_level="all"),
)


def ort_note(device: str) -> str | None:
    """Why ``bench_models`` leaves out the ONNX Runtime rows (one line), or None when it measures them."""
    if torch.device(device).type != "cpu":
        return f"no onnxruntime rows on {device}: they measure ONNX Runtime's CPU provider (run with --device cpu)"
    from ganzoo_core.export import onnx_missing

    why = onnx_missing()
    return None if why is None else f"no onnxruntime rows: {why}"


@contextlib.contextmanager
def _ops(mode: str) -> Iterator[None]:
    if mode == "auto":
        yield
    else:
        with use_impls(mode):
            yield


def train_step(objective_name: str, mp: ModelPolicy, device: str = "cpu", batch_size: int = 64,
               seed: int = 0) -> Callable[[], dict[str, float]]:
    """One training iteration of a registered objective (all phases, optimizer steps included) under ``mp``."""
    from ganzoo_core._api import create
    from ganzoo_core.training import make_optimizers, run_phase

    torch.manual_seed(seed)
    objective = create("objective", objective_name).to(device).train()
    mp.policy.prepare(objective.networks)
    batch = mp.policy.batch({k: v.to(device) for k, v in objective.example_batch(batch_size).items()})
    optimizers = make_optimizers(objective)
    if mp.fused_adam:
        for opt in optimizers.values():
            for group in opt.param_groups:
                group["fused"], group["foreach"] = True, False

    def iteration() -> dict[str, float]:
        ctx: dict[str, Any] = {}
        row: dict[str, float] = {}
        with _ops(mp.ops):
            for phase in objective.phases:
                row |= run_phase(objective, phase, optimizers[phase.name], batch, ctx, step=1, policy=mp.policy,
                                 skip_frozen_grads=mp.skip_frozen_grads)
        return row

    return iteration


def generate_step(generator_name: str, mp: ModelPolicy, device: str = "cpu", batch_size: int = 64,
                  seed: int = 0) -> Callable[[], Tensor]:
    """One eval-mode forward of a registered generator on a batch of its inputs under ``mp``."""
    from ganzoo_core._api import create

    if mp.runtime == "onnxruntime":
        return ort_generate_step(generator_name, mp, device, batch_size, seed)
    torch.manual_seed(seed)
    g = create("generator", generator_name).to(device).eval()
    if mp.fold:
        from ganzoo_core.ops.conv_bn import fold_batchnorm

        g = fold_batchnorm(g)
    mp.policy.prepare(nn.ModuleDict({"G": g}))
    inputs = [x.to(device) for x in g.example_inputs(batch_size)]
    if mp.policy.channels_last:
        inputs = [x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x for x in inputs]
    dev = torch.device(device)
    model: Callable[..., Tensor] = g
    if mp.inference_graph:
        model, inputs = inference_graph(g, inputs, mp.policy)

    @torch.no_grad()
    def generate() -> Tensor:
        with _ops(mp.ops), (contextlib.nullcontext() if mp.inference_graph else mp.policy.autocast(dev)):
            return model(*inputs)

    return generate


def ort_generate_step(generator_name: str, mp: ModelPolicy, device: str = "cpu", batch_size: int = 64,
                      seed: int = 0) -> Callable[[], Tensor | tuple[Tensor, ...]]:
    """``generate_step`` in ONNX Runtime: the same generator (same seed, same weights) exported as ONNX
    (``ganzoo_core.export.export_onnx``: eval mode, fp32, dynamic batch), run by an ONNX Runtime CPU session with
    ``mp.ort_level`` graph optimisations and torch's thread count, on the inputs the PyTorch rows get (noise the
    generator would draw inside its forward is drawn once, as a graph input). Session set-up and the input
    conversion happen here, not in the timed call; outputs come back as tensors."""
    import tempfile

    from ganzoo_core._api import create
    from ganzoo_core.export import export_onnx, graph_inputs, ort_session

    if (why := ort_note(device)) is not None:
        raise GanzooError(why)
    torch.manual_seed(seed)
    g = create("generator", generator_name).eval()
    given = [x for x in g.example_inputs(batch_size) if x is not None]  # what generate_step feeds the PyTorch rows
    inputs = graph_inputs(g, batch_size, given=given)
    with tempfile.TemporaryDirectory(prefix="ganzoo-bench-") as tmp:
        path = export_onnx(g, Path(tmp) / "generator.onnx")
        session = ort_session(path, level=mp.ort_level, threads=torch.get_num_threads())  # reads the file now
    feed = {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs)}

    def generate() -> Tensor | tuple[Tensor, ...]:
        outs = tuple(torch.from_numpy(o) for o in session.run(None, feed))
        return outs[0] if len(outs) == 1 else outs

    return generate


def inference_graph(g: nn.Module, inputs: Sequence[Tensor], policy: Policy) -> tuple[Callable[..., Tensor], list[Tensor]]:
    """``g`` as an inference graph: parameters and floating inputs cast to the policy's precision (bf16 or fp16 stay
    so, without autocast), then ``torch.compile`` with inductor freezing (weights are constants of the graph). For
    generation only: the compiled function does not follow later changes of ``g``'s weights."""
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[policy.precision]
    g = g.to(dtype).eval()
    cast = [x.to(dtype) if x.is_floating_point() else x for x in inputs]
    fn = torch.compile(g, options={"freezing": True})
    return fn, cast


def bench_models(objectives: Sequence[str], generators: Sequence[str], *, device: str = "cpu", batch_size: int = 64,
                 repeat: int = 5, warmup: int = 2, compile: bool = False, onnxruntime: bool | None = None,
                 log: Callable[[str], None] | None = None, progress: bool | None = False) -> list[Row]:
    """Each objective's training step and each generator's generation under every policy (``TRAIN_POLICIES``,
    ``GENERATE_POLICIES``, the compiled ones with ``compile``, and ONNX Runtime's, ``ORT_GENERATE``, with
    ``onnxruntime``; None: when onnxruntime is installed and ``device`` is the CPU, else ``log`` gets the reason).
    ``log`` gets one line per measured case; ``progress`` shows a bar on stderr (None: when it is a terminal)."""
    dev = torch.device(device)
    train_policies = TRAIN_POLICIES + ((COMPILED_TRAIN,) if compile else ())
    if onnxruntime is None:
        note = ort_note(device) if generators else None
        onnxruntime = note is None
        if note is not None and log:
            log(note)
    generate_policies = GENERATE_POLICIES + (COMPILED_GENERATE if compile else ()) + (
        ORT_GENERATE if onnxruntime else ())
    total = len(objectives) * len(train_policies) + len(generators) * len(generate_policies)
    rows: list[Row] = []
    with progress_bar(total=total, desc="bench models", unit="case", enabled=progress) as bar:
        for name in objectives:
            timed = []
            for mp in train_policies:
                _announce(f"{name} train: {mp.name}", log, bar)
                times = time_call(train_step(name, mp, device, batch_size), dev, warmup=warmup, repeat=repeat)
                timed.append((mp.name, times, {"model": name, "batch": batch_size, "device": device}))
                bar.update(1)
            rows += _rows("models", f"{name} train step", timed)
        for name in generators:
            timed = []
            for mp in generate_policies:
                _announce(f"{name} generate: {mp.name}", log, bar)
                times = time_call(generate_step(name, mp, device, batch_size), dev, warmup=warmup, repeat=repeat * 2)
                timed.append((mp.name, times, {"model": name, "batch": batch_size, "device": device,
                                               "images_per_s": batch_size / (statistics.median(times) / 1e3)}))
                bar.update(1)
            rows += _rows("models", f"{name} generate", timed)
    return rows


# -- output --------------------------------------------------------------------------------------------------------


def format_table(rows: Sequence[Row]) -> str:
    """Rows grouped as measured; the first row of each group is the reference (ratio 1.00)."""
    width = max([len(r.name) for r in rows] + [14])
    lines: list[str] = []
    group = None
    for r in rows:
        if r.group != group:
            group = r.group
            lines += ["", f"{r.group}", f"  {'implementation / policy':<{width}}  {'ms':>9}  {'spread':>6}  {'x ref':>6}"]
        lines.append(f"  {r.name:<{width}}  {r.ms:9.2f}  {r.spread:6.0%}  {r.ratio:6.2f}")
    return "\n".join(lines).lstrip("\n")


def save_json(rows: Sequence[Row], path: Path, meta: Mapping[str, Any], *, overwrite: bool = True) -> Path:
    from ganzoo_core.checkpoints import atomic_path

    data = {"meta": dict(meta), "rows": [attrs.asdict(r) for r in rows]}
    with atomic_path(path, overwrite=overwrite, what="benchmark result") as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2))
    return path


def draw_chart(rows: Sequence[Row], path: Path, title: str, *, overwrite: bool = True) -> Path:
    """Horizontal bars of speed-up over the reference, one cluster per group (written atomically)."""
    import matplotlib

    from ganzoo_core.checkpoints import atomic_path

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r.group} | {r.name}" for r in rows]
    fig, ax = plt.subplots(figsize=(10, 0.28 * len(rows) + 1.2))
    first = {i for i, r in enumerate(rows) if i == 0 or rows[i - 1].group != r.group}  # each group's reference
    colors = ["0.6" if i in first else "tab:blue" for i in range(len(rows))]
    ax.barh(range(len(rows)), [r.ratio for r in rows], color=colors)
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("speed-up over the reference (same run)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path, overwrite=overwrite, what="benchmark chart") as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")  # long labels stay whole
    plt.close(fig)
    return path


def run_meta(device: str) -> dict[str, Any]:
    from ganzoo_core._version import __version__
    from ganzoo_core.ops._dispatch import device_name

    return {"ganzoo_version": __version__, "torch_version": torch.__version__, "device": device,
            "device_name": device_name(torch.device(device).type), "threads": torch.get_num_threads(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def write_impl_cache(rows: Sequence[Row], path: Path | None = None) -> tuple[Path, dict[str, str]]:
    choices, measured = choose_impls(rows)
    return write_cache(choices, measured, path), choices
