"""Every implementation of every op against its reference, generated from the op registry: forward and gradients
(second order where the op is a penalty), fp32 and bf16, channels_last inputs and odd sizes, on fresh random inputs.

A new op (``define_op``) or a new implementation (``register_op``) is tested here without new test code. Triton
kernels run in Triton's CPU interpreter here; on a CUDA machine the same cases also run on the GPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
import torch
from conftest import HOST
from torch import Tensor, nn

from ganzoo_core._plugins import use_host
from ganzoo_core.ops import Case, get_op_spec, list_op_specs, list_ops

with use_host(HOST):
    IMPLS = {spec.name: [i for i in list_ops(spec.name).get(spec.name, []) if i != "ref"] for spec in list_op_specs()}

CASES = {
    "fp32": Case(),
    "bf16": Case(dtype=torch.bfloat16),
    "channels_last": Case(channels_last=True),
    "odd": Case(shape="odd"),
}
QUICK = {"fp32", "bf16"}  # torch.compile recompiles per shape and setting: it gets the two main cases
SHAPE_CASES = {"fp32": Case(), "bf16": Case(dtype=torch.bfloat16), "bf16_cl": Case(dtype=torch.bfloat16,
                                                                                   channels_last=True)}


def _cases(spec: Any) -> dict[str, Case]:
    """CASES, and each of the spec's ``test_shapes`` in fp32, bf16 and bf16 channels_last."""
    return CASES | {f"{shape}-{name}": attrs.evolve(case, shape=shape) for shape in spec.test_shapes
                    for name, case in SHAPE_CASES.items()}


def _params() -> Iterator[Any]:
    for spec in list_op_specs():
        for impl in IMPLS[spec.name]:
            for variant in spec.variants:
                for case in _cases(spec):
                    if impl == "compiled" and (case not in QUICK or variant not in spec.variants[:2]):
                        continue
                    yield pytest.param(spec.name, impl, variant, case, id=f"{spec.name}-{impl}-{variant or 'x'}-{case}")


def _leaves(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Tensor]:
    found: list[Tensor] = []
    for value in [*args, *kwargs.values()]:
        if isinstance(value, Tensor) and value.requires_grad:
            found.append(value)
        elif isinstance(value, nn.Module):
            found += [p for p in value.parameters() if p.requires_grad]
    return found


def _outputs(out: Any) -> list[Tensor]:
    items = out if isinstance(out, (tuple, list)) else [out]
    return [t for t in items if isinstance(t, Tensor) and t.is_floating_point()]


def _run(op: str, impl: str, case: Case, seed: int) -> tuple[list[Tensor], list[Tensor | None]]:
    spec = get_op_spec(op)
    args, kwargs = spec.sample(case, torch.Generator().manual_seed(seed))
    out = _outputs(spec.call(*args, impl=impl, **kwargs))
    grads: list[Tensor | None] = []
    leaves = _leaves(args, kwargs)
    if spec.grad and case.requires_grad and leaves:
        gen = torch.Generator().manual_seed(seed + 1)
        weights = [torch.randn(o.shape, generator=gen).to(o.device) for o in out]  # not ones: every element counts
        loss = sum((o.float() * w).sum() for o, w in zip(out, weights))
        grads = list(torch.autograd.grad(loss, leaves, allow_unused=True))
    return out, grads


