"""pix2pix: Isola, Zhu, Zhou & Efros, "Image-to-Image Translation with Conditional Adversarial Networks", CVPR 2017
(arXiv:1611.07004).

The U-Net generator (``unet_256``: 8 ×2 downsamplings, ngf=64, 54,413,955 parameters with BatchNorm), the PatchGAN
discriminator (n_layers=3: 70×70 receptive field, 30×30 logits at 256×256, 2,768,705 parameters at 6 input
channels), the PixelGAN (1×1) and the 286×286 PatchGAN (n_layers=5), and the L1 + conditional GAN objective.

Paper symbols → code names:
    x (input image, domain A), y (target, domain B) → batch ``image`` (A) and ``image_b`` (B); ``a`` / ``b`` in code
    G(x), D(x, y)                → ``UnetGenerator.forward(a)``, ``PatchDiscriminator.forward(b, cond=a)``
    λ (L1 weight, 100)           → ``ObjectiveCfg.lambda_l1``
    encoder e1..e8, decoder d1..d8 (models.md §4.1) → ``UnetGenerator.down[0..7]``, ``up[7..0]``: level i holds the
        encoder conv e(i+1) and the decoder conv that mirrors it; level 0 is the outermost (image in, image out)

Two published layouts of the same U-Net differ in details that matter for weights and results (``UnetCfg``):
    ``dropout_at="torch"`` (junyanz/pytorch-CycleGAN-and-pix2pix: dropout after d2..d(n−4), none innermost) or
    ``"lua"`` (phillipi/pix2pix and affinelayer/pix2pix-tensorflow: after d1, d2, d3);
    ``skip_order="encoder_first"`` (PyTorch ``cat([e, d])``) or ``"decoder_first"`` (Lua ``{d_, e}``, TF
    ``[decoder, skip]``); ``innermost_norm=True`` adds affinelayer's BatchNorm on the 1×1 bottleneck e8;
    ``conv_bias=True`` gives every conv a bias, as Torch's ``SpatialConvolution`` / ``SpatialFullConvolution`` and
    TF's ``tf.layers.conv2d`` have one (the PyTorch port drops those a BatchNorm follows, and e1's).
The PyTorch port's recursive ``UnetSkipConnectionBlock`` state dicts (``model.model.1.model.3...``) load through
``ganzoo_convert_checkpoint`` (``convert_junyanz_unet``); its PatchGAN's names (``model.0.weight``) load as they are.
The released Lua generators (``.t7``) load into ``unet_256_lua`` / ``unet_128_lua`` through the same hook
(``ganzoo_pix2pix_unet.official``).

Activations and skips: both originals apply LeakyReLU(0.2) before each encoder conv but the first and ReLU before
each decoder conv. Here BatchNorm and the activation that follows it run as one ``BatchNormAct2d`` (the
``norm_act`` op), with ``nn.Identity`` (or the ``nn.Dropout``) in the activation's slot. A skip therefore carries
LeakyReLU(e), which is what the PyTorch port carries too (its in-place LeakyReLU overwrites e); the decoder applies
ReLU to it, and ReLU(LeakyReLU(e)) = ReLU(e), so every layout computes the same function. Dropout after the fused
ReLU equals dropout before it (a mask times 2 commutes with ReLU).

File order: configs → blocks → networks → weight conversion → objective → variants → registration.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import ganzoo_core as gz
from ganzoo_core import validators as v
from ganzoo_core.config import SAVED_BEFORE
from ganzoo_core.errors import ShapeError
from ganzoo_core.torch7 import is_t7_file
from ganzoo_pix2pix_unet import official
from ganzoo_pix2pix_unet.color import pix2pix_to_rgb

# ---------------------------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------------------------

def _unet_size(inst: UnetCfg, attribute: attrs.Attribute, value: int) -> None:
    """image_size is a positive multiple of 2**n_downs: every level halves it, down to 1×1 at the bottleneck."""
    step = 2**inst.n_downs
    if value < step or value % step:
        raise ValueError(f"{attribute.name} must be a positive multiple of 2**n_downs = {step} (n_downs={inst.n_downs}"
                         f" ×2 downsamplings), got {value}")


def _patch_size(inst: PatchCfg, attribute: attrs.Attribute, value: int) -> None:
    """image_size leaves the PatchGAN a logit map of at least 1×1: n_layers halvings, then two k4 s1 p1 convs (−1
    each), so at least 3·2**n_layers; the PixelGAN (n_layers=0) takes any size."""
    least = 3 * 2**inst.n_layers if inst.n_layers else 1
    if value < least:
        raise ValueError(f"{attribute.name} must be at least {least} for n_layers={inst.n_layers} (the logit map "
                         f"would be empty), got {value}")


@attrs.frozen(kw_only=True)
class UnetCfg:
    n_downs: int = attrs.field(default=8, validator=[attrs.validators.ge(2), v.halvings])  # ×2 downsamplings: 8 at 256
    # px, 7 at 128
    image_size: int = attrs.field(default=256, validator=_unet_size)  # of example_inputs; any multiple of
    # 2**n_downs works in forward
    in_channels: int = attrs.field(default=3, validator=v.size)  # A
    out_channels: int = attrs.field(default=3, validator=v.size)  # B
    ngf: int = attrs.field(default=64, validator=v.size)  # filters of the outermost level; ×2 per level up to ngf·8
    norm: str = attrs.field(default="batch", validator=v.one_of(("batch", "instance")))  # instance: convs get biases
    dropout: float = attrs.field(default=0.5, validator=v.probability)  # p of the decoder's dropout layers; 0 removes them
    # (junyanz --no_dropout)
    dropout_at: str = attrs.field(default="torch", validator=v.one_of(("torch", "lua")))  # see the module docstring
    skip_order: str = attrs.field(default="encoder_first", validator=v.one_of(("encoder_first", "decoder_first")))
    innermost_norm: bool = False  # affinelayer TF: BatchNorm on the bottleneck (degenerate at batch 1)
    conv_bias: bool = attrs.field(default=False, metadata={SAVED_BEFORE: False})  # every conv with a bias (Lua,
    # TF); False: only the output ConvT, and every conv with instance norm (junyanz)
    init_std: float = attrs.field(default=0.02, validator=v.positive)  # junyanz init_type=normal, gain 0.02 (Lua: the
    # same N(0, 0.02))

    def widths(self) -> list[int]:
        """Encoder output channels per level: ngf·min(2^i, 8) → 64, 128, 256, 512, 512, 512, 512, 512."""
        return [self.ngf * min(2**i, 8) for i in range(self.n_downs)]

    def dropout_levels(self) -> set[int]:
        """Levels whose decoder output gets dropout (level n−1 is d1, the innermost decoder)."""
        if self.dropout <= 0:
            return set()
        n = self.n_downs
        if self.dropout_at == "lua":
            return {lvl for lvl in (n - 1, n - 2, n - 3) if lvl >= 1}
        return set(range(4, n - 1))  # d2..d(n−4): the n−5 blocks junyanz builds with use_dropout


@attrs.frozen(kw_only=True)
class PatchCfg:
    n_layers: int = attrs.field(default=3, validator=v.halvings)  # 3: 70×70, 1: 16×16, 5: 286×286, 0: 1×1
    image_size: int = attrs.field(default=256, validator=_patch_size)  # of example_inputs
    in_channels: int = attrs.field(default=3, validator=v.size)  # the conditional image A, concatenated first
    # (junyanz cat((A, B), 1))
    out_channels: int = attrs.field(default=3, validator=v.size)  # B, real or generated
    conditional: bool = True  # False: D sees B alone (the paper's unconditional "GAN" ablation)
    ndf: int = attrs.field(default=64, validator=v.size)
    norm: str = attrs.field(default="batch", validator=v.one_of(("batch", "instance")))
    init_std: float = attrs.field(default=0.02, validator=v.positive)

    @property
    def input_channels(self) -> int:
        return self.in_channels + self.out_channels if self.conditional else self.out_channels


# ---------------------------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------------------------

# Norm + activation: gz.create_norm_act gives one fused BatchNormAct2d / InstanceNormAct2d (junyanz: InstanceNorm
# affine=False) and, in the activation's slot, nn.Identity or the decoder's Dropout (``after``), so module indices
# and parameter names stay those of the two-module layout.


def _bias(norm: str, every_conv: bool = False) -> bool:
    """Whether a conv carries a bias: junyanz's use_bias = norm_layer == InstanceNorm2d, or every conv (Lua, TF)."""
    return norm == "instance" or every_conv


