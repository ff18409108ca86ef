"""Files in the layout of the released PyTorch StackGAN code (hanzhanggit/StackGAN-Pytorch ``code/model.py``) load by
``weights=``: the four released modules are transcribed below with their attribute names (so their state dicts have
the released names), given random weights, saved with ``torch.save(net.state_dict())`` and loaded into ganzoo; the
outputs agree in eval mode and in train mode (batch statistics, the same CA noise from the same seed)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from ganzoo_stackgan import convert_stackgan_pytorch, ganzoo_convert_checkpoint, load_stackgan_pytorch
from torch import Tensor, nn

import ganzoo_core as gz
from ganzoo_core import ops
from ganzoo_core.errors import CheckpointError

TOL = 1e-5  # fp32 max abs difference; both "ref" and ganzoo's default ("auto") ops must hold it


# -- the released modules, transcribed (config: GF_DIM, DF_DIM, CONDITION_DIM, Z_DIM, TEXT.DIMENSION, R_NUM) -------

def conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False)


def up_block(c_in: int, c_out: int) -> nn.Sequential:  # upBlock
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv3x3(c_in, c_out), nn.BatchNorm2d(c_out),
                         nn.ReLU(True))


def down(c_in: int, c_out: int, act: nn.Module) -> list[nn.Module]:  # conv k4 s2 p1 (no bias), BN, activation
    return [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), act]


class CA_NET(nn.Module):
    def __init__(self, text_dim: int, cond_dim: int) -> None:
        super().__init__()
        self.c_dim = cond_dim
        self.fc = nn.Linear(text_dim, 2 * cond_dim, bias=True)
        self.relu = nn.ReLU()

    def forward(self, text: Tensor, eps: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        x = self.relu(self.fc(text))
        mu, logvar = x[:, :self.c_dim], x[:, self.c_dim:]
        std = torch.exp(0.5 * logvar)
        if eps is None:  # the release draws ε here: FloatTensor(std.size()).normal_()
            eps = torch.empty(std.shape).normal_()
        return eps * std + mu, mu, logvar


class D_GET_LOGITS(nn.Module):
    def __init__(self, ndf: int, nef: int, bcondition: bool = True) -> None:
        super().__init__()
        self.nef, self.bcondition = nef, bcondition
        head: list[nn.Module] = [conv3x3(8 * ndf + nef, 8 * ndf), nn.BatchNorm2d(8 * ndf), nn.LeakyReLU(0.2, True)]
        self.outlogits = nn.Sequential(*(head if bcondition else []), nn.Conv2d(8 * ndf, 1, 4, 4), nn.Sigmoid())

    def forward(self, h: Tensor, c: Tensor | None = None) -> Tensor:
        if self.bcondition and c is not None:
            h = torch.cat((h, c.view(-1, self.nef, 1, 1).repeat(1, 1, 4, 4)), 1)
        return self.outlogits(h).view(-1)


class STAGE1_G(nn.Module):
    def __init__(self, gf_dim: int = 128, z_dim: int = 100, cond_dim: int = 128, text_dim: int = 1024) -> None:
        super().__init__()
        self.ngf = ngf = 8 * gf_dim
        self.ca_net = CA_NET(text_dim, cond_dim)
        self.fc = nn.Sequential(nn.Linear(z_dim + cond_dim, 16 * ngf, bias=False), nn.BatchNorm1d(16 * ngf),
                                nn.ReLU(True))
        self.upsample1 = up_block(ngf, ngf // 2)
        self.upsample2 = up_block(ngf // 2, ngf // 4)
        self.upsample3 = up_block(ngf // 4, ngf // 8)
        self.upsample4 = up_block(ngf // 8, ngf // 16)
        self.img = nn.Sequential(conv3x3(ngf // 16, 3), nn.Tanh())

    def forward(self, text: Tensor, noise: Tensor, eps: Tensor | None = None) -> tuple[None, Tensor, Tensor, Tensor]:
        c, mu, logvar = self.ca_net(text, eps)
        h = self.fc(torch.cat((noise, c), 1)).view(-1, self.ngf, 4, 4)
        h = self.upsample4(self.upsample3(self.upsample2(self.upsample1(h))))
        return None, self.img(h), mu, logvar


class STAGE1_D(nn.Module):
    def __init__(self, df_dim: int = 64, cond_dim: int = 128) -> None:
        super().__init__()
        ndf = df_dim
        self.encode_img = nn.Sequential(
            nn.Conv2d(3, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
            *down(ndf, 2 * ndf, nn.LeakyReLU(0.2, True)), *down(2 * ndf, 4 * ndf, nn.LeakyReLU(0.2, True)),
            *down(4 * ndf, 8 * ndf, nn.LeakyReLU(0.2, True)))
        self.get_cond_logits = D_GET_LOGITS(ndf, cond_dim)
        self.get_uncond_logits = None

    def forward(self, image: Tensor) -> Tensor:
        return self.encode_img(image)


class ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(conv3x3(channels, channels), nn.BatchNorm2d(channels), nn.ReLU(True),
                                   conv3x3(channels, channels), nn.BatchNorm2d(channels))
        self.relu = nn.ReLU(True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.block(x) + x)


class STAGE2_G(nn.Module):
    def __init__(self, stage1: STAGE1_G, gf_dim: int = 128, cond_dim: int = 128, text_dim: int = 1024,
                 r_num: int = 4) -> None:
        super().__init__()
        ngf, self.ef_dim = gf_dim, cond_dim
        self.STAGE1_G = stage1
        for p in self.STAGE1_G.parameters():
            p.requires_grad = False
        self.ca_net = CA_NET(text_dim, cond_dim)
        self.encoder = nn.Sequential(conv3x3(3, ngf), nn.ReLU(True), *down(ngf, 2 * ngf, nn.ReLU(True)),
                                     *down(2 * ngf, 4 * ngf, nn.ReLU(True)))
        self.hr_joint = nn.Sequential(conv3x3(cond_dim + 4 * ngf, 4 * ngf), nn.BatchNorm2d(4 * ngf), nn.ReLU(True))
        self.residual = nn.Sequential(*(ResBlock(4 * ngf) for _ in range(r_num)))
        self.upsample1 = up_block(4 * ngf, 2 * ngf)
        self.upsample2 = up_block(2 * ngf, ngf)
        self.upsample3 = up_block(ngf, ngf // 2)
        self.upsample4 = up_block(ngf // 2, ngf // 4)
        self.img = nn.Sequential(conv3x3(ngf // 4, 3), nn.Tanh())

    def forward(self, text: Tensor, noise: Tensor, eps1: Tensor | None = None, eps2: Tensor | None = None
                ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        _, low, _, _ = self.STAGE1_G(text, noise, eps1)
        low = low.detach()
        h = self.encoder(low)
        c, mu, logvar = self.ca_net(text, eps2)
        h = self.hr_joint(torch.cat([h, c.view(-1, self.ef_dim, 1, 1).repeat(1, 1, 16, 16)], 1))
        h = self.upsample4(self.upsample3(self.upsample2(self.upsample1(self.residual(h)))))
        return low, self.img(h), mu, logvar


class STAGE2_D(nn.Module):
    def __init__(self, df_dim: int = 64, cond_dim: int = 128) -> None:
        super().__init__()
        ndf = df_dim
        widths = [ndf * 2**i for i in range(6)]  # 64 … 2048
        layers: list[nn.Module] = [nn.Conv2d(3, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for a, b in zip(widths, widths[1:]):
            layers += down(a, b, nn.LeakyReLU(0.2, True))
        for a, b in [(32 * ndf, 16 * ndf), (16 * ndf, 8 * ndf)]:
            layers += [conv3x3(a, b), nn.BatchNorm2d(b), nn.LeakyReLU(0.2, True)]
        self.encode_img = nn.Sequential(*layers)
        self.get_cond_logits = D_GET_LOGITS(ndf, cond_dim, bcondition=True)
        self.get_uncond_logits = D_GET_LOGITS(ndf, cond_dim, bcondition=False)

    def forward(self, image: Tensor) -> Tensor:
        return self.encode_img(image)


# -- helpers --------------------------------------------------------------------------------------------------------

def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def norms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def randomise(module: nn.Module, seed: int, calibrate: Callable[[], Any]) -> nn.Module:
    """Random weights everywhere (BatchNorm affine too), then running statistics taken from one train-mode batch,
    so that eval mode sees activations of a sensible scale and the Tanh is not saturated."""
    torch.manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0.0, 0.1)
        elif isinstance(m, (nn.Conv2d, nn.Linear)):
            m.reset_parameters()
            if m.bias is not None:
                m.bias.normal_(0.0, 0.1)
    module.train()
    for m in norms(module):
        m.momentum = 1.0
    calibrate()
    for m in norms(module):
        m.momentum = 0.1
        m.num_batches_tracked.fill_(1000)
    return module


def max_diff(a: Tensor, b: Tensor) -> float:
    assert a.shape == b.shape
    return (a.detach() - b.detach()).abs().max().item()


def save(module: nn.Module, path: Path) -> Path:
    torch.save(module.state_dict(), path)
    return path


def released(factory: Callable[[], nn.Module], path: Path) -> nn.Module:
    """The transcribed module with the file's weights (each test starts from the saved state)."""
    with torch.device("meta"):
        module = factory()
    module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True, assign=True)
    return module


