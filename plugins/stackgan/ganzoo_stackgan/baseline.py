"""The official StackGAN Stage-I training iteration (hanzhanggit/StackGAN-Pytorch ``code/trainer.py`` with
``code/model.py`` and ``code/miscc/utils.py``) in PyTorch eager fp32, for ``ganzoo bench models --baseline official``.

Written out here from the code's facts (models.md §3.1, §3.2, §3.4), not through ganzoo's networks or objective:

- ``STAGE1_G`` with its ``CA_NET`` and ``STAGE1_D`` at the birds sizes (text 1024, CONDITION_DIM 128, Z_DIM 100,
  GF_DIM 128 → 1024 channels at 4×4, DF_DIM 64); CA: Linear(1024 → 256) + ReLU, μ and log σ² halves, ε ~ N(0, I)
  drawn inside the forward; D ends in a Sigmoid, the losses are ``nn.BCELoss``.
- One iteration of ``GANTrainer.train``: z ~ N(0, I) into the preallocated noise, one G forward (its graph kept for
  the G step); ``netD.zero_grad()``, ``compute_discriminator_loss`` (D features of the real and of the detached fake
  images; conditional logits on (real, μ), on (real[:B-1], μ[1:]) against fake labels, on (fake, μ), with μ detached;
  errD = real + (fake + wrong)/2), backward, D step; ``netG.zero_grad()``, ``compute_generator_loss`` (the same fake
  images through D again) + 2.0·KL, backward, G step. Adam lr 2e-4, betas (0.5, 0.999) on each network.

The same model in ganzoo is ``stackgan.s1_64`` (its default ``wrong_pairs="released"`` is the code's shift; a batch
that carries ``image_wrong`` makes ganzoo run D once more, on those images, instead).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import ganzoo_core as gz
from ganzoo_core.errors import ConfigError

NAME = "stackgan.official"
OBJECTIVE = "stackgan.s1_64"  # the ganzoo objective with the same networks, losses and optimizers
OVERRIDES: dict[str, Any] = {}  # its defaults are the released code's (kl_coef 2.0, wrong_pairs "released")
SOURCE = ("hanzhanggit/StackGAN-Pytorch@e72ef88446e7bcd84a7b88060053edad72fecf6a code/trainer.py (GANTrainer.train), "
          "code/model.py (STAGE1_G, STAGE1_D, CA_NET), code/miscc/utils.py (losses, KL_loss), birds sizes of "
          "code/miscc/config.py")
BATCH_SIZE = 64
NOTE = ("Stage-I: one G forward (graph kept), D step (real, shifted wrong pairs real[:B-1] with μ[1:], detached fake; "
        "errD = real + (fake + wrong)/2), then G step on the same fake images (BCE + 2.0·KL); logging left out")

TEXT_DIM, COND_DIM, NZ, GF_DIM, DF_DIM = 1024, 128, 100, 128, 64  # text, CONDITION_DIM, Z_DIM, GF_DIM, DF_DIM
KL_COEF = 2.0  # TRAIN.COEFF.KL
LR, BETAS = 2e-4, (0.5, 0.999)

# ---------------------------------------------------------------------------------------------------------------
# Networks (code/model.py)
# ---------------------------------------------------------------------------------------------------------------


def conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    """3×3 conv, stride 1, padding 1, no bias."""
    return nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False)


def up_block(c_in: int, c_out: int) -> nn.Sequential:
    """upBlock: nearest ×2, 3×3 conv (no bias), BatchNorm, ReLU."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv3x3(c_in, c_out), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


