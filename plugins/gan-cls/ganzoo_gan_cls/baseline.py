"""The official GAN-INT-CLS training iteration (reedscot/icml2016 ``main_cls_int.lua`` as ``scripts/train_cub.sh``
runs it) in PyTorch eager fp32, for ``ganzoo bench models --baseline official``.

The Torch code is written out here from its facts (models.md §2.1–2.2), not through ganzoo's networks or objective:

- G and D are the ``main_cls_int.lua`` networks at the CUB sizes (ngf 128, ndf 64, nz 100, nt 128, text 1024), every
  convolution with its bias as Torch's ``SpatialConvolution`` / ``SpatialFullConvolution`` have one; D ends in a
  Sigmoid and the losses are BCE on probabilities (``nn.BCECriterion``).
- One iteration is ``optim.adam(fDx)`` then ``optim.adam(fGx)``: each closure first sets every conv bias of both
  networks to 0. fDx: the text of an image is the mean of its 4 caption embeddings; D forward and backward on (real,
  right text) → 1, on (wrong image, right text) → 0 weighted by cls_weight 0.5, and on (G(z, text), text) → 0
  weighted 0.5, three passes with their own BatchNorm statistics; G runs forward only (no autograd). fGx: a fresh
  1.5·B batch (the B texts and B/2 interpolations ½(t_i + t_{i+B/2})), labelled real, BCE with per-sample weights 1
  (interp_weight 1), back through D into G only (Torch's ``updateGradInput``: D's parameter gradients are not
  computed). Adam lr 2e-4, β1 0.5 on each network.

The same model in ganzoo is ``gan_cls.int_cls`` with ``mismatch="wrong_image"`` (the code's mismatch pair).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import ganzoo_core as gz
from ganzoo_core.errors import ConfigError

NAME = "gan_cls.official"
OBJECTIVE = "gan_cls.int_cls"  # the ganzoo objective with the same networks, losses and optimizers
OVERRIDES: dict[str, Any] = {"mismatch": "wrong_image"}  # main_cls_int.lua pairs a wrong image with the right text
SOURCE = ("reedscot/icml2016@db3f0c6d7c9ef3ef138cb15bf36592c7e19eb9a0 main_cls_int.lua, scripts/train_cub.sh "
          "(cls_weight 0.5, interp_weight 1, numCaption 4)")
BATCH_SIZE = 64  # batchSize of main_cls_int.lua
NOTE = ("D step (real/right, wrong image/right text ×0.5, fake ×0.5: three D passes, each backpropagated; G forward "
        "without autograd) then G step on 1.5·B (B texts + B/2 interpolations, β 0.5, fresh z; D parameter gradients "
        "not computed); every conv bias zeroed at the start of each step; text = mean of 4 captions; logging left out")

TEXT_DIM, NT, NZ, NGF, NDF = 1024, 128, 100, 128, 64  # txtSize, nt, nz, ngf, ndf
N_CAPTIONS = 4  # numCaption: the text of an image is the mean of this many caption embeddings
CLS_WEIGHT = 0.5
INTERP_WEIGHT = 1.0
LR, BETAS = 2e-4, (0.5, 0.999)

# ---------------------------------------------------------------------------------------------------------------
# Networks (main_cls_int.lua)
# ---------------------------------------------------------------------------------------------------------------


class Residual(nn.Module):
    """``ConcatTable(Identity, branch) → CAddTable → act``: act(x + branch(x))."""

    def __init__(self, branch: nn.Module, act: nn.Module) -> None:
        super().__init__()
        self.branch = branch
        self.act = act

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.branch(x))


def bottleneck(channels: int, inner: int, act: Callable[[], nn.Module]) -> nn.Sequential:
    """1×1 conv to ``inner`` + BN + act, 3×3 conv + BN + act, 3×3 conv back to ``channels`` + BN (biases kept)."""
    return nn.Sequential(
        nn.Conv2d(channels, inner, 1), nn.BatchNorm2d(inner), act(),
        nn.Conv2d(inner, inner, 3, 1, 1), nn.BatchNorm2d(inner), act(),
        nn.Conv2d(inner, channels, 3, 1, 1), nn.BatchNorm2d(channels),
    )


def _relu() -> nn.Module:
    return nn.ReLU(inplace=True)


def _lrelu() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


def torch7_init_(module: nn.Module) -> nn.Module:
    """``weights_init`` of the Torch code: conv weights N(0, 0.02) and biases 0, BatchNorm (2-d and 1-d) weights
    N(1, 0.02) and biases 0; Linear layers keep their default init (the same U(±1/√fan_in) in Torch and PyTorch)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