@contextlib.contextmanager
def impls(which: str) -> Iterator[None]:
    """``ref``: every op on its reference implementation; ``auto``: ganzoo's default choice for the device."""
    with ops.use_impls("ref") if which == "ref" else contextlib.nullcontext():
        yield


def text_and_noise(n: int, seed: int) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1024, generator=gen), torch.randn(n, 100, generator=gen)


def assert_not_saturated(image: Tensor) -> None:
    """Outputs that carry information: not all ±1 and not all equal, so a difference would show."""
    assert (image.abs() < 0.9).float().mean() > 0.5 and image.std() > 0.05


def same_buffers(official: nn.Module, ours: nn.Module) -> float:
    """Max abs difference of the BatchNorm running statistics (and all weights), compared under ganzoo's names."""
    mine = ours.state_dict()
    theirs = convert_stackgan_pytorch(official.state_dict(), ours)
    return max(max_diff(t.float(), mine[k].float()) for k, t in theirs.items())


# -- Stage-I --------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stage1(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """netG / netD files of a Stage-I run: the released names, random weights."""
    root = tmp_path_factory.mktemp("stackgan_pytorch_s1")
    g, d = STAGE1_G(), STAGE1_D()
    text, noise = text_and_noise(8, 100)
    randomise(g, 1, lambda: g(text, noise))
    g_path = save(g, root / "netG_epoch_120.pth")
    randomise(d, 2, lambda: d(g(text, noise)[1]))
    return g_path, save(d, root / "netD_epoch_last.pth")


