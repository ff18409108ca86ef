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
import struct
import sys
import tempfile
import types
import typing
from collections import abc
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import attrs
import numpy as np
import torch
from torch import Tensor, nn

from ganzoo_core import interfaces
from ganzoo_core._api import create, get_entry, list_names
from ganzoo_core._plugins import PluginHost, make_host, use_host
from ganzoo_core._registry import KINDS, NETWORK_KINDS
from ganzoo_core.checkpoints import load, save
from ganzoo_core.errors import ConfigError, InputError

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
    "T7Function", "T7Object", "T7Tensor", "assert_shapes", "bad_value_cases", "check_component", "check_entry",
    "check_loss", "check_objective", "check_plugin", "check_refused", "check_round_trip", "check_validators",
    "config_field", "copy_state_by_position", "missing_validators", "numeric_fields", "parameter_count",
    "plugin_host", "write_t7",
]


def parameter_count(module: nn.Module) -> int:
    """The number of values in ``module.parameters()`` (a shared parameter counts once)."""
    return sum(p.numel() for p in module.parameters())


def copy_state_by_position(src: nn.Module, dst: nn.Module) -> None:
    """Load ``src``'s state into ``dst`` entry by entry, in order: two codings of one network whose state-dict names
    differ and whose layouts do not (an official transcription and the registered network). An ``AssertionError``
    names the first entry whose shape differs."""
    values, targets = list(src.state_dict().values()), dst.state_dict()
    assert len(values) == len(targets), (f"{type(src).__name__} has {len(values)} state entries, "
                                         f"{type(dst).__name__} {len(targets)}")
    for value, (name, target) in zip(values, targets.items()):
        assert value.shape == target.shape, f"{name}: {tuple(value.shape)} vs {tuple(target.shape)}"
    dst.load_state_dict(dict(zip(targets, values)))


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


# -- Torch7 files for tests ------------------------------------------------------------------------------------------
# torch.save's binary format as Torch7 writes it on 64-bit Linux (little-endian int32 tags and ints, int64 longs;
# tables, Torch objects and functions carry an object index, so an object met again is written as a reference), for
# testing a plugin's .t7 converter on files written here with random weights:
#
#     net = T7Object("nn.Sequential", {"modules": [T7Object("nn.Linear", {"weight": w, "bias": b})]})
#     model = gz.create_encoder("myplugin.released", weights=write_t7(net, tmp_path / "net.t7"))

_T7_NIL, _T7_NUMBER, _T7_STRING, _T7_TABLE, _T7_TORCH, _T7_BOOLEAN, _T7_FUNCTION = range(7)
_T7_TYPES = {np.dtype(np.float32): "Float", np.dtype(np.float64): "Double", np.dtype(np.int64): "Long",
             np.dtype(np.int32): "Int", np.dtype(np.uint8): "Byte"}


@attrs.define(eq=False)
class T7Object:
    """A Torch class instance (``nn.Linear``, ``nngraph.Node``, ...): its class name, its fields (a Lua table: a dict,
    written in its order) and its class version (``V <version>``). ``write_t7`` also takes any object with
    ``typename`` and ``fields`` attributes (and an optional ``version``)."""

    typename: str
    fields: Any
    version: int = 1


@attrs.define(eq=False)
class T7Tensor:
    """A Torch tensor: a view (``size``, ``stride`` and 0-based ``offset``, in elements) into ``storage``, a 1-d array
    that several tensors may share (by identity: the same array object is written once). ``stride`` defaults to the
    contiguous one; ``typename`` to ``torch.<Type>Tensor`` of the storage's dtype (float32 ``Float``, float64
    ``Double``, int64 ``Long``, int32 ``Int``, uint8 ``Byte``): give ``"torch.CudaTensor"`` for a GPU-trained file."""

    storage: np.ndarray
    size: tuple[int, ...] = attrs.field(converter=tuple)
    stride: tuple[int, ...] | None = None
    offset: int = 0
    typename: str | None = None

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.storage, np.ndarray) or self.storage.ndim != 1:
            raise InputError(f"T7Tensor storage must be a 1-d numpy array, got {_t7_what(self.storage)}")
        if self.stride is None:
            self.stride = tuple(int(np.prod(self.size[i + 1:])) for i in range(len(self.size)))
        self.stride = tuple(self.stride)
        if len(self.stride) != len(self.size):
            raise InputError(f"T7Tensor stride {self.stride} must have one entry per dimension of size {self.size}")
        if self.typename is None:
            if self.storage.dtype not in _T7_TYPES:
                raise InputError(f"T7Tensor storage dtype {self.storage.dtype} has no Torch type: give typename=, or "
                                 f"a storage of {', '.join(str(d) for d in _T7_TYPES)}")
            self.typename = f"torch.{_T7_TYPES[self.storage.dtype]}Tensor"

    def numpy(self) -> np.ndarray:
        """The tensor's values: a new array of shape ``size``."""
        if 0 in self.size:
            return np.zeros(self.size, self.storage.dtype)
        itemsize = self.storage.itemsize
        view = np.lib.stride_tricks.as_strided(self.storage[self.offset:], self.size,
                                               tuple(s * itemsize for s in self.stride), writeable=False)
        return view.copy()


