"""The HDF5 schema v1: every part round-trips exactly, validation, damaged files, workers, atomic writes."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import ganzoo_core as gz
from ganzoo_core.data.schema import (
    SCHEMA_VERSION,
    ArrayBundle,
    BundleDataset,
    DataError,
    H5Cfg,
    H5Dataset,
    open_h5,
    read_h5_info,
    write_h5,
)
from ganzoo_core.errors import OutputExistsError, OutputPathError

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
    with pytest.raises(OutputPathError, match=r"cannot write dataset file .*full\.h5.*No space left.*nothing was replaced"):
        write_h5(ArrayBundle(images=bundle.images[:2], labels=np.array([0, 1])), path, name="new.one", source="t",
                 overwrite=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["full.h5"]  # no temporary file left behind
    monkeypatch.undo()
    assert read_h5_info(path).name == "test.full"


# -- hand-made files: the right schema version, the wrong arrays ------------------------------------------------------

STR = h5py.string_dtype(encoding="utf-8")


def handmade(path: Path, **arrays: object) -> Path:
    """A schema-v1 file written with h5py directly: 4 grey 5×5 images and labels, changed by ``arrays`` (None drops
    one; a str value makes a group of that name)."""
    parts: dict[str, object] = {"images": np.zeros((4, 5, 5, 1), np.uint8), "labels": np.arange(4, dtype=np.int64)}
    parts.update(arrays)
    with h5py.File(path, "w") as f:
        f.attrs["ganzoo.schema_version"] = SCHEMA_VERSION
        f.attrs["ganzoo.name"], f.attrs["ganzoo.source"], f.attrs["ganzoo.meta"] = "hand.made", "a test", "{}"
        for key, value in parts.items():
            if isinstance(value, str):
                f.create_group(key)
            elif isinstance(value, np.ndarray) and value.dtype == object:
                f.create_dataset(key, data=value, dtype=STR)
            elif value is not None:
                f.create_dataset(key, data=value)
    return path


CAPTIONS = {"captions/text": np.array(["a", "b", "c"], dtype=object), "captions/index": np.array([0, 1, 2, 3, 3])}

BAD_LAYOUTS = {
    "images float64": ({"images": np.zeros((4, 5, 5, 1))}, "images", r"float64 \(4, 5, 5, 1\)", r"uint8 \(N, H, W, C\)"),
    "images as strings": ({"images": np.array(["x"] * 4, dtype=object)}, "images", r"variable-length str \(4,\)",
                          r"uint8 \(N, H, W, C\)"),
    "images without channels": ({"images": np.zeros((4, 5, 5), np.uint8)}, "images", r"uint8 \(4, 5, 5\)", "C = 1 or 3"),
    "images with 2 channels": ({"images": np.zeros((4, 5, 5, 2), np.uint8)}, "images", r"uint8 \(4, 5, 5, 2\)",
                               "C = 1 or 3"),
    "images a group": ({"images": "group"}, "images", "a group", "an array"),
    "no images": ({"images": np.zeros((0, 5, 5, 1), np.uint8), "labels": np.zeros(0, np.int64)}, "images",
                  r"uint8 \(0, 5, 5, 1\)", "at least one image"),
    "labels too short": ({"labels": np.arange(3)}, "labels", r"int64 \(3,\)",
                         r"a first dimension of 4, one row per image \('images' holds 4\)"),
    "labels float": ({"labels": np.zeros(4)}, "labels", r"float64 \(4,\)", r"integers \(N,\)"),
    "labels 2-d": ({"labels": np.zeros((4, 2), np.int64)}, "labels", r"int64 \(4, 2\)", r"integers \(N,\)"),
    "paired images of another count": ({"images_b": np.zeros((3, 5, 5, 1), np.uint8)}, "images_b",
                                       r"uint8 \(3, 5, 5, 1\)", "a first dimension of 4"),
    "attributes 1-d": ({"attributes": np.zeros(4, np.uint8)}, "attributes", r"uint8 \(4,\)", r"\(N, K\)"),
    "caption index too short": ({**CAPTIONS, "captions/index": np.array([0, 1, 3])}, "captions/index",
                                r"int64 \(3,\)", r"\(5,\)"),
    "captions as numbers": ({**CAPTIONS, "captions/text": np.zeros(3)}, "captions/text", r"float64 \(3,\)",
                            "variable-length str"),
    "embeddings of the wrong rows": ({**CAPTIONS, "text_embeddings/bow.hashed": np.zeros((2, 8), np.float32)},
                                     "text_embeddings/bow.hashed", r"float32 \(2, 8\)", r"float32 \(3, D\)"),
    "embeddings as integers": ({**CAPTIONS, "text_embeddings/bow.hashed": np.zeros((3, 8), np.int64)},
                               "text_embeddings/bow.hashed", r"int64 \(3, 8\)", r"float32 \(3, D\)"),
    "float split": ({"splits/train": np.array([0.0, 1.0])}, "splits/train", r"float64 \(2,\)", r"integers \(M,\)"),
}


@pytest.mark.parametrize(("arrays", "key", "found", "expected"), BAD_LAYOUTS.values(), ids=BAD_LAYOUTS.keys())
def test_a_handmade_file_with_wrong_arrays_is_refused_at_open(tmp_path: Path, arrays: dict, key: str, found: str,
                                                              expected: str) -> None:
    path = handmade(tmp_path / "hand.h5", **arrays)
    pattern = rf"hand\.h5'?: dataset '{key}' is {found}; expected .*{expected}.*ganzoo data build"
    for opener in (lambda: gz.create_dataset("h5.file", path=path), lambda: open_h5(path), lambda: read_h5_info(path)):
        with pytest.raises(DataError, match=pattern) as info:
            opener()
        assert "\n" not in str(info.value)


def test_a_handmade_file_that_follows_the_schema_is_read(tmp_path: Path) -> None:
    path = handmade(tmp_path / "hand.h5", labels=np.arange(4, dtype=np.int32), **CAPTIONS,
                    **{"text_embeddings/e": np.ones((3, 2), np.float64), "splits/train": np.array([0, 2], np.int32)})
    ds = gz.create_dataset("h5.file", path=path, split="train", encoder="e")
    assert len(ds) == 2 and ds[1]["label"] == 2 and ds[1]["text_emb"].shape == (2,)


@pytest.mark.parametrize(("arrays", "cfg", "message"), [
    ({"splits/train": np.array([0, 9])}, {"split": "train"}, r"split 'train' has indices in 0\.\.9, outside the 4 images"),
    ({**CAPTIONS, "captions/index": np.array([0, 2, 1, 3, 3]), "text_embeddings/e": np.zeros((3, 2), np.float32)},
     {"encoder": "e"}, r"'captions/index' must rise from 0 to 3"),
    ({"labels": np.array([0, 1, 2, 3], np.int64), "labels_names": ["a", "b"]}, {},
     r"dataset 'labels' holds ids 0\.\.3; expected 0\.\.1 \(2 names\)"),
    ({"domains": np.array([0, -1, 0, 1])}, {}, r"dataset 'domains' holds ids -1\.\.1; expected 0 or more"),
    ({"labels": np.arange(4)}, {}, None),
], ids=["split outside the images", "caption index falling", "labels beyond the names", "negative domain",
        "control"])
def test_indices_that_point_outside_the_file_are_refused_at_open(tmp_path: Path, arrays: dict, cfg: dict,
                                                                 message: str | None) -> None:
    names = arrays.pop("labels_names", None)
    path = handmade(tmp_path / "hand.h5", **arrays)
    if names is not None:
        with h5py.File(path, "a") as f:
            f["labels"].attrs["names"] = json.dumps(names)
    if message is None:
        assert len(gz.create_dataset("h5.file", path=path, **cfg)) == 4
        return
    with pytest.raises(DataError, match=rf"hand\.h5'?: {message}"):
        gz.create_dataset("h5.file", path=path, **cfg)


def test_bad_names_attribute_is_refused(tmp_path: Path) -> None:
    path = handmade(tmp_path / "hand.h5")
    with h5py.File(path, "a") as f:
        f["labels"].attrs["names"] = "not json ["
    with pytest.raises(DataError, match=r"'names' attribute of 'labels' is 'not json \['; expected a JSON list"):
        gz.create_dataset("h5.file", path=path)


@pytest.mark.parametrize("content", [b"", b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4, np.random.default_rng(0).bytes(4096)],
                         ids=["empty", "signature then junk", "random bytes"])
def test_a_corrupt_file_is_one_error_naming_it(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "corrupt.h5"
    path.write_bytes(content)
    for opener in (lambda: gz.create_dataset("h5.file", path=path), lambda: read_h5_info(path)):
        with pytest.raises(DataError, match=r"corrupt\.h5.*(not a readable HDF5 file|damaged)"):
            opener()


def test_a_folder_is_not_a_dataset_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is a folder"):
        gz.create_dataset("h5.file", path=tmp_path)


def test_a_damaged_chunk_is_a_data_error_naming_the_file_and_image(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = write_h5(ArrayBundle(images=rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)), tmp_path / "d.h5",
                    name="d.d", source="t")
    ds = gz.create_dataset("h5.file", path=path)
    with h5py.File(path, "r") as f:
        offset, size = f["images"].id.get_chunk_info(5).byte_offset, f["images"].id.get_chunk_info(5).size
    data = bytearray(path.read_bytes())
    data[offset:offset + size] = bytes(size)  # zeros: not a gzip stream
    path.write_bytes(bytes(data))
    assert ds[4]["image"].shape == (3, 32, 32)  # the other images still read
    with pytest.raises(DataError, match=r"cannot read image 5 of .*d\.h5.*damaged"):
        ds[5]


# -- writing: never over what is not ours -----------------------------------------------------------------------------


def test_write_refuses_an_existing_file_unless_overwrite(full_file: tuple[Path, ArrayBundle]) -> None:
    path, bundle = full_file
    before = path.read_bytes()
    small = ArrayBundle(images=bundle.images[:2])
    with pytest.raises(OutputExistsError, match=r"full\.h5.*already exists.*--overwrite"):
        write_h5(small, path, name="new.one", source="t")
    assert path.read_bytes() == before
    write_h5(small, path, name="new.one", source="t", overwrite=True)
    assert read_h5_info(path).name == "new.one"


@pytest.mark.parametrize("target", ["folder", "/dev/null", "/dev/full"])
def test_write_refuses_what_is_not_a_regular_file(tmp_path: Path, target: str) -> None:
    path = tmp_path if target == "folder" else Path(target)
    if not path.exists():
        pytest.skip(f"{target} does not exist here")
    before = sorted(tmp_path.iterdir())
    for overwrite in (False, True):
        with pytest.raises(OutputPathError, match="not a regular file|is a folder"):
            write_h5(ArrayBundle(images=IMAGES), path, name="x.y", source="t", overwrite=overwrite)
    assert sorted(tmp_path.iterdir()) == before


def test_channels_the_reader_cannot_serve_are_a_config_error(full_file: tuple[Path, ArrayBundle]) -> None:
    path, _ = full_file
    for bad in (2, 0, 4):
        with pytest.raises(gz.ConfigError, match=rf"channels.*\(1, 3\).*{bad}"):
            gz.create_dataset("h5.file", path=path, channels=bad)
    assert gz.create_dataset("h5.file", path=path, channels=3)[0]["image"].shape[0] == 3


@pytest.mark.parametrize("source", ["h5", "memory"])
def test_caption_average_is_the_mean_of_distinct_captions(tmp_path: Path, source: str) -> None:
    """caption_average=k: text_emb is the mean of min(k, n) distinct captions of the image (GAN-CLS's CUB scripts
    use 4); k=1 gives one caption's row, as before."""
    bundle = full_bundle()
    bundle = ArrayBundle(**{**{f: getattr(bundle, f) for f in ("images", "labels", "label_names")},
                            "captions": [[f"c{i}.{j}" for j in range(i % 3 + 1)] for i in range(N)],
                            "text_embeddings": {"e.x": np.random.default_rng(1).standard_normal((12, 4)).astype(
                                np.float32)}})
    rows = torch.from_numpy(bundle.text_embeddings["e.x"])
    starts = np.concatenate([[0], np.cumsum([len(c) for c in bundle.captions])])

    def build(k: int) -> Any:
        if source == "memory":
            return BundleDataset(bundle, encoder="e.x", caption_average=k)
        path = tmp_path / f"c{k}.h5"
        if not path.exists():
            write_h5(bundle, path, name="test.captions", source="test")
        return gz.create_dataset("h5.file", path=str(path), encoder="e.x", caption_average=k)

    torch.manual_seed(0)
    for k in (1, 2, 3, 5):
        ds = build(k)
        for i in range(N):
            own = rows[starts[i]:starts[i + 1]]
            subsets = [own[list(c)].mean(0) for c in itertools.combinations(range(len(own)), min(k, len(own)))]
            for _ in range(4):
                emb = ds[i]["text_emb"]
                assert any(torch.allclose(emb, s, atol=1e-6) for s in subsets), (k, i)
    with pytest.raises((gz.ConfigError, DataError), match="caption_average"):
        build(0)
