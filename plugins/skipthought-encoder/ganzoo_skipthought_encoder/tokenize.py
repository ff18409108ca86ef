"""Word tokenisation as the original skip-thoughts encoder does it, without NLTK.

The original (``skipthoughts.preprocess``) splits each text into sentences with NLTK's punkt model, runs
``nltk.word_tokenize`` (the Penn Treebank rules) on each sentence and joins the tokens with spaces; words are not
lower-cased. This module reproduces the Treebank rules that matter for ordinary English text:

- opening double quotes become ``````, closing ones ``''`` (both straight ``"`` and curly quotes); single quotes
  that open or close a quotation are split off as ``'`` (as NLTK's ``NLTKWordTokenizer``), clitics are not;
- punctuation ``, ; : @ # $ % & ? ! ( ) [ ] { } < >`` and ``--`` / ``...`` are tokens of their own; a comma or colon
  between digits (``1,000``, ``10:30``) stays inside the number;
- a sentence-final period is split off (sentences are found with a simple rule: ``.!?`` then a space and a capital);
- clitics are split as in the Treebank: ``don't`` → ``do n't``, ``can't`` → ``ca n't``, ``I'm`` → ``I 'm``,
  ``'s 're 've 'll 'd`` likewise; ``cannot`` → ``can not``.

What is not reproduced: punkt's learned abbreviation list (only ``Mr. Mrs. Dr. St.`` and single initials are known),
and rare Treebank cases (``gonna``, ``'tis``).
"""

from __future__ import annotations

import re

_ABBREVIATIONS = frozenset({"Mr", "Mrs", "Ms", "Dr", "St", "Jr", "Sr", "Prof", "Messrs", "Esq", "Col", "Capt",
                            "Rev", "Gen", "Lt", "vs", "etc", "e.g", "i.e"})
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s+[\"'“‘(\[]*[A-Z0-9])")

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # opening quotes: at the start, or after a space / bracket
    (re.compile(r'^["“]'), " `` "),
    (re.compile(r'(?<=[\s(\[{<])["“]'), " `` "),
    (re.compile(r"[“]"), " `` "),
    # ellipsis and dashes
    (re.compile(r"\.\.\.|…"), " ... "),
    (re.compile(r"--+|—|–"), " -- "),
    # punctuation that is always its own token
    (re.compile(r"([;@#$%&?!(){}\[\]<>])"), r" \1 "),
    # commas and colons, except inside numbers
    (re.compile(r"([,:])(?!\d)"), r" \1 "),
    (re.compile(r"(?<!\d)([,:])"), r" \1 "),
    # closing quotes
    (re.compile(r'["”]'), " '' "),
    # single quotes that open a quotation (not a clitic such as 're) or close one
    (re.compile(r"(?i)(^|(?<=[\s(\[{<]))'(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)"), " ' "),
    (re.compile(r"(?<=\w)'(?=\s|$)"), " ' "),
    # clitics (Treebank CONTRACTIONS and ENDING_QUOTES rules)
    (re.compile(r"(?i)\b(can)(not)\b"), r"\1 \2"),
    (re.compile(r"(?i)(\w)(n't)\b"), r"\1 \2"),
    (re.compile(r"(?i)(\w)('(?:s|m|d|ll|re|ve))\b"), r"\1 \2"),
    (re.compile(r"(?i)(\w)(’(?:s|m|d|ll|re|ve))\b"), r"\1 \2"),
    (re.compile(r"(?i)(\w)(n’t)\b"), r"\1 \2"),
)


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``: a break after ``.!?`` (and closing quotes) followed by a space and a capital or digit,
    except after a known abbreviation or a single capital initial."""
    out, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        before = text[start:m.start()].split()
        last = before[-1].strip("\"'“‘([") if before else ""
        if m.group(0) == "." and (last in _ABBREVIATIONS or re.fullmatch(r"[A-Z]", last)):
            continue
        out.append(text[start:m.end()].strip())
        start = m.end()
    out.append(text[start:].strip())
    return [s for s in out if s]


def _tokenize_sentence(sentence: str) -> list[str]:
    text = sentence
    for pattern, repl in _RULES:
        text = pattern.sub(repl, text)
    tokens = text.split()
    if tokens:  # split a sentence-final period (possibly before closing quotes / brackets)
        for i in range(len(tokens) - 1, -1, -1):
            if tokens[i] in ("''", "'", ")", "]", "}"):
                continue
            word = tokens[i]
            if len(word) > 1 and word.endswith(".") and not word.endswith(".."):
                tokens[i:i + 1] = [word[:-1], "."]
            break
    return tokens


def word_tokenize(text: str) -> list[str]:
    """Treebank-style word tokens of ``text`` (sentence-split first, as NLTK's ``word_tokenize`` does)."""
    return [t for sentence in split_sentences(text) for t in _tokenize_sentence(sentence)]


def preprocess(text: str) -> str:
    """The original's ``preprocess``: the tokens of ``text`` joined by single spaces (no lower-casing)."""
    return " ".join(word_tokenize(text))
