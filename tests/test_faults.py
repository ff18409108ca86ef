"""Fault injection: SIGKILL at chosen points of checkpoint and dataset writes and of a training run, two trainings on
one folder, a full disk, outputs that cannot be written. Whatever happens the previous file is intact (or the new one
complete), no temporary file outlives the next write, a killed run resumes to exactly the numbers of an uninterrupted
one, and the command line answers in one line."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from safetensors import SafetensorError, safe_open
from test_datasets import write_animal

import ganzoo_core as gz
from ganzoo_core import checkpoints
from ganzoo_core.cli import main
from ganzoo_core.data import schema
from ganzoo_core.data.schema import ArrayBundle, write_h5

ENV = {**os.environ, "GANZOO_LOAD_PLUGINS": "dcgan", "HF_HUB_OFFLINE": "1",
       "OMP_NUM_THREADS": str(torch.get_num_threads())}  # the thread count of this process: bit-equal numbers
TINY = ["--set", "generator_kwargs={'ngf': 4}", "--set", "discriminator_kwargs={'ndf': 4}"]


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def run_python(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2 and "Traceback" not in err, err
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganzoo: error: "), err
    assert all(n in lines[0] for n in needles), err


# -- 6. SIGKILL during a checkpoint or dataset write -----------------------------------------------------------------

DYING_WRITE = """
import os, sys
import numpy as np
import ganzoo_core as gz
from ganzoo_core import _atomic, checkpoints
from ganzoo_core.data import schema

what, point, target = sys.argv[1:]
write = checkpoints.save_file if what == "checkpoint" else schema._write

def die(*args, **kwargs):
    os.kill(os.getpid(), 9)

def half_then_die(data, path, *args, **kwargs):
    write(data, path, *args, **kwargs)
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) // 2)
    die()

if point in ("before_write", "half_written"):
    replacement = die if point == "before_write" else half_then_die
    if what == "checkpoint":
        checkpoints.save_file = replacement
    else:
        schema._write = replacement
else:  # the temporary file is complete and synced: die before the rename, or right after it
    setattr(_atomic, "_publish" if point == "before_rename" else "_fsync_dir", die)
if what == "checkpoint":
    gz.save(gz.create_generator("dcgan.28", ngf=8), target, overwrite=True)
else:
    bundle = schema.ArrayBundle(images=np.full((3, 4, 4, 1), 200, np.uint8), labels=np.array([0, 1, 1]))
    schema.write_h5(bundle, target, name="new", source="the killed write", overwrite=True)
print("survived")
"""
KILL_POINTS = ["before_write", "half_written", "before_rename", "after_rename"]


def old_h5(path: Path) -> Path:
    bundle = ArrayBundle(images=np.full((2, 4, 4, 1), 7, np.uint8), labels=np.array([0, 1]))
    return write_h5(bundle, path, name="old", source="test", overwrite=True)


def h5_images(path: Path) -> np.ndarray:
    with schema.open_h5(path) as f:
        return f["images"][()]


@pytest.mark.parametrize("what", ["checkpoint", "dataset"])
@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_during_a_write_keeps_the_old_file_or_publishes_the_new_one(what: str, point: str,
                                                                              tmp_path: Path) -> None:
    target = tmp_path / ("g.safetensors" if what == "checkpoint" else "d.h5")
    if what == "checkpoint":
        gz.save(gz.create_generator("dcgan.28", ngf=4), target)
    else:
        old_h5(target)
    before = target.read_bytes()
    proc = run_python(DYING_WRITE, what, point, str(target))
    assert proc.returncode == -9 and "survived" not in proc.stdout, proc.stderr
    if point == "after_rename":  # the new file was already in place: complete, and nothing left behind
        assert temps(tmp_path) == []
        if what == "checkpoint":
            assert gz.load(target).cfg.ngf == 8
        else:
            assert (h5_images(target) == 200).all()
    else:
        assert target.read_bytes() == before
        assert len(temps(tmp_path)) == 1  # the killed write's temporary file, left for the next write to remove
        if what == "checkpoint":
            assert gz.load(target).cfg.ngf == 4
        else:
            assert (h5_images(target) == 7).all() and h5_images(target).shape == (2, 4, 4, 1)
    if what == "checkpoint":  # the next write succeeds and removes what the killed one left
        gz.save(gz.create_generator("dcgan.28", ngf=2), target, overwrite=True)
        assert gz.load(target).cfg.ngf == 2
    else:
        old_h5(target)
        assert (h5_images(target) == 7).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


# -- 7. SIGKILL during training, then --resume --------------------------------------------------------------------

STEPS = 20


def train_args(root: Path, out: Path, *extra: str, steps: int = STEPS) -> list[str]:
    return ["train", "dcgan.28", "--steps", str(steps), "--batch-size", "8", "--checkpoint-every", "5",
            "--log-every", "1", "--sample-every", "0", "--no-progress", *TINY, "--data-set", f"root={str(root)!r}",
            "--out", str(out), *extra]


def metrics(out: Path) -> list[dict[str, float]]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "it_per_s"} for row in rows]


def saved_step(path: Path) -> int:
    with safe_open(str(path), framework="pt") as handle:
        return json.loads(handle.metadata()["ganzoo.train"])["step"]


@pytest.fixture(scope="module")
def animal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_animal(tmp_path_factory.mktemp("animal"))


@pytest.fixture(scope="module")
def whole_run(animal: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run every killed-and-resumed one must equal."""
    out = tmp_path_factory.mktemp("whole") / "run"
    assert main(train_args(animal, out)) == 0
    return out