@pytest.mark.parametrize(("op", "impl", "variant", "case_name"), list(_params()))
def test_impl_matches_reference(op: str, impl: str, variant: str, case_name: str,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    if impl == "triton":
        pytest.importorskip("triton")
        if not torch.cuda.is_available():
            monkeypatch.setenv("TRITON_INTERPRET", "1")
    device = "cuda" if impl == "triton" and torch.cuda.is_available() else "cpu"
    case = attrs_evolve(_cases(get_op_spec(op))[case_name], variant=variant or get_op_spec(op).variants[0], device=device)
    seed = int.from_bytes(os.urandom(4), "little")  # fresh inputs every run; the seed is in the message
    ref_out, ref_grads = _run(op, "ref", case, seed)
    out, grads = _run(op, impl, case, seed)
    rtol, atol = get_op_spec(op).tol[case.dtype]
    where = f"{op}[{impl}] {variant} {case_name} seed={seed}"
    assert len(out) == len(ref_out), where
    for o, r in zip(out, ref_out):
        assert o.shape == r.shape and o.dtype == r.dtype, f"{where}: {o.shape}/{o.dtype} vs {r.shape}/{r.dtype}"
        if case.channels_last and r.ndim == 4 and r.is_contiguous(memory_format=torch.channels_last):
            assert o.is_contiguous(memory_format=torch.channels_last), f"{where}: output lost channels_last"
        torch.testing.assert_close(o.float(), r.float(), rtol=rtol, atol=atol, msg=lambda m: f"{where}: {m}")
    assert len(grads) == len(ref_grads), where
    if ref_grads:  # some gradients are legitimately zero (a bias under a piecewise-linear penalty), not all
        assert any(r is not None and torch.count_nonzero(r) > 0 for r in ref_grads), f"{where}: all-zero gradients"
    for i, (g, r) in enumerate(zip(grads, ref_grads)):
        assert (g is None) == (r is None), f"{where}: gradient {i} missing in one of them"
        if g is not None and r is not None:
            torch.testing.assert_close(g.float(), r.float(), rtol=rtol, atol=atol * 10,
                                       msg=lambda m, i=i: f"{where} grad {i}: {m}")


def attrs_evolve(case: Case, **changes: Any) -> Case:
    import attrs

    return attrs.evolve(case, **changes)


def test_every_op_has_a_reference_and_a_spec() -> None:
    with use_host(HOST):
        ops = list_ops()
    assert set(ops) == {spec.name for spec in list_op_specs()}
    for op, impls in ops.items():
        assert impls[0] == "ref", f"{op}: the reference must be registered (and listed first), got {impls}"
        assert len(impls) >= 2, f"{op} has only its reference"


def test_upsample_conv_auto_is_the_reference_in_fp32_and_subpixel_in_bf16() -> None:
    """``lowp`` (auto's pick): fp32 outputs to the bit of the models as written, the sub-pixel speed in bf16."""
    from ganzoo_core.ops import upsample_conv

    gen = torch.Generator().manual_seed(0)
    x, w = torch.randn(2, 8, 6, 6, generator=gen), torch.randn(5, 8, 3, 3, generator=gen)
    assert torch.equal(upsample_conv(x, w, impl="auto"), upsample_conv(x, w, impl="ref"))
    assert not torch.equal(upsample_conv(x, w, impl="subpixel"), upsample_conv(x, w, impl="ref"))
    xb, wb = x.bfloat16(), w.bfloat16()
    assert torch.equal(upsample_conv(xb, wb, impl="auto"), upsample_conv(xb, wb, impl="subpixel"))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(upsample_conv(x, w, impl="auto"), upsample_conv(x, w, impl="subpixel"))


@pytest.mark.parametrize("impl", ["gemm", "wgrad"])
@pytest.mark.parametrize("transposed", [False, True])
def test_conv_second_order_matches_the_reference(transposed: bool, impl: str) -> None:
    """A gradient penalty differentiates through the input gradient: the second order of the gemm form and of
    wgrad's backward (StarGAN's D at 128 px runs its last layers so) equals the library kernel's."""
    from ganzoo_core.ops import conv

    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 16, 2, 2, generator=gen)
    w0 = torch.randn((16, 12, 4, 4) if transposed else (12, 16, 4, 4), generator=gen) * 0.1
    b0 = torch.randn(12, generator=gen)
    out = {}
    for name in ("ref", impl):
        x, w, b = (t.clone().requires_grad_() for t in (x0, w0, b0))
        y = conv(x, w, b, stride=2, padding=1, transposed=transposed, impl=name)
        (gx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
        gx.square().sum().backward()
        out[name] = (gx.detach(), x.grad, w.grad, b.grad)
    for a, b in zip(out[impl], out["ref"]):  # fp32 sums in another order: rounding relative to the largest entry
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))


@pytest.mark.parametrize("transposed", [False, True])
def test_conv_small_takes_wgrad_under_autocast_with_fp32_master_gradients(transposed: bool) -> None:
    """Under bf16 autocast with fp32 weights (the training policy), ``small`` at a layer of few positions runs
    ``wgrad``: the output equals the reference's under autocast to bf16 rounding, and the weight and bias gradients
    reach the fp32 parameters in fp32."""
    from ganzoo_core.ops import conv
    from ganzoo_core.ops.conv import WGRAD_POSITIONS

    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(8, 64, 4, 4, generator=gen)  # 4x4 input (transposed) / 2x2 output (convolution) positions
    assert 4 <= WGRAD_POSITIONS
    w0 = torch.randn((64, 48, 4, 4) if transposed else (48, 64, 4, 4), generator=gen) * 0.05
    b0 = torch.randn(48, generator=gen)
    out = {}
    for name in ("ref", "small"):
        x, w, b = (t.clone().requires_grad_() for t in (x0, w0, b0))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = conv(x, w, b, stride=2, padding=1, transposed=transposed, impl=name)
        assert y.dtype == torch.bfloat16
        grad_fn = type(y.grad_fn).__name__
        y.float().square().sum().backward()
        assert w.grad is not None and w.grad.dtype == torch.float32 and b.grad.dtype == torch.float32
        out[name] = (y.detach().float(), x.grad, w.grad, b.grad, grad_fn)
    assert "WgradConv" in out["small"][4] and "WgradConv" not in out["ref"][4]
    for a, b in zip(out["small"][:4], out["ref"][:4]):
        torch.testing.assert_close(a, b, rtol=3e-2, atol=3e-2)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("transposed", [False, True])
