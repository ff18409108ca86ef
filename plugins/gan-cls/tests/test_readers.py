"""Readers of the original projects' HDF5 layouts (models.md §2.4), on small files written here with h5py."""

from __future__ import annotations

import io
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from ganzoo_gan_cls.readers import convert_to_ganzoo, read_grouped_h5, read_skipthought_h5
from PIL import Image

import ganzoo_core as gz
from ganzoo_core.data.schema import DataError


def _jpeg(colour: tuple[int, int, int], size: int = 80) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def write_paarth(tmp: Path, n: int = 4) -> tuple[Path, Path, Path, np.ndarray]:
    images, text = tmp / "jpg", tmp / "text_c10"
    images.mkdir()
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, 5, 4800)).astype(np.float32)
    with h5py.File(tmp / "flower_tv.hdf5", "w") as f:
        for i in range(n):
            name = f"image_{i + 1:05d}.jpg"
            f.create_dataset(name, data=vectors[i])
            Image.new("RGB", (100, 70), (40 * i, 0, 0)).save(images / name)
            folder = text / f"class_{i % 2 + 1:05d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"image_{i + 1:05d}.txt").write_text("\n".join(f"flower {i} caption {k}" for k in range(10)))
    return tmp / "flower_tv.hdf5", images, text, vectors


def test_skipthought_per_image_layout(tmp_path: Path) -> None:
    path, images, text, vectors = write_paarth(tmp_path)
    bundle = read_skipthought_h5(path, images, captions_dir=text, image_size=32)
    assert bundle.images.shape == (4, 32, 32, 3)  # resized without a crop
    assert [len(c) for c in bundle.captions] == [5] * 4 and bundle.captions[2][1] == "flower 2 caption 1"
    emb = bundle.text_embeddings["skipthought.combine"]
    assert emb.shape == (20, 4800) and np.array_equal(emb[5:10], vectors[1])  # one row per caption, image by image
    assert list(bundle.splits["train"]) == [0, 1, 2] and list(bundle.splits["test"]) == [3]  # first 75% sorted
    assert list(bundle.labels) == [0, 1, 0, 1] and list(bundle.label_names) == ["class_00001", "class_00002"]
    uni = read_skipthought_h5(path, images, uni_skip_only=True)
    assert uni.text_embeddings["skipthought.uni"].shape == (20, 2400) and uni.captions[0] == [""] * 5

    out = convert_to_ganzoo(bundle, tmp_path / "flowers.h5", name="flowers", source="paarthneekhara flower_tv")
    ds = gz.create_dataset("h5.file", path=str(out), encoder="skipthought.combine", split="test")
    item = ds[0]
    assert item["image"].shape == (3, 32, 32) and item["text_emb"].shape == (4800,)
    assert any(torch.allclose(item["text_emb"], torch.from_numpy(v)) for v in vectors[3])


def test_skipthought_bad_files_are_named(tmp_path: Path) -> None:
    path, images, _, _ = write_paarth(tmp_path)
    with h5py.File(path, "a") as f:
        f.create_dataset("image_09999.jpg", data=np.zeros((5, 300), np.float32))
    with pytest.raises(DataError, match=r"image_09999.jpg.*\(5, 300\).*4800"):
        read_skipthought_h5(path, images)
    with pytest.raises(DataError, match="does not exist"):
        read_skipthought_h5(tmp_path / "nope.hdf5", images)