def encoder_level(cfg: UnetCfg, level: int) -> nn.Sequential:
    """e(level+1): Conv k4 s2 p1, then BN + LeakyReLU (the next conv's pre-activation), fused. The outermost has no
    norm; the innermost has none either (unless ``innermost_norm``) and ends in the innermost decoder's ReLU."""
    w = cfg.widths()
    c_in = cfg.in_channels if level == 0 else w[level - 1]
    conv = gz.ops.Conv2d(c_in, w[level], 4, 2, 1, bias=_bias(cfg.norm, cfg.conv_bias))
    if level == 0:
        return nn.Sequential(conv, nn.LeakyReLU(0.2))
    if level == cfg.n_downs - 1:
        tail = gz.create_norm_act(cfg.norm, w[level], "relu") if cfg.innermost_norm else [nn.ReLU()]
        return nn.Sequential(conv, *tail)
    return nn.Sequential(conv, *gz.create_norm_act(cfg.norm, w[level], "lrelu"))


def decoder_level(cfg: UnetCfg, level: int) -> nn.Sequential:
    """The decoder conv of ``level``: ConvT k4 s2 p1, then BN + ReLU fused (and dropout); the outermost ends in
    ConvT (with bias) + Tanh. Its input is the ReLU'd skip concatenation (or, innermost, ReLU(e_n))."""
    w = cfg.widths()
    c_in = w[level] if level == cfg.n_downs - 1 else 2 * w[level]  # innermost: no skip below it
    if level == 0:
        return nn.Sequential(gz.ops.ConvTranspose2d(c_in, cfg.out_channels, 4, 2, 1, bias=True), nn.Tanh())
    drop = nn.Dropout(cfg.dropout) if level in cfg.dropout_levels() else None
    return nn.Sequential(gz.ops.ConvTranspose2d(c_in, w[level - 1], 4, 2, 1, bias=_bias(cfg.norm, cfg.conv_bias)),
                         *gz.create_norm_act(cfg.norm, w[level - 1], "relu", after=drop))


