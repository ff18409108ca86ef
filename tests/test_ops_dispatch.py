"""How ``impl=`` is resolved: explicit choices, ``auto`` from the measured cache or the priority table, the one
warning when a fast path cannot run, ``use_impls``, and implementations added by a plugin."""

from __future__ import annotations

import copy
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import FIRST_PARTY

from ganzoo_core._plugins import make_host, use_host
from ganzoo_core.errors import UnknownNameError
from ganzoo_core.ops import (
    BatchNormAct2d,
    InstanceNormAct2d,
    OpUnavailableError,
    UpsampleConv2d,
    bias_act,
    list_ops,
    refresh_impls,
    register_op,
    reload_impl_cache,
    use_impls,
    write_cache,
)
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
    assert _chosen() == other  # the file is read once, not per call: a change by hand needs reload_impl_cache
    reload_impl_cache()
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


# -- when impl="auto" is resolved ---------------------------------------------------------------------------------


@pytest.fixture
def file_touches(cache: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts of what touches the measured cache: reads of its table, and os.stat / Path.stat of the file."""
    counts = {"read": 0, "stat": 0}
    real_read, real_stat, real_path_stat = dispatch_mod._read_cache, os.stat, Path.stat

    def read(path: Path) -> dict[str, str]:
        counts["read"] += 1
        return real_read(path)

    def stat(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if str(path) == str(cache):
            counts["stat"] += 1
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    def path_stat(self: Path, *args: object, **kwargs: object) -> os.stat_result:
        if str(self) == str(cache):
            counts["stat"] += 1
        return real_path_stat(self, *args, **kwargs)

    monkeypatch.setattr(dispatch_mod, "_read_cache", read)
    monkeypatch.setattr(os, "stat", stat)
    monkeypatch.setattr(Path, "stat", path_stat)
    return counts


def test_functional_auto_reads_the_cache_once_and_never_stats_it(cache: Path, file_touches: dict[str, int]) -> None:
    write_cache({"bias_act/cpu": "ref"}, path=cache)  # a file that exists: there would be something to stat
    file_touches.update(read=0, stat=0)
    x = torch.randn(2, 3, 4, 4)
    for _ in range(5):
        out = bias_act(x, act="relu")
    torch.testing.assert_close(out, torch.relu(x))
    assert file_touches == {"read": 1, "stat": 0}
    write_cache({"bias_act/cpu": "fused"}, path=cache)  # the API that changes the file: read again, once
    file_touches.update(read=0, stat=0)
    for _ in range(3):
        bias_act(x, act="relu")
    assert file_touches == {"read": 1, "stat": 0}
    assert _chosen() == "fused"


def _modules() -> list[tuple[torch.nn.Module, torch.Tensor]]:
    torch.manual_seed(0)
    return [(BatchNormAct2d(4, act="lrelu"), torch.randn(3, 4, 5, 5)),
            (InstanceNormAct2d(4, act="relu"), torch.randn(3, 4, 5, 5)),
            (UpsampleConv2d(4, 3, bias=True), torch.randn(2, 4, 5, 5))]


@pytest.mark.parametrize("index", range(3), ids=["BatchNormAct2d", "InstanceNormAct2d", "UpsampleConv2d"])
def test_an_op_module_resolves_auto_once_and_its_forward_touches_no_file(
        index: int, cache: Path, file_touches: dict[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    module, x = _modules()[index]
    reference = copy.deepcopy(module)
    reference.impl = "ref"
    resolutions: list[str] = []
    real_resolve = dispatch_mod._resolve_entry
    monkeypatch.setattr(dispatch_mod, "_resolve_entry",
                        lambda op, impl, dev: resolutions.append(op) or real_resolve(op, impl, dev))
    module.train(False)
    reference.train(False)
    with torch.no_grad():
        first = module(x)
        file_touches.update(read=0, stat=0)
        for _ in range(4):
            again = module(x)
    assert resolutions == [module.op_name] and file_touches == {"read": 0, "stat": 0}
    torch.testing.assert_close(again, first)
    torch.testing.assert_close(first, reference(x), rtol=1e-4, atol=1e-5)  # the same result as the reference
    assert "_ganzoo_impls" not in str(list(module.state_dict()))  # the choice is no part of the checkpoint


def test_an_op_module_keeps_its_choice_until_refreshed_or_the_cache_changes(cache: Path, host: object) -> None:
    module, x = BatchNormAct2d(4, act="relu"), torch.randn(3, 4, 5, 5)
    module(x)
    kept = module.resolved_impl(x.device)
    calls: list[int] = []

    @register_op("norm_act.counted", auto=("cpu",), priority=10_000)
    def _counted(*args: object) -> torch.Tensor:
        calls.append(1)
        return dispatch_mod.get_impl_entry("norm_act", "ref").factory(*args)

    module(x)
    assert not calls and module.resolved_impl(x.device) == kept  # registered after the choice: not seen
    assert refresh_impls(torch.nn.Sequential(module)) == 1
    module(x)
    assert calls == [1] and module.resolved_impl(x.device) == "counted"
    write_cache({"norm_act/cpu": "ref"}, path=cache)  # a measurement written through the API reaches modules
    module(x)
    assert calls == [1] and module.resolved_impl(x.device) == "ref"
    with use_impls(norm_act="counted"):  # use_impls still applies at every forward
        module(x)
    assert calls == [1, 1]


def test_an_unmeasured_gpu_runs_the_reference_of_every_op(cache: Path) -> None:
    """On CUDA no faster implementation is chosen before ``ganzoo bench ops --write-cache`` measured it there; a
    measured choice is then taken (the cache names it)."""
    from ganzoo_core.ops import list_op_specs
    from ganzoo_core.ops._dispatch import _choose, reload_impl_cache, write_cache

    reload_impl_cache()
    for spec in list_op_specs():
        assert _choose(spec.name, "auto", "cuda").cfg.reference, spec.name
    write_cache({"upsample_conv/cuda": "subpixel"})
    assert _choose("upsample_conv", "auto", "cuda").variant == "subpixel"
