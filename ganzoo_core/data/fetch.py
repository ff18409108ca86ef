"""``ganzoo data fetch NAME``: the Debian packages behind some built-in datasets, fetched without root.

``apt-get download`` puts each package's .deb in a temporary folder and ``dpkg-deb -x`` unpacks it into a folder of
the ganzoo data directory (``$GANZOO_DATA_DIR``, else ``~/.cache/ganzoo``); nothing is installed, so neither step
needs root (only the apt package lists must exist: ``sudo apt-get update`` once). The datasets look there when the
installed packages (``dpkg -L``) lack the files, so a fetch is all a dataset needs:

- ``fashion_mnist``: dataset-fashion-mnist, into ``fashion_mnist``;
- ``emoji_fonts``: fonts-noto-color-emoji, fonts-symbola and unicode-cldr-core, into ``emoji_fonts``;
- ``austen``: r-cran-janeaustenr, into ``janeaustenr``;
- ``all``: each of them.

A fetch unpacks into a hidden folder beside the destination (``.<folder>.<pid>.<random>.tmp``) and renames it into
place once every package is unpacked and checked, so an interrupted fetch leaves no half folder (a killed fetch's
hidden folder is removed by the next fetch). An existing folder is kept; ``force=True`` (``--force``) fetches again.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs

from ganzoo_core._atomic import _pid_alive
from ganzoo_core.errors import GanzooError

ENV = "GANZOO_DATA_DIR"


class FetchError(GanzooError):
    """``ganzoo data fetch`` could not download, unpack or place a package."""


@attrs.frozen
class Source:
    """What one ``ganzoo data fetch NAME`` fetches: Debian ``packages`` into ``folder``; ``required`` are glob
    patterns (below the unpacked tree) that must match a file afterwards, the check that the right thing arrived."""

    name: str
    title: str
    folder: str
    packages: tuple[str, ...]
    required: tuple[str, ...]

    def missing(self, tree: Path) -> list[str]:
        """The ``required`` patterns that match no file below ``tree``."""
        return [pattern for pattern in self.required if not any(p.is_file() for p in tree.glob(f"**/{pattern}"))]


SOURCES = {s.name: s for s in (
    Source("fashion_mnist", "Fashion-MNIST", "fashion_mnist", ("dataset-fashion-mnist",),
           ("train-images-idx3-ubyte*", "train-labels-idx1-ubyte*", "t10k-images-idx3-ubyte*",
            "t10k-labels-idx1-ubyte*")),
    Source("emoji_fonts", "the emoji fonts and CLDR annotations", "emoji_fonts",
           ("fonts-noto-color-emoji", "fonts-symbola", "unicode-cldr-core"),
           ("NotoColorEmoji*.ttf", "Symbola*.ttf", "common/annotations/en.xml", "common/properties/labels.txt")),
    Source("austen", "the Jane Austen novels", "janeaustenr", ("r-cran-janeaustenr",), ("janeaustenr/data/Rdata.rdx",)),
)}
ALL = "all"
NAMES = (*SOURCES, ALL)


def _source(name: str) -> Source:
    if name not in SOURCES:
        raise FetchError(f"unknown data name {name!r}; expected one of {', '.join(NAMES)}")
    return SOURCES[name]


# -- where fetched data lives -----------------------------------------------------------------------------------------


def data_dirs() -> list[Path]:
    """The ganzoo data directories, searched in this order: ``$GANZOO_DATA_DIR`` (when set), ``~/.cache/ganzoo``.
    The first is where ``ganzoo data fetch`` writes."""
    env = os.environ.get(ENV)
    dirs = [*([Path(env).expanduser()] if env else []), Path.home() / ".cache" / "ganzoo"]
    return list(dict.fromkeys(dirs))


def fetched_folders(name: str) -> list[Path]:
    """The folders (present or not) where ``ganzoo data fetch NAME`` puts its packages, in search order."""
    return [d / _source(name).folder for d in data_dirs()]


def fetched_files(name: str) -> list[Path]:
    """Every file under the present folders of ``fetched_folders(name)``, the first folder's first (each sorted)."""
    out: list[Path] = []
    for folder in fetched_folders(name):
        if folder.is_dir():
            out += sorted(p for p in folder.rglob("*") if p.is_file())
    return out


def fetch_command(name: str) -> str:
    """The command that fetches ``name``: ``ganzoo data fetch NAME``."""
    return f"ganzoo data fetch {_source(name).name}"


def searched(name: str) -> str:
    """The fetched folders of ``name`` for a message: ``'/a/x' or '/b/x'``."""
    return " or ".join(repr(str(f)) for f in fetched_folders(name))


# -- fetching ---------------------------------------------------------------------------------------------------------