# ---------------------------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------------------------


class UnetGenerator(nn.Module):
    """G: image A (in_channels × S × S) → image B (out_channels × S × S) in [-1, 1], a U-Net with skips."""

    def __init__(self, cfg: UnetCfg = UnetCfg()) -> None:
        super().__init__()
        self.cfg = cfg
        self.down = nn.ModuleList(encoder_level(cfg, i) for i in range(cfg.n_downs))
        self.up = nn.ModuleList(decoder_level(cfg, i) for i in range(cfg.n_downs))  # up[i] mirrors down[i]
        gz.init_normal_(self, cfg.init_std)

    def _check(self, a: Tensor) -> None:
        c, step = self.cfg.in_channels, 2**self.cfg.n_downs
        if a.ndim != 4 or a.shape[1] != c or a.shape[2] % step or a.shape[3] % step:
            raise ShapeError(f"U-Net G with n_downs={self.cfg.n_downs} expects images of shape (B, {c}, H, W) with H "
                             f"and W multiples of {step}, got {tuple(a.shape)}")

    def forward(self, a: Tensor, cond: Tensor | None = None) -> Tensor:
        self._check(a)
        skips = []
        h = a
        for i, block in enumerate(self.down):
            h = block(h)  # level i: (B, w_i, S/2^(i+1), S/2^(i+1))
            if i < self.cfg.n_downs - 1:
                skips.append(h)
        for i in reversed(range(self.cfg.n_downs)):
            h = self.up[i](h)  # (B, w_{i-1}, S/2^i, S/2^i); level 0: (B, out_channels, S, S)
            if i > 0:
                skip = F.relu(skips[i - 1])  # the decoder's ReLU on the skip half (its own half is fused)
                pair = [skip, h] if self.cfg.skip_order == "encoder_first" else [h, skip]
                h = torch.cat(pair, dim=1)  # (B, 2·w_{i-1}, S/2^i, S/2^i)
        return h

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor]:
        s = self.cfg.image_size
        return (torch.rand(batch_size, self.cfg.in_channels, s, s) * 2 - 1,)

    def output_shapes(self, batch_size: int = 2) -> tuple[int, ...]:
        return (batch_size, self.cfg.out_channels, self.cfg.image_size, self.cfg.image_size)


