"""Plugin discovery and loading: entry points in the group ``ganzoo``, through pluggy.

Environment:
- ``GANZOO_LOAD_PLUGINS=a,b`` loads only the named plugins (entry point or distribution names); ``""`` loads none.
  The core's own built-ins always load.
- ``GANZOO_TRACE_PLUGINS=1`` logs every hook call.
"""

from __future__ import annotations

import contextvars
import importlib
import importlib.metadata as md
import logging
import os
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import attrs
import pluggy

from ganzoo_core import hookspecs
from ganzoo_core._catalogue import first_party_owner, install_hint
from ganzoo_core._registry import (
    Entry,
    Registry,
    _on_mark,
    check_kind,
    check_name,
    entries_from_marks,
    iter_marked,
    summary_of,
)
from ganzoo_core.errors import GanzooError, PluginError

log = logging.getLogger("ganzoo.plugins")

ENTRY_POINT_GROUP = "ganzoo"
API_VERSION: tuple[int, int] = (1, 0)
"""The plugin API this core implements. A plugin declares ``GANZOO_API_VERSION = "1.0"``; it loads when the major
numbers match and its minor number is not newer than the core's."""

DEFAULT_PLUGINS: tuple[str, ...] = (
    "ganzoo_core.losses", "ganzoo_core.datasets", "ganzoo_core.data", "ganzoo_core.metrics", "ganzoo_core.ops",
    "ganzoo_core.text",
)
"""The core's own built-ins, loaded through the same path as third-party plugins."""


@attrs.frozen(kw_only=True)
class PluginInfo:
    name: str
    module: str
    distribution: str
    version: str
    hooks: tuple[str, ...]
    entries: tuple[str, ...]  # "kind name"


@attrs.frozen(kw_only=True)
class PluginFailure:
    name: str
    module: str
    distribution: str
    version: str
    error: str

    def __str__(self) -> str:
        return f"{self.name} ({self.distribution} {self.version}): {self.error}"


def parse_api_version(value: Any) -> tuple[int, int]:
    text = ".".join(str(v) for v in value) if isinstance(value, tuple) else str(value)
    parts = text.split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"GANZOO_API_VERSION must look like '1.0', got {value!r}")
    return int(parts[0]), int(parts[1])


def check_api_version(module: ModuleType) -> None:
    declared = getattr(module, "GANZOO_API_VERSION", None)
    core = f"{API_VERSION[0]}.{API_VERSION[1]}"
    if declared is None:
        raise GanzooError(f"declares no GANZOO_API_VERSION; add GANZOO_API_VERSION = {core!r} to {module.__name__}")
    major, minor = parse_api_version(declared)
    if major != API_VERSION[0] or minor > API_VERSION[1]:
        raise GanzooError(
            f"was written for plugin API {major}.{minor}, but this ganzoo-core implements {core}; "
            "install a version of the plugin made for this core, or upgrade ganzoo-core"
        )


_loading: contextvars.ContextVar[bool] = contextvars.ContextVar("ganzoo_loading", default=False)


