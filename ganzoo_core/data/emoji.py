"""Built-in datasets ``emoji.noto``, ``emoji.symbola``, ``emoji.pairs``, ``emoji.tones``: emoji rendered from Debian fonts.

- Fonts: Noto Color Emoji (``fonts-noto-color-emoji``, CBDT colour bitmaps, drawn at their native 109 px) and Symbola
  (``fonts-symbola``, monochrome line art): ``noto_font`` / ``symbola_font``, else the installed package (``dpkg -L``),
  else the folder ``ganzoo data fetch emoji_fonts`` unpacks the fonts and the CLDR files into (no root needed).
- Which emoji: every fully-qualified emoji of the PyPI ``emoji`` package that the font draws as one non-empty glyph
  (Noto: sequences it cannot join are skipped; Symbola: single code points only, after dropping U+FE0F).
- Images: the glyph is cropped to its bounding box, centred on a square of the ``background`` colour (default
  white: Noto's colour glyph composited on white, Symbola's line art black on white; ``"black"`` inverts that),
  and resized with antialiasing (Lanczos) to ``image_size``. Noto images are RGB, Symbola images grey.
- Captions: the ``emoji`` package name, then the CLDR text-to-speech name and keyword phrases of Debian
  ``unicode-cldr-core`` (``common/annotations/en.xml`` and ``annotationsDerived/en.xml``) when ``keywords=True``;
  the CLDR ``common`` folder is ``cldr_dir``, else the installed package's, else the fetched one.
- Attributes (one-hot blocks): ``tone=`` none / 5 skin tones (from the first modifier code point), ``gender=`` man /
  woman / neither (from the name's words). Labels: the tone index. Splits: an emoji is in ``test`` when the CRC-32
  of its untoned form is 0 mod 10, so every tone of one base lands in the same split on every machine.
- Categories (``category=True``): items carry ``"domain"``, the emoji's CLDR group (``CATEGORIES``: Smileys & People
  ... Flags) from ``common/properties/labels.txt``, looked up by the sequence, then its untoned form, then its first
  code point; emoji newer than that file are ``"unlisted"`` (the last domain name).
- ``emoji.pairs``: ``images`` = Noto, ``images_b`` = Symbola, for single code points both fonts draw.
- ``emoji.tones``: the single-code-point bases that have all five toned forms, each untoned + 5 tones (Noto).
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ganzoo_core import validators as v
from ganzoo_core._debian import debian_files
from ganzoo_core._registry import register_dataset
from ganzoo_core.data.fetch import fetch_command, fetched_files, searched
from ganzoo_core.data.schema import ArrayBundle, BundleDataset, DataError
from ganzoo_core.errors import DatasetUnavailableError

TONES = ("none", "light", "medium-light", "medium", "medium-dark", "dark")
MODIFIERS = {chr(0x1F3FB + k): tone for k, tone in enumerate(TONES[1:])}  # U+1F3FB..U+1F3FF
GENDERS = ("man", "woman", "neither")
CATEGORIES = ("Smileys & People", "Animals & Nature", "Food & Drink", "Travel & Places", "Activities", "Objects",
              "Symbols", "Flags")  # the CLDR emoji groups of common/properties/labels.txt, in its order
UNLISTED = "unlisted"  # an emoji that file does not list (newer than the installed CLDR)
DOMAIN_NAMES = (*CATEGORIES, UNLISTED)  # the "domain" of items with category=True
ATTRIBUTE_NAMES: tuple[str, ...] = (*(f"tone={t}" for t in TONES), *(f"gender={g}" for g in GENDERS))
VS16 = "\ufe0f"
NATIVE_SIZE = 109  # Noto Color Emoji's only bitmap strike
_TONE_IN_NAME = re.compile(r"(medium-light|medium-dark|light|medium|dark)[ _]skin[ _]tone")
_BACKGROUNDS = {"white": 255, "black": 0}
FETCHED = "emoji_fonts"  # the name 'ganzoo data fetch' fetches the fonts and the CLDR files under
FETCH = fetch_command(FETCHED)


# -- what an emoji is -------------------------------------------------------------------------------------------------


def tone_of(text: str) -> str:
    """The skin tone of an emoji from its code points: the first modifier's, or ``"none"``."""
    return next((MODIFIERS[c] for c in text if c in MODIFIERS), "none")


