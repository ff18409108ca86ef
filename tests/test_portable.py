"""Portable checkpoints: a checkpoint names no path, so it loads wherever it is moved; a text-to-image objective
records its text encoder (name and config), so ``ganzoo sample CKPT --text ...`` needs no other flag; a StackGAN
Stage-II carries its Stage-I, so a Stage-I/Stage-II pair moved to another folder loads, samples and resumes.

Parametrised over the registry: every text-to-image objective (``interfaces.TextToImage``) and every network and
objective is covered without new test code."""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
import torch
from conftest import HOST
from PIL import Image
from safetensors import safe_open

import ganzoo_core as gz
from ganzoo_core._plugins import use_host
from ganzoo_core.checkpoints import checkpoint_metadata, refuse_paths, write_checkpoint
from ganzoo_core.cli import main
from ganzoo_core.interfaces import TextToImage
from ganzoo_core.text import encode_texts, match_data_encoder, text_encoder_for, weights_included
from ganzoo_core.visual import save_grid


def _meta_build(kind: str, name: str, **overrides: Any) -> Any:
    """``name`` built on the meta device (no memory, no init: its config and members only); built for real when its
    constructor needs real tensors."""
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return gz.create(kind, name, **overrides)
    except Exception:
        return gz.create(kind, name, **overrides)


with use_host(HOST):
    _OBJECTIVES = {name: _meta_build("objective", name) for name in HOST.registry.names("objective")}
TEXT_TO_IMAGE = sorted(name for name, objective in _OBJECTIVES.items() if isinstance(objective, TextToImage))
WALKED = [(kind, name) for kind in ("objective", "generator", "discriminator", "encoder")
          for name in HOST.registry.names(kind)]
CAPTIONS = ("a small red circle in the top left", "a big blue square in the bottom right")
SEED = 3


def test_every_objective_that_reads_text_is_text_to_image() -> None:
    """An objective whose batches carry text embeddings is a TextToImage (so it records its encoder); the registry
    has such objectives in more than one family."""
    reads_text = {name for name, objective in _OBJECTIVES.items() if "text_emb" in objective.example_batch(2)}
    assert reads_text == set(TEXT_TO_IMAGE)
    assert len({name.split(".")[0] for name in TEXT_TO_IMAGE}) >= 2


def _small(name: str) -> dict[str, Any]:
    """Overrides that shrink every network objective ``name`` builds by name (its ``*_kwargs`` fields whose sibling
    names a generator or discriminator) to the smallest of a few widths that fit all of them, so it builds in
    moments; the objective's own fields keep their values."""
    cfg = HOST.registry.get("objective", name).cfg
    nets = {}
    for field in attrs.fields(type(cfg)):
        base = field.name.removesuffix("_kwargs")
        network = getattr(cfg, base, None) if field.name.endswith("_kwargs") else None
        kinds = (base,) if base in ("generator", "discriminator") else ("generator", "discriminator")  # stage1: a G
        kind = next((k for k in kinds if isinstance(network, str) and HOST.registry.has(k, network)), None)
        if kind is not None:
            options = attrs.fields_dict(type(HOST.registry.get(kind, network).cfg))
            nets[field.name] = [w for w in ("ngf", "ndf") if w in options]
    for width in (8, 16, 32):
        overrides = {key: {w: width for w in widths} for key, widths in nets.items()}
        try:
            gz.create_objective(name, **overrides)
        except gz.GanzooError:
            continue
        return overrides
    raise AssertionError(f"{name}: no small widths fit")


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _expected_grid(objective: Any, caption: str, encoder: Any, path: Path) -> np.ndarray:
    """The grid ``ganzoo sample --text caption --n 2 --seed SEED`` should write, drawn from the objective in memory."""
    emb = encode_texts(encoder, [caption]).repeat_interleave(2, dim=0)
    with torch.no_grad():
        images = objective.eval().sample(2, batch={"text_emb": emb}, seed=SEED)
    return _pixels(save_grid(images, path, nrow=2))


