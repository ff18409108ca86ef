"""StackGAN-v1: Zhang et al., "StackGAN: Text to Photo-realistic Image Synthesis with Stacked Generative Adversarial
Networks", ICCV 2017 (arXiv:1612.03242).

Networks follow the released PyTorch code (hanzhanggit/StackGAN-Pytorch ``code/model.py``) at the birds defaults:
Stage-I G 10,301,248 and D 5,715,713 parameters (64×64, text 1024-d char-CNN-RNN, Ng = 128, Nz = 100,
ngf = 1024, ndf = 64); Stage-II G 26,290,080 (its own CA included, Stage-I not) and D 71,269,122 (256×256, ngf 128,
ndf 64, 4 residual blocks, both D heads). The tests recompute the counts layer by layer from the tables.
Smaller variants (16→64, 32→128, 16→32) keep the design and shrink widths so CPU training is possible.

Paper symbols → code names:
    φ_t (text embedding)                 → ``text_emb`` (batch key), ``text_dim``
    F_ca, ĉ_0 / ĉ (CA output), Ng        → ``CondAugment``, ``c``, ``cond_dim``
    μ_0, σ_0 (Σ = diag σ²)               → ``mu``, ``logvar`` (= log σ², as the PyTorch code)
    z, Nz                                → ``z``, ``nz``
    G_0, D_0 (Stage-I); G, D (Stage-II)  → ``StageIGenerator``, ``StackDiscriminator``; ``StageIIGenerator``,
                                           ``StackDiscriminator`` with ``uncond_head=True``
    s_0 (Stage-I result)                 → ``low`` / ``image64``
    Mg, Md                               → ``in_size // 4`` (Stage-II working size), 4 (D's final size)
    λ (KL weight)                        → ``kl_coef`` (2.0, as the released code; the paper says 1)

D returns logits (the released code ends in Sigmoid + BCELoss; the losses here work on logits). D is conditioned on
G's μ, detached, as in the PyTorch code (``cond_input="mu"``), so D's condition is ``cond_dim``-wide; or, as the TF
code does, on the raw text embedding through D's own FC(text_dim → cond_dim) + LeakyReLU(0.2) (``cond_input="text"``).
The CPU variants use "text": with "mu", what D can check is only what G's CA chooses to put into μ, and G gains on
both its adversarial loss and the KL term by putting nothing there. On captioned shapes (``s1_32`` with ngf 128, 2,500
steps) a "mu" D gets all four attributes right for 0.03 of held-out captions against 0.18 with "text"; with a
LeakyReLU CA and a "mu" D, colour stays at chance (0.17; chance 0.14) while position is learnt (0.99).

File order: configs → blocks → networks → objective → variants → registration.
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
from ganzoo_core._api import SPEC_ATTR
from ganzoo_core.config import SAVED_BEFORE
from ganzoo_core.errors import CheckpointError, ConfigError, ShapeError
from ganzoo_core.layers import list_acts
from ganzoo_core.ops import UpsampleConv2d
from ganzoo_core.text import (
    apply_text_norm,
    check_encoder_kwargs,
    check_text_norm,
    describe_encoder,
    encoder_data_defaults,
)

# ---------------------------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------------------------


def _power_of_two_from_4(_: Any, attribute: Any, value: int) -> None:
    if value < 8 or value & (value - 1):
        raise ValueError(f"{attribute.name} must be a power of two of at least 8 (16, 32, 64, ...), got {value}")


_ACT = v.one_of(list_acts())


# text_norm (ganzoo_core.text.TEXT_NORMS): "none" (default) feeds φ_t to CA as given, as the released code does with
# char-CNN-RNN vectors. "rms" (ours; set by the CPU variants below) rescales each embedding to unit root-mean-square
# per entry (‖φ_t‖ = √text_dim) first: the built-in encoders give unit-norm rows (entries ≈ 1/√D), so μ would
# differ between captions by far less than the σ·ε ≥ 1 noise that CA adds (log σ² comes out of a ReLU).


@attrs.frozen(kw_only=True)
class CaCfg:
    text_dim: int = attrs.field(default=1024, validator=v.size)  # φ_t: char-CNN-RNN 1024; bow.hashed 512; minilm.l6_v2 384
    cond_dim: int = attrs.field(default=128, validator=v.size)  # Ng
    act: str = attrs.field(default="relu", validator=_ACT)  # PyTorch code: ReLU after the FC; TF code: "lrelu" (0.2)
    augment: bool = True  # False: c = μ, no noise and no KL (the "without CA" ablation)
    text_norm: str = attrs.field(default="none", validator=check_text_norm)  # see the note above CaCfg


@attrs.frozen(kw_only=True)
class StageICfg:
    image_size: int = attrs.field(default=64, validator=_power_of_two_from_4)
    text_dim: int = attrs.field(default=1024, validator=v.size)
    cond_dim: int = attrs.field(default=128, validator=v.size)
    nz: int = attrs.field(default=100, validator=v.size)
    ngf: int = attrs.field(default=1024, validator=v.size)  # channels at 4×4; halved by every up block (PyTorch: GF_DIM·8)
    ca_act: str = attrs.field(default="relu", validator=_ACT)
    augment: bool = True
    text_norm: str = attrs.field(default="none", validator=check_text_norm)
    init_std: float = attrs.field(default=0.02, validator=v.positive)

    def ca(self) -> CaCfg:
        return CaCfg(text_dim=self.text_dim, cond_dim=self.cond_dim, act=self.ca_act, augment=self.augment,
                     text_norm=self.text_norm)


@attrs.frozen(kw_only=True)
class StageIICfg:
    in_size: int = attrs.field(default=64, validator=_power_of_two_from_4)  # Stage-I images
    image_size: int = attrs.field(default=256, validator=_power_of_two_from_4)  # Stage-II output
    text_dim: int = attrs.field(default=1024, validator=v.size)
    cond_dim: int = attrs.field(default=128, validator=v.size)
    ngf: int = attrs.field(default=128, validator=v.size)  # encoder widths ngf, 2ngf, 4ngf; up blocks halve from 4ngf
    n_res: int = attrs.field(default=4, validator=v.depth)  # R_NUM (PyTorch COCO yml: 2)
    ca_act: str = attrs.field(default="relu", validator=_ACT)
    augment: bool = True
    text_norm: str = attrs.field(default="none", validator=check_text_norm)
    init_std: float = attrs.field(default=0.02, validator=v.positive)

    def __attrs_post_init__(self) -> None:
        if self.image_size < self.in_size:
            raise ValueError(f"Stage-II image_size {self.image_size} must be at least in_size {self.in_size}")

    def ca(self) -> CaCfg:
        return CaCfg(text_dim=self.text_dim, cond_dim=self.cond_dim, act=self.ca_act, augment=self.augment,
                     text_norm=self.text_norm)


@attrs.frozen(kw_only=True)
class DiscriminatorCfg:
    image_size: int = attrs.field(default=64, validator=_power_of_two_from_4)
    ndf: int = attrs.field(default=64, validator=v.size)  # first layer's channels; doubled by every stride-2 conv down to 4×4
    cond_dim: int = attrs.field(default=128, validator=v.size)  # D's condition width, replicated at 4×4
    cond_input: str = attrs.field(default="mu", validator=v.one_of(("mu", "text")))  # see the docstring
    text_dim: int = attrs.field(default=1024, validator=v.size)  # cond_input="text": the embedding width D projects (the
    # encoder's embed_dim)
    text_norm: str = attrs.field(default="none", validator=check_text_norm)  # cond_input="text": as CA normalises
    uncond_head: bool = False  # Stage-II (PyTorch): a second, unconditional real/fake logit
    init_std: float = attrs.field(default=0.02, validator=v.positive)


# ---------------------------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------------------------


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) averaged over batch and dimensions, as both released codes do (not summed over
    the Ng dimensions): ``-½ · mean(1 + log σ² − μ² − σ²)``."""
    return -0.5 * torch.mean(1 + logvar - mu.square() - logvar.exp())


