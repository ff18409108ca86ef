"""Every registered entry, of every kind, passes the conformance checks plugin authors get from
``ganzoo_core.testing``. Parametrised over the live registry: a new entry is tested without new test code."""

from __future__ import annotations

import pytest
from conftest import HOST

from ganzoo_core._registry import KINDS
from ganzoo_core.testing import check_entry

ENTRIES = [(kind, name) for kind in KINDS if kind not in ("dataset", "op") for name in HOST.registry.names(kind)]


def test_registry_is_not_empty() -> None:
    kinds = {kind for kind, _ in ENTRIES}
    assert {"generator", "discriminator", "block", "loss", "objective"} <= kinds


@pytest.mark.parametrize(("kind", "name"), ENTRIES, ids=[f"{k}:{n}" for k, n in ENTRIES])
def test_entry_conforms(kind: str, name: str) -> None:
    check_entry(kind, name)
