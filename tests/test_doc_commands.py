"""Every ``ganzoo`` command line of the user docs runs, so that a doc that drifts from the code fails.

For each document (the READMEs of ``tests/test_docs.py``'s ``USER_DOCS``, and ``docs/*.md`` but
``docs/writing-plugins.md``, whose example plugin ``tests/test_writing_plugins.py`` builds and runs), its ``ganzoo``
lines run in order, in-process through ``ganzoo_core.cli.main``, in one temporary working folder, so that ``runs/x``
written by a ``train`` line is there for the ``sample`` line after it. The repository's folders that the lines read
(``experiments/``, ``benchmarks/``) are symlinked into it, and the files the lines name there must be unchanged
afterwards. Each line gets the rewrites a CI budget needs, where its command has the option: ``train`` runs 2 steps
of batch 2 with samples and a checkpoint at the end only; ``sample`` draws at most 4 images, ``eval`` the fewest its
scores take, ``bench`` times one call per row of the op with the smallest shapes, and one round (a ``--all`` line:
of one family, DCGAN; ``tests/test_bench.py`` runs ``--all`` over several baselines).

A line is skipped, with the reason printed, when it needs what this machine lacks: a CUDA device, data whose source
is not installed (``DatasetUnavailableError``), a file that only a real download provides (a dataset folder under
``data/``, files built from CUB, CelebA, facades, ..., released weights), a file that a skipped line or a line that
is not a ``ganzoo`` command would make, the network (``data fetch``), or Gradio (``demo``). Any other failure fails
the test, naming the document and the line. All documents run in one test, so that one process sees every outcome
(pytest-xdist spreads separate tests over processes); it then lists every line's outcome (and warns with the skipped
ones), and checks that no line was skipped for want of the built-in data: Animal-MNIST, the shapes, and the emoji
when their fonts are installed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
import shlex
import time
import traceback
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO
from test_docs import USER_DOCS, _code_blocks, _ganzoo_commands

DOCS = [*USER_DOCS, *(d for d in sorted(REPO.glob("docs/*.md")) if d.name != "writing-plugins.md")]

STEPS, BATCH, MAX_SAMPLES = 2, 2, 4
TRAIN_FLAGS = {"--sample-every": "0", "--checkpoint-every": "0", "--log-every": "1"}
ALL_FAMILY = "dcgan"  # what a 'bench models|roofline --all' line times here: the family with the smallest official step
BENCH_OP = "conv_bn"  # the op with the smallest benchmark shapes and no torch.compile implementation: seconds, not minutes
# inputs that only a real download provides: a dataset folder under data/ (docs/data.md), files built from datasets
# that no package index serves, and released weights
DOWNLOAD = re.compile(r"^data/|(^|/)[^/]*(birds|cub|flowers|celeba|facades|horse2zebra|coco)[^/]*$|\.(pth|t7)$", re.I)
PATHLIKE = re.compile(r"^[\w.~-]*/[\w./-]*$|^[\w./-]+\.(h5|hdf5|safetensors|pth|pt|t7|toml|png|jpe?g|json|npz|txt)$")
IMAGE = re.compile(r"\.(png|jpe?g)$", re.I)
NOT_PATHS = {"--text", "--out"}  # options whose values are not inputs


# -- reading a document ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    argv: list[str]
    expects_error: bool  # the doc shows 'ganzoo: error: ...' under it

    def __str__(self) -> str:
        return "ganzoo " + shlex.join(self.argv)


def _block_rows(text: str) -> Iterator[list[str]]:
    """The rows of each code block of a document, with ``\\`` continuations joined."""
    for block in _code_blocks(text):
        yield re.sub(r"\\\n\s*", " ", block).splitlines()


def _is_ganzoo(row: str) -> bool:
    return row.removeprefix("$ ").startswith("ganzoo ")


def doc_lines(text: str) -> list[Line]:
    """The runnable ``ganzoo`` lines of a document's code blocks, in order: ``test_docs._ganzoo_commands`` reads each
    one (a synopsis line with placeholders such as ``CHECKPOINT`` is left out); other rows are not parsed."""
    lines = []
    for rows in _block_rows(text):
        for i, row in enumerate(rows):
            if _is_ganzoo(row):
                after = rows[i + 1] if i + 1 < len(rows) else ""
                lines += [Line(argv, after.startswith("ganzoo: error:")) for argv in _ganzoo_commands(f"```\n{row}\n```\n")]
    return lines


def _other_rows(text: str) -> str:
    """The rows of the code blocks that are not ``ganzoo`` lines (``python -c ...``, shell commands, output)."""
    return "\n".join(row for rows in _block_rows(text) for row in rows if not _is_ganzoo(row))


# -- the CI-budget rewrites -----------------------------------------------------------------------------------------


def _parser_of(argv: list[str]) -> Any:
    """The argparse parser of ``argv``'s (sub-)command: ``data build ...`` → the ``build`` parser."""
    import argparse

    from ganzoo_core.cli import build_parser

    parser = build_parser()
    for word in argv:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or word not in subs[0].choices:
            break
        parser = subs[0].choices[word]
    return parser


