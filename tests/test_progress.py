"""Progress bars (tqdm on stderr, only on a terminal) and ``--json`` on ``info``, ``sample``, ``eval`` and ``bench``:
with ``--json`` stdout holds one JSON document and nothing else. Sizes are the smallest real ones."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from conftest import REPO
from PIL import Image
from test_datasets import write_animal

from ganzoo_core.cli import main
from ganzoo_core.progress import cli_progress, progress, progress_enabled


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, and keeps what is written to it."""

    def isatty(self) -> bool:
        return True


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def run_on_terminal(args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
                    ) -> tuple[int, str, str]:
    """``main(args)`` with stderr a terminal: (exit status, stdout, what went to the terminal)."""
    terminal = _Terminal()
    with monkeypatch.context() as mp:
        mp.setattr(sys, "stderr", terminal)
        code = main(args)
    return code, capsys.readouterr().out, terminal.getvalue()


# -- the helper ----------------------------------------------------------------------------------------------------


def test_the_bar_is_silent_when_stderr_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    assert not progress_enabled()  # pytest's captured stderr is no terminal
    assert list(progress(range(5), desc="work")) == [0, 1, 2, 3, 4]
    with progress(total=3, desc="by hand") as bar:
        bar.update(3)
    out, err = capsys.readouterr()
    assert out == "" and err == "" and "\r" not in out + err


def test_the_bar_draws_on_stderr_when_forced_or_on_a_terminal(capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    assert list(progress(range(4), desc="forced", unit="img", enabled=True)) == [0, 1, 2, 3]
    out, err = capsys.readouterr()
    assert out == "" and "forced" in err and "\r" in err and "/4" in err
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert progress_enabled() and not progress_enabled(False)
    list(progress(range(2), desc="auto"))
    list(progress(range(2), desc="off", enabled=False))
    assert "auto" in terminal.getvalue() and "off" not in terminal.getvalue()


def test_no_progress_and_json_turn_the_bars_off() -> None:
    from argparse import Namespace

    assert cli_progress(Namespace(no_progress=False, json=False)) is None  # automatic: a terminal
    assert cli_progress(Namespace(no_progress=True, json=False)) is False
    assert cli_progress(Namespace(no_progress=False, json=True)) is False
    assert cli_progress(Namespace()) is None


# -- info ----------------------------------------------------------------------------------------------------------


def test_info_json_has_every_entry_with_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["info", "dcgan.64", "--json"], capsys)
    assert code == 0, err
    entries = json.loads(out)
    assert [e["kind"] for e in entries] == ["generator", "discriminator", "objective"]
    gen = entries[0]
    assert gen | {"name": "dcgan.64", "plugin": "dcgan", "distribution": "ganzoo-dcgan", "config": "GeneratorCfg"} == gen
    assert gen["options"]["ngf"] == 64 and gen["options"]["nz"] == 100 and "arXiv:1511.06434" in gen["paper"]
    assert gen["module"] and gen["factory"].startswith(gen["module"] + ".") and gen["summary"] and gen["version"]
    code, out, _ = run(["info", "gan.hinge", "--json"], capsys)
    (loss,) = json.loads(out)
    assert loss["kind"] == "loss" and set(loss) >= {"options", "config", "paper"}


# -- sample --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import ganzoo_core as gz

    path = tmp_path_factory.mktemp("ck") / "g.safetensors"
    return gz.save(gz.create_objective("dcgan.28", generator_kwargs={"ngf": 4}, discriminator_kwargs={"ndf": 4}),
                   path)


