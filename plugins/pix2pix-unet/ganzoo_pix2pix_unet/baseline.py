"""pix2pix's official training iteration for ``ganzoo bench models --baseline official``: the authors' PyTorch port
(junyanz/pytorch-CycleGAN-and-pix2pix, ``models/pix2pix_model.py``, ``models/networks.py``) as it trains facades-style
at 256×256, batch 1, in eager fp32 on a synthetic aligned pair.

Facts of the official code (docs: models.md §4): G is ``unet_256``, built from the inside out as nested skip blocks
(8 downsamplings, ngf 64): each block is [LeakyReLU 0.2, conv 4×4 s2, BatchNorm] down, the inner block, [ReLU,
transposed conv 4×4 s2, BatchNorm] up, and returns its input concatenated with that output; the innermost has no
norm on the way down, the outermost no LeakyReLU or norm down and ends in a transposed conv with bias + Tanh; the
three 512-wide blocks between the innermost and the 256-wide one end in Dropout(0.5); with BatchNorm no other conv
has a bias; the LeakyReLU and ReLU work in place. D is the 70×70 PatchGAN on concat(A, B) (6 channels): conv 4×4 s2
to 64 + LeakyReLU 0.2, convs to 128 and 256 (s2) and 512 (s1) each + BatchNorm + LeakyReLU 0.2 (no bias), conv to one
logit per patch. Weights N(0, 0.02), biases 0, BatchNorm N(1, 0.02) and 0. The GAN loss is vanilla
(``BCEWithLogitsLoss`` against 1 or 0), L1 weight 100; one Adam per network, lr 2e-4, betas (0.5, 0.999); no image
pool. One iteration (``optimize_parameters``): fake_B = G(A); D requires gradients, D's gradients zeroed, D on
(A, fake_B) detached against 0 and on (A, B) against 1, ½ (fake + real) backpropagated, D's step; D stops requiring
gradients, G's gradients zeroed, D on (A, fake_B) against 1 plus 100·L1(fake_B, B) backpropagated, G's step.

The networks are written here from those facts; ``networks()`` returns them under the objective's names (``G``,
``D``) with the port's parameter names (``model.model.1.model.3...``, which ``convert_junyanz_unet`` maps to
``pix2pix.unet_256``'s).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import ganzoo_core as gz

SOURCE = "junyanz/pytorch-CycleGAN-and-pix2pix@78913853ab models/pix2pix_model.py, models/networks.py"
LR, BETAS = 2e-4, (0.5, 0.999)
LAMBDA_L1 = 100.0
SIZE = 256


class UnetSkipBlock(nn.Module):
    """One level of the U-Net: down, the inner ``submodule``, up; concatenated with its input unless outermost."""

    def __init__(self, outer_nc: int, inner_nc: int, input_nc: int | None = None, submodule: nn.Module | None = None,
                 outermost: bool = False, innermost: bool = False, use_dropout: bool = False) -> None:
        super().__init__()
        self.outermost = outermost
        down_conv = nn.Conv2d(input_nc or outer_nc, inner_nc, 4, 2, 1, bias=False)  # BatchNorm: no conv bias
        if outermost:
            layers = [down_conv, submodule, nn.ReLU(True), nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1),
                      nn.Tanh()]
        elif innermost:
            layers = [nn.LeakyReLU(0.2, True), down_conv, nn.ReLU(True),
                      nn.ConvTranspose2d(inner_nc, outer_nc, 4, 2, 1, bias=False), nn.BatchNorm2d(outer_nc)]
        else:
            layers = [nn.LeakyReLU(0.2, True), down_conv, nn.BatchNorm2d(inner_nc), submodule, nn.ReLU(True),
                      nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1, bias=False), nn.BatchNorm2d(outer_nc)]
            layers += [nn.Dropout(0.5)] if use_dropout else []
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)  # the in-place LeakyReLU has already turned x into LeakyReLU(x)


class UnetGenerator(nn.Module):
    """A (B, 3, S, S) → B (B, 3, S, S), S a multiple of 2**num_downs; ``unet_256``: num_downs 8, ngf 64."""

    def __init__(self, in_nc: int = 3, out_nc: int = 3, num_downs: int = 8, ngf: int = 64) -> None:
        super().__init__()
        block = UnetSkipBlock(ngf * 8, ngf * 8, innermost=True)
        for _ in range(num_downs - 5):
            block = UnetSkipBlock(ngf * 8, ngf * 8, submodule=block, use_dropout=True)
        block = UnetSkipBlock(ngf * 4, ngf * 8, submodule=block)
        block = UnetSkipBlock(ngf * 2, ngf * 4, submodule=block)
        block = UnetSkipBlock(ngf, ngf * 2, submodule=block)
        self.model = UnetSkipBlock(out_nc, ngf, input_nc=in_nc, submodule=block, outermost=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """concat(A, B) (B, 6, S, S) → one logit per 70×70 patch (n_layers = 3), BatchNorm between the inner convs."""

    def __init__(self, in_nc: int = 6, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):  # stride 2, except the last of them
            prev, mult = mult, min(2**n, 8)
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2 if n < n_layers else 1, 1, bias=False),
                       nn.BatchNorm2d(ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def init_normal(module: nn.Module) -> None:
    """The port's ``init_weights(net, 'normal', 0.02)``: conv weights N(0, 0.02), biases 0; BatchNorm N(1, 0.02), 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def networks(seed: int = 0, *, num_downs: int = 8, ngf: int = 64, ndf: int = 64) -> dict[str, nn.Module]:
    """G and D of the port, initialised as it does."""
    torch.manual_seed(seed)
    nets: dict[str, nn.Module] = {"G": UnetGenerator(num_downs=num_downs, ngf=ngf), "D": NLayerDiscriminator(ndf=ndf)}
    for net in nets.values():
        net.apply(init_normal)
    return nets