@attrs.define(eq=False)
class T7Function:
    """A serialized Lua function: its bytecode, written with no upvalues (a reader must keep it as bytes, never run
    it)."""

    code: bytes


def _t7_what(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__} of shape {tuple(shape)}" if shape is not None else type(value).__name__


class _T7Writer:
    def __init__(self, f: BinaryIO, tensor_type: str) -> None:
        self.f, self.tensor_type = f, tensor_type
        self.index: dict[int, tuple[int, Any]] = {}  # id → (object index, the object: kept alive so ids stay unique)
        self.converted: dict[int, tuple[Any, T7Tensor]] = {}  # id of an ndarray / torch.Tensor → its T7Tensor

    def pack(self, fmt: str, *values: Any) -> None:
        self.f.write(struct.pack("<" + fmt, *values))

    def string(self, s: str | bytes) -> None:
        raw = s.encode() if isinstance(s, str) else s
        self.pack("i", len(raw))
        self.f.write(raw)

    def reference(self, tag: int, value: object) -> bool:
        """Write the tag and the object's index; True when it was written before (then nothing else follows)."""
        known = id(value) in self.index
        if not known:
            self.index[id(value)] = (len(self.index) + 1, value)
        self.pack("ii", tag, self.index[id(value)][0])
        return known

    def write(self, value: Any) -> None:
        if value is None:
            self.pack("i", _T7_NIL)
        elif isinstance(value, bool | np.bool_):
            self.pack("ii", _T7_BOOLEAN, int(value))
        elif isinstance(value, int | float | np.integer | np.floating):
            self.pack("id", _T7_NUMBER, float(value))
        elif isinstance(value, str | bytes):
            self.pack("i", _T7_STRING)
            self.string(value)
        elif isinstance(value, dict | list):
            if not self.reference(_T7_TABLE, value):
                items = list(value.items()) if isinstance(value, dict) else list(enumerate(value, start=1))
                self.pack("i", len(items))
                for k, v in items:
                    self.write(k)
                    self.write(v)
        elif isinstance(value, T7Tensor | np.ndarray | Tensor):
            self.tensor(value if isinstance(value, T7Tensor) else self.convert(value))
        elif isinstance(value, T7Function):
            if not self.reference(_T7_FUNCTION, value):
                self.string(value.code)
                self.write({})  # upvalues
        elif hasattr(value, "typename") and hasattr(value, "fields"):
            if not self.reference(_T7_TORCH, value):
                self.string(f"V {getattr(value, 'version', 1)}")
                self.string(value.typename)
                self.write(value.fields)
        else:
            raise InputError(f"write_t7 cannot write {_t7_what(value)}: expected None, a bool, a number, a str or "
                             "bytes, a dict or list, a T7Tensor, numpy array or torch.Tensor, a T7Function, or a "
                             "T7Object (an object with typename and fields)")

    def convert(self, value: np.ndarray | Tensor) -> T7Tensor:
        """A contiguous T7Tensor with its own storage, one per array or tensor (written once however often met);
        a torch.Tensor as float32 ``torch.<tensor_type>Tensor``."""
        if id(value) not in self.converted:
            if isinstance(value, Tensor):
                t = value.detach().cpu().float().contiguous()
                tensor = T7Tensor(t.reshape(-1).numpy(), tuple(t.shape), tuple(t.stride()),
                                  typename=f"torch.{self.tensor_type}Tensor")
            else:
                array = np.ascontiguousarray(value)
                tensor = T7Tensor(array.reshape(-1), array.shape, tuple(s // array.itemsize for s in array.strides))
            self.converted[id(value)] = (value, tensor)
        return self.converted[id(value)][1]

    def tensor(self, t: T7Tensor) -> None:
        if self.reference(_T7_TORCH, t):
            return
        self.string("V 1")
        self.string(t.typename or "")
        self.pack("i", len(t.size))
        self.pack(f"{2 * len(t.size) + 1}q", *t.size, *(t.stride or ()), t.offset + 1)  # the offset is 1-based
        if not self.reference(_T7_TORCH, t.storage):
            self.string("V 1")
            self.string((t.typename or "").replace("Tensor", "Storage"))
            self.pack("q", t.storage.size)
            self.f.write(np.ascontiguousarray(t.storage, t.storage.dtype.newbyteorder("<")).tobytes())


def write_t7(value: Any, path: str | Path, *, tensor_type: str = "Float") -> Path:
    """Write ``value`` to ``path`` as ``torch.save`` would; returns the path. Values: None, bool, int/float,
    str/bytes, dict/list (Lua tables; a list's keys are 1..n), ``T7Tensor``, numpy arrays (contiguous tensors of
    their dtype), ``torch.Tensor`` (contiguous float32 ``torch.<tensor_type>Tensor``: ``"Float"`` or ``"Cuda"``),
    ``T7Function`` and ``T7Object`` (or any object with ``typename`` and ``fields``). An object met twice (the same
    Python object: a table, a tensor, a storage) is written once and referenced after."""
    if tensor_type not in ("Float", "Cuda"):
        raise InputError(f"write_t7 tensor_type {tensor_type!r} is not a float32 Torch type: expected 'Float' or "
                         "'Cuda'")
    path = Path(path)
    with path.open("wb") as f:
        _T7Writer(f, tensor_type).write(value)
    return path
