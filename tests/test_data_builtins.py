"""Built-in data sets of core.data: procedural shapes, emoji from Debian fonts, the Jane Austen sentence corpus."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ganzoo_core as gz
from ganzoo_core.data import austen, emoji, shapes
from ganzoo_core.data.schema import ArrayBundle, DataError, open_h5, write_h5

# -- shapes -----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shape_bundle() -> ArrayBundle:
    return shapes.make_shapes(240, 32, seed=5, captions_per_image=len(shapes._TEMPLATES))


def truths(bundle: ArrayBundle) -> list[dict[str, str]]:
    names = np.array(bundle.attribute_names)
    out = []
    for row in bundle.attributes:
        pairs = dict(n.split("=") for n in names[row == 1])
        out.append(pairs)
    return out


def test_shapes_are_deterministic_per_seed_and_index() -> None:
    a, b = shapes.make_shapes(30, 32, 1, 3), shapes.make_shapes(30, 32, 1, 3)
    assert np.array_equal(a.images, b.images) and a.captions == b.captions
    assert np.array_equal(a.attributes, b.attributes) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images, shapes.make_shapes(30, 32, 2, 3).images)
    assert np.array_equal(shapes.make_shapes(12, 32, 1, 3).images, a.images[:12])  # n never changes earlier images


def test_every_caption_parses_back_to_the_attributes(shape_bundle: ArrayBundle) -> None:
    for truth, caps in zip(truths(shape_bundle), shape_bundle.captions):
        assert len(set(caps)) == len(shapes._TEMPLATES)  # every phrasing differs
        for caption in caps:
            assert shapes.parse_caption(caption) == truth, caption
    with pytest.raises(DataError, match="2 colour values"):
        shapes.parse_caption("a small red and blue circle in the top left")
    with pytest.raises(DataError, match="0 shape values"):
        shapes.parse_caption("something red, small, top left")


def test_attribute_blocks_are_one_hot_and_agree_with_labels(shape_bundle: ArrayBundle) -> None:
    names = list(shape_bundle.attribute_names)
    for block in ("colour", "shape", "size", "pos"):
        cols = [i for i, n in enumerate(names) if n.startswith(block + "=")]
        assert (shape_bundle.attributes[:, cols].sum(1) == 1).all(), block
    shape_cols = [names.index(f"shape={s}") for s in shapes.SHAPES]
    assert np.array_equal(shape_bundle.attributes[:, shape_cols].argmax(1), shape_bundle.labels)
    assert list(shape_bundle.label_names) == list(shapes.SHAPES)


def test_pixels_show_the_stated_colour_position_and_size(shape_bundle: ArrayBundle) -> None:
    palette = np.array(list(shapes.COLOURS.values()), np.float64)
    palette /= palette.max(1, keepdims=True)
    areas: dict[tuple[str, str], list[float]] = {}
    for image, truth in zip(shape_bundle.images, truths(shape_bundle)):
        ink = image.max(-1).astype(np.float64)  # coverage × brightest channel (the background is black)
        ys, xs = np.mgrid[: image.shape[0], : image.shape[1]]
        cy, cx = (ink * ys).sum() / ink.sum(), (ink * xs).sum() / ink.sum()
        half = image.shape[0] / 2
        assert truth["pos"] == f"{'top' if cy < half else 'bottom'}_{'left' if cx < half else 'right'}"
        mean = (image.reshape(-1, 3).astype(np.float64) * (ink.reshape(-1, 1) > 0)).sum(0)
        nearest = np.linalg.norm(palette - mean / mean.max(), axis=1).argmin()
        assert list(shapes.COLOURS)[nearest] == truth["colour"]
        areas.setdefault((truth["shape"], truth["size"]), []).append(ink.sum() / max(shapes.COLOURS[truth["colour"]]))
    for shape in shapes.SHAPES:
        assert min(areas[shape, "large"]) > 2 * max(areas[shape, "small"]), shape


def test_shapes_dataset_items_splits_and_h5_round_trip(tmp_path: Path) -> None:
    ds = gz.create_dataset("shapes.64", n=40, captions_per_image=2)
    item = ds[3]
    assert len(ds) == 40 and item["image"].shape == (3, 64, 64) and item["attrs"].shape == (17,)
    assert -1 <= float(item["image"].min()) and float(item["image"].max()) <= 1 and item["label"].dtype == torch.int64
    assert len(ds.caption(3)) == 2 and shapes.parse_caption(ds.caption(3)[0])["shape"] == ds.class_names[item["label"]]
    bundle = ds.bundle()
    assert bundle.splits["test"].tolist() == [9, 19, 29, 39] and len(bundle.splits["train"]) == 36
    test = gz.create_dataset("shapes.64", n=40, split="test")
    assert len(test) == 4 and torch.equal(test[0]["image"], gz.create_dataset("shapes.64", n=40)[9]["image"])
    path = write_h5(bundle, tmp_path / "shapes.h5", name="shapes.64", source="procedural")
    with open_h5(path) as f:
        assert np.array_equal(f["images"][()], bundle.images) and np.array_equal(f["attributes"][()], bundle.attributes)
        text, index = f["captions/text"].asstr()[()], f["captions/index"][()]
        assert list(text[index[3]:index[4]]) == ds.caption(3)
        assert np.array_equal(f["splits/test"][()], bundle.splits["test"])
    with pytest.raises(gz.ConfigError, match="split"):
        gz.create_dataset("shapes.32", split="valid")


# -- emoji ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, text, tone, gender", [
    ("thumbs up: medium skin tone", "\U0001F44D\U0001F3FD", "medium", "neither"),
    ("woman cook", "\U0001F469\u200d\U0001F373", "none", "woman"),
    ("man technologist: dark skin tone", "\U0001F468\U0001F3FF\u200d\U0001F4BB", "dark", "man"),
    ("men with bunny ears", "\U0001F46F\u200d\u2642\ufe0f", "none", "man"),
    ("kiss: woman, man", "\U0001F469\u200d\u2764\ufe0f\u200d\U0001F48B\u200d\U0001F468", "none", "neither"),
    ("woman’s hat", "\U0001F452", "none", "neither"),
    ("people holding hands: medium-light skin tone, dark skin tone", "\U0001F9D1\U0001F3FC\u200d\U0001F91D\u200d"
     "\U0001F9D1\U0001F3FF", "medium-light", "neither"),
])
def test_tone_and_gender_from_names_and_code_points(name: str, text: str, tone: str, gender: str) -> None:
    assert emoji.tone_of(text) == emoji.tone_from_name(name) == tone
    assert emoji.gender_of(name) == gender
    row = emoji.attribute_row(text, name)
    assert row.sum() == 2 and {emoji.ATTRIBUTE_NAMES[i] for i in np.flatnonzero(row)} == {f"tone={tone}",
                                                                                          f"gender={gender}"}


def test_cldr_parser_and_captions(tmp_path: Path) -> None:
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "en.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8" ?>\n<ldml><annotations>\n'
        '<annotation cp="🐱">cat | face | pet</annotation>\n<annotation cp="🐱" type="tts">cat face</annotation>\n'
        '<annotation cp="☺\ufe0f">face | smile</annotation>\n</annotations></ldml>\n', encoding="utf-8")
    notes = emoji.load_cldr(str(tmp_path))
    assert notes["🐱"] == emoji.Annotation("cat face", ("cat", "face", "pet"))
    assert notes["☺"].tts is None and notes["☺"].keywords == ("face", "smile")  # U+FE0F dropped from keys
    assert emoji.captions_for("🐱", "cat face", notes) == ["cat face", "cat", "face", "pet"]
    assert emoji.captions_for("☺\ufe0f", "smiling face", notes) == ["smiling face", "face", "smile"]
    (tmp_path / "annotations" / "en.xml").write_text("<ldml><annotations>")
    with pytest.raises(DataError, match="en.xml"):
        emoji.load_cldr(str(tmp_path))


def test_cldr_emoji_groups_parser(tmp_path: Path) -> None:
    (tmp_path / "properties").mkdir()
    labels = tmp_path / "properties" / "labels.txt"
    labels.write_text("# comment line\n\n"
                      "[☺😀-😂{👨‍⚕️}]  ;\tSmileys & People\t;\tface-positive\n"
                      "[🐱 🐶]  ;\tAnimals & Nature\t;\tanimal-mammal\n", encoding="utf-8")
    table = emoji.load_cldr_labels(str(tmp_path))
    assert set(table) == {"☺", "😀", "😁", "😂", "👨‍⚕", "🐱", "🐶"}  # the range is expanded, U+FE0F dropped
    assert emoji.category_of("👨‍⚕️", table) == "Smileys & People"  # the whole sequence
    assert emoji.category_of("👨🏿‍⚕️", table) == "Smileys & People"  # its untoned form
    assert emoji.category_of("🐱‍👤", table) == "Animals & Nature"  # its first code point
    assert emoji.category_of("🪗", table) == emoji.UNLISTED
    labels.write_text("[🐱] ; Pets ; cats\n", encoding="utf-8")
    with pytest.raises(DataError, match="unknown emoji group 'Pets'"):
        emoji.load_cldr_labels(str(tmp_path))
    labels.write_text("🐱 Animals & Nature\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 1: expected"):
        emoji.load_cldr_labels(str(tmp_path))
    with pytest.raises(gz.DatasetUnavailableError, match="labels.txt"):
        emoji.load_cldr_labels(str(tmp_path / "nowhere"))


def test_missing_emoji_sources_say_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(emoji, "debian_files", lambda package: [])
    monkeypatch.setenv("GANZOO_DATA_DIR", str(tmp_path))  # nothing fetched there either
    monkeypatch.setenv("HOME", str(tmp_path))
    for name, package in (("emoji.noto", "fonts-noto-color-emoji"), ("emoji.symbola", "fonts-symbola")):
        with pytest.raises(gz.DatasetUnavailableError, match=f"apt-get install {package}"):
            gz.create_dataset(name, keywords=False)
    with pytest.raises(gz.DatasetUnavailableError, match="apt-get install unicode-cldr-core"):
        gz.create_dataset("emoji.noto")
    monkeypatch.setitem(sys.modules, "emoji", None)
    with pytest.raises(gz.DatasetUnavailableError, match="pip install emoji"):
        gz.create_dataset("emoji.tones", keywords=False)


def _font_or_skip(package: str, pattern: str) -> str:
    try:
        return str(emoji.find_font(package, pattern, None, "font"))
    except gz.DatasetUnavailableError:
        pytest.skip(f"needs the Debian package {package}")


def test_rendered_glyphs_are_centred_sized_and_coloured() -> None:
    noto = _font_or_skip("fonts-noto-color-emoji", r"NotoColorEmoji.*\.ttf")
    symbola = _font_or_skip("fonts-symbola", r"Symbola.*\.ttf")
    colour = emoji.fit_square(emoji.render_color("\U0001F431", noto), 48, "white", 0.0)  # cat face
    grey = emoji.fit_square(emoji.render_line("\U0001F431", symbola), 48, "white", 0.0)
    assert colour.shape == (48, 48, 3) and grey.shape == (48, 48, 1)
    for image in (colour, grey):
        ink = np.argwhere(image.min(-1) < 200)
        assert len(ink) > 200  # not empty
        assert np.abs((ink.min(0) + ink.max(0)) / 2 - 23.5).max() <= 1.5  # centred
        assert (ink.max(0) - ink.min(0)).max() >= 44  # the glyph's long side fills the square
    spread = colour.astype(int).max(-1) - colour.astype(int).min(-1)
    assert (spread > 60).mean() > 0.2  # Noto is in colour
    assert emoji.render_color("\U0001F431\U0001F431", noto) is None  # two glyphs are not one emoji
    assert emoji.render_line("\U0010fffd", symbola) is None  # .notdef counts as missing


def test_emoji_tone_and_pair_sets() -> None:
    _font_or_skip("fonts-noto-color-emoji", r"NotoColorEmoji.*\.ttf")
    _font_or_skip("fonts-symbola", r"Symbola.*\.ttf")
    pytest.importorskip("emoji", reason="needs 'pip install emoji'")
    tones = gz.create_dataset("emoji.tones", keywords=False, image_size=32)
    counts = np.bincount(tones.labels.numpy())
    assert len(counts) == 6 and len(set(counts)) == 1 and counts[0] >= 120  # ~135 bases × (untoned + 5 tones)
    assert tones[0]["image"].shape == (3, 32, 32) and tones.class_names[3] == "medium"
    assert (tones.attributes[:, :6].argmax(1) == tones.labels).all()
    assert all(emoji.tone_from_name(c[0]) == emoji.TONES[int(y)] for c, y in zip(tones.captions, tones.labels))
    pairs = gz.create_dataset("emoji.pairs", keywords=False, image_size=32, split="test")
    item = pairs[0]
    assert item["image"].shape == (3, 32, 32) and item["image_b"].shape == (1, 32, 32) and len(pairs) > 50
    assert float(item["image_b"].mean()) > 0  # black line art on white: mostly white


def test_emoji_noto_with_cldr_keywords() -> None:
    _font_or_skip("fonts-noto-color-emoji", r"NotoColorEmoji.*\.ttf")
    try:
        emoji.load_cldr(None)
    except gz.DatasetUnavailableError:
        pytest.skip("needs the Debian package unicode-cldr-core")
    ds = gz.create_dataset("emoji.noto", image_size=16)
    assert len(ds) > 3500 and ds.bundle().validate().images_b is None
    captions = dict(zip((c[0] for c in ds.captions), ds.captions))
    assert captions["cat face"] == ["cat face", "cat", "face", "pet"]
    assert "woman cook" in captions and ds.attributes.sum(0)[emoji.ATTRIBUTE_NAMES.index("gender=woman")] > 400
    assert "domain" not in ds[0] and ds.domains is None  # groups only on request
    grouped = gz.create_dataset("emoji.noto", image_size=16, category=True)
    assert grouped.domain_names == emoji.DOMAIN_NAMES
    by_name = {c[0]: emoji.DOMAIN_NAMES[int(d)] for c, d in zip(grouped.captions, grouped.domains)}
    assert by_name["cat face"] == "Animals & Nature" and by_name["woman cook"] == "Smileys & People"
    counts = torch.bincount(grouped.domains, minlength=len(emoji.DOMAIN_NAMES))
    assert (counts[:len(emoji.CATEGORIES)] > 50).all() and counts[-1] < len(grouped) // 5  # few unlisted
    assert int(grouped[0]["domain"]) == int(grouped.domains[0])


# -- Jane Austen ------------------------------------------------------------------------------------------------------

BOOK_LINES = """PRIDE AND PREJUDICE

