"""Built-in datasets ``austen.novels`` and ``austen.<book>``: Jane Austen's six novels as an ordered sentence corpus.

The text is the R package janeaustenr (MIT), read from the lazy-load database of the Debian package
``r-cran-janeaustenr`` with PyPI ``rdata``. The .deb is unpacked, not installed (installing pulls in all of R): run
``ganzoo data fetch austen`` (or ``scripts/fetch_austen.sh``, or the commands ``unavailable_message`` prints).
``root`` points at the unpacked folder; without it the installed package (``dpkg -L``), then
``$GANZOO_DATA_DIR/janeaustenr`` and ``~/.cache/ganzoo/janeaustenr`` are searched.

Lines are joined into paragraphs (blank lines separate them); the title page before the first chapter, chapter and
volume headings, ``* * *`` separators and everything from "THE END" / "Finis" on are dropped; ``_italics_`` lose
their underscores. A sentence ends at ``.`` ``!`` ``?`` (and any closing quotes) followed by a space or a dash
(``--``) and a capital (after any opening quote), except after Mr. Mrs. Dr. St. and the like or a single initial.
Sentences keep the books' order (publication order, then page order); the test split is the last ``test_fraction``
of each book.
"""

from __future__ import annotations

import gzip
import re
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from torch.utils.data import Dataset

from ganzoo_core import validators as v
from ganzoo_core._debian import debian_files
from ganzoo_core._registry import register_dataset
from ganzoo_core.data.fetch import fetch_command, fetched_folders
from ganzoo_core.data.schema import ArrayBundle, DataError
from ganzoo_core.errors import DatasetUnavailableError

BOOKS = ("sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion")
TITLES = dict(zip(BOOKS, ("Sense and Sensibility", "Pride and Prejudice", "Mansfield Park", "Emma",
                          "Northanger Abbey", "Persuasion")))
ABBREVIATIONS = frozenset({"Mr", "Mrs", "Ms", "Dr", "St", "Messrs", "Esq", "Col", "Capt", "Rev", "Gen", "Lt", "Vol"})
_HEADING = re.compile(r"(chapter|volume)\s+([ivxlc]+|\d+)\.?|\(?end of volume [a-z]+\.?\)?|[*\s]+", re.I)
_END = re.compile(r"(the end|finis|a note on the text)\.?", re.I)
_BOUNDARY = re.compile(r"([.!?]+)([\"'’”)\]]*)(?:\s+|--)(?=[\"'‘“(\[]*[A-Z])")
_SHORT_WORD = re.compile(r"(?:^|\W)(\w{1,6})$")  # a word of at most 6 letters at the end
_RDX = "janeaustenr/data/Rdata.rdx"


# -- sentences --------------------------------------------------------------------------------------------------------


def paragraphs(lines: Sequence[str]) -> list[str]:
    """Lines joined into paragraphs (blank lines separate them), whitespace collapsed."""
    out, current = [], []
    for line in [*lines, ""]:
        if line.strip():
            current.append(line.strip())
        elif current:
            out.append(" ".join(" ".join(current).split()))
            current = []
    return out


def body(paras: Sequence[str]) -> list[str]:
    """The paragraphs of the story: after the first chapter heading, without headings, before the end mark."""
    starts = [i for i, p in enumerate(paras) if p.lower().startswith("chapter") and _HEADING.fullmatch(p)]
    out = []
    for p in paras[starts[0] + 1 if starts else 0:]:
        if _END.fullmatch(p):
            break
        if not _HEADING.fullmatch(p):
            out.append(re.sub(r"_", "", p))  # _italics_ → italics
    return out


def _is_abbreviation(text: str, end: int) -> bool:
    """Whether the word ending at ``end`` is an abbreviation or an initial (any capital but I)."""
    word = _SHORT_WORD.search(text[max(0, end - 8):end])  # abbreviations are short: look at 8 characters only
    return word is not None and (word.group(1) in ABBREVIATIONS or re.fullmatch(r"[A-HJ-Z]", word.group(1)) is not None)


def split_sentences(paragraph: str) -> list[str]:
    """The sentences of one paragraph (see the module docstring for the rule)."""
    out, start = [], 0
    for m in _BOUNDARY.finditer(paragraph):
        if m.group(1) == "." and not m.group(2) and _is_abbreviation(paragraph, m.start()):
            continue
        out.append(paragraph[start:m.end(2)].strip())
        start = m.end()
    out.append(paragraph[start:].strip())
    return [s for s in out if s]


def book_sentences(lines: Sequence[str]) -> list[str]:
    """The ordered sentences of one book's lines."""
    return [s for p in body(paragraphs(lines)) for s in split_sentences(p)]


# -- the R database ---------------------------------------------------------------------------------------------------


def default_roots() -> list[Path]:
    """``$GANZOO_DATA_DIR/janeaustenr`` (when set), ``~/.cache/ganzoo/janeaustenr``: where ``ganzoo data fetch austen``
    unpacks the package."""
    return fetched_folders("austen")


def unavailable_message(where: str) -> str:
    dest = default_roots()[0]
    return (f"the Jane Austen novels (Debian r-cran-janeaustenr) were not found {where}; fetch them with "
            f"'{fetch_command('austen')}' (no root needed) or: cd \"$(mktemp -d)\" && apt-get download "
            f"r-cran-janeaustenr && mkdir -p {dest} && dpkg-deb -x r-cran-janeaustenr_*.deb {dest} (do not apt-get "
            "install it: that pulls in all of R), or pass root=<folder holding the unpacked package>")


