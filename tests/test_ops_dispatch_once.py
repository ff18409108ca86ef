"""``impl=`` is chosen once, never per call: an op module resolves it to a function on its first forward and calls that
function afterwards; the measured cache's path is built and its file read once; the ``compiled`` implementations
compile once per shape (not per call, not per momentum value); and nothing that compiles is an unmeasured default."""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import HOST
from torch import nn

from ganzoo_core._plugins import use_host
from ganzoo_core.ops import (
    AutoImpl,
    BatchNormAct2d,
    Case,
    Conv2d,
    ConvTranspose2d,
    InstanceNormAct2d,
    UpsampleConv2d,
    get_impl_entry,
    get_op_spec,
    list_ops,
    reload_impl_cache,
    why_not,
    write_cache,
)
from ganzoo_core.ops import _dispatch as dispatch_mod
from ganzoo_core.ops.conv_bn import Act

with use_host(HOST):
    OPS = list_ops()
COMPILED = sorted(op for op, impls in OPS.items() if "compiled" in impls)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "impls.json"
    monkeypatch.setenv("GANZOO_IMPL_CACHE", str(path))
    reload_impl_cache()
    yield path
    reload_impl_cache()


@pytest.fixture
def counts(cache: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Calls of what choosing an implementation costs: resolutions (``_resolve_entry``), choices made (``_choose``),
    cache paths built (``cache_path``) and cache files read (``_read_cache``)."""
    found = {"resolve": 0, "choose": 0, "path": 0, "read": 0}
    for key, name in (("resolve", "_resolve_entry"), ("choose", "_choose"), ("path", "cache_path"),
                      ("read", "_read_cache")):
        real = getattr(dispatch_mod, name)

        def spy(*args: Any, _real: Callable[..., Any] = real, _key: str = key) -> Any:
            found[_key] += 1
            return _real(*args)

        monkeypatch.setattr(dispatch_mod, name, spy)
    return found


# -- op modules -----------------------------------------------------------------------------------------------------

MODULES: dict[type, Callable[[], tuple[nn.Module, torch.Tensor]]] = {
    BatchNormAct2d: lambda: (BatchNormAct2d(4, momentum=None, act="lrelu"), torch.randn(3, 4, 5, 5)),
    InstanceNormAct2d: lambda: (InstanceNormAct2d(4, affine=True, act="relu"), torch.randn(3, 4, 5, 5)),
    UpsampleConv2d: lambda: (UpsampleConv2d(4, 3, bias=True), torch.randn(2, 4, 5, 5)),
    Act: lambda: (Act("lrelu"), torch.randn(2, 4, 5, 5)),
    Conv2d: lambda: (Conv2d(64, 48, 4, 2, 1), torch.randn(1, 64, 2, 2)),  # weight-bound: small's gemm branch
    ConvTranspose2d: lambda: (ConvTranspose2d(64, 48, 4, 2, 1), torch.randn(1, 64, 2, 2)),
}


def _op_modules() -> set[type]:
    """Every op module class ganzoo_core.ops defines (subclasses of AutoImpl there, at any depth)."""
    found, todo = set(), [AutoImpl]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("ganzoo_core.ops.") and not sub.__name__.startswith("_"):
                found.add(sub)
    return found


def test_every_op_module_is_covered() -> None:
    assert _op_modules() == set(MODULES), "add the new op module to MODULES"


@pytest.mark.parametrize("cls", list(MODULES), ids=lambda c: c.__name__)
@pytest.mark.parametrize("impl", ["auto", "ref"])
def test_an_op_module_chooses_once_over_many_forwards(cls: type, impl: str, counts: dict[str, int]) -> None:
    """Training steps: one resolution, one cache path built and one cache read (for ``auto``) on the first forward,
    nothing after; the results are the reference's."""
    module, x = MODULES[cls]()
    module.impl = impl
    reference = MODULES[cls]()[0]
    reference.load_state_dict(module.state_dict())
    reference.impl = "ref"
    for step in range(20):
        out = module(x)
        if step == 0:
            first = dict(counts)
            expected = {"resolve": 1, "choose": 1, "path": int(impl == "auto"), "read": int(impl == "auto")}
            assert first == expected
            counts.update(resolve=0, choose=0, path=0, read=0)
            ref_out = reference(x)  # the reference module resolves its own "ref": counted, then reset
            counts.update(resolve=0, choose=0, path=0, read=0)
            torch.testing.assert_close(out, ref_out, rtol=1e-4, atol=1e-5)
    assert counts == {"resolve": 0, "choose": 0, "path": 0, "read": 0}
    assert module.resolved_impl(x.device) == (impl if impl != "auto" else dispatch_mod.auto_impl(module.op_name, "cpu"))


def test_a_written_cache_reaches_a_module_that_had_chosen(cache: Path, counts: dict[str, int]) -> None:
    module, x = MODULES[BatchNormAct2d]()
    module(x)
    write_cache({"norm_act/cpu": "fused"}, path=cache)  # what 'ganzoo bench ops --write-cache' calls
    counts.update(resolve=0, choose=0, path=0, read=0)
    for _ in range(5):
        module(x)
    assert counts == {"resolve": 1, "choose": 1, "path": 1, "read": 1}
    assert module.resolved_impl(x.device) == "fused"


# -- functional calls -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", sorted(OPS))
def test_functional_auto_builds_the_cache_path_and_reads_it_once(op: str, counts: dict[str, int]) -> None:
    """Every op's public function, called many times with ``impl="auto"``: the first call chooses (one cache path,
    one read, for every op it runs), the others only look their choice up."""
    spec = get_op_spec(op)
    args, kwargs = spec.sample(Case(variant=spec.variants[0]), torch.Generator().manual_seed(0))
    spec.call(*args, impl="auto", **kwargs)
    assert counts["read"] == 1 and counts["path"] >= 1 and counts["choose"] >= 1
    first = dict(counts)
    for _ in range(10):
        spec.call(*args, impl="auto", **kwargs)
    assert counts["resolve"] > first["resolve"]  # the functional form looks its choice up per call ...
    assert {k: counts[k] for k in ("choose", "path", "read")} == {k: first[k] for k in ("choose", "path", "read")}


def test_the_cache_file_is_read_once_for_every_op_and_device(counts: dict[str, int]) -> None:
    for op in OPS:
        for device in ("cpu", "cuda"):
            dispatch_mod.auto_impl(op, device)
    assert counts["read"] == 1 and counts["choose"] == 2 * len(OPS)


# -- compiled implementations ----------------------------------------------------------------------------------------


def test_nothing_compiled_is_an_unmeasured_default(cache: Path) -> None:
    """``compiled`` loses to the reference at some shapes (and compiles for seconds): ``auto`` takes it only when a
    measurement in the cache names it, on any device."""
    for op in COMPILED:
        assert get_impl_entry(op, "compiled").cfg.auto == (), op
        for device in ("cpu", "cuda"):
            assert dispatch_mod._choose(op, "auto", device).variant != "compiled", (op, device)


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def _skip_without_compiler(op: str) -> None:
    reason = why_not(get_impl_entry(op, "compiled"), "cpu")
    if reason is not None:
        pytest.skip(reason)


@pytest.mark.parametrize("op", COMPILED)
def test_compiled_compiles_once_per_shape(op: str) -> None:
    """Repeated calls at one shape compile one graph; a second shape compiles one more, and repeats of either compile
    nothing (no recompile per call, no dynamic-shape recompile per changing dimension)."""
    _skip_without_compiler(op)
    torch._dynamo.reset()
    spec = get_op_spec(op)
    gen = torch.Generator().manual_seed(0)
    seen = []
    for shape in ("small", "small", "small", "odd", "odd", "small", "odd"):
        args, kwargs = spec.sample(Case(shape=shape, variant=spec.variants[0], requires_grad=False), gen)
        with torch.no_grad():
            out = spec.call(*args, impl="compiled", **kwargs)
            ref = spec.call(*args, impl="ref", **kwargs)
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
        seen.append(_graphs())
    base = seen[0] - 1
    assert [n - base for n in seen] == [1, 1, 1, 2, 2, 2, 2], seen


def test_compiled_norm_act_compiles_once_over_momentum_none_steps() -> None:
    """``momentum=None`` (a cumulative average) changes the momentum every step; it reaches the compiled graph as a
    tensor, so the steps share one graph, and the running statistics are BatchNorm2d's."""
    _skip_without_compiler("norm_act")
    torch._dynamo.reset()
    gen = torch.Generator().manual_seed(1)
    fused = BatchNormAct2d(3, momentum=None, act="relu", impl="compiled")
    plain = nn.BatchNorm2d(3, momentum=None)
    before = _graphs()
    with torch.no_grad():
        for _ in range(5):
            x = torch.randn(2, 3, 4, 4, generator=gen) * 2 + 1
            torch.testing.assert_close(fused(x), torch.relu(plain(x)), rtol=1e-4, atol=1e-5)
    assert _graphs() - before == 1
    torch.testing.assert_close(fused.running_mean, plain.running_mean)
    torch.testing.assert_close(fused.running_var, plain.running_var)


def test_the_compiled_implementations_share_one_compiled_function_per_op() -> None:
    """Module-level, built once: no new ``torch.compile`` wrapper per call."""
    for op in COMPILED:
        module = importlib.import_module(f"ganzoo_core.ops.{op}")
        runners = [v for v in vars(module).values() if callable(v) and hasattr(v, "build")]
        assert len(runners) == 1, op
        assert runners[0].build() is runners[0].build()


def test_a_pickled_or_copied_module_leaves_its_choice_behind() -> None:
    """``torch.save(module)`` (the whole module, not its state dict) and ``copy.deepcopy`` keep no function of this
    process's choice (``__getstate__``, which both go through): the copy chooses again, and computes the same."""
    module, x = MODULES[BatchNormAct2d]()
    module.eval()
    out = module(x)
    assert "_ganzoo_impls" in vars(module)
    assert "_ganzoo_impls" not in module.__getstate__() and "_compiled_call_impl" not in module.__getstate__()
    copied = copy.deepcopy(module)
    assert "_ganzoo_impls" not in vars(copied) and "_ganzoo_impls" in vars(module)
    torch.testing.assert_close(copied(x), out)
    assert "_ganzoo_impls" in vars(copied)
