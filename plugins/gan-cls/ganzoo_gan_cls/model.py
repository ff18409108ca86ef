"""GAN-CLS / GAN-INT / GAN-INT-CLS: Reed, Akata, Yan, Logeswaran, Schiele & Lee, "Generative Adversarial Text to
Image Synthesis", ICML 2016 (arXiv:1605.05396).

Two pairs of networks, both conditioned on a text embedding ``t`` (``B × text_dim``, from the batch key ``text_emb``):

- ``gan_cls.64``: the official Torch code (reedscot/icml2016 ``main_cls_int.lua``, ngf=128, ndf=64, nz=100, nt=128,
  text 1024): G 18,909,699 and D 4,032,321 parameters, as the Torch networks hold (``REED_G_PARAMS`` /
  ``REED_D_PARAMS``, asserted in the tests). Residual blocks at 4×4 and 8×8 in G and at 4×4 in D; the table's "no
  activation" places are kept (G's first two transposed convs and D's third and fourth convs have BatchNorm without
  an activation). Every conv has a bias, as Torch's ``SpatialConvolution`` does, and the objective zeroes them all at
  the start of each D and G step as the original does (``zero_conv_bias``); a trained G then holds one optimizer
  step of them, which the released demo applies. ``conv_bias=False`` drops them (set by the 32×32 CPU variants).
  Linear layers keep PyTorch's default init (as Torch's), convs N(0, 0.02) with bias 0, BatchNorm weights N(1, 0.02).
- ``gan_cls.coco64``: the official networks of ``main_cls.lua`` as ``scripts/train_coco.sh`` runs it (the released
  COCO GAN-CLS model): ngf=ndf=196, and D's ``layout="main_cls"`` (a LeakyReLU after the third conv's BN, no
  BatchNorm1d in the text projection). The released Torch7 files load by ``weights=`` (``ganzoo_gan_cls.official``).
- ``gan_cls.port64``: the DCGAN-bodied networks of the popular PyTorch port (aelnouby/Text-to-Image-Synthesis):
  pytorch/examples DCGAN G/D (ngf=ndf=64), text Linear+BN1d+LReLU in both, G input ``[t, z]``, D head one 4×4 conv
  on the 640-channel concat. G 4,756,736 and D 2,899,072 parameters.
- ``gan_cls.32`` / ``gan_cls.port32``: the same architectures at 32×32 with quarter/half widths, for CPUs.

Paper symbols → code names:
    φ(t) (text embedding)          → ``text_emb`` batch key, ``cond`` argument, ``text_dim``
    projection of φ(t) to 128-d    → ``TextProjection``, ``nt``
    z (noise, 100-d)               → ``z``, ``nz``
    s_r, s_w, s_f (Algorithm 1)    → ``d_real``, ``d_wrong``, ``d_fake`` in the logged terms
    β (GAN-INT mixing)             → ``interp_beta``;   weight of the mismatch term → ``cls_weight``

D is split into ``trunk(image) → (B, C, 4, 4)`` and ``head(features, text) → logits (B,)`` so that the objective
computes the real-image trunk once and feeds it to both the matching head (real, right text) and the mismatching
head (real, wrong text): the paper's pairing. The official code pairs a wrong image with the right text, which
needs a second trunk pass; ``mismatch="wrong_image"`` does that, and ``mismatch="both"`` averages the two pairs.

Beyond the paper (defaults off, so the official networks and losses are unchanged): G ``upsample="nearest"`` and
``refine=True``, D ``head="projection"``, and in the objective an R1 penalty (``r1_gamma``) and MSGAN's mode-seeking
term (``ms_weight``). Without the last, G ignores z on the captioned shapes (one image per caption) and draws the
small shapes, whose place in their quadrant varies, as blobs (measured in experiments/gan-cls-ms).

File order: configs → blocks → networks → objective → variants → registration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import torch
from torch import Tensor, nn

import ganzoo_core as gz
from ganzoo_core import validators as v
from ganzoo_core.config import SAVED_BEFORE
from ganzoo_core.errors import ConfigError, ShapeError
from ganzoo_core.ops import UpsampleConv2d, gradient_penalty
from ganzoo_core.text import apply_text_norm, check_encoder_kwargs, check_text_norm, encoder_data_defaults

REED_G_PARAMS = 18_909_699  # gan_cls.64 generator: the layer table in models.md §2.1 (18,905,472) + 4,227 conv biases
REED_D_PARAMS = 4_032_321  # 4,030,080 + 2,241 conv biases
PORT_G_PARAMS = 4_756_736  # gan_cls.port64 (aelnouby), models.md §2.3
PORT_D_PARAMS = 2_899_072

# ---------------------------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------------------------


def n_stages(image_size: int) -> int:
    """Number of ×2 stages between 4×4 and ``image_size``: 64 → 4, 32 → 3 (at least 2: 16×16)."""
    n, size = 0, image_size
    while size > 4 and size % 2 == 0:
        size, n = size // 2, n + 1
    if size != 4 or n < 2:
        raise ValueError(f"image_size must be 4·2^n with n ≥ 2 (16, 32, 64, 128), got {image_size}")
    return n


def _check_size(_: Any, __: Any, value: int) -> None:
    n_stages(value)


# Generator up-sampling: "deconv" (the official 4×4 stride-2 transposed convs) or "nearest" (×2 nearest resize then a
# 3×3 conv, ``ganzoo_core.ops.UpsampleConv2d``: no checkerboard pattern, Odena, Dumoulin & Olah, Distill 2016).
UPSAMPLE = ("deconv", "nearest")
# Discriminator heads: "concat" (official: the projected text tiled over the 4×4 trunk features, then convs) or
# "projection" (Miyato & Koyama, ICLR 2018: logit = ψ(h) + ⟨V·proj(t), mean₄ₓ₄(h)⟩, the text enters as an inner
# product with the pooled image features instead of as extra input channels).
D_HEADS = ("concat", "projection")
# The official D's two layouts (ReedDiscriminator): "main_cls_int" (main_cls_int.lua, the released CUB and flowers
# models: no activation after the third conv's BN, BatchNorm1d in the text projection) or "main_cls" (main_cls.lua,
# the released COCO model: LeakyReLU after the third conv's BN, no BatchNorm1d in the text projection).
D_LAYOUTS = ("main_cls_int", "main_cls")


# text_norm (ganzoo_core.text.TEXT_NORMS): "none" (default) feeds the embedding as it is, as the official code does
# with its char-CNN-RNN vectors. "rms" (ours; set by the 32×32 CPU variants) rescales each embedding to unit
# root-mean-square (‖t‖ = √text_dim) before the projection: the built-in encoders return unit-norm rows (entries
# ≈ 1/√text_dim), which a default-initialised Linear turns into a projection far smaller than z, so G would start
# almost unconditioned: measured on shapes.32 with bow.hashed, gan_cls.cls_32 had the judge's colour at 0.15
# (untrained level) after 1,500 steps without it, and at 0.42 after 1,500 and 0.97 after 4,000 with it.


@attrs.frozen(kw_only=True)
class GeneratorCfg:
    image_size: int = attrs.field(default=64, validator=_check_size)
    nz: int = attrs.field(default=100, validator=v.size)  # size of z, N(0, I)
    nc: int = attrs.field(default=3, validator=v.size)  # image channels
    ngf: int = attrs.field(default=128, validator=v.size)  # width of the last hidden layer; ×2 per stage towards 4×4
    # (official 128, the port 64)
    text_dim: int = attrs.field(default=1024, validator=v.size)  # size of the text embedding: follows the encoder
    # (char-CNN-RNN 1024, MiniLM 384, ...)
    nt: int = attrs.field(default=128, validator=v.size)  # size of the projected text
    text_norm: str = attrs.field(default="none", validator=check_text_norm)
    init_std: float = attrs.field(default=0.02, validator=v.positive)
    upsample: str = attrs.field(default="deconv", validator=v.one_of(UPSAMPLE))  # each ×2 stage
    conv_bias: bool = attrs.field(default=True, metadata={SAVED_BEFORE: False})  # every conv with a bias (Torch's
    # convs have one; the objective zeroes them each step, see zero_conv_bias); checkpoints from before had none
    refine: bool = False  # a hidden stage at full resolution (ngf channels, BN, ReLU) before a 3×3 conv to nc


@attrs.frozen(kw_only=True)
class DiscriminatorCfg:
    image_size: int = attrs.field(default=64, validator=_check_size)
    nc: int = attrs.field(default=3, validator=v.size)
    ndf: int = attrs.field(default=64, validator=v.size)  # width of the first layer; ×2 per stage
    text_dim: int = attrs.field(default=1024, validator=v.size)
    nt: int = attrs.field(default=128, validator=v.size)
    text_norm: str = attrs.field(default="none", validator=check_text_norm)
    init_std: float = attrs.field(default=0.02, validator=v.positive)
    head: str = attrs.field(default="concat", validator=v.one_of(D_HEADS))
    layout: str = attrs.field(default="main_cls_int", validator=v.one_of(D_LAYOUTS))  # official D only
    conv_bias: bool = attrs.field(default=True, metadata={SAVED_BEFORE: False})  # as GeneratorCfg.conv_bias


# ---------------------------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------------------------


def reed_init_(module: nn.Module, std: float = 0.02) -> nn.Module:
    """The original ``weights_init``: convs N(0, std) with bias 0, BatchNorm weights N(1, std) and biases 0; Linear
    layers keep their default init (Torch's and PyTorch's are both U(±1/√fan_in))."""
    for m in module.modules():
        if isinstance(m, _CONV_TYPES):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return module


_CONV_TYPES = (nn.Conv2d, nn.ConvTranspose2d, UpsampleConv2d)


@torch.no_grad()
def zero_conv_biases_(*modules: nn.Module) -> None:
    """Set every conv bias of ``modules`` to 0 in place (main_cls*.lua does it at the start of each D and G step)."""
    for module in modules:
        for m in module.modules():
            if isinstance(m, _CONV_TYPES) and m.bias is not None:
                m.bias.zero_()


def _bn_act(channels: int, act: str | None) -> nn.Module:
    """BatchNorm2d, fused with its activation into one module when it has one (``act`` None: the table's "no
    activation", a plain BatchNorm2d). One slot either way: the official layout has no separate activation module."""
    if act is None:
        return gz.create_norm("batch", channels)
    return gz.create_fused_norm_act("batch", channels, act)


class ResidualBlock(nn.Module):
    """x + [1×1 conv → BN → act → 3×3 conv → BN → act → 3×3 conv → BN](x), then act (official code, both nets)."""

    def __init__(self, channels: int, inner: int, act: str, *, bias: bool = False) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            gz.ops.Conv2d(channels, inner, 1, 1, 0, bias=bias), _bn_act(inner, act),
            gz.ops.Conv2d(inner, inner, 3, 1, 1, bias=bias), _bn_act(inner, act),
            gz.ops.Conv2d(inner, channels, 3, 1, 1, bias=bias), nn.BatchNorm2d(channels),
        )
        self.act = gz.create_act(act)  # relu in G, lrelu (0.2) in D

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.branch(x))


