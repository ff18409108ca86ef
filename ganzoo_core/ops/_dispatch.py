"""The op layer's plumbing: implementations filed in the registry as ``op.impl``, chosen by ``impl=``.

Every op has exactly one reference implementation (plain PyTorch, the ground truth of the parity tests) and any
number of others. ``impl="auto"`` chooses, for the device type of the call:

1. the process-wide choice made with ``use_impls(...)``, if any (then it behaves like an explicit ``impl=``);
2. the implementation the measured cache names for this op on this device (``ganzoo bench ops --write-cache``),
   when it can run;
3. otherwise the highest-priority implementation that declares itself an ``auto`` candidate for the device type
   (CPU only: on CUDA nothing is a candidate before it was measured there, so an unmeasured GPU runs the reference,
   PyTorch's own cuDNN path);
4. otherwise the reference. When the candidate of step 3 cannot run (Triton missing on a GPU machine, no compiler
   for ``torch.compile``), the reference runs and one warning says why.

An explicit ``impl=`` that cannot run raises ``OpUnavailableError`` with the reason and the implementations that can.

When the choice is made: the measured cache file is read once per process (per cache location) and read again only
after ``write_cache`` or ``reload_impl_cache``; nothing stats it, and its path is built only when a choice is made, not
per call. A functional call (``bias_act(x, impl="auto")``) looks its choice up per call in a table kept in memory
(keyed by the op, ``impl=``, the device type, the registry's version and ``$GANZOO_IMPL_CACHE`` / ``$TRITON_INTERPRET``
as set, so a test that points them elsewhere gets a fresh choice). An op module (``BatchNormAct2d(impl=...)``, ...)
resolves its ``impl=`` to the implementation's function once per device type, on its first forward there (the choice
depends on the device type of its input, which a module without parameters cannot know before), keeps that function
and calls it directly afterwards, without entering the dispatcher, until ``refresh_impls(module)``, ``write_cache`` or
``reload_impl_cache``. ``use_impls`` applies to modules too, at each forward.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import platform
import types
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import attrs
import torch
from torch import nn

from ganzoo_core._plugins import get_host
from ganzoo_core._registry import Entry, register
from ganzoo_core.errors import GanzooError

F = TypeVar("F", bound=Callable[..., Any])

CACHE_ENV = "GANZOO_IMPL_CACHE"
CACHE_VERSION = 1


class OpUnavailableError(GanzooError, RuntimeError):
    """An implementation named explicitly with ``impl=`` cannot run on this device or machine."""


@attrs.frozen(kw_only=True)
class ImplSpec:
    """What an implementation needs: the registry config of an ``op`` entry."""

    devices: tuple[str, ...] = attrs.field(default=("cpu", "cuda"), converter=tuple)  # device types it runs on
    requires: Callable[[str], str | None] | None = attrs.field(default=None, eq=False)  # (device type) -> why not
    reference: bool = False  # the plain-PyTorch ground truth; exactly one per op
    auto: tuple[str, ...] = attrs.field(default=(), converter=tuple)  # device types "auto" may pick it for unmeasured
    priority: int = attrs.field(default=0, validator=attrs.validators.instance_of(int))  # among auto candidates, higher
    # first (any integer)


def register_op(
    name: str,
    *,
    devices: tuple[str, ...] = ("cpu", "cuda"),
    requires: Callable[[str], str | None] | None = None,
    reference: bool = False,
    auto: tuple[str, ...] = (),
    priority: int = 0,
    summary: str = "",
    paper: str = "",
) -> Callable[[F], F]:
    """Mark a function as implementation ``op.impl`` (e.g. ``"bias_act.triton"``) of a kernel.

    The function takes the op's arguments after the dispatcher's argument checks (see the op's module).
    ``requires(device_type)`` returns a reason string when the implementation cannot run there on this machine (a
    missing package, no compiler), else None. ``auto`` lists the device types on which ``impl="auto"`` may choose it without a
    measurement. A plugin adds an implementation to a core op the same way, from its own module.
    """
    spec = ImplSpec(devices=devices, requires=requires, reference=reference, auto=auto, priority=priority)
    return register("op", name, cfg=spec, default=reference, summary=summary, paper=paper)


# -- op specifications (for parity tests and benchmarks) -----------------------------------------------------------


@attrs.frozen(kw_only=True)
class Case:
    """One set of inputs an op's ``sample`` function builds: dtype, device, memory format and a shape name."""

    dtype: torch.dtype = torch.float32
    device: str = "cpu"
    channels_last: bool = False
    shape: str = "small"  # "small", "odd" (sizes not a multiple of anything), or one of the op's benchmark shapes
    variant: str = ""  # one of the op's variants (an activation, a norm kind); "" for the first
    requires_grad: bool = True
    params: Any = None  # the shape's parameters (an instance of the op's ``shape_type``) given directly, e.g. from a
    # benchmark shapes file; ``shape`` is then only its name


def _positive_dims(_: Any, attribute: attrs.Attribute[Any], value: tuple[Any, ...]) -> None:
    if not value or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
        raise ValueError(f"{attribute.name} must be a list of positive integers, got {list(value)}")


def dims_field(ndim: int | None = None) -> Any:
    """An ``attrs`` field of a shape type: a tensor shape (positive integers, ``ndim`` of them when given), a list
    in a shapes file."""
    validators: list[Any] = [_positive_dims]
    if ndim is not None:
        def _ndim(_: Any, attribute: attrs.Attribute[Any], value: tuple[Any, ...]) -> None:
            if len(value) != ndim:
                raise ValueError(f"{attribute.name} must have {ndim} sizes, got {list(value)}")

        validators.append(_ndim)
    return attrs.field(converter=tuple, validator=validators)


@attrs.frozen(kw_only=True)
class OpSpec:
    """How to exercise an op: the tests and benchmarks are generated from these, one per op."""

    name: str
    call: Callable[..., Any]  # the public dispatcher, taking impl=
    sample: Callable[[Case, torch.Generator], tuple[tuple[Any, ...], dict[str, Any]]]  # fresh random inputs
    variants: tuple[str, ...] = ("",)  # settings every implementation is tested under (activations, norm kinds)
    shapes: Mapping[str, str] = attrs.field(factory=dict)  # built-in benchmark shape name -> what it stands for
    shape_type: type | None = None  # the attrs class of a shape's parameters (what a benchmark shapes file gives)
    test_shapes: tuple[str, ...] = ()  # more shape names every implementation is tested at (fp32, bf16, channels_last)
    grad: bool = True  # compare gradients (False: an inference-only op)
    double_grad: bool = False  # the op's output is built from a gradient (a penalty): backward is second order
    tol: Mapping[torch.dtype, tuple[float, float]] = attrs.field(
        factory=lambda: {torch.float32: (1e-4, 1e-5), torch.bfloat16: (2e-2, 2e-2)}
    )  # (rtol, atol) against the reference, per dtype


_SPECS: dict[str, OpSpec] = {}


def define_op(spec: OpSpec) -> OpSpec:
    """Declare an op's test and benchmark specification (once, in the module that defines the op)."""
    _SPECS[spec.name] = spec
    return spec


def get_op_spec(op: str) -> OpSpec:
    try:
        return _SPECS[op]
    except KeyError:
        raise GanzooError(f"no op specification for {op!r}; defined: {', '.join(sorted(_SPECS))}") from None


def list_op_specs() -> list[OpSpec]:
    return [_SPECS[k] for k in sorted(_SPECS)]


# -- lookup --------------------------------------------------------------------------------------------------------


def _registry() -> Any:
    return get_host().registry


def list_ops(pattern: str = "*") -> dict[str, list[str]]:
    """Op name -> its implementation names, the reference first (``{"bias_act": ["ref", "fused", ...]}``)."""
    out: dict[str, list[Entry]] = {}
    for name in _registry().names("op", pattern if "." in pattern else f"{pattern}.*"):
        entry = _registry().get("op", name)
        out.setdefault(entry.family, []).append(entry)
    return {op: [e.variant for e in sorted(es, key=lambda e: (not e.cfg.reference, e.name))] for op, es in out.items()}


def get_impl_entry(op: str, impl: str) -> Entry:
    return _registry().get("op", f"{op}.{impl}")


def why_not(entry: Entry, device_type: str) -> str | None:
    """Why implementation ``entry`` cannot run on ``device_type`` here, or None when it can."""
    spec: ImplSpec = entry.cfg
    if device_type not in spec.devices:
        return f"it runs on {'/'.join(spec.devices)} tensors, not {device_type}"
    return spec.requires(device_type) if spec.requires is not None else None


def available_impls(op: str, device: torch.device | str) -> list[str]:
    """The implementations of ``op`` that can run on ``device`` on this machine, the reference first."""
    dev = torch.device(device).type
    return [i for i in list_ops(op).get(op, []) if why_not(get_impl_entry(op, i), dev) is None]


_forced: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "ganzoo_forced_impls", default=types.MappingProxyType({})
)


