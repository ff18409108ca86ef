"""Benchmarks that compare: every op implementation against its reference at benchmark shapes, and whole training
steps and generation of a registered model under each policy against eager fp32 on reference ops, or against the
family's official training iteration (``Baseline``, from the plugins' ``ganzoo_bench_baselines`` hook).

The ops' own benchmark shapes are generic layers; a shapes file (TOML, ``read_bench_shapes``) gives others, e.g.
``benchmarks/shapes.toml``, which holds the layers of this repository's models (``ganzoo bench ops --shapes FILE``).
Everything in one table is measured in the same process, so ratios are comparable; absolute times are printed for
context only. ``ganzoo bench`` is the command; ``benchmarks/`` holds the same cases as pytest-benchmark suites.

How the models suite times (``time_interleaved``): interleaved rounds with paired ratios. Every row of a group (the
official iteration, ganzoo on reference ops, each ganzoo policy; in generation groups also the ONNX Runtime rows) is
built first. Then each of ``rounds`` rounds runs every row once for ``calls`` timed calls, the rows in an order
rotated by one per round (round r starts with row r). A row reports the median over rounds of its per-round median
(``ms``), the spread of those per-round medians ((max - min) / median), and its ratio to the group's first row
computed within each round and then taken as the median over rounds. Why this and not each row timed back to back:
on a shared machine the load moves over seconds to minutes, so rows timed one after another each get a different
slice of it (spreads of over 300% were seen, and the wrong winner twice). Interleaving puts every row into every
slice; rotating the order cancels what running first, or right after a heavy row, costs; and a ratio of two rows of
the same round divides out the load both saw, so its median over rounds holds still while absolute times move.
Medians, not means or minima: a round hit by a burst is ignored without favouring a lucky one.
``torch.utils.benchmark``'s blocked autorange was weighed and not taken: it makes one row's estimate steady but still
times the rows at different moments, which leaves the load drift in the ratios. Beside the rows the JSON records the
machine (``machine_meta``): the CPU model and its vector/matrix flags, the fp32 and bf16 matmul rate measured on the
device, torch's thread count and the load average before and after.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
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
from ganzoo_core.hookspecs import Baseline
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


# -- interleaved timing ------------------------------------------------------------------------------------------


def interleaved_order(n_rows: int, rounds: int) -> list[list[int]]:
    """The row order of each round: round r runs rows r, r+1, ..., wrapping around (every row leads once per
    ``n_rows`` rounds)."""
    return [[(r + j) % n_rows for j in range(n_rows)] for r in range(rounds)]


MAX_ROUNDS = 30
"""``time_interleaved``'s cap on the rounds ``min_seconds`` adds."""


def time_interleaved(fns: Sequence[Callable[[], Any]], device: str | torch.device = "cpu", *, rounds: int = 5,
                     calls: int = 3, warmup: int = 2, cycle: int = 1, min_seconds: float = 0.0,
                     timer: Callable[[], float] = time.perf_counter,
                     on_round: Callable[[int, int], None] | None = None) -> list[list[list[float]]]:
    """Milliseconds per call of each of ``fns``, measured in interleaved rounds (see the module docstring):
    ``[row][round]`` holds ``calls`` samples. Each row first runs ``warmup`` samples untimed. A sample is ``cycle``
    consecutive calls divided by ``cycle``: an iteration whose phases run every k-th call (StarGAN's G every 5th D
    step) is timed over whole cycles. After ``rounds`` rounds, further rounds run while the timed calls have taken
    less than ``min_seconds`` (at most ``MAX_ROUNDS`` in all): a group of fast rows gets more paired ratios, whose
    median then moves less with the machine's load, and a slow group is not made slower. ``on_round(row, round)``
    is called after each row's turn; ``timer`` (seconds) is there for tests."""
    if rounds < 1 or calls < 1 or warmup < 0 or cycle < 1 or min_seconds < 0:
        raise GanzooError(f"rounds, calls and cycle must be at least 1, warmup and min_seconds at least 0, got "
                          f"rounds={rounds}, calls={calls}, cycle={cycle}, warmup={warmup}, min_seconds={min_seconds}")
    dev = torch.device(device)
    for fn in fns:
        for _ in range(warmup * cycle):
            fn()
    _sync(dev)
    samples: list[list[list[float]]] = [[] for _ in fns]
    orders = interleaved_order(len(fns), max(rounds, MAX_ROUNDS))
    spent, r = 0.0, 0
    while r < rounds or (spent < min_seconds * 1e3 and r < len(orders)):
        for i in orders[r]:
            samples[i].append([])
            for _ in range(calls):
                start = timer()
                for _ in range(cycle):
                    fns[i]()
                _sync(dev)
                ms = (timer() - start) * 1e3
                spent += ms
                samples[i][r].append(ms / cycle)
            if on_round is not None:
                on_round(i, r)
        r += 1
    return samples