class TextProjection(nn.Sequential):
    """φ(t) (B, text_dim) → (B, nt): [unit_rms,] Linear, [BatchNorm1d,] LeakyReLU(0.2). The scaling has no
    parameters and is not a layer, so the state-dict names are the same with and without it."""

    def __init__(self, text_dim: int, nt: int, *, norm: bool, text_norm: str = "none") -> None:
        layers: list[nn.Module] = [nn.Linear(text_dim, nt)]
        if norm:
            layers.append(nn.BatchNorm1d(nt))
        super().__init__(*layers, nn.LeakyReLU(0.2))
        self.text_norm = text_norm

    def forward(self, t: Tensor) -> Tensor:
        return super().forward(apply_text_norm(t, self.text_norm))


def _up(c_in: int, c_out: int, cfg: GeneratorCfg) -> nn.Module:
    """One ×2 stage of G: (B, c_in, h, w) → (B, c_out, 2h, 2w)."""
    if cfg.upsample == "nearest":
        return UpsampleConv2d(c_in, c_out, bias=cfg.conv_bias)
    return gz.ops.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=cfg.conv_bias)


def _to_image(c_in: int, cfg: GeneratorCfg) -> list[nn.Module]:
    """G's last ×2 stage to (B, nc, H, W) in [-1, 1]: straight to nc channels (official), or with ``refine`` to
    c_in channels at full resolution (BN, ReLU) and then a 3×3 conv to nc, so that the last layer that sees the
    pixel grid is not a 4×4 transposed conv from a half-resolution map."""
    if not cfg.refine:
        return [_up(c_in, cfg.nc, cfg), nn.Tanh()]
    return [_up(c_in, c_in, cfg), _bn_act(c_in, "relu"),  # (B, ngf, H, W)
            gz.ops.Conv2d(c_in, cfg.nc, 3, 1, 1, bias=cfg.conv_bias), nn.Tanh()]