def _value(argv: list[str], flag: str) -> str | None:
    for i, word in enumerate(argv):
        if word == flag and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
    return None


def _drop(argv: list[str], flag: str, takes_value: bool = True) -> list[str]:
    out, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word == flag:
            skip = takes_value
        elif not word.startswith(flag + "="):
            out.append(word)
    return out


def _smallest(action: Any) -> int:
    """The smallest positive integer that an option's ``type=`` accepts."""
    for n in range(1, 4097):
        try:
            (action.type or int)(str(n))
        except Exception:  # argparse types raise ArgumentTypeError or ValueError
            continue
        return n
    raise AssertionError(f"{action.option_strings} takes no integer up to 4096")


def rewrite(argv: list[str]) -> list[str]:
    """``argv`` with the CI-budget rewrites, each where the command has the option."""
    options = {s: a for a in _parser_of(argv)._actions for s in a.option_strings}
    out = list(argv)

    def put(flag: str, value: str | None = None) -> None:  # replace or add ``flag [value]``
        nonlocal out
        if flag in options:
            out = [*_drop(out, flag, takes_value=value is not None), flag, *([] if value is None else [value])]

    command = argv[0]
    if command == "train" or command.endswith("-train"):  # and plugins' train commands (stackgan-train)
        for flag in [f for f in options if f.startswith("--steps")]:  # --steps, --steps1, --steps2
            put(flag, str(STEPS))
        if "--batch-size" in options:
            put("--batch-size", str(max(BATCH, _smallest(options["--batch-size"]))))
        for flag, value in TRAIN_FLAGS.items():
            put(flag, value)
        put("--no-progress")
        out = _drop(out, "--max-minutes")
    elif command == "sample":
        put("--n", str(min(int(_value(out, "--n") or options["--n"].default), MAX_SAMPLES)))
    elif command == "eval":
        from ganzoo_core.metrics.evaluate import ScoreOptions

        put("--n", str(max(_smallest(options["--n"]), ScoreOptions().pr_k + 1)))  # precision/recall: k + 1 samples
        put("--no-progress")
    elif command == "bench":
        if argv[1:2] == ["ops"]:
            if _value(out, "--op") is None:
                put("--op", BENCH_OP)
            put("--dtype", "fp32")
        else:
            put("--batch-size", str(BATCH))
            put("--rounds", "1")
            out = _drop(out, "--min-seconds")  # no rounds beyond the one
            if "--all" in out:  # every family at its documented size (CycleGAN at 256 px: minutes a row) -> DCGAN's
                out = [*(w for w in out if w != "--all"), "--model", ALL_FAMILY]
        put("--repeat", str(_smallest(options["--repeat"])))
        put("--warmup", "0")
        put("--no-progress")
    return out