def interleaved_rows(suite: str, group: str,
                     timed: Sequence[tuple[str, Sequence[Sequence[float]], Mapping[str, Any]]]) -> list[Row]:
    """Rows of one group from ``time_interleaved`` samples (the first row is the reference): ``ms`` the median over
    rounds of the per-round medians, ``spread`` (max - min) / ms of those, ``ratio`` the median over rounds of the
    reference's per-round median over this row's; ``extra["ratio_of_minima"]`` the reference's fastest call over this
    row's, the estimate that ignores load entirely (recorded beside, to compare how each repeats between runs)."""
    base = [statistics.median(s) for s in timed[0][1]]
    base_fastest = min(x for s in timed[0][1] for x in s)
    rows = []
    for name, samples, extra in timed:
        per_round = [statistics.median(s) for s in samples]
        ms = statistics.median(per_round)
        ratio = statistics.median(b / m if m > 0 else math.inf for b, m in zip(base, per_round))  # m = 0: below the clock
        spread = (max(per_round) - min(per_round)) / ms if ms > 0 else 0.0
        fastest = min(x for s in samples for x in s)
        ratio_min = base_fastest / fastest if fastest > 0 else math.inf
        rows.append(Row(suite=suite, group=group, name=name, ms=ms, spread=spread,
                        ratio=ratio, extra={**extra, "round_ms": [round(m, 4) for m in per_round],
                                            "rounds": len(per_round), "calls": len(samples[0]),
                                            "ratio_of_minima": ratio_min}))
    return rows


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
    # the first two compute every weight gradient, as plain PyTorch training code that does not freeze D does
    # (pytorch/examples' DCGAN computes D's in the G step and throws them away); every op on its reference
    ModelPolicy(name="fp32 eager, reference ops", ops="ref", skip_frozen_grads=False),
    ModelPolicy(name="bf16 autocast, reference ops", policy=Policy(precision="bf16"), ops="ref",
                skip_frozen_grads=False),
    ModelPolicy(name="bf16 + channels_last", policy=Policy(precision="bf16", channels_last=True), ops="ref",
                skip_frozen_grads=False),
    ModelPolicy(name="bf16 + channels_last + no frozen grads", policy=Policy(precision="bf16", channels_last=True),
                ops="ref"),
    # NCHW: InstanceNorm over a batch of several samples has no channels_last kernel (F.instance_norm copies the
    # input into NCHW and the next convolution copies it back), so for StarGAN this is the faster of the two
    ModelPolicy(name="bf16 + no frozen grads + fast ops + fused Adam", policy=Policy(precision="bf16"),
                fused_adam=True),
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


def phase_cycle(objective: Any) -> int:
    """Engine steps after which every phase of ``objective`` has run a whole number of times (the least common
    multiple of their ``every`` x ``cycle``): 1 for D + G each step, 5 for StarGAN's G every 5th D step."""
    return math.lcm(*(phase.every * phase.cycle for phase in objective.phases)) if objective.phases else 1