def _tools() -> tuple[str, str]:
    found = {tool: shutil.which(tool) for tool in ("apt-get", "dpkg-deb")}
    for tool, path in found.items():
        if path is None:
            raise FetchError(f"'{tool}' was not found on PATH; 'ganzoo data fetch' needs apt-get and dpkg-deb (Debian "
                             "or Ubuntu): elsewhere, get the package files another way and pass root=<folder> to the "
                             "dataset")
    return found["apt-get"], found["dpkg-deb"]  # type: ignore[return-value]


def _run(command: Sequence[str], cwd: str | Path | None = None) -> None:
    """Run a tool; a failure is one ``FetchError`` line with the tool's own error."""
    shown = " ".join([Path(command[0]).name, *command[1:]])
    try:
        done = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as err:
        raise FetchError(f"cannot run '{shown}': {err.strerror or err}") from err
    if done.returncode == 0:
        return
    lines = [ln.strip() for ln in (done.stderr + "\n" + done.stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("E:")] or [ln for ln in lines if not ln.startswith("W:")][-1:]
    detail = " ".join(errors) or "no message"
    advice = ""
    if "Unable to locate package" in detail or "no installation candidate" in detail:
        advice = "; the apt package lists are missing or old: run 'sudo apt-get update' once, then fetch again"
    raise FetchError(f"'{shown}' failed (exit status {done.returncode}): {detail}{advice}")


def _temp_name(folder: Path, tag: str = "") -> Path:
    return folder.parent / f".{folder.name}.{os.getpid()}.{secrets.token_hex(4)}{tag}.tmp"


def clean_stale(folder: Path) -> list[Path]:
    """Remove the hidden temporary folders beside ``folder`` that a killed fetch left; returns them."""
    removed = []
    for tmp in folder.parent.glob(f".{folder.name}.*.tmp"):
        pid = tmp.name[len(folder.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def _publish(tmp: Path, folder: Path) -> None:
    """Rename the unpacked ``tmp`` to ``folder``, replacing an old ``folder`` (moved aside first, removed last)."""
    old = None
    if folder.is_dir():
        old = _temp_name(folder, ".old")
        os.rename(folder, old)
    try:
        os.rename(tmp, folder)
    except OSError as err:
        if old is not None:
            os.rename(old, folder)
        raise FetchError(f"cannot move the unpacked files into {str(folder)!r}: {err.strerror or err}") from err
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def fetch(name: str, dest: str | Path | None = None, *, force: bool = False,
          log: Callable[[str], None] | None = None) -> tuple[Path, bool]:
    """Download and unpack the Debian packages of ``name`` into ``dest``/<folder> (``dest`` default: the first of
    ``data_dirs()``). Returns ``(folder, fetched)``: ``fetched`` is False when the folder was there already (kept
    unless ``force``). Raises ``FetchError`` (one line) when a tool is missing or fails."""
    source = _source(name)
    root = Path(dest).expanduser() if dest is not None else data_dirs()[0]
    folder = root / source.folder
    if folder.exists() or folder.is_symlink():
        if not folder.is_dir():
            raise FetchError(f"{str(folder)!r} exists and is not a folder; move it away or pass --dest DIR")
        if not force:
            missing = source.missing(folder)
            if missing:
                raise FetchError(f"{str(folder)!r} exists but holds no {missing[0]}; pass --force to fetch "
                                 f"{source.title} again")
            return folder, False
    apt_get, dpkg_deb = _tools()
    try:
        root.mkdir(parents=True, exist_ok=True)
        clean_stale(folder)
        tmp = _temp_name(folder)
        tmp.mkdir()
    except OSError as err:
        raise FetchError(f"cannot write into {str(root)!r}: {err.strerror or err}; pass --dest DIR") from err
    try:
        with tempfile.TemporaryDirectory(prefix="ganzoo-fetch-") as downloads:
            if log is not None:
                log(f"{name}: downloading {', '.join(source.packages)} with apt-get download")
            _run([apt_get, "download", *source.packages], cwd=downloads)
            for package in source.packages:
                debs = sorted(Path(downloads).glob(f"{package}_*.deb"))
                if not debs:
                    raise FetchError(f"'apt-get download {package}' wrote no {package}_*.deb file")
                _run([dpkg_deb, "-x", str(debs[-1]), str(tmp)])
        missing = source.missing(tmp)
        if missing:
            raise FetchError(f"unpacked {', '.join(source.packages)} but found no {missing[0]} in it; the Debian "
                             "package may have changed its layout: pass root=<folder> to the dataset")
        _publish(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone after a successful rename
    return folder, True


def fetch_names(name: str) -> list[str]:
    """``name`` as a list of source names (``all``: every one)."""
    return list(SOURCES) if name == ALL else [_source(name).name]


__all__ = ["ALL", "NAMES", "SOURCES", "FetchError", "Source", "data_dirs", "fetch", "fetch_command", "fetch_names",
           "fetched_files", "fetched_folders", "searched"]
