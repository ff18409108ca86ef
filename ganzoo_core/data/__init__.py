"""ganzoo's data layer: one versioned HDF5 schema (``schema``), converters from the formats users already have
(``convert``), the lazy reader that training uses (``schema.H5Dataset``, registered as dataset ``h5.file``), and the
``ganzoo data`` and ``ganzoo encode`` commands (``cli``), added through the ``ganzoo_add_commands`` hook."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ganzoo_core.data import austen, emoji, schema, shapes  # noqa: F401  (register h5.file, austen, emoji, shapes)
from ganzoo_core.hookspecs import hookimpl

GANZOO_API_VERSION = "1.0"


@hookimpl
def ganzoo_add_commands(subparsers: Any, context: Mapping[str, Any]) -> None:
    """``ganzoo data list | build | info`` and ``ganzoo encode``."""
    from ganzoo_core.data.cli import add_data_commands

    add_data_commands(subparsers)
