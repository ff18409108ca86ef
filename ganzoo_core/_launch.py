"""The ``ganzoo`` console script: ``ganzoo --help`` and ``ganzoo --version`` without loading PyTorch.

Building the full parser imports every plugin (and with them PyTorch, seconds of start-up). The help text it prints
depends only on the installed code, so the first ``ganzoo --help`` stores it in ``<cache>/cli-help.json`` with a
fingerprint of that code: ganzoo-core's version, the ``ganzoo`` entry points with their distributions' versions, the
modification times of the core's and the plugins' source files, ``GANZOO_LOAD_PLUGINS`` and the Python executable.
Later calls print the stored text when the fingerprint still matches (checked with the standard library only),
and rebuild it otherwise. Every other command goes straight to ``ganzoo_core.cli.main``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

HELP_FORMS = (["-h"], ["--help"])
CACHE_NAME = "cli-help.json"


def cache_dir() -> Path:
    """``$GANZOO_CACHE_DIR``, else ``$XDG_CACHE_HOME/ganzoo``, else ``~/.cache/ganzoo``."""
    if os.environ.get("GANZOO_CACHE_DIR"):
        return Path(os.environ["GANZOO_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ganzoo"


def _mtimes(origin: str | None) -> float:
    """The newest modification time of the ``.py`` files in the package folder of ``origin`` (its ``__init__``)."""
    if not origin:
        return 0.0
    folder = Path(origin).parent
    try:
        return max((e.stat().st_mtime for e in os.scandir(folder) if e.name.endswith(".py")), default=0.0)
    except OSError:
        return 0.0


def fingerprint() -> str:
    """What the help text depends on, hashed (standard library only: no plugin, no PyTorch is imported)."""
    parts: list[str] = [sys.executable, os.environ.get("GANZOO_LOAD_PLUGINS", "<all>")]
    try:
        parts.append(importlib.metadata.version("ganzoo-core"))
    except importlib.metadata.PackageNotFoundError:
        parts.append("?")
    parts.append(repr(_mtimes(str(Path(__file__)))))
    for ep in sorted(importlib.metadata.entry_points(group="ganzoo"), key=lambda e: (e.name, e.value)):
        dist = getattr(ep, "dist", None)
        version = f"{dist.metadata['Name']} {dist.version}" if dist is not None else "?"
        spec = importlib.util.find_spec(ep.value.split(":")[0].split(".")[0])
        parts.append(f"{ep.name}={ep.value} ({version}) {_mtimes(spec.origin if spec else None)!r}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def cached_help(key: str) -> str | None:
    try:
        data = json.loads((cache_dir() / CACHE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("help") if isinstance(data, dict) and data.get("fingerprint") == key else None


def store_help(key: str, text: str) -> None:
    """Write the cache atomically; a cache that cannot be written only costs the next call its speed."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{CACHE_NAME}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"fingerprint": key, "help": text}, f)
        os.replace(tmp, folder / CACHE_NAME)
    except OSError:
        pass


def full_help() -> str:
    """The help text of the full parser (plugins loaded), as ``ganzoo --help`` prints it."""
    import contextlib
    import io

    from ganzoo_core.cli import main as cli_main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            cli_main(["--help"])
        except SystemExit:
            pass
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:
        from ganzoo_core._version import __version__

        print(f"ganzoo-core {__version__}")
        return 0
    if args in HELP_FORMS:
        key = fingerprint()
        text = cached_help(key)
        if text is None:
            text = full_help()
            store_help(key, text)
        sys.stdout.write(text)
        return 0
    from ganzoo_core.cli import main as cli_main

    return cli_main(args)
