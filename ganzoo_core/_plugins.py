"""Plugin discovery and loading: entry points in the group ``ganzoo``, through pluggy.

Environment:
- ``GANZOO_LOAD_PLUGINS=a,b`` loads only the named plugins (entry point or distribution names); ``""`` loads none.
  The core's own built-ins always load.
- ``GANZOO_TRACE_PLUGINS=1`` logs every hook call.

Every registration (a ``@register_*`` decorator, ``register_retired``, or the ``register`` callback of the
``ganzoo_register`` hook) is filed by ``PluginHost.file``. A decorator's registrations are also remembered per module
(``file_registrations``): a module is imported once per process, but every host that loads its plugin (tests build
many) gets them, attributed to that plugin, whether the module was imported by the load or by hand before it.
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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import attrs
import pluggy

from ganzoo_core import hookspecs
from ganzoo_core._catalogue import first_party_owner, install_hint
from ganzoo_core._entries import Entry, Registration, Registry, check_kind, check_name, summary_of
from ganzoo_core.errors import GanzooError, PluginError

log = logging.getLogger("ganzoo.plugins")

ENTRY_POINT_GROUP = "ganzoo"
API_VERSION: tuple[int, int] = (1, 1)
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


@attrs.define
class _Load:
    """A plugin load in progress (``file_registrations`` reads it): what the plugin's package registers while it is
    imported is recorded and filed by the load; what its ``ganzoo_register`` hook registers (``in_hook``) is made
    anew by every load, so it is filed at once and not recorded; any other module's registrations are filed at
    once, by module."""

    host: PluginHost
    package: str
    plugin: str
    in_hook: bool = False
    added: list[Entry] = attrs.Factory(list)


_loading: contextvars.ContextVar[_Load | None] = contextvars.ContextVar("ganzoo_loading", default=None)
"""True while a plugin's package is imported: its registrations are filed by the load (``PluginHost.load_module``)."""


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


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
        """Import ``module`` as plugin ``name``; file what its modules registered (``recorded``), its pluggy hooks
        and its ``ganzoo_register`` hook's registrations in one transaction; False on failure."""
        name = name or module
        distribution, version = distribution or _dist_of(module), version or _version_of(module)
        if name in self.plugins:
            return True
        load = _Load(self, module, name)
        token = _loading.set(load)
        try:
            mod = loader() if loader else importlib.import_module(module)
            if not isinstance(mod, ModuleType):
                raise GanzooError(f"entry point must name a module, got {type(mod).__name__}")
            check_api_version(mod)
            with self.registry.transaction():
                filed = (self.file(item, plugin=name, package=mod.__name__) for item in recorded(mod.__name__))
                added = [entry for entry in filed if entry is not None]
                self.pm.register(mod, name)
                try:
                    load.in_hook = True
                    added += self._call_register(mod, name)
                    added += load.added  # decorators run inside the hook
                except BaseException:
                    self.pm.unregister(mod)
                    raise
        except BaseException as err:  # a broken plugin (even one calling sys.exit) must not stop the others or the CLI
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

    def file(self, item: Registration, *, plugin: str | None = None, package: str = "") -> Entry | None:
        """File one registration: the one way into this host's registry. Returns the entry when it is now filed for
        this plugin (None: a retired name, or the registry already held it).

        ``plugin`` (with its module ``package``) while that plugin loads; a first-party name is reserved for its
        own plugin, so a third-party plugin taking one is the one rejected, whatever the load order. Without
        ``plugin``, the registration is attributed by its module: to the loaded plugin that owns the module, else
        (a script, a notebook, a plugin package imported by hand before its plugin loads) to the module's top
        package, until that plugin's load claims it. A module of a plugin that failed to load files nothing."""
        loose = plugin is None
        if plugin is None:
            info = self.plugin_of_module(item.module)
            if info is None and any(_within(item.module, f.module) for f in self.failures if f.module != "?"):
                return None
            plugin, loose = (info.name, False) if info else (item.module.split(".", 1)[0] or "__main__", True)
        elif package:
            owner = first_party_owner(item.kind, item.name)
            top = package.split(".", 1)[0]
            if owner is not None and owner[1] and top != owner[1]:
                variant = item.name.split(".", 1)[1]
                raise GanzooError(f"registers {item.kind} {item.name!r}, a name that the first-party plugin {owner[0]} "
                                  "provides; the plugin was not loaded (and cannot replace it): rename its entry, e.g. "
                                  f"'{top.replace('_', '-').lower()}.{variant}'")
        item = attrs.evolve(item, plugin=plugin)
        filed = self.registry.add(item, loose=loose)
        return item if filed and isinstance(item, Entry) else None

    def _call_register(self, mod: ModuleType, plugin: str) -> list[Entry]:
        added: list[Entry] = []

        def register(kind: str, name: str, factory: Callable[..., Any], *, cfg: Any = None, default: bool = False,
                     summary: str = "", paper: str = "") -> None:
            entry = Entry(kind=check_kind(kind), name=check_name(name), factory=factory, cfg=cfg, default=default,
                          summary=summary or summary_of(factory), paper=paper,
                          module=getattr(factory, "__module__", ""))
            if filed := self.file(entry, plugin=plugin, package=mod.__name__):
                added.append(filed)

        others = [p for p in self.pm.get_plugins() if p is not mod]
        self.pm.subset_hook_caller("ganzoo_register", remove_plugins=others)(register=register)
        return added

    def _fail(self, name: str, module: str, dist: str, version: str, error: str) -> None:
        failure = PluginFailure(name=name, module=module, distribution=dist, version=version, error=error)
        if failure in self.failures:
            return
        self.failures.append(failure)
        warnings.warn(f"ganzoo plugin skipped: {failure}", RuntimeWarning, stacklevel=3)

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
_PENDING: list[Registration] = []  # made outside a load before any host was active


