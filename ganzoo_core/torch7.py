"""Read Torch7 (Lua Torch, ``.t7``) files: parsed as data with the optional ``torchfile`` package, never run.

Install the reader with ``pip install 'ganzoo-core[torch7]'``. Nothing in a file is ever executed: ``torchfile``
parses the binary serialization (numbers, strings, tables, ``torch.*Tensor`` / ``*Storage`` and any other Torch class
as a plain record), and serialized Lua functions are kept as opaque bytes that this module skips.

API:

- ``is_t7_file(path) -> bool``: whether the file is a Torch7 binary serialization, told by its first bytes (a Torch
  object or a table, object index 1, then a class name or a table size), not by its extension.
- ``read_t7(path) -> Any``: the file's top object as ``torchfile`` gives it (Torch classes as ``torchfile.TorchObject``
  with ``torch_typename()`` and field access ``obj["weight"]`` / ``obj.weight``; tables as dicts with ``bytes`` keys,
  or lists for 1..n tables; tensors as numpy arrays). Every tensor is checked to lie inside its storage (a crafted
  size or stride could otherwise point numpy outside it). Deeply nested files (an ``nn.gModule``'s graph) read too:
  the recursion limit is raised while torchfile reads. Errors are one-line ``CheckpointError``s naming the file.
- ``t7_typename(obj) -> str``: the Torch class name of an object (``"nn.Linear"``), ``""`` for anything else.
- ``t7_field(obj, name, default=None)``: a field of a Torch object or a table, by ``str`` name.
- ``t7_tensor(value) -> Tensor``: a Torch7 tensor (numpy array) as a contiguous CPU ``torch.Tensor``: floating types
  (``Float``/``Double``/``Cuda``) as float32, integer types keep theirs.
- ``t7_modules(obj, *, containers=False) -> list[T7Module]``: the ``nn`` modules of a network in forward order,
  descending depth first into every container that holds a ``modules`` list (``nn.Sequential``, ``nn.ConcatTable``,
  ``nn.ParallelTable``, ``nn.Concat``, ``nn.gModule``, ...). Each ``T7Module`` has ``typename``
  (``nn.SpatialConvolution``, ``cudnn.SpatialFullConvolution``, ...), ``path`` (0-based positions in the tree,
  ``"2.0.1"``), ``tensors`` (every tensor field but the transient ones: outputs, gradients and buffers such as
  ``gradWeight``, ``output``, ``finput``; ``weight``, ``bias``, ``running_mean``, ``running_var``, ...) and
  ``fields`` (the number, bool and string fields: ``kW``, ``padW``, ``eps``, ``negval``, ``dimension``, ...); its
  ``base`` (the class without its package), ``conv_weight()`` (a convolution's weight as 4-d, old MM kinds too) and
  ``misfit(base, fields, defaults, needed)`` (why it is not the module a layout expects, for the loaders). A batch
  norm saved before ``nn`` kept ``running_var`` (class version < 2, ``running_std`` = 1/sqrt(var + eps)) gets its
  ``running_var`` the way ``nn`` itself converts it on load: ``running_std^-2 - eps``.

Weight layouts are Torch's and match PyTorch's: ``SpatialConvolution`` (out, in, kh, kw) like ``Conv2d``,
``SpatialFullConvolution`` (in, out, kh, kw) like ``ConvTranspose2d``, ``Linear`` (out, in). Files written by a
64-bit Linux or macOS Torch (8-byte ``long``) are read on such platforms, which is where Torch7 ran.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from torch import Tensor

from ganzoo_core.errors import CheckpointError

__all__ = ["T7Module", "is_t7_file", "read_t7", "t7_field", "t7_modules", "t7_tensor", "t7_typename"]

_INSTALL = "pip install 'ganzoo-core[torch7]'"
_TYPE_TABLE, _TYPE_TORCH = 3, 4
_RECURSION = 20_000  # Python frames torchfile may use while reading (3 per nesting level of Lua tables)
_MAX_HEAD_STRING = 256  # a class name or version string ("V 1") is short; longer means another format
_TRANSIENT = frozenset({
    "output", "gradInput", "gradWeight", "gradBias", "finput", "fgradInput", "buffer", "buffer2", "centered", "std",
    "normalized", "_input", "_gradOutput", "save_mean", "save_std", "ones", "columns", "gradOutput", "_output",
})


@attrs.frozen(kw_only=True)
class T7Module:
    """One module of a Torch7 network: its class name, its place in the tree, its tensors and its plain fields."""

    typename: str
    path: str
    tensors: dict[str, Tensor] = attrs.field(repr=lambda t: "{" + ", ".join(f"{k}: {tuple(v.shape)}"
                                                                             for k, v in t.items()) + "}")
    fields: dict[str, Any] = attrs.field(factory=dict)

    def describe(self) -> str:
        """``"nn.Linear at 1.0"``: how error messages name this module."""
        return f"{self.typename} at {self.path or 'the top'}"

    @property
    def base(self) -> str:
        """The class name without its package: ``SpatialConvolution`` for ``cudnn.SpatialConvolution``."""
        return self.typename.rsplit(".", 1)[-1]

    def conv_weight(self) -> Tensor:
        """The ``weight`` of a convolution as 4-d: old Torch convolutions (the MM kind) keep it as (out, in·kh·kw)."""
        w, f = self.tensors["weight"], self.fields
        if w.ndim == 2 and {"nInputPlane", "nOutputPlane", "kW", "kH"} <= set(f):
            w = w.reshape(f["nOutputPlane"], f["nInputPlane"], f["kH"], f["kW"])
        return w

    def misfit(self, base: str, fields: dict[str, Any], defaults: dict[str, Any], needed: tuple[str, ...] = ()) -> str:
        """Why this module is not a ``base`` with these ``fields`` (``defaults`` stand for absent ones) and these
        ``needed`` tensors: one phrase for an error message, ``""`` when it is."""
        if self.base != base:
            return f"expected {base}"
        for name, want in fields.items():
            got = self.fields.get(name, defaults.get(name))
            if got is None or abs(float(got) - float(want)) > 1e-9:
                return f"{name} {got}, expected {want}"
        missing = [k for k in needed if k not in self.tensors]
        return f"no {', '.join(missing)} (expected {', '.join(needed)})" if missing else ""


def _torchfile() -> Any:
    try:
        import torchfile
    except ImportError as err:
        raise CheckpointError(f"reading Torch7 (.t7) files needs the torchfile package: {_INSTALL}") from err
    return torchfile


def is_t7_file(path: str | Path) -> bool:
    """Whether ``path`` holds a Torch7 binary serialization, by content: a Torch object (type tag 4) or a table (3)
    with object index 1, followed by a short class name / version string or a table size."""
    try:
        with Path(path).open("rb") as f:
            head = f.read(12)
            if len(head) < 12:
                return False
            tag, index, third = struct.unpack("<iii", head)
            if index != 1 or tag not in (_TYPE_TABLE, _TYPE_TORCH):
                return False
            if tag == _TYPE_TABLE:
                return 0 <= third < 2**31 - 1
            if not 0 < third <= _MAX_HEAD_STRING:
                return False
            text = f.read(third)
    except OSError:
        return False
    return len(text) == third and (text.startswith(b"V ") or all(32 < b < 127 for b in text))


def read_t7(path: str | Path) -> Any:
    """The top object of the Torch7 file at ``path`` (see the module docstring for what each Lua value becomes)."""
    path = Path(path)
    torchfile = _torchfile()
    if not path.is_file():
        raise CheckpointError(f"Torch7 file {str(path)!r} does not exist")
    if not is_t7_file(path):
        raise CheckpointError(f"{str(path)!r} is not a Torch7 (.t7) binary file: it does not start with a Torch "
                              "object or table; pass a file written by torch.save in Lua Torch")
    limit = sys.getrecursionlimit()
    try:  # torchfile reads nested tables recursively; an nngraph module nests its graph deeply
        sys.setrecursionlimit(max(limit, _RECURSION))
        obj = torchfile.load(str(path))
    except (struct.error, EOFError, ValueError, TypeError, KeyError, IndexError, OverflowError, MemoryError,
            RecursionError, NotImplementedError, torchfile.T7ReaderException) as err:
        raise CheckpointError(f"Torch7 file {str(path)!r} could not be read ({type(err).__name__}: "
                              f"{' '.join(str(err).split())[:200]}); it may be truncated, or use a type torchfile "
                              "does not read (half tensors)") from err
    finally:
        sys.setrecursionlimit(limit)
    for where, array in _arrays(obj):
        if not _inside_storage(array):
            raise CheckpointError(f"Torch7 file {str(path)!r}: the tensor at {where} has a size or stride that "
                                  f"reaches outside its storage (shape {tuple(array.shape)}); the file is damaged")
    return obj


def _arrays(obj: Any, where: str = "the top", seen: set[int] | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """Every numpy array in the object tree (tables, lists, Torch objects), each once, with where it sits."""
    seen = set() if seen is None else seen
    stack: list[tuple[str, Any]] = [(where, obj)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, np.ndarray):
            yield where, value
            continue
        if id(value) in seen:
            continue
        seen.add(id(value))
        for key, item in _children(value):
            stack.append((f"{where}.{key}" if where != "the top" else str(key), item))


def _children(value: Any) -> list[tuple[str, Any]]:
    if t7_typename(value):
        value = value._obj
    if isinstance(value, dict):
        return [(_text(k), v) for k, v in value.items()]
    if isinstance(value, list):
        return [(str(i), v) for i, v in enumerate(value)]
    return []


def _inside_storage(array: np.ndarray) -> bool:
    """Whether the bytes ``array`` (an ``as_strided`` view) can reach lie inside the storage it was cut from."""
    if array.size == 0:
        return True
    owner: Any = array.base  # as_strided: a DummyArray whose base is the storage slice, whose base is the storage
    while owner is not None and getattr(owner, "base", None) is not None:
        owner = owner.base
    if not isinstance(owner, np.ndarray):
        return True  # the array owns its memory: nothing to reach outside of
    start = array.__array_interface__["data"][0] - owner.__array_interface__["data"][0]
    low = start + sum((n - 1) * s for n, s in zip(array.shape, array.strides) if s < 0)
    high = start + sum((n - 1) * s for n, s in zip(array.shape, array.strides) if s > 0) + array.itemsize
    return 0 <= low and high <= owner.nbytes


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def t7_typename(obj: Any) -> str:
    """The Torch class name of ``obj`` (``"nn.Linear"``, ``"cudnn.SpatialConvolution"``), ``""`` when it is not a
    Torch object (a table, a number, a tensor, ...)."""
    typename = getattr(type(obj), "torch_typename", None)
    return _text(obj.torch_typename()) if callable(typename) else ""


def t7_field(obj: Any, name: str, default: Any = None) -> Any:
    """The field ``name`` of a Torch object or a table (Lua strings are ``bytes`` keys), or ``default``."""
    table = obj._obj if t7_typename(obj) else obj
    if not isinstance(table, dict):
        return default
    for key in (name.encode("utf-8"), name):
        if key in table:
            return table[key]
    return default


def t7_tensor(value: Any) -> Tensor:
    """A Torch7 tensor (a numpy array from ``read_t7``) as a contiguous CPU ``torch.Tensor``: floating types as
    float32, integer types as they are. Anything else is a ``CheckpointError`` naming its type."""
    if not isinstance(value, np.ndarray):
        raise CheckpointError(f"expected a Torch7 tensor, got a {type(value).__name__}")
    array = np.array(value, copy=True, order="C")  # out of the file's storage, contiguous, writable
    if array.dtype.kind == "f":
        array = array.astype(np.float32, copy=False)
    return torch.from_numpy(array)


def t7_modules(obj: Any, *, containers: bool = False) -> list[T7Module]:
    """The modules of the Torch7 network ``obj`` in forward order (depth first through every ``modules`` list).
    Containers themselves are listed (before their children) only with ``containers=True``."""
    out: list[T7Module] = []
    _walk(obj, "", out, containers, set())
    return out


def _walk(obj: Any, path: str, out: list[T7Module], containers: bool, seen: set[int]) -> None:
    if id(obj) in seen:
        return
    seen.add(id(obj))
    children = t7_field(obj, "modules")
    is_container = isinstance(children, list) and bool(t7_typename(obj))
    if not is_container or containers:
        if t7_typename(obj):
            out.append(_module(obj, path))
    if isinstance(children, list):
        for i, child in enumerate(children):
            if t7_typename(child):
                _walk(child, f"{path}.{i}" if path else str(i), out, containers, seen)


def _module(obj: Any, path: str) -> T7Module:
    typename = t7_typename(obj)
    tensors: dict[str, Tensor] = {}
    fields: dict[str, Any] = {}
    table = obj._obj if isinstance(obj._obj, dict) else {}  # an empty table reads as an empty list
    for key, value in table.items():
        name = _text(key)
        if isinstance(value, np.ndarray):
            if name not in _TRANSIENT and value.size:
                tensors[name] = t7_tensor(value)
        elif isinstance(value, bool | int | float | str | bytes):
            fields[name] = _text(value) if isinstance(value, bytes) else value
    std = tensors.get("running_std")
    if typename.endswith("BatchNormalization") and std is not None and "running_var" not in tensors \
            and getattr(obj, "_version_number", 0) < 2:
        tensors["running_var"] = std.pow(-2) - float(fields.get("eps", 1e-5))
        del tensors["running_std"]
    return T7Module(typename=typename, path=path, tensors=tensors, fields=fields)
