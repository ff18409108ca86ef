"""DCGAN: Radford, Metz & Chintala, "Unsupervised Representation Learning with Deep Convolutional Generative
Adversarial Networks", ICLR 2016 (arXiv:1511.06434).

The 64×64 networks are exactly those of pytorch/examples ``dcgan/main.py`` (G 3,576,704 and D 2,765,568 parameters
at nc=3, nz=100, ngf=ndf=64); 32×32 and 28×28 drop one or two ×2 stages for small data. Parameter names
match pytorch/examples, so its saved ``netG``/``netD`` state dicts load with ``create_generator(name, weights=path)``.

Paper symbols → code names:
    z (noise, |z| = 100)      → ``z``, ``nz``
    G, D                       → ``DcganGenerator``, ``DcganDiscriminator``
    feature maps of G's last / D's first conv → ``ngf`` / ``ndf``; image channels → ``nc``

File order: config → blocks → networks → objective → variants → registration. Copy this file to start a plugin.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import Tensor, nn

import ganzoo_core as gz
from ganzoo_core import validators as v
from ganzoo_core.errors import ShapeError
from ganzoo_core.layers import list_acts, list_norms

# ---------------------------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------------------------


def stage_plan(image_size: int) -> tuple[int, int]:
    """(base, n): G starts at base×base and doubles n times; 64 → (4, 4), 32 → (4, 3), 28 → (7, 2)."""
    for base in (4, 7):
        n, size = 0, image_size
        while size > base and size % 2 == 0:
            size, n = size // 2, n + 1
        if size == base and n >= 1:
            return base, n
    raise ValueError(f"image_size must be 4·2^n or 7·2^n (e.g. 64, 32, 28), got {image_size}")


def _check_size(_: Any, __: Any, value: int) -> None:
    stage_plan(value)


NORMS = tuple(n for n in list_norms() if n != "batch1d")  # every core norm of 2-d feature maps
_NORM = v.one_of(NORMS)
_ACT = v.one_of(list_acts())


@attrs.frozen(kw_only=True)
class GeneratorCfg:
    image_size: int = attrs.field(default=64, validator=_check_size)
    nz: int = attrs.field(default=100, validator=v.size)  # size of z
    nc: int = attrs.field(default=3, validator=v.size)  # image channels
    ngf: int = attrs.field(default=64, validator=v.size)  # feature maps of the last hidden layer; ×2 per stage towards the input
    norm: str = attrs.field(default="batch", validator=_NORM)  # every layer but the output (paper guideline)
    init_std: float = attrs.field(default=0.02, validator=v.positive)  # N(0, 0.02) conv weights, N(1, 0.02) BN weights (paper)


@attrs.frozen(kw_only=True)
class DiscriminatorCfg:
    image_size: int = attrs.field(default=64, validator=_check_size)
    nc: int = attrs.field(default=3, validator=v.size)
    ndf: int = attrs.field(default=64, validator=v.size)  # feature maps of the first layer; ×2 per stage
    norm: str = attrs.field(default="batch", validator=_NORM)  # every layer but the input (paper guideline)
    init_std: float = attrs.field(default=0.02, validator=v.positive)


@attrs.frozen(kw_only=True)
class BlockCfg:
    in_channels: int = attrs.field(default=128, validator=v.size)
    out_channels: int = attrs.field(default=64, validator=v.size)
    norm: str = attrs.field(default="batch", validator=_NORM)
    act: str = attrs.field(default="relu", validator=_ACT)


# ---------------------------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------------------------

# Norm then activation come from gz.create_norm_act: BatchNorm (or InstanceNorm) with ReLU or LeakyReLU(0.2) runs as
# one BatchNormAct2d (the norm_act op) followed by nn.Identity() in the activation's slot, so module indices and
# parameter names stay those of pytorch/examples ("main.1.weight", "main.4.weight", ...); other pairs are two modules.


class UpBlock(nn.Sequential):
    """Fractionally-strided conv (k4 s2 p1, no bias) → norm → activation: doubles H and W."""

    def __init__(self, cfg: BlockCfg = BlockCfg()) -> None:
        super().__init__(
            gz.ops.ConvTranspose2d(cfg.in_channels, cfg.out_channels, 4, 2, 1, bias=False),
            *gz.create_norm_act(cfg.norm, cfg.out_channels, cfg.act),
        )
        self.cfg = cfg

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor]:
        return (torch.randn(batch_size, self.cfg.in_channels, 8, 8),)

    def output_shapes(self, batch_size: int = 2) -> tuple[int, ...]:
        return (batch_size, self.cfg.out_channels, 16, 16)


class DownBlock(nn.Sequential):
    """Strided conv (k4 s2 p1, no bias) → norm → activation: halves H and W."""

    def __init__(self, cfg: BlockCfg = BlockCfg(in_channels=64, out_channels=128, act="lrelu")) -> None:
        super().__init__(
            gz.ops.Conv2d(cfg.in_channels, cfg.out_channels, 4, 2, 1, bias=False),
            *gz.create_norm_act(cfg.norm, cfg.out_channels, cfg.act),
        )
        self.cfg = cfg

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor]:
        return (torch.randn(batch_size, self.cfg.in_channels, 16, 16),)

    def output_shapes(self, batch_size: int = 2) -> tuple[int, ...]:
        return (batch_size, self.cfg.out_channels, 8, 8)


# ---------------------------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------------------------


class DcganGenerator(nn.Module):
    """G: z (nz) → image (nc × image_size × image_size) in [-1, 1]."""

    def __init__(self, cfg: GeneratorCfg = GeneratorCfg()) -> None:
        super().__init__()
        self.cfg = cfg
        base, n = stage_plan(cfg.image_size)
        widths = [cfg.ngf * 2**i for i in reversed(range(n))]  # 64×64: [512, 256, 128, 64]
        layers: list[nn.Module] = [
            gz.ops.ConvTranspose2d(cfg.nz, widths[0], base, 1, 0, bias=False),  # nz×1×1 → (ngf·8)×4×4
            *gz.create_norm_act(cfg.norm, widths[0], "relu"),
        ]
        for c_in, c_out in zip(widths, widths[1:]):  # 4×4 → 8×8 → 16×16 → 32×32, the block's 3 layers inlined
            layers += UpBlock(BlockCfg(in_channels=c_in, out_channels=c_out, norm=cfg.norm, act="relu"))
        layers += [gz.ops.ConvTranspose2d(widths[-1], cfg.nc, 4, 2, 1, bias=False), nn.Tanh()]  # → nc×64×64
        # One flat Sequential, so parameter names match pytorch/examples ("main.0.weight", ...).
        self.main = nn.Sequential(*layers)
        gz.init_normal_(self, cfg.init_std)

    def forward(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        if tuple(z.shape[1:]) not in ((self.cfg.nz,), (self.cfg.nz, 1, 1)):
            raise ShapeError(f"DCGAN G expects z of shape (B, {self.cfg.nz}) or (B, {self.cfg.nz}, 1, 1), "
                             f"got {tuple(z.shape)}")
        return self.main(z.view(z.shape[0], self.cfg.nz, 1, 1))  # (B, nz) → (B, nz, 1, 1)

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor]:
        return (torch.randn(batch_size, self.cfg.nz),)

    def output_shapes(self, batch_size: int = 2) -> tuple[int, ...]:
        return (batch_size, self.cfg.nc, self.cfg.image_size, self.cfg.image_size)


class DcganDiscriminator(nn.Module):
    """D: image (nc × image_size × image_size) → one real/fake logit per image (B,)."""

    def __init__(self, cfg: DiscriminatorCfg = DiscriminatorCfg()) -> None:
        super().__init__()
        self.cfg = cfg
        base, n = stage_plan(cfg.image_size)
        widths = [cfg.ndf * 2**i for i in range(n)]  # 64×64: [64, 128, 256, 512]
        layers: list[nn.Module] = [
            gz.ops.Conv2d(cfg.nc, widths[0], 4, 2, 1, bias=False),  # nc×64×64 → ndf×32×32, no norm on the input layer
            gz.create_act("lrelu"),  # slope 0.2
        ]
        for c_in, c_out in zip(widths, widths[1:]):  # 32×32 → 16×16 → 8×8 → 4×4, the block's 3 layers inlined
            layers += DownBlock(BlockCfg(in_channels=c_in, out_channels=c_out, norm=cfg.norm, act="lrelu"))
        layers.append(gz.ops.Conv2d(widths[-1], 1, base, 1, 0, bias=False))  # (ndf·8)×4×4 → 1×1×1
        self.main = nn.Sequential(*layers)
        gz.init_normal_(self, cfg.init_std)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        expected = (self.cfg.nc, self.cfg.image_size, self.cfg.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ShapeError(f"DCGAN D expects images of shape (B, {', '.join(map(str, expected))}), "
                             f"got {tuple(x.shape)}")
        return self.main(x).view(x.shape[0])  # (B, 1, 1, 1) → (B,): logits; pytorch/examples applies Sigmoid here

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor]:
        return (torch.rand(batch_size, self.cfg.nc, self.cfg.image_size, self.cfg.image_size) * 2 - 1,)

    def output_shapes(self, batch_size: int = 2) -> tuple[int, ...]:
        return (batch_size,)


# ---------------------------------------------------------------------------------------------------------------
# Objective: the training step of pytorch/examples
# ---------------------------------------------------------------------------------------------------------------


# From gz.GanObjectiveCfg: generator / discriminator (+ _kwargs), loss = "gan.bce" (+ loss_kwargs, e.g.
# {"real_label": 0.9}), lr = 2e-4 for Adam on both networks (paper: 1e-3 was too high), betas = (0.5, 0.999)
# (paper: β1 = 0.9 oscillated).
@attrs.frozen(kw_only=True)
class ObjectiveCfg(gz.GanObjectiveCfg):
    generator: str = "dcgan.64"  # any registered generator taking z; swap by name
    discriminator: str = "dcgan.64"
    lr_d: float | None = attrs.field(default=None, validator=v.optional(v.positive))  # D's own learning
    # rate when it should differ (two time-scale updates); None: lr
    r1_gamma: float = attrs.field(default=0.0, validator=v.non_negative)  # R1 penalty γ/2·E‖∇ₓD(x)‖² on real images
    # (Mescheder et al. 2018); 0: off, as the paper
    r1_every: int = attrs.field(default=1, validator=v.size)  # lazy R1: every k-th D step, ×k
    dataset: str = "animal_mnist.train"  # what `ganzoo train` uses when --data is not given


class DcganObjective(nn.Module):
    """One D step (real and fake in separate passes), then one G step on the same fake batch."""

    def __init__(self, cfg: ObjectiveCfg = ObjectiveCfg()) -> None:
        super().__init__()
        self.cfg = cfg
        self.networks = gz.build_gan_networks(cfg)  # {"G": ..., "D": ...} by name
        self.gan_loss = gz.build_gan_loss(cfg)
        self.phases = gz.gan_phases(cfg, lr_d=cfg.lr_d)  # the D step, then the G step

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.networks["G"].output_shapes(1)[1:])  # type: ignore[return-value]

    def _noise(self, n: int, ctx: dict[str, Any]) -> Tensor:
        """z ~ N(0, I) for n samples; the engine's ``ctx`` makes it a function of (seed, step) only."""
        g = self.networks["G"]
        (example,) = g.example_inputs(1)
        return gz.batch_noise(ctx, n, *example.shape[1:], device=next(g.parameters()).device)

    def loss(self, phase: str, batch: Mapping[str, Tensor], ctx: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        G, D, L = self.networks["G"], self.networks["D"], self.gan_loss
        if phase == "D":  # maximise log D(x) + log(1 - D(G(z)))
            real = batch["image"]
            fake = G(self._noise(real.shape[0], ctx))
            ctx["fake"] = fake
            r1 = self.cfg.r1_gamma > 0 and ctx.get("step", 0) % self.cfg.r1_every == 0 and torch.is_grad_enabled()
            if r1:
                real = real.detach().requires_grad_(True)
            out_real = D(real)
            d_real, d_fake = L.d_real(out_real), L.d_fake(D(fake.detach()))
            terms = {"d_real": d_real.detach(), "d_fake": d_fake.detach()}
            loss = d_real + d_fake
            if r1:  # the gradient of the same forward pass D(x) that the real term uses: no extra D pass
                (grad,) = torch.autograd.grad(out_real.sum(), real, create_graph=True)
                penalty = grad.float().flatten(1).square().sum(1).mean()  # E‖∇ₓD(x)‖²
                loss = loss + 0.5 * self.cfg.r1_gamma * self.cfg.r1_every * penalty
                terms["r1"] = penalty.detach()
            return loss, terms
        if phase == "G":  # maximise log D(G(z)) (non-saturating), on the D step's fake batch
            fake = ctx.pop("fake", None)
            if fake is None:
                fake = G(self._noise(batch["image"].shape[0], ctx))
            g = L.g_fake(D(fake))
            return g, {"g": g.detach()}
        raise KeyError(f"DCGAN has phases 'D' and 'G', got {phase!r}")

    @torch.no_grad()
    def sample(self, n: int, batch: Mapping[str, Tensor] | None = None, seed: int = 0) -> Tensor:
        return self.networks["G"](self._noise(n, {"noise": gz.seeded_rng(seed)}))

    def example_batch(self, batch_size: int = 2) -> dict[str, Tensor]:
        (images,) = self.networks["D"].example_inputs(batch_size)
        return {"image": images, "label": torch.randint(0, 10, (batch_size,))}


# ---------------------------------------------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------------------------------------------

G_VARIANTS = {
    "64": GeneratorCfg(),  # pytorch/examples, 3,576,704 parameters
    "32": GeneratorCfg(image_size=32),
    "28": GeneratorCfg(image_size=28, nc=1),  # MNIST-sized
}
D_VARIANTS = {
    "64": DiscriminatorCfg(),  # pytorch/examples, 2,765,568 parameters
    "32": DiscriminatorCfg(image_size=32),
    "28": DiscriminatorCfg(image_size=28, nc=1),
}
OBJECTIVE_VARIANTS = {
    **{name: ObjectiveCfg(generator=f"dcgan.{name}", discriminator=f"dcgan.{name}", dataset="animal_mnist.train")
       for name in G_VARIANTS},  # the paper's step, as pytorch/examples runs it
}

# ---------------------------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------------------------

PAPER = "Radford, Metz & Chintala, ICLR 2016, arXiv:1511.06434"

gz.register_generator("dcgan", variants=G_VARIANTS, default="64", paper=PAPER)(DcganGenerator)
gz.register_discriminator("dcgan", variants=D_VARIANTS, default="64", paper=PAPER)(DcganDiscriminator)
gz.register_objective("dcgan", variants=OBJECTIVE_VARIANTS, default="64", paper=PAPER)(DcganObjective)
# a recipe tuned here beyond the paper (lr_d, lazy R1) is an experiment config now; its checkpoints load as dcgan.32
gz.register_retired("objective", "dcgan.fashion32", replacement="dcgan.32",
                    note="now an experiment: ganzoo train --config experiments/dcgan-fashion32/config.toml "
                         "(dcgan.32 with one channel, lr_d=5e-5 and lazy R1 on fashion_mnist.train)")
gz.register_block("dcgan.up", cfg=BlockCfg(), paper=PAPER)(UpBlock)
gz.register_block("dcgan.down", cfg=BlockCfg(in_channels=64, out_channels=128, act="lrelu"), paper=PAPER)(DownBlock)


@gz.hookimpl
def ganzoo_convert_checkpoint(kind: str, name: str, path: Path) -> dict[str, Tensor] | None:
    """Load DataParallel-wrapped pytorch/examples weights (``module.main.0.weight``) into DCGAN.

    Plain pytorch/examples ``netG_epoch_*.pth`` / ``netD_epoch_*.pth`` files need no conversion: the layer names match.
    """
    if not name.startswith("dcgan.") or kind not in ("generator", "discriminator") or path.suffix not in (".pt", ".pth"):
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a weights-only PyTorch file: not ours to convert
        return None
    if not isinstance(state, Mapping) or not any(str(k).startswith("module.") for k in state):
        return None
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, Tensor)}
