"""The per-layer roofline of a family's official training iteration: what precision can buy on this machine.

One official iteration (a whole cycle: StarGAN's 5 D steps and 1 G step) runs once with a forward pre-hook on every
module, which records each convolution, transposed convolution and linear layer it calls: the layer, its input shape,
and which gradients the backward will compute (the input's, where it requires one; the weight's, unless the network
is frozen in that phase). Each distinct call is then timed alone, forward and backward as the iteration runs it, in
fp32 (NCHW, the official code) and in bf16 (bf16 weights and input, channels_last: the fastest the hardware offers,
without autocast's casts), the two interleaved in rounds (``bench.time_interleaved``, paired ratios).

Beside the times each layer gets its FLOPs (2 per multiply-add: the forward, the input gradient and the weight
gradient each do the layer's multiply-adds once), the bytes it must move at least (input, weights, output; in the
backward also the output gradient, the input and weight gradients), its arithmetic intensity, and the attainable rate
``min(peak, intensity × bandwidth)`` of the machine (peaks: ``bench.matmul_gflops``; bandwidth: ``stream_gbs``).

Convolutions and transposed convolutions are timed a third time, in bf16 channels_last through ganzoo's ``conv``
op (``gz.ops.Conv2d`` / ``ConvTranspose2d``, ``impl="auto"``: the matrix-product form where weights outnumber
activations), the layer's kernel under ganzoo's fast policies; a layer's best bf16 time is the faster of the two.

The sums bound the whole iteration: ``layers_ratio`` = Σ fp32 / Σ best bf16 is what bf16 buys on these layers, and
``ceiling`` = (official iteration time) / Σ best bf16 is the largest speed-up over the official iteration any policy
can reach with these layer kernels even if everything else in the iteration (norms, activations, losses, the
optimizer) took no time at all (``ceiling_torch``: with PyTorch's kernels alone). A ceiling below a target says
that the target cannot be met on this machine by these kernels. The official generation (eval mode, no gradients)
gets the same treatment, with forward passes only. Layer work that runs outside a module's forward (the second-order
pass of a gradient penalty) is not recorded: it is counted in the official time, not in the layers, so the ceiling
stays an upper bound.

That ceiling bounds any code that does the official layer work. ganzoo does less where the result is the same (no
weight gradients for a network the phase does not update: pytorch/examples' DCGAN computes D's in its G step and
discards them), so its own iteration (``bench.train_step`` at fp32 with reference ops) is recorded the same way and
its layer calls timed (the calls the official iteration shares are timed once): ``ceiling_ganzoo`` = (official
iteration time) / Σ best bf16 of ganzoo's layer calls is the bound for ganzoo's policies.
"""

from __future__ import annotations

import copy
import functools
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import torch
from torch import Tensor, nn

from ganzoo_core.errors import GanzooError
from ganzoo_core.hookspecs import Baseline
from ganzoo_core.ops.upsample_conv import UpsampleConv2d

# ganzoo's nearest-2x-upsample + 3x3 conv is one module (StackGAN's blocks): recorded with the upsampled conv's work
LAYER_TYPES = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, UpsampleConv2d)


@attrs.frozen(kw_only=True)
class LayerCall:
    """One distinct layer call of an iteration: the layer (its description), input shape, gradients, count."""

    layer: str  # "Conv2d 256->256 k3 s1 p0"
    shape: tuple[int, ...]  # the input's shape
    input_grad: bool  # the backward computes the input's gradient
    weight_grad: bool  # the backward computes the weight's (and bias's) gradient
    calls: int  # how often the iteration makes this call
    macs: int  # multiply-adds of one forward
    params: int  # weights and bias
    out_numel: int  # elements of one output


