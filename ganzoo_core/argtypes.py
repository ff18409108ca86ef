"""argparse ``type=`` functions for the ``ganzoo`` commands and plugins' own commands: a bad value is a one-line usage error
(exit 2) naming the option, the value and what was expected."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

SEED_MAX = 2**31 - 1
"""The largest seed the commands take (torch's generators and the per-step seeds derived from it stay in range)."""


def int_at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type=``: an integer >= ``minimum`` (and <= ``maximum``); anything else is a usage error (exit
    2) naming the value."""
    expected = f"an integer >= {minimum}" if maximum is None else f"an integer from {minimum} to {maximum}"

    def parse(text: str) -> int:
        try:
            value: int | None = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = expected
    return parse


seed = int_at_least(0, SEED_MAX)
"""An argparse ``type=`` for ``--seed``: 0 to ``SEED_MAX``."""


def positive_float(text: str) -> float:
    """An argparse ``type=``: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def device(text: str) -> str:
    """An argparse ``type=``: a device this machine has (``cpu``, ``cuda``, ``cuda:1``, ...)."""
    from ganzoo_core.distributed import check_device
    from ganzoo_core.errors import GanzooError

    try:
        check_device(text)
    except GanzooError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text