# -- the paths a line reads and writes ------------------------------------------------------------------------------


def _outputs(argv: list[str]) -> list[str]:
    outs = [v for v in [_value(argv, "--out")] if v]
    if argv[:2] == ["data", "build"]:
        outs += [w for w in argv[2:] if not w.startswith("-")][1:2]  # data build NAME OUT
    return outs


def _inputs(argv: list[str]) -> list[str]:
    """The relative paths that ``argv`` reads: its words that look like paths (with a ``/`` or a file suffix), also
    as the value of a ``key=value`` or a quoted string inside one (``source_options={"path": "birds.h5"}``)."""
    outs, found, skip_next = set(_outputs(argv)), [], False
    for word in argv:
        if skip_next or word in NOT_PATHS:
            skip_next = not skip_next
            continue
        if argv[:2] == ["data", "build"] and word in outs:
            continue
        candidates = [word, word.split("=", 1)[-1], *re.findall(r"[\"']([^\"']+)[\"']", word)]
        found += [c for c in candidates if PATHLIKE.match(c) and not c.startswith("/")]
    return list(dict.fromkeys(found))


def _made_by(path: str, outputs: dict[str, str]) -> str | None:
    return next((line for out, line in outputs.items() if path == out or path.startswith(out.rstrip("/") + "/")), None)


def _tiny_translate_inputs(argv: list[str], work: Path) -> None:
    """The input of a ``translate`` line that no earlier line made: a tiny image, or a folder of two."""
    from PIL import Image

    path = work / _parser_of(argv).parse_args(argv[1:]).input
    if path.exists():
        return
    files = [path] if IMAGE.search(path.name) else [path / "a.png", path / "b.png"]
    for i, file in enumerate(files):
        file.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 32), (200 * i, 120, 60)).save(file)


def _skip_reason(line: Line, ran: list[str], skipped: dict[str, str], others: str, work: Path) -> tuple[str, str]:
    """(kind, reason) when the line cannot run on this machine, else ("", "")."""
    import torch

    if (_value(ran, "--device") or "").startswith("cuda") and not torch.cuda.is_available():
        return "cuda", "needs a CUDA device (--device cuda) and this machine has none"
    if line.argv[:2] == ["data", "fetch"]:
        return "network", "downloads Debian packages over the network (tests/test_data_fetch.py tests the command)"
    if line.argv[0] == "demo" and importlib.util.find_spec("gradio") is None:
        return "package", "needs gradio (pip install 'ganzoo-core[demo]')"
    for path in _inputs(ran):
        if (work / path).exists():
            continue
        if (source := _made_by(path, skipped)) is not None:
            return "depends", f"needs {path}, which the skipped line '{source}' makes"
        if DOWNLOAD.search(path):
            return "download", f"needs {path}, which only a real download provides"
        if re.search(rf"(?<![\w/.-]){re.escape(path)}(?![\w/.-])", others):
            return "other-line", f"needs {path}, which a line of the doc that is not a ganzoo command makes"
    return "", ""


# -- running the documents ------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    doc: str
    line: str  # as the doc has it
    ran: str = ""  # as it ran, after the rewrites; "" when skipped
    seconds: float = 0.0
    kind: str = ""  # why it was skipped: cuda, unavailable, download, depends, other-line, network, package
    skipped: str = ""  # the reason, in words
    data: str = ""  # the dataset a train line trained on (its first output line names it)


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``$XDG_CACHE_HOME`` of the commands: ``eval``'s reference features, computed once for all documents."""
    return tmp_path_factory.mktemp("cache")