class Generator(nn.Module):
    """netG: [z, LReLU(Linear(text))] as 228×1×1 → 4×4 (BN) → residual → 8×8 (BN) → residual → 16 → 32 → 3×64×64."""

    def __init__(self, ngf: int = NGF) -> None:
        super().__init__()
        self.text = nn.Sequential(nn.Linear(TEXT_DIM, NT), _lrelu())  # fcG
        self.main = nn.Sequential(
            nn.ConvTranspose2d(NZ + NT, ngf * 8, 4), nn.BatchNorm2d(ngf * 8),  # (B, 1024, 4, 4), no ReLU before the add
            Residual(bottleneck(ngf * 8, ngf * 2, _relu), _relu()),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1), nn.BatchNorm2d(ngf * 4),  # (B, 512, 8, 8)
            Residual(bottleneck(ngf * 4, ngf, _relu), _relu()),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1), nn.BatchNorm2d(ngf * 2), _relu(),  # (B, 256, 16, 16)
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1), nn.BatchNorm2d(ngf), _relu(),  # (B, 128, 32, 32)
            nn.ConvTranspose2d(ngf, 3, 4, 2, 1), nn.Tanh(),  # (B, 3, 64, 64)
        )
        torch7_init_(self)

    def forward(self, z: Tensor, text: Tensor) -> Tensor:
        x = torch.cat([z, self.text(text)], dim=1)  # JoinTable(2): (B, nz + nt)
        return self.main(x[:, :, None, None])


class Discriminator(nn.Module):
    """netD: image → 512×4×4 (residual at 4×4); text → Linear + BN1d + LReLU replicated 4×4; joined → 1×1 conv → 4×4
    conv → Sigmoid → (B,) probabilities."""

    def __init__(self, ndf: int = NDF) -> None:
        super().__init__()
        self.body = nn.Sequential(  # convD
            nn.Conv2d(3, ndf, 4, 2, 1), _lrelu(),  # (B, 64, 32, 32)
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1), nn.BatchNorm2d(ndf * 2), _lrelu(),  # (B, 128, 16, 16)
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1), nn.BatchNorm2d(ndf * 4),  # (B, 256, 8, 8), no activation
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1), nn.BatchNorm2d(ndf * 8),  # (B, 512, 4, 4)
            Residual(bottleneck(ndf * 8, ndf * 2, _lrelu), _lrelu()),
        )
        self.text = nn.Sequential(nn.Linear(TEXT_DIM, NT), nn.BatchNorm1d(NT), _lrelu())  # fcD
        self.head = nn.Sequential(
            nn.Conv2d(ndf * 8 + NT, ndf * 8, 1), nn.BatchNorm2d(ndf * 8), _lrelu(),
            nn.Conv2d(ndf * 8, 1, 4), nn.Sigmoid(),  # (B, 1, 1, 1)
        )
        torch7_init_(self)

    def forward(self, image: Tensor, text: Tensor) -> Tensor:
        h = self.body(image)
        t = self.text(text)[:, :, None, None].expand(-1, -1, *h.shape[-2:])  # Replicate(4, 3), Replicate(4, 4)
        return self.head(torch.cat([h, t], dim=1)).view(-1)


def official_networks(device: str = "cpu", seed: int = 0) -> dict[str, nn.Module]:
    """G and D of main_cls_int.lua, initialised from ``seed`` (global RNG, as the core's train_step seeds), on
    ``device``, in training mode."""
    torch.manual_seed(seed)
    return {"G": Generator().to(device).train(), "D": Discriminator().to(device).train()}


def conv_biases(*modules: nn.Module) -> list[Tensor]:
    """The bias of every convolution (``torch.type(m):find('Convolution')``) of ``modules``."""
    return [m.bias for module in modules for m in module.modules()
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.bias is not None]


# ---------------------------------------------------------------------------------------------------------------
# One iteration
# ---------------------------------------------------------------------------------------------------------------


def _check_batch(batch_size: int) -> None:
    if batch_size < 2 or batch_size % 2:
        raise ConfigError(f"GAN-INT needs an even batch size of at least 2 (B/2 interpolated texts), got "
                          f"{batch_size}; use 64 as main_cls_int.lua")


