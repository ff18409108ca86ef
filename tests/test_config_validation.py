"""Every numeric option of every registered config has a range validator, and a bad override is a ConfigError that
names the option. Parametrised over the whole registry (every kind, every name, nested attrs configs included), so a
new variant or plugin is checked without a new test. Each plugin's own tests keep its table of specific bad values."""

from __future__ import annotations

import math
import sys
import textwrap
from pathlib import Path
from typing import Any

import attrs
import pytest
from conftest import HOST

from ganzoo_core import validators as v
from ganzoo_core._api import create, get_entry
from ganzoo_core._registry import KINDS
from ganzoo_core.errors import ConfigError
from ganzoo_core.testing import check_plugin, check_validators, config_field, missing_validators, numeric_fields


def _entries() -> list[tuple[str, str]]:
    return [(kind, name) for kind in KINDS for name in HOST.registry.names(kind)
            if attrs.has(type(HOST.registry.get(kind, name).cfg))]


ENTRIES = _entries()
NUMERIC = [(kind, name, path) for kind, name in ENTRIES for path in numeric_fields(HOST.registry.get(kind, name).cfg)]


def below_range(field: attrs.Attribute, value: Any) -> list[Any]:
    """-1 in the field's own number type (-1.0 for a float, also when the default is None), or for a tuple of numbers
    its value with -1 in one place, each place in turn."""
    if isinstance(value, tuple):
        return [value[:i] + (type(x)(-1),) + value[i + 1:] for i, x in enumerate(value) if isinstance(x, (int, float))]
    return [-1.0 if "float" in str(field.type) else -1]


def _rejects(field: attrs.Attribute, cfg: Any, value: Any) -> bool:
    try:
        field.validator(cfg, field, value)
    except (TypeError, ValueError):
        return True
    return False


BELOW_RANGE = [  # (kind, name, top-level field, a value below its range that its validator refuses)
    (kind, name, path, value) for kind, name, path in NUMERIC if "." not in path
    for field, cfg in [config_field(HOST.registry.get(kind, name).cfg, path)] if field.validator is not None
    for value in below_range(field, getattr(cfg, path)) if _rejects(field, cfg, value)
]


def test_the_registry_has_numeric_fields_to_check() -> None:
    assert len(NUMERIC) > 20 and len(BELOW_RANGE) > 10
    assert ("loss", "gan.bce", "real_label") in NUMERIC
    checked = {(kind, name, path, repr(value)) for kind, name, path, value in BELOW_RANGE}
    assert {("encoder", "bow.hashed", "dim", "-1"), ("objective", "dcgan.64", "lr", "-1.0"),
            ("objective", "dcgan.64", "lr_d", "-1.0"), ("objective", "dcgan.64", "betas", "(0.5, -1.0)"),
            ("dataset", "shapes.32", "seed", "-1")} <= checked


@pytest.mark.parametrize(("kind", "name"), ENTRIES, ids=[f"{k}-{n}" for k, n in ENTRIES])
def test_every_numeric_field_has_a_validator(kind: str, name: str) -> None:
    check_validators(kind, name)


@pytest.mark.parametrize(("kind", "name", "field", "value"), BELOW_RANGE,
                         ids=[f"{k}-{n}-{f}={x!r}" for k, n, f, x in BELOW_RANGE])
def test_a_value_below_range_is_a_config_error_naming_the_field(kind: str, name: str, field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=rf"\b{field}\b"):
        create(kind, name, **{field: value})


def test_every_registered_name_still_creates_its_config() -> None:
    """The validators accept every registered variant's official values (building the config re-runs them)."""
    for kind, name in ENTRIES:
        cfg = get_entry(kind, name).cfg
        assert attrs.evolve(cfg) == cfg, (kind, name)


# -- the shared validators and the conformance check plugin authors get ---------------------------------------------


@pytest.mark.parametrize(("validator", "good", "bad"), [
    (v.size, (1, 64), (0, -1)),
    (v.non_negative, (0, 0.0, 2.5), (-1, -0.5)),
    (v.positive, (2e-4, 1), (0.0, -1.0, math.inf, math.nan)),
    (v.probability, (0.0, 0.5, 1.0), (-0.1, 1.5, math.nan)),
    (v.betas, ((0.5, 0.999), (0.0, 0.0)), ((0.5, 1.0), (-0.1, 0.9), (0.5,), (0.5, 0.9, 0.9))),
    (v.one_of(("batch", "instance")), ("batch",), ("group",)),
    (v.each(v.size), ((), (3, 1)), ((3, 0),)),
    (v.optional(v.size), (None, 1), (0,)),
], ids=["size", "non_negative", "positive", "probability", "betas", "one_of", "each", "optional"])
def test_shared_validators(validator: Any, good: tuple[Any, ...], bad: tuple[Any, ...]) -> None:
    @attrs.frozen
    class Cfg:
        width: Any = attrs.field(validator=validator)

    for value in good:
        assert Cfg(value).width == value
    for value in bad:
        with pytest.raises(ValueError, match="'?width'? must"):
            Cfg(value)


@attrs.frozen(kw_only=True)
class _Inner:
    scale: float = 1.0
    depth: int = attrs.field(default=2, validator=v.size)


@attrs.frozen(kw_only=True)
class _Outer:
    width: int = 4
    lr: float | None = None
    betas: tuple[float, float] = (0.5, 0.999)
    steps: tuple[int, ...] = attrs.field(default=(), validator=v.each(v.size))
    flag: bool = True
    name: str = "x"
    inner: _Inner = _Inner()


def test_numeric_fields_and_missing_validators_name_nested_fields() -> None:
    assert numeric_fields(_Outer()) == ["width", "lr", "betas", "steps", "inner.scale", "inner.depth"]
    assert missing_validators(_Outer()) == ["width", "lr", "betas", "inner.scale"]
    assert missing_validators(_Inner(depth=3)) == ["scale"]
    field, holder = config_field(_Outer(), "inner.depth")
    assert field.name == "depth" and holder == _Inner()


UNCHECKED_PLUGIN = """
    import attrs
    import torch
    import ganzoo_core as gz
    from ganzoo_core import validators as v

    GANZOO_API_VERSION = "1.0"

    @attrs.frozen(kw_only=True)
    class Cfg:
        margin: float = 1.0
        smooth: float = attrs.field(default=0.0, validator=v.probability)

    @gz.register_loss("tunchecked.hinge", cfg=Cfg())
    class Hinge:
        '''A hinge loss whose margin has no validator.'''
        def __init__(self, cfg=Cfg()):
            self.cfg = cfg
        def d_real(self, logits):
            return torch.relu(self.cfg.margin - logits).mean()
        def d_fake(self, logits):
            return torch.relu(self.cfg.margin + logits).mean()
        def g_fake(self, logits):
            return -logits.mean()
"""


def test_check_plugin_names_numbers_without_a_validator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ganzoo_tunchecked.py").write_text(textwrap.dedent(UNCHECKED_PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(AssertionError, match=r"loss 'tunchecked.hinge': Cfg has numbers without a validator: margin \("):
            check_plugin("ganzoo_tunchecked")
    finally:
        sys.modules.pop("ganzoo_tunchecked", None)