def test_conv_small_runs_a_kernel_over_the_whole_input_as_one_linear_map(transposed: bool, channels_last: bool) -> None:
    """A 4x4 kernel over a 4x4 input (a discriminator's head) or a transposed one from 1x1 (a generator's first layer):
    ``small`` runs it as ``F.linear`` (no convolution in its graph) with the reference's output, memory format and
    first and second order gradients (a gradient penalty differentiates through a discriminator's head)."""
    from ganzoo_core.ops import conv

    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn((5, 16, 1, 1) if transposed else (5, 16, 4, 4), generator=gen)
    w0 = torch.randn((16, 12, 4, 4) if transposed else (12, 16, 4, 4), generator=gen) * 0.1
    b0 = torch.randn(12, generator=gen)
    if channels_last:
        x0, w0 = (t.contiguous(memory_format=torch.channels_last) for t in (x0, w0))
    out = {}
    for name in ("ref", "small"):
        x, w, b = (t.clone().requires_grad_() for t in (x0, w0, b0))
        y = conv(x, w, b, stride=1, padding=0, transposed=transposed, impl=name)
        assert y.shape == ((5, 12, 4, 4) if transposed else (5, 12, 1, 1))
        graph = type(y.grad_fn).__name__
        (gx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
        gx.square().sum().backward()
        out[name] = (y.detach(), gx.detach(), x.grad, w.grad, b.grad, graph,
                     y.is_contiguous(memory_format=torch.channels_last))
    assert "Convolution" in out["ref"][5] and "Convolution" not in out["small"][5], out["small"][5]
    assert out["small"][6] == out["ref"][6]
    for a, b in zip(out["small"][:5], out["ref"][:5]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))


def test_weight_casts_are_kept_for_one_autocast_block_and_redone_when_the_weight_changes() -> None:
    """``Policy.autocast`` keeps one cast per parameter (as autocast does for the library kernels): the same tensor
    for a second pass, a new one after an in-place update or with gradients switched off, none outside the block;
    the gradient of both passes reaches the fp32 parameter, as without the cache."""
    from ganzoo_core.ops._common import cast_weight
    from ganzoo_core.policy import Policy

    w = nn.Parameter(torch.randn(4, 3))
    x = torch.randn(2, 3)
    assert cast_weight(w, torch.bfloat16) is not cast_weight(w, torch.bfloat16)  # no block: nothing kept
    with Policy(precision="bf16").autocast(torch.device("cpu")):
        a, b = cast_weight(w, torch.bfloat16), cast_weight(w, torch.bfloat16)
        assert a is b and a.dtype == torch.bfloat16 and a.requires_grad
        with torch.no_grad():
            off = cast_weight(w, torch.bfloat16)
            assert off is not a and not off.requires_grad
        loss = (x.bfloat16() @ a.t()).float().sum() + (2 * x.bfloat16() @ b.t()).float().sum()
        with torch.no_grad():
            w.add_(1.0)  # an optimizer step: the version counter moves
        assert cast_weight(w, torch.bfloat16) is not a
    loss.backward()
    expected = 3 * x.bfloat16().float().sum(0).expand(4, 3)
    assert w.grad is not None and w.grad.dtype == torch.float32
    torch.testing.assert_close(w.grad, expected, rtol=1e-2, atol=1e-2)


CONV_MODULE = __import__("importlib").import_module("ganzoo_core.ops.conv")  # ``ops.conv`` is the function


@pytest.mark.parametrize(("kernel", "stride", "padding", "output_padding", "size"), [
    (4, 2, 1, 0, (5, 7)), (4, 2, 0, 0, (3, 3)), (4, 2, 2, 1, (4, 4)), (6, 3, 1, 0, (4, 5)), (4, 4, 0, 0, (3, 3)),
    (2, 2, 0, 0, (4, 4)), (4, 2, 3, 1, (6, 6)), (6, 2, 2, 0, (5, 5)), (3, 2, 1, 1, (4, 4))])
