"""The official StarGAN training iteration (yunjey/stargan ``solver.py`` ``Solver.train`` with ``model.py``, CelebA
at 128×128) in PyTorch eager fp32, for ``ganzoo bench models --baseline official``.

Written out here from the code's facts (models.md §6.1–6.3), not through ganzoo's networks or objective:

- ``Generator`` (conv_dim 64, c_dim 5, 6 residual blocks; convs without bias, ``InstanceNorm2d(affine=True,
  track_running_stats=True)``, zero padding) and ``Discriminator`` (conv_dim 64, 6 strided convs with bias and
  LeakyReLU 0.01, no normalisation; a 3×3 source head and a 2×2 class head, both without bias), PyTorch's default
  init as the code keeps it.
- One call of the returned step is one iteration ``i`` of ``Solver.train``: target labels = the batch's labels in a
  random order; the D step (−mean D_src(x) + BCE-with-logits class loss summed over attributes / B, x_fake = G(x,
  c_trg) with its graph, mean D_src(x_fake.detach()), the gradient penalty on α·x + (1−α)·x_fake with α ~ U[0, 1)
  per image, λ_cls 1, λ_gp 10; both optimizers' gradients reset, backward, D step); and when (i + 1) % n_critic == 0
  (n_critic 5) the G step (−mean D_src(G(x, c_trg)) + 10·mean|x − G(G(x, c_trg), c_org)| + 1·class loss on c_trg).
  So five calls hold five D steps and one G step. Adam lr 1e-4, betas (0.5, 0.999) on each network.
- The data stay on the device (the code's per-iteration CPU → GPU copies of images and labels are data loading, left
  out as the ganzoo side leaves them out): the permutation is drawn there.

The same model in ganzoo is ``stargan.celeba128``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import ganzoo_core as gz
from ganzoo_core.errors import ConfigError

NAME = "stargan.official"
OBJECTIVE = "stargan.celeba128"  # the ganzoo objective with the same networks, losses and optimizers
OVERRIDES: dict[str, Any] = {}  # its defaults are the code's (λ_cls 1, λ_rec 10, λ_gp 10, n_critic 5, lr 1e-4)
SOURCE = ("yunjey/stargan@94dd002e93a2863d9b987a937b85925b80f7a19f solver.py (Solver.train, gradient_penalty, "
          "classification_loss), model.py (Generator, Discriminator, ResidualBlock), main.py defaults (CelebA 128)")
BATCH_SIZE = 16
NOTE = ("one call = one Solver.train iteration: a D step (WGAN-GP, λ_gp 10, class loss λ_cls 1) every call and a G step "
        "(adversarial + 10·cycle L1 + class loss) on every 5th call (n_critic 5), i.e. 1 D + 1/5 G per call: time a "
        "multiple of 5 calls; generation runs G in training mode without autograd, as Solver.test (no .eval()); "
        "data kept on the device; logging left out")

C_DIM, CONV_DIM, G_REPEAT, D_REPEAT, IMAGE_SIZE = 5, 64, 6, 6, 128  # c_dim, g/d_conv_dim, g/d_repeat_num, image_size
LAMBDA_CLS, LAMBDA_REC, LAMBDA_GP, N_CRITIC = 1.0, 10.0, 10.0, 5
LR, BETAS = 1e-4, (0.5, 0.999)

# ---------------------------------------------------------------------------------------------------------------
# Networks (model.py)
# ---------------------------------------------------------------------------------------------------------------


def _norm(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=True, track_running_stats=True)


class ResidualBlock(nn.Module):
    """x + [3×3 conv + IN + ReLU + 3×3 conv + IN](x); convs without bias, no ReLU after the sum."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False), _norm(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False), _norm(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.main(x)


