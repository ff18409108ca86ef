"""How ``impl=`` is resolved: explicit choices, ``auto`` from the measured cache or the priority table, the one
warning when a fast path cannot run, ``use_impls``, and implementations added by a plugin."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import FIRST_PARTY

from ganzoo_core._plugins import make_host, use_host
from ganzoo_core.errors import UnknownNameError
from ganzoo_core.ops import OpUnavailableError, bias_act, list_ops, register_op, use_impls, write_cache
from ganzoo_core.ops import _dispatch as dispatch_mod


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "impls.json"
    monkeypatch.setenv("GANZOO_IMPL_CACHE", str(path))
    return path


@pytest.fixture
def host() -> Iterator[object]:
    """A host of its own, so implementations registered by a test do not leak into the others."""
    h = make_host(FIRST_PARTY)
    with use_host(h):
        yield h


def _chosen(op: str = "bias_act", device: str = "cpu") -> str:
    fn = dispatch_mod.resolve(op, "auto", torch.device(device))
    return next(name for name in list_ops(op)[op]
                if dispatch_mod.get_impl_entry(op, name).factory is fn)


def _unmeasured_default(op: str = "bias_act", device: str = "cpu") -> str:
    entries = [dispatch_mod.get_impl_entry(op, i) for i in list_ops(op)[op]]
    candidates = [e for e in entries if device in e.cfg.auto]
    return max(candidates, key=lambda e: e.cfg.priority).variant if candidates else "ref"


def test_auto_without_a_cache_takes_the_highest_priority_candidate(cache: Path) -> None:
    assert not cache.exists()
    assert _chosen() == _unmeasured_default()


def test_auto_follows_the_measured_cache_of_this_machine(cache: Path) -> None:
    other = "fused" if _unmeasured_default() == "ref" else "ref"
    write_cache({"bias_act/cpu": other}, path=cache)
    assert _chosen() == other
    data = json.loads(cache.read_text())
    data["choices"]["bias_act/cpu"]["device_name"] = "some other CPU"  # another machine's measurement
    cache.write_text(json.dumps(data))
    assert _chosen() == _unmeasured_default()


def test_a_corrupt_cache_warns_and_is_ignored(cache: Path) -> None:
    cache.write_text("{not json")
    with pytest.warns(UserWarning, match="ignoring the op implementation cache"):
        fn = dispatch_mod.resolve("bias_act", "auto", torch.device("cpu"))
    assert callable(fn)


def test_explicit_impl_that_cannot_run_raises_with_the_reason() -> None:
    x = torch.randn(2, 3, 4, 4)
    if torch.cuda.is_available():
        pytest.skip("the Triton kernels can run here")
    with pytest.raises(OpUnavailableError, match=r"'bias_act' implementation 'triton' cannot run on cpu.*'ref'"):
        bias_act(x, act="relu", impl="triton")
    with pytest.raises(UnknownNameError, match="bias_act.nope"):
        bias_act(x, act="relu", impl="nope")


def test_use_impls_forces_auto(cache: Path) -> None:
    x = torch.randn(2, 3, 4, 4)
    with use_impls("ref"):
        assert _chosen() == "ref"
        with use_impls(bias_act="fused"):
            assert _chosen() == "fused"
        assert _chosen() == "ref"
    torch.testing.assert_close(bias_act(x, act="tanh", impl="fused"), torch.tanh(x))


def test_fallback_to_the_reference_warns_once(host: object) -> None:
    calls: list[str] = []

    @register_op("bias_act.unbuildable", requires=lambda dev: "the toolchain is missing", auto=("cpu",),
                 priority=10_000)
    def _unbuildable(*args: object) -> torch.Tensor:
        raise AssertionError("must not run")

    real_ref = dispatch_mod.get_impl_entry("bias_act", "ref").factory

    def spy(*args: object) -> torch.Tensor:
        calls.append("ref")
        return real_ref(*args)

    x = torch.randn(2, 3, 4, 4)
    dispatch_mod._warned.discard(("bias_act", "unbuildable", "cpu"))
    with pytest.warns(RuntimeWarning, match="'unbuildable' cannot run on cpu .*the toolchain is missing"):
        out = bias_act(x, act="relu")
    torch.testing.assert_close(out, torch.relu(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second call must not warn again
        bias_act(x, act="relu")
    with pytest.raises(OpUnavailableError, match="the toolchain is missing"):
        bias_act(x, act="relu", impl="unbuildable")
    assert not calls or calls == ["ref"] * len(calls)


def test_a_plugin_implementation_is_listed_dispatched_and_parity_tested_by_name(host: object) -> None:
    @register_op("bias_act.doubled_then_halved")
    def _plugin_impl(x: torch.Tensor, b: torch.Tensor | None, dim: int, act: str, alpha: float, gain: float,
                     clamp: float | None) -> torch.Tensor:
        ref = dispatch_mod.get_impl_entry("bias_act", "ref").factory
        return ref(x * 2, None if b is None else b * 2, dim, "linear", alpha, gain, clamp).div(2).relu()

    assert "doubled_then_halved" in list_ops("bias_act")["bias_act"]
    x, b = torch.randn(2, 3, 4, 4), torch.randn(3)
    torch.testing.assert_close(bias_act(x, b, act="relu", impl="doubled_then_halved"),
                               bias_act(x, b, act="relu", impl="ref"))


def test_bad_arguments_name_the_value() -> None:
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"bias of shape \(4,\) does not fit dim 1 of x \(2, 3, 4, 4\)"):
        bias_act(x, torch.randn(4))
    with pytest.raises(UnknownNameError, match="'relux'"):
        bias_act(x, act="relux")
    with pytest.raises(ValueError, match="clamp must be >= 0"):
        bias_act(x, clamp=-1.0)


def test_fused_keeps_less_for_backward_than_the_reference() -> None:
    """The memory-saving backward: bytes autograd keeps alive between forward and backward."""
    def saved_bytes(impl: str) -> int:
        total = 0

        def pack(t: torch.Tensor) -> torch.Tensor:
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        x = torch.randn(8, 16, 32, 32, requires_grad=True)
        b = torch.randn(16, requires_grad=True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            bias_act(x, b, act="lrelu", gain=2.0, clamp=3.0, impl=impl).sum().backward()
        return total

    ref, fused = saved_bytes("ref"), saved_bytes("fused")
    assert fused * 2 <= ref, (fused, ref)