def describe(module: nn.Module) -> str:
    """A layer's type and configuration, e.g. ``Conv2d 256->256 k3 s1 p0``, with what is not the default named
    after it (``no bias``, ``g2``, ``d2``, ``op1``): layers that describe alike compute alike, so one is timed for
    all of them."""
    extra = "" if getattr(module, "bias", None) is not None else " no bias"
    if isinstance(module, nn.Linear):
        return f"Linear {module.in_features}->{module.out_features}{extra}"
    if isinstance(module, UpsampleConv2d):
        return f"UpsampleConv2d {module.in_channels}->{module.out_channels} k3 s1 p1{extra}"
    assert isinstance(module, (nn.Conv2d, nn.ConvTranspose2d))

    def fmt(v: Any) -> str:
        v = tuple(v) if isinstance(v, (tuple, list)) else (v,)
        return f"{v[0]}" if len(set(v)) == 1 else "x".join(map(str, v))

    k, s, p = (fmt(v) for v in (module.kernel_size, module.stride, module.padding))
    for tag, value, default in (("g", module.groups, 1), ("d", module.dilation, 1),
                                ("op", getattr(module, "output_padding", 0), 0)):
        if fmt(value) != str(default):
            extra += f" {tag}{fmt(value)}"
    return f"{type(module).__name__} {module.in_channels}->{module.out_channels} k{k} s{s} p{p}{extra}"


def _macs(module: nn.Module, x_shape: Sequence[int], out_shape: Sequence[int]) -> int:
    if isinstance(module, nn.Linear):
        return math.prod(out_shape) * module.in_features
    w = module.weight  # type: ignore[union-attr]
    if isinstance(module, nn.ConvTranspose2d):  # every input element meets every output channel's kernel
        return math.prod(x_shape) * w.shape[1] * math.prod(w.shape[2:])
    return math.prod(out_shape) * math.prod(w.shape[1:])  # Conv2d: every output element sums C_in/g · kh · kw


