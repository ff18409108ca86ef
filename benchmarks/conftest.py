"""Benchmarks run against the built-ins and this repo's released plugins only (as the tests do)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

from ganzoo_core._catalogue import released_packages
from ganzoo_core._plugins import make_host, set_host

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HOST = make_host(released_packages())


@pytest.fixture(autouse=True)
def _host() -> Iterator[None]:
    previous = set_host(HOST)
    yield
    set_host(previous)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
