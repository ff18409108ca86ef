"""``ganzoo report``: the page of a real (tiny) run, read back as HTML and, where Chromium is installed, rendered by a
headless browser (screenshot pixels and the DOM after load)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_datasets import write_animal

import ganzoo_core as gz
from ganzoo_core.cli import main
from ganzoo_core.errors import GanzooError, OutputPathError
from ganzoo_core.report import read_run, svg_chart, write_report
from ganzoo_core.training import TrainCfg, train

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian package "
                                                              "'chromium'; CI installs it)")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 steps of a tiny DCGAN with a grid every 4 steps, and an evaluation result beside the checkpoint."""
    root = write_animal(tmp_path_factory.mktemp("animal"))
    out = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    objective = gz.create_objective("dcgan.28", generator_kwargs={"ngf": 8}, discriminator_kwargs={"ndf": 8})
    train(objective, gz.create_dataset("animal_mnist.train", root=str(root)), out,
          TrainCfg(steps=12, batch_size=8, log_every=2, sample_every=4, checkpoint_every=0, n_samples=16,
                   progress=False, tensorboard=False))
    (out / "checkpoint.safetensors.eval.json").write_text(json.dumps({"fid": 123.456, "kid": {"mean": 0.0421}}))
    return out


def test_the_page_holds_every_grid_curve_result_and_setting(run: Path) -> None:
    page = write_report(run).read_text()
    summary = read_run(run)
    assert [s for s, _ in summary.samples] == [4, 8, 12] and len(summary.rows) == 6
    assert page.count('class="frame"') == 3 and page.count("data:image/png;base64,") == 6  # viewer + strip
    for step, path in summary.samples:  # the grids embedded as they are on disk
        assert f"step {step:,}" in page and base64.b64encode(path.read_bytes()).decode() in page
    assert 'data-key="loss_D"' in page and 'data-key="loss_G"' in page and "it_per_s" in page
    losses = re.search(r'data-key="loss_D" points="([^"]+)"', page)
    assert losses is not None and len(losses.group(1).split()) == 6  # one point per logged row
    assert "123.5" in page and "kid.mean" in page and "0.0421" in page  # the evaluation table
    assert "dcgan.28" in page and "fp32" in page and "generator_kwargs.ngf" in page
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page  # nothing to fetch


def test_it_replaces_its_own_page_and_refuses_other_files(run: Path, tmp_path: Path) -> None:
    first = write_report(run)
    assert write_report(run) == first  # re-run after more training: its own page is replaced
    other = tmp_path / "notes.html"
    other.write_text("my notes")
    with pytest.raises(OutputPathError):
        write_report(run, other)
    assert other.read_text() == "my notes"
    write_report(run, other, overwrite=True)
    assert "ganzoo report" in other.read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(GanzooError, match="holds no checkpoint"):
        write_report(empty)


def test_the_command_prints_json(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(run), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["grids"] == 3 and out["metrics_rows"] == 6 and out["results"] == ["checkpoint.safetensors.eval.json"]


def test_chart_scales_each_series_into_the_frame() -> None:
    rows = [{"step": float(s), "loss_a": float(s), "loss_b": float("nan") if s == 2 else 10.0 - s} for s in range(5)]
    svg = svg_chart("t", rows, ["loss_a", "loss_b"], width=200, height=100)
    a = [tuple(map(float, p.split(","))) for p in re.search(r'data-key="loss_a" points="([^"]+)"', svg).group(1).split()]
    b = re.search(r'data-key="loss_b" points="([^"]+)"', svg).group(1).split()
    assert len(a) == 5 and len(b) == 4  # the NaN point is left out
    xs, ys = [x for x, _ in a], [y for _, y in a]
    assert xs == sorted(xs) and ys == sorted(ys, reverse=True)  # rising loss: y decreases on screen
    assert min(xs) >= 56 and max(xs) <= 200 - 12 and min(ys) >= 24 and max(ys) <= 100 - 32


@needs_chromium
def test_a_headless_browser_renders_every_image_and_number(run: Path, tmp_path: Path) -> None:
    page = write_report(run)
    url = page.resolve().as_uri()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'p'}"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    assert 'data-images-decoded="6/6"' in dom  # every embedded grid decoded (set by the page after load)
    assert "123.5" in dom and "loss_G" in dom
    shot = tmp_path / "page.png"
    subprocess.run([CHROMIUM, *flags, "--window-size=1000,3200", f"--screenshot={shot}", url], capture_output=True,
                   timeout=120, check=True)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(np.int16)
    grid = np.asarray(Image.open(read_run(run).samples[-1][1]).convert("RGB"))
    # the viewer shows the last grid scaled up: a block of the screenshot with the grid's own dark borders and colours
    assert pixels.std() > 20  # not a blank page
    coloured = np.abs(pixels - pixels.mean(axis=2, keepdims=True)).sum(axis=2) > 30
    assert coloured.sum() > 2000  # the curves' colours are drawn
    dark = (pixels.max(axis=2) < 60).mean()
    assert dark > 0.01 and grid.min() < 60  # the grids' pixels are on screen


def test_a_run_without_matplotlib_skips_only_the_png(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """matplotlib is the optional [plots] extra: without it training writes everything but loss_curve.png, and the
    report still draws the curves."""
    import ganzoo_core.plots as plots

    monkeypatch.setattr(plots, "plotting_available", lambda: False)
    monkeypatch.setattr(plots, "save_loss_curve", lambda *a, **k: pytest.fail("matplotlib was used"))
    (tmp_path / "animal").mkdir()
    root = write_animal(tmp_path / "animal")
    objective = gz.create_objective("dcgan.28", generator_kwargs={"ngf": 8}, discriminator_kwargs={"ndf": 8})
    train(objective, gz.create_dataset("animal_mnist.train", root=str(root)), tmp_path / "run",
          TrainCfg(steps=2, batch_size=8, log_every=1, sample_every=0, checkpoint_every=0, n_samples=4,
                   progress=False, tensorboard=False))
    assert (tmp_path / "run" / "samples.png").is_file() and not (tmp_path / "run" / "loss_curve.png").exists()
    assert 'data-key="loss_D"' in write_report(tmp_path / "run").read_text()
