"""``ganzoo demo``: the page served for real on 127.0.0.1, driven through ``gradio_client`` (each answer compared with
the model run here), and rendered by headless Chromium (the generator tab draws its grid on load)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganzoo_core as gz

gr = pytest.importorskip("gradio", reason="the demo extra is not installed: pip install 'ganzoo-core[demo]'")
client_mod = pytest.importorskip("gradio_client")

from ganzoo_core.demo import build_demo, demo_kind, generate_fn, slerp, text_fn, translate_fn  # noqa: E402

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
SMALL_STARGAN = {"generator_kwargs": {"conv_dim": 4, "repeat_num": 1}, "discriminator_kwargs": {"conv_dim": 4}}


def textured_dcgan() -> object:
    """A tiny DCGAN whose untrained G draws visible texture (wide random weights), so a rendered grid shows."""
    torch.manual_seed(0)
    obj = gz.create_objective("dcgan.28", generator_kwargs={"ngf": 8}, discriminator_kwargs={"ndf": 8})
    with torch.no_grad():
        for p in obj.networks["G"].parameters():
            if p.ndim > 1:
                p.normal_(0, 0.3)
    return obj.eval()


@pytest.fixture(scope="module")
def served() -> tuple[object, list[tuple[str, object]]]:
    torch.manual_seed(0)
    tabs = [("dcgan", textured_dcgan()),
            ("stargan", gz.create_objective("stargan.tiny32", **SMALL_STARGAN).eval()),
            ("cyclegan", gz.create_objective("cyclegan.small32").eval()),
            ("gan-cls", gz.create_objective("gan_cls.int_cls_32").eval())]
    page = build_demo(tabs)
    page.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    yield page, tabs
    page.close()


def pixels(path: str | Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def test_each_checkpoint_gets_the_tab_its_objective_can_fill() -> None:
    assert demo_kind(textured_dcgan()) == "generate"
    assert demo_kind(gz.create_objective("cyclegan.small32")) == "translate"
    assert demo_kind(gz.create_objective("gan_cls.int_cls_32")) == "text"


def test_the_page_listens_on_localhost_and_answers_like_the_models(served, tmp_path: Path) -> None:
    page, tabs = served
    assert page.local_url.startswith("http://127.0.0.1:")
    client = client_mod.Client(page.local_url, verbose=False)
    assert {"/generate_0", "/translate_1", "/translate_2", "/text_3"} <= set(
        client.view_api(return_format="dict")["named_endpoints"])
    gen = generate_fn(tabs[0][1])
    got = pixels(client.predict(3, 0.0, 4, api_name="/generate_0"))
    assert np.array_equal(got, np.asarray(gen(3, 0.0, 4).convert("RGB"))) and got.std() > 10
    end = pixels(client.predict(3, 1.0, 4, api_name="/generate_0"))  # the walk ends at the next seed's latent
    assert np.abs(end - np.asarray(gen(4, 0.0, 4).convert("RGB"))).max() <= 1 and not np.array_equal(end, got)
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(photo)
    for endpoint, (_, objective), control in (("/translate_1", tabs[1], ["size=large"]), ("/translate_2", tabs[2], "BtoA")):
        got = pixels(client.predict(client_mod.handle_file(str(photo)), control, api_name=endpoint))
        want = np.asarray(translate_fn(objective)(Image.open(photo), control).convert("RGB")).astype(int)
        assert got.shape == (32, 32, 3) and np.array_equal(got, want), endpoint
    caption = "a small red circle in the top left"
    got = pixels(client.predict(caption, 4, 5, api_name="/text_3"))
    want = text_fn(tabs[3][1], gz.create_encoder("bow.hashed"))(caption, 4, 5)
    assert got.shape == (2 + 2 * 34, 2 + 2 * 34, 3) and np.array_equal(got, np.asarray(want.convert("RGB")))


def test_slerp_walks_between_the_two_latents() -> None:
    a, b = torch.randn(3, 10), torch.randn(3, 10)
    assert torch.allclose(slerp(a, b, 0.0), a, atol=1e-6) and torch.allclose(slerp(a, b, 1.0), b, atol=1e-5)
    mid = slerp(a, b, 0.5)
    assert torch.allclose(mid.norm(dim=1), (a.norm(dim=1) + b.norm(dim=1)) / 2, rtol=0.2)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian package 'chromium')")
def test_a_browser_shows_the_generated_grid(served, tmp_path: Path) -> None:
    page, _ = served
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'p'}",
             "--virtual-time-budget=20000"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", page.local_url], capture_output=True, text=True,
                         timeout=180).stdout
    assert re.search(r'<img[^>]+src="[^"]*/file=[^"]+\.png"', dom), "the samples image was not rendered"
    shot = tmp_path / "page.png"
    subprocess.run([CHROMIUM, *flags, "--window-size=1200,900", f"--screenshot={shot}", page.local_url],
                   capture_output=True, timeout=180, check=True)
    image = pixels(shot)
    # the grid: a block of textured grey pixels, where the page around it is flat white and light grey
    grey = (np.abs(image - image.mean(axis=2, keepdims=True)).max(axis=2) < 8) & (image[..., 0] > 20) & (
        image[..., 0] < 235)
    rows = np.nonzero(grey.sum(1) > 40)[0]
    assert len(rows) > 60, "no image block on the screenshot"
    block = image[rows.min():rows.max(), :, 0][:, grey[rows.min():rows.max()].any(0)]
    assert block.std() > 15


def test_the_command_serves_on_localhost_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ganzoo_core.cli import main

    ckpt = gz.save(textured_dcgan(), tmp_path / "dcgan.safetensors")
    calls = []
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kw: calls.append(kw))
    assert main(["demo", str(ckpt)]) == 0
    assert calls and calls[0]["server_name"] == "127.0.0.1" and calls[0]["server_port"] is None  # Gradio: 7860 up