@contextlib.contextmanager
def use_impls(default: str | None = None, **ops: str) -> Iterator[None]:
    """Within the block, ``impl="auto"`` means the given implementation: ``use_impls(bias_act="ref")``, or
    ``use_impls("ref")`` for every op (the way to check a model against the pure-PyTorch path)."""
    merged = dict(_forced.get())
    if default is not None:
        merged["*"] = default
    merged.update(ops)
    token = _forced.set(merged)
    try:
        yield
    finally:
        _forced.reset(token)


# -- measured cache ------------------------------------------------------------------------------------------------


def cache_path() -> Path:
    """Where ``ganzoo bench ops --write-cache`` stores measured choices (``$GANZOO_IMPL_CACHE`` overrides)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ganzoo" / "impls.json"


def device_name(device_type: str) -> str:
    """What the cache keys a measurement by: the GPU's name, or the CPU's model."""
    if device_type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _read_cache(path: Path) -> dict[str, str]:
    """``{"op/device type": impl}`` of the cache file at ``path`` measured on this machine ({} when there is none)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        warnings.warn(f"ignoring the op implementation cache {path}: {err}; rewrite it with "
                      "'ganzoo bench ops --write-cache'", stacklevel=4)
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        warnings.warn(f"ignoring the op implementation cache {path}: not version {CACHE_VERSION}; rewrite it "
                      "with 'ganzoo bench ops --write-cache'", stacklevel=4)
        return {}
    choices = {}
    for key, row in (data.get("choices") or {}).items():
        op, _, dev = key.partition("/")
        if isinstance(row, dict) and row.get("device_name") == device_name(dev):  # another machine's: not ours
            choices[key] = str(row.get("impl"))
    return choices


