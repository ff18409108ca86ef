"""Progress bars for the ``ganzoo`` commands: tqdm on stderr, shown only on a terminal.

``progress(...)`` returns a tqdm bar that draws when stderr is a terminal and stays silent otherwise (a pipe, a log
file, a test's captured output), so redirected output holds no carriage returns. ``enabled=False`` turns it off (a
command's ``--no-progress`` or ``--json``), ``enabled=True`` forces it on.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any


def progress_enabled(enabled: bool | None = None) -> bool:
    """Whether a bar draws: ``enabled`` when it is given, else whether stderr is a terminal."""
    if enabled is not None:
        return bool(enabled)
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # a closed or detached stream
        return False


def cli_progress(args: Any) -> bool | None:
    """The ``enabled=`` of a command's bars: off with ``--no-progress`` or ``--json``, else automatic (a terminal)."""
    return False if getattr(args, "no_progress", False) or getattr(args, "json", False) else None


def progress(iterable: Iterable[Any] | None = None, *, total: float | None = None, desc: str | None = None,
             unit: str = "it", enabled: bool | None = None, leave: bool = False, **kwargs: Any) -> Any:
    """A tqdm bar over ``iterable`` (or one updated by hand with ``bar.update(k)``), written to stderr.

    ``enabled=None`` shows it when stderr is a terminal; a disabled bar still iterates, counts and closes, and
    writes nothing. Use it as a context manager, or iterate it to the end, so it closes. ``leave=False`` clears the
    bar when it closes."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not progress_enabled(enabled), file=sys.stderr,
                leave=leave, dynamic_ncols=True, **kwargs)


__all__ = ["cli_progress", "progress", "progress_enabled"]