def _check_text(text: Tensor | None, batch: int, text_dim: int, who: str) -> Tensor:
    if text is None:
        raise ShapeError(f"{who} is text-conditioned: pass cond=text_emb of shape ({batch}, {text_dim})")
    if text.ndim != 2 or tuple(text.shape) != (batch, text_dim):
        raise ShapeError(f"{who} expects cond (text_emb) of shape ({batch}, {text_dim}), got {tuple(text.shape)}; "
                         "text_dim follows the encoder (set text_dim= to its embed_dim)")
    return text


# ---------------------------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------------------------


class _TextGenerator(nn.Module):
    """Shared face of both generators: checks, ``example_inputs``, ``output_shapes``; subclasses build ``main``."""

    cfg: GeneratorCfg
    text: TextProjection
    main: nn.Sequential
    text_first: bool = False  # the port concatenates [t, z], the original [z, t]

    def forward(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        cfg = self.cfg
        if tuple(z.shape[1:]) not in ((cfg.nz,), (cfg.nz, 1, 1)):
            raise ShapeError(f"GAN-CLS G expects z of shape (B, {cfg.nz}), got {tuple(z.shape)}")
        text = self.text(_check_text(cond, z.shape[0], cfg.text_dim, "GAN-CLS G"))  # (B, nt)
        z = z.reshape(z.shape[0], cfg.nz)
        x = torch.cat([text, z] if self.text_first else [z, text], dim=1)  # (B, nz + nt)
        return self.main(x[:, :, None, None])  # (B, nz + nt, 1, 1) → (B, nc, H, W)

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor, Tensor]:
        return torch.randn(batch_size, self.cfg.nz), torch.randn(batch_size, self.cfg.text_dim)

    def output_shapes(self, batch_size: int = 2) -> tuple[int, ...]:
        return (batch_size, self.cfg.nc, self.cfg.image_size, self.cfg.image_size)