def test_sample_json_names_the_file_grid_and_source(tiny_checkpoint: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.png"
    code, stdout, err = run(["sample", str(tiny_checkpoint), "--n", "10", "--batch-size", "4", "--seed", "5",
                             "--out", str(out), "--json"], capsys)
    assert code == 0, err
    data = json.loads(stdout)  # stdout is the JSON and nothing else
    assert data | {"out": str(out), "n": 10, "checkpoint": str(tiny_checkpoint), "seed": 5, "batch_size": 4,
                   "kind": "objective", "name": "dcgan.28", "objective": None} == data
    assert data["grid"] == {"rows": 3, "columns": 4, "image_size": [28, 28], "width": 4 * 30 + 2, "height": 3 * 30 + 2}
    assert Image.open(out).size == (data["grid"]["width"], data["grid"]["height"])
    assert "\r" not in err


def test_sample_shows_a_bar_on_a_terminal_for_several_batches_only(tiny_checkpoint: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    base = ["sample", str(tiny_checkpoint), "--overwrite", "--out", str(tmp_path / "s.png")]
    code, out, shown = run_on_terminal([*base, "--n", "6", "--batch-size", "2"], capsys, monkeypatch)
    assert code == 0 and "sampling" in shown and "/3 " in shown and "wrote 6 samples" in out
    assert "\r" not in out
    for extra in (["--n", "2"], ["--n", "6", "--batch-size", "2", "--no-progress"],
                  ["--n", "6", "--batch-size", "2", "--json"]):
        code, out, shown = run_on_terminal([*base, *extra], capsys, monkeypatch)
        assert code == 0 and shown == "", extra


# -- eval ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def animal_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``animal_mnist.test`` read from a small folder written here (the ``eval`` command names a registered
    reference; this gives it the files)."""
    import ganzoo_core.metrics.evaluate  # noqa: F401  (the module; ganzoo_core.metrics.evaluate is also the function)

    module = sys.modules["ganzoo_core.metrics.evaluate"]
    (tmp_path / "animal").mkdir()
    root = write_animal(tmp_path / "animal", n_per_class=4)
    real_open = module.open_reference
    monkeypatch.setattr(module, "open_reference", lambda ref, kwargs=None: real_open(ref, {**(kwargs or {}),
                                                                                           "root": str(root)}))
    return "animal_mnist.test"


def _eval_args(checkpoint: Path, reference: str, tmp_path: Path) -> list[str]:
    return ["eval", str(checkpoint), "--reference", reference, "--n", "6", "--batch-size", "4", "--metrics", "fid",
            "--no-cache", "--out", str(tmp_path / "result.json"), "--overwrite"]


def test_eval_json_prints_the_result_it_writes(tiny_checkpoint: Path, animal_reference: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run([*_eval_args(tiny_checkpoint, animal_reference, tmp_path), "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["path"] == str(tmp_path / "result.json")
    saved = json.loads((tmp_path / "result.json").read_text())
    assert {k: v for k, v in result.items() if k != "path"} == saved
    assert set(result["scores"]) == {"fid"} and result["protocol"]["samples"]["n"] == 6
    assert result["protocol"]["reference"]["dataset"] == "animal_mnist.test"
    assert result["protocol"]["extractor"]["name"] == "domain.animal_mnist"
    assert "\r" not in err


def test_eval_shows_bars_for_reference_and_samples_on_a_terminal(tiny_checkpoint: Path, animal_reference: str,
                                                                  tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    args = _eval_args(tiny_checkpoint, animal_reference, tmp_path)
    code, out, shown = run_on_terminal(args, capsys, monkeypatch)
    assert code == 0 and "reference features" in shown and "samples" in shown and "/6 " in shown and "/10 " in shown
    assert "fid" in out and "\r" not in out
    for flag in ("--json", "--no-progress"):
        code, out, shown = run_on_terminal([*args, flag], capsys, monkeypatch)
        assert code == 0 and shown == "", flag


# -- bench ---------------------------------------------------------------------------------------------------------


SMALLEST_OP = ["bench", "ops", "--op", "bias_act", "--shapes", str(REPO / "benchmarks" / "shapes.toml"), "--shape",
               "dcgan64.d1", "--dtype", "fp32", "--impl", "fused", "--repeat", "1", "--warmup", "0"]


def test_bench_json_has_the_rows_and_the_saved_files(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANZOO_IMPL_CACHE", str(tmp_path / "impls.json"))
    code, out, err = run([*SMALLEST_OP, "--out", str(tmp_path / "b"), "--write-cache", "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["suite"] == "ops" and [r["name"] for r in data["rows"]] == ["ref", "fused"]
    assert data["rows"][0]["group"] == "bias_act dcgan64.d1 fp32" and data["rows"][0]["ratio"] == 1.0
    assert data["json"] == str(tmp_path / "b" / "bench-ops.json") and Path(data["json"]).is_file()
    assert data["png"] is None or Path(data["png"]).is_file()
    assert json.loads(Path(data["json"]).read_text())["rows"] == data["rows"]
    assert data["cache"]["path"] == str(tmp_path / "impls.json") and "bias_act/cpu" in data["cache"]["choices"]
    assert data["meta"]["suite"] == "ops" and "\r" not in err


def test_bench_shows_a_bar_per_case_on_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, shown = run_on_terminal([*SMALLEST_OP, "--out", str(tmp_path / "b")], capsys, monkeypatch)
    assert code == 0 and "bench ops" in shown and "/2 " in shown and "x ref" in out
    for flag in ("--json", "--no-progress", "--quiet"):
        code, out, shown = run_on_terminal([*SMALLEST_OP, "--out", str(tmp_path / flag), flag], capsys, monkeypatch)
        assert code == 0 and "\r" not in shown and "bench ops" not in shown, flag  # (a no-chart note may be there)


def test_encode_and_data_build_draw_bars_on_a_terminal_only(tmp_path, monkeypatch, capsys) -> None:
    """``ganzoo encode`` counts captions with a bar (no hand-made "\\r" counter), ``ganzoo data build`` shows what it
    is reading and writing; neither writes anything to a pipe."""
    import sys

    from ganzoo_core.cli import main

    out = tmp_path / "shapes.h5"
    build = ["data", "build", "shapes.32", str(out), "--set", "n=40"]
    assert main(build) == 0
    assert "\r" not in capsys.readouterr().err  # captured: not a terminal
    assert main(["encode", str(out), "--encoder", "bow.hashed"]) == 0
    assert "\r" not in capsys.readouterr().err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main([*build, "--overwrite"]) == 0
    err = capsys.readouterr().err
    assert "reading shapes.32" in err and "writing" in err
    assert main(["encode", str(out), "--encoder", "bow.hashed", "--force"]) == 0
    err = capsys.readouterr().err
    assert "encoding with bow.hashed" in err and "caption" in err
    assert main(["encode", str(out), "--encoder", "bow.hashed", "--force", "--no-progress"]) == 0
    assert "encoding with" not in capsys.readouterr().err
