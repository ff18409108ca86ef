"""``ganzoo data fetch NAME``: the whole flow (apt-get download, dpkg-deb -x, an atomic rename into the data
directory) with small fake ``apt-get`` and ``dpkg-deb`` scripts on PATH, never the network; then the datasets find the
fetched files with no options, and every missing-source message names the fetch command."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from test_datasets import write_idx

import ganzoo_core as gz
from ganzoo_core import datasets
from ganzoo_core.cli import main
from ganzoo_core.data import austen, emoji, fetch

FASHION = "usr/share/datasets/fashion-mnist"
NOTO = "usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
SYMBOLA = "usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf"
CLDR = "usr/share/unicode/cldr/common"
RDX = "usr/lib/R/site-library/janeaustenr/data/Rdata.rdx"
CLDR_XML = """<?xml version="1.0" encoding="UTF-8" ?>
<ldml><annotations>
<annotation cp="🐱">cat | face | pet</annotation>
<annotation cp="🐱" type="tts">cat face</annotation>
</annotations></ldml>
"""

FAKE_APT_GET = """#!/bin/sh
# 'apt-get download PKG...': copies $FAKE_DEBS/PKG.tar to ./PKG_1.0_all.deb, as the real one names its files
[ "$1" = download ] || { echo "E: this fake apt-get knows only 'download'" >&2; exit 100; }
shift
echo "W: Download is performed unsandboxed as root" >&2
for pkg in "$@"; do
    [ -f "$FAKE_DEBS/$pkg.tar" ] || { echo "E: Unable to locate package $pkg" >&2; exit 100; }
    cp "$FAKE_DEBS/$pkg.tar" "./${pkg}_1.0_all.deb"
