"""The registry: named, configurable components of every kind, filed by ``family.variant``.

``@register_*`` (and ``register_retired``) turn one call into registry entries and hand them to
``ganzoo_core._plugins.file_registrations``, the one way into a registry: while a plugin loads they join that load's
transaction, attributed to the plugin; otherwise they go to the active host (or wait until there is one), attributed
by module. Each module's registrations are also remembered, so every host that loads its plugin later gets them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ganzoo_core._entries import (
    FAMILY_RE,
    KINDS,
    NETWORK_KINDS,
    SPEC_ATTR,
    Entry,
    Registration,
    Registry,
    Retired,
    RetiredNameError,
    check_kind,
    check_name,
    summary_of,
)
from ganzoo_core._plugins import file_registrations
from ganzoo_core.errors import GanzooError

__all__ = [
    "KINDS", "NETWORK_KINDS", "SPEC_ATTR", "Entry", "Registration", "Registry", "Retired", "RetiredNameError",
    "check_kind", "check_name", "register", "register_block", "register_dataset", "register_discriminator",
    "register_encoder", "register_generator", "register_loss", "register_metric", "register_objective",
    "register_retired", "summary_of",
]

T = TypeVar("T")


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
    """Register a class or function as the factory of one name (``family.variant``) or of a family's ``variants``.

    The factory is called with the variant's config (``factory(cfg)``), or with nothing when ``cfg`` is None.
    ``default`` names the variant a bare family name resolves to (the first one when not given); for a single
    name, ``default=True`` makes it its family's default.
    """
    check_kind(kind)
    if variants is not None:
        if not FAMILY_RE.match(name):
            raise GanzooError(f"with variants=, the name must be a family like 'gan', got {name!r}")
        if not variants:
            raise GanzooError(f"variants= for {name!r} is empty; give at least one variant config")
        if isinstance(default, str) and default not in variants:
            raise GanzooError(f"default={default!r} for {name!r} is not one of its variants {list(variants)}")
        default = default if isinstance(default, str) else next(iter(variants))
        pairs = [(f"{name}.{v}", c, v == default) for v, c in variants.items()]
    else:
        check_name(name)
        pairs = [(name, cfg, default is True or default == name.split(".", 1)[1])]
    for full, _, _ in pairs:
        check_name(full)

    def file(obj: T) -> T:
        text, module = summary or summary_of(obj), sys._getframe(1).f_globals.get("__name__", "__main__")
        file_registrations([
            Entry(kind=kind, name=n, factory=obj, cfg=c, default=d, summary=text, paper=paper, module=module)
            for n, c, d in pairs
        ])
        return obj

    return file


def register_retired(kind: str, name: str, *, replacement: str, note: str) -> None:
    """Retire ``name``: it is no longer listed or built, and looking it up raises ``RetiredNameError`` with ``note``.

    ``note`` (one line) says where it went. A checkpoint saved under ``name`` still loads: it is rebuilt by
    ``replacement`` (same kind, a config class that reads the saved config) from the checkpoint's own config.
    """
    check_kind(kind)
    check_name(name)
    check_name(replacement)
    if replacement == name:
        raise GanzooError(f"{kind} {name!r} cannot be retired in favour of itself; name the entry that replaces it")
    if not isinstance(note, str) or not note.strip() or "\n" in note:
        raise GanzooError(f"the note retiring {kind} {name!r} must be one non-empty line, got {note!r}")
    module = sys._getframe(1).f_globals.get("__name__", "__main__")
    file_registrations([Retired(kind=kind, name=name, replacement=replacement, note=note.strip(), module=module)])


def register_generator(
    name: str,
    *,
    cfg: Any = None,
    variants: Mapping[str, Any] | None = None,
    default: str | bool | None = None,
    summary: str = "",
    paper: str = "",
) -> Callable[[T], T]:
    """Register a class or function as a generator: ``register("generator", name, ...)``."""
    return register("generator", name, cfg=cfg, variants=variants, default=default, summary=summary, paper=paper)


def register_discriminator(
    name: str,
    *,
    cfg: Any = None,
    variants: Mapping[str, Any] | None = None,
    default: str | bool | None = None,
    summary: str = "",
    paper: str = "",
) -> Callable[[T], T]:
    """Register a class or function as a discriminator: ``register("discriminator", name, ...)``."""
    return register("discriminator", name, cfg=cfg, variants=variants, default=default, summary=summary, paper=paper)


def register_encoder(
    name: str,
    *,
    cfg: Any = None,
    variants: Mapping[str, Any] | None = None,
    default: str | bool | None = None,
    summary: str = "",
    paper: str = "",
) -> Callable[[T], T]:
    """Register a class or function as an encoder: ``register("encoder", name, ...)``."""
    return register("encoder", name, cfg=cfg, variants=variants, default=default, summary=summary, paper=paper)


def register_block(
    name: str,
    *,
    cfg: Any = None,
    variants: Mapping[str, Any] | None = None,
    default: str | bool | None = None,
    summary: str = "",
    paper: str = "",
) -> Callable[[T], T]:
    """Register a class or function as a block: ``register("block", name, ...)``."""
    return register("block", name, cfg=cfg, variants=variants, default=default, summary=summary, paper=paper)


def register_loss(
    name: str,
    *,
    cfg: Any = None,
    variants: Mapping[str, Any] | None = None,
    default: str | bool | None = None,
    summary: str = "",
    paper: str = "",
) -> Callable[[T], T]:
    """Register a class or function as a loss: ``register("loss", name, ...)``."""
    return register("loss", name, cfg=cfg, variants=variants, default=default, summary=summary, paper=paper)


def register_objective(
    name: str,
    *,
    cfg: Any = None,
    variants: Mapping[str, Any] | None = None,
    default: str | bool | None = None,
    summary: str = "",
    paper: str = "",
) -> Callable[[T], T]:
    """Register a class or function as an objective: ``register("objective", name, ...)``."""
    return register("objective", name, cfg=cfg, variants=variants, default=default, summary=summary, paper=paper)


def register_dataset(
    name: str,
    *,
    cfg: Any = None,
    variants: Mapping[str, Any] | None = None,
    default: str | bool | None = None,
    summary: str = "",
    paper: str = "",
) -> Callable[[T], T]:
    """Register a class or function as a dataset: ``register("dataset", name, ...)``."""
    return register("dataset", name, cfg=cfg, variants=variants, default=default, summary=summary, paper=paper)


def register_metric(
    name: str,
    *,
    cfg: Any = None,
    variants: Mapping[str, Any] | None = None,
    default: str | bool | None = None,
    summary: str = "",
    paper: str = "",
) -> Callable[[T], T]:
    """Register the factory of a metric (it returns the callable that scores an objective or its samples):
    ``register("metric", name, ...)``."""
    return register("metric", name, cfg=cfg, variants=variants, default=default, summary=summary, paper=paper)


# ``register_op`` (an implementation of a kernel, with its devices and requirements) lives in ganzoo_core.ops
