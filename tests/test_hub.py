"""Model folders (``ganzoo export --format hub``), hf-hub: sources read offline from a local cache, and pretrained
names served by a plugin's ``ganzoo_pretrained_folders`` hook (ganzoo_core/hub.py)."""

from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path

import pytest
import torch

import ganzoo_core as gz
from ganzoo_core import hub
from ganzoo_core._plugins import make_host, use_host
from ganzoo_core.cli import main

pytest.importorskip("ganzoo_dcgan")  # the networks below come from the DCGAN plugin

TRAINING = {"data": "fashion_mnist.train (60,000 images)", "steps": 3, "command": "ganzoo train dcgan.32 --steps 3",
            "result": {"FID": 9.9}}


def _generator(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return gz.create_generator("dcgan.32", nc=1, ngf=8).eval()


def _draw(g: torch.nn.Module) -> torch.Tensor:
    torch.manual_seed(5)
    with torch.no_grad():
        return g(*g.example_inputs(4))


def test_a_folder_holds_weights_config_and_card_and_loads_back(tmp_path: Path) -> None:
    g = _generator()
    out = gz.write_hub_folder(g, tmp_path / "m", tag="demo", summary="A small test generator.", training=TRAINING)
    assert sorted(p.name for p in out.iterdir()) == sorted(hub.HUB_FILES)
    data = json.loads((out / "config.json").read_text())
    assert (data["kind"], data["name"], data["tag"], data["config"]["nc"]) == ("generator", "dcgan.32", "demo", 1)
    assert data["parameters"] == sum(p.numel() for p in g.parameters())
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: ganzoo\n") and "pipeline_tag: unconditional-image-generation" in card
    for fact in ("# dcgan.32.demo", "A small test generator.", "fashion_mnist.train (60,000 images)",
                 "ganzoo train dcgan.32 --steps 3", "FID 9.9", "pretrained='demo'"):
        assert fact in card, fact
    loaded = gz.load(out).eval()  # a folder is a source wherever a checkpoint is
    assert torch.equal(_draw(loaded), _draw(g))
    again = gz.create_generator("dcgan.32", pretrained=out).eval()
    assert again.cfg.nc == 1 and torch.equal(_draw(again), _draw(g))


def test_bf16_weights_load_into_fp32_networks_within_bf16_rounding(tmp_path: Path) -> None:
    g = _generator()
    out = gz.write_hub_folder(g, tmp_path / "m", dtype="bf16")
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    info = gz.read_info(out / "model.safetensors")
    assert info.tensors  # read the dtype back from the file itself
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys() if "num_batches" not in k}
    assert dtypes == {torch.bfloat16}
    half = (tmp_path / "m" / "model.safetensors").stat().st_size
    full = gz.write_hub_folder(g, tmp_path / "f").joinpath("model.safetensors").stat().st_size
    assert half < 0.6 * full
    loaded = gz.load(out).eval()
    assert next(loaded.parameters()).dtype == torch.float32
    diff = (_draw(loaded) - _draw(g)).abs().max().item()
    assert 0 < diff < 0.05  # bf16 keeps 8 bits of mantissa: close, not equal


def test_existing_files_are_kept_and_a_mixed_folder_is_refused(tmp_path: Path) -> None:
    out = gz.write_hub_folder(_generator(), tmp_path / "m")
    before = (out / "model.safetensors").read_bytes()
    with pytest.raises(gz.OutputExistsError, match="model.safetensors"):
        gz.write_hub_folder(_generator(1), out)
    assert (out / "model.safetensors").read_bytes() == before
    gz.write_hub_folder(_generator(1), out, overwrite=True)
    assert (out / "model.safetensors").read_bytes() != before
    other = gz.write_hub_folder(gz.create_discriminator("dcgan.32", ndf=8), tmp_path / "d")
    shutil.copyfile(other / "config.json", out / "config.json")
    with pytest.raises(gz.CheckpointError, match="mixed from two exports"):
        gz.load(out)
    (out / "config.json").unlink()
    with pytest.raises(gz.CheckpointError, match="lacks config.json"):
        gz.load(out)
    with pytest.raises(gz.ConfigError, match="'fp8' is not one of"):
        gz.write_hub_folder(_generator(), tmp_path / "x", dtype="fp8")


