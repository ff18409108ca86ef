"""Registry entries and the table of one host: names to entries per kind, retired names, all-or-nothing filing.

This module knows nothing of plugins or of the process-wide host; ``ganzoo_core._plugins`` fills a ``Registry`` and
``ganzoo_core._registry`` holds the ``register_*`` verbs that plugins call.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import attrs

from ganzoo_core.errors import DuplicateNameError, GanzooError, RetiredNameError, UnknownNameError

KINDS: tuple[str, ...] = (
    "generator", "discriminator", "encoder", "block", "loss", "objective", "dataset", "metric", "op",
)
"""Every registry kind. Networks (generator, discriminator, encoder, block) are ``Component``s; a ``metric`` builds
the callable that scores a trained objective or its samples; an ``op`` entry is one implementation of a kernel, named
``op.impl`` (``bias_act.ref``), see ``ganzoo_core.ops``."""

NETWORK_KINDS: tuple[str, ...] = ("generator", "discriminator", "encoder", "block")

SPEC_ATTR = "ganzoo_spec"
"""Attribute set on every module the registry builds: ``(kind, name)``, so checkpoints know what to rebuild."""

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*\.[a-z0-9][a-z0-9_\-]*$")
FAMILY_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


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
    module: str = ""  # the module that registered it (where the decorator was applied; for the hook, the factory's)
    plugin: str = ""

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def variant(self) -> str:
        return self.name.split(".", 1)[1]


@attrs.frozen(kw_only=True)
class Retired:
    """A name that is no longer registered: lookups say where it went, checkpoints saved under it load through
    ``replacement`` (of the same kind, whose config class reads the saved config)."""

    kind: str
    name: str
    replacement: str
    note: str  # one line: where the name went
    module: str = ""  # the module that retired it
    plugin: str = ""


Registration = Entry | Retired
"""What one registration files: a name with its factory, or a retired name."""


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise GanzooError(f"registry names are 'family.variant' in lower case (e.g. 'gan.bce'), got {name!r}")
    return name


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise UnknownNameError(kind, "kind", difflib.get_close_matches(kind, KINDS, n=3))
    return kind


_SENTENCE_END = re.compile(r"[.!?](?=\s+[A-Z(\"]|\s*$)")  # a full stop before a capital or the end; not "e.g. x"
_ROLE = re.compile(r":[\w:]+:`([^`]*)`")  # :func:`x` → x


def summary_of(obj: Any) -> str:
    """The first sentence of ``obj``'s docstring, whole (joined across wrapped lines), as plain text (RST roles and
    backticks removed), without its final full stop."""
    doc = inspect.cleandoc(getattr(obj, "__doc__", None) or "")
    if not doc:
        return ""
    paragraph = " ".join(doc.split("\n\n", 1)[0].split())
    end = _SENTENCE_END.search(paragraph)
    sentence = paragraph[: end.start() + 1] if end else paragraph
    return _ROLE.sub(r"\1", sentence).replace("`", "").rstrip(".")


def origin(item: Registration) -> str:
    """Where a registration came from, for messages: ``plugin 'p' (module.Factory)``."""
    if isinstance(item, Retired):
        where = f"{item.module} (retired in favour of {item.replacement!r})"
    else:
        where = f"{item.module}.{getattr(item.factory, '__qualname__', item.factory)}"
    return f"plugin {item.plugin!r} ({where})" if item.plugin else where


class Registry:
    """Names to entries, per kind, and the retired names. One instance per ``PluginHost`` (``ganzoo_core._plugins``)."""

    def __init__(self, hint: Callable[[str, str], str] | None = None) -> None:
        self._entries: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}
        self._retired: dict[str, dict[str, Retired]] = {k: {} for k in KINDS}
        self._loose: set[tuple[str, str]] = set()  # (kind, name) filed outside any plugin, claimable by one
        self.version = 0  # bumped on every change, so callers can cache lookups
        self._hint = hint or (lambda kind, name: "")

    # -- filing --------------------------------------------------------------------------------------------------
    def add(self, item: Registration, *, loose: bool = False) -> bool:
        """File ``item``; True when it was filed, False when the registry already held the same thing.

        A name means one thing: a different factory, config or retirement under a filed name is a
        ``DuplicateNameError`` naming both origins. The same registration again is a no-op, except that a plugin's
        filing claims a ``loose`` one (made by a module imported before its plugin loaded)."""
        kind, name = check_kind(item.kind), item.name
        old: Registration | None = self._entries[kind].get(name) or self._retired[kind].get(name)
        if old is not None:
            if not _same(old, item):
                raise DuplicateNameError(name, kind, origin(old), origin(item))
            if loose or (kind, name) not in self._loose:
                return False
        table: dict[str, Any] = self._retired[kind] if isinstance(item, Retired) else self._entries[kind]
        table[name] = item
        (self._loose.add if loose else self._loose.discard)((kind, name))
        self.version += 1
        return True

    def remove_plugin(self, plugin: str) -> None:
        for tables in (self._entries, self._retired):
            for kind, table in tables.items():
                for name in [n for n, e in table.items() if e.plugin == plugin]:
                    del table[name]
                    self._loose.discard((kind, name))
        self.version += 1

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All filings inside the block are undone if it raises."""
        saved = ({k: dict(v) for k, v in self._entries.items()}, {k: dict(v) for k, v in self._retired.items()},
                 set(self._loose))
        try:
            yield
        except BaseException:
            self._entries, self._retired, self._loose = saved
            self.version += 1
            raise

    # -- lookup --------------------------------------------------------------------------------------------------
    def entries(self, kind: str | None = None) -> list[Entry]:
        kinds = KINDS if kind is None else (check_kind(kind),)
        return [e for k in kinds for _, e in sorted(self._entries[k].items())]

    def retired(self, kind: str | None = None) -> list[Retired]:
        """The retired names (of ``kind``), sorted by name."""
        kinds = KINDS if kind is None else (check_kind(kind),)
        return [r for k in kinds for _, r in sorted(self._retired[k].items())]

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
        """The entry for ``name`` (or for a bare family name, its default variant); ``RetiredNameError`` for a
        retired name, else ``UnknownNameError``."""
        entry = self._find(check_kind(kind), name)
        if entry is not None:
            return entry
        if name in self._retired[kind]:
            raise _retired_error(self._retired[kind][name])
        raise self._unknown(kind, name)

    def resolve(self, kind: str, name: str) -> Entry:
        """The entry that builds what was saved as ``name``: a retired name gives its replacement's entry."""
        return self.get(kind, self.replacement(kind, name) or name)

    def replacement(self, kind: str, name: str) -> str:
        """The name that now stands for ``name`` ("" unless ``name`` is retired; retirements chain)."""
        seen: list[str] = []
        while name in self._retired.get(kind, {}):
            seen.append(name)
            name = self._retired[kind][name].replacement
            if name in seen:
                raise GanzooError(f"{kind} names {' -> '.join(map(repr, [*seen, name]))} retire into each other")
        return name if seen else ""

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
        retired = next((self._retired[k][name] for k in KINDS if name in self._retired[k]), None)
        if other and not hint:
            hint = f"{name!r} is a registered {' and '.join(other)}, not a {kind}"
        elif retired is not None and not hint:
            hint = f"{name!r} is a retired {retired.kind}: {retired.note}"
        if not table and not hint:
            hint = f"no {kind} is registered; is a plugin that provides one installed? see 'ganzoo plugins'"
        return UnknownNameError(name, kind, close, hint)


def _same(old: Registration, new: Registration) -> bool:
    """Whether two registrations of one name mean the same thing (where they came from aside)."""
    if isinstance(old, Retired) or isinstance(new, Retired):
        return (isinstance(old, Retired) and isinstance(new, Retired)
                and (old.replacement, old.note) == (new.replacement, new.note))
    return old.factory is new.factory and old.cfg == new.cfg


def _retired_error(retired: Retired) -> RetiredNameError:
    return RetiredNameError(retired.name, retired.kind, retired.replacement, retired.note)
