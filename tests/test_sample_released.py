"""``ganzoo sample FILE --objective NAME``: a released generator file, not a ganzoo checkpoint, sampled end to end. A
StackGAN-Pytorch Stage-II ``netG`` (with its ``STAGE1_G``) and a char-CNN-RNN Torch7 encoder are written with random
weights by the plugins' own tests' writers; the grid the command writes is what the transcribed official STAGE2_G
computes for the encoder's embeddings of the captions with the same noise."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from conftest import REPO
from PIL import Image

import ganzoo_core as gz
from ganzoo_core.cli import main
from ganzoo_core.errors import InputError
from ganzoo_core.gan_objective import load_generator_weights
from ganzoo_core.testing import write_t7
from ganzoo_core.visual import make_grid

pytest.importorskip("ganzoo_stackgan")
pytest.importorskip("ganzoo_char_cnn_rnn")
pytest.importorskip("torchfile")


def _plugin_tests(path: str, name: str) -> ModuleType:
    """A plugin's test module (the tests folders are not packages), under a name of its own."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


official = _plugin_tests("plugins/stackgan/tests/test_official_weights.py", "_stackgan_official_weights")
torch7 = _plugin_tests("plugins/char-cnn-rnn/tests/test_char_cnn_rnn.py", "_char_cnn_rnn_tests")

CAPTIONS = ["this bird has a bright red crown and a short, pointed black beak.",
            "a small yellow bird with grey wings and a white belly."]
N, SEED, SIZE, PAD = 2, 3, 256, 2


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A Stage-II netG (its STAGE1_G inside) and a CUB char-CNN-RNN checkpoint, under the released file names."""
    root = tmp_path_factory.mktemp("released")
    g = official.STAGE2_G(official.STAGE1_G())
    text, noise = official.text_and_noise(4, 200)
    official.randomise(g, 4, lambda: g(text, noise))
    net, _ = torch7.torch_text_encoder("long", np.random.default_rng(1), kind="Cuda")
    t7 = root / "lm_sje_nc4_cub_hybrid_gru18_a1_c512_0.00070_1_10_trainvalids.txt_iter30000.t7"
    return official.save(g, root / "netG_epoch_600.pth"), write_t7(torch7.checkpoint(net), t7)


def test_sample_runs_a_released_stage2_file_with_a_torch7_encoder(released: tuple[Path, Path], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    netg, t7 = released
    out = tmp_path / "grid.png"
    argv = ["sample", str(netg), "--objective", "stackgan.s2_256", "--set", "stage1_train_mode=True",
            "--encoder", "char_cnn_rnn.cub", "--encoder-weights", str(t7), "--n", str(N), "--seed", str(SEED),
            "--out", str(out)]
    code = main([*argv, *(arg for caption in CAPTIONS for arg in ("--text", caption))])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert f"wrote {len(CAPTIONS) * N} samples from {netg}" in stdout
    grid = np.asarray(Image.open(out).convert("RGB"))
    assert grid.shape == (len(CAPTIONS) * (SIZE + PAD) + PAD, N * (SIZE + PAD) + PAD, 3)  # a row per caption

    # the official STAGE2_G on the encoder's embeddings, with the noise sample() draws: z, Stage-I's ε, Stage-II's ε
    emb = gz.create_encoder("char_cnn_rnn.cub", weights=t7).encode(CAPTIONS).repeat_interleave(N, 0)
    gen = gz.seeded_rng(SEED)
    z, eps1, eps2 = (torch.randn(len(emb), d, generator=gen) for d in (100, 128, 128))
    with torch.no_grad():
        want = official.released(official.stage2_g, netg).eval()(emb, z, eps1, eps2)[1]
    official.assert_not_saturated(want)
    objective = load_generator_weights(gz.create_objective("stackgan.s2_256"), netg).eval()  # what the command runs
    got = objective.sample(len(emb), batch={"text_emb": emb}, seed=SEED)
    assert official.max_diff(got, want) <= official.TOL
    assert np.array_equal(grid, make_grid(got, N))
    assert np.abs(grid.astype(int) - make_grid(want, N).astype(int)).max() <= 1  # the PNG: within one level

    rows = [grid[PAD + r * (SIZE + PAD):][:SIZE].astype(float) for r in range(len(CAPTIONS))]
    assert np.abs(rows[0] - rows[1]).mean() > 5  # the two captions give other images


def test_a_released_file_without_objective_is_one_line(released: tuple[Path, Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    netg, t7 = released
    for path in (netg, t7):
        code = main(["sample", str(path), "--out", str(tmp_path / "x.png")])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        assert f"{str(path)!r} is not a ganzoo checkpoint" in err and "pass --objective NAME" in err
    code = main(["sample", str(netg), "--set", "kl_coef=1.0", "--out", str(tmp_path / "x.png")])
    assert code == 2 and "--set kl_coef=1.0 needs --objective NAME" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_the_default_loads_the_file_into_g(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An objective without a rule of its own takes the file into networks["G"]; one without a G is refused."""
    torch.manual_seed(0)
    source = gz.create_generator("dcgan.28", ngf=4)
    path = tmp_path / "netG_epoch_24.pth"
    torch.save(source.state_dict(), path)
    code = main(["sample", str(path), "--objective", "dcgan.28", "--set", "generator_kwargs={'ngf': 4}", "--n", "4",
                 "--out", str(tmp_path / "g.png")])
    assert code == 0, capsys.readouterr().err
    assert Image.open(tmp_path / "g.png").size == (2 * 30 + 2, 2 * 30 + 2)
    objective = load_generator_weights(gz.create_objective("dcgan.28", generator_kwargs={"ngf": 4}), path)
    assert all(torch.equal(t, source.state_dict()[k]) for k, t in objective.networks["G"].state_dict().items())
    with pytest.raises(InputError, match=r"has no generator networks\['G'\] \(its networks: \['text', 'image'\]\)"):
        load_generator_weights(gz.create_objective("char_cnn_rnn.sje_small"), path)
