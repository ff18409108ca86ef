"""norm_act beyond the generated parity tests: running statistics and ``num_batches_tracked`` as torch updates them,
the modules with BatchNorm2d's / InstanceNorm2d's names, second-order gradients (WGAN-GP through a norm layer), what
the fused backward saves, and argument errors."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import HOST
from torch import Tensor, nn

from ganzoo_core._plugins import use_host
from ganzoo_core.errors import ShapeError
from ganzoo_core.ops import BatchNormAct2d, InstanceNormAct2d, list_ops, norm_act

with use_host(HOST):
    IMPLS = list_ops("norm_act")["norm_act"]  # every implementation that runs on CPU (Triton in its interpreter)
SECOND_ORDER = [i for i in IMPLS if i not in ("ref", "compiled")]  # inductor compiles no double backward


@pytest.fixture(autouse=True)
def _triton_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    if not torch.cuda.is_available():
        monkeypatch.setenv("TRITON_INTERPRET", "1")


def _skip_unavailable(impl: str) -> None:
    if impl == "triton":
        pytest.importorskip("triton")


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", ["batch", "instance"])
def test_running_statistics_update_as_torch_does(impl: str, kind: str) -> None:
    _skip_unavailable(impl)
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 6) * 2 + 1
    rm_ref, rv_ref = torch.randn(3) * 0.1, torch.rand(3) + 0.5
    rm, rv = rm_ref.clone(), rv_ref.clone()
    w, b = torch.rand(3) + 0.5, torch.randn(3)
    if kind == "batch":
        expected = torch.relu(F.batch_norm(x, rm_ref, rv_ref, w, b, True, 0.3, 1e-5))
    else:
        expected = torch.relu(F.instance_norm(x, rm_ref, rv_ref, w, b, True, 0.3, 1e-5))
    got = norm_act(x, w, b, rm, rv, kind=kind, training=True, momentum=0.3, act="relu", impl=impl)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(rm, rm_ref)
    torch.testing.assert_close(rv, rv_ref)
    before = rm.clone(), rv.clone()
    norm_act(x, w, b, rm, rv, kind=kind, training=False, act="relu", impl=impl)  # eval: buffers untouched
    assert torch.equal(rm, before[0]) and torch.equal(rv, before[1])


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnormact_matches_batchnorm2d_then_activation(impl: str, momentum: float | None) -> None:
    """Outputs, gradients, running statistics and num_batches_tracked over training steps, then eval; momentum=None
    is BatchNorm2d's cumulative average."""
    _skip_unavailable(impl)
    torch.manual_seed(1)
    plain = nn.Sequential(nn.BatchNorm2d(8, momentum=momentum), nn.LeakyReLU(0.2))
    fused = BatchNormAct2d(8, momentum=momentum, act="lrelu", alpha=0.2, impl=impl)
    assert set(fused.state_dict()) == {k.removeprefix("0.") for k in plain.state_dict()}
    with torch.no_grad():
        plain[0].weight.uniform_(0.5, 1.5)
        plain[0].bias.normal_(0, 0.2)
    fused.load_state_dict({k.removeprefix("0."): v for k, v in plain.state_dict().items()})
    for step, mode in enumerate((True, True, True, False)):
        plain.train(mode), fused.train(mode)
        x = torch.randn(4, 8, 6, 6) * (1 + step) + step
        dy = torch.randn(4, 8, 6, 6)
        outs = [m(x.clone().requires_grad_()) for m in (plain, fused)]
        torch.testing.assert_close(outs[1], outs[0], rtol=1e-4, atol=1e-5)
        grads = [torch.autograd.grad(o, [*m.parameters()], dy) for o, m in zip(outs, (plain, fused))]
        for g, r in zip(grads[1], grads[0]):
            torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-4)
    for key, value in plain[0].state_dict().items():
        torch.testing.assert_close(fused.state_dict()[key], value, msg=key)
    assert int(fused.num_batches_tracked) == 3