def patch_layers(cfg: PatchCfg) -> list[nn.Module]:
    """junyanz ``NLayerDiscriminator`` (n_layers ≥ 1) or ``PixelDiscriminator`` (n_layers = 0), indices kept."""
    c, ndf, bias = cfg.input_channels, cfg.ndf, _bias(cfg.norm)
    if cfg.n_layers == 0:  # 1×1 convs: every pixel judged on its own
        return [nn.Conv2d(c, ndf, 1), nn.LeakyReLU(0.2), nn.Conv2d(ndf, 2 * ndf, 1, bias=bias),
                *gz.create_norm_act(cfg.norm, 2 * ndf, "lrelu"), nn.Conv2d(2 * ndf, 1, 1, bias=bias)]
    layers: list[nn.Module] = [nn.Conv2d(c, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]  # no norm on the input layer
    mult = 1
    for k in range(1, cfg.n_layers + 1):  # n_layers−1 stride-2 convs, then one stride-1 conv
        prev, mult = mult, min(2**k, 8)
        stride = 2 if k < cfg.n_layers else 1
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=bias),
                   *gz.create_norm_act(cfg.norm, ndf * mult, "lrelu")]
    layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))  # one logit per patch; no Sigmoid (the loss takes logits)
    return layers


def receptive_field(n_layers: int) -> int:
    """Receptive field of one logit: 1 (n_layers=0), 16, 34, 70, 142, 286 for n_layers 1..5."""
    if n_layers == 0:
        return 1
    rf = 4  # the last conv, k4 s1
    rf += 3  # the stride-1 conv before it
    for _ in range(n_layers):  # n_layers stride-2 convs (the input conv and n_layers−1 more)
        rf = 2 * rf + 2
    return rf


class PatchDiscriminator(nn.Module):
    """D: (B, cond = A) → a map of real/fake logits (B, 1, h, w), one per receptive-field patch of the pair."""

    def __init__(self, cfg: PatchCfg = PatchCfg()) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = nn.Sequential(*patch_layers(cfg))
        gz.init_normal_(self, cfg.init_std)

    def forward(self, b: Tensor, cond: Tensor | None = None) -> Tensor:
        cfg = self.cfg
        if b.ndim != 4 or b.shape[1] != cfg.out_channels:
            raise ShapeError(f"PatchGAN D expects B of shape (B, {cfg.out_channels}, H, W), got {tuple(b.shape)}")
        if cfg.conditional:
            if cond is None or cond.ndim != 4 or cond.shape[1] != cfg.in_channels or cond.shape[2:] != b.shape[2:]:
                got = None if cond is None else tuple(cond.shape)
                raise ShapeError(f"conditional PatchGAN D expects cond=A of shape (B, {cfg.in_channels}, "
                                 f"{b.shape[2]}, {b.shape[3]}) beside B, got {got}")
            b = torch.cat([cond, b], dim=1)  # (B, in_channels + out_channels, H, W): A first, as junyanz
        return self.model(b)

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor, Tensor | None]:
        s, cfg = self.cfg.image_size, self.cfg
        b = torch.rand(batch_size, cfg.out_channels, s, s) * 2 - 1
        return b, (torch.rand(batch_size, cfg.in_channels, s, s) * 2 - 1) if cfg.conditional else None

    def output_shapes(self, batch_size: int = 2) -> tuple[int, ...]:
        s = self.cfg.image_size if self.cfg.n_layers == 0 else _conv_out(self.cfg, self.cfg.image_size)
        return (batch_size, 1, s, s)