class PluginHost:
    """A pluggy manager, the registry it fills, and what loaded and what failed."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.registry = Registry(hint=self._hint)
        self.plugins: dict[str, PluginInfo] = {}
        self.failures: list[PluginFailure] = []
        if os.environ.get("GANZOO_TRACE_PLUGINS") == "1":
            self.pm.trace.root.setwriter(lambda msg: log.warning("hook: %s", msg.rstrip()))
            self.pm.enable_tracing()

    # -- loading -------------------------------------------------------------------------------------------------
    def load_defaults(self) -> None:
        from ganzoo_core._version import __version__

        for module in DEFAULT_PLUGINS:
            self.load_module(module, name="core." + module.rsplit(".", 1)[1], distribution="ganzoo-core",
                             version=__version__)

    def load_entry_points(self, only: set[str] | None = None) -> None:
        """Load every ``ganzoo`` entry point (or those named in ``only``); failures are recorded, not raised."""
        eps = sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
        seen: set[str] = set()
        for ep in eps:
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            if only is not None and ep.name not in only and dist not in only:
                continue
            seen |= {ep.name, dist}
            self.load_module(ep.value, name=ep.name, distribution=dist, version=version, loader=ep.load)
        for missing in sorted((only or set()) - seen):
            self._fail(missing, "?", "?", "?", "named in GANZOO_LOAD_PLUGINS but no such plugin is installed")

    def load_module(
        self,
        module: str,
        *,
        name: str | None = None,
        distribution: str = "",
        version: str = "",
        loader: Callable[[], Any] | None = None,
    ) -> bool:
        """Import ``module`` as plugin ``name``, collect its registrations in one transaction; False on failure."""
        name = name or module
        distribution, version = distribution or _dist_of(module), version or _version_of(module)
        if name in self.plugins:
            return True
        token = _loading.set(True)
        try:
            mod = loader() if loader else importlib.import_module(module)
            if not isinstance(mod, ModuleType):
                raise GanzooError(f"entry point must name a module, got {type(mod).__name__}")
            check_api_version(mod)
            with self.registry.transaction():
                added = self._collect(mod, name)
                self.pm.register(mod, name)
                try:
                    added += self._call_register(mod, name)
                except BaseException:
                    self.pm.unregister(mod)
                    raise
        except BaseException as err:  # a broken plugin (even one calling sys.exit) must never stop the others or the CLI
            if isinstance(err, KeyboardInterrupt):
                raise
            self._fail(name, module, distribution, version, _describe(err))
            return False
        finally:
            _loading.reset(token)
        hooks = tuple(sorted(c.name for c in self.pm.get_hookcallers(mod) or ()))
        self.plugins[name] = PluginInfo(
            name=name, module=mod.__name__, distribution=distribution, version=version, hooks=hooks,
            entries=tuple(f"{e.kind} {e.name}" for e in added),
        )
        return True

    def _collect(self, mod: ModuleType, plugin: str) -> list[Entry]:
        prefix = mod.__name__
        modules = [m for n, m in list(sys.modules.items()) if n == prefix or n.startswith(prefix + ".")]
        added = []
        for obj in iter_marked(modules):
            for entry in entries_from_marks(obj, plugin):
                self._add(entry, prefix)
                added.append(entry)
        return added

    def _add(self, entry: Entry, package: str) -> None:
        """File ``entry`` for the plugin whose top package is ``package``; a first-party name is reserved for its
        own plugin, so a third-party plugin taking one is the one rejected, whatever the load order."""
        owner = first_party_owner(entry.kind, entry.name)
        top = package.split(".", 1)[0]
        if owner is not None and owner[1] and top != owner[1]:
            raise GanzooError(f"registers {entry.kind} {entry.name!r}, a name that the first-party plugin {owner[0]} "
                              "provides; the plugin was not loaded (and cannot replace it): rename its entry, e.g. "
                              f"'{top.replace('_', '-').lower()}.{entry.variant}'")
        self.registry.add(entry)

    def _call_register(self, mod: ModuleType, plugin: str) -> list[Entry]:
        added: list[Entry] = []

        def register(kind: str, name: str, factory: Callable[..., Any], *, cfg: Any = None, default: bool = False,
                     summary: str = "", paper: str = "") -> None:
            entry = Entry(kind=check_kind(kind), name=check_name(name), factory=factory, cfg=cfg, default=default,
                          summary=summary or summary_of(factory), paper=paper,
                          module=getattr(factory, "__module__", ""), plugin=plugin)
            self._add(entry, mod.__name__)
            added.append(entry)

        others = [p for p in self.pm.get_plugins() if p is not mod]
        self.pm.subset_hook_caller("ganzoo_register", remove_plugins=others)(register=register)
        return added

    def _fail(self, name: str, module: str, dist: str, version: str, error: str) -> None:
        failure = PluginFailure(name=name, module=module, distribution=dist, version=version, error=error)
        if failure in self.failures:
            return
        self.failures.append(failure)
        warnings.warn(f"ganzoo plugin skipped: {failure}", RuntimeWarning, stacklevel=3)

    def add_loose(self, obj: Any) -> None:
        """Add marks made outside a plugin load (a script, a notebook), attributed to the object's top module."""
        plugin = getattr(obj, "__module__", "__main__").split(".", 1)[0]
        for entry in entries_from_marks(obj, plugin):
            if self.registry.has(entry.kind, entry.name) and self.registry.get(entry.kind, entry.name).factory is obj:
                continue  # a plugin module imported by hand before loading: the loader already claimed it
            self.registry.add(entry)

    def add_commands(self, subparsers: Any, context: dict[str, Any]) -> None:
        """Let each plugin add CLI commands; one that raises or takes a used name is reported and skipped."""
        for impl in self.pm.hook.ganzoo_add_commands.get_hookimpls():
            taken = set(subparsers.choices)
            try:
                impl.function(subparsers=subparsers, context=dict(context))
            except BaseException as err:
                if isinstance(err, KeyboardInterrupt):
                    raise
                added = set(subparsers.choices) - taken
                for name in added:  # drop what it added before failing
                    del subparsers.choices[name]
                subparsers._choices_actions[:] = [a for a in subparsers._choices_actions if a.dest not in added]
                info = self.plugins.get(impl.plugin_name)
                self._fail(impl.plugin_name, info.module if info else "?", info.distribution if info else "?",
                           info.version if info else "?", f"ganzoo_add_commands: {_describe(err)}")

    # -- reporting -----------------------------------------------------------------------------------------------
    def _hint(self, kind: str, name: str) -> str:
        loaded = {info.module.split(".", 1)[0] for info in self.plugins.values()}
        failed = {f.module.split(".", 1)[0]: f.error for f in self.failures}
        hint = install_hint(name, loaded, failed, filtered=_plugin_filter() is not None)
        if not hint and self.failures:
            names = ", ".join(f.name for f in self.failures)
            hint = f"{len(self.failures)} plugin(s) failed to load ({names}); see 'ganzoo plugins'"
        return hint

    def plugin_of_module(self, module: str) -> PluginInfo | None:
        for info in self.plugins.values():
            if module == info.module or module.startswith(info.module + "."):
                return info
        return None