@pytest.mark.parametrize("impl", IMPLS)
def test_instancenormact_matches_instancenorm2d_then_activation(impl: str) -> None:
    """StarGAN's InstanceNorm (affine, tracked statistics) and CycleGAN's (neither), batched and unbatched."""
    _skip_unavailable(impl)
    torch.manual_seed(2)
    for kwargs, act in (({"affine": True, "track_running_stats": True}, "lrelu"), ({}, "relu")):
        plain = nn.Sequential(nn.InstanceNorm2d(5, **kwargs), nn.LeakyReLU(0.2) if act == "lrelu" else nn.ReLU())
        fused = InstanceNormAct2d(5, act=act, impl=impl, **kwargs)
        assert set(fused.state_dict()) == {k.removeprefix("0.") for k in plain.state_dict()}
        fused.load_state_dict({k.removeprefix("0."): v for k, v in plain.state_dict().items()})
        for mode in (True, True, False):
            plain.train(mode), fused.train(mode)
            x = torch.randn(3, 5, 7, 6) * 2 + 0.5
            torch.testing.assert_close(fused(x), plain(x), rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(fused(x[0]), plain(x[0]), rtol=1e-4, atol=1e-5)  # unbatched
        for key, value in plain[0].state_dict().items():
            torch.testing.assert_close(fused.state_dict()[key], value, msg=key)


def _penalty_grads(impl: str, kind: str, training: bool, act: str, affine: bool) -> list[Tensor | None]:
    """Gradients of a WGAN-GP-like penalty ``|∂(y·r)/∂(x, γ, β)|²`` (second order) in x, γ and β."""
    gen = torch.Generator().manual_seed(3)
    x = (torch.randn(4, 3, 5, 5, generator=gen, dtype=torch.float64) * 1.5 + 0.3).requires_grad_()
    w = (1 + 0.3 * torch.randn(3, generator=gen, dtype=torch.float64)).requires_grad_() if affine else None
    b = (0.2 * torch.randn(3, generator=gen, dtype=torch.float64)).requires_grad_() if affine else None
    rm = 0.1 * torch.randn(3, generator=gen, dtype=torch.float64)
    rv = 0.5 + torch.rand(3, generator=gen, dtype=torch.float64)
    r = torch.randn(4, 3, 5, 5, generator=gen, dtype=torch.float64)
    leaves = [t for t in (x, w, b) if t is not None]
    y = norm_act(x, w, b, rm, rv, kind=kind, training=training, act=act, impl=impl)
    grads = torch.autograd.grad((y * r).sum(), leaves, create_graph=True)
    penalty = sum((g.square() * (1 + i)).sum() for i, g in enumerate(grads))
    return list(torch.autograd.grad(penalty, leaves, allow_unused=True))


@pytest.mark.parametrize("impl", SECOND_ORDER)
@pytest.mark.parametrize(("kind", "training", "act", "affine"), [
    ("batch", True, "lrelu", True), ("batch", True, "relu", True), ("batch", True, "tanh", False),
    ("batch", False, "relu", True), ("instance", True, "lrelu", True), ("instance", True, "silu", False)])
def test_second_order_gradients_match_reference(impl: str, kind: str, training: bool, act: str, affine: bool) -> None:
    """WGAN-GP differentiates a gradient: through BatchNorm in training that includes the statistics' dependence on
    x, which the fused node gets by returning its statistics as outputs."""
    _skip_unavailable(impl)
    expected = _penalty_grads("ref", kind, training, act, affine)
    got = _penalty_grads(impl, kind, training, act, affine)
    tol: dict[str, Any] = {"rtol": 1e-7, "atol": 1e-9} if impl == "fused" else {"rtol": 1e-4, "atol": 1e-5}
    for i, (g, r) in enumerate(zip(got, expected)):
        if r is None:  # no path in the reference: ours may hold zeros
            assert g is None or not g.any(), i
        else:
            assert g is not None, i
            torch.testing.assert_close(g, r, **tol, msg=lambda m, i=i: f"grad {i}: {m}")


@pytest.mark.parametrize("act", ["lrelu", "relu", "linear"])
def test_fused_gradgradcheck(act: str) -> None:
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(3, 2, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    w = (1 + 0.3 * torch.randn(2, generator=gen, dtype=torch.float64)).requires_grad_()
    b = (0.2 * torch.randn(2, generator=gen, dtype=torch.float64)).requires_grad_()
    x.data += (x.data.abs() < 0.05) * 0.2  # keep off the activation's kink, where finite differences straddle it

    def fn(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
        return norm_act(x, w, b, None, None, act=act, impl="fused")

    assert torch.autograd.gradcheck(fn, (x, w, b), fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, (x, w, b), fast_mode=True)


def _saved_sizes(fn: Any) -> list[int]:
    sizes: list[int] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: sizes.append(t.numel()) or t, lambda t: t):
        fn()
    return sizes


def test_fused_keeps_only_the_output_where_the_activation_is_invertible() -> None:
    x = torch.randn(4, 8, 6, 6, requires_grad=True)
    w, b = torch.rand(8).add(0.5).requires_grad_(), torch.randn(8).mul(0.2).requires_grad_()
    big = x.numel()

    def saved(act: str, impl: str, weight: Tensor = w) -> int:
        return sum(n == big for n in _saved_sizes(lambda: norm_act(x, weight, b, None, None, act=act, impl=impl)))

    assert saved("lrelu", "fused") == 1 and saved("lrelu", "ref") == 2  # y only, vs x and the norm's output
    assert saved("linear", "fused") == 1
    assert saved("relu", "fused") == 2  # x and y: ReLU's zeros hide x̂, which BatchNorm's backward needs
    zero_gamma = w.detach().clone()
    zero_gamma[3] = 0  # x̂ cannot be recovered from y: x is saved, and the gradients stay right
    assert saved("lrelu", "fused", zero_gamma.requires_grad_()) == 2
    dy = torch.randn(4, 8, 6, 6)
    grads = [torch.autograd.grad(norm_act(x, zero_gamma, b, None, None, act="lrelu", impl=impl), (x, zero_gamma, b),
                                 dy) for impl in ("ref", "fused")]
    for g, r in zip(grads[1], grads[0]):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)


def test_bad_arguments_are_named() -> None:
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(ShapeError, match=r"weight has shape \(4,\), expected \(3,\)"):
        norm_act(x, torch.ones(4), None, None, None)
    with pytest.raises(ValueError, match="eval mode needs running statistics"):
        norm_act(x, None, None, None, None, training=False)
    with pytest.raises(ValueError, match="both running_mean and running_var"):
        norm_act(x, None, None, torch.zeros(3), None)
    with pytest.raises(KeyError, match="'layer'"):
        norm_act(x, None, None, None, None, kind="layer")
    with pytest.raises(KeyError, match="'gelu'"):
        norm_act(x, None, None, None, None, act="gelu")
    with pytest.raises(ValueError, match=r"more than 1 value per channel, got x of shape \(1, 3, 1, 1\)"):
        norm_act(torch.randn(1, 3, 1, 1), None, None, None, None)
    with pytest.raises(ShapeError, match=r"\[N, C, H, \.\.\.\] for instance norm, got shape \(2, 3\)"):
        norm_act(torch.randn(2, 3), None, None, None, None, kind="instance")
    with pytest.raises(KeyError, match="'gelu'"):
        BatchNormAct2d(3, act="gelu")


# -- the reference applies its activation in place where autograd allows -------------------------------------------

IN_PLACE = {"relu": True, "tanh": True, "sigmoid": True, "lrelu": True, "lrelu-neg": False, "silu": False}


@pytest.mark.parametrize("act", list(IN_PLACE))
@pytest.mark.parametrize(("kind", "grad"), [("batch", True), ("batch", False), ("instance", True),
                                            ("instance", False)])
def test_reference_activation_reuses_the_norm_output_where_autograd_allows(
        act: str, kind: str, grad: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """One buffer fewer per layer, as the official code's ``ReLU(inplace=True)``: the reference's output is the norm's
    output buffer (same ``data_ptr``), except for activations whose backward needs their input, and for InstanceNorm's
    output (a view) while autograd tracks it. Values and gradients stay those of the out-of-place composition, to
    the bit."""
    name, alpha = ("lrelu", -0.1) if act == "lrelu-neg" else (act, None)
    norm = {"batch": F.batch_norm, "instance": F.instance_norm}[kind]
    buffers: list[int] = []

    def spy(*args: Any, **kwargs: Any) -> Tensor:
        out = norm(*args, **kwargs)
        buffers.append(out.data_ptr())
        return out

    monkeypatch.setattr(F, f"{kind}_norm", spy)
    gen = torch.Generator().manual_seed(5)
    x = (torch.randn(3, 4, 5, 5, generator=gen) * 1.5).requires_grad_(grad)
    w, b = (torch.rand(4, generator=gen) + 0.5).requires_grad_(grad), torch.randn(4, generator=gen).requires_grad_(grad)
    y = norm_act(x, w, b, None, None, kind=kind, act=name, alpha=alpha, impl="ref")
    assert len(buffers) == 1
    in_place = IN_PLACE[act] and (kind == "batch" or not grad)
    assert (y.data_ptr() == buffers[0]) == in_place, (y.data_ptr(), buffers)
    monkeypatch.undo()
    z = norm(x, None, None, w, b, True, 0.1, 1e-5)
    expected = {"relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "silu": F.silu,
                "lrelu": lambda t: F.leaky_relu(t, 0.2), "lrelu-neg": lambda t: F.leaky_relu(t, -0.1)}[act](z)
    assert torch.equal(y, expected)
    if grad:
        dy = torch.randn(y.shape, generator=gen)
        got, want = (torch.autograd.grad(o, (x, w, b), dy) for o in (y, expected))
        for g, r in zip(got, want):
            assert torch.equal(g, r)
