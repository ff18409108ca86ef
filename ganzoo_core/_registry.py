"""The registry: named, configurable components of every kind, filed by ``family.variant``.

``@register_*`` decorators only *mark* a class or function (as pluggy's markers do). The plugin loader collects the
marks of a plugin's modules into a ``Registry`` as one transaction; marks made outside a plugin load (a notebook, a
script) are added to the active registry directly.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import attrs

from ganzoo_core.errors import DuplicateNameError, GanzooError, UnknownNameError

T = TypeVar("T")

KINDS: tuple[str, ...] = ("generator", "discriminator", "encoder", "block", "loss", "objective", "dataset", "op")
"""Every registry kind. Networks (generator, discriminator, encoder, block) are ``Component``s; an ``op`` entry is one
implementation of a kernel, named ``op.impl`` (``bias_act.ref``), see ``ganzoo_core.ops``."""

NETWORK_KINDS: tuple[str, ...] = ("generator", "discriminator", "encoder", "block")

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*\.[a-z0-9][a-z0-9_\-]*$")
_FAMILY_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")
MARK_ATTR = "__ganzoo_marks__"


@attrs.frozen(kw_only=True)
class Entry:
    """One registered name: what builds it, with which default config, and where it came from."""

    kind: str
    name: str  # "family.variant"
    factory: Callable[..., Any]  # called as factory(cfg), or factory() when cfg is None
    cfg: Any  # the variant's frozen attrs config (None: takes no options)
    default: bool = False  # the variant a bare family name resolves to
    summary: str = ""
    paper: str = ""
    module: str = ""
    plugin: str = ""

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def variant(self) -> str:
        return self.name.split(".", 1)[1]


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise GanzooError(f"registry names are 'family.variant' in lower case (e.g. 'dcgan.64'), got {name!r}")
    return name


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise UnknownNameError(kind, "kind", difflib.get_close_matches(kind, KINDS, n=3))
    return kind


class Registry:
    """Names to entries, per kind. One instance is active per process (see ``ganzoo_core._plugins``)."""

    def __init__(self, hint: Callable[[str, str], str] | None = None) -> None:
        self._entries: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}
        self.version = 0  # bumped on every change, so callers can cache lookups
        self._hint = hint or (lambda kind, name: "")

    # -- filing --------------------------------------------------------------------------------------------------
    def add(self, entry: Entry) -> None:
        """File ``entry``; the same object under the same name again only updates its plugin attribution."""
        table = self._entries[check_kind(entry.kind)]
        old = table.get(entry.name)
        if old is not None:
            if old.factory is not entry.factory or old.cfg != entry.cfg:
                raise DuplicateNameError(entry.name, entry.kind, _origin(old), _origin(entry))
            if old.plugin == entry.plugin:
                return
        table[entry.name] = entry
        self.version += 1

    def remove_plugin(self, plugin: str) -> None:
        for table in self._entries.values():
            for name in [n for n, e in table.items() if e.plugin == plugin]:
                del table[name]
        self.version += 1

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All additions inside the block are undone if it raises."""
        saved = {k: dict(v) for k, v in self._entries.items()}
        try:
            yield
        except BaseException:
            self._entries = saved
            self.version += 1
            raise

    # -- lookup --------------------------------------------------------------------------------------------------
    def entries(self, kind: str | None = None) -> list[Entry]:
        kinds = KINDS if kind is None else (check_kind(kind),)
        return [e for k in kinds for _, e in sorted(self._entries[k].items())]

    def names(
        self,
        kind: str,
        pattern: str | Sequence[str] = "*",
        *,
        plugin: str | None = None,
        exclude: str | Sequence[str] = (),
    ) -> list[str]:
        """Sorted names of ``kind`` matching any of the fnmatch ``pattern``s and none of ``exclude``."""
        include = [pattern] if isinstance(pattern, str) else list(pattern)
        drop = [exclude] if isinstance(exclude, str) else list(exclude)
        return [
            e.name
            for e in self.entries(kind)
            if any(fnmatch.fnmatchcase(e.name, p) for p in include)
            and not any(fnmatch.fnmatchcase(e.name, p) for p in drop)
            and (plugin is None or e.plugin == plugin)
        ]

    def has(self, kind: str, name: str) -> bool:
        return self._find(check_kind(kind), name) is not None

    def get(self, kind: str, name: str) -> Entry:
        """The entry for ``name`` (or for a bare family name, its default variant), else ``UnknownNameError``."""
        entry = self._find(check_kind(kind), name)
        if entry is None:
            raise self._unknown(kind, name)
        return entry

    def _find(self, kind: str, name: str) -> Entry | None:
        table = self._entries[kind]
        if name in table:
            return table[name]
        variants = [e for n, e in sorted(table.items()) if e.family == name]
        if not variants:
            return None
        return next((e for e in variants if e.default), variants[0])

    def _unknown(self, kind: str, name: str) -> UnknownNameError:
        table = self._entries[kind]
        pool = list(table) + sorted({e.family for e in table.values()})
        close = difflib.get_close_matches(name, pool, n=3, cutoff=0.6)
        hint = self._hint(kind, name)
        other = [k for k in KINDS if k != kind and self._find(k, name) is not None]
        if other and not hint:
            hint = f"{name!r} is a registered {' and '.join(other)}, not a {kind}"
        if not table and not hint:
            hint = f"no {kind} is registered; is a plugin that provides one installed? see 'ganzoo plugins'"
        return UnknownNameError(name, kind, close, hint)