def train_step(objective_name: str, mp: ModelPolicy, device: str = "cpu", batch_size: int = 64, seed: int = 0,
               overrides: Mapping[str, Any] | None = None) -> Callable[[], dict[str, float]]:
    """One training iteration of a registered objective (built with ``overrides``) under ``mp``: the phases due at
    this step, as the engine runs them, optimizer steps included. Successive calls are successive steps, so a phase
    that runs every k-th step runs on every k-th call; the callable's ``cycle`` attribute is ``phase_cycle``."""
    from ganzoo_core._api import create
    from ganzoo_core.training import make_optimizers, run_phase

    torch.manual_seed(seed)
    objective = create("objective", objective_name, **dict(overrides or {})).to(device).train()
    mp.policy.prepare(objective.networks)
    batch = mp.policy.batch({k: v.to(device) for k, v in objective.example_batch(batch_size).items()})
    optimizers = make_optimizers(objective, fused=mp.fused_adam)
    steps = iter(range(1, 2**62))

    def iteration() -> dict[str, float]:
        step = next(steps)
        ctx: dict[str, Any] = {}
        row: dict[str, float] = {}
        with _ops(mp.ops):
            for phase in objective.phases:
                if phase.due(step):
                    row |= run_phase(objective, phase, optimizers[phase.name], batch, ctx, step=step,
                                     policy=mp.policy, skip_frozen_grads=mp.skip_frozen_grads)
        return row

    iteration.cycle = phase_cycle(objective)  # type: ignore[attr-defined]
    return iteration


def generate_step(generator_name: str, mp: ModelPolicy, device: str = "cpu", batch_size: int = 64,
                  seed: int = 0, overrides: Mapping[str, Any] | None = None) -> Callable[[], Tensor]:
    """One eval-mode forward of a registered generator (built with ``overrides``) on a batch of its inputs under
    ``mp``."""
    from ganzoo_core._api import create

    if mp.runtime == "onnxruntime":
        return ort_generate_step(generator_name, mp, device, batch_size, seed, overrides)
    torch.manual_seed(seed)
    g = create("generator", generator_name, **dict(overrides or {})).to(device).eval()
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
                      seed: int = 0, overrides: Mapping[str, Any] | None = None
                      ) -> Callable[[], Tensor | tuple[Tensor, ...]]:
    """``generate_step`` in ONNX Runtime: the same generator (same seed, same weights) exported as ONNX
    (``ganzoo_core.export.export_onnx``: eval mode, fp32, dynamic batch), run by an ONNX Runtime CPU session with
    ``mp.ort_level`` graph optimisations and torch's thread count, on the inputs the PyTorch rows get (noise the
    generator would draw inside its forward is drawn once, as a graph input). Session set-up and the input
    conversion happen here, not in the timed call; outputs come back as tensors."""
    import tempfile

    from ganzoo_core._api import create
    from ganzoo_core.export import eager_outputs, export_onnx, graph_inputs, ort_session

    if (why := ort_note(device)) is not None:
        raise GanzooError(why)
    torch.manual_seed(seed)
    g = create("generator", generator_name, **dict(overrides or {})).eval()
    given = [x for x in g.example_inputs(batch_size) if x is not None]  # what generate_step feeds the PyTorch rows
    inputs = graph_inputs(g, batch_size, given=given)
    with tempfile.TemporaryDirectory(prefix="ganzoo-bench-") as tmp:
        path = export_onnx(g, Path(tmp) / "generator.onnx")
        session = ort_session(path, level=mp.ort_level, threads=torch.get_num_threads())  # reads the file now
    feed = {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs)}

    def generate() -> Tensor | tuple[Tensor, ...]:
        outs = tuple(torch.from_numpy(o) for o in session.run(None, feed))
        return outs[0] if len(outs) == 1 else outs

    # the noise is a graph input here, so the output is compared with the eager network on the same inputs
    generate.rel_diff = relative_difference(_first(generate()), eager_outputs(g, inputs)[0])  # type: ignore[attr-defined]
    return generate


def inference_graph(g: nn.Module, inputs: Sequence[Tensor], policy: Policy) -> tuple[Callable[..., Tensor], list[Tensor]]:
    """``g`` as an inference graph: parameters and floating inputs cast to the policy's precision (bf16 or fp16 stay
    so, without autocast), then ``torch.compile`` with inductor freezing (weights are constants of the graph). For
    generation only: the compiled function does not follow later changes of ``g``'s weights."""
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[policy.precision]
    g = g.to(dtype).eval()
    cast = [x.to(dtype) if x.is_floating_point() else x for x in inputs]
    # fallback_random: noise drawn inside the forward comes from torch's generator, as in eager mode (inductor's own
    # stream would give other samples from the same seed, and no output to compare with the reference)
    fn = torch.compile(g, options={"freezing": True, "fallback_random": True})
    return fn, cast