_tables: dict[str, dict[str, str]] = {}  # cache file path -> its choices, read once
_generation = 0  # counts write_cache / reload_impl_cache calls: resolutions made before are stale


def reload_impl_cache() -> None:
    """Forget the measured choices read so far: the next ``impl="auto"`` resolution reads the cache file again, and
    op modules resolve again on their next forward. ``write_cache`` does this itself; call it after changing the file
    by other means (or after pointing ``$GANZOO_IMPL_CACHE`` elsewhere in a running process)."""
    global _generation
    _tables.clear()
    _resolved.clear()
    _generation += 1


def measured_choice(op: str, device_type: str) -> str | None:
    """The implementation the measured cache names for ``op`` on ``device_type`` on this machine, or None. The file
    is read on first use and kept in memory (see ``reload_impl_cache``)."""
    key = str(cache_path())
    table = _tables.get(key)
    if table is None:
        table = _tables[key] = _read_cache(Path(key))
    return table.get(f"{op}/{device_type}")


def write_cache(choices: Mapping[str, str], measurements: Mapping[str, Any] | None = None,
                path: Path | None = None) -> Path:
    """Store ``{"op/device": impl}`` (merged with what is there) atomically, for ``impl="auto"`` to read."""
    from ganzoo_core.checkpoints import atomic_path

    path = path or cache_path()
    try:
        data = json.loads(path.read_text())
        if data.get("version") != CACHE_VERSION:
            data = {}
    except (OSError, ValueError):
        data = {}
    rows = dict(data.get("choices") or {})
    for key, impl in choices.items():
        dev = key.partition("/")[2]
        rows[key] = {"impl": impl, "device_name": device_name(dev), "torch": torch.__version__,
                     **({"measured": measurements[key]} if measurements and key in measurements else {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, overwrite=True, what="kernel choice cache") as tmp:
        Path(tmp).write_text(json.dumps({"version": CACHE_VERSION, "choices": rows}, indent=2, sort_keys=True))
    reload_impl_cache()
    return path


# -- resolution ----------------------------------------------------------------------------------------------------

_resolved: dict[tuple[Any, ...], Entry] = {}
_warned: set[tuple[str, str, str]] = set()


def _resolve_entry(op: str, impl: str, device_type: str) -> Entry:
    """The registry entry implementing ``op`` on ``device_type`` for ``impl=`` (``auto`` after ``use_impls``), memoised
    per registry state and measured-cache generation: once a choice is known no file is touched and no path built
    (the key holds ``$GANZOO_IMPL_CACHE`` as set, not the path it leads to)."""
    if impl == "auto":
        forced = _forced.get()
        if forced:
            impl = forced.get(op, forced.get("*", "auto"))
    registry = _registry()
    key = (op, impl, device_type, id(registry), registry.version, os.environ.get("TRITON_INTERPRET"),
           os.environ.get(CACHE_ENV) if impl == "auto" else None)
    entry = _resolved.get(key)
    if entry is None:
        entry = _resolved[key] = _choose(op, impl, device_type)
    return entry


def resolve(op: str, impl: str, device: torch.device) -> Callable[..., Any]:
    """The function implementing ``op`` for a call on ``device`` with ``impl=`` (see the module docstring)."""
    return _resolve_entry(op, impl, device.type).factory


def auto_impl(op: str, device: torch.device | str) -> str:
    """The implementation name ``impl="auto"`` chooses for ``op`` on ``device``'s type here, ``use_impls`` included."""
    return _resolve_entry(op, "auto", torch.device(device).type).variant


def _choose(op: str, impl: str, dev: str) -> Entry:
    impls = list_ops(op).get(op)
    if not impls:
        raise GanzooError(f"no implementation of op {op!r} is registered; registered ops: "
                          f"{', '.join(list_ops()) or 'none'} (is the core.ops plugin loaded? see 'ganzoo plugins')")
    if impl != "auto":
        entry = get_impl_entry(op, impl)
        reason = why_not(entry, dev)
        if reason is not None:
            can = [i for i in impls if why_not(get_impl_entry(op, i), dev) is None]
            raise OpUnavailableError(
                f"op {op!r} implementation {impl!r} cannot run on {dev}: {reason}; use impl='auto' or one of "
                f"{', '.join(repr(i) for i in can)}"
            )
        return entry
    entries = [get_impl_entry(op, i) for i in impls]
    reference = next(e for e in entries if e.cfg.reference)
    measured = measured_choice(op, dev)
    if measured in impls and why_not(get_impl_entry(op, measured), dev) is None:
        return get_impl_entry(op, measured)
    candidates = sorted((e for e in entries if dev in e.cfg.auto), key=lambda e: -e.cfg.priority)
    if candidates:
        reason = why_not(candidates[0], dev)
        if reason is None:
            return candidates[0]
        if (op, candidates[0].variant, dev) not in _warned:
            _warned.add((op, candidates[0].variant, dev))
            warnings.warn(
                f"ganzoo op {op!r}: the faster implementation {candidates[0].variant!r} cannot run on {dev} "
                f"({reason}); falling back to the reference implementation", RuntimeWarning, stacklevel=6,
            )
    return reference


def dispatch(op: str, impl: str, device: torch.device, reference: Callable[..., Any]) -> Callable[..., Any]:
    """What an op's public function calls: the implementation to run. Inside ``torch.compile`` tracing the
    reference is returned as is, so the compiler sees plain PyTorch and fuses it itself."""
    if torch.compiler.is_compiling():
        return reference
    return resolve(op, impl, device)


# -- op modules: auto resolved once --------------------------------------------------------------------------------


class AutoImpl:
    """Mixin of the op modules (``BatchNormAct2d``, ``UpsampleConv2d``, ...): their ``impl=`` (``"auto"`` or a name)
    is resolved to the implementation's function once per device type, on the first forward there, and that function
    is called directly afterwards (``resolved_function``), instead of being looked up per call.

    ``use_impls`` still applies at every forward (to ``impl="auto"``); inside ``torch.compile`` tracing the reference
    runs, as ``dispatch`` gives it. The kept choices are dropped by ``refresh_impls(module)`` and, for every module, by
    ``write_cache`` / ``reload_impl_cache`` (so ``ganzoo bench ops --write-cache`` takes effect in a running process).
    They are plain attributes: not part of the state dict.
    """

    op_name: ClassVar[str]  # the op the module runs
    impl: str

    def _kept(self, device_type: str) -> tuple[str, Callable[..., Any]]:
        """(implementation name, function) for ``device_type``: resolved on first use, then kept (one dict lookup)."""
        kept = self.__dict__.get("_ganzoo_impls")
        if kept is None or kept[0] != _generation:
            kept = (_generation, {})
            self.__dict__["_ganzoo_impls"] = kept
        choice = kept[1].get(device_type)
        if choice is None:  # an implementation that cannot run raises here, every time: only a success is kept
            entry = _resolve_entry(self.op_name, self.impl, device_type)
            choice = kept[1][device_type] = (entry.variant, entry.factory)
        return choice

    def _forced_here(self) -> bool:
        forced = _forced.get()
        return bool(forced) and self.impl == "auto" and (self.op_name in forced or "*" in forced)

    def resolved_function(self, device: torch.device, reference: Callable[..., Any]) -> Callable[..., Any]:
        """The function to call for an input on ``device`` with the op's checked arguments (what ``dispatch`` would
        return for ``self.impl``), kept per device type; ``reference`` is the op's reference (run while compiling)."""
        if torch.compiler.is_compiling():
            return reference
        if self._forced_here():
            return resolve(self.op_name, "auto", device)
        return self._kept(device.type)[1]

    def resolved_impl(self, device: torch.device) -> str:
        """The ``impl=`` to pass to the op for an input on ``device``: ``self.impl`` unless it is ``"auto"``, else the
        choice kept for the device type (made now if there is none yet). For a plugin's op module that calls the op's
        public function; ``resolved_function`` also skips the dispatcher."""
        if self.impl != "auto" or torch.compiler.is_compiling():  # compiling: dispatch() takes the reference
            return self.impl
        if self._forced_here():
            return "auto"  # the dispatcher applies use_impls
        return self._kept(device.type)[0]

    def refresh_impl(self) -> None:
        """Drop the kept choices: the next forward resolves ``impl=`` again."""
        self.__dict__.pop("_ganzoo_impls", None)

    def __getstate__(self) -> dict[str, Any]:
        """A pickled module (``torch.save(module)``) leaves its kept choices behind: they name functions of this
        process's registry, and the machine that loads it chooses for itself."""
        state = dict(super().__getstate__())  # type: ignore[misc]  # nn.Module's copy (it drops its own caches)
        state.pop("_ganzoo_impls", None)
        return state


def refresh_impls(module: nn.Module) -> int:
    """Make every op module in ``module`` (itself included) resolve ``impl="auto"`` again on its next forward, e.g.
    after registering a faster implementation; returns how many op modules there are."""
    found = [m for m in module.modules() if isinstance(m, AutoImpl)]
    for m in found:
        m.refresh_impl()
    return len(found)