def _origin(entry: Entry) -> str:
    where = f"{entry.module}.{getattr(entry.factory, '__qualname__', entry.factory)}"
    return f"plugin {entry.plugin!r} ({where})" if entry.plugin else where


# -- marking -----------------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Mark:
    kind: str
    name: str
    cfg: Any
    default: bool
    summary: str
    paper: str


def marks_of(obj: Any) -> list[Mark]:
    """The registration marks an object carries itself (inherited marks of a parent class do not count)."""
    own = vars(obj).get(MARK_ATTR) if isinstance(obj, type) else getattr(obj, MARK_ATTR, None)
    return list(own or [])


def entries_from_marks(obj: Any, plugin: str) -> list[Entry]:
    return [
        Entry(
            kind=m.kind, name=m.name, factory=obj, cfg=m.cfg, default=m.default, summary=m.summary,
            paper=m.paper, module=getattr(obj, "__module__", ""), plugin=plugin,
        )
        for m in marks_of(obj)
    ]


def iter_marked(modules: Iterable[Any]) -> Iterator[Any]:
    """Objects defined in ``modules`` (not merely imported there) that carry registration marks."""
    seen: set[int] = set()
    for mod in modules:
        for obj in list(vars(mod).values()):
            if id(obj) in seen or getattr(obj, "__module__", None) != mod.__name__ or not marks_of(obj):
                continue
            seen.add(id(obj))
            yield obj


_on_mark: list[Callable[[Any], None]] = []  # set by the plugin host: adds marks made outside a plugin load


def summary_of(obj: Any) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0].rstrip(".") if doc else ""


def register(
    kind: str,
    name: str,
    *,
    cfg: Any = None,
    variants: Mapping[str, Any] | None = None,
    default: str | bool | None = None,
    summary: str = "",
    paper: str = "",
) -> Callable[[T], T]:
    """Mark a class or function as the factory of one name (``family.variant``) or of a family's ``variants``.

    The factory is called with the variant's config (``factory(cfg)``), or with nothing when ``cfg`` is None.
    ``default`` names the variant a bare family name resolves to (the first one when not given); for a single
    name, ``default=True`` makes it its family's default.
    """
    check_kind(kind)
    if variants is not None:
        if not _FAMILY_RE.match(name):
            raise GanzooError(f"with variants=, the name must be a family like 'dcgan', got {name!r}")
        if not variants:
            raise GanzooError(f"variants= for {name!r} is empty; give at least one variant config")
        default = default if isinstance(default, str) else next(iter(variants))
        pairs = [(f"{name}.{v}", c, v == default) for v, c in variants.items()]
    else:
        check_name(name)
        pairs = [(name, cfg, default is True or default == name.split(".", 1)[1])]
    for full, _, _ in pairs:
        check_name(full)

    def mark(obj: T) -> T:
        text = summary or summary_of(obj)
        new = [Mark(kind=kind, name=n, cfg=c, default=d, summary=text, paper=paper) for n, c, d in pairs]
        if isinstance(obj, type):
            setattr(obj, MARK_ATTR, [*vars(obj).get(MARK_ATTR, []), *new])
        else:
            setattr(obj, MARK_ATTR, [*getattr(obj, MARK_ATTR, []), *new])
        for callback in _on_mark:
            callback(obj)
        return obj

    return mark


def _decorator(kind: str) -> Callable[..., Callable[[T], T]]:
    decorator = functools.partial(register, kind)
    decorator.__doc__ = f"Mark a class or function as a registered {kind}: ``register({kind!r}, name, ...)``."
    return decorator


register_generator = _decorator("generator")
register_discriminator = _decorator("discriminator")
register_encoder = _decorator("encoder")
register_block = _decorator("block")
register_loss = _decorator("loss")
register_objective = _decorator("objective")
register_dataset = _decorator("dataset")
# ``register_op`` (an implementation of a kernel, with its devices and requirements) lives in ganzoo_core.ops