class CondAugment(nn.Module):
    """Conditioning Augmentation: φ_t → FC → (μ, log σ²); c = μ + σ·ε with ε ~ N(0, I). ``forward`` returns
    ``(c, mu, logvar)``. Pass ``eps`` to fix the noise (seeded sampling); without ``augment``, c = μ."""

    def __init__(self, cfg: CaCfg = CaCfg()) -> None:
        super().__init__()
        self.cfg = cfg
        self.fc = nn.Linear(cfg.text_dim, 2 * cfg.cond_dim)  # bias: yes (PyTorch code)
        self.act = gz.create_act(cfg.act)

    def forward(self, text_emb: Tensor, eps: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        if text_emb.ndim != 2 or text_emb.shape[1] != self.cfg.text_dim:
            raise ShapeError(f"stackgan CA expects text embeddings of shape (B, {self.cfg.text_dim}), got "
                             f"{tuple(text_emb.shape)}; set text_dim to your encoder's embed_dim")
        h = self.act(self.fc(apply_text_norm(text_emb, self.cfg.text_norm)))  # (B, 2·Ng)
        mu, logvar = h[:, :self.cfg.cond_dim], h[:, self.cfg.cond_dim:]  # (B, Ng) each: first half μ, then log σ²
        if not self.cfg.augment:
            return mu, mu, logvar
        if eps is None:
            eps = torch.randn_like(mu)
        return mu + eps * torch.exp(0.5 * logvar), mu, logvar

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor]:
        return (torch.randn(batch_size, self.cfg.text_dim),)

    def output_shapes(self, batch_size: int = 2) -> tuple[tuple[int, int], ...]:
        return ((batch_size, self.cfg.cond_dim),) * 3


# BatchNorm + activation run as one BatchNormAct2d (gz.create_fused_norm_act: the norm_act op), in one slot.


def up_block(c_in: int, c_out: int) -> nn.Sequential:
    """upBlock: nearest ×2 + conv3×3 (no bias) as one ``upsample_conv`` op, then BatchNorm + ReLU fused."""
    return nn.Sequential(UpsampleConv2d(c_in, c_out, bias=False), gz.create_fused_norm_act("batch", c_out, "relu"))


def down_block(c_in: int, c_out: int, norm: bool = True, act: str = "lrelu") -> nn.Sequential:
    """conv k4 s2 p1 (no bias) → [BatchNorm] → activation (LeakyReLU 0.2 in D, ReLU in the Stage-II encoder)."""
    tail: nn.Module = gz.create_fused_norm_act("batch", c_out, act) if norm else gz.create_act(act)
    return nn.Sequential(gz.ops.Conv2d(c_in, c_out, 4, 2, 1, bias=False), tail)


