"""DCGAN's official training iteration for ``ganzoo bench models --baseline official``: pytorch/examples
``dcgan/main.py`` (@77f55b9) as that script trains, in eager fp32, on synthetic 64×64 images.

Facts of the official code (docs: models.md §1): G is five transposed convolutions without bias, 100 → 512×4×4 (k4
s1 p0) → 256 → 128 → 64 → 3×64×64 (k4 s2 p1), BatchNorm + ReLU after each but the last, Tanh at the end; D is five
convolutions without bias, 3 → 64 (LeakyReLU 0.2, no BatchNorm) → 128 → 256 → 512 (BatchNorm + LeakyReLU 0.2) → 1
(k4 s1 p0) with a Sigmoid, flattened to (B,). Weights N(0, 0.02) for the convolutions, N(1, 0.02) and bias 0 for
BatchNorm. The loss is ``nn.BCELoss`` on D's probabilities; each network has its own Adam (lr 2e-4, betas (0.5,
0.999)). One iteration: D's gradients zeroed, D(real) against 1 and backward; z ~ N(0, 1) of shape (B, 100, 1, 1),
fake = G(z), D(fake.detach()) against 0 and backward; D's step; then G's gradients zeroed, D(fake) against 1 (the
same fake batch) and backward, G's step. D is not frozen in the G step: its weight gradients are computed there too.

The networks are written here from those facts, as plain ``nn.Sequential`` code; ``networks()`` returns them under
the names ``dcgan.64``'s objective uses (``G``, ``D``), with the same parameter names (``main.0.weight``, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

import ganzoo_core as gz

SOURCE = "pytorch/examples@77f55b9 dcgan/main.py"
NZ, NGF, NDF, NC, SIZE = 100, 64, 64, 3, 64  # the script's defaults: z size, widths, image channels, image side
LR, BETAS = 2e-4, (0.5, 0.999)


class OfficialGenerator(nn.Module):
    """z (B, 100, 1, 1) → image (B, 3, 64, 64): ConvT + BatchNorm + ReLU four times, then ConvT + Tanh."""

    def __init__(self, nz: int = NZ, ngf: int = NGF, nc: int = NC) -> None:
        super().__init__()
        widths = [ngf * 8, ngf * 4, ngf * 2, ngf]
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, widths[0], 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(widths[0]), nn.ReLU(True)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.main(z)


class OfficialDiscriminator(nn.Module):
    """image (B, 3, 64, 64) → probability of real (B,): Conv + LeakyReLU, three Conv + BatchNorm + LeakyReLU, Conv +
    Sigmoid."""

    def __init__(self, ndf: int = NDF, nc: int = NC) -> None:
        super().__init__()
        widths = [ndf, ndf * 2, ndf * 4, ndf * 8]
        layers: list[nn.Module] = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                       nn.LeakyReLU(0.2, inplace=True)]
        layers += [nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x).view(-1, 1).squeeze(1)


def official_init(module: nn.Module) -> None:
    """The script's ``weights_init``, applied to every submodule: conv weights N(0, 0.02), BatchNorm N(1, 0.02), 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def networks(seed: int = 0) -> dict[str, nn.Module]:
    """The official G and D, initialised as the script does, under the objective's names."""
    torch.manual_seed(seed)
    g, d = OfficialGenerator(), OfficialDiscriminator()
    g.apply(official_init)
    d.apply(official_init)
    return {"G": g, "D": d}


def make_iteration(nets: dict[str, nn.Module], batch_size: int, device: str = "cpu",
                   seed: int = 0) -> Callable[[], tuple[Tensor, Tensor]]:
    """One official iteration of ``nets`` on a fixed synthetic batch of real images; returns (errD, errG)."""
    g, d = nets["G"].to(device).train(), nets["D"].to(device).train()
    criterion = nn.BCELoss()
    opt_d = torch.optim.Adam(d.parameters(), lr=LR, betas=BETAS)
    opt_g = torch.optim.Adam(g.parameters(), lr=LR, betas=BETAS)
    gen = torch.Generator().manual_seed(seed)
    real = (torch.rand(batch_size, NC, SIZE, SIZE, generator=gen) * 2 - 1).to(device)
    nz = g.main[0].in_channels

    def iteration() -> tuple[Tensor, Tensor]:
        d.zero_grad()  # (1) D: maximise log D(x) + log(1 - D(G(z)))
        label = torch.full((batch_size,), 1.0, dtype=real.dtype, device=device)
        err_real = criterion(d(real), label)
        err_real.backward()
        noise = torch.randn(batch_size, nz, 1, 1, device=device)
        fake = g(noise)
        label.fill_(0.0)
        err_fake = criterion(d(fake.detach()), label)
        err_fake.backward()
        opt_d.step()
        g.zero_grad()  # (2) G: maximise log D(G(z)), on the same fake batch
        label.fill_(1.0)
        err_g = criterion(d(fake), label)
        err_g.backward()
        opt_g.step()
        return (err_real + err_fake).detach(), err_g.detach()

    return iteration


def train_step(batch_size: int, device: str = "cpu", seed: int = 0) -> Callable[[], Any]:
    """The official networks and optimizers, built now; the callable runs one iteration."""
    return make_iteration(networks(seed), batch_size, device, seed)


def generate(batch_size: int, device: str = "cpu", seed: int = 0) -> Callable[[], Tensor]:
    """G of the official code in eval mode on a fixed noise batch, without gradients."""
    g = networks(seed)["G"].to(device).eval()
    noise = torch.randn(batch_size, NZ, 1, 1, generator=torch.Generator().manual_seed(seed)).to(device)

    @torch.no_grad()
    def forward() -> Tensor:
        return g(noise)

    return forward


@gz.hookimpl
def ganzoo_bench_baselines() -> Sequence[gz.Baseline]:
    """DCGAN-64 as pytorch/examples trains it, beside ``dcgan.64`` (the same networks, loss and optimizers)."""
    return [gz.Baseline(
        name="dcgan.official", objective="dcgan.64", source=SOURCE, batch_size=64, train_step=train_step,
        generate=generate, note="D on real and fake (separate passes), then G on the same fake batch; BCELoss on "
                                "sigmoid outputs; D's weight gradients computed in the G step")]
