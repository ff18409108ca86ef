"""``scripts/gpu_check.sh``, the one command for a CUDA machine, checked here without a GPU: it parses, and its dry
mode names the steps the issue asks for, each under a limit, within the 8 minutes it promises, writing nothing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO

SCRIPT = REPO / "scripts" / "gpu_check.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def test_the_script_parses() -> None:
    result = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_dry_mode_prints_the_steps_with_limits_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "GPU_CHECK_DRY": "1", "OUT": str(out)}
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    steps = dict(re.findall(r"^step (\S+)\s+limit\s+(\d+)s: ", result.stdout, re.M))
    assert list(steps) == ["op-tests", "bench-ops", "bench-models"], result.stdout
    assert sum(map(int, steps.values())) <= 8 * 60 - 30  # room for set-up and the summary
    lines = {name: next(line for line in result.stdout.splitlines() if line.startswith(f"step {name} "))
             for name in steps}
    assert "tests/test_ops.py" in lines["op-tests"] and '-m not slow' in lines["op-tests"]
    assert f"bench ops --device cuda --out {out}/ops" in lines["bench-ops"]
    assert f"bench models --all --baseline official --device cuda --out {out}/models" in lines["bench-models"]
    assert "--no-deps --no-build-isolation -e" in result.stdout  # how it installs, offline
    assert not out.exists()