def released_init_(module: nn.Module) -> nn.Module:
    """``weights_init`` of miscc/utils.py: conv weights N(0, 0.02) (their biases keep PyTorch's init), BatchNorm
    weights N(1, 0.02) and biases 0, Linear weights N(0, 0.02) and biases 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


class CondAugment(nn.Module):
    """CA_NET: text → ReLU(Linear) → (μ, log σ²); c = μ + exp(½ log σ²)·ε, ε ~ N(0, I) drawn at every call."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(TEXT_DIM, COND_DIM * 2, bias=True)
        self.relu = nn.ReLU()

    def forward(self, text: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.relu(self.fc(text))
        mu, logvar = x[:, :COND_DIM], x[:, COND_DIM:]
        std = torch.exp(0.5 * logvar)
        return mu + std * torch.randn_like(std), mu, logvar


class StageIGenerator(nn.Module):
    """STAGE1_G: [z, c] → Linear (no bias) + BN1d + ReLU → 1024×4×4 → 4 upBlocks → 3×3 conv + Tanh → 3×64×64."""

    def __init__(self) -> None:
        super().__init__()
        ngf = GF_DIM * 8
        self.ngf = ngf
        self.ca = CondAugment()
        self.fc = nn.Sequential(nn.Linear(NZ + COND_DIM, ngf * 4 * 4, bias=False), nn.BatchNorm1d(ngf * 4 * 4),
                                nn.ReLU(inplace=True))
        self.up = nn.Sequential(up_block(ngf, ngf // 2), up_block(ngf // 2, ngf // 4), up_block(ngf // 4, ngf // 8),
                                up_block(ngf // 8, ngf // 16))  # 8, 16, 32, 64
        self.img = nn.Sequential(conv3x3(ngf // 16, 3), nn.Tanh())
        released_init_(self)

    def forward(self, text: Tensor, noise: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        c, mu, logvar = self.ca(text)
        h = self.fc(torch.cat([noise, c], dim=1)).view(-1, self.ngf, 4, 4)
        return self.img(self.up(h)), mu, logvar


class CondLogits(nn.Module):
    """D_GET_LOGITS (conditional): [features, c replicated 4×4] → 3×3 conv + BN + LReLU → 4×4 conv stride 4 → Sigmoid."""

    def __init__(self) -> None:
        super().__init__()
        ndf = DF_DIM * 8
        self.outlogits = nn.Sequential(conv3x3(ndf + COND_DIM, ndf), nn.BatchNorm2d(ndf), nn.LeakyReLU(0.2, inplace=True),
                                       nn.Conv2d(ndf, 1, 4, 4), nn.Sigmoid())

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        c = c.view(-1, COND_DIM, 1, 1).repeat(1, 1, 4, 4)
        return self.outlogits(torch.cat([h, c], dim=1)).view(-1)


class StageIDiscriminator(nn.Module):
    """STAGE1_D: ``forward`` is encode_img (3×64×64 → 512×4×4, convs without bias); ``cond_logits`` its head."""

    def __init__(self) -> None:
        super().__init__()
        ndf = DF_DIM
        self.encode_img = nn.Sequential(
            nn.Conv2d(3, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, inplace=True),
        )
        self.cond_logits = CondLogits()
        released_init_(self)

    def forward(self, image: Tensor) -> Tensor:
        return self.encode_img(image)


def official_networks(device: str = "cpu", seed: int = 0) -> dict[str, nn.Module]:
    """STAGE1_G and STAGE1_D, initialised from ``seed`` (global RNG, as the core's train_step seeds), on ``device``,
    in training mode."""
    torch.manual_seed(seed)
    return {"G": StageIGenerator().to(device).train(), "D": StageIDiscriminator().to(device).train()}


# ---------------------------------------------------------------------------------------------------------------
# Losses (code/miscc/utils.py)
# ---------------------------------------------------------------------------------------------------------------


def kl_loss(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL_loss: −½ · mean(1 + log σ² − μ² − σ²), the mean over batch and dimensions."""
    return -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())


def discriminator_loss(D: StageIDiscriminator, real: Tensor, fake: Tensor, mu: Tensor, real_labels: Tensor,
                       fake_labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """compute_discriminator_loss (Stage-I): errD = real + (fake + wrong)/2 with the wrong pairs real[:B-1], μ[1:]."""
    b, cond = real.shape[0], mu.detach()
    real_features, fake_features = D(real), D(fake.detach())
    err_real = F.binary_cross_entropy(D.cond_logits(real_features, cond), real_labels)
    err_wrong = F.binary_cross_entropy(D.cond_logits(real_features[:b - 1], cond[1:]), fake_labels[1:])
    err_fake = F.binary_cross_entropy(D.cond_logits(fake_features, cond), fake_labels)
    return err_real + (err_fake + err_wrong) * 0.5, {"real": err_real, "wrong": err_wrong, "fake": err_fake}


def generator_loss(D: StageIDiscriminator, fake: Tensor, mu: Tensor, real_labels: Tensor) -> Tensor:
    """compute_generator_loss (Stage-I): BCE of D(fake, μ detached) against the real labels."""
    return F.binary_cross_entropy(D.cond_logits(D(fake), mu.detach()), real_labels)


# ---------------------------------------------------------------------------------------------------------------
# One iteration
# ---------------------------------------------------------------------------------------------------------------


def iteration(networks: dict[str, nn.Module], batch_size: int, device: str = "cpu") -> Callable[[], tuple[Tensor, Tensor]]:
    """One iteration of GANTrainer.train (Stage-I) on synthetic data of the official shapes (images in [-1, 1], one
    1024-d embedding per image), everything allocated here; the callable returns (errD, errG_total)."""
    if batch_size < 2:
        raise ConfigError(f"StackGAN's wrong pairs shift the batch by one, so it needs at least 2 images, got "
                          f"batch size {batch_size}; use 64 as the released config")
    G, D = networks["G"], cast(StageIDiscriminator, networks["D"])
    opt_d = torch.optim.Adam(D.parameters(), lr=LR, betas=BETAS)
    opt_g = torch.optim.Adam([p for p in G.parameters() if p.requires_grad], lr=LR, betas=BETAS)
    real = torch.rand(batch_size, 3, 64, 64, device=device) * 2 - 1
    text = torch.randn(batch_size, TEXT_DIM, device=device)
    noise = torch.empty(batch_size, NZ, device=device)
    real_labels, fake_labels = torch.ones(batch_size, device=device), torch.zeros(batch_size, device=device)

    def step() -> tuple[Tensor, Tensor]:
        noise.normal_(0, 1)
        fake, mu, logvar = G(text, noise)
        D.zero_grad()
        err_d, _ = discriminator_loss(D, real, fake, mu, real_labels, fake_labels)
        err_d.backward()
        opt_d.step()
        G.zero_grad()
        err_g = generator_loss(D, fake, mu, real_labels) + kl_loss(mu, logvar) * KL_COEF
        err_g.backward()
        opt_g.step()
        return err_d.detach(), err_g.detach()

    return step


def train_step(batch_size: int, device: str = "cpu", seed: int = 0) -> Callable[[], Any]:
    """``Baseline.train_step``: the networks of ``seed`` and one official iteration at ``batch_size``."""
    return iteration(official_networks(device, seed), batch_size, device)


def generate(batch_size: int, device: str = "cpu", seed: int = 0) -> Callable[[], Tensor]:
    """``Baseline.generate``: STAGE1_G as ``GANTrainer.sample`` runs it (eval mode; here without autograd) on
    ``batch_size`` text embeddings and noise vectors; CA still draws its ε."""
    G = official_networks(device, seed)["G"].eval()
    text, noise = torch.randn(batch_size, TEXT_DIM, device=device), torch.randn(batch_size, NZ, device=device)

    @torch.no_grad()
    def forward() -> Tensor:
        return G(text, noise)[0]

    return forward


@gz.hookimpl
def ganzoo_bench_baselines() -> Sequence[gz.Baseline]:
    """StackGAN Stage-I as StackGAN-Pytorch trains it, for ``ganzoo bench models --baseline official``."""
    return [gz.Baseline(name=NAME, objective=OBJECTIVE, overrides=dict(OVERRIDES), source=SOURCE, batch_size=BATCH_SIZE,
                        train_step=train_step, generate=generate, note=NOTE)]