def _conv_out(cfg: PatchCfg, size: int) -> int:
    for _ in range(cfg.n_layers):  # the input conv and n_layers−1 more, k4 s2 p1: exact halving
        size //= 2
    return size - 2  # two k4 s1 p1 convs, each −1


# ---------------------------------------------------------------------------------------------------------------
# Weight conversion: junyanz/pytorch-CycleGAN-and-pix2pix state dicts
# ---------------------------------------------------------------------------------------------------------------

_JUNYANZ_KEY = re.compile(r"^model\.((?:model\.\d+\.)*)(weight|bias|running_mean|running_var|num_batches_tracked)$")


def _junyanz_prefix(level: int) -> str:
    """``model.`` for the outermost block, then ``model.model.1.``, ``model.model.1.model.3.``, ... inwards."""
    return "model." if level == 0 else "model.model.1." + "model.3." * (level - 1)


def junyanz_depth(state: Mapping[str, Tensor]) -> int:
    """n_downs of a junyanz ``UnetGenerator`` state dict, from its deepest nesting."""
    depths = [k.count("model.") for k in state if k.startswith("model.model.")]
    if not depths:
        raise KeyError("not a junyanz UnetGenerator state dict: no 'model.model.*' keys")
    return max(depths) - 1  # the innermost block's convs are 'model.' × (n_downs + 1)


def junyanz_unet_names(n_downs: int) -> dict[str, str]:
    """junyanz module path → ours, for every module with parameters or buffers."""
    names: dict[str, str] = {}
    for level in range(n_downs):
        p = _junyanz_prefix(level) + "model."
        if level == 0:  # [downconv, submodule, uprelu, upconv, tanh]
            names.update({p + "0": "down.0.0", p + "3": "up.0.0"})
        elif level == n_downs - 1:  # [downrelu, downconv, uprelu, upconv, upnorm]
            names.update({p + "1": f"down.{level}.0", p + "3": f"up.{level}.0", p + "4": f"up.{level}.1"})
        else:  # [downrelu, downconv, downnorm, submodule, uprelu, upconv, upnorm, (dropout)]
            names.update({p + "1": f"down.{level}.0", p + "2": f"down.{level}.1",
                          p + "5": f"up.{level}.0", p + "6": f"up.{level}.1"})
    return names


def convert_junyanz_unet(state: Mapping[str, Tensor], skip_order: str = "encoder_first") -> dict[str, Tensor]:
    """A junyanz ``UnetGenerator`` state dict (``model.model.1.model.3...``) → ``UnetGenerator``'s. For
    ``skip_order="decoder_first"`` the decoder convs' input-channel halves are swapped (junyanz concatenates the
    encoder feature first)."""
    state = {k.removeprefix("module."): v for k, v in state.items()}  # DataParallel-wrapped saves
    n = junyanz_depth(state)
    names = junyanz_unet_names(n)
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        module, _, leaf = key.rpartition(".")
        if module not in names:
            raise KeyError(f"unexpected key {key!r} for a {n}-level junyanz U-Net")
        ours = f"{names[module]}.{leaf}"
        level = int(ours.split(".")[1])
        if (skip_order == "decoder_first" and ours.startswith("up.") and ours.endswith(".0.weight")
                and level < n - 1):
            half = value.shape[0] // 2  # ConvTranspose2d weight: (in, out, k, k); in = [encoder | decoder]
            value = torch.cat([value[half:], value[:half]], dim=0)
        out[ours] = value
    return out


def _read_state(path: Path) -> dict[str, Tensor] | None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a weights-only PyTorch file: not ours to convert
        return None
    if not isinstance(state, Mapping):
        return None
    return {str(k).removeprefix("module."): v for k, v in state.items() if isinstance(v, Tensor)}