class Generator(nn.Module):
    """[image, c tiled H×W] → 7×7 conv → two 4×4 stride-2 convs → residual blocks → two 4×4 stride-2 transposed convs
    → 7×7 conv + Tanh; IN + ReLU after every conv but the last."""

    def __init__(self, conv_dim: int = CONV_DIM, c_dim: int = C_DIM, repeat_num: int = G_REPEAT) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3 + c_dim, conv_dim, 7, 1, 3, bias=False), _norm(conv_dim),
                                   nn.ReLU(inplace=True)]
        width = conv_dim
        for _ in range(2):  # down-sampling
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), _norm(width * 2), nn.ReLU(inplace=True)]
            width *= 2
        layers += [ResidualBlock(width) for _ in range(repeat_num)]  # bottleneck
        for _ in range(2):  # up-sampling
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), _norm(width // 2),
                       nn.ReLU(inplace=True)]
            width //= 2
        layers += [nn.Conv2d(width, 3, 7, 1, 3, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        c = c.view(c.size(0), c.size(1), 1, 1).repeat(1, 1, x.size(2), x.size(3))
        return self.main(torch.cat([x, c], dim=1))


class Discriminator(nn.Module):
    """``repeat_num`` 4×4 stride-2 convs (bias, LeakyReLU 0.01) → source map (3×3 conv) and class logits (a conv over
    the whole image_size / 2^repeat_num map), both without bias."""

    def __init__(self, image_size: int = IMAGE_SIZE, conv_dim: int = CONV_DIM, c_dim: int = C_DIM,
                 repeat_num: int = D_REPEAT) -> None:
        super().__init__()
        self.image_size = image_size
        layers: list[nn.Module] = [nn.Conv2d(3, conv_dim, 4, 2, 1), nn.LeakyReLU(0.01)]
        width = conv_dim
        for _ in range(1, repeat_num):
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1), nn.LeakyReLU(0.01)]
            width *= 2
        self.main = nn.Sequential(*layers)
        self.conv1 = nn.Conv2d(width, 1, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(width, c_dim, image_size // 2**repeat_num, bias=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.main(x)
        out_cls = self.conv2(h)
        return self.conv1(h), out_cls.view(out_cls.size(0), out_cls.size(1))


def official_networks(device: str = "cpu", seed: int = 0, *, image_size: int = IMAGE_SIZE, conv_dim: int = CONV_DIM,
                      g_repeat: int = G_REPEAT, d_repeat: int = D_REPEAT) -> dict[str, nn.Module]:
    """Generator and Discriminator of model.py (the official sizes by default; smaller ones for tests), initialised
    from ``seed`` (global RNG, as the core's train_step seeds), on ``device``, in training mode."""
    torch.manual_seed(seed)
    return {"G": Generator(conv_dim, C_DIM, g_repeat).to(device).train(),
            "D": Discriminator(image_size, conv_dim, C_DIM, d_repeat).to(device).train()}


# ---------------------------------------------------------------------------------------------------------------
# Losses (solver.py)
# ---------------------------------------------------------------------------------------------------------------


def gradient_penalty(y: Tensor, x: Tensor) -> Tensor:
    """mean over the batch of (‖∂Σy/∂x‖₂ − 1)², the gradient taken per image, flattened, with a graph for backward."""
    grad = torch.autograd.grad(outputs=y, inputs=x, grad_outputs=torch.ones_like(y), retain_graph=True,
                               create_graph=True, only_inputs=True)[0]
    grad = grad.view(grad.size(0), -1)
    return torch.mean((torch.sqrt(torch.sum(grad**2, dim=1)) - 1) ** 2)


def classification_loss(logit: Tensor, target: Tensor) -> Tensor:
    """CelebA: BCE with logits summed over attributes and images, divided by the batch size."""
    return F.binary_cross_entropy_with_logits(logit, target, reduction="sum") / logit.size(0)


# ---------------------------------------------------------------------------------------------------------------
# One iteration
# ---------------------------------------------------------------------------------------------------------------


def iteration(networks: dict[str, nn.Module], batch_size: int, device: str = "cpu", *,
              n_critic: int = N_CRITIC) -> Callable[[], Any]:
    """Calls of ``Solver.train``'s loop body on synthetic data of the official shapes (images in [-1, 1], 5 binary
    attributes), everything allocated here: every call a D step, every ``n_critic``-th call (the 5th, 10th, ...) a G
    step too. The callable returns d_loss, and g_loss on the calls with a G step."""
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}; use 16 as main.py")
    G, D = networks["G"], cast(Discriminator, networks["D"])
    g_opt = torch.optim.Adam(G.parameters(), LR, list(BETAS))
    d_opt = torch.optim.Adam(D.parameters(), LR, list(BETAS))
    size = D.image_size
    x_real = torch.rand(batch_size, 3, size, size, device=device) * 2 - 1
    label_org = torch.randint(0, 2, (batch_size, C_DIM), device=device).float()
    done = 0  # the loop's i

    def reset_grad() -> None:
        g_opt.zero_grad()
        d_opt.zero_grad()

    def step() -> tuple[Tensor, ...]:
        nonlocal done
        label_trg = label_org[torch.randperm(batch_size, device=device)]
        c_org, c_trg = label_org.clone(), label_trg.clone()
        # -- discriminator --
        out_src, out_cls = D(x_real)
        d_loss_real = -torch.mean(out_src)
        d_loss_cls = classification_loss(out_cls, label_org)
        x_fake = G(x_real, c_trg)
        out_src, out_cls = D(x_fake.detach())
        d_loss_fake = torch.mean(out_src)
        alpha = torch.rand(batch_size, 1, 1, 1, device=device)
        x_hat = (alpha * x_real.data + (1 - alpha) * x_fake.data).requires_grad_(True)
        out_src, _ = D(x_hat)
        d_loss_gp = gradient_penalty(out_src, x_hat)
        d_loss = d_loss_real + d_loss_fake + LAMBDA_CLS * d_loss_cls + LAMBDA_GP * d_loss_gp
        reset_grad()
        d_loss.backward()
        d_opt.step()
        losses: tuple[Tensor, ...] = (d_loss.detach(),)
        # -- generator, every n_critic iterations --
        if (done + 1) % n_critic == 0:
            x_fake = G(x_real, c_trg)
            out_src, out_cls = D(x_fake)
            g_loss_fake = -torch.mean(out_src)
            g_loss_cls = classification_loss(out_cls, label_trg)
            x_reconst = G(x_fake, c_org)
            g_loss_rec = torch.mean(torch.abs(x_real - x_reconst))
            g_loss = g_loss_fake + LAMBDA_REC * g_loss_rec + LAMBDA_CLS * g_loss_cls
            reset_grad()
            g_loss.backward()
            g_opt.step()
            losses += (g_loss.detach(),)
        done += 1
        return losses

    return step


def train_step(batch_size: int, device: str = "cpu", seed: int = 0) -> Callable[[], Any]:
    """``Baseline.train_step``: the networks of ``seed``; each call one iteration (a D step, and a G step every 5th)."""
    return iteration(official_networks(device, seed), batch_size, device)


def generate(batch_size: int, device: str = "cpu", seed: int = 0) -> Callable[[], Tensor]:
    """``Baseline.generate``: G on ``batch_size`` 128×128 images and target labels without autograd, in training mode
    as ``Solver.test`` runs it (it never calls ``.eval()``: each image's own InstanceNorm statistics, the function
    ganzoo's StarGAN G computes in eval mode)."""
    G = official_networks(device, seed)["G"]
    x = torch.rand(batch_size, 3, IMAGE_SIZE, IMAGE_SIZE, device=device) * 2 - 1
    c = torch.randint(0, 2, (batch_size, C_DIM), device=device).float()

    @torch.no_grad()
    def forward() -> Tensor:
        return G(x, c)

    return forward


@gz.hookimpl
def ganzoo_bench_baselines() -> Sequence[gz.Baseline]:
    """StarGAN (CelebA, 128×128) as yunjey/stargan trains it, for ``ganzoo bench models --baseline official``."""
    return [gz.Baseline(name=NAME, objective=OBJECTIVE, overrides=dict(OVERRIDES), source=SOURCE, batch_size=BATCH_SIZE,
                        train_step=train_step, generate=generate, note=NOTE)]