def test_released_sizes_and_parameter_counts_match_the_variants() -> None:
    sizes = gz.get_generator_cfg("stackgan.s1_64")  # GF_DIM 128 (·8), Z_DIM 100, CONDITION_DIM 128, TEXT 1024
    assert (sizes.ngf, sizes.nz, sizes.cond_dim, sizes.text_dim, sizes.image_size) == (8 * 128, 100, 128, 1024, 64)
    sizes2 = gz.get_generator_cfg("stackgan.s2_256")  # GF_DIM 128, R_NUM 4
    assert (sizes2.ngf, sizes2.n_res, sizes2.cond_dim, sizes2.in_size, sizes2.image_size) == (128, 4, 128, 64, 256)
    assert (gz.get_discriminator_cfg("stackgan.s1_64").ndf, gz.get_discriminator_cfg("stackgan.s2_256").ndf) == (64, 64)
    with torch.device("meta"):
        s1 = STAGE1_G()
        pairs = [(s1, "generator", "stackgan.s1_64", 10_301_248), (STAGE1_D(), "discriminator", "stackgan.s1_64",
                                                                    5_715_713),
                 (STAGE2_G(s1), "generator", "stackgan.s2_256", 26_290_080 + 10_301_248),
                 (STAGE2_D(), "discriminator", "stackgan.s2_256", 71_269_122)]
        for official, kind, name, count in pairs:
            ours = gz.create(kind, name)
            assert n_params(official) == count
            extra = n_params(s1) if isinstance(official, STAGE2_G) else 0  # the release embeds Stage-I in Stage-II G
            assert n_params(ours) + extra == count, name
            assert len(official.state_dict()) - (len(s1.state_dict()) if extra else 0) == len(ours.state_dict())


