"""Every registered entry, of every kind, passes the conformance checks plugin authors get from
``ganzoo_core.testing``. Parametrised over the live registry: a new entry is tested without new test code.

A first-party plugin whose own suite calls ``check_plugin("<module>")`` runs these checks on every entry it
registers, with the plugin loaded alone (stricter than here, where all plugins are loaded); its entries are left to
that test instead of being checked twice in one CI run. Every other entry (the core's, a plugin without such a
test) is checked here."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
from conftest import HOST

import ganzoo_core as gz
from ganzoo_core._registry import KINDS, RetiredNameError
from ganzoo_core.checkpoints import checkpoint_metadata, state_tensors, write_checkpoint
from ganzoo_core.testing import check_entry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
PLUGIN_SUITES = "\n".join(p.read_text(encoding="utf-8") for p in sorted(REPO.glob("plugins/*/tests/test_*.py")))
OWN_SUITE = {entry for info in HOST.plugins.values() if f'check_plugin("{info.module}")' in PLUGIN_SUITES
             for entry in info.entries}
ENTRIES = [(kind, name) for kind in KINDS if kind not in ("dataset", "op") for name in HOST.registry.names(kind)
           if f"{kind} {name}" not in OWN_SUITE]


def test_registry_is_not_empty() -> None:
    kinds = {kind for kind in KINDS if HOST.registry.names(kind)}
    assert {"generator", "discriminator", "block", "loss", "objective"} <= kinds


def test_every_entry_is_checked_here_or_by_its_plugin() -> None:
    everything = {f"{kind} {name}" for kind in KINDS if kind not in ("dataset", "op")
                  for name in HOST.registry.names(kind)}
    here = {f"{kind} {name}" for kind, name in ENTRIES}
    assert everything <= here | OWN_SUITE and not here & OWN_SUITE
    assert {"generator stargan.128", "objective gan_cls.cls_32", "loss gan.bce"} <= everything
    assert len(OWN_SUITE) > len(here)  # the first-party plugins' suites carry most entries


@pytest.mark.parametrize(("kind", "name"), ENTRIES, ids=[f"{k}:{n}" for k, n in ENTRIES])
def test_entry_conforms(kind: str, name: str) -> None:
    check_entry(kind, name)


# -- retired names: tuned recipes moved out of the registry into experiments/ configs --------------------------------

RETIRED_OBJECTIVES = [r.name for r in HOST.registry.retired("objective")]


def test_the_tuned_recipes_are_retired() -> None:
    assert {"dcgan.fashion32", "gan_cls.cls_32_ms", "stargan.shapes32_with_shape",
            "stargan.shapes32_res16"} <= set(RETIRED_OBJECTIVES)
    assert not set(RETIRED_OBJECTIVES) & set(HOST.registry.names("objective"))  # retired names are not listed


@pytest.mark.parametrize("name", RETIRED_OBJECTIVES)
def test_retired_objective_is_refused_and_its_checkpoints_load(name: str, tmp_path: Path) -> None:
    """A retired objective is refused by create_objective with one line naming its experiment config, whose
    objective is the replacement; a checkpoint saved under the old name (the recipe's config) loads as the
    replacement with that config and the same tensors."""
    retired = next(r for r in HOST.registry.retired("objective") if r.name == name)
    with pytest.raises(RetiredNameError) as err:
        gz.create_objective(name)
    message = str(err.value)
    assert "\n" not in message and name in message and retired.note in message
    where = re.search(r"experiments/[a-z0-9_-]+/config\.toml", retired.note)
    assert where, retired.note
    config = tomllib.loads((REPO / where.group(0)).read_text(encoding="utf-8"))
    assert config["objective"] == retired.replacement
    torch.manual_seed(0)
    recipe = gz.create_objective(retired.replacement, **config.get("set", {}))
    metadata = {**checkpoint_metadata(recipe), "ganzoo.name": name}  # what the old registered name saved
    path = write_checkpoint(state_tensors(recipe), metadata, tmp_path / "old.safetensors", overwrite=False)
    info = gz.read_info(path)
    assert (info.name, info.saved_name) == (retired.replacement, name)
    loaded = gz.load(path)
    assert loaded.cfg == recipe.cfg and type(loaded) is type(recipe)
    expected = recipe.state_dict()
    assert all(torch.equal(t, expected[k]) for k, t in loaded.state_dict().items())
    assert set(loaded.state_dict()) == set(expected)