def test_conv_subpixel_is_the_transposed_convolution_in_float64(kernel: int, stride: int, padding: int,
                                                                  output_padding: int, size: tuple[int, int]) -> None:
    """Each phase of the output as one stride-1 convolution: the reference's output and gradients to float64
    rounding wherever the stride divides the kernel (a 3x3 kernel at stride 2 falls back to the reference)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, *size, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 3, kernel, kernel, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)
    conf = ((stride, stride), (padding, padding), (output_padding, output_padding))
    assert CONV_MODULE.splits_into_phases(x, w, True, *conf) == (kernel % stride == 0)
    ref = torch.nn.functional.conv_transpose2d(x, w, b, stride, padding, output_padding)
    y = CONV_MODULE._conv_subpixel(x, w, b, *conf, True)
    assert y.shape == ref.shape
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    for a, r in zip(torch.autograd.grad(y, (x, w, b), g), torch.autograd.grad(ref, (x, w, b), g)):
        torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-12)
    xc = x.detach().contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert CONV_MODULE._conv_subpixel(xc, w, None, *conf, True).is_contiguous(memory_format=torch.channels_last)


def test_conv_small_takes_subpixel_for_bf16_inference_on_amx_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """``small`` runs ``subpixel`` for a transposed layer to an image (<= 4 channels) or from deep channels at few
    positions, in bf16 without gradients, on a CPU with AMX; not with gradients, in fp32, without AMX, or for a
    layer of many positions and few channels."""
    ran: list[tuple[int, ...]] = []
    real = CONV_MODULE._conv_subpixel
    monkeypatch.setattr(CONV_MODULE, "_conv_subpixel", lambda x, *a: ran.append(tuple(x.shape)) or real(x, *a))

    def run(x: Tensor, cout: int, grad: bool = False) -> None:
        w = torch.randn(x.shape[1], cout, 4, 4, dtype=x.dtype) * 0.05
        with torch.set_grad_enabled(grad):
            y = CONV_MODULE._conv_small(x.requires_grad_(grad), w, None, (2, 2), (1, 1), (0, 0), True)
        with torch.autocast("cpu", enabled=False):
            ref = torch.nn.functional.conv_transpose2d(x.detach().float(), w.float(), None, 2, 1)
        torch.testing.assert_close(y.detach().float(), ref, rtol=3e-2, atol=3e-2)

    image, deep, wide = (torch.randn(2, 8, 8, 8), torch.randn(2, 256, 4, 4), torch.randn(1, 64, 32, 32))
    monkeypatch.setattr(CONV_MODULE, "_AMX", True)
    run(image.bfloat16(), 3)
    run(deep.bfloat16(), 8)
    assert ran == [(2, 8, 8, 8), (2, 256, 4, 4)]
    run(image.bfloat16(), 3, grad=True)  # training: the library kernel's backward wins there
    run(image, 3)  # fp32
    run(wide.bfloat16(), 16)  # many positions, few channels: the interleaving copies cost more than they save
    with torch.autocast("cpu", dtype=torch.bfloat16):
        run(image, 3)  # bf16 under autocast, fp32 weights: taken
    assert len(ran) == 3
    monkeypatch.setattr(CONV_MODULE, "_AMX", False)
    run(image.bfloat16(), 3)
    assert len(ran) == 3


def test_subpixel_phase_weight_is_kept_for_inference_until_the_weight_changes() -> None:
    """Without gradients the rearranged weight is kept per weight tensor (and dtype, layout): the same tensor on a
    second call, a new one after an in-place update (the output follows it), none once the weight is freed; with
    gradients it is rebuilt each call, so the gradient reaches the weight."""
    import gc

    w = nn.Parameter(torch.randn(6, 4, 4, 4))
    x = torch.randn(2, 6, 5, 5)
    cache = CONV_MODULE._phase_weights
    with torch.no_grad():
        a = CONV_MODULE._phase_weight_for(w, 2, False, torch.bfloat16)
        assert CONV_MODULE._phase_weight_for(w, 2, False, torch.bfloat16) is a and a.dtype == torch.bfloat16
        assert CONV_MODULE._phase_weight_for(w, 2, False, torch.float32) is not a  # another dtype: its own entry
        w.mul_(-1.0)
        y = CONV_MODULE._conv_subpixel(x, w, None, (2, 2), (1, 1), (0, 0), True)
    torch.testing.assert_close(y, torch.nn.functional.conv_transpose2d(x, w.detach(), None, 2, 1))
    assert CONV_MODULE._phase_weight_for(w, 2, False, torch.float32).requires_grad
    key = id(w)
    assert key in cache
    del w, a
    gc.collect()
    assert key not in cache
    with torch.inference_mode():  # weights made in inference mode: no version counter, so nothing is kept
        wi, xi = torch.randn(6, 4, 4, 4), torch.randn(2, 6, 5, 5)
        y = CONV_MODULE._conv_subpixel(xi, wi, None, (2, 2), (1, 1), (0, 0), True)
        torch.testing.assert_close(y, torch.nn.functional.conv_transpose2d(xi, wi, None, 2, 1))
        assert id(wi) not in cache