@attrs.frozen(kw_only=True)
class _Case:
    """One row of a group before it is timed: its name, how to build its callable, what its JSON row records."""

    name: str
    build: Callable[[], Callable[[], Any]]
    extra: Mapping[str, Any] = attrs.field(factory=dict)
    reference: bool = False  # generation groups: the output every other row's output is compared with


@attrs.frozen(kw_only=True)
class _Group:
    group: str
    cases: Sequence[_Case]
    calls: int
    batch: int = 0  # generation groups: images per call, for images_per_s


def _measure(groups: Sequence[_Group], *, device: str, rounds: int, warmup: int, log: Callable[[str], None] | None,
             progress: bool | None, min_seconds: float = 0.0) -> list[Row]:
    """Each group built, timed in interleaved rounds and let go before the next is built (one group's networks in
    memory at a time)."""
    rows: list[Row] = []
    total = sum(len(g.cases) for g in groups) * rounds
    with progress_bar(total=total, desc="bench models", unit="row-round", enabled=progress) as bar:
        for g in groups:
            fns = []
            for case in g.cases:
                _announce(f"{g.group}: building {case.name}", log, bar)
                fns.append(case.build())
            checks = output_parity(g.cases, fns) if g.batch else [{} for _ in fns]
            cycle = math.lcm(*(int(getattr(fn, "cycle", 1)) for fn in fns))
            more = f" (more until {min_seconds:g} s are timed, at most {max(rounds, MAX_ROUNDS)})" if min_seconds else ""
            _announce(f"{g.group}: {rounds} interleaved rounds{more} of {len(fns)} rows", log, bar)
            samples = time_interleaved(fns, device, rounds=rounds, calls=g.calls, warmup=warmup, cycle=cycle,
                                       min_seconds=min_seconds, on_round=lambda i, r: bar.update(1))
            del fns
            timed = [(c.name, s, {**c.extra, **check, "cycle": cycle}) for c, s, check in zip(g.cases, samples, checks)]
            group_rows = interleaved_rows("models", g.group, timed)
            if g.batch:
                group_rows = mark_fastest_matching([attrs.evolve(r, extra={**r.extra, "images_per_s": g.batch / (r.ms / 1e3)})
                                                    for r in group_rows])
            rows += group_rows
    return rows


PARITY_SEED = 1234
PARITY_TOL = 0.05
"""A generation row matches the reference when its output differs from the reference row's (same weights, inputs
and noise) by at most this relative L2 distance, ||y - y_ref|| / ||y_ref||. bf16 through a whole generator measures
0.4-1.7% here (CycleGAN and StarGAN highest: 9 residual blocks, InstanceNorm over bf16 activations); a wrong kernel,
layout or noise stream gives tens of percent."""


def _first(out: Any) -> Tensor:
    return out[0] if isinstance(out, tuple | list) else out


def relative_difference(y: Tensor, ref: Tensor) -> float:
    """||y - ref|| / ||ref|| in fp64 (inf for a shape mismatch)."""
    if y.shape != ref.shape:
        return math.inf
    ref64 = ref.detach().double()
    return float((y.detach().double() - ref64).norm() / ref64.norm().clamp_min(1e-30))


def output_parity(cases: Sequence[_Case], fns: Sequence[Callable[[], Any]]) -> list[dict[str, Any]]:
    """Per generation row, ``{"rel_diff": ..., "matches_reference": ...}`` against the ``reference`` case: each
    row's callable run once with the global RNG seeded to ``PARITY_SEED`` (noise a generator draws inside its
    forward is then the same), or, for a row whose noise is a graph input (ONNX Runtime), its own ``rel_diff``
    attribute (measured against the eager fp32 network on its inputs). Rows of other weights (the official code's)
    and groups without a reference case get ``{}``."""
    refs = [i for i, c in enumerate(cases) if c.reference]
    if not refs:
        return [{} for _ in cases]
    with torch.no_grad():
        torch.manual_seed(PARITY_SEED)
        ref = _first(fns[refs[0]]())
        checks: list[dict[str, Any]] = []
        for case, fn in zip(cases, fns):
            if case.extra.get("official"):
                checks.append({})
                continue
            own = getattr(fn, "rel_diff", None)
            if own is None:
                torch.manual_seed(PARITY_SEED)
                own = relative_difference(_first(fn()), ref)
            checks.append({"rel_diff": float(own), "matches_reference": bool(own <= PARITY_TOL)})
    return checks