@pytest.mark.parametrize("impl", ["ref", "auto"])
def test_stage1_generator_loads_and_matches(stage1: tuple[Path, Path], impl: str) -> None:
    path = stage1[0]
    official = released(STAGE1_G, path)
    ours = gz.create_generator("stackgan.s1_64", weights=path)
    text, noise = text_and_noise(4, 7)
    eps = torch.randn(4, 128)
    with torch.no_grad(), impls(impl):
        official.eval(), ours.eval()
        _, want, mu, logvar = official(text, noise, eps)
        got, got_mu, got_logvar = ours(noise, text, eps=eps)
        assert_not_saturated(want)
        assert max(max_diff(got, want), max_diff(got_mu, mu), max_diff(got_logvar, logvar)) <= TOL
        official.train(), ours.train()  # batch statistics; ε drawn inside, from the same seed
        torch.manual_seed(11)
        _, want, _, _ = official(text, noise)
        torch.manual_seed(11)
        got = ours(noise, text)[0]
        assert_not_saturated(want)
        assert max_diff(got, want) <= TOL
        assert same_buffers(official, ours) <= TOL  # the running statistics moved alike


def test_stage1_discriminator_loads_and_matches(stage1: tuple[Path, Path]) -> None:
    path = stage1[1]
    official = released(STAGE1_D, path)
    ours = gz.create_discriminator("stackgan.s1_64", weights=path)
    gen = torch.Generator().manual_seed(3)
    image, mu = torch.rand(4, 3, 64, 64, generator=gen) * 2 - 1, torch.randn(4, 128, generator=gen)
    with torch.no_grad():
        for train in (False, True):
            official.train(train), ours.train(train)
            h = official(image)
            want = official.get_cond_logits(h, mu)  # the release's D ends in a Sigmoid; ganzoo's gives the logit
            if not train:  # (in train mode a second pass would move the running statistics twice)
                assert max_diff(ours.features(image), h) <= TOL
            got = ours(image, mu)
            assert 0.01 < want.min() and want.max() < 0.99  # not saturated
            assert max_diff(torch.sigmoid(got), want) <= TOL, f"train={train}"
        assert same_buffers(official, ours) <= TOL


# -- Stage-II -------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stage2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """netG / netD files of a Stage-II run (netG with its STAGE1_G inside)."""
    root = tmp_path_factory.mktemp("stackgan_pytorch_s2")
    g, d = STAGE2_G(STAGE1_G()), STAGE2_D()
    text, noise = text_and_noise(4, 200)
    randomise(g, 4, lambda: g(text, noise))
    g_path = save(g, root / "netG_epoch_100.pth")
    randomise(d, 5, lambda: d(g(text, noise)[1]))
    return g_path, save(d, root / "netD_epoch_last.pth")


def stage2_g() -> STAGE2_G:
    return STAGE2_G(STAGE1_G())