def conv3x3_bn_act(c_in: int, c_out: int, act: str) -> nn.Sequential:
    return nn.Sequential(gz.ops.Conv2d(c_in, c_out, 3, 1, 1, bias=False), gz.create_fused_norm_act("batch", c_out, act))


class ResBlock(nn.Module):
    """conv3×3 + BN + ReLU + conv3×3 + BN, added to the input, then ReLU (Stage-II G)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv3x3_bn_act(channels, channels, "relu"),
            gz.ops.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels),
        )
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.body(x))


def replicate(c: Tensor, size: int) -> Tensor:
    return c[:, :, None, None].expand(-1, -1, size, size)  # (B, Ng) → (B, Ng, size, size)


def stackgan_init_(module: nn.Module, std: float) -> nn.Module:
    """The released init: conv and linear weights N(0, std), biases 0, BatchNorm weights N(1, std)."""
    gz.init_normal_(module, std)
    for m in module.modules():
        if isinstance(m, UpsampleConv2d):  # not an nn.Conv2d, so init_normal_ leaves it alone
            nn.init.normal_(m.weight, 0.0, std)
    return module


def n_doublings(small: int, large: int) -> int:
    return (large // small).bit_length() - 1  # log2 of a power-of-two ratio


# ---------------------------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------------------------


class StageIGenerator(nn.Module):
    """Stage-I G: (z, text_emb) → (image, mu, logvar); image nc 3 × image_size² in [-1, 1]."""

    def __init__(self, cfg: StageICfg = StageICfg()) -> None:
        super().__init__()
        self.cfg = cfg
        self.ca = CondAugment(cfg.ca())
        n = n_doublings(4, cfg.image_size)  # 64: 4 up blocks
        if cfg.ngf % 2**n:
            raise ConfigError(f"ngf {cfg.ngf} must be divisible by 2^{n} for image_size {cfg.image_size}")
        self.fc = nn.Sequential(  # [z, c] → ngf×4×4 (no bias, BN1d, ReLU)
            nn.Linear(cfg.nz + cfg.cond_dim, cfg.ngf * 16, bias=False), nn.BatchNorm1d(cfg.ngf * 16), nn.ReLU())
        widths = [cfg.ngf // 2**i for i in range(n + 1)]  # 64: [1024, 512, 256, 128, 64]
        self.up = nn.Sequential(*(up_block(a, b) for a, b in zip(widths, widths[1:])))
        self.to_rgb = nn.Sequential(gz.ops.Conv2d(widths[-1], 3, 3, 1, 1, bias=False), nn.Tanh())
        stackgan_init_(self, cfg.init_std)

    def forward(self, z: Tensor, cond: Tensor | None = None, eps: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        if cond is None:
            raise ShapeError("stackgan Stage-I G needs cond=text_emb of shape (B, text_dim)")
        if z.ndim != 2 or z.shape[1] != self.cfg.nz or z.shape[0] != cond.shape[0]:
            raise ShapeError(f"stackgan Stage-I G expects z of shape ({cond.shape[0]}, {self.cfg.nz}), got "
                             f"{tuple(z.shape)}")
        c, mu, logvar = self.ca(cond, eps)
        h = self.fc(torch.cat([z, c], 1)).view(-1, self.cfg.ngf, 4, 4)  # (B, Nz+Ng) → (B, ngf, 4, 4)
        return self.to_rgb(self.up(h)), mu, logvar  # (B, 3, S, S)

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor, Tensor]:
        return torch.randn(batch_size, self.cfg.nz), torch.randn(batch_size, self.cfg.text_dim)

    def output_shapes(self, batch_size: int = 2) -> tuple[tuple[int, ...], ...]:
        s = self.cfg.image_size
        return (batch_size, 3, s, s), (batch_size, self.cfg.cond_dim), (batch_size, self.cfg.cond_dim)


class StageIIGenerator(nn.Module):
    """Stage-II G: (Stage-I image, text_emb) → (image, mu, logvar): encode to in_size/4, join the replicated c,
    residual blocks, up blocks to image_size."""

    def __init__(self, cfg: StageIICfg = StageIICfg()) -> None:
        super().__init__()
        self.cfg = cfg
        g = cfg.ngf
        self.ca = CondAugment(cfg.ca())
        self.encoder = nn.Sequential(  # 3×S×S → 4ngf×(S/4)×(S/4)
            gz.ops.Conv2d(3, g, 3, 1, 1, bias=False), nn.ReLU(),  # no BN on the first layer
            down_block(g, 2 * g, act="relu"), down_block(2 * g, 4 * g, act="relu"),
        )
        self.joint = conv3x3_bn_act(4 * g + cfg.cond_dim, 4 * g, "relu")
        self.residual = nn.Sequential(*(ResBlock(4 * g) for _ in range(cfg.n_res)))
        n_up = 2 + n_doublings(cfg.in_size, cfg.image_size)  # 64 → 256: 4
        if 4 * g % 2**n_up:
            raise ConfigError(f"ngf {g} is too small for {n_up} up blocks: 4·ngf must be divisible by 2^{n_up}")
        widths = [4 * g // 2**i for i in range(n_up + 1)]  # 256: [512, 256, 128, 64, 32]
        self.up = nn.Sequential(*(up_block(a, b) for a, b in zip(widths, widths[1:])))
        self.to_rgb = nn.Sequential(gz.ops.Conv2d(widths[-1], 3, 3, 1, 1, bias=False), nn.Tanh())
        stackgan_init_(self, cfg.init_std)

    def forward(self, x: Tensor, cond: Tensor | None = None, eps: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        s = self.cfg.in_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, s, s):
            raise ShapeError(f"stackgan Stage-II G expects Stage-I images of shape (B, 3, {s}, {s}), got "
                             f"{tuple(x.shape)}")
        if cond is None or cond.shape[0] != x.shape[0]:
            raise ShapeError(f"stackgan Stage-II G needs cond=text_emb of shape ({x.shape[0]}, text_dim)")
        c, mu, logvar = self.ca(cond, eps)
        h = self.encoder(x)  # (B, 4ngf, S/4, S/4)
        h = self.joint(torch.cat([h, replicate(c, h.shape[-1])], 1))  # (B, 4ngf + Ng, Mg, Mg) → (B, 4ngf, Mg, Mg)
        return self.to_rgb(self.up(self.residual(h))), mu, logvar  # (B, 3, image_size, image_size)

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor, Tensor]:
        s = self.cfg.in_size
        return torch.rand(batch_size, 3, s, s) * 2 - 1, torch.randn(batch_size, self.cfg.text_dim)

    def output_shapes(self, batch_size: int = 2) -> tuple[tuple[int, ...], ...]:
        s = self.cfg.image_size
        return (batch_size, 3, s, s), (batch_size, self.cfg.cond_dim), (batch_size, self.cfg.cond_dim)


class StackDiscriminator(nn.Module):
    """D: (image, condition code) → conditional real/fake logits (B,); with ``uncond_head`` a
    ``DiscOutput(logits=conditional, aux=unconditional)``. Stride-2 convs to 4×4, 3×3 convs back to 8·ndf
    channels (Stage-II), then [h, replicated condition] → conv3×3 → conv k4 s4."""

    def __init__(self, cfg: DiscriminatorCfg = DiscriminatorCfg()) -> None:
        super().__init__()
        self.cfg = cfg
        n = n_doublings(4, cfg.image_size)  # 64: 4, 256: 6
        widths = [cfg.ndf * 2**i for i in range(n)]  # 256: [64, 128, 256, 512, 1024, 2048]
        layers: list[nn.Module] = [down_block(3, widths[0], norm=False)]  # no BN on the input layer
        layers += [down_block(a, b) for a, b in zip(widths, widths[1:])]
        w = widths[-1]
        while w > 8 * cfg.ndf:  # Stage-II: 2048 → 1024 → 512 at 4×4
            layers.append(conv3x3_bn_act(w, w // 2, "lrelu"))
            w //= 2
        self.features = nn.Sequential(*layers)  # (B, 3, S, S) → (B, w, 4, 4)
        self.width = w
        self.cond_head = nn.Sequential(conv3x3_bn_act(w + cfg.cond_dim, w, "lrelu"), gz.ops.Conv2d(w, 1, 4, 4))
        self.text_fc = (nn.Sequential(nn.Linear(cfg.text_dim, cfg.cond_dim), nn.LeakyReLU(0.2))  # TF: D's own code
                        if cfg.cond_input == "text" else None)
        self.uncond = gz.ops.Conv2d(w, 1, 4, 4) if cfg.uncond_head else None
        stackgan_init_(self, cfg.init_std)

    @property
    def cond_width(self) -> int:
        """The width of the condition ``cond_logits`` takes: cond_dim (G's μ) or text_dim (the text embedding)."""
        return self.cfg.text_dim if self.text_fc is not None else self.cfg.cond_dim

    def _what(self) -> str:
        return "the text embedding" if self.text_fc is not None else "G's mu"

    def cond_logits(self, h: Tensor, cond: Tensor) -> Tensor:
        if cond.ndim != 2 or cond.shape[1] != self.cond_width or cond.shape[0] != h.shape[0]:
            raise ShapeError(f"stackgan D expects a condition of shape ({h.shape[0]}, {self.cond_width}) "
                             f"({self._what()}), got {tuple(cond.shape)}")
        if self.text_fc is not None:
            cond = self.text_fc(apply_text_norm(cond, self.cfg.text_norm))  # (B, text_dim) → (B, Ng)
        return self.cond_head(torch.cat([h, replicate(cond, 4)], 1)).view(-1)  # (B, w + Ng, 4, 4) → (B,)

    def uncond_logits(self, h: Tensor) -> Tensor:
        if self.uncond is None:
            raise ConfigError("this stackgan D has no unconditional head; build it with uncond_head=True")
        return self.uncond(h).view(-1)  # (B, 1, 1, 1) → (B,)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor | gz.DiscOutput:
        s = self.cfg.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, s, s):
            raise ShapeError(f"stackgan D expects images of shape (B, 3, {s}, {s}), got {tuple(x.shape)}")
        if cond is None:
            raise ShapeError(f"stackgan D needs cond of shape (B, {self.cond_width}) ({self._what()})")
        h = self.features(x)
        logits = self.cond_logits(h, cond)
        return logits if self.uncond is None else gz.DiscOutput(logits, self.uncond_logits(h))

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor, Tensor]:
        s = self.cfg.image_size
        return torch.rand(batch_size, 3, s, s) * 2 - 1, torch.randn(batch_size, self.cond_width)

    def output_shapes(self, batch_size: int = 2) -> tuple[int, ...] | tuple[tuple[int, ...], ...]:
        return (batch_size,) if self.uncond is None else ((batch_size,), (batch_size,))