def mark_fastest_matching(rows: Sequence[Row]) -> list[Row]:
    """``extra["fastest_matching"] = True`` on the highest-ratio row of a generation group whose output matches the
    reference (``output_parity``); the official row and the reference row itself are candidates too."""
    matching = [r for r in rows if r.extra.get("matches_reference") or r.extra.get("official")]
    if not matching:
        return list(rows)
    best = max(matching, key=lambda r: r.ratio)
    return [attrs.evolve(r, extra={**r.extra, "fastest_matching": True}) if r is best else r for r in rows]


SUMMARY_POLICIES = frozenset({TRAIN_POLICIES[0].name, TRAIN_POLICIES[4].name, TRAIN_POLICIES[5].name,
                               GENERATE_POLICIES[0].name, GENERATE_POLICIES[2].name, COMPILED_GENERATE[1].name,
                               ORT_GENERATE[1].name})
"""The rows a summary reads (``summary=True``): fp32 on reference ops (the parity claim) and the fastest policies; the
rows between them (bf16 autocast, channels_last alone, ...) show why the fastest is fastest and are left out."""
COMPILE_CHOICES = ("none", "generate", "all")


def _policies(compile: bool | str, onnxruntime: bool | None, device: str, log: Callable[[str], None] | None,
              generating: bool, summary: bool = False) -> tuple[tuple[ModelPolicy, ...], tuple[ModelPolicy, ...]]:
    what = ("all" if compile else "none") if isinstance(compile, bool) else compile
    if what not in COMPILE_CHOICES:
        raise GanzooError(f"compile={compile!r}: expected one of {', '.join(COMPILE_CHOICES)} (or True / False)")
    train = TRAIN_POLICIES + ((COMPILED_TRAIN,) if what == "all" else ())
    if onnxruntime is None:
        note = ort_note(device) if generating else None
        onnxruntime = note is None
        if note is not None and log:
            log(note)
    generate = GENERATE_POLICIES + (COMPILED_GENERATE if what != "none" else ()) + (ORT_GENERATE if onnxruntime else ())
    if summary:
        train = tuple(p for p in train if p.name in SUMMARY_POLICIES or p is COMPILED_TRAIN)
        generate = tuple(p for p in generate if p.name in SUMMARY_POLICIES)
    return train, generate


def bench_models(objectives: Sequence[str], generators: Sequence[str], *, device: str = "cpu", batch_size: int = 64,
                 rounds: int = 5, repeat: int = 3, warmup: int = 2, compile: bool | str = False,
                 onnxruntime: bool | None = None, log: Callable[[str], None] | None = None,
                 progress: bool | None = False, summary: bool = False, min_seconds: float = 0.0) -> list[Row]:
    """Each objective's training step and each generator's generation under every policy (``TRAIN_POLICIES``,
    ``GENERATE_POLICIES``, the compiled ones with ``compile`` (True or "all"; "generate": the generation ones only),
    and ONNX Runtime's, ``ORT_GENERATE``, with ``onnxruntime``; None: when onnxruntime is installed and ``device`` is
    the CPU, else ``log`` gets the reason; ``summary``: only ``SUMMARY_POLICIES``),
    each group timed in ``rounds`` interleaved rounds of ``repeat`` calls per row (generation: twice as many), and
    more rounds until ``min_seconds`` are timed (``time_interleaved``).
    ``log`` gets one line per step of the work; ``progress`` shows a bar on stderr (None: when it is a terminal)."""
    train_policies, generate_policies = _policies(compile, onnxruntime, device, log, bool(generators), summary)
    groups = [_Group(group=f"{name} train step", calls=repeat, cases=[
        _Case(name=mp.name, build=functools.partial(train_step, name, mp, device, batch_size),
              extra={"model": name, "batch": batch_size, "device": device}) for mp in train_policies])
        for name in objectives]
    groups += [_Group(group=f"{name} generate", calls=repeat * 2, batch=batch_size, cases=[
        _Case(name=mp.name, build=functools.partial(generate_step, name, mp, device, batch_size),
              extra={"model": name, "batch": batch_size, "device": device}, reference=mp is generate_policies[0])
        for mp in generate_policies])
        for name in generators]
    return _measure(groups, device=device, rounds=rounds, warmup=warmup, log=log, progress=progress,
                    min_seconds=min_seconds)


