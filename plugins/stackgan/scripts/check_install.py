#!/usr/bin/env python
"""ganzoo-stackgan installs alone: wheels of ganzoo-core (repository root) and ganzoo-stackgan, a fresh venv
without system site-packages, torch first (``GANZOO_PACKAGING_TORCH``, default ``torch==2.13.0``, which pip finds
on local disk here, as ``scripts/check_packaging.py``), then ``pip install --find-links WHEELHOUSE
ganzoo-stackgan``, then ``python -c`` composing Stage-I + Stage-II by registry name outside the repository.

    .venv/bin/python plugins/stackgan/scripts/check_install.py [--keep]

``check_stackgan_install()`` is the same as a function (for ``scripts/check_packaging.py`` or a test). Standard
library only.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLUGIN = Path(__file__).resolve().parent.parent
REPO = PLUGIN.parent.parent
DEFAULT_TORCH = "torch==2.13.0"

SMOKE = """
import torch, ganzoo_core as gz
assert 'stackgan' in {p.name for p in gz.list_plugins()}, gz.list_plugin_failures()
s1 = gz.create_generator('stackgan.s1_16', ngf=32)
s2 = gz.create_generator('stackgan.s2_32', ngf=8)
ca = gz.create_block('stackgan.ca', text_dim=512)
t = torch.randn(3, 512)
low, mu1, lv1 = s1(torch.randn(3, 100), t)
high, mu2, lv2 = s2(low, t)
assert low.shape == (3, 3, 16, 16) and high.shape == (3, 3, 32, 32), (low.shape, high.shape)
obj = gz.create_objective('stackgan.s2_32', generator_kwargs={'ngf': 8})
assert obj.stage1 is not None and not any(p.requires_grad for p in obj.stage1.parameters())
print('ok', tuple(high.shape), sum(p.numel() for p in gz.create_generator('stackgan.s2_256').parameters()))
"""


def _run(cmd: list, *, env: dict | None = None, cwd: Path | None = None, timeout: int = 1800) -> str:
    proc = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd[:4]))} ... failed ({proc.returncode}):\n"
                           f"{(proc.stdout + proc.stderr)[-3000:]}")
    return proc.stdout


def _clean_env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GANZOO_LOAD_PLUGINS", "PYTHONPATH", "PYTHONHOME",
                                                            "PIP_USER", "PIP_TARGET", "PIP_PREFIX")}
    env.update(HF_HUB_OFFLINE="1", PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", VIRTUAL_ENV=str(venv),
               PATH=os.pathsep.join([str(venv / "bin"), env.get("PATH", "")]))
    return env


def check_stackgan_install(work: Path | None = None, *, log=print) -> str:
    """Build, install alone, run by name; returns the smoke script's output ("ok (3, 3, 32, 32) 26290080")."""
    work = Path(tempfile.mkdtemp(prefix="stackgan-install-")) if work is None else Path(work)
    wheelhouse, venv = work / "wheels", work / "venv"
    t0 = time.perf_counter()
    for project in (REPO, PLUGIN):
        _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--disable-pip-version-check",
              "-w", wheelhouse, project], timeout=300)
    log(f"wheels: {sorted(p.name for p in wheelhouse.glob('*.whl'))} ({time.perf_counter() - t0:.0f}s)")
    _run([sys.executable, "-m", "venv", venv])  # system site-packages off (the default)
    env = _clean_env(venv)
    py = venv / "bin" / "python"
    _run([py, "-m", "pip", "install", *shlex.split(os.environ.get("GANZOO_PACKAGING_TORCH", DEFAULT_TORCH))], env=env,
         cwd=work)
    _run([py, "-m", "pip", "install", "--find-links", wheelhouse, "ganzoo-stackgan"], env=env, cwd=work)
    log(f"installed ({time.perf_counter() - t0:.0f}s)")
    where = _run([py, "-c", "import ganzoo_stackgan, ganzoo_core; print(ganzoo_stackgan.__file__); "
                  "print(ganzoo_core.__file__)"], env=env, cwd=work)
    for line in where.split():
        if venv.resolve() not in Path(line).resolve().parents:
            raise RuntimeError(f"imported from {line}, not from the fresh venv {venv}")
    out = _run([py, "-c", SMOKE], env=env, cwd=work).strip()
    log(f"{out} ({time.perf_counter() - t0:.0f}s)")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="stackgan-install-"))
    try:
        check_stackgan_install(tmp)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