@gz.hookimpl
def ganzoo_convert_checkpoint(kind: str, name: str, path: Path) -> dict[str, Tensor] | None:
    """junyanz/pytorch-CycleGAN-and-pix2pix ``latest_net_G.pth`` / ``latest_net_D.pth`` → pix2pix networks: the
    recursive U-Net names, ``PixelDiscriminator``'s ``net.*`` and DataParallel's ``module.`` prefix. A Torch7 file
    (told by content) is a released phillipi/pix2pix generator: ``official.convert_t7``.

    The hook only sees the registered name, so the U-Net depth is read from the file and the skip order from the
    name's registered config (``convert_junyanz_unet`` takes it as an argument for other configs)."""
    if not name.startswith("pix2pix.") or kind not in ("generator", "discriminator"):
        return None
    if is_t7_file(path):  # a released Lua generator (phillipi/pix2pix)
        return official.convert_t7(kind, name, path)
    if path.suffix not in (".pt", ".pth", ".bin"):
        return None
    state = _read_state(path)
    if not state:
        return None
    if kind == "discriminator":
        return {("model." + k.removeprefix("net.") if k.startswith("net.") else k): v for k, v in state.items()}
    if not any(k.startswith("model.model.") for k in state):
        return None
    return convert_junyanz_unet(state, gz.get_generator_cfg(name).skip_order)


# ---------------------------------------------------------------------------------------------------------------
# Objective: L1 + conditional GAN
# ---------------------------------------------------------------------------------------------------------------


# From gz.GanObjectiveCfg: generator / discriminator (+ _kwargs), loss = "gan.bce" (junyanz gan_mode='vanilla': BCE on
# logits, labels 1 / 0; + loss_kwargs), lr = 2e-4 and betas = (0.5, 0.999) for Adam on both networks (paper).
@attrs.frozen(kw_only=True)
class ObjectiveCfg(gz.GanObjectiveCfg):
    generator: str = "pix2pix.unet_256"
    discriminator: str = "pix2pix.patch70"
    lambda_l1: float = attrs.field(default=100.0, validator=v.non_negative)  # λ
    gan_weight: float = attrs.field(default=1.0, validator=v.non_negative)  # 0: L1 alone (no D phase), the paper's "L1" row
    direction: str = attrs.field(default="AtoB", validator=v.one_of(("AtoB", "BtoA")))  # BtoA: image_b is the input
    # Test time (sample): the originals run G as in training, batch statistics and dropout as noise (Lua test.lua,
    # affinelayer, junyanz without --eval); sample_norm="running" with sample_dropout=False is junyanz --eval.
    sample_norm: str = attrs.field(default="batch", validator=v.one_of(("batch", "running")))
    sample_dropout: bool = True
    output: str = attrs.field(default="image", validator=v.one_of(("image", "lab")))  # lab: sample puts L and ab to RGB
    dataset: str = "pix2pix.emoji"  # what `ganzoo train` uses when --data is not given


def _norms(module: nn.Module) -> list[nn.modules.batchnorm._NormBase]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._NormBase)]


@contextlib.contextmanager
def sampling_modes(g: nn.Module, norm: str, dropout: bool) -> Iterator[None]:
    """G in the chosen test-time modes; BatchNorm statistics and every module's mode are restored afterwards."""
    modes = [(m, m.training) for m in g.modules()]
    saved = [(m, {k: v.clone() for k, v in m.named_buffers(recurse=False)}) for m in _norms(g)]
    try:
        g.eval()
        for m in g.modules():
            if (norm == "batch" and isinstance(m, nn.modules.batchnorm._NormBase)) or (
                    dropout and isinstance(m, nn.Dropout)):
                m.train()
        yield
    finally:
        for m, buffers in saved:
            for k, v in buffers.items():
                getattr(m, k).copy_(v)
        for m, training in modes:
            m.training = training


