"""Conformance checks for plugin authors: the same checks every first-party plugin passes.

In a plugin's tests::

    from ganzoo_core.testing import check_plugin

    def test_conformance():
        check_plugin("ganzoo_myplugin")

Each ``check_*`` raises ``AssertionError`` with a message that names the entry and what is wrong.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import types
import typing
from collections import abc
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import Tensor, nn

from ganzoo_core import interfaces
from ganzoo_core._api import create, get_entry, list_names
from ganzoo_core._plugins import PluginHost, make_host, use_host
from ganzoo_core._registry import KINDS, NETWORK_KINDS
from ganzoo_core.checkpoints import load, save
from ganzoo_core.errors import ConfigError

PROTOCOLS: dict[str, type] = {
    "generator": interfaces.Generator,
    "discriminator": interfaces.Discriminator,
    "encoder": interfaces.Encoder,
    "block": interfaces.Component,
}


def _tensors(tree: Any) -> list[Tensor]:
    if isinstance(tree, Tensor):
        return [tree]
    if isinstance(tree, (tuple, list)):
        return [t for item in tree for t in _tensors(item)]
    return []


def assert_shapes(output: Any, expected: Any, what: str) -> None:
    """``output`` (a tensor or nested tuple of tensors) has exactly the ``expected`` shape tree."""
    if isinstance(output, Tensor):
        assert tuple(output.shape) == tuple(expected), f"{what}: output shape {tuple(output.shape)}, declared {expected}"
        return
    assert isinstance(output, (tuple, list)) and len(output) == len(expected), (
        f"{what}: output has structure {type(output).__name__} of {len(output) if isinstance(output, (tuple, list)) else '?'}"
        f" items, declared {expected}"
    )
    for i, (o, e) in enumerate(zip(output, expected)):
        assert_shapes(o, e, f"{what}[{i}]")


def _loss_of(output: Any) -> Tensor:
    return sum(t.float().square().mean() for t in _tensors(output) if t.is_floating_point())  # type: ignore[return-value]


def check_component(kind: str, name: str, batch_size: int = 2) -> nn.Module:
    """Build a network by name and check the ``Component`` contract: protocol members, declared output shapes,
    finite outputs, gradients reaching every trainable parameter, and an exact safetensors round trip."""
    what = f"{kind} {name!r}"
    torch.manual_seed(0)
    module = create(kind, name)
    assert isinstance(module, nn.Module), f"{what}: create returned {type(module).__name__}, not an nn.Module"
    protocol = PROTOCOLS[kind]
    assert isinstance(module, protocol), f"{what}: lacks a member of {protocol.__name__} (see docs/design.md)"
    module.train()
    inputs = module.example_inputs(batch_size)
    for t in _tensors(inputs):
        assert not (t.is_floating_point() and t.abs().sum() == 0), f"{what}: example_inputs are all zeros"
    output = module(*inputs)
    assert_shapes(output, module.output_shapes(batch_size), what)
    for t in _tensors(output):
        assert torch.isfinite(t).all(), f"{what}: output has NaN or inf"
    loss = _loss_of(output)
    if any(p.requires_grad for p in module.parameters()):  # a parameter-free module (bow.hashed) has nothing to reach
        loss.backward()
    for pname, p in module.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{what}: parameter {pname} gets no gradient from the output"
            assert torch.isfinite(p.grad).all(), f"{what}: gradient of {pname} has NaN or inf"
    check_round_trip(module, inputs, what)
    return module


def check_round_trip(module: nn.Module, inputs: tuple[Any, ...], what: str) -> None:
    """save → load gives the same class, config, tensors (bit for bit) and eval-mode outputs."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "module.safetensors"
        save(module, path)
        loaded = load(path)
    assert type(loaded) is type(module), f"{what}: loaded a {type(loaded).__name__}"
    assert getattr(loaded, "cfg", None) == getattr(module, "cfg", None), f"{what}: config changed in the round trip"
    original, restored = module.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys(), f"{what}: state dict keys changed in the round trip"
    for key, tensor in original.items():
        assert torch.equal(tensor, restored[key]), f"{what}: tensor {key} changed in the round trip"
    module.eval()
    loaded.eval()
    with torch.no_grad():
        torch.manual_seed(1)
        a = module(*inputs)
        torch.manual_seed(1)
        b = loaded(*inputs)
    for x, y in zip(_tensors(a), _tensors(b)):
        assert torch.equal(x, y), f"{what}: the reloaded module computes different outputs"


