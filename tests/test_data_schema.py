"""The HDF5 schema v1: every part round-trips exactly, validation, damaged files, workers, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import ganzoo_core as gz
from ganzoo_core.data.schema import (
    SCHEMA_VERSION,
    ArrayBundle,
    DataError,
    H5Cfg,
    H5Dataset,
    open_h5,
    read_h5_info,
    write_h5,
)

N = 6


def full_bundle() -> ArrayBundle:
    """Every image-side part of the schema, with uneven caption counts (one image has none)."""
    rng = np.random.default_rng(0)
    captions = [[f"caption {i}.{j} ünïcode" for j in range(i % 3)] for i in range(N)]
    total = sum(map(len, captions))
    return ArrayBundle(
        images=rng.integers(0, 256, (N, 5, 4, 3), dtype=np.uint8),
        images_b=rng.integers(0, 256, (N, 5, 4, 1), dtype=np.uint8),
        labels=np.array([0, 1, 2, 0, 1, 2]), label_names=["cat", "dog", "emu"],
        attributes=rng.integers(0, 2, (N, 3), dtype=np.uint8), attribute_names=["Male", "Smiling", "Young"],
        domains=np.array([0, 0, 0, 1, 1, 1]), domain_names=["A", "B"],
        captions=captions,
        text_embeddings={"minilm.l6": rng.standard_normal((total, 8)).astype(np.float32)},
        splits={"train": np.array([0, 1, 2, 3]), "test": np.array([4, 5])},
    )


def as_tensor_image(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).permute(2, 0, 1).float().div(127.5).sub(1.0)


@pytest.fixture
def full_file(tmp_path: Path) -> tuple[Path, ArrayBundle]:
    bundle = full_bundle()
    return write_h5(bundle, tmp_path / "full.h5", name="test.full", source="made by a test", meta={"k": [1, 2]}), bundle


def test_every_part_round_trips_exactly(full_file: tuple[Path, ArrayBundle]) -> None:
    path, b = full_file
    with open_h5(path) as f:
        assert f.attrs["ganzoo.schema_version"] == SCHEMA_VERSION and f.attrs["ganzoo.name"] == "test.full"
        assert f.attrs["ganzoo.source"] == "made by a test" and json.loads(f.attrs["ganzoo.meta"]) == {"k": [1, 2]}
        for key, array in (("images", b.images), ("images_b", b.images_b), ("attributes", b.attributes)):
            assert f[key].dtype == np.uint8 and np.array_equal(f[key][()], array)
        for key, array, names in (("labels", b.labels, b.label_names), ("domains", b.domains, b.domain_names),
                                  ("attributes", b.attributes, b.attribute_names)):
            assert np.array_equal(f[key][()], array) and json.loads(f[key].attrs["names"]) == list(names)
        assert f["labels"].dtype == np.int64 and f["domains"].dtype == np.int64
        text, index = f["captions/text"].asstr()[()].tolist(), f["captions/index"][()]
        assert [text[index[i]:index[i + 1]] for i in range(N)] == b.captions
        assert index.tolist() == [0, 0, 1, 3, 3, 4, 6]
        emb = f["text_embeddings/minilm.l6"]
        assert emb.dtype == np.float32 and np.array_equal(emb[()], b.text_embeddings["minilm.l6"])
        assert {k: v[()].tolist() for k, v in f["splits"].items()} == {"train": [0, 1, 2, 3], "test": [4, 5]}


def test_reader_items_equal_the_arrays(full_file: tuple[Path, ArrayBundle]) -> None:
    path, b = full_file
    ds = gz.create_dataset("h5.file", path=path)
    assert isinstance(ds, H5Dataset) and len(ds) == N
    for i in range(N):
        item = ds[i]
        assert set(item) == {"image", "image_b", "label", "domain", "attrs"}
        assert torch.equal(item["image"], as_tensor_image(b.images[i]))
        assert torch.equal(item["image_b"], as_tensor_image(b.images_b[i]))
        assert item["label"].item() == b.labels[i] and item["domain"].item() == b.domains[i]
        assert torch.equal(item["attrs"], torch.from_numpy(b.attributes[i].astype(np.float32)))
    assert ds.names == {"labels": ["cat", "dog", "emu"], "attributes": ["Male", "Smiling", "Young"],
                        "domains": ["A", "B"]}


def test_reader_split_encoder_and_conversions(full_file: tuple[Path, ArrayBundle]) -> None:
    path, b = full_file
    test = H5Dataset(H5Cfg(path=str(path), split="test", encoder="minilm.l6"))
    assert len(test) == 2 and test[0]["label"].item() == b.labels[4]
    emb = b.text_embeddings["minilm.l6"]
    torch.manual_seed(0)
    seen = set()
    for _ in range(20):  # image 4 has caption 3 only, image 5 captions 4 and 5 (index [0, 0, 1, 3, 3, 4, 6])
        assert torch.equal(test[0]["text_emb"], torch.from_numpy(emb[3]))
        drawn = test[1]["text_emb"]
        seen |= {k for k in (4, 5) if torch.equal(drawn, torch.from_numpy(emb[k]))}
    assert seen == {4, 5}  # a random caption of the image each time, every one of them in the end
    with pytest.raises(DataError, match="image 0 has no caption"):
        H5Dataset(H5Cfg(path=str(path), encoder="minilm.l6"))[0]
    grey = H5Dataset(H5Cfg(path=str(path), channels=1, image_size=8))[0]
    assert grey["image"].shape == (1, 8, 8) and grey["image_b"].shape == (1, 8, 8)
    rgb = H5Dataset(H5Cfg(path=str(path), channels=3))[0]
    assert rgb["image_b"].shape == (3, 5, 4) and torch.equal(rgb["image_b"][0], rgb["image_b"][2])


def test_reader_errors_say_what_to_do(full_file: tuple[Path, ArrayBundle], tmp_path: Path) -> None:
    path, _ = full_file
    with pytest.raises(DataError, match="needs path="):
        gz.create_dataset("h5.file")
    with pytest.raises(DataError, match=r"no split 'val'; it has \['test', 'train'\]"):
        H5Dataset(H5Cfg(path=str(path), split="val"))
    with pytest.raises(DataError, match="no text embeddings of .skipthought.combine.*text_embeddings/<encoder>"):
        H5Dataset(H5Cfg(path=str(path), encoder="skipthought.combine"))
    with pytest.raises(DataError, match="does not exist"):
        H5Dataset(H5Cfg(path=str(tmp_path / "nope.h5")))


def test_sentence_corpus_round_trips(tmp_path: Path) -> None:
    sentences = ["It was a dark night.", "Rain fell.", "Chapter two begins.", "Ünïcode ends."]
    bundle = ArrayBundle(sentences=sentences, sentence_docs=np.array([0, 0, 1, 1]), doc_names=["book a", "book b"])
    path = write_h5(bundle, tmp_path / "books.h5", name="books.toy", source="test")
    with open_h5(path) as f:
        assert f["sentences/text"].asstr()[()].tolist() == sentences
        assert f["sentences/doc"][()].tolist() == [0, 0, 1, 1]
        assert json.loads(f["sentences/doc"].attrs["names"]) == ["book a", "book b"]
    with pytest.raises(DataError, match="holds no images"):
        H5Dataset(H5Cfg(path=str(path)))


def test_info_lists_arrays_without_reading_them(full_file: tuple[Path, ArrayBundle]) -> None:
    path, _ = full_file
    info = read_h5_info(path)
    assert (info.name, info.source, info.meta) == ("test.full", "made by a test", {"k": [1, 2]})
    assert info.datasets["images"] == ((N, 5, 4, 3), "uint8") and info.datasets["captions/index"] == ((N + 1,), "int64")
    assert info.datasets["text_embeddings/minilm.l6"] == ((6, 8), "float32")
    assert info.splits == {"test": 2, "train": 4}


@pytest.mark.parametrize(("change", "message"), [
    ({"captions": [["a"]] * (N - 1)}, "5 caption lists for 6 images"),
    ({"attribute_names": ["Male", "Smiling"]}, "3 attribute columns but 2 attribute names"),
    ({"labels": np.array([0, 1, 2, 3, 0, 1])}, r"labels outside 0..2 \(3 names\)"),
    ({"domains": np.array([0, 0, -1, 1, 1, 1])}, "domains outside 0..1"),
    ({"images": np.array([np.zeros((5, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8)] * 3, dtype=object)},
     "images must be uint8 .N, H, W, C."),
    ({"images": np.zeros((N, 5, 4, 2), np.uint8)}, "C = 1 or 3"),
    ({"images_b": np.zeros((N - 1, 5, 4, 3), np.uint8)}, "6 images but 5 paired images"),
    ({"text_embeddings": {"e": np.zeros((2, 8), np.float32)}}, r"expected \(6, D\): one row per caption"),
    ({"splits": {"test": np.array([5, 6])}}, "split 'test' has indices outside 0..5"),
    ({"images": None}, "holds neither images nor sentences"),
])
def test_validate_rejects_parts_that_disagree(change: dict, message: str, tmp_path: Path) -> None:
    import attrs

    bundle = attrs.evolve(full_bundle(), **change)
    with pytest.raises(DataError, match=message):
        bundle.validate()
    with pytest.raises(DataError, match=message):
        write_h5(bundle, tmp_path / "bad.h5", name="x.y", source="test")
    assert not (tmp_path / "bad.h5").exists()


IMAGES = np.zeros((2, 2, 2, 1), np.uint8)


@pytest.mark.parametrize("bundle", [
    ArrayBundle(images=IMAGES, attributes=np.array([[1], [-1]])),  # CelebA's -1/1 not mapped to 0/1
    ArrayBundle(images=IMAGES, labels=np.array([0.5, 1.7]), label_names=["a", "b"]),
    ArrayBundle(images=np.zeros((0, 2, 2, 1), np.uint8)),
    ArrayBundle(images=[IMAGES[0], IMAGES[1]]),
], ids=["attributes -1", "float labels", "no images", "list of images"])
def test_validate_rejects_values_the_writer_would_mangle(bundle: ArrayBundle) -> None:
    with pytest.raises(DataError):
        bundle.validate()


def test_reader_resizes_non_square_images(tmp_path: Path) -> None:
    path = write_h5(ArrayBundle(images=np.zeros((2, 6, 4, 1), np.uint8)), tmp_path / "tall.h5", name="t.t", source="t")
    assert H5Dataset(H5Cfg(path=str(path), image_size=4))[0]["image"].shape == (1, 4, 4)


def test_truncated_file_is_named_as_truncated(full_file: tuple[Path, ArrayBundle]) -> None:
    path, _ = full_file
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"full\.h5.*truncated.*ganzoo data build"):
        open_h5(path)
    with pytest.raises(DataError, match="truncated"):
        gz.create_dataset("h5.file", path=path)


def test_wrong_or_missing_schema_version(full_file: tuple[Path, ArrayBundle], tmp_path: Path) -> None:
    path, _ = full_file
    with h5py.File(path, "a") as f:
        f.attrs["ganzoo.schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(DataError, match=f"schema version {SCHEMA_VERSION + 1}; this ganzoo reads version 1"):
        open_h5(path)
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["images"] = np.zeros((1, 2, 2, 1), np.uint8)
    with pytest.raises(DataError, match="no ganzoo schema version"):
        H5Dataset(H5Cfg(path=str(plain)))


def test_workers_read_the_same_items_as_one_process(full_file: tuple[Path, ArrayBundle]) -> None:
    path, _ = full_file
    ds = gz.create_dataset("h5.file", path=path, split="train")
    ds[0]  # the parent holds an open handle before the workers fork: each must open its own
    single = list(DataLoader(ds, batch_size=1, num_workers=0))
    multi = list(DataLoader(ds, batch_size=1, num_workers=2))
    assert len(single) == len(multi) == 4
    for a, b in zip(single, multi):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_failed_write_keeps_the_previous_file(full_file: tuple[Path, ArrayBundle], monkeypatch) -> None:
    path, bundle = full_file
    before = path.read_bytes()
    real = h5py.Group.create_dataset

    def failing(self, name, *args, **kwargs):
        if name == "labels":
            raise OSError("No space left on device")
        return real(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", failing)
    with pytest.raises(OSError, match="No space left"):
        write_h5(ArrayBundle(images=bundle.images[:2], labels=np.array([0, 1])), path, name="new.one", source="t")
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["full.h5"]  # no temporary file left behind
    monkeypatch.undo()
    assert read_h5_info(path).name == "test.full"
