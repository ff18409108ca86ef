"""How long ``ganzoo --help`` takes to start: the cached help (no PyTorch import) beside importing PyTorch alone and
beside building the full parser, in one run (read the ratios).

    .venv/bin/python -m pytest benchmarks/bench_startup.py --benchmark-group-by=group
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CASES = {
    "ganzoo --help (cached)": "from ganzoo_core._launch import main; main(['--help'])",
    "import torch": "import torch",
    "full parser (every plugin loaded)": "from ganzoo_core._launch import full_help; full_help()",
}


@pytest.mark.parametrize("case", list(CASES))
def test_startup(benchmark, case: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    cache = tmp_path_factory.getbasetemp() / "ganzoo-cache"
    env = {**os.environ, "GANZOO_CACHE_DIR": str(cache)}
    subprocess.run([sys.executable, "-c", CASES["ganzoo --help (cached)"]], env=env, check=True,
                   capture_output=True)  # fills the cache
    benchmark.group = "start-up"
    benchmark.pedantic(lambda: subprocess.run([sys.executable, "-c", CASES[case]], env=env, check=True,
                                              capture_output=True), rounds=5, warmup_rounds=1)
    assert Path(cache).is_dir()