# -- official baselines --------------------------------------------------------------------------------------------


def list_baselines() -> list[Baseline]:
    """Every installed plugin's official baselines (the ``ganzoo_bench_baselines`` hook), sorted by name. A hook that
    fails, returns something other than ``Baseline`` objects, or repeats a name raises ``GanzooError`` naming the
    plugin."""
    from ganzoo_core._plugins import get_host

    found: dict[str, tuple[Baseline, str]] = {}
    for impl in get_host().pm.hook.ganzoo_bench_baselines.get_hookimpls():
        try:
            items = list(impl.function() or ())
        except Exception as err:
            raise GanzooError(f"plugin {impl.plugin_name!r}: ganzoo_bench_baselines failed ({type(err).__name__}: "
                              f"{' '.join(str(err).split())[:200]}); run 'ganzoo plugins' and fix or update it") from err
        for item in items:
            if not isinstance(item, Baseline):
                raise GanzooError(f"plugin {impl.plugin_name!r}: ganzoo_bench_baselines returned a "
                                  f"{type(item).__name__}, expected gz.Baseline objects")
            if item.name in found:
                raise GanzooError(f"baseline {item.name!r} comes from two plugins, {found[item.name][1]!r} and "
                                  f"{impl.plugin_name!r}; uninstall one of them")
            found[item.name] = (item, impl.plugin_name)
    return [found[name][0] for name in sorted(found)]


def find_baseline(name: str, baselines: Sequence[Baseline] | None = None) -> Baseline:
    """The baseline named ``name``: its own name (``FAMILY.official``), its family or its objective (or a name the
    registry resolves to that objective, such as the family's default)."""
    from ganzoo_core._api import get_entry

    known = list_baselines() if baselines is None else list(baselines)
    for b in known:
        if name in (b.name, b.objective, b.name.split(".", 1)[0]):
            return b
    try:
        resolved = get_entry("objective", name).name
    except GanzooError:
        resolved = None
    for b in known:
        if resolved is not None and b.objective == resolved:
            return b
    if not known:
        raise GanzooError(f"no official baseline for {name!r}: no installed plugin provides any (the "
                          "ganzoo_bench_baselines hook); install the family's plugin ('ganzoo plugins' lists those installed)")
    raise GanzooError(f"no official baseline for {name!r}; baselines: "
                      f"{', '.join(f'{b.name} ({b.objective})' for b in known)}")


def objective_generator(objective: str, overrides: Mapping[str, Any] | None = None
                        ) -> tuple[str, dict[str, Any]] | None:
    """The registry name of ``objective``'s first generator network and the config fields in which it differs from
    that entry's, so that generation rows time the network the training rows train; None when it has none."""
    from ganzoo_core._api import create, get_entry
    from ganzoo_core._entries import SPEC_ATTR

    built = create("objective", objective, **dict(overrides or {}))
    for net in built.networks.values():
        spec = getattr(net, SPEC_ATTR, None)
        if spec is None or spec[0] != "generator":
            continue
        entry, cfg = get_entry("generator", spec[1]), getattr(net, "cfg", None)
        changed: dict[str, Any] = {}
        if cfg is not None and entry.cfg is not None and attrs.has(type(cfg)) and type(cfg) is type(entry.cfg):
            changed = {f.name: getattr(cfg, f.name) for f in attrs.fields(type(cfg))
                       if getattr(cfg, f.name) != getattr(entry.cfg, f.name)}
        return spec[1], changed
    return None


def official_row_name(baseline: Baseline, what: str = "fp32 eager") -> str:
    """``official fp32 eager (pytorch/examples@77f55b9)``: the official row's name in a table."""
    return f"official {what} ({baseline.source.split()[0]})"


