"""Validators for config fields, shared by the core and every plugin: ``attrs.field(default=64, validator=size)``.

Each raises ``ValueError`` naming the field, the bad value and what is allowed; ``create_*`` turns it into a
``ConfigError``. Types are checked by the core from the field's annotation, so these check ranges and choices only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import attrs

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]

size: Validator = attrs.validators.ge(1)
"""Channels, widths, dims, counts, sizes: at least 1."""

non_negative: Validator = attrs.validators.ge(0)
"""Loss weights, penalty coefficients, pool sizes, seeds: 0 or more."""

HALVINGS_MAX = 20
"""The most ×2 downsamplings a network may stack (2**20: a million pixels a side); fields that are exponents of 2
(``n_down``, ``n_downs``, ``n_layers`` of a PatchGAN) are checked against it before anything computes 2**value."""

DEPTH_MAX = 1024
"""The most repeated blocks or layers a network may have (residual blocks, ...)."""


def at_most(limit: int) -> Validator:
    """A value no larger than ``limit`` (an upper bound beside ``size``: ``validator=[v.size, v.at_most(20)]``)."""
    return attrs.validators.le(limit)


halvings: Validator = attrs.validators.and_(attrs.validators.ge(0), attrs.validators.le(HALVINGS_MAX))
"""A count of ×2 downsamplings (an exponent of 2): 0 to ``HALVINGS_MAX``."""

depth: Validator = attrs.validators.and_(attrs.validators.ge(0), attrs.validators.le(DEPTH_MAX))
"""A count of repeated blocks: 0 to ``DEPTH_MAX``."""

optional = attrs.validators.optional
"""``optional(size)``: None, or what the inner validator accepts."""


def positive(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    """Learning rates, standard deviations, temperatures: a finite number above 0."""
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"'{attribute.name}' must be a finite number above 0, got {value!r}")


def probability(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    """Dropout rates, label values, mixing weights: a number in [0, 1]."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"'{attribute.name}' must be in [0, 1], got {value!r}")


def betas(_: Any, attribute: attrs.Attribute[Any], value: tuple[float, ...]) -> None:
    """Adam's (β1, β2): two numbers, each in [0, 1)."""
    if len(value) != 2 or not all(0.0 <= b < 1.0 for b in value):
        raise ValueError(f"'{attribute.name}' must be two numbers in [0, 1) (Adam's β1, β2), got {value!r}")


def one_of(choices: Iterable[Any]) -> Validator:
    """A value from a fixed set; the message lists the set."""
    allowed = tuple(choices)

    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in allowed:
            raise ValueError(f"'{attribute.name}' must be one of {', '.join(map(repr, allowed))}; got {value!r}")

    return check


def each(inner: Validator) -> Validator:
    """Every item of a tuple field passes ``inner`` (``each(size)`` for a tuple of widths)."""
    return attrs.validators.deep_iterable(inner)
