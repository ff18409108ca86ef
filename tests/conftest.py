"""Test setup: the registry holds the built-ins and this repo's released plugins only, never what happens to be
installed on the machine; pretrained weights are never fetched."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from ganzoo_core._catalogue import released_packages
from ganzoo_core._plugins import make_host, set_host

REPO = Path(__file__).resolve().parent.parent


FIRST_PARTY = released_packages()
HOST = make_host(FIRST_PARTY)  # also used at collection time to parametrise over the registry
assert not HOST.failures, HOST.failures


@pytest.fixture(autouse=True)
def _isolated_host() -> Iterator[None]:
    previous = set_host(HOST)
    yield
    set_host(previous)


@pytest.fixture
def make_dist(tmp_path: Path) -> Callable[..., Path]:
    """Write a real installed distribution (package + ``*.dist-info`` with entry points) into a folder on sys.path.

    ``make_dist("ganzoo-broken", {"ganzoo_broken/__init__.py": "raise ImportError('boom')"}, entry="broken")``
    """
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)

    def make(dist: str, files: dict[str, str], entry: str, module: str | None = None, version: str = "0.0.1") -> Path:
        module = module or dist.replace("-", "_")
        for rel, text in files.items():
            path = site / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[ganzoo]\n{entry} = {module}\n")
        (info / "RECORD").write_text("")
        return site

    sys.path.insert(0, str(site))
    yield make
    sys.path.remove(str(site))
    for name in [m for m in sys.modules if m.startswith("ganzoo_t")]:
        del sys.modules[name]