def record_layers(step: Callable[[], Any], calls: int = 1) -> tuple[list[LayerCall], dict[str, nn.Module]]:
    """Run ``step`` ``calls`` times and record its layer calls (see the module docstring); also a copy of one module
    per distinct layer, to time alone. A call counts its backward only when one reaches it: a hook on its output
    sees the gradient (StarGAN's D step runs G with gradients on, then detaches the fake: forward only)."""
    made: list[dict[str, Any]] = []
    modules: dict[str, nn.Module] = {}

    def hook(module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        if not isinstance(module, LAYER_TYPES) or not args or not isinstance(args[0], Tensor):
            return
        x = args[0]
        grad = torch.is_grad_enabled()
        call = {"layer": describe(module), "shape": tuple(x.shape), "input_grad": grad and x.requires_grad,
                "weight_grad": grad and module.weight.requires_grad, "ran": False, "out_shape": tuple(out.shape),
                "module": module}
        if isinstance(out, Tensor) and out.requires_grad:
            out.register_hook(lambda g, call=call: call.__setitem__("ran", True))
        made.append(call)
        modules.setdefault(call["layer"], copy.deepcopy(module).float().requires_grad_(True))

    handle = nn.modules.module.register_module_forward_hook(hook)
    try:
        for _ in range(calls):
            step()
    finally:
        handle.remove()
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for c in made:
        key = (c["layer"], c["shape"], c["input_grad"] and c["ran"], c["weight_grad"] and c["ran"])
        if key not in seen:
            seen[key] = {"calls": 0, "macs": _macs(c["module"], c["shape"], c["out_shape"]),
                         "out": math.prod(c["out_shape"]), "params": sum(p.numel() for p in c["module"].parameters())}
        seen[key]["calls"] += 1
    found = [LayerCall(layer=k[0], shape=k[1], input_grad=k[2], weight_grad=k[3], calls=v["calls"], macs=v["macs"],
                       params=v["params"], out_numel=v["out"]) for k, v in seen.items()]
    return found, modules


def flops(call: LayerCall) -> float:
    """FLOPs of one call, forward and the backward it needs."""
    return 2.0 * call.macs * (1 + call.input_grad + call.weight_grad)


def min_bytes(call: LayerCall, elem: int) -> float:
    """Bytes one call must move at least with ``elem``-byte elements (each tensor read or written once)."""
    x, w, y = math.prod(call.shape), call.params, call.out_numel
    total = x + w + y  # forward
    if call.input_grad or call.weight_grad:
        total += y  # the output gradient
        total += (x + w) if call.input_grad else 0  # read W, write dX
        total += (x + w) if call.weight_grad else 0  # read X, write dW
    return float(total * elem)


def stream_gbs(device: str | torch.device = "cpu", mbytes: int = 256, repeat: int = 5) -> float:
    """Memory bandwidth in GB/s: a copy of ``mbytes`` MB (read + write), the best of ``repeat``."""
    from ganzoo_core.bench import time_call

    dev = torch.device(device)
    src = torch.ones(mbytes * 2**20 // 4, device=dev)
    dst = torch.empty_like(src)
    best = min(time_call(lambda: dst.copy_(src), dev, warmup=1, repeat=repeat))
    return 2 * src.numel() * 4 / (best / 1e3) / 1e9


def layer_step(module: nn.Module, call: LayerCall, dtype: torch.dtype, channels_last: bool,
               device: str = "cpu", seed: int = 0) -> Callable[[], None]:
    """One call of ``module`` as the iteration makes it (forward, and the backward it needs), in ``dtype``."""
    gen = torch.Generator().manual_seed(seed)
    m = copy.deepcopy(module).to(device, dtype).requires_grad_(call.weight_grad)
    x = torch.randn(call.shape, generator=gen).to(device, dtype)
    if channels_last and x.ndim == 4:
        m = m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(call.input_grad)
    backward = call.input_grad or call.weight_grad
    with torch.no_grad():
        dy = torch.randn_like(m(x)) if backward else None

    def run() -> None:
        if not backward:
            with torch.no_grad():
                m(x)
            return
        y = m(x)
        y.backward(dy)
        x.grad = None
        for p in m.parameters():
            p.grad = None

    run.module, run.input = m, x  # type: ignore[attr-defined]  # what it runs on, for tests
    return run


def ganzoo_layer(module: nn.Module) -> nn.Module | None:
    """``module`` as ganzoo's ``conv`` op runs it (``gz.ops.Conv2d`` / ``ConvTranspose2d``, ``impl="auto"``, the same
    weights; an ``UpsampleConv2d`` on its ``"auto"`` implementation), or None: a linear layer, or a convolution the op
    does not take (groups, dilation, padding modes)."""
    from ganzoo_core.errors import ShapeError
    from ganzoo_core.ops.conv import Conv2d, ConvTranspose2d

    if isinstance(module, UpsampleConv2d):  # already ganzoo's op: its own fastest implementation
        new_op = copy.deepcopy(module)
        new_op.impl = "auto"
        new_op.refresh_impl()
        return new_op
    if not isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        return None
    common = {"stride": module.stride, "padding": module.padding, "groups": module.groups,
              "dilation": module.dilation, "bias": module.bias is not None}
    try:
        if isinstance(module, nn.ConvTranspose2d):
            new: nn.Module = ConvTranspose2d(module.in_channels, module.out_channels, module.kernel_size,
                                             output_padding=module.output_padding, **common)
        else:
            new = Conv2d(module.in_channels, module.out_channels, module.kernel_size,
                         padding_mode=module.padding_mode, **common)
    except ShapeError:
        return None
    new.load_state_dict(module.state_dict())
    return new


@attrs.frozen(kw_only=True)
class RooflineRow:
    call: LayerCall
    fp32_ms: float  # per engine step: one call's median x its calls per step
    bf16_ms: float  # PyTorch's layer
    ops_ms: float | None  # ganzoo's conv op in bf16 channels_last (None: a layer it does not run)
    ratio: float  # fp32 / best bf16, median of the per-round ratios
    gflop: float  # per iteration
    intensity: float  # FLOP per byte at fp32 (bf16: twice that)
    attainable_fp32: float  # GFLOP/s: min(peak, intensity x bandwidth)
    attainable_bf16: float


def roofline(baseline: Baseline, *, device: str = "cpu", batch_size: int | None = None, rounds: int = 3,
             warmup: int = 1, machine: Mapping[str, Any] | None = None,
             log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The per-layer roofline of ``baseline``'s official iteration (see the module docstring), as a JSON-ready dict:
    ``rows`` (one per distinct layer call), ``totals``, the machine's peaks and bandwidth; and, when the baseline
    has an official generation, the same for it under ``generate`` (eval mode, no gradients: forward passes)."""
    from ganzoo_core._api import create
    from ganzoo_core.bench import matmul_gflops, phase_cycle

    n = batch_size or baseline.batch_size
    cycle = phase_cycle(create("objective", baseline.objective, **dict(baseline.overrides)))
    peaks = (machine or {}).get("matmul_gflops") or matmul_gflops(device)
    bandwidth = stream_gbs(device)
    start = time.perf_counter()
    if log:
        log(f"{baseline.name}: recording the layers of one iteration ({cycle} call(s) of the official step)")
    bound = functools.partial(_bound, device=device, rounds=rounds, warmup=warmup, peaks=peaks, bandwidth=bandwidth,
                              log=log)
    memo: dict[tuple[Any, ...], _Timed] = {}
    rows, totals = bound(baseline.name, baseline.train_step(n, device, 0), cycle, memo=memo)
    if log:
        log(f"{baseline.name}: recording the layers of ganzoo's iteration ({baseline.objective}, fp32, reference ops)")
    ours = _ganzoo_step(baseline, n, device)
    o_rows, o_totals = bound(baseline.objective, ours, cycle, memo=memo, official_ms=totals["official_ms"])
    totals |= {"ganzoo_layers_bf16_ms": o_totals["layers_bf16_ms"], "ganzoo_gflop": o_totals["gflop"],
               "ceiling_ganzoo": o_totals["ceiling"]}
    result = {"baseline": baseline.name, "objective": baseline.objective, "batch": n, "cycle": cycle,
              "peak_gflops": {"fp32": peaks["fp32"], "bf16": peaks["bf16"]}, "bandwidth_gbs": round(bandwidth, 1),
              "totals": totals, "rows": rows, "ganzoo_rows": o_rows}
    if baseline.generate is not None:
        if log:
            log(f"{baseline.name}: recording the layers of one official generation")
        g_rows, g_totals = bound(baseline.name, baseline.generate(n, device, 0), 1)
        result["generate"] = {"totals": g_totals, "rows": g_rows}
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


@attrs.frozen
class _Timed:
    """One distinct call timed alone: per-call medians (ms) and the median paired fp32 / best bf16 ratio."""

    fp32: float
    bf16: float
    ops: float | None
    ratio: float


def _ganzoo_step(baseline: Baseline, batch: int, device: str) -> Callable[[], Any]:
    """ganzoo's iteration of the family: the engine's step of ``baseline.objective`` at fp32 with reference ops."""
    from ganzoo_core.bench import ModelPolicy, train_step

    return train_step(baseline.objective, ModelPolicy(name="fp32 eager, reference ops", ops="ref"), device, batch,
                      0, overrides=baseline.overrides)


def _plain(module: nn.Module) -> nn.Module:
    """``module`` on PyTorch's kernels: a ganzoo op module (``AutoImpl``) set to its reference, others as they are."""
    if hasattr(module, "refresh_impl") and hasattr(module, "impl"):
        module = copy.deepcopy(module)
        module.impl = "ref"
        module.refresh_impl()
    return module


def _bound(name: str, step: Callable[[], Any], calls_per_iteration: int, *, device: str, rounds: int, warmup: int,
           peaks: Mapping[str, Any], bandwidth: float, log: Callable[[str], None] | None,
           memo: dict[tuple[Any, ...], _Timed] | None = None, official_ms: float | None = None
           ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows and totals of one callable (an iteration of ``calls_per_iteration`` calls): the official code's,
    timed as a whole for ``official_ms`` unless that is given (ganzoo's iteration is bounded against the official
    time). Calls already in ``memo`` are not timed again."""
    from ganzoo_core.bench import time_interleaved

    memo = {} if memo is None else memo
    step()  # the first call may build lazily (image pools, optimizer state)
    calls, modules = record_layers(step, calls_per_iteration)
    if not calls:
        raise GanzooError(f"{name}: the iteration calls no Conv2d, ConvTranspose2d or Linear layer; nothing to bound")
    if official_ms is None:
        official_ms = _official_ms(step, calls_per_iteration, device, rounds)
    rows = []
    for i, call in enumerate(calls):
        key = (call.layer, call.shape, call.input_grad, call.weight_grad)
        if key not in memo:
            if log:
                log(f"  {call.layer} on {list(call.shape)} x{call.calls} ({i + 1}/{len(calls)})")
            module = _plain(modules[call.layer])
            fns = [layer_step(module, call, torch.float32, False, device),
                   layer_step(module, call, torch.bfloat16, True, device)]
            if (ours := ganzoo_layer(module)) is not None:
                fns.append(layer_step(ours, call, torch.bfloat16, True, device))
            samples = time_interleaved(fns, device, rounds=rounds, calls=1, warmup=warmup)
            per_round = [[statistics.median(s) for s in row] for row in samples]
            fp32, bf16, *ops = (statistics.median(r) for r in per_round)
            memo[key] = _Timed(fp32, bf16, ops[0] if ops else None,
                               statistics.median(a / min(b) for a, *b in zip(*per_round)))
        t, per_step = memo[key], call.calls / calls_per_iteration
        f = flops(call) * per_step
        intensity = flops(call) / min_bytes(call, 4)
        rows.append(RooflineRow(call=call, fp32_ms=t.fp32 * per_step, bf16_ms=t.bf16 * per_step,
                                ops_ms=None if t.ops is None else t.ops * per_step, ratio=t.ratio,
                                gflop=f / 1e9, intensity=intensity,
                                attainable_fp32=min(peaks["fp32"] or math.inf, intensity * bandwidth),
                                attainable_bf16=min(peaks["bf16"] or math.inf, 2 * intensity * bandwidth)))
    rows.sort(key=lambda r: -r.fp32_ms)
    fp32_sum, torch_sum = sum(r.fp32_ms for r in rows), sum(r.bf16_ms for r in rows)
    bf16_sum = sum(_best(r) for r in rows)
    totals = {"official_ms": official_ms, "layers_fp32_ms": fp32_sum, "layers_bf16_ms": bf16_sum,
              "layers_bf16_torch_ms": torch_sum, "layers_share": fp32_sum / official_ms,
              "layers_ratio": fp32_sum / bf16_sum, "ceiling": official_ms / bf16_sum,
              "ceiling_torch": official_ms / torch_sum, "gflop": sum(r.gflop for r in rows)}
    return [_row_dict(r) for r in rows], totals


def _best(r: RooflineRow) -> float:
    """A layer's best bf16 time: PyTorch's kernel or ganzoo's conv op, whichever is faster."""
    return r.bf16_ms if r.ops_ms is None else min(r.bf16_ms, r.ops_ms)


def _official_ms(step: Callable[[], Any], cycle: int, device: str, rounds: int) -> float:
    """Milliseconds of one official iteration: the median of ``rounds`` whole cycles (per engine step)."""
    from ganzoo_core.bench import time_call

    times = time_call(lambda: [step() for _ in range(cycle)], torch.device(device), warmup=0, repeat=rounds)
    return statistics.median(times) / cycle


def _row_dict(r: RooflineRow) -> dict[str, Any]:
    c = r.call
    return {"layer": c.layer, "input": list(c.shape), "grads": _grads(c), "calls": c.calls,
            "gflop": round(r.gflop, 6), "intensity": round(r.intensity, 1), "fp32_ms": round(r.fp32_ms, 2),
            "bf16_ms": round(r.bf16_ms, 2), "ops_ms": None if r.ops_ms is None else round(r.ops_ms, 2),
            "best_bf16_ms": round(_best(r), 2), "ratio": round(r.ratio, 3),
            "fp32_gflops": round(r.gflop / (r.fp32_ms / 1e3), 1) if r.fp32_ms else None,
            "bf16_gflops": round(r.gflop / (_best(r) / 1e3), 1) if _best(r) else None,
            "attainable_fp32": round(r.attainable_fp32, 1), "attainable_bf16": round(r.attainable_bf16, 1)}


def _grads(c: LayerCall) -> str:
    return "+".join(["fwd"] + ["dX"] * c.input_grad + ["dW"] * c.weight_grad)


def format_roofline(result: Mapping[str, Any], top: int = 12) -> str:
    """A family's roofline as text: its heaviest layers, then the totals and the ceiling."""
    t = result["totals"]
    lines = [f"{result['baseline']} ({result['objective']}, batch {result['batch']}): per-layer roofline of the "
             f"official iteration",
             f"  {'layer':<34} {'input':<18} {'pass':<10} {'n':>3} {'GFLOP':>7} {'F/B':>5} {'fp32 ms':>8} "
             f"{'GF/s':>6} {'bf16 ms':>8} {'ops ms':>7} {'GF/s':>6} {'x':>5}"]
    for r in result["rows"][:top]:
        ops = "-" if r.get("ops_ms") is None else f"{r['ops_ms']:.1f}"
        lines.append(f"  {r['layer']:<34} {'x'.join(map(str, r['input'])):<18} {r['grads']:<10} {r['calls']:>3} "
                     f"{r['gflop']:7.2f} {r['intensity']:5.0f} {r['fp32_ms']:8.1f} {r['fp32_gflops'] or 0:6.0f} "
                     f"{r['bf16_ms']:8.1f} {ops:>7} {r['bf16_gflops'] or 0:6.0f} {r['ratio']:5.2f}")
    rest = result["rows"][top:]
    if rest:
        lines.append(f"  ... {len(rest)} more layer calls: fp32 {sum(r['fp32_ms'] for r in rest):.1f} ms, best bf16 "
                     f"{sum(r['best_bf16_ms'] for r in rest):.1f} ms")
    lines.append(f"  official iteration {t['official_ms']:.0f} ms; these layers {t['layers_fp32_ms']:.0f} ms in fp32 "
                 f"({t['layers_share']:.0%} of it), {t['layers_bf16_ms']:.0f} ms in bf16 ({t['layers_ratio']:.2f}x); "
                 f"ceiling over the official iteration with everything else free: {t['ceiling']:.2f}x "
                 f"(PyTorch's kernels alone: {t['ceiling_torch']:.2f}x)")
    if "ceiling_ganzoo" in t:
        lines.append(f"  ganzoo's iteration ({result['objective']}): {t['ganzoo_gflop']:.0f} GFLOP of layer work against "
                     f"the official {t['gflop']:.0f}, {t['ganzoo_layers_bf16_ms']:.0f} ms in bf16; ceiling for "
                     f"ganzoo's policies: {t['ceiling_ganzoo']:.2f}x")
    if "generate" in result:
        g = result["generate"]["totals"]
        lines.append(f"  official generation {g['official_ms']:.1f} ms; its layers {g['layers_fp32_ms']:.1f} ms in fp32 "
                     f"({g['layers_share']:.0%}), {g['layers_bf16_ms']:.1f} ms in bf16 ({g['layers_ratio']:.2f}x); "
                     f"ceiling: {g['ceiling']:.2f}x")
    lines.append(f"  machine peaks: fp32 {result['peak_gflops']['fp32']} / bf16 {result['peak_gflops']['bf16']} "
                 f"GFLOP/s matmul, {result['bandwidth_gbs']} GB/s copy; F/B = FLOP per byte at fp32; bf16 ms: "
                 f"PyTorch's layer, ops ms: ganzoo's conv op, GF/s and x: the faster of the two")
    return "\n".join(lines)