@pytest.mark.parametrize("impl", ["ref", "auto"])
def test_stage2_file_loads_stage2_and_its_embedded_stage1(stage2: tuple[Path, Path], impl: str) -> None:
    path = stage2[0]
    official = released(stage2_g, path)
    s1 = gz.create_generator("stackgan.s1_64", weights=path)  # STAGE1_G.* of the Stage-II file
    s2 = gz.create_generator("stackgan.s2_256", weights=path)  # the rest
    text, noise = text_and_noise(2, 9)
    eps1, eps2 = torch.randn(2, 128), torch.randn(2, 128)
    with torch.no_grad(), impls(impl):
        official.eval(), s1.eval(), s2.eval()
        low, want, mu, logvar = official(text, noise, eps1, eps2)
        got_low = s1(noise, text, eps=eps1)[0]
        got, got_mu, got_logvar = s2(got_low, text, eps=eps2)
        assert_not_saturated(want)
        assert max(max_diff(got_low, low), max_diff(got_mu, mu), max_diff(got_logvar, logvar)) <= TOL
        assert max_diff(got, want) <= TOL
        official.train(), s1.train(), s2.train()  # the release runs its Stage-I in the Stage-II's mode
        torch.manual_seed(12)
        low, want, _, _ = official(text, noise)  # draws Stage-I's ε, then Stage-II's
        torch.manual_seed(12)
        got_low = s1(noise, text)[0]
        got = s2(got_low, text)[0]
        assert_not_saturated(want)
        assert max_diff(got_low, low) <= TOL and max_diff(got, want) <= TOL
        assert same_buffers(official, s1) <= TOL and same_buffers(official, s2) <= TOL


def test_the_subpixel_upsampling_is_as_close_to_the_exact_function_as_the_released_fp32_code(
        stage2: tuple[Path, Path]) -> None:
    """The sub-pixel form (bf16's default, an fp32 option) is the same function summed in another order: against a
    float64 evaluation it is no farther off than the released network in fp32 is, though the two fp32 results differ
    by more than TOL (what the docs say: up to ~3e-5 at a Stage-II image)."""
    path = stage2[0]
    official = released(stage2_g, path).eval()
    s1 = gz.create_generator("stackgan.s1_64", weights=path).eval()
    s2 = gz.create_generator("stackgan.s2_256", weights=path).eval()
    text, noise = text_and_noise(2, 9)
    eps1, eps2 = torch.randn(2, 128), torch.randn(2, 128)
    with torch.no_grad():
        want = official(text, noise, eps1, eps2)[1]
        exact = official.double()(text.double(), noise.double(), eps1.double(), eps2.double())[1]
        with ops.use_impls(upsample_conv="subpixel"):
            got = s2(s1(noise, text, eps=eps1)[0], text, eps=eps2)[0]
    released_error, subpixel_error = max_diff(want.double(), exact), max_diff(got.double(), exact)
    assert subpixel_error <= 1.5 * released_error + 1e-6
    assert max_diff(got, want) <= 1e-4


@pytest.mark.parametrize("training", [False, True])
def test_stage2_objective_runs_the_released_pipeline(stage2: tuple[Path, Path], training: bool) -> None:
    """The Stage-II objective runs its frozen Stage-I in its own mode, as the released STAGE2_G does: the same
    function in eval mode and in train mode (batch statistics in Stage-I too); stage1_train_mode=False (ours) keeps
    Stage-I in eval mode."""
    path = stage2[0]
    official = released(stage2_g, path)
    obj = gz.create_objective("stackgan.s2_256")
    gz.load_weights(obj.stage1, path)
    gz.load_weights(obj.networks["G"], path)
    text, _ = text_and_noise(2, 13)
    gen = torch.Generator().manual_seed(5)  # generate() draws z, Stage-I's ε, Stage-II's ε from ctx["noise"]
    z, eps1, eps2 = torch.randn(2, 100, generator=gen), torch.randn(2, 128, generator=gen), torch.randn(
        2, 128, generator=gen)
    with torch.no_grad(), ops.use_impls("ref"):
        obj.train(training), official.train(training)
        image, mu, _, low = obj.generate(text, {"noise": torch.Generator().manual_seed(5)})
        want_low, want, want_mu, _ = official(text, z, eps1, eps2)
        assert low is not None and obj.stage1.training == training
        assert max(max_diff(low, want_low), max_diff(image, want), max_diff(mu, want_mu)) <= TOL
    ours = gz.create_objective("stackgan.s2_256", stage1_train_mode=False).train()
    assert not ours.stage1.training and ours.networks["G"].training