class ReedGenerator(_TextGenerator):
    """G (official code): [z, proj(t)] → 4×4 → residual → 8×8 → residual → ... → image in [-1, 1]."""

    def __init__(self, cfg: GeneratorCfg = GeneratorCfg()) -> None:
        super().__init__()
        self.cfg = cfg
        n = n_stages(cfg.image_size)
        widths = [cfg.ngf * 2 ** (n - 1 - i) for i in range(n)]  # 64×64: [1024, 512, 256, 128] at 4, 8, 16, 32
        if widths[1] < 4:  # the 8×8 residual block's inner convs have widths[1] // 4 channels
            raise ConfigError(f"ngf must be at least {-(-4 // 2 ** (n - 2))} for image_size {cfg.image_size} (the "
                              f"residual block at 8×8 has ngf·2^{n - 2}/4 channels), got {cfg.ngf}")
        self.text = TextProjection(cfg.text_dim, cfg.nt, norm=False, text_norm=cfg.text_norm)  # no BN in G's text path
        layers: list[nn.Module] = [
            gz.ops.ConvTranspose2d(cfg.nz + cfg.nt, widths[0], 4, 1, 0, bias=cfg.conv_bias), nn.BatchNorm2d(widths[0]),
            ResidualBlock(widths[0], widths[0] // 4, "relu", bias=cfg.conv_bias),  # (B, 1024, 4, 4); its ReLU follows the add
            _up(widths[0], widths[1], cfg), nn.BatchNorm2d(widths[1]),
            ResidualBlock(widths[1], widths[1] // 4, "relu", bias=cfg.conv_bias),  # (B, 512, 8, 8)
        ]
        for c_in, c_out in zip(widths[1:], widths[2:]):  # 8 → 16 → 32
            layers += [_up(c_in, c_out, cfg), _bn_act(c_out, "relu")]
        layers += _to_image(widths[-1], cfg)  # → (B, nc, 64, 64)
        self.main = nn.Sequential(*layers)
        reed_init_(self, cfg.init_std)


class PortGenerator(_TextGenerator):
    """G (aelnouby port): [proj(t) with BN, z] → the pytorch/examples DCGAN G → image in [-1, 1]."""

    text_first = True

    def __init__(self, cfg: GeneratorCfg = GeneratorCfg(ngf=64)) -> None:
        super().__init__()
        self.cfg = cfg
        n = n_stages(cfg.image_size)
        widths = [cfg.ngf * 2 ** (n - 1 - i) for i in range(n)]  # 64×64, ngf=64: [512, 256, 128, 64]
        self.text = TextProjection(cfg.text_dim, cfg.nt, norm=True, text_norm=cfg.text_norm)
        layers: list[nn.Module] = [gz.ops.ConvTranspose2d(cfg.nz + cfg.nt, widths[0], 4, 1, 0, bias=cfg.conv_bias),
                                   _bn_act(widths[0], "relu")]  # (B, 512, 4, 4)
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [_up(c_in, c_out, cfg), _bn_act(c_out, "relu")]
        layers += _to_image(widths[-1], cfg)
        self.main = nn.Sequential(*layers)
        reed_init_(self, cfg.init_std)


def _tiled(cfg: DiscriminatorCfg) -> int:
    """Channels the text adds to the joint convs' input: nt for the concat head, none for the projection head."""
    return cfg.nt if cfg.head == "concat" else 0


def _projection(cfg: DiscriminatorCfg, channels: int) -> nn.Linear | None:
    """V of the projection head, (B, nt) → (B, C) without bias (the bias is ψ's); None for the concat head."""
    return nn.Linear(cfg.nt, channels, bias=False) if cfg.head == "projection" else None


class _TextDiscriminator(nn.Module):
    """Shared face of both discriminators: ``forward = head(trunk(image), text)``; logits, no sigmoid."""

    cfg: DiscriminatorCfg
    body: nn.Sequential
    text: TextProjection
    joint: nn.Sequential
    embed: nn.Linear | None  # V of the projection head, (B, nt) → (B, C); None for the concat head

    def trunk(self, x: Tensor) -> Tensor:
        """The image path: (B, nc, H, W) → (B, C, 4, 4). Compute it once per image batch and reuse it."""
        expected = (self.cfg.nc, self.cfg.image_size, self.cfg.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ShapeError(f"GAN-CLS D expects images of shape (B, {', '.join(map(str, expected))}), "
                             f"got {tuple(x.shape)}")
        return self.body(x)

    def head(self, features: Tensor, text: Tensor | None) -> Tensor:
        """(B, C, 4, 4) trunk features and (B, text_dim) text → (B,) logits."""
        text = self.text(_check_text(text, features.shape[0], self.cfg.text_dim, "GAN-CLS D"))  # (B, nt)
        b = features.shape[0]
        if self.embed is None:  # concat
            tiled = text[:, :, None, None].expand(-1, -1, *features.shape[-2:])  # (B, nt, 4, 4)
            return self.joint(torch.cat([features, tiled], dim=1)).view(b)  # (B, C + nt, 4, 4) → (B,)
        pooled = features.mean(dim=(2, 3))  # (B, C)
        return self.joint(features).view(b) + (self.embed(text) * pooled).sum(dim=1)  # ψ(h) + ⟨V·t, h̄⟩ → (B,)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        return self.head(self.trunk(x), cond)

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor, Tensor]:
        size = self.cfg.image_size
        return torch.rand(batch_size, self.cfg.nc, size, size) * 2 - 1, torch.randn(batch_size, self.cfg.text_dim)

    def output_shapes(self, batch_size: int = 2) -> tuple[int, ...]:
        return (batch_size,)


class ReedDiscriminator(_TextDiscriminator):
    """D (official code): image → 4×4 trunk with a residual block; text tiled at 4×4; 1×1 conv; 4×4 conv → logit."""

    def __init__(self, cfg: DiscriminatorCfg = DiscriminatorCfg()) -> None:
        super().__init__()
        self.cfg = cfg
        n = n_stages(cfg.image_size)
        widths = [cfg.ndf * 2**i for i in range(n)]  # 64×64: [64, 128, 256, 512] at 32, 16, 8, 4
        if widths[-1] < 4:  # the 4×4 residual block's inner convs have widths[-1] // 4 channels
            raise ConfigError(f"ndf must be at least {-(-4 // 2 ** (n - 1))} for image_size {cfg.image_size} (the "
                              f"residual block at 4×4 has ndf·2^{n - 1}/4 channels), got {cfg.ndf}")
        layers: list[nn.Module] = [gz.ops.Conv2d(cfg.nc, widths[0], 4, 2, 1, bias=cfg.conv_bias), nn.LeakyReLU(0.2)]
        bare = 2 if cfg.layout == "main_cls_int" else 1  # main_cls_int.lua: the last two convs have BN and no
        # activation; main_cls.lua: only the last (its LeakyReLU follows the residual add)
        for i, (c_in, c_out) in enumerate(zip(widths, widths[1:]), start=1):
            act = "lrelu" if i < n - bare else None
            layers += [gz.ops.Conv2d(c_in, c_out, 4, 2, 1, bias=cfg.conv_bias), _bn_act(c_out, act)]
        layers.append(ResidualBlock(widths[-1], widths[-1] // 4, "lrelu", bias=cfg.conv_bias))  # (B, 512, 4, 4)
        self.body = nn.Sequential(*layers)
        self.text = TextProjection(cfg.text_dim, cfg.nt, norm=cfg.layout == "main_cls_int", text_norm=cfg.text_norm)
        self.embed = _projection(cfg, widths[-1])
        self.joint = nn.Sequential(
            gz.ops.Conv2d(widths[-1] + _tiled(cfg), widths[-1], 1, 1, 0, bias=cfg.conv_bias), _bn_act(widths[-1], "lrelu"),
            gz.ops.Conv2d(widths[-1], 1, 4, 1, 0, bias=cfg.conv_bias),  # (B, 512, 4, 4) → (B, 1, 1, 1); the code adds Sigmoid
        )
        reed_init_(self, cfg.init_std)


class PortDiscriminator(_TextDiscriminator):
    """D (aelnouby port): the pytorch/examples DCGAN D body to 4×4; text tiled at 4×4; one 4×4 conv → logit."""

    def __init__(self, cfg: DiscriminatorCfg = DiscriminatorCfg()) -> None:
        super().__init__()
        if cfg.layout != "main_cls_int":
            raise ConfigError(f"layout={cfg.layout!r} is a layout of the official D; the port's D has one layout "
                              "(leave layout at its default)")
        self.cfg = cfg
        n = n_stages(cfg.image_size)
        widths = [cfg.ndf * 2**i for i in range(n)]
        layers: list[nn.Module] = [gz.ops.Conv2d(cfg.nc, widths[0], 4, 2, 1, bias=cfg.conv_bias), nn.LeakyReLU(0.2)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [gz.ops.Conv2d(c_in, c_out, 4, 2, 1, bias=cfg.conv_bias), _bn_act(c_out, "lrelu")]
        self.body = nn.Sequential(*layers)  # (B, 512, 4, 4)
        self.text = TextProjection(cfg.text_dim, cfg.nt, norm=True, text_norm=cfg.text_norm)
        self.embed = _projection(cfg, widths[-1])
        # (B, 640, 4, 4) → (B, 1, 1, 1)
        self.joint = nn.Sequential(gz.ops.Conv2d(widths[-1] + _tiled(cfg), 1, 4, 1, 0, bias=cfg.conv_bias))
        reed_init_(self, cfg.init_std)


# ---------------------------------------------------------------------------------------------------------------
# Objective: Algorithm 1 of the paper, with GAN-INT's generator batch from main_cls_int.lua
# ---------------------------------------------------------------------------------------------------------------

MISMATCH = ("wrong_text", "wrong_image", "both")
WRONG_TEXT = ("roll", "nearest")


def nearest_other_class(text: Tensor, label: Tensor | None) -> Tensor:
    """For each row, the index of the most similar text (cosine) of another class in the batch: the hardest wrong
    caption that is surely wrong. ``label``: (B,) classes, or (B, K) label vectors compared whole (None: any
    other, different, text counts); a row with no candidate keeps the roll-by-one partner. → (B,) indices."""
    b = text.shape[0]
    unit = torch.nn.functional.normalize(text.detach().float(), dim=1)
    sim = unit @ unit.T  # (B, B)
    if label is None:
        same = sim > 1.0 - 1e-6  # itself and identical texts
    else:
        if label.shape[0] != b:
            raise ShapeError(f"batch['label'] has {label.shape[0]} rows for {b} texts; give one label per image")
        rows = label.reshape(b, -1)  # (B, K)
        same = (rows[:, None] == rows[None, :]).all(-1)
    same = same | torch.eye(b, dtype=torch.bool, device=text.device)
    best = sim.masked_fill(same, float("-inf")).argmax(1)
    rolled = torch.arange(b, device=text.device).roll(1)
    return torch.where(same.all(1), rolled, best)


# From gz.GanObjectiveCfg: generator / discriminator (+ _kwargs), loss = "gan.bce" (+ loss_kwargs), lr = 2e-4 and
# betas = (0.5, 0.999) for Adam on both networks (the official code's).
@attrs.frozen(kw_only=True)
class ObjectiveCfg(gz.GanObjectiveCfg):
    generator: str = "gan_cls.64"  # any registered text-conditioned G; swap by name
    discriminator: str = "gan_cls.64"  # a D with trunk(image) and head(features, text) (or only forward)
    text_dim: int | None = attrs.field(default=None, validator=v.optional(v.size))  # when set, overrides
    # both networks' text_dim (the encoder's embed_dim); generator_kwargs / discriminator_kwargs win over it
    text_norm: str | None = attrs.field(default=None, validator=v.optional(check_text_norm),
                                        metadata={SAVED_BEFORE: "rms"})  # when set, both networks' text_norm
    # (the *_kwargs win); None: each network's own. Checkpoints saved before the official networks' default became
    # "none" ran with "rms", and load with it.
    matching: bool = True  # GAN-CLS: the mismatch term (real image, wrong text) → 0 in D
    cls_weight: float = attrs.field(default=0.5, validator=v.probability)
    mismatch: str = attrs.field(default="wrong_text", validator=v.one_of(MISMATCH))  # paper / code /
    # "both": each pair weighted cls_weight / 2 (the wrong text checks what the caption says, a wrong image picked
    # with CaptionEmbeddings(wrong_pick="nearest") the one attribute the pair differs in)
    share_trunk: bool = True  # wrong_text: one trunk pass for both real terms (False: two, for checks/benchmarks)
    wrong_text: str = attrs.field(default="roll", validator=v.one_of(WRONG_TEXT))  # which wrong caption:
    # "roll" (paper: the batch's texts shifted by one) or "nearest" (the most similar text of another class,
    # ``batch["label"]``: a hard negative that differs from the right caption in few words)
    r1_gamma: float = attrs.field(default=0.0, validator=v.non_negative)  # γ/2·E‖∇ₓD(x, t)‖² on real
    # images with their right text (Mescheder, Geiger & Nowozin, ICML 2018); 0: off (the paper has none)
    ms_weight: float = attrs.field(default=0.0, validator=v.non_negative)  # mode seeking (Mao et al.,
    # CVPR 2019): + λ/(d_img/d_z + ε) in G's loss, d = mean |·| between two noise draws for the same texts; 0: off
    zero_conv_bias: bool = True  # main_cls*.lua: every conv bias of this plugin's G and D set to 0 at the start of
    # each D and G step (they run bias-free in training; the optimizer's last step stays in them); False trains them.
    # Networks of other families swapped in by name are left alone
    interpolate: bool = False  # GAN-INT: B/2 interpolated texts in the G batch (1.5·B), fresh noise
    interp_beta: float = attrs.field(default=0.5, validator=v.probability)  # t_int = β·t_i + (1 − β)·t_{i+B/2}
    interp_weight: float = attrs.field(default=1.0, validator=v.non_negative)  # per-sample weight of the interpolated
    # samples in G's loss
    caption_average: int = attrs.field(default=4, validator=v.size, metadata={SAVED_BEFORE: 1})  # text_emb of a
    # training example: the mean of this many of its image's captions (main_cls*.lua numCaption: CUB and flowers 4,
    # COCO 3), given to the dataset when it has the option (``data_defaults``; --data-set caption_average= wins)
    # The text encoder the embeddings come from (ganzoo_core.interfaces.TextToImage): a registry name and its config
    # overrides, so a checkpoint embeds new captions by itself (ganzoo sample --text); `ganzoo train` records what the
    # data embedded with (--data-set encoder=). The official 64×64 variants: the release's char-CNN-RNN (CUB; its
    # weights are a released file, given when sampling); the small ones bow.hashed, the size their networks take.
    encoder: str = "char_cnn_rnn.cub"
    encoder_kwargs: Mapping[str, Any] = attrs.field(factory=dict, converter=dict, hash=False,
                                                    validator=check_encoder_kwargs)
    dataset: str = "shapes.32"  # what `ganzoo train` uses when --data is not given (embedded with the encoder when it
    # needs no weights file, else --data-set encoder=...)


class GanClsObjective(nn.Module):
    """Matching-aware D (real+right → 1, real+wrong → 0, fake+right → 0), optional GAN-INT generator batch."""

    def __init__(self, cfg: ObjectiveCfg = ObjectiveCfg()) -> None:
        super().__init__()
        self.cfg = cfg
        text = {k: getattr(cfg, k) for k in ("text_dim", "text_norm") if getattr(cfg, k) is not None}
        self.networks = gz.build_gan_networks(cfg, generator_defaults=text, discriminator_defaults=text)
        g_dim, d_dim = self.networks["G"].cfg.text_dim, self.networks["D"].cfg.text_dim
        if g_dim != d_dim:
            raise ConfigError(f"G takes text of size {g_dim} but D of size {d_dim}; set text_dim= on the objective")
        self.text_dim: int = g_dim
        self.gan_loss = gz.build_gan_loss(cfg)
        self.phases = gz.gan_phases(cfg)  # Algorithm 1: the D step, then the G step

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.networks["G"].output_shapes(1)[1:])  # type: ignore[return-value]

    @property
    def data_defaults(self) -> dict[str, Any]:
        """Dataset options the objective sets unless the user does (``ganzoo_core.training.dataset_for``): the
        caption average, and its encoder when that embeds as trained without a file
        (``ganzoo_core.text.encoder_data_defaults``)."""
        return {"caption_average": self.cfg.caption_average,
                **encoder_data_defaults(self.cfg.encoder, self.cfg.encoder_kwargs)}

    @property
    def text_encoder(self) -> tuple[str, dict[str, Any]]:
        """The text encoder's registry name and config overrides (``cfg.encoder``, ``cfg.encoder_kwargs``)."""
        return self.cfg.encoder, dict(self.cfg.encoder_kwargs)

    @property
    def nz(self) -> int:
        return int(self.networks["G"].cfg.nz)

    def _noise(self, n: int, ctx: dict[str, Any]) -> Tensor:
        device = next(self.networks["G"].parameters()).device
        return gz.batch_noise(ctx, n, self.nz, device=device)

    # -- D ---------------------------------------------------------------------------------------------------
    def wrong_images(self, batch: Mapping[str, Tensor]) -> Tensor:
        """The images of the code's mismatch pair (wrong image, right text): ``batch["image_wrong"]`` (built by the
        dataset from another class), or the real images rolled by one when the batch has none."""
        wrong = batch.get("image_wrong")
        return batch["image"].roll(1, dims=0) if wrong is None else wrong

    def wrong_texts(self, batch: Mapping[str, Tensor]) -> Tensor:
        """The mismatch term's texts for the real images: rolled by one, or each image's nearest other-class text."""
        text = batch["text_emb"]
        if self.cfg.wrong_text == "roll":
            return text.roll(1, dims=0)
        return text[nearest_other_class(text, batch.get("label"))]

    def discriminator_loss(self, batch: Mapping[str, Tensor], fake: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """d_real(s_r) + w·d_fake(s_w) + (1 − w)·d_fake(s_f), with w = cls_weight for GAN-CLS and 0 for GAN.
        s_w: D(real, wrong text) (paper), D(wrong image, right text) (code), or both with d_fake(s_w) their mean."""
        D, L, cfg = self.networks["D"], self.gan_loss, self.cfg
        real, text = batch["image"], batch["text_emb"]
        w = cfg.cls_weight if cfg.matching else 0.0
        terms: dict[str, Tensor] = {}
        by_text, by_image = cfg.matching and cfg.mismatch != "wrong_image", cfg.matching and cfg.mismatch != "wrong_text"
        wrongs: dict[str, Tensor] = {}
        if by_text and cfg.share_trunk and hasattr(D, "trunk"):
            features = D.trunk(real)  # one trunk pass, two text heads
            s_r, wrongs["text"] = D.head(features, text), D.head(features, self.wrong_texts(batch))
        else:
            s_r = D(real, text)
            if by_text:
                wrongs["text"] = D(real, self.wrong_texts(batch))
        if by_image:
            wrongs["image"] = D(self.wrong_images(batch), text)
        d_real = L.d_real(s_r)
        d_fake = L.d_fake(D(fake.detach(), text))
        loss = d_real + (1.0 - w) * d_fake
        terms.update(d_real=d_real.detach(), d_fake=d_fake.detach())
        if cfg.r1_gamma > 0:  # x̂ = real (α = 1), target 0: the penalty is E‖∇ₓD(x, t)‖²
            r1 = gradient_penalty(lambda x: D(x, text), real, real, target=0.0, alpha=real.new_ones(real.shape[0]))
            loss = loss + 0.5 * cfg.r1_gamma * r1
            terms["r1"] = r1.detach()
        if wrongs:
            parts = {k: L.d_fake(v) for k, v in wrongs.items()}
            d_wrong = sum(parts.values()) / len(parts)
            loss = loss + w * d_wrong
            terms["d_wrong"] = d_wrong.detach()
            if len(parts) > 1:
                terms.update({f"d_wrong_{k}": v.detach() for k, v in parts.items()})
        return loss, terms

    # -- G ---------------------------------------------------------------------------------------------------
    def interpolated_texts(self, text: Tensor) -> Tensor:
        """GAN-INT: t_int = β·t_i + (1 − β)·t_{i+h} for i < h = B // 2 → (h, text_dim)."""
        h = text.shape[0] // 2
        beta = self.cfg.interp_beta
        return beta * text[:h] + (1.0 - beta) * text[h:2 * h]

    def generator_loss(self, batch: Mapping[str, Tensor], ctx: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        G, D, L = self.networks["G"], self.networks["D"], self.gan_loss
        text = batch["text_emb"]
        b = text.shape[0]
        if not self.cfg.interpolate:  # main_cls.lua: the D step's fake batch
            fake, z = ctx.pop("fake", None), ctx.pop("z", None)
            if fake is None or z is None:
                z = self._noise(b, ctx)
                fake = G(z, text)
            g = L.g_fake(D(fake, text))
            terms = {"g": g.detach()}
        else:
            t_int = self.interpolated_texts(text)
            h = t_int.shape[0]
            texts = torch.cat([text, t_int], dim=0)  # (B + B/2, text_dim): the 1.5·B generator batch
            ctx.pop("fake", None)  # the D step's batch is not used here
            ctx.pop("z", None)
            z = self._noise(b + h, ctx)  # fresh noise
            images = G(z, texts)
            logits = D(images, texts)  # one D pass (one set of BN statistics)
            g_normal, g_int = L.g_fake(logits[:b]), L.g_fake(logits[b:])
            g = (b * g_normal + self.cfg.interp_weight * h * g_int) / (b + h)  # per-sample weights, mean over 1.5·B
            terms = {"g": g.detach(), "g_int": g_int.detach()}
            fake, text = images, texts  # the second draw gets the same 1.5·B texts (the same BatchNorm batch)
        if self.cfg.ms_weight > 0:
            g = g + self.cfg.ms_weight * self.mode_seeking(fake, z, text, ctx, terms)
        return g, terms

    def mode_seeking(self, fake: Tensor, z: Tensor, text: Tensor, ctx: dict[str, Any], terms: dict[str, Tensor]
                     ) -> Tensor:
        """MSGAN's term for G(z₁, t) = ``fake`` and a second draw G(z₂, t): 1 / (mean|x₁ − x₂| / mean|z₁ − z₂| + ε),
        large when G ignores z (one image per caption). Logs the ratio as ``ms_ratio``."""
        z2 = self._noise(text.shape[0], ctx)
        ratio = (fake - self.networks["G"](z2, text)).abs().mean() / (z - z2).abs().mean()
        terms["ms_ratio"] = ratio.detach()
        return 1.0 / (ratio + 1e-5)

    def loss(self, phase: str, batch: Mapping[str, Tensor], ctx: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        if "text_emb" not in batch:
            raise KeyError("GAN-CLS needs the batch key 'text_emb' (B × text_dim): use a captioned dataset with "
                           "encoder=<name> (e.g. shapes.32 with encoder='bow.hashed', or h5.file with encoder=)")
        if self.cfg.zero_conv_bias:
            zero_conv_biases_(*(n for n in self.networks.values() if isinstance(n, (_TextGenerator, _TextDiscriminator))))
        if phase == "D":
            z = self._noise(batch["image"].shape[0], ctx)
            fake = self.networks["G"](z, batch["text_emb"])
            ctx["fake"], ctx["z"] = fake, z
            return self.discriminator_loss(batch, fake)
        if phase == "G":
            return self.generator_loss(batch, ctx)
        raise KeyError(f"GAN-CLS has phases 'D' and 'G', got {phase!r}")

    # -- sampling --------------------------------------------------------------------------------------------
    def _texts(self, n: int, batch: Mapping[str, Tensor] | None, seed: int) -> Tensor:
        device = next(self.networks["G"].parameters()).device
        if batch is None or "text_emb" not in batch:  # smoke tests only: random unit-variance embeddings
            return torch.randn(n, self.text_dim, generator=gz.seeded_rng(seed + 1)).to(device)
        text = batch["text_emb"].to(device)
        return text.repeat((n + len(text) - 1) // len(text), 1)[:n]  # the batch's texts, cycled to n

    @torch.no_grad()
    def sample(self, n: int, batch: Mapping[str, Tensor] | None = None, seed: int = 0, *,
               text_emb: Tensor | None = None) -> Tensor:
        """n images conditioned on ``text_emb`` (or the batch's ``text_emb``, cycled), noise fixed by ``seed``."""
        texts = self._texts(n, batch if text_emb is None else {"text_emb": text_emb}, seed)
        return self.networks["G"](self._noise(n, {"noise": gz.seeded_rng(seed)}), texts)

    def example_batch(self, batch_size: int = 2) -> dict[str, Tensor]:
        images, text = self.networks["D"].example_inputs(batch_size)
        (wrong, _) = self.networks["D"].example_inputs(batch_size)
        return {"image": images, "text_emb": text, "image_wrong": wrong,
                "label": torch.randint(0, 10, (batch_size,))}


# ---------------------------------------------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------------------------------------------

SMALL_TEXT = 512  # the 32×32 variants default to bow.hashed's size, rescaled (text_norm="rms", see above); their
# convs have no bias (ours: what their experiments measured; the official ones carry biases zeroed every step)
G_REED = {"64": GeneratorCfg(),  # official: the embedding as given
          "coco64": GeneratorCfg(ngf=196),  # main_cls.lua as scripts/train_coco.sh runs it (the released COCO G)
          "32": GeneratorCfg(image_size=32, ngf=32, text_dim=SMALL_TEXT, nt=64, text_norm="rms", conv_bias=False)}
D_REED = {"64": DiscriminatorCfg(),
          "coco64": DiscriminatorCfg(ndf=196, layout="main_cls"),  # main_cls.lua, scripts/train_coco.sh
          "32": DiscriminatorCfg(image_size=32, ndf=32, text_dim=SMALL_TEXT, nt=64, text_norm="rms",
                                 conv_bias=False)}
G_PORT = {"port64": GeneratorCfg(ngf=64, conv_bias=False),  # the port's convs have no bias (pytorch/examples DCGAN)
          "port32": GeneratorCfg(image_size=32, ngf=32, text_dim=SMALL_TEXT, nt=64, text_norm="rms", conv_bias=False)}
D_PORT = {"port64": DiscriminatorCfg(conv_bias=False),
          "port32": DiscriminatorCfg(image_size=32, ndf=32, text_dim=SMALL_TEXT, nt=64, text_norm="rms",
                                     conv_bias=False)}

_METHODS = {  # objective variant → (matching-aware D, GAN-INT)
    "gan": (False, False), "cls": (True, False), "int": (False, True), "int_cls": (True, True),
}


def _objective(method: str, nets: str, dataset: str) -> ObjectiveCfg:
    matching, interpolate = _METHODS[method]
    return ObjectiveCfg(generator=f"gan_cls.{nets}", discriminator=f"gan_cls.{nets}", matching=matching,
                        interpolate=interpolate, dataset=dataset,
                        encoder="bow.hashed" if nets.endswith("32") else "char_cnn_rnn.cub",  # 512-d or 1024-d text
                        caption_average=4 if nets == "64" else 1)  # the CPU and port variants: one caption (ours,
    # and the port's)


OBJECTIVE_VARIANTS = {
    **{m: _objective(m, "64", "shapes.64") for m in _METHODS},  # official networks, 64×64
    **{f"{m}_32": _objective(m, "32", "shapes.32") for m in _METHODS},  # official layout, small, 32×32 (CPU)
    **{f"port_{m}": _objective(m, "port64", "shapes.64") for m in ("cls", "int_cls")},
    **{f"port_{m}_32": _objective(m, "port32", "shapes.32") for m in ("cls", "int_cls")},
}

# ---------------------------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------------------------

PAPER = "Reed et al., ICML 2016, arXiv:1605.05396 (official Torch code reedscot/icml2016)"
PORT = "Reed et al., ICML 2016; networks of the aelnouby/Text-to-Image-Synthesis PyTorch port"

gz.register_generator("gan_cls", variants=G_REED, default="64", paper=PAPER)(ReedGenerator)
gz.register_discriminator("gan_cls", variants=D_REED, default="64", paper=PAPER)(ReedDiscriminator)
for _variant in G_PORT:  # one name per call: the family's default stays gan_cls.64
    gz.register_generator(f"gan_cls.{_variant}", cfg=G_PORT[_variant], paper=PORT)(PortGenerator)
    gz.register_discriminator(f"gan_cls.{_variant}", cfg=D_PORT[_variant], paper=PORT)(PortDiscriminator)
gz.register_objective("gan_cls", variants=OBJECTIVE_VARIANTS, default="int_cls", paper=PAPER)(GanClsObjective)
# a recipe beyond the paper (MSGAN's mode-seeking term) is an experiment config now; old checkpoints load as gan_cls.cls_32
gz.register_retired("objective", "gan_cls.cls_32_ms", replacement="gan_cls.cls_32",
                    note="now an experiment: ganzoo train --config experiments/gan-cls-ms/config.toml "
                         "(gan_cls.cls_32 with ms_weight=0.02)")
