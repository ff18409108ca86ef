"""Every registered entry, of every kind, passes the conformance checks plugin authors get from
``ganzoo_core.testing``. Parametrised over the live registry: a new entry is tested without new test code.

A first-party plugin whose own suite calls ``check_plugin("<module>")`` runs these checks on every entry it
registers, with the plugin loaded alone (stricter than here, where all plugins are loaded); its entries are left to
that test instead of being checked twice in one CI run. Every other entry (the core's, a plugin without such a
test) is checked here."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import HOST

from ganzoo_core._registry import KINDS
from ganzoo_core.testing import check_entry

REPO = Path(__file__).resolve().parents[1]
PLUGIN_SUITES = "\n".join(p.read_text(encoding="utf-8") for p in sorted(REPO.glob("plugins/*/tests/test_*.py")))
OWN_SUITE = {entry for info in HOST.plugins.values() if f'check_plugin("{info.module}")' in PLUGIN_SUITES
             for entry in info.entries}
ENTRIES = [(kind, name) for kind in KINDS if kind not in ("dataset", "op") for name in HOST.registry.names(kind)
           if f"{kind} {name}" not in OWN_SUITE]


def test_registry_is_not_empty() -> None:
    kinds = {kind for kind in KINDS if HOST.registry.names(kind)}
    assert {"generator", "discriminator", "block", "loss", "objective"} <= kinds


def test_every_entry_is_checked_here_or_by_its_plugin() -> None:
    everything = {f"{kind} {name}" for kind in KINDS if kind not in ("dataset", "op")
                  for name in HOST.registry.names(kind)}
    here = {f"{kind} {name}" for kind, name in ENTRIES}
    assert everything <= here | OWN_SUITE and not here & OWN_SUITE
    assert {"generator stargan.128", "objective gan_cls.cls_32", "loss gan.bce"} <= everything
    assert len(OWN_SUITE) > len(here)  # the first-party plugins' suites carry most entries


@pytest.mark.parametrize(("kind", "name"), ENTRIES, ids=[f"{k}:{n}" for k, n in ENTRIES])
def test_entry_conforms(kind: str, name: str) -> None:
    check_entry(kind, name)
