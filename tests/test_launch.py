"""The ``ganzoo`` console script: ``--help`` from a cache keyed by the installed code, without importing PyTorch;
the same text as the full parser prints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ganzoo_core import _launch

PROBE = ("import sys; from ganzoo_core._launch import main; code = main([{arg!r}]); "
         "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr); sys.exit(code)")


def run(arg: str, cache: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "GANZOO_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1", **env}
    return subprocess.run([sys.executable, "-c", PROBE.format(arg=arg)], capture_output=True, text=True,
                          env=full_env, timeout=300, check=True)


def test_help_is_the_full_parsers_and_comes_from_the_cache_without_torch(tmp_path: Path) -> None:
    first = run("--help", tmp_path)
    assert first.stderr.strip().endswith("TORCH")  # built once with every plugin loaded
    assert (tmp_path / _launch.CACHE_NAME).is_file()
    second = run("--help", tmp_path)
    assert second.stderr.strip().endswith("NO-TORCH") and second.stdout == first.stdout
    assert "translate" in second.stdout and "stargan-grid" in second.stdout  # core and plugin commands
    other = run("--help", tmp_path, GANZOO_LOAD_PLUGINS="")  # another plugin set: another fingerprint
    assert other.stderr.strip().endswith("TORCH") and "stargan-grid" not in other.stdout


def test_the_cached_text_equals_what_the_parser_prints(capsys: pytest.CaptureFixture[str]) -> None:
    from ganzoo_core.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    assert _launch.full_help() == capsys.readouterr().out


def test_version_and_a_stale_or_damaged_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from ganzoo_core._version import __version__

    assert run("--version", tmp_path).stdout.strip() == f"ganzoo-core {__version__}"
    monkeypatch.setenv("GANZOO_CACHE_DIR", str(tmp_path))
    key = _launch.fingerprint()
    assert key == _launch.fingerprint()
    _launch.store_help("another fingerprint", "stale text")
    assert _launch.cached_help(key) is None  # rebuilt, not printed
    (tmp_path / _launch.CACHE_NAME).write_text("{damaged")
    assert _launch.cached_help(key) is None
    assert _launch.main(["--help"]) == 0
    assert "usage: ganzoo" in capsys.readouterr().out and _launch.cached_help(key) is not None