def _describe(err: BaseException) -> str:
    frame = traceback.extract_tb(err.__traceback__)[-1:] if err.__traceback__ else []
    where = f" (at {frame[0].filename}:{frame[0].lineno})" if frame and not isinstance(err, GanzooError) else ""
    return f"{type(err).__name__}: {err}{where}"


def _dist_of(module: str) -> str:
    """The distribution that ships ``module``: by its ganzoo entry point, else by the installed file lists."""
    top = module.split(".", 1)[0]
    for ep in md.entry_points(group=ENTRY_POINT_GROUP):
        if ep.dist is not None and ep.value.split(":", 1)[0].split(".", 1)[0] == top:
            return ep.dist.name
    return (md.packages_distributions().get(top) or ["?"])[0]


def _version_of(module: str) -> str:
    try:
        return md.version(_dist_of(module))
    except md.PackageNotFoundError:
        return "?"


# -- the process-wide host ---------------------------------------------------------------------------------------

_HOST: PluginHost | None = None
_LOCK = threading.RLock()
_PENDING: list[Any] = []


def _plugin_filter() -> set[str] | None:
    raw = os.environ.get("GANZOO_LOAD_PLUGINS")
    if raw is None:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


def get_host() -> PluginHost:
    """The active host, created on first use: built-ins, then installed entry points (see module doc)."""
    global _HOST
    with _LOCK:
        if _HOST is None:
            host = PluginHost()
            host.load_defaults()
            host.load_entry_points(_plugin_filter())
            _HOST = host
            for obj in _PENDING:
                host.add_loose(obj)
            _PENDING.clear()
        return _HOST


def set_host(host: PluginHost | None) -> PluginHost | None:
    """Make ``host`` the active one (None: build a fresh one on next use); returns the previous host."""
    global _HOST
    with _LOCK:
        previous, _HOST = _HOST, host
        return previous


@contextmanager
def use_host(host: PluginHost) -> Iterator[PluginHost]:
    """Temporarily make ``host`` active (tests use this to never see what happens to be installed)."""
    previous = set_host(host)
    try:
        yield host
    finally:
        set_host(previous)


def make_host(modules: tuple[str, ...] = (), *, entry_points: bool = False) -> PluginHost:
    """A new host with the built-ins, the plugin ``modules`` given, and optionally installed entry points."""
    host = PluginHost()
    host.load_defaults()
    for module in modules:
        host.load_module(module, name=module.removeprefix("ganzoo_").replace("_", "-"))
    if entry_points:
        host.load_entry_points(_plugin_filter())
    return host


def _on_loose_mark(obj: Any) -> None:
    if _loading.get():
        return  # collected by the loader's scan
    with _LOCK:
        if _HOST is None:
            _PENDING.append(obj)
        else:
            _HOST.add_loose(obj)


_on_mark.append(_on_loose_mark)


def list_plugins() -> list[PluginInfo]:
    """Loaded plugins (built-ins first), with distribution, version, hooks and registered names."""
    return list(get_host().plugins.values())


def list_plugin_failures() -> list[PluginFailure]:
    """Plugins that were found but skipped, with the reason."""
    return list(get_host().failures)


def require_plugin(name: str) -> PluginInfo:
    host = get_host()
    if name in host.plugins:
        return host.plugins[name]
    failure = next((f for f in host.failures if f.name == name), None)
    raise PluginError(name, failure.error if failure else "is not installed (see 'ganzoo plugins')")
