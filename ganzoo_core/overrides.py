"""``KEY=VALUE`` options as the commands take them (``--set``, ``--data-set``): one parser for every command, in a
module of its own so that the command modules share it without importing each other."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

from ganzoo_core.errors import GanzooError


def parse_overrides(items: Sequence[str], option: str = "--set") -> dict[str, Any]:
    """``key=value`` pairs as a dict; a value is a Python literal when it parses as one (``lr=1e-4``,
    ``betas=(0.5,0.99)``, ``generator_kwargs={'ngf': 8}``), else the text itself (``root=data/x``). Later pairs
    override earlier ones. ``option`` names the flag in the error for an item without ``=``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise GanzooError(f"{option} expects key=value, got {item!r}")
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw
        except (TypeError, RecursionError, MemoryError) as err:  # e.g. {[1]: 2}: a literal Python cannot build
            raise GanzooError(f"{option} {key}={raw[:80]!r} is not a value ganzoo can build ({type(err).__name__}: "
                              f"{str(err)[:80]}); write a number, string, tuple, list or dict of those") from None
    return out


__all__ = ["parse_overrides"]