@attrs.define
class _ModuleRecord:
    module: ModuleType | None  # the module object that registered (a re-imported module starts a new record)
    items: list[Registration]


_RECORDS: dict[str, _ModuleRecord] = {}  # module name -> what it registered, in order


def file_registrations(items: Sequence[Registration]) -> None:
    """File what one ``register_*`` call made, and remember it (by the module that made it) for hosts built later.

    While a plugin loads, nothing more: each plugin's load files what its own modules recorded. Otherwise they go to
    the active host, all or none, or wait until a host is active."""
    with _LOCK:
        load = _loading.get()
        if load is not None and load.in_hook:
            own = [item for item in items if _within(item.module, load.package)]
            for item in own:
                if filed := load.host.file(item, plugin=load.plugin, package=load.package):
                    load.added.append(filed)
            items = [item for item in items if item not in own]
        for item in items:
            live = sys.modules.get(item.module)
            record = _RECORDS.get(item.module)
            if record is None or record.module is not live:
                record = _RECORDS[item.module] = _ModuleRecord(live, [])
            if item not in record.items:
                record.items.append(item)
        if load is not None:  # the load files its own package's records; any other module's, now, by module
            for item in items:
                if not _within(item.module, load.package):
                    load.host.file(item)
            return
        if _HOST is None:
            _PENDING.extend(items)
            return
        with _HOST.registry.transaction():
            for item in items:
                _HOST.file(item)


def recorded(package: str) -> list[Registration]:
    """What the modules of ``package`` (itself and its submodules, as imported now) registered, in order."""
    return [
        item
        for name, record in list(_RECORDS.items())
        if _within(name, package) and record.module is not None and sys.modules.get(name) is record.module
        for item in record.items
    ]


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
        if _PENDING:  # registrations made before any host was active: each on its own, the first error raised
            pending, errors = list(_PENDING), []
            _PENDING.clear()
            for item in pending:
                try:
                    _HOST.file(item)
                except GanzooError as err:
                    errors.append(err)
            if errors:
                raise errors[0]
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
