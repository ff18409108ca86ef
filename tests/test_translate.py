"""``ganzoo translate``: every image-to-image objective of the registry on the user's own files (an image, a nested
folder of mixed sizes and modes, an HDF5 file), checked against the objective's ``translate_images`` on the same
fitted inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import HOST
from PIL import Image

import ganzoo_core as gz
from ganzoo_core._plugins import use_host
from ganzoo_core.cli import main
from ganzoo_core.translate import fit, is_translator, read_inputs

with use_host(HOST):
    TRANSLATORS = [n for n in gz.list_objectives() if is_translator(gz.get_entry("objective", n).factory)]

SMALL = {"generator_kwargs": {"conv_dim": 4, "repeat_num": 1}, "discriminator_kwargs": {"conv_dim": 4}}


def test_the_image_to_image_families_are_translators() -> None:
    assert {n.split(".")[0] for n in TRANSLATORS} == {"pix2pix", "cyclegan", "stargan"}
    assert not is_translator(gz.get_entry("objective", "dcgan.28").factory)


def _options(obj: object) -> dict:
    spec = obj.translation_options
    if "attributes" in spec:
        return {"attributes": {spec["attributes"].choices[-1]: 1.0}}
    return {k: o.choices[-1] for k, o in spec.items()}  # the non-default choice where there is one


@pytest.mark.parametrize("name", TRANSLATORS)
def test_translate_images_maps_rgb_inputs_to_images(name: str) -> None:
    """Each translator takes RGB images of its translation_size and returns images in [-1, 1] of that size, the
    same for the same input (sampling noise seeded)."""
    torch.manual_seed(0)
    obj = gz.create_objective(name).eval()
    h, w = obj.translation_size
    x = torch.rand(2, 3, h, w) * 2 - 1
    opts = _options(obj)
    torch.manual_seed(1)
    y = obj.translate_images(x, **opts)
    torch.manual_seed(1)
    assert torch.equal(y, obj.translate_images(x, **opts))
    assert y.shape[0] == 2 and y.shape[1] in (1, 3) and tuple(y.shape[2:]) == (h, w)
    assert y.min() >= -1 and y.max() <= 1 and y.std() > 0


def write_inputs(root: Path) -> Path:
    """A nested folder: a large RGB photo, a small grey image, a palette GIF, and a file that is not an image."""
    rng = np.random.default_rng(0)
    (root / "sub").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(root / "photo.jpg")
    Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8), mode="L").save(root / "sub" / "grey.png")
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).convert("P").save(root / "sub" / "icon.gif")
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    made = {"stargan": gz.create_objective("stargan.tiny32", **SMALL),
            "cyclegan": gz.create_objective("cyclegan.small32"),
            "pix2pix": gz.create_objective("pix2pix.colorize_32")}
    return {k: gz.save(v, root / f"{k}.safetensors") for k, v in made.items()}


def expected(obj: object, source: Path, **options: object) -> dict[str, np.ndarray]:
    size = obj.translation_size
    items = list(read_inputs(source, size))
    torch.manual_seed(0)
    out = obj.eval().translate_images(torch.stack([i.image for i in items]), **options).clamp(-1, 1)
    arrays = ((out.permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().astype(np.uint8)
    return {str(i.name): a[..., 0] if a.shape[-1] == 1 else a for i, a in zip(items, arrays)}


@pytest.mark.parametrize(("family", "flags", "options"), [
    ("stargan", ["--set-attr", "size=large=1"], {"attributes": {"size=large": 1.0}}),  # shapes' names hold '='
    ("cyclegan", ["--direction", "BtoA"], {"direction": "BtoA"}),
    ("pix2pix", [], {}),
])
def test_translate_a_folder_keeps_names_and_matches_the_model(family: str, flags: list[str], options: dict,
                                                            checkpoints: dict[str, Path], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    src = write_inputs(tmp_path / "in")
    obj = gz.load(checkpoints[family])
    out = tmp_path / "out"
    assert main(["translate", str(checkpoints[family]), str(src), "--out", str(out), "--batch-size", "2",
                 *flags]) == 0
    err = capsys.readouterr().err
    assert "resized and centre-cropped 2 of 3 inputs to 32×32" in err  # the GIF was 32×32 already
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert written == ["photo.png", "sub/grey.png", "sub/icon.png"]
    want = expected(obj, src, **options)
    for rel in written:
        got = np.asarray(Image.open(out / rel)).astype(int)
        assert got.shape[:2] == (32, 32) and np.abs(got - want[rel]).max() <= 1, rel


def test_stargan_targets_are_named_labels(checkpoints: dict[str, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    obj = gz.load(checkpoints["stargan"])
    cond = obj.target_from_names({"colour=blue": 1.0, "size=large": 1.0}, 2, torch.device("cpu"))
    names = obj.cfg.names
    assert cond.shape == (2, 8) and [names[i] for i in torch.nonzero(cond[0]).flatten()] == ["colour=blue", "size=large"]
    src = write_inputs(tmp_path / "in")
    for flags, message in ((["--direction", "AtoB"], "takes no --direction"),
                           ([], "needs a target: --set-attr NAME=1"),
                           (["--set-attr", "Blond_Hair=1"], "unknown attribute 'Blond_Hair'; expected one of colour=red")):
        assert main(["translate", str(checkpoints["stargan"]), str(src), "--out", str(tmp_path / "o"), *flags]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").rglob("*.png"))


def test_existing_outputs_are_refused_before_anything_is_written(checkpoints: dict[str, Path], tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    src = write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "icon.png").write_bytes(b"mine")
    args = ["translate", str(checkpoints["cyclegan"]), str(src), "--out", str(out)]
    assert main(args) == 2
    assert "icon.png" in capsys.readouterr().err
    assert (out / "sub" / "icon.png").read_bytes() == b"mine" and not (out / "photo.png").exists()
    assert main([*args, "--overwrite", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["outputs"]) == 3 and result["size"] == [32, 32] and result["options"] == {"direction": "AtoB"}


def test_an_hdf5_file_translates_item_by_item(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    from ganzoo_core.data.schema import ArrayBundle, write_h5

    images = np.random.default_rng(1).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    path = write_h5(ArrayBundle(images=images), tmp_path / "in.h5", name="t", source="test")
    out = tmp_path / "out"
    assert main(["translate", str(checkpoints["pix2pix"]), str(path), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["000000.png", "000001.png", "000002.png"]
    first = fit(Image.fromarray(images[0]), (32, 32))
    assert first.shape == (3, 32, 32)


def test_a_checkpoint_that_does_not_translate_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = gz.save(gz.create_objective("dcgan.28", generator_kwargs={"ngf": 8}, discriminator_kwargs={"ndf": 8}),
                   tmp_path / "dcgan.safetensors")
    src = write_inputs(tmp_path / "in")
    assert main(["translate", str(ckpt), str(src), "--out", str(tmp_path / "o")]) == 2
    assert "does not translate images" in capsys.readouterr().err


def test_inputs_that_would_write_one_output_are_refused(checkpoints: dict[str, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    src = write_inputs(tmp_path / "in")
    Image.new("RGB", (8, 8)).save(src / "photo.png")  # photo.jpg and photo.png → photo.png
    assert main(["translate", str(checkpoints["cyclegan"]), str(src), "--out", str(tmp_path / "o")]) == 2
    assert "would write 'photo.png'" in capsys.readouterr().err and not (tmp_path / "o").exists()