def bench_baselines(baselines: Sequence[Baseline], *, official: bool = True, device: str = "cpu",
                    batch_size: int | None = None, rounds: int = 5, repeat: int = 3, warmup: int = 2,
                    compile: bool | str = False, onnxruntime: bool | None = None, generate: bool = True,
                    log: Callable[[str], None] | None = None, progress: bool | None = False,
                    summary: bool = False, min_seconds: float = 0.0) -> list[Row]:
    """Per baseline, a training group and (with ``generate``, when the objective has a generator) a generation
    group, at ``batch_size`` or the baseline's documented one: with ``official`` the official iteration first
    (ratio 1.00), then ganzoo's engine on the same objective under each policy, as ``bench_models`` times them."""
    train_policies, generate_policies = _policies(compile, onnxruntime, device, log, generate, summary)
    groups: list[_Group] = []
    for b in baselines:
        n = batch_size or b.batch_size
        base = {"model": b.objective, "baseline": b.name, "batch": n, "device": device,
                "overrides": dict(b.overrides)}
        ref = {**base, "official": True, "source": b.source, "note": b.note}
        cases = [_Case(name=official_row_name(b), build=functools.partial(b.train_step, n, device, 0), extra=ref)]
        cases = cases if official else []
        cases += [_Case(name=mp.name, extra=base, build=functools.partial(
            train_step, b.objective, mp, device, n, 0, b.overrides)) for mp in train_policies]
        # the overrides are part of the name: an objective with other networks is not the registered one
        built = b.objective + (f" ({', '.join(f'{k}={v}' for k, v in b.overrides.items())})" if b.overrides else "")
        groups.append(_Group(group=f"{built} train step, batch {n}", calls=repeat, cases=cases))
        if not generate or (official and b.generate is None):
            continue
        found = objective_generator(b.objective, b.overrides)
        if found is None:
            continue
        g_name, g_over = found
        g_base = {**base, "model": g_name, "overrides": g_over}
        cases = [_Case(name=official_row_name(b, "fp32 eager generation"), extra={**ref, "model": g_name},
                       build=functools.partial(b.generate, n, device, 0))] if official and b.generate else []
        cases += [_Case(name=mp.name, extra=g_base, reference=mp is generate_policies[0], build=functools.partial(
            generate_step, g_name, mp, device, n, 0, g_over)) for mp in generate_policies]
        groups.append(_Group(group=f"{g_name} generate, batch {n}", calls=repeat * 2, batch=n, cases=cases))
    return _measure(groups, device=device, rounds=rounds, warmup=warmup, log=log, progress=progress,
                    min_seconds=min_seconds)


# -- the machine ---------------------------------------------------------------------------------------------------

CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")
"""The CPU flags that decide fp32 / bf16 speed on the CPU, recorded beside every result."""


def cpu_info() -> dict[str, Any]:
    """The CPU model (``lscpu``'s "Model name", else /proc/cpuinfo's) and which of ``CPU_FLAGS`` it has."""
    import platform
    import subprocess

    fields: dict[str, str] = {}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, env={"LC_ALL": "C"}).stdout
        fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}
    except (OSError, subprocess.SubprocessError):
        pass
    model, flags = fields.get("Model name", ""), fields.get("Flags", "")
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = value.strip()
    except OSError:
        pass
    have = set(flags.split())
    return {"cpu_model": model or platform.processor() or platform.machine(),
            "cpu_flags": {f: f in have for f in CPU_FLAGS}}


def matmul_gflops(device: str | torch.device = "cpu", *, n: int | None = None, repeat: int = 5) -> dict[str, Any]:
    """The fp32 and bf16 matrix-multiply rate on ``device`` with torch's current threads: an n x n x n product
    (1024 on the CPU, 4096 on a GPU), the best of ``repeat`` timed calls after two untimed ones, in GFLOP/s."""
    dev = torch.device(device)
    n = n or (4096 if dev.type == "cuda" else 1024)
    out: dict[str, Any] = {"n": n, "device": str(dev), "fp32": None, "bf16": None}
    if dev.type not in ("cpu", "cuda"):  # a device without real kernels (meta) has no rate to measure
        return out
    gen = torch.Generator().manual_seed(0)
    for name, dtype in DTYPES.items():
        a = torch.randn(n, n, generator=gen).to(dev, dtype)
        b = torch.randn(n, n, generator=gen).to(dev, dtype)
        best = min(time_call(lambda a=a, b=b: a @ b, dev, warmup=2, repeat=repeat))
        out[name] = round(2 * n**3 / (best / 1e3) / 1e9, 1) if best > 0 else None
    return out


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the system has none)."""
    import os

    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine_meta(device: str = "cpu") -> dict[str, Any]:
    """What decides the speed of a run, recorded before it: the CPU model and flags, the measured matmul rates on
    ``device``, torch's threads and the load average (``loadavg_before``; add ``loadavg_after`` when done)."""
    return {**cpu_info(), "matmul_gflops": matmul_gflops(device), "threads": torch.get_num_threads(),
            "loadavg_before": load_average()}