def iteration(networks: dict[str, nn.Module], batch_size: int, device: str = "cpu") -> Callable[[], tuple[Tensor, Tensor]]:
    """One ``optim.adam(fDx)`` + ``optim.adam(fGx)`` on synthetic data of the official shapes (real and wrong images in
    [-1, 1], 4 caption embeddings per image), everything allocated here; the callable returns (errD, errG)."""
    _check_batch(batch_size)
    G, D = networks["G"], networks["D"]
    b, h = batch_size, batch_size // 2
    opt_d = torch.optim.Adam(D.parameters(), lr=LR, betas=BETAS)
    opt_g = torch.optim.Adam(G.parameters(), lr=LR, betas=BETAS)
    biases = conv_biases(D, G)
    d_params = list(D.parameters())
    real = torch.rand(b, 3, 64, 64, device=device) * 2 - 1
    wrong = torch.rand(b, 3, 64, 64, device=device) * 2 - 1
    captions = torch.randn(b, N_CAPTIONS, TEXT_DIM, device=device)  # input_txt_raw
    text_interp = torch.zeros(b + h, TEXT_DIM, device=device)  # input_txt_interp
    noise = torch.empty(b, NZ, device=device)
    noise_interp = torch.empty(b + h, NZ, device=device)
    ones, zeros, ones_interp = (torch.ones(b, device=device), torch.zeros(b, device=device),
                                torch.ones(b + h, device=device))
    weights = torch.cat([torch.ones(b, device=device), torch.full((h,), INTERP_WEIGHT, device=device)])

    def zero_biases() -> None:
        with torch.no_grad():
            for bias in biases:
                bias.zero_()

    def d_step() -> Tensor:  # fDx
        zero_biases()
        opt_d.zero_grad()
        text = captions.mean(dim=1)  # netR: the mean of each image's captions, (B, 1024)
        text_interp[:b] = text
        text_interp[b:] = 0.5 * (text[:h] + text[h:])  # interp_type 1
        err_real = F.binary_cross_entropy(D(real, text), ones)
        err_real.backward()
        err_wrong = CLS_WEIGHT * F.binary_cross_entropy(D(wrong, text), zeros)
        err_wrong.backward()
        noise.normal_(0, 1)
        with torch.no_grad():
            fake = G(noise, text)
        err_fake = (1 - CLS_WEIGHT) * F.binary_cross_entropy(D(fake, text), zeros)
        err_fake.backward()
        opt_d.step()
        return (err_real + err_wrong + err_fake).detach()

    def g_step() -> Tensor:  # fGx
        zero_biases()
        opt_g.zero_grad()
        noise_interp.normal_(0, 1)
        fake = G(noise_interp, text_interp)
        for p in d_params:  # updateGradInput: gradients reach G through D, none are kept for D's parameters
            p.requires_grad_(False)
        try:
            err = F.binary_cross_entropy(D(fake, text_interp), ones_interp, weight=weights)  # Σ w·l / 1.5B
        finally:
            for p in d_params:
                p.requires_grad_(True)
        err.backward()
        opt_g.step()
        return err.detach()

    def step() -> tuple[Tensor, Tensor]:
        return d_step(), g_step()

    return step


def train_step(batch_size: int, device: str = "cpu", seed: int = 0) -> Callable[[], Any]:
    """``Baseline.train_step``: the networks of ``seed`` and one official iteration at ``batch_size``."""
    return iteration(official_networks(device, seed), batch_size, device)


def generate(batch_size: int, device: str = "cpu", seed: int = 0) -> Callable[[], Tensor]:
    """``Baseline.generate``: G (eval mode, no autograd) on ``batch_size`` noise vectors and text embeddings."""
    G = official_networks(device, seed)["G"].eval()
    z, text = torch.randn(batch_size, NZ, device=device), torch.randn(batch_size, TEXT_DIM, device=device)

    @torch.no_grad()
    def forward() -> Tensor:
        return G(z, text)

    return forward


@gz.hookimpl
def ganzoo_bench_baselines() -> Sequence[gz.Baseline]:
    """GAN-INT-CLS as main_cls_int.lua trains it, for ``ganzoo bench models --baseline official``."""
    return [gz.Baseline(name=NAME, objective=OBJECTIVE, overrides=dict(OVERRIDES), source=SOURCE, batch_size=BATCH_SIZE,
                        train_step=train_step, generate=generate, note=NOTE)]
