"""Every numeric option of every registered config has a range validator, and a bad override is a ConfigError that
names the option. Parametrised over the whole registry (every kind, every name, nested attrs configs included), so a
new variant or plugin is checked without a new test."""

from __future__ import annotations

import sys
import types
import typing
from collections import abc
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from conftest import HOST

from ganzoo_core._api import create, get_entry
from ganzoo_core._registry import KINDS
from ganzoo_core.errors import ConfigError


def _hints(cls: type) -> dict[str, Any]:
    """The resolved annotations of an attrs class; {} when they cannot be resolved (then defaults decide)."""
    try:
        return typing.get_type_hints(cls, vars(sys.modules[cls.__module__]))
    except Exception:
        return {}


def _mentions_number(tp: Any) -> bool:
    """Whether a resolved annotation is or contains int or float (``int | None``, ``tuple[int, ...]``); not bool."""
    if tp is int or tp is float:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType) or (isinstance(origin, type) and issubclass(origin, abc.Sequence)):
        return any(_mentions_number(a) for a in typing.get_args(tp) if a is not Ellipsis)
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric(field: attrs.Attribute, hint: Any, default: Any) -> bool:
    if hint is not None:
        return _mentions_number(hint)
    if isinstance(default, tuple):
        return bool(default) and all(_is_number(v) for v in default)
    return _is_number(default)


def numeric_fields(cfg: Any, prefix: str = "") -> Iterator[tuple[str, attrs.Attribute, Any]]:
    """(dotted path, field, the config that holds it) of every int/float field, nested attrs configs included."""
    hints = _hints(type(cfg))
    for field in attrs.fields(type(cfg)):
        value = getattr(cfg, field.name)
        if attrs.has(type(value)):
            yield from numeric_fields(value, f"{prefix}{field.name}.")
        elif _numeric(field, hints.get(field.name), value):
            yield f"{prefix}{field.name}", field, cfg


def _entries() -> list[tuple[str, str]]:
    return [(kind, name) for kind in KINDS for name in HOST.registry.names(kind)
            if attrs.has(type(HOST.registry.get(kind, name).cfg))]


NUMERIC = [(kind, name, path) for kind, name in _entries()
           for path, _, _ in numeric_fields(HOST.registry.get(kind, name).cfg)]


def _rejects(field: attrs.Attribute, cfg: Any, value: Any) -> bool:
    try:
        field.validator(cfg, field, value)
    except (TypeError, ValueError):
        return True
    return False


TOP_LEVEL_INTS = [
    (kind, name, path) for kind, name, path in NUMERIC if "." not in path
    for cfg in [HOST.registry.get(kind, name).cfg] for field in [attrs.fields_dict(type(cfg))[path]]
    if isinstance(getattr(cfg, path), int) and not isinstance(getattr(cfg, path), bool) and getattr(cfg, path) >= 1
    and field.validator is not None and _rejects(field, cfg, -1)
]


def test_the_registry_has_numeric_fields_to_check() -> None:
    assert len(NUMERIC) > 20 and len(TOP_LEVEL_INTS) > 10
    assert ("encoder", "bow.hashed", "dim") in TOP_LEVEL_INTS and ("loss", "gan.bce", "real_label") in NUMERIC


@pytest.mark.parametrize(("kind", "name", "path"), NUMERIC, ids=[f"{k}-{n}-{p}" for k, n, p in NUMERIC])
def test_every_numeric_field_has_a_validator(kind: str, name: str, path: str) -> None:
    found = {p: (f, holder) for p, f, holder in numeric_fields(get_entry(kind, name).cfg)}
    field, holder = found[path]
    assert field.validator is not None, (f"{type(holder).__module__}.{type(holder).__name__}.{field.name} has no "
                                         "range validator (attrs.validators.ge/gt/le/lt/in_)")


@pytest.mark.parametrize(("kind", "name", "field"), TOP_LEVEL_INTS, ids=[f"{k}-{n}-{f}" for k, n, f in TOP_LEVEL_INTS])
def test_a_negative_override_is_a_config_error_naming_the_field(kind: str, name: str, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"\b{field}\b"):
        create(kind, name, **{field: -1})


def test_every_registered_name_still_creates_its_config() -> None:
    """The validators accept every registered variant's official values (building the config re-runs them)."""
    for kind, name in _entries():
        cfg = get_entry(kind, name).cfg
        assert attrs.evolve(cfg) == cfg, (kind, name)