def _sample(checkpoint: Path, caption: str, out: Path, capsys: pytest.CaptureFixture[str], *extra: str
            ) -> tuple[int, str]:
    code = main(["sample", str(checkpoint), "--text", caption, "--n", "2", "--seed", str(SEED), "--out", str(out),
                 *extra])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("name", TEXT_TO_IMAGE)
def test_text_to_image_checkpoint_samples_from_text_where_it_was_moved(
        name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Saved, moved to another folder (the first deleted): ``gz.load`` rebuilds it exactly, and ``ganzoo sample
    --text`` with no other flag draws what the objective in memory draws for the caption (with the encoder its
    config records), a caption changing the images. An encoder whose weights are a file is refused in one line
    naming --encoder-weights FILE, and samples once given it."""
    first, second = tmp_path / "first", tmp_path / "second"
    torch.manual_seed(0)
    objective = gz.create_objective(name, **_small(name)).eval()
    recorded, kwargs = objective.text_encoder
    assert (objective.cfg.encoder, dict(objective.cfg.encoder_kwargs)) == (recorded, kwargs)
    gz.save(objective, first / "checkpoint.safetensors")
    shutil.move(first, second)
    assert not first.exists()
    checkpoint = second / "checkpoint.safetensors"
    loaded = gz.load(checkpoint)
    assert loaded.cfg == objective.cfg
    assert all(torch.equal(t, loaded.state_dict()[k]) for k, t in objective.state_dict().items())

    extra: tuple[str, ...] = ()
    if not weights_included(recorded, kwargs):
        code, err = _sample(checkpoint, CAPTIONS[0], tmp_path / "refused.png", capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert "--encoder-weights FILE" in err and repr(recorded) in err
        assert not (tmp_path / "refused.png").exists()
        torch.manual_seed(1)
        weights = gz.save(gz.create_encoder(recorded, **kwargs), tmp_path / "encoder.safetensors")
        extra = ("--encoder-weights", str(weights))
    encoder = text_encoder_for(objective, weights=extra[1] if extra else None)
    grids = []
    for i, caption in enumerate(CAPTIONS):
        code, err = _sample(checkpoint, caption, tmp_path / f"caption{i}.png", capsys, *extra)
        assert code == 0, err
        grids.append(_pixels(tmp_path / f"caption{i}.png"))
        expected = _expected_grid(objective, caption, encoder, tmp_path / f"expected{i}.png")
        np.testing.assert_array_equal(grids[-1], expected)
    size = objective.image_shape[-1]
    assert grids[0].shape == (size + 4, 2 * (size + 2) + 2, 3)  # one row of two images, 2-pixel padding
    assert np.abs(grids[0].astype(int) - grids[1].astype(int)).max() > 0  # the caption drives the images


def test_the_recorded_encoder_config_embeds_the_captions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An encoder config override (a bag of words of 256 buckets, not 512) is part of the record: the checkpoint
    samples with it, and an encoder named without it does not fit."""
    name = next(n for n in TEXT_TO_IMAGE if _OBJECTIVES[n].text_encoder[0] == "bow.hashed"
                and "text_dim" in attrs.fields_dict(type(_OBJECTIVES[n].cfg)))
    objective = gz.create_objective(name, **_small(name), text_dim=256, encoder_kwargs={"dim": 256}).eval()
    checkpoint = gz.save(objective, tmp_path / "checkpoint.safetensors")
    code, err = _sample(checkpoint, CAPTIONS[0], tmp_path / "a.png", capsys)
    assert code == 0, err
    expected = _expected_grid(objective, CAPTIONS[0], gz.create_encoder("bow.hashed", dim=256), tmp_path / "b.png")
    np.testing.assert_array_equal(_pixels(tmp_path / "a.png"), expected)
    code, err = _sample(checkpoint, CAPTIONS[0], tmp_path / "c.png", capsys, "--encoder", "minilm.l6_v2")
    assert code == 2 and "384-d embeddings but the objective takes 256-d" in err
    with pytest.raises(gz.ConfigError, match=r"encoder_kwargs names a file in weights_file"):
        gz.create_objective(name, encoder_kwargs={"weights_file": str(tmp_path / "w.safetensors")})


@pytest.mark.parametrize("name", TEXT_TO_IMAGE)
def test_train_records_the_encoder_its_data_embeds_with(name: str) -> None:
    """``ganzoo train`` (``match_data_encoder`` before the dataset is built): data options naming an encoder make
    the objective record that one; the objective's own encoder option naming another is refused; by default the
    data embed with the objective's encoder when it needs no file."""
    objective = gz.create_objective(name, **_small(name))
    recorded = objective.text_encoder
    data = objective.cfg.dataset
    assert "encoder" in attrs.fields_dict(type(HOST.registry.get("dataset", data).cfg))
    match_data_encoder(objective, None, {}, {})  # the data's default
    effective = objective.data_defaults.get("encoder") or HOST.registry.get("dataset", data).cfg.encoder
    assert objective.text_encoder[0] == (effective or recorded[0])  # no embeddings at all: nothing to record
    if weights_included(*recorded):
        assert objective.text_encoder == recorded  # the objective's own encoder embeds its default data
    other = "minilm.l6_v2" if recorded[0] != "minilm.l6_v2" else "bow.hashed"
    match_data_encoder(objective, data, {"encoder": other}, {})
    assert objective.text_encoder == (other, {}) and objective.cfg.encoder == other
    with pytest.raises(gz.GanzooError, match=rf"embeds captions with '{other}'.*--set encoder=NAME"):
        match_data_encoder(gz.create_objective(name, **_small(name), encoder=recorded[0]), data,
                           {"encoder": other}, {"encoder": recorded[0]})


def test_ganzoo_train_records_the_data_encoder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """End to end: a run whose data embed with minilm.l6_v2 saves an objective that records it, and samples from
    text with no other flag."""
    name = next(n for n in TEXT_TO_IMAGE if _OBJECTIVES[n].text_encoder[0] == "bow.hashed"
                and "text_dim" in attrs.fields_dict(type(_OBJECTIVES[n].cfg)))
    out = tmp_path / "run"
    code = main(["train", name, "--steps", "1", "--batch-size", "4", "--sample-every", "0", "--no-progress",
                 "--data-set", "n=20", "--data-set", "encoder=minilm.l6_v2", "--set", "text_dim=384",
                 *(f"--set={k}={v}" for k, v in _small(name).items()), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert gz.read_info(out / "checkpoint.safetensors").config["encoder"] == "minilm.l6_v2"
    code, err = _sample(out / "checkpoint.safetensors", CAPTIONS[0], tmp_path / "a.png", capsys)
    assert code == 0, err


# -- every checkpoint's metadata names no path ------------------------------------------------------------------------

def _strings(tree: Any) -> Iterator[str]:
    if isinstance(tree, str):
        yield tree
        try:
            yield from _strings(json.loads(tree))
        except ValueError:
            pass
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _strings(value)


def _paths_in(metadata: dict[str, str], folder: Path) -> list[str]:
    """The metadata values (``ganzoo.*`` and ``extra.*``, JSON ones read through) that are absolute paths or name
    ``folder``."""
    return [s for key, value in metadata.items() if key.startswith(("ganzoo.", "extra.")) for s in _strings(value)
            if Path(s).is_absolute() or folder.name in s]


@pytest.mark.parametrize(("kind", "name"), WALKED, ids=[f"{k}:{n}" for k, n in WALKED])
def test_saved_metadata_names_no_path(kind: str, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``save`` writes for every registered network and objective, built in a fresh folder (the working
    directory, where a relative path would be resolved), holds no absolute path and not the folder's name. Built
    on the meta device (the metadata depends on the built config, not on tensor values), written as a checkpoint
    without tensors."""
    monkeypatch.chdir(tmp_path)
    module = _meta_build(kind, name)
    metadata = checkpoint_metadata(module, extra={"step": "2"})
    refuse_paths(json.loads(metadata["ganzoo.config"]), HOST.registry.get(kind, name).cfg, name, saving=True)
    path = write_checkpoint({}, metadata, tmp_path / "checkpoint.safetensors", overwrite=False)
    with safe_open(str(path), framework="pt") as handle:
        written = handle.metadata()
    assert written["ganzoo.name"] == name and len(written) >= 7
    assert _paths_in(written, tmp_path) == []


# -- a StackGAN Stage-I/Stage-II pair, trained with `ganzoo train`, moved --------------------------------------------

STAGES = {"stage1": ("stackgan.s1_16", {"generator_kwargs": "{'ngf': 32}", "discriminator_kwargs": "{'ndf': 8}"}),
          "stage2": ("stackgan.s2_32", {"generator_kwargs": "{'ngf': 8}", "discriminator_kwargs": "{'ndf': 8}"})}


def _train(out: Path, stage: str, steps: int, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    name, sets = STAGES[stage]
    code = main(["train", name, "--steps", str(steps), "--batch-size", "4", "--sample-every", "0", "--no-progress",
                 "--data-set", "n=40", *(f"--set={k}={v}" for k, v in sets.items()), "--out", str(out / stage),
                 *extra])
    return code, capsys.readouterr().err


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as handle:
        return {k: handle.get_tensor(k) for k in handle.keys()}


def test_a_stage1_stage2_pair_moved_to_another_folder_loads_samples_and_resumes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Stage-I, then Stage-II on it (``--set stage1_checkpoint=`` an absolute path), both trained into ``a``; ``a``
    moved to ``b``. In ``b``: the metadata names no path; ``gz.load`` and ``ganzoo sample --text`` (no other flag)
    give what they gave in ``a``; the Stage-II run resumes with its own checkpoint as the Stage-I source (or with no
    Stage-I option) to the same tensors as a copy resumed in ``a``; the stale Stage-I path is refused in one line
    that says what to pass."""
    a, b, ref = tmp_path / "a", tmp_path / "b", tmp_path / "ref"
    assert _train(a, "stage1", 2, capsys)[0] == 0
    stage1 = a / "stage1" / "checkpoint.safetensors"
    code, err = _train(a, "stage2", 2, capsys, "--set", f"stage1_checkpoint={stage1}")
    assert code == 0, err
    stage2 = a / "stage2" / "checkpoint.safetensors"
    before = gz.load(stage2).eval()
    code, err = _sample(stage2, CAPTIONS[0], tmp_path / "before.png", capsys)
    assert code == 0, err
    shutil.copytree(a, ref)  # resumed in place, with the Stage-I file where it was given
    code, err = _train(ref, "stage2", 4, capsys, "--resume", "--set", f"stage1_checkpoint={stage1}")
    assert code == 0, err

    shutil.move(a, b)
    assert not a.exists()
    moved = b / "stage2" / "checkpoint.safetensors"
    for path in (b / "stage1" / "checkpoint.safetensors", moved):
        with safe_open(str(path), framework="pt") as handle:
            assert _paths_in(handle.metadata(), tmp_path) == []
    after = gz.load(moved).eval()
    assert after.cfg == before.cfg and after.cfg.stage1_checkpoint is None
    assert all(torch.equal(t, after.state_dict()[k]) for k, t in before.state_dict().items())
    code, err = _sample(moved, CAPTIONS[0], tmp_path / "after.png", capsys)
    assert code == 0, err
    np.testing.assert_array_equal(_pixels(tmp_path / "after.png"), _pixels(tmp_path / "before.png"))

    code, err = _train(b, "stage2", 4, capsys, "--resume", "--set", f"stage1_checkpoint={stage1}")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "does not exist" in err and "pass the run's own checkpoint.safetensors" in err
    shutil.copytree(b / "stage2", b / "again" / "stage2")
    code, err = _train(b, "stage2", 4, capsys, "--resume", "--set", f"stage1_checkpoint={moved}")
    assert code == 0, err
    # no Stage-I option: the variant's Stage-I at the trained one's config, its weights from the checkpoint
    code, err = _train(b / "again", "stage2", 4, capsys, "--resume", "--set", "stage1_kwargs={'ngf': 32}")
    assert code == 0, err
    expected = _tensors(ref / "stage2" / "checkpoint.safetensors")
    for resumed in (moved, b / "again" / "stage2" / "checkpoint.safetensors"):
        got = _tensors(resumed)
        assert got.keys() == expected.keys() and gz.read_info(resumed).extra["step"] == "4"
        assert all(torch.equal(got[k], expected[k]) for k in expected)