def test_stage2_discriminator_loads_and_matches(stage2: tuple[Path, Path]) -> None:
    path = stage2[1]
    official = released(STAGE2_D, path)
    ours = gz.create_discriminator("stackgan.s2_256", weights=path)
    gen = torch.Generator().manual_seed(6)
    image, mu = torch.rand(2, 3, 256, 256, generator=gen) * 2 - 1, torch.randn(2, 128, generator=gen)
    with torch.no_grad():
        for train in (False, True):
            official.train(train), ours.train(train)
            h = official(image)
            want_cond, want_uncond = official.get_cond_logits(h, mu), official.get_uncond_logits(h)
            got = ours(image, mu)
            assert isinstance(got, gz.DiscOutput)
            assert 0.01 < want_cond.min() and want_cond.max() < 0.99
            assert max(max_diff(torch.sigmoid(got.logits), want_cond),
                       max_diff(torch.sigmoid(got.aux), want_uncond)) <= TOL, f"train={train}"
        assert same_buffers(official, ours) <= TOL


# -- other sizes, old files, and files that do not fit ---------------------------------------------------------------

def test_other_sizes_load_through_load_stackgan_pytorch(tmp_path: Path) -> None:
    """The released COCO files are GF_DIM 192 / DF_DIM 96 / R_NUM 2: other sizes than the registered variants. The
    hook names them; a network built with them takes the file (small sizes here)."""
    official = STAGE2_G(STAGE1_G(gf_dim=8), gf_dim=16, r_num=2)
    text, noise = text_and_noise(3, 21)
    randomise(official, 8, lambda: official(text, noise))
    path = save(official, tmp_path / "netG_epoch_90.pth")
    with pytest.raises(CheckpointError, match=r"released tensor encoder\.0\.weight \(16, 3, 3, 3\) does not fit "
                                              r"stackgan\.s2_256: its encoder\.0\.weight is \(128, 3, 3, 3\); the file "
                                              r"was saved with ngf=16, n_res=2: build the network with those sizes"):
        gz.create_generator("stackgan.s2_256", weights=path)
    s1 = load_stackgan_pytorch(gz.create_generator("stackgan.s1_64", ngf=64), path)
    s2 = load_stackgan_pytorch(gz.create_generator("stackgan.s2_256", ngf=16, n_res=2), path)
    eps1, eps2 = torch.randn(3, 128), torch.randn(3, 128)
    with torch.no_grad(), ops.use_impls("ref"):
        official.eval(), s1.eval(), s2.eval()
        _, want, _, _ = official(text, noise, eps1, eps2)
        got = s2(s1(noise, text, eps=eps1)[0], text, eps=eps2)[0]
    assert max_diff(got, want) <= TOL


