"""experiments/: every run config reads, names registered things and points at its results; every experiment folder
has a README that links its config; every experiment a README or doc names exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import REPO

from ganzoo_core.runconfig import read_run_config, validate_run_config

EXPERIMENTS = REPO / "experiments"
FOLDERS = sorted(p for p in EXPERIMENTS.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
CONFIGS = sorted(EXPERIMENTS.glob("*/*.toml"))
DOCS = [REPO / "README.md", *sorted(REPO.glob("plugins/*/README.md")), *sorted((REPO / "docs").glob("*.md")),
        EXPERIMENTS / "README.md", *sorted(EXPERIMENTS.glob("*/README.md"))]
FOLDER_NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)+")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")  # markdown link targets, anchors dropped


def _id(path: Path) -> str:
    return str(path.relative_to(EXPERIMENTS))


def test_there_are_experiments() -> None:
    assert len(FOLDERS) >= 7 and len(CONFIGS) >= len(FOLDERS)


@pytest.mark.parametrize("path", CONFIGS, ids=_id)
def test_run_config_reads_and_fits_the_registry(path: Path) -> None:
    config = read_run_config(path)
    validate_run_config(config)  # names registered, [set] / [data_set] keys are fields of their configs
    assert config.train.get("objective"), f"{path}: names no objective"
    assert config.experiment.get("name") and config.experiment.get("description")


@pytest.mark.parametrize("path", CONFIGS, ids=_id)
def test_run_config_results_file_is_json(path: Path) -> None:
    results = read_run_config(path).experiment.get("results")
    assert results, f"{path}: [experiment] names no results file"
    target = path.parent / results
    assert target.is_file(), f"{path}: results {results!r} is not a file of {path.parent.name}/"
    assert isinstance(json.loads(target.read_text()), dict)


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_folder_has_config_and_readme_linking_it(folder: Path) -> None:
    assert FOLDER_NAME.fullmatch(folder.name), f"{folder.name}: expected <family>-<short-name>"
    config = read_run_config(folder / "config.toml")
    assert config.experiment["name"] == folder.name
    family = config.train["objective"].split(".")[0].replace("_", "-")
    assert folder.name.startswith(family + "-"), f"{folder.name} trains {config.train['objective']}"
    readme = (folder / "README.md").read_text()
    assert "](config.toml)" in readme, f"{folder.name}/README.md does not link config.toml"
    assert f"--config experiments/{folder.name}/config.toml" in readme, "no command runs the config"
    assert f"]({config.experiment['results']})" in readme, "README does not link the results file"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_links_and_experiment_paths_in_docs_exist(doc: Path) -> None:
    text = doc.read_text()
    missing = [t for t in LINK.findall(text) if "://" not in t and not (doc.parent / t).exists()]
    missing += [m for m in re.findall(r"(?<![\w/.])experiments/[\w./-]*[\w]", text) if not (REPO / m).exists()]
    assert not missing, f"{doc.relative_to(REPO)} names what does not exist: {missing}"


def test_index_lists_every_experiment() -> None:
    index = (EXPERIMENTS / "README.md").read_text()
    assert [f.name for f in FOLDERS if f"]({f.name}/README.md)" not in index] == []


def test_each_family_readme_links_its_experiments() -> None:
    """A plugin README's results link the experiment folders of its family (and the root README each family's)."""
    readme = (REPO / "README.md").read_text()
    for folder in FOLDERS:
        family = folder.name.split("-")[0]
        plugin = next(p for p in (REPO / "plugins").iterdir() if p.name.split("-")[0] == family)
        text = (plugin / "README.md").read_text()
        assert f"experiments/{folder.name}/README.md" in text, f"{plugin.name}/README.md does not link {folder.name}"
    linked = set(re.findall(r"\]\(experiments/([\w-]+)/README\.md\)", readme))
    assert {f.name.split("-")[0] for f in FOLDERS} == {name.split("-")[0] for name in linked}