class Pix2pixObjective(nn.Module):
    """One D step on (A, B) and (A, G(A)) with the loss halved, then one G step on GAN + λ·L1 (same fake batch)."""

    def __init__(self, cfg: ObjectiveCfg = ObjectiveCfg()) -> None:
        super().__init__()
        self.cfg = cfg
        self.networks = gz.build_gan_networks(cfg)  # {"G": ..., "D": ...} by name
        self.gan_loss = gz.build_gan_loss(cfg)
        self.phases = gz.gan_phases(cfg, order=("D", "G") if cfg.gan_weight > 0 else ("G",))  # L1 alone: no D step

    def pair(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(A, B): the input and the target, by ``direction``."""
        missing = [k for k in ("image", "image_b") if k not in batch]
        if missing:
            raise KeyError(f"pix2pix batches need 'image' (A) and 'image_b' (B); missing {missing}: use a paired "
                           "dataset (pix2pix.*, emoji.pairs, an h5.file built with the pix2pix-ab converter)")
        a, b = batch["image"], batch["image_b"]
        return (a, b) if self.cfg.direction == "AtoB" else (b, a)

    def loss(self, phase: str, batch: Mapping[str, Tensor], ctx: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        G, D, L = self.networks["G"], self.networks["D"], self.gan_loss
        a, b = self.pair(batch)
        if phase == "D":  # ½ [BCE(D(A, B), 1) + BCE(D(A, G(A)), 0)]
            fake = G(a)
            ctx["fake"] = fake
            d_real, d_fake = L.d_real(D(b, cond=a)), L.d_fake(D(fake.detach(), cond=a))
            return 0.5 * (d_real + d_fake), {"d_real": d_real.detach(), "d_fake": d_fake.detach()}
        if phase == "G":  # BCE(D(A, G(A)), 1) + λ |G(A) − B|₁, with D frozen
            fake = ctx.pop("fake", None)
            if fake is None:
                fake = G(a)
            l1 = (fake - b).abs().mean()
            terms = {"l1": l1.detach()}
            loss = self.cfg.lambda_l1 * l1
            if self.cfg.gan_weight > 0:
                with _frozen(D):
                    g_fake = L.g_fake(D(fake, cond=a))
                loss = loss + self.cfg.gan_weight * g_fake
                terms["g_fake"] = g_fake.detach()
            return loss, terms
        raise KeyError(f"pix2pix has phases {[p.name for p in self.phases]}, got {phase!r}")

    def _inputs(self, n: int, batch: Mapping[str, Tensor] | None, seed: int) -> Tensor:
        g = self.networks["G"]
        device = next(g.parameters()).device
        if batch is None:  # no data: seeded random A, enough for smoke tests and the engine's sample grid
            c, s = g.cfg.in_channels, g.cfg.image_size
            return (torch.rand(n, c, s, s, generator=gz.seeded_rng(seed)) * 2 - 1).to(device)
        a, _ = self.pair(batch)
        index = torch.arange(n) % a.shape[0]  # repeat the batch when n exceeds it
        return a[index.to(a.device)].to(device)

    @torch.no_grad()
    def sample(self, n: int, batch: Mapping[str, Tensor] | None = None, seed: int = 0) -> Tensor:
        """G(A) for the first n inputs of ``batch`` (A by ``direction``), under the test-time options of the config;
        dropout draws from ``seed``. ``output="lab"``: the RGB image of L (input) and the predicted ab."""
        g = self.networks["G"]
        a = self._inputs(n, batch, seed)
        devices = [a.device] if a.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), sampling_modes(g, self.cfg.sample_norm, self.cfg.sample_dropout):
            torch.manual_seed(seed)
            out = g(a)
        return pix2pix_to_rgb(a, out) if self.cfg.output == "lab" else out

    # -- the user's own images (`ganzoo translate`, the demo page) ---------------------------------------------
    translation_options: Mapping[str, Any] = {}  # G maps its input domain; nothing to choose

    @property
    def translation_size(self) -> tuple[int, int]:
        """(H, W) of G's input."""
        size = self.networks["G"].cfg.image_size
        return size, size

    @torch.no_grad()
    def translate_images(self, images: Tensor) -> Tensor:
        """RGB images (N, 3, H, W) in [-1, 1] → G's output as RGB (or grey) in [-1, 1], under the sampling modes of
        the config. A colorization G (``output="lab"``) takes the images' L channel and returns L with its ab; a
        one-channel G takes their grey level. With batch statistics (``sample_norm="batch"``, the released test
        code's mode) each image runs alone, as the official test's batch of 1 does, so an output does not depend on
        which other images share its batch."""
        from ganzoo_pix2pix_unet.color import rgb_to_pix2pix

        g = self.networks["G"]
        x = images.to(next(g.parameters()).device)
        if self.cfg.output == "lab":
            x = rgb_to_pix2pix(x)[0]  # A = L/50 − 1: (N, 1, H, W)
        elif g.cfg.in_channels == 1:
            x = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])  # ITU-R 601 luma, as PIL's "L"
        with sampling_modes(g, self.cfg.sample_norm, self.cfg.sample_dropout):
            out = torch.cat([g(one) for one in x.split(1)]) if self.cfg.sample_norm == "batch" else g(x)
        return pix2pix_to_rgb(x, out) if self.cfg.output == "lab" else out

    def example_batch(self, batch_size: int = 2) -> dict[str, Tensor]:
        g = self.networks["G"]
        (a,) = g.example_inputs(batch_size)
        b = torch.rand(g.output_shapes(batch_size)) * 2 - 1
        return {"image": a, "image_b": b} if self.cfg.direction == "AtoB" else {"image": b, "image_b": a}