def tone_from_name(name: str) -> str:
    """The skin tone a name states (``"thumbs up: medium skin tone"`` → ``"medium"``; the first one), or ``"none"``."""
    found = _TONE_IN_NAME.search(name.lower())
    return found.group(1) if found else "none"


def gender_of(name: str) -> str:
    """``"man"`` / ``"woman"`` when the name's words say man/men or woman/women (not both), else ``"neither"``."""
    words = set(re.split(r"[\s_:,]+", name.lower()))
    male, female = bool(words & {"man", "men"}), bool(words & {"woman", "women"})
    return "man" if male and not female else "woman" if female and not male else "neither"


def base_of(text: str) -> str:
    """The emoji without tone modifiers and U+FE0F (the key of its split)."""
    return "".join(c for c in text if c not in MODIFIERS and c != VS16)


def attribute_row(text: str, name: str) -> np.ndarray:
    keys = {f"tone={tone_of(text)}", f"gender={gender_of(name)}"}
    return np.array([n in keys for n in ATTRIBUTE_NAMES], np.uint8)


def readable_name(short: str) -> str:
    """``":man_technologist_dark_skin_tone:"`` → ``"man technologist dark skin tone"``."""
    return short.strip(":").replace("_", " ")


def fully_qualified() -> list[tuple[str, str]]:
    """``(emoji, name)`` of every fully-qualified emoji of the PyPI ``emoji`` package, in its order."""
    try:
        import emoji
    except ModuleNotFoundError:
        raise DatasetUnavailableError("the emoji datasets need the emoji names: 'pip install emoji'") from None
    status = emoji.STATUS["fully_qualified"]
    return [(e, readable_name(d["en"])) for e, d in emoji.EMOJI_DATA.items() if d["status"] == status]


# -- CLDR annotations -------------------------------------------------------------------------------------------------


@attrs.frozen
class Annotation:
    tts: str | None
    keywords: tuple[str, ...]


