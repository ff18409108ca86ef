"""Every module imports on its own with warnings as errors (a stale import or a deprecation fails here)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import ganzoo_dcgan
import pytest

import ganzoo_core

MODULES = sorted(
    m.name for pkg in (ganzoo_core, ganzoo_dcgan) for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")
) + ["ganzoo_core", "ganzoo_dcgan"]


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_cleanly(module: str) -> None:
    proc = subprocess.run([sys.executable, "-W", "error", "-c", f"import {module}"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