done
"""
FAKE_DPKG_DEB = """#!/bin/sh
# 'dpkg-deb -x DEB DIR': unpacks the fake .deb (a tar archive of the package's files) into DIR
[ "$1" = -x ] || { echo "dpkg-deb: this fake knows only -x" >&2; exit 2; }
mkdir -p "$3" && tar -xf "$2" -C "$3"
"""


@pytest.fixture(autouse=True)
def _own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the real ~/.cache/ganzoo or $GANZOO_DATA_DIR, nor the installed Debian packages, nor reaches the
    network: an apt-get that refuses comes first on PATH (``tools`` puts the fake one before it)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "apt-get").write_text("#!/bin/sh\necho 'E: the tests never download' >&2\nexit 100\n")
    (guard / "apt-get").chmod(0o755)
    monkeypatch.setenv("PATH", f"{guard}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv(fetch.ENV, raising=False)
    for module in (datasets, emoji, austen):
        monkeypatch.setattr(module, "debian_files", lambda package: [])


def make_deb(debs: Path, package: str, files: dict[str, bytes]) -> Path:
    """A fake .deb of ``package``: a tar archive of ``files`` (path in the package → content)."""
    debs.mkdir(parents=True, exist_ok=True)
    path = debs / f"{package}.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def fashion_files(n_train: int = 30, n_test: int = 10) -> dict[str, bytes]:
    """The four IDX files of dataset-fashion-mnist (gzipped, as Debian ships them), written by the real writer."""
    out, rng, scratch = {}, np.random.default_rng(0), Path(os.environ["FAKE_SCRATCH"])
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        for kind, array in (("images-idx3", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)),
                            ("labels-idx1", (np.arange(n) % 10).astype(np.uint8))):
            name = f"{prefix}-{kind}-ubyte.gz"
            out[f"{FASHION}/{name}"] = write_idx(scratch / name, array).read_bytes()
    out["usr/share/doc/dataset-fashion-mnist/copyright"] = b"MIT"
    return out


def emoji_debs(debs: Path) -> None:
    make_deb(debs, "fonts-noto-color-emoji", {NOTO: b"not really a font"})
    make_deb(debs, "fonts-symbola", {SYMBOLA: b"not really a font"})
    make_deb(debs, "unicode-cldr-core", {f"{CLDR}/annotations/en.xml": CLDR_XML.encode(),
                                         f"{CLDR}/properties/labels.txt": "[🐱] ; Animals & Nature ; cat\n".encode()})


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fake apt-get and dpkg-deb first on PATH; returns the folder of fake .debs they serve (empty at first)."""
    bin_dir, debs, scratch = tmp_path / "bin", tmp_path / "debs", tmp_path / "scratch"
    for folder in (bin_dir, debs, scratch):
        folder.mkdir()
    for name, text in (("apt-get", FAKE_APT_GET), ("dpkg-deb", FAKE_DPKG_DEB)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DEBS", str(debs))
    monkeypatch.setenv("FAKE_SCRATCH", str(scratch))
    return debs


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv(fetch.ENV, str(folder))
    return folder


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_fetch_then_fashion_mnist_needs_no_flags(tools: Path, data_dir: Path, tmp_path: Path, capsys) -> None:
    make_deb(tools, "dataset-fashion-mnist", fashion_files())
    assert datasets._fashion_available(datasets.ImageDatasetCfg()) is False
    code, out, err = run(["data", "fetch", "fashion_mnist"], capsys)
    assert code == 0, err
    assert f"fashion_mnist: unpacked dataset-fashion-mnist into {data_dir / 'fashion_mnist'}" in out
    assert sorted(p.name for p in data_dir.iterdir()) == ["fashion_mnist"]  # no temporary folder left
    assert (data_dir / "fashion_mnist" / FASHION / "train-images-idx3-ubyte.gz").is_file()
    assert len(gz.create_dataset("fashion_mnist.train")) == 30 and len(gz.create_dataset("fashion_mnist.test")) == 10
    code, out, err = run(["data", "list"], capsys)
    assert code == 0 and any(line.split()[:2] == ["fashion_mnist.train", "yes"] for line in out.splitlines())
    code, out, err = run(["data", "build", "fashion_mnist.test", str(tmp_path / "f.h5")], capsys)
    assert code == 0, err
    assert "10 items" in out

    code, out, err = run(["data", "fetch", "fashion_mnist"], capsys)  # there already: kept, not downloaded
    assert code == 0 and out == f"fashion_mnist: kept {data_dir / 'fashion_mnist'} (already fetched; --force fetches it again)\n"
    make_deb(tools, "dataset-fashion-mnist", fashion_files(n_train=20))
    code, out, err = run(["data", "fetch", "fashion_mnist", "--force"], capsys)
    assert code == 0 and "unpacked" in out, err
    assert len(gz.create_dataset("fashion_mnist.train")) == 20
    assert sorted(p.name for p in data_dir.iterdir()) == ["fashion_mnist"]  # the old copy is gone too


def test_emoji_fonts_and_cldr_are_found_in_the_fetched_folder(tools: Path, data_dir: Path) -> None:
    emoji_debs(tools)
    folder, fetched = fetch.fetch("emoji_fonts")
    assert fetched and folder == data_dir / "emoji_fonts"
    assert emoji.find_font("fonts-noto-color-emoji", r"NotoColorEmoji.*\.ttf", None, "noto_font") == folder / NOTO
    assert emoji.find_font("fonts-symbola", r"Symbola.*\.ttf", None, "symbola_font") == folder / SYMBOLA
    assert emoji.load_cldr(None)["🐱"] == emoji.Annotation("cat face", ("cat", "face", "pet"))
    assert emoji.load_cldr_labels(None) == {"🐱": "Animals & Nature"}
    other = Path(os.environ["HOME"]) / "fonts" / "Mine.ttf"  # an explicit font still comes first
    other.parent.mkdir(parents=True)
    other.write_bytes(b"x")
    assert emoji.find_font("fonts-noto-color-emoji", r"NotoColorEmoji.*\.ttf", str(other), "noto_font") == other


def test_austen_keeps_its_folder_and_is_found_there(tools: Path, data_dir: Path, tmp_path: Path) -> None:
    make_deb(tools, "r-cran-janeaustenr", {RDX: b"index", RDX.replace(".rdx", ".rdb"): b"records"})
    folder, fetched = fetch.fetch("austen")
    assert fetched and folder == data_dir / "janeaustenr" == austen.default_roots()[0]
    assert austen.find_rdx(None) == folder / RDX
    # scripts/fetch_austen.sh does the same without ganzoo installed: same folder, kept when there
    script = REPO / "scripts" / "fetch_austen.sh"
    dest = tmp_path / "elsewhere" / "janeaustenr"
    done = subprocess.run(["bash", str(script), str(dest)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert (dest / RDX).is_file() and sorted(p.name for p in dest.parent.iterdir()) == ["janeaustenr"]
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)  # $GANZOO_DATA_DIR
    assert done.returncode == 0 and "kept in" in done.stdout and str(folder) in done.stdout


def test_fetch_all_and_a_dest_the_datasets_do_not_search(tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys) -> None:
    make_deb(tools, "dataset-fashion-mnist", fashion_files())
    make_deb(tools, "r-cran-janeaustenr", {RDX: b"index"})
    emoji_debs(tools)
    dest = tmp_path / "mine"
    code, out, err = run(["data", "fetch", "all", "--dest", str(dest)], capsys)
    assert code == 0, err
    assert sorted(p.name for p in dest.iterdir()) == ["emoji_fonts", "fashion_mnist", "janeaustenr"]
    assert f"set GANZOO_DATA_DIR={dest} to use {dest}" in out
    with pytest.raises(gz.DatasetUnavailableError):  # not searched until GANZOO_DATA_DIR says so
        gz.create_dataset("fashion_mnist.train")
    monkeypatch.setenv(fetch.ENV, str(dest))
    assert len(gz.create_dataset("fashion_mnist.train")) == 30


def test_a_missing_tool_is_one_clear_line(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys) -> None:
    only = tmp_path / "only"
    only.mkdir()
    (only / "dpkg-deb").write_text(FAKE_DPKG_DEB)
    (only / "dpkg-deb").chmod(0o755)
    monkeypatch.setenv("PATH", str(only))
    code, out, err = run(["data", "fetch", "fashion_mnist"], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("ganzoo: error: 'apt-get' was not found on PATH; 'ganzoo data fetch' needs apt-get and dpkg-deb")
    assert not data_dir.exists()


def test_a_failed_download_is_one_line_with_the_next_step(tools: Path, data_dir: Path, capsys) -> None:
    code, out, err = run(["data", "fetch", "emoji_fonts"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "'apt-get download fonts-noto-color-emoji fonts-symbola unicode-cldr-core' failed (exit status 100): " \
           "E: Unable to locate package fonts-noto-color-emoji; the apt package lists are missing or old: run " \
           "'sudo apt-get update' once" in err
    assert list(data_dir.iterdir()) == []


def _interrupt_after(tool: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = fetch._run

    def run_then_interrupt(command: list[str], cwd: str | Path | None = None) -> None:
        real(command, cwd)
        if Path(command[0]).name == tool:
            raise KeyboardInterrupt

    monkeypatch.setattr(fetch, "_run", run_then_interrupt)


def test_an_interrupted_fetch_leaves_no_half_folder(tools: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys) -> None:
    emoji_debs(tools)
    _interrupt_after("dpkg-deb", monkeypatch)  # Ctrl-C after the first of three packages is unpacked
    code, out, err = run(["data", "fetch", "emoji_fonts"], capsys)
    assert code == 130 and "interrupted" in err
    assert list(data_dir.iterdir()) == []
    with pytest.raises(gz.DatasetUnavailableError, match="ganzoo data fetch emoji_fonts"):
        emoji.find_font("fonts-symbola", r"Symbola.*\.ttf", None, "symbola_font")



def test_a_broken_archive_leaves_no_half_folder(tools: Path, data_dir: Path) -> None:
    emoji_debs(tools)
    (tools / "fonts-symbola.tar").write_bytes(b"not an archive")  # dpkg-deb fails on the second package
    with pytest.raises(fetch.FetchError, match=r"'dpkg-deb -x .*fonts-symbola_1\.0_all\.deb .*' failed"):
        fetch.fetch("emoji_fonts")
    assert list(data_dir.iterdir()) == []


def test_a_refetch_that_fails_keeps_the_old_folder(tools: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_deb(tools, "dataset-fashion-mnist", fashion_files())
    fetch.fetch("fashion_mnist")
    make_deb(tools, "dataset-fashion-mnist", {f"{FASHION}/train-images-idx3-ubyte.gz": b"only one file"})
    with pytest.raises(fetch.FetchError, match="found no train-labels-idx1-ubyte"):
        fetch.fetch("fashion_mnist", force=True)
    assert sorted(p.name for p in data_dir.iterdir()) == ["fashion_mnist"]
    assert len(gz.create_dataset("fashion_mnist.train")) == 30


def test_a_killed_fetchs_temporary_folder_is_removed_by_the_next(tools: Path, data_dir: Path) -> None:
    make_deb(tools, "r-cran-janeaustenr", {RDX: b"index"})
    dead = data_dir / ".janeaustenr.4194305.0a1b2c3d.tmp"  # above any pid_max: that process is gone
    alive = data_dir / f".janeaustenr.{os.getpid()}.0a1b2c3d.tmp"  # a fetch still running is left alone
    for folder in (dead, alive):
        (folder / "usr").mkdir(parents=True)
    fetch.fetch("austen")
    assert sorted(p.name for p in data_dir.iterdir()) == [alive.name, "janeaustenr"]


def test_a_folder_that_is_there_but_wrong_is_not_taken_for_fetched(tools: Path, data_dir: Path, capsys) -> None:
    (data_dir / "fashion_mnist").mkdir(parents=True)
    code, out, err = run(["data", "fetch", "fashion_mnist"], capsys)
    assert code == 2 and f"'{data_dir / 'fashion_mnist'}' exists but holds no train-images-idx3-ubyte*; pass " \
                          "--force to fetch Fashion-MNIST again" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "fetch", "flowers"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'flowers'" in capsys.readouterr().err


MISSING: list[tuple[str, Callable[[], object], str, str]] = [
    ("fashion_mnist", lambda: gz.create_dataset("fashion_mnist.train"), "ganzoo data fetch fashion_mnist",
     "sudo apt-get install dataset-fashion-mnist"),
    ("fashion_mnist root", lambda: gz.create_dataset("fashion_mnist.test", root="/nowhere"),
     "ganzoo data fetch fashion_mnist", "sudo apt-get install dataset-fashion-mnist"),
    ("noto", lambda: gz.create_dataset("emoji.noto", keywords=False), "ganzoo data fetch emoji_fonts",
     "sudo apt-get install fonts-noto-color-emoji"),
    ("symbola", lambda: gz.create_dataset("emoji.symbola", keywords=False), "ganzoo data fetch emoji_fonts",
     "sudo apt-get install fonts-symbola"),
    ("cldr", lambda: emoji.load_cldr(None), "ganzoo data fetch emoji_fonts", "sudo apt-get install unicode-cldr-core"),
    ("cldr_dir", lambda: emoji.load_cldr("/nowhere"), "ganzoo data fetch emoji_fonts",
     "sudo apt-get install unicode-cldr-core"),
    ("labels", lambda: emoji.load_cldr_labels("/nowhere"), "ganzoo data fetch emoji_fonts",
     "sudo apt-get install unicode-cldr-core"),
    ("austen", lambda: gz.create_dataset("austen.novels"), "ganzoo data fetch austen",
     "apt-get download r-cran-janeaustenr"),
]


@pytest.mark.parametrize(("what", "make", "command", "alternative"), MISSING, ids=[m[0] for m in MISSING])
def test_every_missing_source_message_names_the_fetch_command(what: str, make: Callable[[], object], command: str,
                                                              alternative: str, data_dir: Path) -> None:
    if what in ("noto", "symbola"):
        pytest.importorskip("emoji", reason="the emoji datasets list the emoji with 'pip install emoji' first")
    with pytest.raises(gz.DatasetUnavailableError) as info:
        make()
    message = str(info.value)
    assert f"'{command}'" in message and alternative in message and "\n" not in message
    if what in ("fashion_mnist", "noto", "symbola", "austen"):  # the default search names the fetched folder
        assert str(data_dir) in message