def find_rdx(root: str | None) -> Path:
    """The ``janeaustenr/data/Rdata.rdx`` under ``root``; without it, of the installed package, else under a
    default folder."""
    if root is None:
        installed = [p for p in debian_files("r-cran-janeaustenr") if p.as_posix().endswith(_RDX) and p.is_file()]
        if installed:
            return installed[0]
    roots = [Path(root)] if root is not None else default_roots()
    for folder in roots:
        hits = sorted(folder.glob(f"**/{_RDX}")) if folder.is_dir() else []
        if hits:
            return hits[0]
    where = " or ".join(repr(str(r)) for r in roots)
    raise DatasetUnavailableError(unavailable_message(f"in {where}" if root is not None else
                                                      f"in the installed package or in {where}"))


def _rdata() -> Any:
    try:
        import rdata
    except ModuleNotFoundError:
        raise DatasetUnavailableError("reading janeaustenr's R database needs 'pip install rdata'") from None
    return rdata


def _unserialize(rdata: Any, raw: bytes, where: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Unknown file type: assumed RDS": lazy-load entries are RDS
        try:
            return rdata.conversion.convert(rdata.parser.parse_data(raw))
        except Exception as err:  # rdata raises many types on bad input
            raise DataError(f"{where}: not a readable R serialization ({type(err).__name__}: {err})") from err


def read_books(rdx: Path, names: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Book name → lines (of ``names``, default all), from an R lazy-load database (``Rdata.rdx`` index +
    ``Rdata.rdb`` records)."""
    rdata, rdb = _rdata(), rdx.with_suffix(".rdb")
    try:
        index = _unserialize(rdata, gzip.decompress(rdx.read_bytes()), str(rdx))["variables"]
        data = rdb.read_bytes()
        return {str(name): [str(line) for line in _unserialize(
                    rdata, zlib.decompress(data[int(at) + 4:int(at) + int(size)]), f"{rdb}:{name}")]
                for name, (at, size) in index.items() if names is None or str(name) in names}
    except (OSError, EOFError, zlib.error, KeyError, TypeError, ValueError) as err:
        raise DataError(f"cannot read the janeaustenr database {str(rdx)!r} ({type(err).__name__}: {err}); it may be "
                        "truncated: fetch it again with "
                        f"'{fetch_command('austen')} --force'") from err


def make_corpus(books: Sequence[str], root: str | None, test_fraction: float) -> ArrayBundle:
    """The sentences of ``books`` in order, with their book ids and contiguous per-book train/test blocks."""
    rdx = find_rdx(root)
    lines = read_books(rdx, books)
    missing = [b for b in books if b not in lines]
    if missing:
        raise DataError(f"{str(rdx)!r} has no book(s) {missing}; it has {sorted(read_books(rdx))}")
    sentences, docs, test = [], [], []
    for doc, book in enumerate(books):
        text = book_sentences(lines[book])
        cut = len(text) - round(len(text) * test_fraction)
        sentences += text
        docs += [doc] * len(text)
        test += [False] * cut + [True] * (len(text) - cut)
    is_test = np.array(test, bool)
    return ArrayBundle(sentences=sentences, sentence_docs=np.array(docs, np.int64), doc_names=tuple(books),
                       splits={"train": np.flatnonzero(~is_test), "test": np.flatnonzero(is_test)}).validate("austen")


# -- the dataset ------------------------------------------------------------------------------------------------------


class SentenceCorpus(Dataset[str]):
    """An ordered sentence corpus: ``corpus[i]`` is sentence ``i`` (a string); ``docs[i]`` its document id."""

    def __init__(self, bundle: ArrayBundle, split: str = "all") -> None:
        if split != "all":
            index = bundle.splits[split]
            bundle = attrs.evolve(bundle, sentences=[bundle.sentences[i] for i in index],  # type: ignore[index]
                                  sentence_docs=bundle.sentence_docs[index], splits={})  # type: ignore[index]
        self._bundle = bundle
        self.sentences: list[str] = list(bundle.sentences or [])
        self.docs = np.asarray(bundle.sentence_docs, np.int64)
        self.doc_names = tuple(bundle.doc_names)

    def __len__(self) -> int:
        return len(self.sentences)

    def __getitem__(self, i: int) -> str:
        return self.sentences[i]

    def document(self, name: str) -> list[str]:
        """The sentences of one document, in order."""
        return [s for s, d in zip(self.sentences, self.docs) if self.doc_names[d] == name]

    def bundle(self) -> ArrayBundle:
        """``sentences``, ``sentence_docs``, ``doc_names`` and (for split ``"all"``) the splits."""
        return self._bundle


def _books(value: Any) -> tuple[str, ...]:
    books = (value,) if isinstance(value, str) else tuple(value)
    unknown = [b for b in books if b not in BOOKS]
    if unknown or not books:
        raise ValueError(f"books must be some of {list(BOOKS)}, got {list(books)}")
    return books


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


@attrs.frozen(kw_only=True)
class AustenCfg:
    books: tuple[str, ...] = attrs.field(default=BOOKS, converter=_books)  # in this order
    root: str | None = attrs.field(default=None, converter=_opt_str)  # the unpacked r-cran-janeaustenr folder
    split: str = attrs.field(default="all", validator=attrs.validators.in_(("all", "train", "test")))
    test_fraction: float = attrs.field(default=0.1, validator=[v.non_negative, attrs.validators.lt(1.0)])


@register_dataset("austen", variants={"novels": AustenCfg(), **{b: AustenCfg(books=(b,)) for b in BOOKS}})
def austen(cfg: AustenCfg) -> SentenceCorpus:
    """Jane Austen's six novels as an ordered sentence corpus (Debian r-cran-janeaustenr, read with rdata)."""
    return SentenceCorpus(make_corpus(cfg.books, cfg.root, cfg.test_fraction), cfg.split)