def write_aelnouby(path: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    embs = {}
    with h5py.File(path, "w") as f:
        for split, names in (("train", ["image_00001", "image_00002"]), ("valid", ["image_00003"]),
                             ("test", ["image_00004"])):
            group = f.create_group(split)
            for i, name in enumerate(names):
                for k in range(2):  # two captions per image, each its own sub-group
                    e = group.create_group(f"{name}_{k}")
                    e.create_dataset("name", data=name)
                    e.create_dataset("img", data=np.void(_jpeg((200, 30 * i, 10))))
                    embs[f"{name}_{k}"] = rng.normal(size=1024).astype(np.float32)
                    e.create_dataset("embeddings", data=embs[f"{name}_{k}"])
                    e.create_dataset("class", data=f"class_{int(name[-1]) % 2:05d}")
                    e.create_dataset("txt", data=f"caption {k} of {name}\n".encode())
    return embs


def test_grouped_layout(tmp_path: Path) -> None:
    embs = write_aelnouby(tmp_path / "flowers.hdf5")
    bundle = read_grouped_h5(tmp_path / "flowers.hdf5", image_size=64)
    assert bundle.images.shape == (4, 64, 64, 3)
    assert bundle.captions[0] == ["caption 0 of image_00001", "caption 1 of image_00001"]
    emb = bundle.text_embeddings["reed.char_cnn_rnn"]
    assert emb.shape == (8, 1024) and np.array_equal(emb[3], embs["image_00002_1"])
    assert {k: list(v) for k, v in bundle.splits.items()} == {"train": [0, 1], "val": [2], "test": [3]}
    assert list(bundle.label_names) == ["class_00000", "class_00001"] and list(bundle.labels) == [1, 0, 1, 0]
    red = bundle.images[0, 32, 32]
    assert red[0] > 150 and red[2] < 60  # the JPEG bytes were decoded
    out = convert_to_ganzoo(bundle, tmp_path / "g.h5", name="flowers", source="aelnouby flowers.hdf5")
    item = gz.create_dataset("h5.file", path=str(out), encoder="reed.char_cnn_rnn", split="val")[0]
    assert item["text_emb"].shape == (1024,) and int(item["label"]) == 1


def test_grouped_layout_errors(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "x.hdf5", "w") as f:
        f.create_group("train").create_group("a_0").create_dataset("name", data="a")
    with pytest.raises(DataError, match=r"train/a_0 lacks \['img', 'embeddings', 'class', 'txt'\]"):
        read_grouped_h5(tmp_path / "x.hdf5")
    with h5py.File(tmp_path / "y.hdf5", "w") as f:
        f.create_group("images")
    with pytest.raises(DataError, match="none of the groups"):
        read_grouped_h5(tmp_path / "y.hdf5")


# -- ganzoo sample --text ---------------------------------------------------------------------------------------


def test_ganzoo_sample_text_draws_one_row_per_caption(tmp_path: Path) -> None:
    from ganzoo_core.checkpoints import save
    from ganzoo_core.cli import main
    from ganzoo_core.text import encode_texts
    from ganzoo_core.visual import make_grid

    torch.manual_seed(0)
    objective = gz.create_objective("gan_cls.cls_32", generator_kwargs={"ngf": 8}, discriminator_kwargs={"ndf": 8})
    objective.networks["G"].train()
    for _ in range(3):  # a few train-mode passes, so eval-mode BatchNorm statistics are not the init's
        objective.networks["G"](torch.randn(16, 100), torch.randn(16, 512))
    path = tmp_path / "gan_cls.safetensors"
    save(objective, path)
    captions = ["a small red circle in the top left", "a large blue star in the bottom right"]
    out = tmp_path / "text.png"
    args = ["sample", str(path), "--n", "3", "--seed", "4", "--out", str(out)]
    assert main([*args, "--text", captions[0], "--text", captions[1]]) == 0
    grid = np.asarray(Image.open(out))
    objective.eval()
    emb = encode_texts(objective.cfg.encoder, captions).repeat_interleave(3, dim=0)
    expected = make_grid(objective.sample(6, batch={"text_emb": emb}, seed=4), nrow=3)
    assert grid.shape == expected.shape == (2 * 34 + 2, 3 * 34 + 2, 3)  # 2 rows (captions) of 3 (noise)
    assert np.abs(grid.astype(int) - expected.astype(int)).max() <= 1


def test_ganzoo_sample_text_needs_a_text_conditioned_checkpoint(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from ganzoo_core.checkpoints import save
    from ganzoo_core.cli import main

    path = tmp_path / "dcgan.safetensors"
    save(gz.create_objective("dcgan.28", generator_kwargs={"ngf": 4}, discriminator_kwargs={"ndf": 4}), path)
    assert main(["sample", str(path), "--text", "a red circle", "--out", str(tmp_path / "x.png")]) == 2
    assert "--text needs a text-conditioned objective" in capsys.readouterr().err
