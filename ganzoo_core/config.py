"""Frozen ``attrs`` configs: overrides, and a JSON round trip that needs no pickle."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

import attrs

from ganzoo_core.errors import ConfigError

C = TypeVar("C")


def field_names(cfg: Any) -> list[str]:
    """The field names of an attrs config instance or class."""
    cls = cfg if isinstance(cfg, type) else type(cfg)
    return [f.name for f in attrs.fields(cls)]


def apply_overrides(cfg: C, overrides: Mapping[str, Any], *, what: str = "config") -> C:
    """``attrs.evolve(cfg, **overrides)`` where ``None`` values are ignored and unknown fields are a ``ConfigError``."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return cfg
    if cfg is None:
        raise ConfigError(f"{what} takes no options, got {sorted(given)}")
    valid = field_names(cfg)
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise ConfigError(f"{what} has no option(s) {unknown}; valid options: {', '.join(valid)}")
    try:
        return attrs.evolve(cfg, **given)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"bad option value for {what}: {err}") from err


def cfg_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config (tuples become lists, nested configs become dicts)."""
    if cfg is None:
        return {}
    return attrs.asdict(cfg)  # tuples become lists, nested configs dicts


def cfg_from_dict(template: C, data: Mapping[str, Any], *, what: str = "config") -> C:
    """Rebuild a config from ``cfg_to_dict`` output, using ``template`` (same class) for types and defaults."""
    if template is None:
        if data:
            raise ConfigError(f"{what} takes no options, but the saved config has {sorted(data)}")
        return template
    values = {}
    for f in attrs.fields(type(template)):
        if f.name in data:
            values[f.name] = _restore(getattr(template, f.name), data[f.name], f"{what}.{f.name}")
    unknown = sorted(set(data) - set(values))
    if unknown:
        raise ConfigError(f"saved {what} has field(s) {unknown} that {type(template).__name__} does not know")
    return attrs.evolve(template, **values)


def _restore(default: Any, value: Any, what: str) -> Any:
    if attrs.has(type(default)) and isinstance(value, Mapping):
        return cfg_from_dict(default, value, what=what)
    if isinstance(value, list):
        return tuple(_restore(None, v, what) for v in value)
    return value


def cfg_to_json(cfg: Any) -> str:
    return json.dumps(cfg_to_dict(cfg), sort_keys=True)