def _lay_out_hub_cache(cache: Path, repo_id: str, folder: Path) -> str:
    """The layout huggingface_hub keeps on disk: refs/main names a snapshot holding the files."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(folder, repo / "snapshots" / commit)
    return commit


def test_hf_hub_sources_read_the_local_cache_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("huggingface_hub")
    from huggingface_hub import constants
    g = _generator()
    folder = gz.write_hub_folder(g, tmp_path / "export", dtype="bf16")
    cache = tmp_path / "hub-cache"
    _lay_out_hub_cache(cache, "ganzoo-test/dcgan-demo", folder)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    loaded = gz.load("hf-hub:ganzoo-test/dcgan-demo").eval()
    assert torch.equal(_draw(loaded), _draw(gz.load(folder).eval()))
    built = gz.create_generator("dcgan.32", pretrained="hf-hub:ganzoo-test/dcgan-demo")
    assert built.cfg.nc == 1
    with pytest.raises(gz.ConfigError, match="not generator 'dcgan.64'"):
        gz.create_generator("dcgan.64", pretrained="hf-hub:ganzoo-test/dcgan-demo")
    with pytest.raises(gz.CheckpointError, match="could not fetch 'hf-hub:ganzoo-test/absent'"):
        gz.load("hf-hub:ganzoo-test/absent")
    with pytest.raises(gz.ConfigError, match="expected hf-hub:ORG/NAME"):
        gz.load("hf-hub:no-slash")
    assert main(["sample", "hf-hub:ganzoo-test/dcgan-demo", "--n", "4", "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").is_file()


@pytest.fixture
def weights_host(tmp_path: Path):
    """A host with the installed plugins and a test plugin that ships two tagged folders of dcgan.32."""
    shipped = tmp_path / "shipped"
    with use_host(make_host(entry_points=True)):
        gz.write_hub_folder(_generator(0), shipped / "a", tag="fashion", summary="Fashion.", training=TRAINING)
        gz.write_hub_folder(_generator(1), shipped / "b", tag="other", summary="Other.", training=TRAINING)
    module = types.ModuleType("ganzoo_test_weights")
    module.GANZOO_API_VERSION = "1.1"

    @gz.hookimpl
    def ganzoo_pretrained_folders() -> list[Path]:
        return [shipped / "a", shipped / "b"]

    module.ganzoo_pretrained_folders = ganzoo_pretrained_folders
    sys.modules[module.__name__] = module
    try:
        host = make_host((module.__name__,), entry_points=True)
    finally:
        del sys.modules[module.__name__]
    with use_host(host):
        yield host


def test_pretrained_names_come_from_the_hook(weights_host, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = gz.list_pretrained("dcgan.*")
    assert {"dcgan.32.fashion", "dcgan.32.other"} <= set(names)
    assert gz.is_pretrained("dcgan.32.fashion") and not gz.is_pretrained("dcgan.32.nothing")
    p = gz.get_pretrained("dcgan.32.fashion")
    assert (p.kind, p.name, p.tag, p.summary) == ("generator", "dcgan.32", "fashion", "Fashion.")
    by_tag = gz.create_generator("dcgan.32", pretrained="other").eval()
    by_name = gz.create_generator("dcgan.32.other", pretrained=True).eval()
    assert torch.equal(_draw(by_tag), _draw(by_name)) and torch.equal(_draw(by_tag), _draw(_generator(1)))
    config_only = gz.create_generator("dcgan.32.other")  # timm's rule: the tag's config, random weights
    assert config_only.cfg.nc == 1 and not torch.equal(_draw(config_only.eval()), _draw(by_tag))
    with pytest.raises(gz.UnknownPretrainedError, match="dcgan.32.nothing.*dcgan.32.fashion"):
        gz.create_generator("dcgan.32", pretrained="nothing")
    with pytest.raises(gz.ConfigError, match="names tag 'other' but pretrained='fashion'"):
        gz.create_generator("dcgan.32.other", pretrained="fashion")
    with pytest.raises(gz.UnknownPretrainedError, match="'dcgan.64' has no pretrained weights.*dcgan.32.fashion"):
        gz.create_generator("dcgan.64", pretrained=True)

    assert main(["list", "--pretrained", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["dcgan.32.fashion"]["kind"] == "generator" and rows["dcgan.32.fashion"]["megabytes"] > 0
    assert main(["info", "dcgan.32"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("pretrained:"))
    assert {"fashion", "other"} <= set(line.split(": ", 1)[1].split(" (")[0].split(", "))
    assert main(["info", "dcgan.32.fashion", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["training"]["steps"] == 3
    grid = tmp_path / "grid.png"
    assert main(["sample", "dcgan.32", "--pretrained", "other", "--n", "4", "--out", str(grid)]) == 0
    assert main(["sample", "dcgan.32.other", "--n", "4", "--out", str(tmp_path / "grid2.png")]) == 0
    assert grid.read_bytes() == (tmp_path / "grid2.png").read_bytes()
    assert main(["sample", "dcgan.32.nothing", "--out", str(tmp_path / "x.png")]) == 2
    assert "not a checkpoint file, a model folder" in capsys.readouterr().err


def test_a_missing_weights_distribution_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from ganzoo_core import _catalogue

    table = {"plugins": {}, "weights": {"distribution": "ganzoo-weights-test", "package": "ganzoo_weights_not_here",
                                        "provides": ["dcgan.32.shipped_elsewhere"]}}
    monkeypatch.setattr(_catalogue, "load_catalogue", lambda: table)
    with pytest.raises(gz.UnknownPretrainedError, match="ships in ganzoo-weights-test.*pip install ganzoo-weights-test"):
        gz.create_generator("dcgan.32", pretrained="shipped_elsewhere")
