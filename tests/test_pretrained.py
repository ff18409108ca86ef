"""Every pretrained name the installed plugins ship (ganzoo-weights for the first-party ones): its card states data,
steps, command and measured result, its weights are bf16, and it builds and draws images of the right shape. New
folders are covered without new test code (parametrised over ``list_pretrained``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomllib
import torch
from conftest import HOST

import ganzoo_core as gz
from ganzoo_core._catalogue import load_catalogue
from ganzoo_core._plugins import use_host
from ganzoo_core.cli import main

REPO = Path(__file__).resolve().parent.parent
with use_host(HOST):
    NAMES = gz.list_pretrained()
CARD_FACTS = ("data", "steps", "command", "result")


def test_the_catalogue_lists_what_the_weights_distribution_ships() -> None:
    weights = load_catalogue()["weights"]
    pytest.importorskip(weights["package"])
    shipped = sorted(p.full_name for p in map(gz.get_pretrained, NAMES) if p.distribution == weights["distribution"])
    assert shipped == sorted(weights["provides"])
    table = REPO / "plugins" / "weights" / "scripts" / "weights.toml"
    assert sorted(tomllib.loads(table.read_text())["weights"]) == shipped  # each one reproducible from its config


@pytest.mark.parametrize("name", NAMES)
def test_card_and_config_state_how_it_was_trained_and_what_it_scored(name: str) -> None:
    p = gz.get_pretrained(name)
    data = json.loads((p.folder / "config.json").read_text())
    assert (data["kind"], data["name"], data["tag"]) == (p.kind, p.name, p.tag)
    assert data["dtype"] == "bfloat16" and data["parameters"] > 0
    training = data["training"]
    assert all(str(training.get(k, "")).strip() for k in CARD_FACTS), f"{name}: the card needs {CARD_FACTS}"
    assert any(ch.isdigit() for ch in training["result"]), f"{name}: the result states no measured number"
    card = (p.folder / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\nlibrary_name: ganzoo\n") and f"# {name}\n" in card
    for key in CARD_FACTS:
        assert str(training[key]).strip() in card, f"{name}: its card does not show {key}"
    from safetensors import safe_open

    with safe_open(str(p.file), "pt") as f:
        floats = {f.get_slice(k).get_dtype() for k in f.keys()} - {"I64", "I32", "BOOL"}
    assert floats == {"BF16"}


def _image_size(module: torch.nn.Module) -> int | None:
    cfg = getattr(module, "cfg", None)
    for attr in ("image_size", "size"):
        if isinstance(getattr(cfg, attr, None), int):
            return getattr(cfg, attr)
    return None


@pytest.mark.parametrize("name", NAMES)
def test_every_pretrained_name_builds_and_draws_images(name: str, tmp_path: Path) -> None:
    p = gz.get_pretrained(name)
    module = gz.create(p.kind, name, pretrained=True).eval()
    untrained = gz.create(p.kind, name).eval()  # the same config, random weights
    torch.manual_seed(0)
    with torch.no_grad():
        if p.kind == "generator":
            inputs = module.example_inputs(3)
            out, base = module(*inputs), untrained(*inputs)
        else:
            out, base = module.sample(3, seed=0), untrained.sample(3, seed=0)
    assert out.shape[0] == 3 and out.shape[1] in (1, 3) and out.shape[-1] == out.shape[-2] >= 32
    assert out.isfinite().all() and out.abs().max() <= 1.0 + 1e-4
    assert not torch.allclose(out, base, atol=1e-2)  # the weights were loaded: not what random weights draw
    grid = tmp_path / "grid.png"
    assert main(["sample", name, "--n", "4", "--out", str(grid)]) == 0 and grid.stat().st_size > 0


def test_the_distribution_stays_small() -> None:
    """Every shipped folder together (the wheel's payload): the size README states, kept under 40 MB."""
    folders = [gz.get_pretrained(n).folder for n in NAMES]
    total = sum(f.stat().st_size for folder in folders for f in folder.iterdir())
    assert total < 40 * 2**20, f"{total / 2**20:.1f} MB"
