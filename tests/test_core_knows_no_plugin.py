"""The core knows no plugin: no file of ``ganzoo_core`` names a first-party plugin's registry names or packages.

A plugin reaches the core through the registry and hooks, never the other way round: core code, help texts,
examples and benchmark shapes that name ``dcgan.64`` would break (or lie) when that plugin is not installed. The
first-party families, packages and distributions come from ``registry.toml``. Caught: a family's lower-case registry
form followed by ``.``, ``_`` or a digit (``dcgan.64``, ``dcgan64.g3``, ``stargan.d128``, ``gan_cls.``), and the
package and distribution names (``ganzoo_dcgan``, ``ganzoo-stackgan``). Allowed: a paper's name as prose, which is a
fact about the paper (``the CycleGAN / pix2pix default``, ``StarGAN's D``): capitalised, or not followed by one of
those characters.
"""

from __future__ import annotations

import re
import sys

import pytest
from conftest import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PLUGINS = tomllib.loads((REPO / "registry.toml").read_text())["plugins"]
FAMILIES = sorted({f for table in PLUGINS.values() for f in table["families"]})
PACKAGES = sorted({table["package"] for table in PLUGINS.values()} | {table["distribution"] for table in PLUGINS.values()})


def _names_pattern() -> re.Pattern[str]:
    family = "|".join(re.escape(f) for f in sorted(FAMILIES, key=len, reverse=True))
    package = "|".join(re.escape(p).replace("_", "[_-]").replace(r"\-", "[_-]")
                       for p in sorted(PACKAGES, key=len, reverse=True))
    return re.compile(rf"(?<![A-Za-z0-9_])(?:(?:{family})[._0-9][A-Za-z0-9_.]*|(?:{package})(?![A-Za-z0-9_]))")


PATTERN = _names_pattern()


def hits(text: str) -> list[tuple[int, str]]:
    """(line number, the name found) of every plugin name in ``text``."""
    return [(number, m.group(0)) for number, line in enumerate(text.splitlines(), 1) for m in PATTERN.finditer(line)]


def test_the_lists_come_from_the_catalogue() -> None:
    assert {"dcgan", "gan_cls", "stackgan", "pix2pix", "cyclegan", "stargan", "skipthought"} <= set(FAMILIES)
    assert {"ganzoo_dcgan", "ganzoo-stackgan", "ganzoo_pix2pix_unet"} <= set(PACKAGES)


@pytest.mark.parametrize(("line", "found"), [
    ('objectives = args.model or ["dcgan.64"]', "dcgan.64"),
    ('"dcgan64.g3": (64, 128, 16, 16),', "dcgan64.g3"),
    ('"stargan.d128": ((16, 3, 128, 128), ...)', "stargan.d128"),
    ('"stackgan2.up1"', "stackgan2.up1"),
    ('name.startswith("gan_cls.")', "gan_cls."),
    ("help='e.g. pix2pix.unet_256'", "pix2pix.unet_256"),
    ("import ganzoo_dcgan", "ganzoo_dcgan"),
    ("pip install ganzoo-stackgan", "ganzoo-stackgan"),
    ("from ganzoo_pix2pix_unet.color import lab", "ganzoo_pix2pix_unet"),
    ("ganzoo-skipthought-encoder", "ganzoo-skipthought-encoder"),
])
def test_the_pattern_catches_registry_and_package_names(line: str, found: str) -> None:
    assert [name for _, name in hits(line)] == [found]


@pytest.mark.parametrize("line", [
    "InstanceNorm with affine=False: the CycleGAN / pix2pix default",
    "StarGAN's D returns (source, class); DCGAN-64 G: ngf*8 x 4x4",
    "the zoo (DCGAN, pix2pix, CycleGAN, StarGAN, StackGAN) does not rescale activations",
    "converters: folder, pix2pix-ab, cyclegan, celeba, captions",
    "ganzoo_core.ops; ganzoo-core 0.1.0; gan.hinge; mydcgan.64",
])
def test_the_pattern_allows_paper_names_as_prose_and_core_names(line: str) -> None:
    assert hits(line) == []


CORE_FILES = sorted((REPO / "ganzoo_core").rglob("*.py"))


def test_no_core_file_names_a_first_party_plugin() -> None:
    assert len(CORE_FILES) > 20
    found = [f"{path.relative_to(REPO)}:{number}: {name}" for path in CORE_FILES
             for number, name in hits(path.read_text(encoding="utf-8"))]
    assert found == [], "the core names plugins:\n" + "\n".join(found)