def check_loss(name: str) -> None:
    """The three loss terms are finite scalars that pull the logits the right way."""
    loss = create("loss", name)
    assert isinstance(loss, interfaces.Loss), f"loss {name!r}: needs d_real, d_fake and g_fake"
    low, high = torch.zeros(8), torch.ones(8)  # LSGAN targets 0 and 1, so compare there
    for term in ("d_real", "d_fake", "g_fake"):
        logits = torch.randn(8, requires_grad=True)
        value = getattr(loss, term)(logits)
        assert value.ndim == 0 and torch.isfinite(value), f"loss {name!r}: {term} is not a finite scalar"
        value.backward()
        assert logits.grad is not None and logits.grad.abs().sum() > 0, f"loss {name!r}: {term} has no gradient"
    assert loss.d_real(high) < loss.d_real(low), f"loss {name!r}: d_real should fall as real logits rise"
    assert loss.d_fake(low) < loss.d_fake(high), f"loss {name!r}: d_fake should fall as fake logits fall"
    assert loss.g_fake(high) < loss.g_fake(low), f"loss {name!r}: g_fake should fall as fake logits rise"


def check_objective(name: str, batch_size: int = 4) -> nn.Module:
    """Every phase gives a finite loss whose optimizer step changes the phase's networks; ``sample`` gives images
    in [-1, 1]; the objective round-trips through a checkpoint."""
    what = f"objective {name!r}"
    torch.manual_seed(0)
    objective = create("objective", name)
    assert isinstance(objective, interfaces.Objective), f"{what}: lacks a member of Objective (see docs/design.md)"
    batch = objective.example_batch(batch_size)
    ctx: dict[str, Any] = {}
    for phase in objective.phases:
        for net in phase.networks:
            assert net in objective.networks, f"{what}: phase {phase.name} updates unknown network {net!r}"
        params = [p for n in phase.networks for p in objective.networks[n].parameters() if p.requires_grad]
        before = [p.detach().clone() for p in params]
        opt = torch.optim.Adam(params, lr=phase.lr, betas=phase.betas)
        opt.zero_grad()
        loss, terms = objective.loss(phase.name, batch, ctx)
        assert loss.ndim == 0 and torch.isfinite(loss), f"{what}: phase {phase.name} loss is {loss}"
        assert all(torch.isfinite(torch.as_tensor(v)).all() for v in terms.values()), f"{what}: a logged term is NaN"
        loss.backward()
        opt.step()
        changed = any(not torch.equal(b, p) for b, p in zip(before, params))
        assert changed, f"{what}: phase {phase.name}'s step left its networks unchanged"
    objective.eval()
    images = objective.sample(3, batch=batch, seed=0)
    assert images.ndim == 4 and images.shape[0] == 3, f"{what}: sample(3) gave shape {tuple(images.shape)}"
    assert images.min() >= -1 and images.max() <= 1, f"{what}: samples leave [-1, 1]"
    assert torch.equal(images, objective.sample(3, batch=batch, seed=0)), f"{what}: sample(seed=0) is not repeatable"
    check_round_trip_objective(objective, what)
    return objective


def check_round_trip_objective(objective: nn.Module, what: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "objective.safetensors"
        save(objective, path)
        loaded = load(path).eval()
    for key, tensor in objective.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[key]), f"{what}: tensor {key} changed in the round trip"
    assert torch.equal(objective.sample(2, seed=3), loaded.sample(2, seed=3)), f"{what}: reloaded samples differ"


def _hints(cls: type) -> dict[str, Any]:
    """The resolved annotations of an attrs class; {} when they cannot be resolved (then the values decide)."""
    try:
        return typing.get_type_hints(cls, vars(sys.modules[cls.__module__]))
    except Exception:
        return {}


def _mentions_number(hint: Any) -> bool:
    """Whether a resolved annotation is or holds int or float (``int | None``, ``tuple[float, float]``); not bool."""
    if hint is int or hint is float:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType) or (isinstance(origin, type) and issubclass(origin, abc.Sequence)):
        return any(_mentions_number(a) for a in typing.get_args(hint) if a is not Ellipsis)
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_numeric(hint: Any, value: Any) -> bool:
    if hint is not None:
        return _mentions_number(hint)
    if isinstance(value, tuple):
        return bool(value) and all(_is_number(x) for x in value)
    return _is_number(value)


def numeric_fields(cfg: Any) -> list[str]:
    """Dotted names of the int and float fields of the attrs config ``cfg`` (alone, optional or in a tuple; bool is
    not a number here), nested attrs configs included: ``["nz", "ca.text_dim"]``. The annotation decides, or the value
    where annotations cannot be resolved."""
    hints = _hints(type(cfg))
    names: list[str] = []
    for field in attrs.fields(type(cfg)):
        value = getattr(cfg, field.name)
        if attrs.has(type(value)):
            names += [f"{field.name}.{inner}" for inner in numeric_fields(value)]
        elif _is_numeric(hints.get(field.name), value):
            names.append(field.name)
    return names


