"""CycleGAN's official training iteration for ``ganzoo bench models --baseline official``: the authors' PyTorch port
(junyanz/pytorch-CycleGAN-and-pix2pix, ``models/cycle_gan_model.py``, ``models/networks.py``, ``util/image_pool.py``)
as it trains at 256×256, batch 1, in eager fp32 on synthetic unpaired images.

Facts of the official code (docs: models.md §5): both generators are ``resnet_9blocks`` (reflection pad 3 + conv
7×7 to 64, two stride-2 3×3 convs to 128 and 256, nine residual blocks of [reflection pad 1, conv 3×3, norm, ReLU,
reflection pad 1, conv 3×3, norm] + identity, two transposed 3×3 convs with output padding 1 back to 64, reflection pad
3 + conv 7×7 to 3 + Tanh); every norm is ``InstanceNorm2d`` without affine parameters or running statistics, so every
conv has a bias. Both discriminators are the 70×70 PatchGAN (``n_layers_D=3``): conv 4×4 s2 to 64 + LeakyReLU 0.2,
convs to 128 and 256 (s2) and 512 (s1), each + InstanceNorm + LeakyReLU 0.2, conv 4×4 s1 to one logit per patch.
Weights N(0, 0.02), biases 0. The GAN loss is LSGAN (MSE against 1 or 0), cycle weights λ_A = λ_B = 10, identity
weight 0.5 (so 5); one Adam over both generators and one over both discriminators, lr 2e-4, betas (0.5, 0.999); an
image pool of 50 per discriminator. One iteration (``optimize_parameters``): fake_B = G_A(A), rec_A = G_B(fake_B),
fake_A = G_B(B), rec_B = G_A(fake_A); the discriminators stop requiring gradients; the G optimizer's gradients are
zeroed, the identity, adversarial and cycle losses summed and backpropagated, G's step; the discriminators require
gradients again, D's gradients zeroed, D_A on (B, pooled fake_B) and D_B on (A, pooled fake_A), each ½ (real + fake)
and backpropagated, D's step.

The networks are written here from those facts; ``networks()`` returns them under the objective's names (``G_A``,
``G_B``, ``D_A``, ``D_B``) with the port's parameter names (``model.1.weight``, ...).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import ganzoo_core as gz

SOURCE = ("junyanz/pytorch-CycleGAN-and-pix2pix@78913853ab models/cycle_gan_model.py, models/networks.py, "
          "util/image_pool.py")
LR, BETAS = 2e-4, (0.5, 0.999)
LAMBDA_A = LAMBDA_B = 10.0
LAMBDA_IDT = 0.5
POOL_SIZE = 50
SIZE = 256


class ResnetBlock(nn.Module):
    """x + [pad, conv 3×3, IN, ReLU, pad, conv 3×3, IN](x)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True), nn.InstanceNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True), nn.InstanceNorm2d(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """image (B, 3, H, W) → image (B, 3, H, W): c7s1-64, d128, d256, n_blocks × R256, u128, u64, c7s1-3."""

    def __init__(self, in_nc: int = 3, out_nc: int = 3, ngf: int = 64, n_blocks: int = 9) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_nc, ngf, 7, padding=0, bias=True),
                                   nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        for i in range(2):  # two downsamplings
            c = ngf * 2**i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=True), nn.InstanceNorm2d(2 * c), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]
        for i in range(2):  # two upsamplings
            c = ngf * 2 ** (2 - i)
            layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=True),
                       nn.InstanceNorm2d(c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_nc, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """image (B, 3, H, W) → one logit per 70×70 patch (n_layers = 3), InstanceNorm between the inner convs."""

    def __init__(self, in_nc: int = 3, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):  # stride 2, except the last of them
            prev, mult = mult, min(2**n, 8)
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2 if n < n_layers else 1, 1, bias=True),
                       nn.InstanceNorm2d(ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def init_normal(module: nn.Module) -> None:
    """The port's ``init_weights(net, 'normal', 0.02)``: conv weights N(0, 0.02), biases 0 (InstanceNorm here has no
    weights)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def networks(seed: int = 0, *, ngf: int = 64, ndf: int = 64, n_blocks: int = 9) -> dict[str, nn.Module]:
    """G_A (A → B), G_B (B → A), D_A (judges B), D_B (judges A), initialised as the port does."""
    torch.manual_seed(seed)
    nets: dict[str, nn.Module] = {
        "G_A": ResnetGenerator(ngf=ngf, n_blocks=n_blocks), "G_B": ResnetGenerator(ngf=ngf, n_blocks=n_blocks),
        "D_A": NLayerDiscriminator(ndf=ndf), "D_B": NLayerDiscriminator(ndf=ndf)}
    for net in nets.values():
        net.apply(init_normal)
    return nets


class ImagePool:
    """The port's history of generated images: while fewer than ``size`` are stored, store and return each; then, per
    image, with probability ½ return a random stored one and keep the new one in its place, else return the new one."""

    def __init__(self, size: int, rng: random.Random) -> None:
        self.size, self.rng = size, rng
        self.images: list[Tensor] = []

    def query(self, images: Tensor) -> Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif self.rng.uniform(0, 1) > 0.5:
                k = self.rng.randint(0, self.size - 1)
                old = self.images[k].clone()
                self.images[k] = image
                out.append(old)
            else:
                out.append(image)
        return torch.cat(out, 0)


def lsgan(prediction: Tensor, target_is_real: bool) -> Tensor:
    """The port's ``GANLoss('lsgan')``: MSE against a target of 1 or 0 expanded to the prediction's shape."""
    target = torch.tensor(1.0 if target_is_real else 0.0, device=prediction.device).expand_as(prediction)
    return F.mse_loss(prediction, target)


def _set_requires_grad(nets: Iterable[nn.Module], flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad = flag


def make_iteration(nets: dict[str, nn.Module], batch_size: int, device: str = "cpu", seed: int = 0,
                   image_size: int = SIZE) -> Callable[[], tuple[Tensor, Tensor]]:
    """One official iteration of ``nets`` on a fixed synthetic pair of unpaired batches; returns (loss_G, loss_D)."""
    g_a, g_b, d_a, d_b = (nets[k].to(device).train() for k in ("G_A", "G_B", "D_A", "D_B"))
    opt_g = torch.optim.Adam([*g_a.parameters(), *g_b.parameters()], lr=LR, betas=BETAS)
    opt_d = torch.optim.Adam([*d_a.parameters(), *d_b.parameters()], lr=LR, betas=BETAS)
    rng = random.Random(seed)
    pool_a, pool_b = ImagePool(POOL_SIZE, rng), ImagePool(POOL_SIZE, rng)  # fakes of A for D_B, of B for D_A
    gen = torch.Generator().manual_seed(seed)
    real_a = (torch.rand(batch_size, 3, image_size, image_size, generator=gen) * 2 - 1).to(device)
    real_b = (torch.rand(batch_size, 3, image_size, image_size, generator=gen) * 2 - 1).to(device)

    def backward_d(d: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        loss = (lsgan(d(real), True) + lsgan(d(fake.detach()), False)) * 0.5
        loss.backward()
        return loss

    def iteration() -> tuple[Tensor, Tensor]:
        fake_b = g_a(real_a)  # forward()
        rec_a = g_b(fake_b)
        fake_a = g_b(real_b)
        rec_b = g_a(fake_a)
        _set_requires_grad([d_a, d_b], False)  # G_A and G_B
        opt_g.zero_grad()
        loss_idt_a = F.l1_loss(g_a(real_b), real_b) * LAMBDA_B * LAMBDA_IDT
        loss_idt_b = F.l1_loss(g_b(real_a), real_a) * LAMBDA_A * LAMBDA_IDT
        loss_g_a = lsgan(d_a(fake_b), True)
        loss_g_b = lsgan(d_b(fake_a), True)
        loss_cycle_a = F.l1_loss(rec_a, real_a) * LAMBDA_A
        loss_cycle_b = F.l1_loss(rec_b, real_b) * LAMBDA_B
        loss_g = loss_g_a + loss_g_b + loss_cycle_a + loss_cycle_b + loss_idt_a + loss_idt_b
        loss_g.backward()
        opt_g.step()
        _set_requires_grad([d_a, d_b], True)  # D_A and D_B
        opt_d.zero_grad()
        loss_d_a = backward_d(d_a, real_b, pool_b.query(fake_b))
        loss_d_b = backward_d(d_b, real_a, pool_a.query(fake_a))
        opt_d.step()
        return loss_g.detach(), (loss_d_a + loss_d_b).detach()

    return iteration


def train_step(batch_size: int, device: str = "cpu", seed: int = 0) -> Callable[[], Any]:
    """The official networks and optimizers at 256×256, built now; the callable runs one iteration."""
    return make_iteration(networks(seed), batch_size, device, seed)


def generate(batch_size: int, device: str = "cpu", seed: int = 0) -> Callable[[], Tensor]:
    """G_A of the official code in eval mode on a fixed batch of 256×256 images, without gradients."""
    g = networks(seed)["G_A"].to(device).eval()
    images = (torch.rand(batch_size, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)) * 2 - 1).to(device)

    @torch.no_grad()
    def forward() -> Tensor:
        return g(images)

    return forward


OVERRIDES = {"generator": "cyclegan.resnet_9blocks", "discriminator": "cyclegan.patch70"}
"""What makes the registered objective the official 256×256 model: its defaults are the official losses, weights,
pool and optimizers; the registered variants pick small networks."""


@gz.hookimpl
def ganzoo_bench_baselines() -> Sequence[gz.Baseline]:
    """CycleGAN at 256×256, batch 1, as the authors' PyTorch port trains it, beside ``cyclegan.small32`` with the
    official networks (``OVERRIDES``)."""
    return [gz.Baseline(
        name="cyclegan.official", objective="cyclegan.small32", overrides=OVERRIDES, source=SOURCE, batch_size=1,
        train_step=train_step, generate=generate,
        note="G step (both generators, D frozen: LSGAN + cycle 10 + identity 5), then D step (both discriminators on "
             "pooled fakes, ½ (real + fake) each)")]