def describe_machine(meta: Mapping[str, Any]) -> str:
    """One line about the machine of a run, for the end of a printed table."""
    flags = ", ".join(f for f, on in meta.get("cpu_flags", {}).items() if on) or "none of " + ", ".join(CPU_FLAGS)
    mm = meta.get("matmul_gflops", {})
    loads = " -> ".join(f"{x[0]:.2f}" for x in (meta.get("loadavg_before"), meta.get("loadavg_after")) if x) or "?"
    return (f"machine: {meta.get('cpu_model', '?')} ({flags}); torch threads {meta.get('threads', '?')}; matmul "
            f"{mm.get('n', '?')}^3 on {mm.get('device', '?')}: fp32 {mm.get('fp32', '?')} / bf16 {mm.get('bf16', '?')} "
            f"GFLOP/s; load average (1 min) {loads}")


# -- output --------------------------------------------------------------------------------------------------------


def format_table(rows: Sequence[Row]) -> str:
    """Rows grouped as measured; the first row of each group is the reference (ratio 1.00). Generation groups with
    an output check (``output_parity``) get an ``out diff`` column and ``*`` on the fastest matching row."""
    width = max([len(r.name) for r in rows] + [14]) + 2
    lines: list[str] = []
    group = None
    for r in rows:
        if r.group != group:
            group = r.group
            checked = any("rel_diff" in q.extra for q in rows if q.group == group)
            lines += ["", f"{r.group}", f"  {'implementation / policy':<{width}}  {'ms':>9}  {'spread':>6}  {'x ref':>6}"
                      + ("  out diff" if checked else "")]
        name = r.name + (" *" if r.extra.get("fastest_matching") else "")
        diff = r.extra.get("rel_diff")
        lines.append(f"  {name:<{width}}  {r.ms:9.2f}  {r.spread:6.0%}  {r.ratio:6.2f}"
                     + (f"  {diff:8.2%}" if diff is not None else ""))
    return "\n".join(lines).lstrip("\n")


def compare_runs(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]],
                 estimators: Sequence[str] = ("ratio", "ratio_of_minima")) -> list[dict[str, Any]]:
    """Two runs' rows (``save_json``'s ``rows``) side by side: per row present in both (same group and name) and
    per estimator (``ratio``: the paired median; ``ratio_of_minima``: from ``extra``), both values and ``b / a - 1``.
    Each group's first row, the reference (ratio 1 by definition), is left out."""
    def value(row: Mapping[str, Any], key: str) -> float | None:
        got = row.get(key, row.get("extra", {}).get(key))
        return None if got is None else float(got)

    earlier = {(r["group"], r["name"]): r for r in a}
    references = {r["group"]: r["name"] for r in reversed(b)}  # each group's first row
    out = []
    for r in b:
        other = earlier.get((r["group"], r["name"]))
        if other is None or references[r["group"]] == r["name"]:
            continue
        entry: dict[str, Any] = {"group": r["group"], "name": r["name"]}
        for key in estimators:
            x, y = value(other, key), value(r, key)
            if x is not None and y is not None and x > 0:
                entry[key] = {"a": x, "b": y, "change": y / x - 1}
        out.append(entry)
    return out


def save_json(rows: Sequence[Row], path: Path, meta: Mapping[str, Any], *, overwrite: bool = True) -> Path:
    from ganzoo_core.checkpoints import atomic_path

    data = {"meta": dict(meta), "rows": [attrs.asdict(r) for r in rows]}
    with atomic_path(path, overwrite=overwrite, what="benchmark result") as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2, default=str))  # a config value JSON lacks: its text
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