# ---------------------------------------------------------------------------------------------------------------
# Objective: Stage-I, or Stage-II on top of a frozen Stage-I
# ---------------------------------------------------------------------------------------------------------------


# From gz.GanObjectiveCfg: generator / discriminator (+ _kwargs), loss = "gan.bce" (+ loss_kwargs), lr = 2e-4 for
# Adam on G and D (the LR halving is the engine's: --lr-schedule step --step-size N), betas = (0.5, 0.999).

# Wrong (mismatched) pairs when the dataset gives no ``image_wrong``: "released" pairs image i-1 with caption i for
# i = 1..B-1 (the PyTorch code's real[:B-1] with cond[1:], B-1 pairs); "roll" (ours) adds the pair (image B-1,
# caption 0), B pairs. Neither checks that the two captions differ.
WRONG_PAIRS = ("released", "roll")


@attrs.frozen(kw_only=True)
class ObjectiveCfg(gz.GanObjectiveCfg):
    generator: str = "stackgan.s1_64"  # Stage-I G for a Stage-I objective, Stage-II G for a Stage-II one
    discriminator: str = "stackgan.s1_64"
    stage1: str | None = None  # Stage-II: the Stage-I generator's name (None: this is a Stage-I objective)
    stage1_kwargs: Mapping[str, Any] = attrs.field(factory=dict, converter=dict, hash=False)
    stage1_checkpoint: str | None = None  # Stage-II: a Stage-I objective or generator checkpoint (None: untrained);
    # read once: the built objective's cfg names the loaded Stage-I in stage1 / stage1_kwargs and sets this to None
    kl_coef: float = attrs.field(default=2.0, validator=v.non_negative)  # λ; released code 2.0, paper 1
    wrong_pairs: str = attrs.field(default="released", validator=v.one_of(WRONG_PAIRS),  # without image_wrong
                                   metadata={SAVED_BEFORE: "roll"})
    stage1_train_mode: bool = attrs.field(default=True, metadata={SAVED_BEFORE: False})  # Stage-II: the frozen
    # Stage-I runs in the objective's mode (released); False: always in eval mode
    text_norm: str | None = attrs.field(default=None, validator=v.optional(check_text_norm),
                                        metadata={SAVED_BEFORE: "rms"})  # when set, the text_norm of G, D and
    # Stage-I (their *_kwargs win); None: each network's own
    dataset: str = "stackgan.shapes"  # what `ganzoo train` uses when --data is not given
    # The text encoder the embeddings come from (ganzoo_core.interfaces.TextToImage): a registry name and its config
    # overrides, so a checkpoint embeds new captions by itself (ganzoo sample --text). The official variants: the
    # release's char-CNN-RNN (CUB; its weights are a released file, given when sampling); the CPU ones: bow.hashed, as
    # stackgan.shapes embeds by default. `ganzoo train` records what the data embedded with (--data-set encoder=).
    encoder: str = "char_cnn_rnn.cub"
    encoder_kwargs: Mapping[str, Any] = attrs.field(factory=dict, converter=dict, hash=False,
                                                    validator=check_encoder_kwargs)

    def network_defaults(self) -> dict[str, Any]:
        """Options every network of the objective (G, D, Stage-I) gets unless its ``*_kwargs`` say otherwise."""
        return {} if self.text_norm is None else {"text_norm": self.text_norm}