@contextlib.contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """``requires_grad=False`` on ``module`` inside the block (junyanz set_requires_grad(netD, False))."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


# ---------------------------------------------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------------------------------------------

_LUA = {"dropout_at": "lua", "skip_order": "decoder_first", "conv_bias": True}
G_VARIANTS = {
    "unet_256": UnetCfg(),  # junyanz, 54,413,955 parameters
    "unet_128": UnetCfg(n_downs=7, image_size=128),
    "unet_256_lua": UnetCfg(**_LUA),  # phillipi/pix2pix defineG_unet: 54,419,459 (+5,504 conv biases)
    "unet_128_lua": UnetCfg(n_downs=7, image_size=128, **_LUA),  # phillipi/pix2pix defineG_unet_128
    "unet_256_tf": UnetCfg(innermost_norm=True, **_LUA),  # affinelayer/pix2pix-tensorflow: 54,420,483 (+1,024 BN)
    "unet_64": UnetCfg(n_downs=6, image_size=64, ngf=32),  # small, for CPU
    "unet_32": UnetCfg(n_downs=5, image_size=32, ngf=32),
    "unet_32_color": UnetCfg(n_downs=5, image_size=32, ngf=32, in_channels=1, out_channels=2),  # L → ab
}
D_VARIANTS = {
    "patch70": PatchCfg(),  # 70×70, 2,768,705 parameters
    "patch16": PatchCfg(n_layers=1),
    "patch286": PatchCfg(n_layers=5, image_size=286),
    "pixel": PatchCfg(n_layers=0),  # 1×1
    "patch34_32": PatchCfg(n_layers=2, image_size=32, ndf=32),  # small, for CPU: 34×34 receptive field
    "patch34_32_color": PatchCfg(n_layers=2, image_size=32, ndf=32, in_channels=1, out_channels=2),
}
OBJECTIVE_VARIANTS = {
    "unet_256": ObjectiveCfg(),
    "emoji_32": ObjectiveCfg(generator="pix2pix.unet_32", discriminator="pix2pix.patch34_32"),
    "emoji_32_l1": ObjectiveCfg(generator="pix2pix.unet_32", discriminator="pix2pix.patch34_32", gan_weight=0.0),
    "colorize_32": ObjectiveCfg(generator="pix2pix.unet_32_color", discriminator="pix2pix.patch34_32_color",
                                output="lab", dataset="pix2pix.lab"),
}

# ---------------------------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------------------------

PAPER = "Isola, Zhu, Zhou & Efros, CVPR 2017, arXiv:1611.07004"

gz.register_generator("pix2pix", variants=G_VARIANTS, default="unet_256", paper=PAPER)(UnetGenerator)
gz.register_discriminator("pix2pix", variants=D_VARIANTS, default="patch70", paper=PAPER)(PatchDiscriminator)
gz.register_objective("pix2pix", variants=OBJECTIVE_VARIANTS, default="unet_256", paper=PAPER)(Pix2pixObjective)
