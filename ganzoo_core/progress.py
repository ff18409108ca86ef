"""Progress bars for the ``ganzoo`` commands: tqdm on stderr, shown only on a terminal.

``progress(...)`` returns a tqdm bar that draws when stderr is a terminal and stays silent otherwise (a pipe, a log
file, a test's captured output), so redirected output holds no carriage returns. ``enabled=False`` turns it off (a
command's ``--no-progress`` or ``--json``), ``enabled=True`` forces it on.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterable, Iterator
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


class CountBar:
    """A ``progress(done, total)`` callback (what ``encode_texts`` calls after each batch) that draws a bar."""

    def __init__(self, desc: str, unit: str = "it", enabled: bool | None = None) -> None:
        self.desc, self.unit, self.enabled, self.bar = desc, unit, enabled, None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = progress(total=total, desc=self.desc, unit=self.unit, enabled=self.enabled)
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@contextlib.contextmanager
def busy(desc: str, enabled: bool | None = None) -> Iterator[None]:
    """A bar for a step with no count to show (reading a dataset's source): its name and the elapsed time, redrawn
    twice a second while the block runs."""
    bar = progress(total=None, desc=desc, unit="s", enabled=enabled, bar_format="{desc}: {elapsed}")
    if bar.disable:
        yield
        return
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(0.5):
            bar.refresh()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        bar.close()


__all__ = ["CountBar", "busy", "cli_progress", "progress", "progress_enabled"]