def config_field(cfg: Any, path: str) -> tuple[attrs.Attribute, Any]:
    """The attrs field a dotted name of ``numeric_fields`` stands for, and the (nested) config that holds it."""
    *parents, name = path.split(".")
    for parent in parents:
        cfg = getattr(cfg, parent)
    return attrs.fields_dict(type(cfg))[name], cfg


def missing_validators(cfg: Any) -> list[str]:
    """Dotted names of the numeric fields of ``cfg`` (see ``numeric_fields``) that have no validator: their range is
    unchecked, so ``ngf=0`` or ``lr=-1`` would fail at the first step instead of at ``create_*``."""
    return [path for path in numeric_fields(cfg) if config_field(cfg, path)[0].validator is None]


def check_validators(kind: str, name: str) -> None:
    """Every int and float option of the entry's config has a validator (``ganzoo_core.validators``)."""
    cfg = get_entry(kind, name).cfg
    missing = missing_validators(cfg) if attrs.has(type(cfg)) else []
    assert not missing, (f"{kind} {name!r}: {type(cfg).__name__} has numbers without a validator: {', '.join(missing)}"
                         " (use ganzoo_core.validators: size, positive, non_negative, probability, ...)")


def check_refused(kind: str, name: str, overrides: Mapping[str, Any], field: str) -> None:
    """``create(kind, name, **overrides)`` fails with a ``ConfigError`` whose message names ``field``: how a plugin's
    own table of bad values is checked."""
    what = f"{kind} {name!r} with {dict(overrides)}"
    try:
        create(kind, name, **overrides)
    except ConfigError as err:
        assert re.search(rf"\b{re.escape(field)}\b", str(err)), f"{what}: the error does not name {field!r}: {err}"
    else:
        raise AssertionError(f"{what}: accepted")


def bad_value_cases(plugin: str, bad_values: Mapping[str, Iterable[Any]]) -> list[tuple[str, str, str, Any]]:
    """``(kind, name, field, value)`` for every entry ``plugin`` registers whose config has a field of ``bad_values``
    (field name → values every config with that field refuses), one per value: the plugin's table over its registry,
    for ``pytest.mark.parametrize`` and ``check_refused``. A field no config has fails (a renamed field would
    otherwise silently go unchecked)."""
    cases: list[tuple[str, str, str, Any]] = []
    fields: set[str] = set()
    for kind in KINDS:
        for name in list_names(kind, plugin=plugin):
            cfg = get_entry(kind, name).cfg
            names = [f.name for f in attrs.fields(type(cfg))] if attrs.has(type(cfg)) else []
            fields.update(names)
            cases += [(kind, name, field, value) for field in names if field in bad_values for value in bad_values[field]]
    unknown = sorted(set(bad_values) - fields)
    assert not unknown, f"plugin {plugin!r}: no registered config has the fields {unknown}"
    return cases


def check_entry(kind: str, name: str) -> None:
    """Check the entry's config (``check_validators``), then run the check that fits ``kind`` (datasets need their
    source files, so only their config is checked)."""
    check_validators(kind, name)
    if kind in NETWORK_KINDS:
        check_component(kind, name)
    elif kind == "loss":
        check_loss(name)
    elif kind == "objective":
        check_objective(name)


@contextmanager
def plugin_host(*modules: str) -> Iterator[PluginHost]:
    """A fresh host with the built-ins and ``modules`` only, active inside the block."""
    host = make_host(tuple(modules))
    with use_host(host):
        yield host


def check_plugin(module: str) -> list[str]:
    """Load plugin ``module`` alone and run the checks on everything it registers; returns the names checked."""
    with plugin_host(module) as host:
        assert not host.failures, "plugin failed to load: " + "; ".join(str(f) for f in host.failures)
        info = next(p for p in host.plugins.values() if p.module == module)
        assert info.entries, f"plugin {module!r} registered nothing"
        for item in info.entries:
            kind, name = item.split(" ", 1)
            check_entry(kind, name)
        return list(info.entries)


__all__ = [
    "assert_shapes", "bad_value_cases", "check_component", "check_entry", "check_loss", "check_objective", "check_plugin",
    "check_refused", "check_round_trip", "check_validators", "config_field", "missing_validators", "numeric_fields",
    "plugin_host",
]


def saved_without(path: str | Path, *fields: str) -> Path:
    """A copy of the checkpoint at ``path`` (``old-<name>`` beside it) whose saved config lacks ``fields``, as a
    version from before those fields existed wrote it: for testing that old checkpoints load (``SAVED_BEFORE``)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = Path(path)
    with safe_open(str(path), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    config = json.loads(meta["ganzoo.config"])
    for name in fields:
        del config[name]
    old = path.with_name("old-" + path.name)
    save_file(tensors, str(old), metadata={**meta, "ganzoo.config": json.dumps(config, sort_keys=True)})
    return old
