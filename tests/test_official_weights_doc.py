"""docs/official-weights.md names only registered entries and tests that exist: a row cannot outlive its check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import ganzoo_core as gz

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "official-weights.md"
ROWS = [line for line in DOC.read_text().splitlines() if line.startswith("| ") and not line.startswith("| ---")][1:]


def cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip("|").split("|")]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: cells(r)[0][:40])
def test_row_names_registered_entries_and_existing_tests(row: str) -> None:
    project, _, names, command, tests = cells(row)
    named = re.findall(r"`([a-z0-9_]+\.[a-z0-9_]+)`", names)
    assert named, f"{project}: no registry name in {names!r}"
    kinds = ("generator", "discriminator", "encoder", "objective")
    for name in named:
        assert any(gz.is_name(kind, name) for kind in kinds), f"{project}: {name} is not registered"
    for name in re.findall(r'create_\w+\("([a-z0-9_.]+)"', command) + re.findall(r"--encoder ([a-z0-9_.]+)", command):
        assert any(gz.is_name(kind, name) for kind in kinds), f"{project}: the command's {name} is not registered"
    current = ""
    for ref in re.findall(r"`([^`]+)`", tests):
        path, _, test = ref.partition("::")
        if path:
            current = path
        assert (REPO / current).is_file(), f"{project}: {current} does not exist"
        if test:
            assert f"def {test}(" in (REPO / current).read_text(), f"{project}: {current} has no {test}"
