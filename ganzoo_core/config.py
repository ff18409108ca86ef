"""Frozen ``attrs`` configs: overrides, and a JSON round trip that needs no pickle."""

from __future__ import annotations

import functools
import json
import types
import typing
from collections.abc import Mapping, Sequence
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
    return _evolve_checked(cfg, given, given, what=what, problem="bad option value for")


def _evolve_checked(cfg: C, values: Mapping[str, Any], typed: Mapping[str, Any], *, what: str, problem: str) -> C:
    """``attrs.evolve(cfg, **values)`` with the ``typed`` values checked against their annotations (before and after
    converters) and validator errors turned into a ``ConfigError`` naming ``what``."""
    check_types(type(cfg), typed, what=what)
    try:
        new = attrs.evolve(cfg, **values)
        check_types(type(cfg), {k: getattr(new, k) for k in typed}, what=what, converted=True)
        return new
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{problem} {what}: {_validator_message(err)}") from err


def _validator_message(err: BaseException) -> str:
    """attrs' instance_of/in_ validators put (message, attribute, expected, value) in args; keep the message."""
    return str(err.args[0]) if err.args and isinstance(err.args[0], str) else str(err)


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    """Field name -> resolved annotation (``from __future__ import annotations`` makes them strings); each class of
    the MRO resolves its own annotations in its own module, so a plugin config subclassing a core one checks too."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve here (a name imported under TYPE_CHECKING): no checks
        hints = {}
    return {f.name: hints.get(f.name, Any) for f in attrs.fields(cls)}


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "None"
    if typing.get_origin(tp) is not None:
        return str(tp).replace("typing.", "").replace("collections.abc.", "")
    return getattr(tp, "__name__", None) or str(tp)


def _fits(value: Any, tp: Any) -> bool | None:
    """Whether ``value`` fits annotation ``tp``: True, False, or None when the annotation is not one we check."""
    if tp is Any or isinstance(tp, (str, TypeVar)):
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        results = [_fits(value, arg) for arg in typing.get_args(tp)]
        if any(r is True for r in results):
            return True
        return None if any(r is None for r in results) else False
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if tp is type(None) or tp is None:
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    base = origin or tp
    if base in (tuple, list, Sequence, typing.Sequence) or (isinstance(base, type) and base is tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
            return False
        args = typing.get_args(tp)
        if not args:
            return True
        if len(args) == 2 and args[1] is Ellipsis:
            inner = [_fits(v, args[0]) for v in value]
        elif base is tuple:
            if len(args) != len(value):
                return False
            inner = [_fits(v, a) for v, a in zip(value, args)]
        else:
            inner = [_fits(v, args[0]) for v in value]
        return False if any(r is False for r in inner) else True
    if base in (dict, Mapping, typing.Mapping):
        if not isinstance(value, Mapping):
            return False
        args = typing.get_args(tp)
        return not (args and args[0] is str and not all(isinstance(k, str) for k in value))
    if isinstance(base, type) and attrs.has(base):
        return isinstance(value, base)
    return None


def check_types(cls: type, values: Mapping[str, Any], *, what: str = "config", converted: bool = False) -> None:
    """Raise ``ConfigError`` for a value that does not fit its field's annotation (``lr="fast"``, ``ngf=2.5``).

    Fields with a converter are checked only when ``converted`` (their values after the converter ran)."""
    hints = _field_types(cls)
    has_converter = {f.name for f in attrs.fields(cls) if f.converter is not None}
    for key, value in values.items():
        if (key in has_converter) != converted:
            continue
        tp = hints.get(key, Any)
        if _fits(value, tp) is False:
            raise ConfigError(f"{what}: option {key!r} must be {_type_name(tp)}, got {value!r} "
                              f"({type(value).__name__})")


def cfg_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config (tuples become lists, nested configs become dicts)."""
    if cfg is None:
        return {}
    return attrs.asdict(cfg)  # tuples become lists, nested configs dicts


SAVED_BEFORE = "ganzoo_saved_before"
"""``attrs.field(metadata={SAVED_BEFORE: value})``: the value a saved config that lacks the field stands for. A field
added to a config after checkpoints were saved (with the behaviour they had then as ``value``) takes ``value`` when
such a checkpoint loads, and its default in a new config, so old checkpoints keep computing what they computed and a
``--resume`` of an old run lists the field as a change."""


def cfg_from_dict(template: C, data: Mapping[str, Any], *, what: str = "config") -> C:
    """Rebuild a config from ``cfg_to_dict`` output, using ``template`` (same class) for types and defaults; a field
    the saved config lacks keeps the template's value, or takes its ``SAVED_BEFORE`` metadata when it has one."""
    if template is None:
        if data:
            raise ConfigError(f"{what} takes no options, but the saved config has {sorted(data)}")
        return template
    values = {}
    for f in attrs.fields(type(template)):
        if f.name in data:
            values[f.name] = _restore(getattr(template, f.name), data[f.name], f"{what}.{f.name}")
        elif SAVED_BEFORE in f.metadata:
            values[f.name] = f.metadata[SAVED_BEFORE]
    unknown = sorted(set(data) - set(values))
    if unknown:
        raise ConfigError(f"saved {what} has field(s) {unknown} that {type(template).__name__} does not know")
    plain = {k: v for k, v in values.items() if not attrs.has(type(v))}  # nested configs were checked in _restore
    return _evolve_checked(template, values, plain, what=what, problem="bad value in saved")


def _restore(default: Any, value: Any, what: str) -> Any:
    if attrs.has(type(default)) and isinstance(value, Mapping):
        return cfg_from_dict(default, value, what=what)
    if isinstance(value, list):
        return tuple(_restore(None, v, what) for v in value)
    return value


def cfg_to_json(cfg: Any) -> str:
    return json.dumps(cfg_to_dict(cfg), sort_keys=True)