def parse_cldr(path: str | Path) -> dict[str, Annotation]:
    """CLDR annotations of one XML file, keyed by the emoji without U+FE0F."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as err:
        raise DataError(f"cannot read CLDR annotations {str(path)!r}: {err}") from err
    tts: dict[str, str] = {}
    keywords: dict[str, tuple[str, ...]] = {}
    for node in root.iter("annotation"):
        key, text = node.get("cp", "").replace(VS16, ""), (node.text or "").strip()
        if node.get("type") == "tts":
            tts[key] = text
        else:
            keywords[key] = tuple(k.strip() for k in text.split("|") if k.strip())
    return {k: Annotation(tts.get(k), keywords.get(k, ())) for k in tts.keys() | keywords.keys()}


def load_cldr(cldr_dir: str | None) -> dict[str, Annotation]:
    """English annotations (and derived ones, for toned and joined sequences) of a CLDR ``common`` folder."""
    common = Path(cldr_dir) if cldr_dir else _cldr_common()
    files = [common / "annotations" / "en.xml", common / "annotationsDerived" / "en.xml"]
    if not files[0].is_file():
        raise DatasetUnavailableError(f"no CLDR annotations at {str(files[0])!r}: pass cldr_dir=<CLDR 'common' folder>, "
                                      f"run '{FETCH}' (no root needed) or 'sudo apt-get install unicode-cldr-core', "
                                      "or pass keywords=False")
    merged: dict[str, Annotation] = {}
    for file in files:
        if file.is_file():
            merged.update(parse_cldr(file))
    return merged


def parse_cldr_labels(path: str | Path) -> dict[str, str]:
    """``{emoji (no U+FE0F): CLDR group}`` of a CLDR ``labels.txt``: lines ``[set] ; group ; subgroup`` whose set
    holds single characters, ranges ``a-b`` and ``{sequences}``."""
    table: dict[str, str] = {}
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split(";")]
        if len(fields) < 2 or not (fields[0].startswith("[") and fields[0].endswith("]")):
            raise DataError(f"{str(path)!r} line {number}: expected '[set] ; group ; subgroup', got {raw!r}")
        group, body = fields[1], fields[0][1:-1]
        if group not in CATEGORIES:
            raise DataError(f"{str(path)!r} line {number}: unknown emoji group {group!r}; expected one of "
                            f"{CATEGORIES}")
        i = 0
        while i < len(body):
            if body[i] == "{":
                end = body.index("}", i)
                table[body[i + 1:end].replace(VS16, "")] = group
                i = end + 1
            elif body[i].isspace():
                i += 1
            elif i + 2 < len(body) and body[i + 1] == "-":
                table.update((chr(cp), group) for cp in range(ord(body[i]), ord(body[i + 2]) + 1))
                i += 3
            else:
                table[body[i]] = group
                i += 1
    return table


def load_cldr_labels(cldr_dir: str | None) -> dict[str, str]:
    """The emoji groups of a CLDR ``common`` folder (default: Debian ``unicode-cldr-core``'s)."""
    path = (Path(cldr_dir) if cldr_dir else _cldr_common()) / "properties" / "labels.txt"
    if not path.is_file():
        raise DatasetUnavailableError(f"no CLDR emoji groups at {str(path)!r}: pass cldr_dir=<CLDR 'common' folder>, "
                                      f"run '{FETCH}' (no root needed) or 'sudo apt-get install unicode-cldr-core', "
                                      "or pass category=False")
    return parse_cldr_labels(path)


def category_of(text: str, table: dict[str, str]) -> str:
    """The CLDR group of an emoji: of the sequence, its untoned form, or its first code point; else ``UNLISTED``."""
    base = base_of(text)
    for key in (text.replace(VS16, ""), base, base[:1]):
        if key in table:
            return table[key]
    return UNLISTED


def _cldr_common() -> Path:
    """The CLDR ``common`` folder of the installed ``unicode-cldr-core``, else of the fetched one."""
    for files in (debian_files("unicode-cldr-core"), fetched_files(FETCHED)):
        hits = [p for p in files if p.as_posix().endswith("common/annotations/en.xml") and p.is_file()]
        if hits:
            return hits[0].parent.parent
    raise DatasetUnavailableError(f"emoji keywords and groups need the CLDR files of Debian unicode-cldr-core, not "
                                  f"installed nor in {searched(FETCHED)}: run '{FETCH}' (no root needed) or 'sudo "
                                  "apt-get install unicode-cldr-core', or pass cldr_dir=<CLDR 'common' folder>, or "
                                  "keywords=False and category=False (names only, no groups)")


def captions_for(text: str, name: str, notes: dict[str, Annotation]) -> list[str]:
    """The name, then the CLDR spoken name and keywords, each unless its words are already there."""
    note = notes.get(text.replace(VS16, ""), Annotation(None, ()))
    out: list[str] = []
    seen: set[str] = set()
    for phrase in (name, note.tts or "", *note.keywords):
        key = " ".join(re.findall(r"\w+", phrase.lower()))
        if key and key not in seen:
            seen.add(key)
            out.append(phrase)
    return out


# -- fonts and rendering ----------------------------------------------------------------------------------------------


def find_font(package: str, pattern: str, override: str | None, option: str) -> Path:
    """The font file ``override``, else the one of Debian ``package`` whose name matches ``pattern``: installed, else
    fetched (``ganzoo data fetch emoji_fonts``)."""
    if override is not None:
        if not Path(override).is_file():
            raise DatasetUnavailableError(f"{option}={override!r} is not a file")
        return Path(override)
    for files in (debian_files(package), fetched_files(FETCHED)):
        hits = sorted(p for p in files if re.fullmatch(pattern, p.name) and p.is_file())
        if hits:
            return hits[0]
    raise DatasetUnavailableError(f"font of Debian {package} not found (not installed, not in {searched(FETCHED)}): "
                                  f"run '{FETCH}' (no root needed) or 'sudo apt-get install {package}', or give the "
                                  f"emoji dataset {option}=<font file>")


@functools.lru_cache(maxsize=8)
def _font(path: str) -> ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype(path, NATIVE_SIZE)
    except OSError as err:
        raise DataError(f"cannot load font {path!r}: {err}; Noto Color Emoji needs Pillow built with FreeType "
                        "and PNG support") from err


def _box(font: ImageFont.FreeTypeFont, text: str) -> tuple[int, int, int, int]:
    left, top, right, bottom = font.getbbox(text)
    return int(left), int(top), int(right), int(bottom)


@functools.lru_cache(maxsize=8)
def _glyph_width(font_path: str) -> int:
    box = _box(_font(font_path), "\U0001F600")  # grinning face: one glyph in every emoji font
    return box[2] - box[0]


def render_color(text: str, font_path: str) -> Image.Image | None:
    """RGBA glyph of ``text`` cropped to its alpha box; None if empty or not drawn as a single glyph."""
    font = _font(font_path)
    box = _box(font, text)
    if box[2] - box[0] > _glyph_width(font_path) * 1.25 or box[3] <= box[1]:
        return None  # a sequence the font cannot join falls apart into several glyphs
    im = Image.new("RGBA", (box[2] - box[0], box[3] - box[1]), (0, 0, 0, 0))
    ImageDraw.Draw(im).text((-box[0], -box[1]), text, font=font, embedded_color=True)
    alpha_box = im.getchannel("A").getbbox()
    return im.crop(alpha_box) if alpha_box else None


def _ink(text: str, font: ImageFont.FreeTypeFont) -> Image.Image | None:
    box = _box(font, text)
    if box[2] <= box[0] or box[3] <= box[1]:
        return None
    im = Image.new("L", (box[2] - box[0], box[3] - box[1]), 0)
    ImageDraw.Draw(im).text((-box[0], -box[1]), text, font=font, fill=255)
    ink_box = im.getbbox()
    return im.crop(ink_box) if ink_box else None


@functools.lru_cache(maxsize=8)
def _notdef(font_path: str) -> bytes:
    missing = _ink("\U0010fffd", _font(font_path))  # a private-use code point no font draws
    return b"" if missing is None else missing.tobytes()


def render_line(text: str, font_path: str) -> Image.Image | None:
    """L mask (255 = ink) of a single code point cropped to its ink; None if the font lacks it (draws .notdef)."""
    if len(text) != 1:
        return None
    glyph = _ink(text, _font(font_path))
    return None if glyph is None or glyph.tobytes() == _notdef(font_path) else glyph


def fit_square(glyph: Image.Image, size: int, background: str, margin: float) -> np.ndarray:
    """``glyph`` flattened onto ``background``, centred on a square, resized to ``size``: (size, size, C) uint8."""
    grey = _BACKGROUNDS[background]
    if glyph.mode == "RGBA":
        flat = Image.new("RGBA", glyph.size, (grey, grey, grey, 255))
        flat = Image.alpha_composite(flat, glyph).convert("RGB")
        fill: Any = (grey, grey, grey)
    else:  # an ink mask: dark ink on white, light ink on black
        flat = Image.fromarray(np.asarray(glyph) if grey == 0 else 255 - np.asarray(glyph))
        fill = grey
    side = round(max(glyph.size) * (1 + 2 * margin))
    square = Image.new(flat.mode, (side, side), fill)
    square.paste(flat, ((side - flat.width) // 2, (side - flat.height) // 2))
    out = np.asarray(square.resize((size, size), Image.Resampling.LANCZOS))
    return out if out.ndim == 3 else out[..., None]


# -- the four sets ----------------------------------------------------------------------------------------------------


def _single(text: str) -> bool:
    return len(text.replace(VS16, "")) == 1


def _toned_bases(emojis: list[tuple[str, str]]) -> list[str]:
    """Untoned forms (as listed) of the single-code-point bases whose five toned forms are all listed."""
    listed = {e for e, _ in emojis}
    return [e for e, _ in emojis if _single(e) and tone_of(e) == "none"
            and all(base_of(e) + m in listed for m in MODIFIERS)]


def _drawn(glyphs: list[Image.Image | None]) -> list[Image.Image] | None:
    """The glyphs if every one was drawn, else None."""
    kept = [g for g in glyphs if g is not None]
    return kept if len(kept) == len(glyphs) else None


def _selection(cfg: EmojiCfg, emojis: list[tuple[str, str]]) -> Iterator[tuple[str, str, list[Image.Image]]]:
    """``(emoji, name, glyphs)`` of the set ``cfg.source``; one glyph, two for pairs."""
    noto = _noto(cfg) if cfg.source != "symbola" else ""
    symbola = _symbola(cfg) if cfg.source in ("symbola", "pairs") else ""
    if cfg.source == "tones":
        names = dict(emojis)
        for base in _toned_bases(emojis):
            group = [base, *(base_of(base) + m for m in MODIFIERS)]
            glyphs = _drawn([render_color(e, noto) for e in group])
            if glyphs is not None:  # all six or none: the tone classes stay balanced
                yield from ((e, names[e], [g]) for e, g in zip(group, glyphs))
        return
    for text, name in emojis:
        if cfg.source != "noto" and not _single(text):
            continue
        drawn = _drawn([*([render_color(text, noto)] if cfg.source in ("noto", "pairs") else []),
                        *([render_line(text.replace(VS16, ""), symbola)] if cfg.source in ("symbola", "pairs") else [])])
        if drawn is not None:
            yield text, name, drawn


def _noto(cfg: EmojiCfg) -> str:
    return str(find_font("fonts-noto-color-emoji", r"NotoColorEmoji.*\.ttf", cfg.noto_font, "noto_font"))


def _symbola(cfg: EmojiCfg) -> str:
    return str(find_font("fonts-symbola", r"Symbola.*\.ttf", cfg.symbola_font, "symbola_font"))


def make_emoji(cfg: EmojiCfg) -> ArrayBundle:
    """The bundle of set ``cfg.source``: images (and ``images_b`` for pairs), labels = tone, attributes, captions."""
    emojis = fully_qualified()
    notes = load_cldr(cfg.cldr_dir) if cfg.keywords else {}
    groups = load_cldr_labels(cfg.cldr_dir) if cfg.category else None
    texts, images, images_b, captions, rows = [], [], [], [], []
    for text, name, glyphs in _selection(cfg, emojis):
        texts.append(text)
        images.append(fit_square(glyphs[0], cfg.image_size, cfg.background, cfg.margin))
        if len(glyphs) == 2:
            images_b.append(fit_square(glyphs[1], cfg.image_size, cfg.background, cfg.margin))
        captions.append(captions_for(text, name, notes))
        rows.append(attribute_row(text, name))
    if not texts:
        raise DataError(f"emoji.{cfg.source}: the fonts drew no emoji at all; check noto_font / symbola_font")
    test = np.array([zlib.crc32(base_of(t).encode()) % 10 == 0 for t in texts])
    return ArrayBundle(
        images=np.stack(images), images_b=np.stack(images_b) if images_b else None,
        labels=np.array([TONES.index(tone_of(t)) for t in texts], np.int64), label_names=TONES,
        attributes=np.stack(rows), attribute_names=ATTRIBUTE_NAMES, captions=captions,
        domains=None if groups is None else np.array([DOMAIN_NAMES.index(category_of(t, groups)) for t in texts],
                                                     np.int64),
        domain_names=DOMAIN_NAMES if groups is not None else (),
        splits={"train": np.flatnonzero(~test), "test": np.flatnonzero(test)},
    ).validate(f"emoji.{cfg.source}")


# -- registration -----------------------------------------------------------------------------------------------------


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


@attrs.frozen(kw_only=True)
class EmojiCfg:
    source: str = attrs.field(default="noto", validator=attrs.validators.in_(("noto", "symbola", "pairs", "tones")))
    image_size: int = attrs.field(default=64, validator=attrs.validators.ge(8))
    background: str = attrs.field(default="white", validator=attrs.validators.in_(tuple(_BACKGROUNDS)))
    margin: float = attrs.field(default=0.0, validator=v.non_negative)  # border, fraction of the glyph side
    keywords: bool = True  # CLDR keywords in the captions (needs unicode-cldr-core); False: names only
    split: str = attrs.field(default="all", validator=attrs.validators.in_(("all", "train", "test")))
    noto_font: str | None = attrs.field(default=None, converter=_opt_str)  # NotoColorEmoji.ttf; None: dpkg -L, fetched
    symbola_font: str | None = attrs.field(default=None, converter=_opt_str)  # Symbola*.ttf; None: dpkg -L, fetched
    cldr_dir: str | None = attrs.field(default=None, converter=_opt_str)  # CLDR 'common' folder; None: dpkg -L, fetched
    encoder: str | None = attrs.field(default=None, converter=_opt_str)  # text encoder: items carry "text_emb"
    wrong_image: bool = False  # items carry "image_wrong", an emoji with other captions (matching-aware D)
    caption_average: int = attrs.field(default=1, validator=v.size)  # captions averaged into text_emb (CAPTION_AVERAGE)
    category: bool = False  # items carry "domain": the CLDR emoji group (index into DOMAIN_NAMES)


@register_dataset("emoji", variants={s: EmojiCfg(source=s) for s in ("noto", "symbola", "pairs", "tones")})
def emoji_dataset(cfg: EmojiCfg) -> BundleDataset:
    """Emoji rendered from Debian fonts (Noto Color Emoji, Symbola) with names, CLDR keywords, tone and gender."""
    return BundleDataset(make_emoji(cfg), cfg.split, where=f"emoji.{cfg.source}", encoder=cfg.encoder,
                         wrong_image=cfg.wrong_image, caption_average=cfg.caption_average)
