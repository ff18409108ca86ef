"""Atomic writes that never replace what is not ours.

``atomic_path(path)`` yields a temporary file beside ``path``; when the block succeeds the file is fsynced and renamed
over ``path`` in one step, so a crash leaves either the previous file or the new one, never a mix. Before that it
checks the destination: something that is not a regular file (a device, a folder, a FIFO, a symlink to one) is
refused always, and an existing file unless ``overwrite=True`` (the CLI's ``--overwrite``). Temporary files are named
``.<name>.<pid>.<random>.tmp``; those whose process is gone (a killed write) are removed at the next write to the
same destination.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ganzoo_core.errors import OutputExistsError, OutputPathError


def check_destination(path: str | Path, *, overwrite: bool = False, what: str = "output") -> Path:
    """Raise unless ``path`` may be written: absent, or a regular file and ``overwrite``."""
    path = Path(path)
    try:
        st = os.stat(path)  # follows symlinks: what a write would really replace
    except FileNotFoundError:
        if path.is_symlink():
            raise OutputPathError(f"{what} {str(path)!r} is a dangling symbolic link; remove it or choose another "
                                  "path") from None
        return path
    except OSError as err:
        raise OutputPathError(f"cannot check {what} {str(path)!r}: {err.strerror or err}") from err
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file (a device, pipe or socket)"
        raise OutputPathError(f"{what} {str(path)!r} is {kind}; ganzoo writes only regular files: choose a file path")
    if not overwrite:
        raise OutputExistsError(f"{what} {str(path)!r} already exists; pass --overwrite (overwrite=True) to replace "
                                "it, or choose another path")
    return path


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def clean_stale_temps(path: str | Path) -> list[Path]:
    """Remove ``.<name>.<pid>.*.tmp`` files beside ``path`` left by writes whose process is gone; returns them."""
    path = Path(path)
    removed = []
    try:
        candidates = list(path.parent.glob(f".{path.name}.*.tmp"))
    except OSError:
        return removed
    for tmp in candidates:
        middle = tmp.name[len(path.name) + 2:-len(".tmp")]  # "<pid>.<random>"
        pid_text = middle.split(".", 1)[0]
        if not pid_text.isdigit() or _pid_alive(int(pid_text)):
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


@contextmanager
def atomic_path(path: str | Path, *, overwrite: bool = False, what: str = "output") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed over ``path`` in one step.

    Refuses a destination that is not a regular file, and an existing file unless ``overwrite``. A crash or an
    exception leaves the previous file untouched and no partial file behind (a killed process's temporary file is
    removed by the next write to the same path).
    """
    path = Path(path)
    check_destination(path, overwrite=overwrite, what=what)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(path)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise OutputPathError(f"cannot write {what} {str(path)!r}: {err.strerror or err}") from err
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the file the mode a plain open() would
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        _publish(tmp, path, overwrite=overwrite, what=what)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _publish(tmp: Path, path: Path, *, overwrite: bool, what: str) -> None:
    """Rename ``tmp`` to ``path``; without ``overwrite`` a hard link, which fails if ``path`` appeared meanwhile."""
    check_destination(path, overwrite=overwrite, what=what)
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputExistsError(f"{what} {str(path)!r} was created by someone else while ganzoo wrote it; nothing "
                                "was replaced: pass --overwrite (overwrite=True) or choose another path") from None
    except OSError:  # a file system without hard links: the check above is the best we can do
        os.replace(tmp, path)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - directories cannot be opened on some platforms
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
