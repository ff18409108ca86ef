"""Finding the files of installed Debian packages (real data shipped as .deb: datasets, fonts, annotations)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def debian_files(package: str) -> list[Path]:
    """The files of an installed Debian package (``dpkg -L``); empty when it or dpkg is missing."""
    if shutil.which("dpkg") is None:
        return []
    out = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=False)
    return [Path(p) for p in out.stdout.splitlines()] if out.returncode == 0 else []