DYING_TRAINING = """
import os, sys
from ganzoo_core import checkpoints, training
from ganzoo_core.cli import main

point, step = sys.argv[1], int(sys.argv[2])

def die():
    os.kill(os.getpid(), 9)

if point == "mid_interval":  # at the start of a step between two checkpoints
    real_step = training.Trainer._step
    def step_then_die(self, s, batch):
        if s == step:
            die()
        return real_step(self, s, batch)
    training.Trainer._step = step_then_die
elif point == "after_checkpoint":  # right after a checkpoint was published
    real_save = training.Trainer.save
    def save_then_die(self, s):
        real_save(self, s)
        if s == step:
            die()
    training.Trainer.save = save_then_die
else:  # half way through writing a checkpoint
    real_file = checkpoints.save_file
    def half_then_die(tensors, path, metadata=None):
        real_file(tensors, path, metadata)
        if metadata.get("extra.step") == str(step):
            with open(path, "r+b") as handle:
                handle.truncate(os.path.getsize(path) // 2)
            die()
    checkpoints.save_file = half_then_die
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.parametrize(("point", "kill_at", "resumes_from"), [("mid_interval", 8, 5), ("after_checkpoint", 10, 10),
                                                                 ("during_checkpoint", 15, 10)])
def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_numbers(point: str, kill_at: int, resumes_from: int,
                                                                         animal: Path, whole_run: Path,
                                                                         tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_python(DYING_TRAINING, point, str(kill_at), *train_args(animal, out))
    assert proc.returncode == -9, proc.stderr
    assert saved_step(out / "checkpoint.safetensors") == resumes_from
    assert len(temps(out)) == (1 if point == "during_checkpoint" else 0)
    assert [r["step"] for r in metrics(out)] == list(range(1, kill_at if point == "mid_interval" else kill_at + 1))
    assert main(train_args(animal, out, "--resume")) == 0  # the dead process's lock went with it
    assert metrics(out) == metrics(whole_run)  # every step's losses, exactly: the interrupted steps were dropped
    assert saved_step(out / "checkpoint.safetensors") == STEPS
    resumed, whole = (gz.load(d / "checkpoint.safetensors").state_dict() for d in (out, whole_run))
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)
    assert temps(out) == []


# -- 8. two trainings on one folder ----------------------------------------------------------------------------------


def test_two_trainings_on_one_folder_one_runs_and_the_other_is_refused_in_one_line(animal: Path,
                                                                                  tmp_path: Path) -> None:
    """Both start at once; the winner trains for 3 s of wall clock (--max-minutes, then exit 0), far longer than the
    two starts can differ, so the other finds the folder locked on any machine."""
    out = tmp_path / "shared"
    cmd = [sys.executable, "-m", "ganzoo_core.cli", *train_args(animal, out, "--max-minutes", "0.05", steps=10**6)]
    logs = [tmp_path / f"stderr{i}.txt" for i in range(2)]  # files, not pipes: a full pipe would stall a writer
    with logs[0].open("w") as first, logs[1].open("w") as second:
        procs = [subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=f) for f in (first, second)]
        codes = [p.wait(timeout=300) for p in procs]
    errs = [log.read_text() for log in logs]
    assert sorted(codes) == [0, 2], [err[-2000:] for err in errs]
    assert_one_line_error(2, errs[codes.index(2)], "is in use by another ganzoo process", str(out))
    last = saved_step(out / "checkpoint.safetensors")
    assert last > 1 and [r["step"] for r in metrics(out)] == list(range(1, last + 1))  # one run's rows, once each
    assert temps(out) == []


# -- 9. a full disk, outputs that cannot be written -------------------------------------------------------------------


def _disk_full(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def _writes_half_then(error: BaseException):
    def write(tensors: object, path: str, metadata: object = None) -> None:
        Path(path).write_bytes(b"\0" * 100)  # the disk filled up part way
        raise error
    return write


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"),
                                   SafetensorError("Error while serializing: IoError(No space left on device)")],
                         ids=["ENOSPC", "SafetensorError"])
def test_a_full_disk_during_a_checkpoint_write_keeps_the_old_file(error: BaseException, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    target = gz.save(gz.create_generator("dcgan.28", ngf=4), tmp_path / "g.safetensors")
    before = target.read_bytes()
    monkeypatch.setattr(checkpoints, "save_file", _writes_half_then(error))
    with pytest.raises(gz.CheckpointError, match="could not write checkpoint") as err:
        gz.save(gz.create_generator("dcgan.28", ngf=8), target, overwrite=True)
    assert str(target) in str(err.value) and "No space left on device" in str(err.value)
    assert target.read_bytes() == before and temps(tmp_path) == []
    assert gz.load(target).cfg.ngf == 4


def test_a_full_disk_during_a_dataset_write_keeps_the_old_file(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    target = old_h5(tmp_path / "d.h5")
    before = target.read_bytes()

    def half_then_full(bundle: ArrayBundle, tmp: Path, **kwargs: object) -> None:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("images", data=bundle.images)
        _disk_full()

    monkeypatch.setattr(schema, "_write", half_then_full)
    bundle = ArrayBundle(images=np.zeros((3, 4, 4, 1), np.uint8))
    with pytest.raises(gz.OutputPathError, match="No space left on device") as err:
        write_h5(bundle, target, name="new", source="test", overwrite=True)
    assert str(target) in str(err.value)
    assert target.read_bytes() == before and temps(tmp_path) == []


def test_a_full_disk_during_training_stops_in_one_line_and_keeps_the_last_checkpoint(
        animal: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    real, calls = checkpoints.save_file, []

    def second_write_fails(tensors: object, path: str, metadata: dict[str, str] | None = None) -> None:
        calls.append(path)
        if len(calls) == 2:
            _writes_half_then(OSError(errno.ENOSPC, "No space left on device"))(tensors, path, metadata)
        real(tensors, path, metadata)

    monkeypatch.setattr(checkpoints, "save_file", second_write_fails)
    out = tmp_path / "run"
    code = main(train_args(animal, out))
    assert_one_line_error(code, capsys.readouterr().err, "No space left on device", str(out / "checkpoint.safetensors"))
    assert saved_step(out / "checkpoint.safetensors") == 5 and temps(out) == []
    assert main(train_args(animal, out, "--resume")) == 0  # room again: the run continues from step 5
    assert saved_step(out / "checkpoint.safetensors") == STEPS


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gz.save(gz.create_generator("dcgan.28", ngf=4), tmp_path_factory.mktemp("g") / "g.safetensors")


@pytest.mark.parametrize(("out", "extra", "needle"), [
    ("/proc/ganzoo-no-such-folder/s.png", [], "/proc/ganzoo-no-such-folder/s.png"),
    ("/proc/version", ["--overwrite"], "/proc/version"),
    ("/proc/version", [], "already exists"),
    ("/dev/null", ["--overwrite"], "not a regular file"),
    ("/", ["--overwrite"], "is a folder"),
], ids=["proc-folder", "proc-file", "proc-file-no-overwrite", "device", "folder"])
def test_sample_into_an_unwritable_place_is_one_line(out: str, extra: list[str], needle: str, generator_file: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sample", str(generator_file), "--n", "2", "--out", out, *extra])
    assert_one_line_error(code, capsys.readouterr().err, needle)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_sample_into_a_read_only_folder_is_one_line(generator_file: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        code = main(["sample", str(generator_file), "--n", "2", "--out", str(folder / "s.png")])
    finally:
        folder.chmod(0o700)
    assert_one_line_error(code, capsys.readouterr().err, str(folder / "s.png"))
    assert list(folder.iterdir()) == []