@contextlib.contextmanager
def workdir(base: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty working folder; the caches that commands write are in temporary folders too (op choices per
    document)."""
    from ganzoo_core.ops._dispatch import reload_impl_cache

    work = base / "work"
    work.mkdir(parents=True)
    with monkeypatch.context() as m:
        m.chdir(work)
        m.setenv("XDG_CACHE_HOME", str(cache_home))
        m.setenv("GANZOO_IMPL_CACHE", str(base / "impls.json"))
        reload_impl_cache()
        try:
            yield work
        finally:
            reload_impl_cache()  # the choices a 'bench ops --write-cache' line measured are not kept


def _link_repo_folders(work: Path, lines: list[Line]) -> list[Path]:
    """Symlink the repository's top-level folders that the lines read (``experiments``, ``benchmarks``) into
    ``work`` (never a folder they write, such as ``runs``); returns the repository files the lines name there."""
    written = {Path(p).parts[0] for line in lines for p in _outputs(line.argv)}
    named = []
    for path in (p for line in lines for p in _inputs(line.argv)):
        top = Path(path).parts[0]
        if top in written or not (REPO / top).is_dir():
            continue
        if not (work / top).exists():
            (work / top).symlink_to(REPO / top, target_is_directory=True)
        named.append(REPO / path)
    return named


def _snapshot(paths: list[Path]) -> dict[str, tuple[int, int]]:
    """Size and modification time of the files in each path's folder."""
    files = {f for p in paths if p.parent.is_dir() for f in p.parent.iterdir() if f.is_file()}
    return {str(f): (f.stat().st_mtime_ns, f.stat().st_size) for f in sorted(files)}


def _run(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """``ganzoo_core.cli.main(argv)``, with its errors raised rather than printed as one line."""
    import ganzoo_core.cli as cli

    with monkeypatch.context() as m:
        if argv[0] == "demo":  # build the page, do not serve it
            import gradio

            m.setattr(gradio.Blocks, "launch", lambda self, *args, **kwargs: None)
        m.setattr(cli, "_expected_errors", lambda: ())
        return cli.main(argv)


def _doc_id(doc: Path) -> str:
    return str(doc.relative_to(REPO))


def run_doc(doc: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> list[Outcome]:
    """Run ``doc``'s lines in order in ``workdir``; the ``Outcome`` of each line (a failing line fails the test)."""
    import ganzoo_core as gz
    from ganzoo_core.cli import main

    name, text = _doc_id(doc), doc.read_text()
    lines, others = doc_lines(text), _other_rows(text)
    named = _link_repo_folders(workdir, lines)
    before = _snapshot(named)
    skipped: dict[str, str] = {}  # output path -> the skipped line that would have written it
    outcomes: list[Outcome] = []
    for line in lines:
        outcome = Outcome(doc=name, line=str(line))
        outcomes.append(outcome)
        if line.expects_error:  # the one-line error the doc shows (tests/test_docs.py compares the text)
            assert main(line.argv) == 2, f"{name}: '{line}' does not fail as the doc shows"
            outcome.ran = str(line)
            capsys.readouterr()
            continue
        ran = rewrite(line.argv)
        outcome.kind, outcome.skipped = _skip_reason(line, ran, skipped, others, workdir)
        start = time.perf_counter()
        if not outcome.skipped:
            if ran[0] == "translate":
                _tiny_translate_inputs(ran, workdir)
            try:
                status = _run(ran, monkeypatch)
            except gz.DatasetUnavailableError as err:
                outcome.kind, outcome.skipped = "unavailable", f"DatasetUnavailableError: {err}"
            except (Exception, SystemExit) as err:  # any other failure fails the document, naming the line
                out = capsys.readouterr()
                pytest.fail(f"{name}: '{line}' (run as 'ganzoo {shlex.join(ran)}') failed: {type(err).__name__}: "
                            f"{err}\n{out.out}\n{out.err}\n{traceback.format_exc()}")
            else:
                out = capsys.readouterr()
                assert status == 0, f"{name}: '{line}' (run as 'ganzoo {shlex.join(ran)}') exited {status}:\n" \
                                    f"{out.out}\n{out.err}"
                outcome.ran = "ganzoo " + shlex.join(ran)
                if found := re.search(r"^training \S+ on (\S+) ", out.out, flags=re.M):
                    outcome.data = found.group(1)
        outcome.seconds = time.perf_counter() - start
        if outcome.skipped:
            skipped.update(dict.fromkeys(_outputs(line.argv), str(line)))
            print(f"{name}: skipped '{line}': {outcome.skipped}")
    assert _snapshot(named) == before, f"{name}: a line changed files in the repository beside {named}"
    return outcomes


# -- what ran, what was skipped -------------------------------------------------------------------------------------

BUILTIN = re.compile(r"animal|shapes")  # data that ships with the project's own dependencies
EMOJI = re.compile(r"emoji|font|cldr|noto|symbola", re.I)


class DocLinesSkipped(UserWarning):
    """Doc lines that did not run on this machine, with the reasons."""


def _emoji_fonts_installed() -> bool:
    import ganzoo_core as gz

    try:
        gz.create_dataset("emoji.noto", image_size=16)  # renders every emoji: asked only when no emoji line ran
    except gz.DatasetUnavailableError:
        return False
    return True


def test_every_doc_command_runs(tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    """Every document's lines, each document in a folder of its own, in one test (so that one process sees every
    outcome, also under pytest-xdist); then lists every line's outcome and warns with the skipped ones; no line was
    skipped for want of the built-in data, and lines on Animal-MNIST, the shapes and (when their fonts are installed)
    the emoji did run."""
    docs = [d for d in DOCS if doc_lines(d.read_text())]
    OUTCOMES: list[Outcome] = []
    for index, doc in enumerate(docs):
        with workdir(tmp_path / f"{index:02d}", cache_home, monkeypatch) as work:
            OUTCOMES += run_doc(doc, work, monkeypatch, capsys)
    assert {o.doc for o in OUTCOMES} == {_doc_id(d) for d in docs}
    ran = [o for o in OUTCOMES if o.ran]
    skipped = [o for o in OUTCOMES if o.skipped]
    print(f"\n{len(ran)} doc lines ran, {len(skipped)} skipped, in {sum(o.seconds for o in OUTCOMES):.1f} s")
    for o in OUTCOMES:
        status = f"ran {o.seconds:5.1f} s" if o.ran else f"skipped: {o.kind}"
        print(f"  {status:22} {o.doc}: {o.ran or o.line}" + (f"\n{'':25}{o.skipped}" if o.skipped else ""))
    if skipped:
        warnings.warn(DocLinesSkipped(f"{len(skipped)} of {len(OUTCOMES)} doc lines skipped:\n" + "\n".join(
            f"  {o.doc}: '{o.line}': {o.skipped if len(o.skipped) < 150 else o.skipped[:150] + ' ...'}"
            for o in skipped)), stacklevel=1)
    for o in skipped:
        if o.kind == "unavailable":
            assert not BUILTIN.search(o.skipped), f"{o.doc}: '{o.line}' was skipped for built-in data: {o.skipped}"
            assert not (EMOJI.search(o.skipped) and _emoji_fonts_installed()), f"{o.doc}: '{o.line}': {o.skipped}"
    data = " ".join(o.data or o.ran for o in ran)
    for wanted in ("animal_mnist", "shapes", "emoji"):
        assert wanted in data or (wanted == "emoji" and not _emoji_fonts_installed()), f"no doc line on {wanted} ran"


def test_a_bench_all_line_runs_one_family_in_one_round() -> None:
    ran = rewrite(["bench", "models", "--all", "--baseline", "official", "--rounds", "3", "--min-seconds", "60",
                   "--repeat", "1", "--warmup", "1", "--out", "x"])
    assert "--min-seconds" not in ran and "60" not in ran
    assert "--all" not in ran and ran[ran.index("--model") + 1] == ALL_FAMILY
    assert ran[ran.index("--rounds") + 1] == "1" and ran[ran.index("--batch-size") + 1] == str(BATCH)
    assert ran[ran.index("--warmup") + 1] == "0" and ran[ran.index("--out") + 1] == "x"
