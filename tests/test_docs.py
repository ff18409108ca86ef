"""registry.toml and the docs say what the code does."""

from __future__ import annotations

import re
import sys

import pytest
from conftest import HOST, REPO

from ganzoo_core._catalogue import load_catalogue, provider_of

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CATALOGUE = load_catalogue()
RELEASED = {name: t for name, t in CATALOGUE["plugins"].items() if t["status"] == "released"}


def _registered(plugin_prefix: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for entry in HOST.registry.entries():
        if entry.plugin == plugin_prefix or entry.plugin.startswith(plugin_prefix + "."):
            out.setdefault(entry.kind, []).append(entry.name)
    return {k: sorted(v) for k, v in out.items()}


@pytest.mark.parametrize("plugin", sorted(RELEASED))
def test_released_plugin_provides_what_the_catalogue_says(plugin: str) -> None:
    table = RELEASED[plugin]
    assert _registered(plugin) == {k: sorted(v) for k, v in table["provides"].items()}
    project = tomllib.loads((REPO / "plugins" / plugin / "pyproject.toml").read_text())["project"]
    assert project["name"] == table["distribution"] == f"ganzoo-{plugin}"
    assert project["entry-points"]["ganzoo"] == {plugin: table["package"]}
    for names in table["provides"].values():
        assert all(n.split(".")[0] in table["families"] for n in names)


def test_core_provides_what_the_catalogue_says() -> None:
    assert _registered("core") == {k: sorted(v) for k, v in CATALOGUE["core"]["provides"].items()}


def test_every_first_party_plugin_is_catalogued() -> None:
    expected = {"dcgan", "gan-cls", "stackgan", "pix2pix-unet", "cyclegan", "stargan", "skipthought-encoder"}
    assert set(CATALOGUE["plugins"]) == expected
    for name, table in CATALOGUE["plugins"].items():
        assert table["distribution"] == f"ganzoo-{name}" and table["package"] == "ganzoo_" + name.replace("-", "_")
        assert table["status"] in ("released", "planned") and table["paper"] and table["families"]
        assert (REPO / "plugins" / name / "pyproject.toml").is_file() == (table["status"] == "released")


def test_provider_lookup() -> None:
    assert provider_of("cyclegan.resnet_9blocks")[0] == "cyclegan"
    assert provider_of("nothing.here") is None


def test_design_doc_maps_all_seven_families() -> None:
    text = (REPO / "docs" / "design.md").read_text()
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    for family in ("DCGAN", "GAN-CLS", "StackGAN", "pix2pix", "CycleGAN", "StarGAN", "Skip-thought"):
        assert any(h.startswith(family) for h in headings), family


def _python_block_after(heading: str, text: str) -> str:
    section = text[text.index(heading):]
    start = section.index("```python\n") + len("```python\n")
    return section[start: section.index("```", start)]


def test_readme_composition_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    code = _python_block_after("## Compose models by name", (REPO / "README.md").read_text())
    assert len(code.strip().splitlines()) == 5
    scope: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert capsys.readouterr().out.strip() == "['dcgan.28', 'dcgan.32', 'dcgan.64']"
    assert tuple(scope["images"].shape) == (16, 1, 28, 28)
    assert scope["D"].cfg.ndf == 32 and scope["gan"].networks["G"].cfg.ngf == 32
    assert type(scope["gan"].gan_loss).__name__ == "HingeLoss"


def test_readme_names_the_two_commands_and_ci_calls_the_test_one() -> None:
    readme = (REPO / "README.md").read_text()
    assert "scripts/demo.sh" in readme and "scripts/test.sh" in readme
    assert "scripts/test.sh" in (REPO / ".ci" / "run").read_text()