class StackObjective(nn.Module):
    """Matching-aware D (real+right, real+wrong, fake+right) and G (+ kl_coef·KL); Stage-II runs a frozen Stage-I.

    Wrong pairs use ``batch["image_wrong"]`` when the dataset gives it, else the real batch shifted by one (image
    i-1 with caption i, ``wrong_pairs``). As in the released STAGE2_G, the frozen Stage-I runs in the objective's
    mode (``stage1_train_mode``): in training its BatchNorm layers use batch statistics and update their running
    ones, though its weights never change."""

    def __init__(self, cfg: ObjectiveCfg = ObjectiveCfg()) -> None:
        super().__init__()
        self.cfg = cfg
        norm = cfg.network_defaults()
        self.networks = gz.build_gan_networks(cfg, generator_defaults=norm, discriminator_defaults=norm)  # G, D
        self.stage1 = self._build_stage1(cfg)  # outside networks: no phase, no optimizer, frozen
        if self.stage1 is not None:
            # The Stage-I weights are this module's: what checkpoints save is how to rebuild the Stage-I network (its
            # registry name and full config), never the path, so a saved Stage-II loads without the Stage-I file and
            # its metadata cannot make ganzoo open a path the user did not give. The full config, whether loaded or
            # built by name, so a resumed run compares equal however its Stage-I was given.
            self.cfg = attrs.evolve(cfg, stage1=getattr(self.stage1, SPEC_ATTR)[1],
                                    stage1_kwargs=attrs.asdict(self.stage1.cfg), stage1_checkpoint=None)
        self.gan_loss = gz.build_gan_loss(cfg)
        self.phases = gz.gan_phases(cfg)  # the D step, then the G step
        self._check_widths()

    @staticmethod
    def _build_stage1(cfg: ObjectiveCfg) -> nn.Module | None:
        if cfg.stage1 is None and cfg.stage1_checkpoint is None:
            return None
        kwargs = {**cfg.network_defaults(), **cfg.stage1_kwargs}
        if cfg.stage1_checkpoint is None:
            stage1 = gz.create_generator(cfg.stage1, **kwargs)
        else:  # a ganzoo checkpoint rebuilds itself; a released file needs the Stage-I name (the variant gives it)
            _check_stage1_encoder(cfg)
            stage1 = load_stage1(cfg.stage1_checkpoint, cfg.stage1, kwargs)
        return stage1.requires_grad_(False)  # frozen weights; its mode follows the objective's (see train())

    def _check_widths(self) -> None:
        G, D = self.networks["G"], self.networks["D"]
        if D.cfg.cond_input == "text" and D.cfg.text_dim != G.cfg.text_dim:
            raise ConfigError(f"D ({self.cfg.discriminator}) projects {D.cfg.text_dim}-d text but G "
                              f"({self.cfg.generator}) takes {G.cfg.text_dim}-d text; set both text_dim alike")
        if (D.cfg.cond_input == "mu" and G.cfg.cond_dim != D.cfg.cond_dim) or G.cfg.image_size != D.cfg.image_size:
            raise ConfigError(f"G ({self.cfg.generator}: cond_dim {G.cfg.cond_dim}, image_size {G.cfg.image_size}) "
                              f"and D ({self.cfg.discriminator}: cond_dim {D.cfg.cond_dim}, image_size "
                              f"{D.cfg.image_size}) do not fit; override one of them")
        if self.stage1 is not None:
            s1, s2 = self.stage1.cfg, G.cfg
            if getattr(s2, "in_size", None) != s1.image_size or s1.text_dim != s2.text_dim:
                raise ConfigError(f"Stage-I G makes {s1.image_size}px images from {s1.text_dim}-d text, but Stage-II "
                                  f"G {self.cfg.generator} takes in_size {getattr(s2, 'in_size', None)} and text_dim "
                                  f"{s2.text_dim}; pick matching variants")

    def train(self, mode: bool = True) -> StackObjective:
        super().train(mode)
        if self.stage1 is not None and not self.cfg.stage1_train_mode:
            self.stage1.eval()  # ours: its BatchNorm statistics never change
        return self

    def load_generator_weights(self, path: str | Path) -> None:
        """A generator file into G and, for Stage-II, into the frozen Stage-I too: a released StackGAN-Pytorch
        Stage-II ``netG`` holds its Stage-I under ``STAGE1_G.*`` (``ganzoo_core.gan_objective.load_generator_weights``,
        which ``ganzoo sample FILE --objective stackgan.s2_256`` calls)."""
        gz.load_weights(self.networks["G"], path)
        if self.stage1 is not None:
            gz.load_weights(self.stage1, path)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.networks["G"].output_shapes(1)[0][1:])  # type: ignore[return-value]

    @property
    def text_dim(self) -> int:
        return int(self.networks["G"].cfg.text_dim)

    @property
    def text_encoder(self) -> tuple[str, dict[str, Any]]:
        """The text encoder's registry name and config overrides (``cfg.encoder``, ``cfg.encoder_kwargs``)."""
        return self.cfg.encoder, dict(self.cfg.encoder_kwargs)

    @property
    def data_defaults(self) -> dict[str, Any]:
        """Dataset options the objective sets unless the user does (``ganzoo_core.training.dataset_for``): its
        encoder, when that embeds as trained without a file (``ganzoo_core.text.encoder_data_defaults``)."""
        return encoder_data_defaults(self.cfg.encoder, self.cfg.encoder_kwargs)

    # -- generation --
    def _device(self) -> torch.device:
        return next(self.networks["G"].parameters()).device

    def generate(self, text_emb: Tensor, ctx: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """(image, mu, logvar, Stage-I image or None), noise from ``ctx`` (the engine's, or a seeded generator)."""
        n, dev, G = text_emb.shape[0], text_emb.device, self.networks["G"]
        low = None
        if self.stage1 is not None:
            s1 = self.stage1
            z = gz.batch_noise(ctx, n, s1.cfg.nz, device=dev)
            eps1 = gz.batch_noise(ctx, n, s1.cfg.cond_dim, device=dev)
            with torch.no_grad():
                low = s1(z, text_emb, eps=eps1)[0].detach()
            eps = gz.batch_noise(ctx, n, G.cfg.cond_dim, device=dev)
            image, mu, logvar = G(low, text_emb, eps=eps)
        else:
            z = gz.batch_noise(ctx, n, G.cfg.nz, device=dev)
            eps = gz.batch_noise(ctx, n, G.cfg.cond_dim, device=dev)
            image, mu, logvar = G(z, text_emb, eps=eps)
        return image, mu, logvar, low

    # -- losses --
    def _d_condition(self, text: Tensor, mu: Tensor) -> Tensor:
        """What D's conditional head reads: G's μ, detached (PyTorch code), or the text embedding (TF code)."""
        return text if self.networks["D"].cfg.cond_input == "text" else mu.detach()

    def loss(self, phase: str, batch: Mapping[str, Tensor], ctx: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        if phase == "D":
            return self._d_loss(batch, ctx)
        if phase == "G":
            return self._g_loss(batch, ctx)
        raise KeyError(f"stackgan has phases 'D' and 'G', got {phase!r}")

    def _d_loss(self, batch: Mapping[str, Tensor], ctx: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        D, L = self.networks["D"], self.gan_loss
        real, text = batch["image"], batch["text_emb"]
        fake, mu, logvar, _ = self.generate(text, ctx)
        ctx["fake"] = (fake, mu, logvar)  # reused by the G phase
        cond = self._d_condition(text, mu)
        h_real = D.features(real)
        h_fake = D.features(fake.detach())
        real_c = L.d_real(D.cond_logits(h_real, cond))
        if "image_wrong" in batch:
            wrong = L.d_fake(D.cond_logits(D.features(batch["image_wrong"]), cond))
        elif self.cfg.wrong_pairs == "released":  # image i-1 with caption i, i = 1..B-1
            wrong = L.d_fake(D.cond_logits(h_real[:-1], cond[1:]))
        else:  # roll: the same plus (image B-1, caption 0)
            wrong = L.d_fake(D.cond_logits(h_real.roll(1, 0), cond))
        fake_c = L.d_fake(D.cond_logits(h_fake, cond))
        terms = {"real": real_c.detach(), "wrong": wrong.detach(), "fake": fake_c.detach()}
        if D.uncond is None:  # Stage-I: errD = real + (fake + wrong) / 2
            return real_c + (fake_c + wrong) / 2, terms
        real_u, fake_u = L.d_real(D.uncond_logits(h_real)), L.d_fake(D.uncond_logits(h_fake))
        terms |= {"real_uncond": real_u.detach(), "fake_uncond": fake_u.detach()}
        return (real_c + real_u) / 2 + (fake_c + wrong + fake_u) / 3, terms  # PyTorch Stage-II

    def _g_loss(self, batch: Mapping[str, Tensor], ctx: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        D, L = self.networks["D"], self.gan_loss
        fake, mu, logvar = ctx.pop("fake", None) or self.generate(batch["text_emb"], ctx)[:3]
        h = D.features(fake)
        adv = L.g_fake(D.cond_logits(h, self._d_condition(batch["text_emb"], mu)))
        if D.uncond is not None:
            adv = adv + L.g_fake(D.uncond_logits(h))
        kl = kl_divergence(mu, logvar)
        coef = self.cfg.kl_coef if self.networks["G"].cfg.augment else 0.0
        return adv + coef * kl, {"adv": adv.detach(), "kl": kl.detach()}

    # -- sampling --
    def _conditions(self, n: int, batch: Mapping[str, Tensor] | None, gen: torch.Generator) -> Tensor:
        if batch is not None and "text_emb" in batch:
            text = batch["text_emb"]
            return text[torch.arange(n) % text.shape[0]].to(self._device())  # cycle when n > batch
        return torch.randn(n, self.text_dim, generator=gen).to(self._device())  # no captions: random embeddings

    @torch.no_grad()
    def sample_stages(self, n: int, batch: Mapping[str, Tensor] | None = None, seed: int = 0
                      ) -> tuple[Tensor, Tensor | None]:
        """(final images, Stage-I images or None) for ``n`` conditions (the batch's ``text_emb``, cycled; random
        embeddings without a batch), the same for the same seed."""
        gen = gz.seeded_rng(seed)
        text = self._conditions(n, batch, gen)
        image, _, _, low = self.generate(text, {"noise": gen})
        return image, low

    @torch.no_grad()
    def sample(self, n: int, batch: Mapping[str, Tensor] | None = None, seed: int = 0) -> Tensor:
        return self.sample_stages(n, batch, seed)[0]

    def example_batch(self, batch_size: int = 2) -> dict[str, Tensor]:
        """A batch as the released data loader gives it: images and embeddings, no ``image_wrong`` (the wrong pairs
        come from the shifted batch, ``wrong_pairs``), so a benchmark times the released D step."""
        (images, _) = self.networks["D"].example_inputs(batch_size)
        return {"image": images, "text_emb": torch.randn(batch_size, self.text_dim)}


def _check_stage1_encoder(cfg: ObjectiveCfg) -> None:
    """A Stage-I trained (as a stackgan objective) on captions embedded by another encoder than this Stage-II's
    would get embeddings it never saw: a ``ConfigError`` naming both."""
    path = Path(str(cfg.stage1_checkpoint))
    try:
        info = gz.read_info(path)
    except CheckpointError:  # missing (load_stage1 says so) or a released file, which records no encoder
        return
    saved = (info.config.get("encoder"), dict(info.config.get("encoder_kwargs") or {}))
    if info.kind == "objective" and isinstance(saved[0], str) and saved != (cfg.encoder, dict(cfg.encoder_kwargs)):
        raise ConfigError(f"the Stage-I in {str(path)!r} was trained on captions embedded by "
                          f"{describe_encoder(*saved)}, but this Stage-II records "
                          f"{describe_encoder(cfg.encoder, cfg.encoder_kwargs)}; train Stage-II with the same encoder "
                          f"(--set encoder={saved[0]} and --data-set encoder={saved[0]})")


def load_stage1(path: str | Path, name: str | None = None, kwargs: Mapping[str, Any] | None = None) -> nn.Module:
    """The Stage-I generator of a checkpoint: a ``stackgan`` Stage-I objective's ``G``, a Stage-II objective's frozen
    Stage-I (so a Stage-II run resumes from its own checkpoint when the Stage-I file is gone) or a generator
    checkpoint, rebuilt by its registry name and config (``ganzoo_core.checkpoints``); or, given the Stage-I
    generator's ``name`` (and config ``kwargs``), any weights file ``weights=`` reads, such as a released
    StackGAN-Pytorch Stage-I or Stage-II ``netG`` (a Stage-II file gives the Stage-I it contains)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Stage-I checkpoint {str(path)!r} does not exist; train Stage-I first "
                              "(ganzoo train stackgan.s1_16 ...) and pass its checkpoint.safetensors as "
                              "stage1_checkpoint (to resume a Stage-II run whose Stage-I file moved, pass the run's own "
                              "checkpoint.safetensors: it holds its Stage-I)")
    try:
        info = gz.read_info(path)
    except CheckpointError:
        if name is None:
            raise
        return gz.create_generator(name, weights=path, **dict(kwargs or {}))  # released weights, by content
    module = gz.load(path)
    if info.kind == "objective":
        module = module.networks["G"] if getattr(module, "stage1", None) is None else module.stage1
    if not isinstance(module, StageIGenerator):
        raise CheckpointError(f"{str(path)!r} holds {info.kind} {info.name!r}, whose generator is a "
                              f"{type(module).__name__}, not a stackgan Stage-I generator")
    return module


# ---------------------------------------------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------------------------------------------

BOW = 512  # bow.hashed embeddings, for the CPU variants trained on captioned shapes (with text_norm="rms")
TEXT_D: dict[str, Any] = {"cond_input": "text", "text_dim": BOW, "text_norm": "rms"}  # CPU variants: D reads the
# text (TF code), rescaled as the CPU generators rescale it (text_norm, see above CaCfg)

S1_VARIANTS = {  # Stage-I G
    "s1_64": StageICfg(),  # official (birds defaults): 10,301,248 parameters
    "s1_32": StageICfg(image_size=32, text_dim=BOW, ngf=256, text_norm="rms"),
    "s1_16": StageICfg(image_size=16, text_dim=BOW, ngf=128, text_norm="rms"),
}
S2_VARIANTS = {  # Stage-II G
    "s2_256": StageIICfg(),  # official: 26,290,080 parameters (Stage-I not included)
    "s2_128": StageIICfg(in_size=32, image_size=128, text_dim=BOW, ngf=32, n_res=2, text_norm="rms"),
    "s2_64": StageIICfg(in_size=16, image_size=64, text_dim=BOW, ngf=32, n_res=2, text_norm="rms"),
    "s2_32": StageIICfg(in_size=16, image_size=32, text_dim=BOW, ngf=32, n_res=2, text_norm="rms"),
}
D_VARIANTS = {
    "s1_64": DiscriminatorCfg(),  # official: 5,715,713 parameters
    "s1_32": DiscriminatorCfg(image_size=32, ndf=32, **TEXT_D),
    "s1_16": DiscriminatorCfg(image_size=16, ndf=32, **TEXT_D),
    "s2_256": DiscriminatorCfg(image_size=256, uncond_head=True),  # official: 71,269,122 parameters
    "s2_128": DiscriminatorCfg(image_size=128, ndf=16, uncond_head=True, **TEXT_D),
    "s2_64": DiscriminatorCfg(image_size=64, ndf=16, uncond_head=True, **TEXT_D),
    "s2_32": DiscriminatorCfg(image_size=32, ndf=32, uncond_head=True, **TEXT_D),
}
STAGE1_OF = {"s2_256": "s1_64", "s2_128": "s1_32", "s2_64": "s1_16", "s2_32": "s1_16"}
OFFICIAL = ("s1_64", "s2_256")  # the release's sizes: 1024-d char-CNN-RNN text; the others bow.hashed's 512-d


def _encoder(variant: str) -> str:
    return "char_cnn_rnn.cub" if variant in OFFICIAL else "bow.hashed"


OBJECTIVE_VARIANTS = {
    **{name: ObjectiveCfg(generator=f"stackgan.{name}", discriminator=f"stackgan.{name}", encoder=_encoder(name))
       for name in S1_VARIANTS},
    **{v: ObjectiveCfg(generator=f"stackgan.{v}", discriminator=f"stackgan.{v}", stage1=f"stackgan.{s1}",
                       encoder=_encoder(v))
       for v, s1 in STAGE1_OF.items()},
}

# ---------------------------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------------------------

PAPER = "Zhang et al., StackGAN, ICCV 2017, arXiv:1612.03242"

for _v, _cfg in S1_VARIANTS.items():
    gz.register_generator(f"stackgan.{_v}", cfg=_cfg, default=_v == "s1_64", paper=PAPER)(StageIGenerator)
for _v, _cfg in S2_VARIANTS.items():
    gz.register_generator(f"stackgan.{_v}", cfg=_cfg, paper=PAPER)(StageIIGenerator)
gz.register_discriminator("stackgan", variants=D_VARIANTS, default="s1_64", paper=PAPER)(StackDiscriminator)
gz.register_objective("stackgan", variants=OBJECTIVE_VARIANTS, default="s1_64", paper=PAPER)(StackObjective)
gz.register_block("stackgan.ca", cfg=CaCfg(), paper=PAPER)(CondAugment)