def vanilla_gan(prediction: Tensor, target_is_real: bool) -> Tensor:
    """The port's ``GANLoss('vanilla')``: BCE with logits against 1 or 0 expanded to the prediction's shape."""
    target = torch.tensor(1.0 if target_is_real else 0.0, device=prediction.device).expand_as(prediction)
    return F.binary_cross_entropy_with_logits(prediction, target)


def _set_requires_grad(net: nn.Module, flag: bool) -> None:
    for p in net.parameters():
        p.requires_grad = flag


def make_iteration(nets: dict[str, nn.Module], batch_size: int, device: str = "cpu", seed: int = 0,
                   image_size: int = SIZE) -> Callable[[], tuple[Tensor, Tensor]]:
    """One official iteration of ``nets`` on a fixed synthetic pair (A, B); returns (loss_D, loss_G)."""
    g, d = nets["G"].to(device).train(), nets["D"].to(device).train()
    opt_g = torch.optim.Adam(g.parameters(), lr=LR, betas=BETAS)
    opt_d = torch.optim.Adam(d.parameters(), lr=LR, betas=BETAS)
    gen = torch.Generator().manual_seed(seed)
    real_a = (torch.rand(batch_size, 3, image_size, image_size, generator=gen) * 2 - 1).to(device)
    real_b = (torch.rand(batch_size, 3, image_size, image_size, generator=gen) * 2 - 1).to(device)

    def iteration() -> tuple[Tensor, Tensor]:
        fake_b = g(real_a)  # forward()
        _set_requires_grad(d, True)  # backward_D
        opt_d.zero_grad()
        loss_d_fake = vanilla_gan(d(torch.cat((real_a, fake_b), 1).detach()), False)
        loss_d_real = vanilla_gan(d(torch.cat((real_a, real_b), 1)), True)
        loss_d = (loss_d_fake + loss_d_real) * 0.5
        loss_d.backward()
        opt_d.step()
        _set_requires_grad(d, False)  # backward_G, D frozen
        opt_g.zero_grad()
        loss_g_gan = vanilla_gan(d(torch.cat((real_a, fake_b), 1)), True)
        loss_g = loss_g_gan + F.l1_loss(fake_b, real_b) * LAMBDA_L1
        loss_g.backward()
        opt_g.step()
        return loss_d.detach(), loss_g.detach()

    return iteration


def train_step(batch_size: int, device: str = "cpu", seed: int = 0) -> Callable[[], Any]:
    """The official networks and optimizers at 256×256, built now; the callable runs one iteration."""
    return make_iteration(networks(seed), batch_size, device, seed)


def generate(batch_size: int, device: str = "cpu", seed: int = 0) -> Callable[[], Tensor]:
    """G of the official code in eval mode (running BatchNorm statistics, no dropout) on a fixed batch of A,
    without gradients."""
    g = networks(seed)["G"].to(device).eval()
    images = (torch.rand(batch_size, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)) * 2 - 1).to(device)

    @torch.no_grad()
    def forward() -> Tensor:
        return g(images)

    return forward


@gz.hookimpl
def ganzoo_bench_baselines() -> Sequence[gz.Baseline]:
    """pix2pix at 256×256, batch 1, as the authors' PyTorch port trains it, beside ``pix2pix.unet_256``."""
    return [gz.Baseline(
        name="pix2pix.official", objective="pix2pix.unet_256", source=SOURCE, batch_size=1, train_step=train_step,
        generate=generate,
        note="D step on (A, B) and (A, G(A)) halved, then G step (D frozen) on GAN + 100·L1, the same fake batch")]
