"""Packaging: the pyproject files declare the right dependencies and entry points (fast), and the wheels build,
install into a fresh venv and work there (slow: ``scripts/check_packaging.py``, about a minute here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
ROOT_PYPROJECT = REPO / "pyproject.toml"
PLUGIN_PYPROJECTS = sorted(REPO.glob("plugins/*/pyproject.toml"))
FORBIDDEN = "ganzoo"  # an unrelated project of that name exists on PyPI; the core is "ganzoo-core"


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)", requirement)
    assert match, f"cannot parse the requirement {requirement!r}"
    return _normalize(match.group(1))


def _load(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def _all_requirements(data: dict[str, Any]) -> list[str]:
    project = data.get("project", {})
    reqs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    reqs += data.get("build-system", {}).get("requires", [])
    return reqs


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def test_there_are_plugins() -> None:
    assert PLUGIN_PYPROJECTS, "no plugins/*/pyproject.toml found"


OPTIONAL = {"matplotlib", "tensorboard", "timm", "torchfile", "transformers", "emoji", "rdata", "scikit-image", "gradio"}


@pytest.mark.parametrize("pyproject", [ROOT_PYPROJECT, *PLUGIN_PYPROJECTS], ids=_rel)
def test_optional_packages_stay_extras_and_dev_tools_a_dependency_group(pyproject: Path) -> None:
    """A plain install pulls none of the optional packages (matplotlib is the [plots] extra), and development tools
    are a PEP 735 dependency group, never a published extra."""
    data = _load(pyproject)
    required = {_requirement_name(r) for r in data["project"].get("dependencies", [])}
    assert not required & OPTIONAL, f"{_rel(pyproject)} requires {sorted(required & OPTIONAL)}; make them an extra"
    extras = data["project"].get("optional-dependencies", {})
    assert not {"dev", "test", "tests"} & set(extras), f"{_rel(pyproject)} publishes test tools as an extra"
    if pyproject == ROOT_PYPROJECT:
        assert {"plots", "tensorboard", "torch7", "demo", "all"} <= set(extras)
        assert "pytest" in {_requirement_name(r) for r in data["dependency-groups"]["dev"]}


@pytest.mark.parametrize("pyproject", [ROOT_PYPROJECT, *PLUGIN_PYPROJECTS], ids=_rel)
def test_no_dependency_on_the_unrelated_ganzoo_project(pyproject: Path) -> None:
    bad = [r for r in _all_requirements(_load(pyproject)) if _requirement_name(r) == FORBIDDEN]
    assert not bad, f"{_rel(pyproject)} depends on {bad}: 'ganzoo' on PyPI is another project; use 'ganzoo-core'"


@pytest.mark.parametrize("pyproject", PLUGIN_PYPROJECTS, ids=_rel)
def test_plugin_depends_on_core_and_declares_its_package(pyproject: Path) -> None:
    project = _load(pyproject)["project"]
    deps = {_requirement_name(r) for r in project.get("dependencies", [])}
    assert "ganzoo-core" in deps, f"{_rel(pyproject)} does not depend on ganzoo-core (has {sorted(deps)})"

    name = project["name"]
    assert _normalize(name).startswith("ganzoo-"), f"{_rel(pyproject)}: plugin distribution {name!r}"
    package = "ganzoo_" + _normalize(name).removeprefix("ganzoo-").replace("-", "_")
    entry_points = project.get("entry-points", {}).get("ganzoo", {})
    assert len(entry_points) == 1, f"{_rel(pyproject)}: entry points in group 'ganzoo': {entry_points}"
    (module,) = entry_points.values()
    assert module == package, f"{_rel(pyproject)}: the 'ganzoo' entry point names {module!r}, expected {package!r}"
    assert (pyproject.parent / package / "__init__.py").is_file(), f"{_rel(pyproject)}: no package {package}/"


@pytest.mark.slow
def test_wheels_build_install_and_work_in_a_fresh_venv(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "check_packaging.py"), "--wheelhouse", str(tmp_path / "wheelhouse")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, f"check_packaging.py failed:\n{proc.stdout}\n{proc.stderr}"