def test_files_from_before_pytorch_0_4_load(stage1: tuple[Path, Path], tmp_path: Path) -> None:
    official = torch.load(stage1[1], weights_only=True)
    state = {k: v for k, v in official.items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pth")
    ours = gz.create_discriminator("stackgan.s1_64", weights=tmp_path / "old.pth")
    assert ours.state_dict()["features.1.1.num_batches_tracked"].item() == 0
    assert torch.equal(ours.state_dict()["cond_head.1.bias"], official["get_cond_logits.outlogits.3.bias"])


def test_a_file_that_does_not_fit_names_the_first_tensor(stage1: tuple[Path, Path],
                                                         stage2: tuple[Path, Path]) -> None:
    (g1, d1), g2 = stage1, stage2[0]
    with pytest.raises(CheckpointError, match=r"released tensor ca_net\.fc\.weight \(256, 1024\) does not fit "
                                              r"stackgan\.s1_32: its ca\.fc\.weight is \(256, 512\); the file was "
                                              r"saved with text_dim=1024, ngf=1024"):
        gz.create_generator("stackgan.s1_32", weights=g1)
    with pytest.raises(CheckpointError, match=r"released tensor STAGE1_G\.ca_net\.fc\.weight \(256, 1024\) does not "
                                              r"fit stackgan\.s1_16: its ca\.fc\.weight is \(256, 512\)"):
        gz.create_generator("stackgan.s1_16", weights=g2)
    with pytest.raises(CheckpointError, match=r"released tensor encode_img\.0\.weight \(64, 3, 4, 4\) does not fit "
                                              r"stackgan\.s1_32: its features\.0\.0\.weight is \(32, 3, 4, 4\)"):
        gz.create_discriminator("stackgan.s1_32", weights=d1)
    with pytest.raises(CheckpointError, match=r"no released tensor for stackgan\.s2_256's features\.4\.0\.weight "
                                              r"\(1024, 512, 4, 4\) \(a STAGE1_D file\); the file was saved with "
                                              r"image_size=64, uncond_head=False"):
        gz.create_discriminator("stackgan.s2_256", weights=d1)
    with pytest.raises(CheckpointError, match=r"released Stage-I generator \(STAGE1_G\), but stackgan\.s2_256 is a "
                                              r"Stage-II generator"):
        gz.create_generator("stackgan.s2_256", weights=g1)
    with pytest.raises(CheckpointError, match=r"released discriminator \(STAGE1_D\), but stackgan\.s1_64 is a "
                                              r"generator"):
        gz.create_generator("stackgan.s1_64", weights=d1)


def test_the_hook_leaves_other_files_alone(stage1: tuple[Path, Path], tmp_path: Path) -> None:
    g1 = stage1[0]
    assert ganzoo_convert_checkpoint("generator", "dcgan.64", g1) is None  # another family
    torch.save({"main.0.weight": torch.zeros(1)}, tmp_path / "other.pth")
    assert ganzoo_convert_checkpoint("generator", "stackgan.s1_64", tmp_path / "other.pth") is None  # another layout
    (tmp_path / "text.pth").write_text("not a torch file")
    assert ganzoo_convert_checkpoint("generator", "stackgan.s1_64", tmp_path / "text.pth") is None
    converted = ganzoo_convert_checkpoint("generator", "stackgan.s1_64", g1)
    assert converted is not None and "up.0.0.weight" in converted and "upsample1.1.weight" not in converted
    with pytest.raises(CheckpointError, match="not a StackGAN-Pytorch state dict"):
        convert_stackgan_pytorch({"main.0.weight": torch.zeros(1)}, gz.create_generator("stackgan.s1_16"))


@pytest.mark.parametrize("which", ["stage1", "stage2"])
def test_stage2_objective_takes_a_released_file_as_its_stage1(stage1: tuple[Path, Path], stage2: tuple[Path, Path],
                                                              which: str) -> None:
    """stage1_checkpoint= also takes a released netG: a Stage-I file, or a Stage-II file's embedded STAGE1_G; the
    objective's config then names the Stage-I by registry name and config, not by the path."""
    path = (stage1 if which == "stage1" else stage2)[0]
    obj = gz.create_objective("stackgan.s2_256", stage1_checkpoint=str(path))
    want = gz.create_generator("stackgan.s1_64", weights=path).state_dict()
    assert all(torch.equal(v, want[k]) for k, v in obj.stage1.state_dict().items())
    assert obj.cfg.stage1 == "stackgan.s1_64" and obj.cfg.stage1_checkpoint is None
    assert not any(p.requires_grad for p in obj.stage1.parameters())