By Jane Austen



Chapter 1


It is a truth universally acknowledged.  Mr. Bennet agreed, and Mrs.
Bennet was pleased with Dr. Jones of St. Albans.

"Is it?" said she.  "I think so." He nodded. What
_is_ it?--Nobody knew! The letter came from F. W. Smith.

CHAPTER II

* * * * *

Chapter the last begins. "Oh!" Then silence.

THE END

Not a sentence of the novel.
""".splitlines()


def test_sentence_splitter_handles_abbreviations_quotes_and_headings() -> None:
    assert austen.book_sentences(BOOK_LINES) == [
        "It is a truth universally acknowledged.",
        "Mr. Bennet agreed, and Mrs. Bennet was pleased with Dr. Jones of St. Albans.",
        '"Is it?" said she.', '"I think so."', "He nodded.", "What is it?", "Nobody knew!",
        "The letter came from F. W. Smith.",
        "Chapter the last begins.", '"Oh!"', "Then silence.",
    ]


def test_missing_austen_says_how_to_fetch_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(gz.DatasetUnavailableError, match="apt-get download r-cran-janeaustenr.*dpkg-deb -x"):
        gz.create_dataset("austen.novels", root=str(tmp_path))
    monkeypatch.setenv("GANZOO_DATA_DIR", str(tmp_path / "data"))
    assert austen.default_roots()[0] == tmp_path / "data" / "janeaustenr"
    rdx = tmp_path / "x" / austen._RDX
    rdx.parent.mkdir(parents=True)
    rdx.write_bytes(b"not gzip")
    if importlib.util.find_spec("rdata") is not None:
        with pytest.raises(DataError, match="Rdata.rdx.*fetch it again"):
            gz.create_dataset("austen.emma", root=str(tmp_path / "x"))
    monkeypatch.setitem(sys.modules, "rdata", None)
    with pytest.raises(gz.DatasetUnavailableError, match="pip install rdata"):
        gz.create_dataset("austen.emma", root=str(tmp_path / "x"))
    with pytest.raises(gz.ConfigError, match="books must be some of"):
        gz.create_dataset("austen.novels", books=["ulysses"])


def _austen_or_skip() -> None:
    pytest.importorskip("rdata", reason="needs 'pip install rdata'")
    try:
        austen.find_rdx(None)
    except gz.DatasetUnavailableError:
        pytest.skip("needs the janeaustenr data: run scripts/fetch_austen.sh")


EXPECTED = {"sensesensibility": 4963, "prideprejudice": 6372, "mansfieldpark": 7125, "emma": 8050,
            "northangerabbey": 3598, "persuasion": 3438}  # regex-split counts measured in the data survey


def test_austen_novels_from_the_debian_package(tmp_path: Path) -> None:
    _austen_or_skip()
    corpus = gz.create_dataset("austen.novels")
    bundle = corpus.bundle()
    assert list(corpus.doc_names) == list(austen.BOOKS) and 31_000 < len(corpus) < 36_000
    counts = dict(zip(corpus.doc_names, np.bincount(corpus.docs)))
    for book, expected in EXPECTED.items():
        assert abs(counts[book] - expected) < 0.15 * expected, book
    assert np.all(np.diff(corpus.docs) >= 0)  # books stay whole and in order
    assert corpus.document("emma")[0].startswith("Emma Woodhouse, handsome, clever, and rich")
    assert corpus.document("prideprejudice")[0].startswith("It is a truth universally acknowledged")
    train, test = bundle.splits["train"], bundle.splits["test"]
    assert len(train) + len(test) == len(corpus) and not set(train) & set(test)
    for doc in range(6):  # the test block is the end of each book
        in_doc = np.flatnonzero(corpus.docs == doc)
        assert np.array_equal(test[np.isin(test, in_doc)], in_doc[len(in_doc) - np.isin(test, in_doc).sum():])
    emma_test = gz.create_dataset("austen.emma", split="test")
    assert emma_test[len(emma_test) - 1] == corpus.document("emma")[-1] and set(emma_test.docs.tolist()) == {0}
    path = write_h5(bundle, tmp_path / "austen.h5", name="austen.novels", source="r-cran-janeaustenr")
    with open_h5(path) as f:
        assert f["sentences/text"].asstr()[1000] == corpus[1000] and len(f["sentences/doc"]) == len(corpus)
