"""CycleGAN: Zhu, Park, Isola & Efros, "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial
Networks", ICCV 2017 (arXiv:1703.10593).

The networks are those of the authors' PyTorch port (junyanz/pytorch-CycleGAN-and-pix2pix, ``networks.py``): the
ResNet generator (``resnet_9blocks`` for 256×256, 11,378,179 parameters; ``resnet_6blocks`` for 128×128,
7,837,699) and the 70×70 PatchGAN with InstanceNorm (2,764,737), with the port's module indices, so its saved
``latest_net_G_A.pth`` / ``latest_net_D_A.pth`` state dicts load with ``create_generator(name, weights=path)``.
``resnet_9blocks_lua`` / ``resnet_6blocks_lua`` are the generators of the Torch original (junyanz/CycleGAN
``models/architectures.lua``): the same layers, but its ``nn.InstanceNormalization`` is affine (a learned scale and
shift per channel, ``affine=True``; +10,496 / +7,424 parameters), so its released ``.t7`` models load
(``ganzoo_cyclegan.official``). ``small32`` / ``small64`` are narrow variants (ngf = ndf = 32, 3 residual blocks)
that train on a CPU.

Paper symbols → code names (as in the reference code):
    G: X → Y          → ``networks["G_A"]`` (domain A → domain B)
    F: Y → X          → ``networks["G_B"]`` (domain B → domain A)
    D_Y (judges Y)    → ``networks["D_A"]`` (judges domain-B images: real B vs G_A(A))
    D_X (judges X)    → ``networks["D_B"]`` (judges domain-A images: real A vs G_B(B))
    λ (cycle weight)  → ``lambda_a`` (A → B → A) and ``lambda_b`` (B → A → B), both 10
    identity weight   → ``lambda_idt`` · λ (0.5 · 10 = 5)
    c7s1-k, dk, Rk, uk → the stem conv, ``n_down`` stride-2 convs, ``ResnetBlock``, the transposed convs

File order: configs → blocks → networks → image pool → objective → variants → registration → weights hook.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import ganzoo_core as gz
from ganzoo_core import validators as v
from ganzoo_core.config import SAVED_BEFORE
from ganzoo_core.errors import ConfigError, ShapeError
from ganzoo_core.ops import InstanceNormAct2d
from ganzoo_core.torch7 import is_t7_file
from ganzoo_cyclegan import official

# ---------------------------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------------------------

NORMS = ("instance", "batch")  # the reference code's --norm choices; CycleGAN uses instance


def _check_size(_: Any, __: Any, value: int) -> None:
    if value < 8 or value % 4:
        raise ValueError(f"image_size must be a multiple of 4 (two stride-2 convs) and at least 8, got {value}")


def _check_patch(inst: Any, attribute: Any, value: int) -> None:
    """The PatchGAN's logit map is at least 1×1 at ``image_size`` (n_layers stride-2 convs, two k4 s1 p1)."""
    if inst.n_layers > v.HALVINGS_MAX:
        return  # n_layers's own validator (it runs next) names the field
    if patch_output_size(value, inst.n_layers) < 1:
        raise ValueError(f"{attribute.name} {value} is too small for n_layers={inst.n_layers}: the logit map would be "
                         "empty")


def _check_affine(inst: Any, attribute: Any, value: bool) -> None:
    if value and inst.norm != "instance":
        raise ValueError(f"{attribute.name}=True is an option of norm='instance' (BatchNorm is always affine), got "
                         f"norm={inst.norm!r}")


@attrs.frozen(kw_only=True)
class GeneratorCfg:
    image_size: int = attrs.field(default=256, validator=_check_size)  # for example_inputs; G is fully convolutional
    in_channels: int = attrs.field(default=3, validator=v.size)
    out_channels: int = attrs.field(default=3, validator=v.size)
    ngf: int = attrs.field(default=64, validator=v.size)  # width of the stem conv (c7s1-64); ×2 per downsampling
    n_blocks: int = attrs.field(default=9, validator=[v.size, v.depth])  # residual blocks (9 at 256, 6 at 128)
    norm: str = attrs.field(default="instance", validator=v.one_of(NORMS))  # InstanceNorm(affine=False), convs with bias
    use_dropout: bool = False  # Dropout(0.5) inside each residual block; off for CycleGAN (reference default)
    affine: bool = attrs.field(default=False, validator=_check_affine, metadata={SAVED_BEFORE: False})  # instance
    # norm with a learned per-channel scale and shift (the Torch original's nn.InstanceNormalization); statistics are
    # the instance's in training and evaluation alike
    init_std: float = attrs.field(default=0.02, validator=v.positive)  # N(0, 0.02) weights, zero biases (reference
    # init_type='normal')


@attrs.frozen(kw_only=True)
class DiscriminatorCfg:
    image_size: int = attrs.field(default=256, validator=[_check_size, _check_patch])  # for example_inputs /
    # output_shapes only
    in_channels: int = attrs.field(default=3, validator=v.size)
    ndf: int = attrs.field(default=64, validator=v.size)  # width of the first conv; ×2 per layer, at most ×8
    n_layers: int = attrs.field(default=3, validator=[v.size, v.halvings])  # 3: the 70×70 PatchGAN
    norm: str = attrs.field(default="instance", validator=v.one_of(NORMS))
    init_std: float = attrs.field(default=0.02, validator=v.positive)


N_DOWN = 2  # stride-2 convs (d128, d256) and as many transposed convs (u128, u64)


# ---------------------------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------------------------


# Norm then activation come from gz.create_norm_act: InstanceNorm (or BatchNorm) with ReLU or LeakyReLU(0.2) runs as
# one InstanceNormAct2d (the norm_act op) followed by nn.Identity() in the activation's slot, so module indices stay
# those of the reference layout; act=None (a residual block's second norm) gives the fused norm alone.


def norm_act(norm: str, channels: int, act: str | None, affine: bool = False) -> list[nn.Module]:
    """``gz.create_norm_act(norm, channels, act)``; ``affine=True``: the instance norm with a weight and a bias (and
    no running statistics, so evaluation normalises by the instance's statistics too), as the Torch original's."""
    if not affine:
        return gz.create_norm_act(norm, channels, act)
    fused = InstanceNormAct2d(channels, affine=True, act={"relu": "relu", None: "linear"}[act])
    return [fused] if act is None else [fused, nn.Identity()]


class ResnetBlock(nn.Module):
    """x + [Refl(1), Conv3×3, norm, ReLU, (Dropout), Refl(1), Conv3×3, norm](x); no ReLU after the sum."""

    def __init__(self, channels: int, norm: str = "instance", use_dropout: bool = False, affine: bool = False) -> None:
        super().__init__()
        bias = norm == "instance"  # InstanceNorm without affine has no shift: the convs carry the bias
        layers: list[nn.Module] = [gz.ReflectionPad2d(1), gz.ops.Conv2d(channels, channels, 3, bias=bias),
                                   *norm_act(norm, channels, "relu", affine)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [gz.ReflectionPad2d(1), gz.ops.Conv2d(channels, channels, 3, bias=bias),
                   *norm_act(norm, channels, None, affine)]  # no activation: the fused norm alone
        self.conv_block = nn.Sequential(*layers)  # the reference's attribute name: conv_block.1 / conv_block.5

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


# ---------------------------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------------------------


class ResnetGenerator(nn.Module):
    """G: image (C × H × W, H and W multiples of 4) → image of the other domain (C' × H × W) in [-1, 1]."""

    def __init__(self, cfg: GeneratorCfg = GeneratorCfg()) -> None:
        super().__init__()
        self.cfg = cfg
        bias, ngf = cfg.norm == "instance", cfg.ngf
        layers: list[nn.Module] = [  # c7s1-64: in×H×W → ngf×H×W
            gz.ReflectionPad2d(3), gz.ops.Conv2d(cfg.in_channels, ngf, 7, bias=bias),
            *norm_act(cfg.norm, ngf, "relu", cfg.affine)]
        for i in range(N_DOWN):  # d128, d256: → (ngf·2)×H/2×W/2 → (ngf·4)×H/4×W/4 (zero padding, as the reference)
            c = ngf * 2**i
            layers += [gz.ops.Conv2d(c, 2 * c, 3, 2, 1, bias=bias), *norm_act(cfg.norm, 2 * c, "relu", cfg.affine)]
        width = ngf * 2**N_DOWN
        layers += [ResnetBlock(width, cfg.norm, cfg.use_dropout, cfg.affine)
                   for _ in range(cfg.n_blocks)]  # R256 × n_blocks
        for i in range(N_DOWN):  # u128, u64: back to ngf×H×W (output_padding 1 doubles exactly)
            c = width // 2**i
            layers += [gz.ops.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1, bias=bias),
                       *norm_act(cfg.norm, c // 2, "relu", cfg.affine)]
        layers += [gz.ReflectionPad2d(3), gz.ops.Conv2d(ngf, cfg.out_channels, 7), nn.Tanh()]  # c7s1-3, with bias
        self.model = nn.Sequential(*layers)  # one flat Sequential: the reference names ("model.1.weight", ...)
        gz.init_normal_(self, cfg.init_std)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.cfg.in_channels or x.shape[2] % 4 or x.shape[3] % 4:
            raise ShapeError(f"CycleGAN G expects images of shape (B, {self.cfg.in_channels}, H, W) with H and W "
                             f"multiples of 4, got {tuple(x.shape)}")
        return self.model(x)

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor]:
        return (torch.rand(batch_size, self.cfg.in_channels, self.cfg.image_size, self.cfg.image_size) * 2 - 1,)

    def output_shapes(self, batch_size: int = 2) -> tuple[int, ...]:
        return (batch_size, self.cfg.out_channels, self.cfg.image_size, self.cfg.image_size)


def patch_output_size(image_size: int, n_layers: int) -> int:
    """Side of the PatchGAN's logit map: n_layers convs k4 s2 p1, then two k4 s1 p1 (256 → 30 at n_layers=3)."""
    size = image_size
    for _ in range(n_layers):
        size = (size + 2 - 4) // 2 + 1
    return size - 2  # each k4 s1 p1 conv takes one off


def receptive_field(n_layers: int) -> int:
    """Receptive field of one logit, walking back from the output: 70 at n_layers = 3."""
    field = 1
    for stride in reversed([2] * n_layers + [1, 1]):
        field = (field - 1) * stride + 4
    return field


class PatchDiscriminator(nn.Module):
    """D: image (C × H × W) → a map of real/fake logits (B × 1 × h × w), one per 70×70 patch at n_layers = 3."""

    def __init__(self, cfg: DiscriminatorCfg = DiscriminatorCfg()) -> None:
        super().__init__()
        self.cfg = cfg
        bias = cfg.norm == "instance"
        widths = [cfg.ndf * min(2**i, 8) for i in range(cfg.n_layers + 1)]  # n_layers=3: 64, 128, 256, 512
        layers: list[nn.Module] = [gz.ops.Conv2d(cfg.in_channels, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]  # no norm
        for i in range(1, cfg.n_layers + 1):  # stride 2 except the last (C512 at stride 1 gives the 70×70 field)
            stride = 2 if i < cfg.n_layers else 1
            layers += [gz.ops.Conv2d(widths[i - 1], widths[i], 4, stride, 1, bias=bias),
                       *gz.create_norm_act(cfg.norm, widths[i], "lrelu")]
        layers.append(gz.ops.Conv2d(widths[-1], 1, 4, 1, 1))  # 1 logit per patch, no sigmoid (LSGAN works on logits)
        self.model = nn.Sequential(*layers)
        gz.init_normal_(self, cfg.init_std)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.cfg.in_channels:
            raise ShapeError(f"CycleGAN D expects images of shape (B, {self.cfg.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        return self.model(x)

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor]:
        return (torch.rand(batch_size, self.cfg.in_channels, self.cfg.image_size, self.cfg.image_size) * 2 - 1,)

    def output_shapes(self, batch_size: int = 2) -> tuple[int, ...]:
        side = patch_output_size(self.cfg.image_size, self.cfg.n_layers)
        return (batch_size, 1, side, side)


# ---------------------------------------------------------------------------------------------------------------
# Image pool: a history of generated images for the discriminator (Shrivastava et al. 2017)
# ---------------------------------------------------------------------------------------------------------------


class ImagePool(nn.Module):
    """The last ``size`` generated images, kept in buffers so a checkpoint (and a resumed run) holds them.

    ``query(images)``, per image: while the pool is not full, store it and return it; once full, with probability
    0.5 return a randomly chosen stored image and put the new one in its place, otherwise return the new image.
    ``size = 0`` returns the batch unchanged. Random draws come from ``generator`` (the engine's per-step noise
    generator, so a resumed run draws the same) or torch's global RNG.
    """

    def __init__(self, size: int, image_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(size, *image_shape))  # (size, C, H, W)
        self.register_buffer("count", torch.zeros((), dtype=torch.long))  # images stored so far (≤ size)

    @torch.no_grad()
    def query(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.size == 0:
            return images.detach()
        if tuple(images.shape[1:]) != tuple(self.images.shape[1:]):
            raise ShapeError(f"image pool holds images of shape {tuple(self.images.shape[1:])}, "
                             f"got a batch of {tuple(images.shape)}")
        out = images.detach().to(self.images.dtype).clone()
        draws = torch.rand(len(images), generator=generator)  # one coin per image (CPU: the generator's device)
        picks = torch.randint(self.size, (len(images),), generator=generator)
        for i in range(len(images)):
            n = int(self.count)
            if n < self.size:  # filling up: store and return the new image
                self.images[n] = out[i]
                self.count += 1
            elif draws[i] > 0.5:  # swap: return an old image, keep the new one in its place
                j = int(picks[i])
                old = self.images[j].clone()
                self.images[j] = out[i]
                out[i] = old
        return out


# ---------------------------------------------------------------------------------------------------------------
# Objective
# ---------------------------------------------------------------------------------------------------------------


# From gz.GanObjectiveCfg: generator / discriminator (+ _kwargs: G_A's, reversed for G_B), loss (+ loss_kwargs),
# lr = 2e-4 for Adam in both phases (the decay is the engine's: --lr-schedule linear), betas = (0.5, 0.999).
@attrs.frozen(kw_only=True)
class ObjectiveCfg(gz.GanObjectiveCfg):
    generator: str = "cyclegan.resnet_9blocks"  # both G_A and G_B; any image-to-image generator by name
    discriminator: str = "cyclegan.patch70"  # both D_A and D_B
    loss: str = "gan.lsgan"  # least squares (reference gan_mode='lsgan')
    lambda_a: float = attrs.field(default=10.0, validator=v.non_negative)  # cycle A → B → A
    lambda_b: float = attrs.field(default=10.0, validator=v.non_negative)  # cycle B → A → B
    lambda_idt: float = attrs.field(default=0.5, validator=v.non_negative)  # identity weight, relative to lambda_a /
    # lambda_b; 0 turns identity off
    pool_size: int = attrs.field(default=50, validator=v.non_negative)  # per discriminator; 0: no pool
    dataset: str = "cyclegan.horse2zebra"  # what `ganzoo train` uses when --data is not given


class CycleGANObjective(nn.Module):
    """Phase G: both generators (LSGAN + cycle + identity L1); phase D: both discriminators on pooled fakes."""

    def __init__(self, cfg: ObjectiveCfg = ObjectiveCfg()) -> None:
        super().__init__()
        self.cfg = cfg
        self.networks = nn.ModuleDict({
            "G_A": gz.create_generator(cfg.generator, **cfg.generator_kwargs),  # A → B (paper G)
            "G_B": gz.create_generator(cfg.generator, **self._reverse(cfg.generator_kwargs)),  # B → A (paper F)
            "D_A": gz.create_discriminator(cfg.discriminator, **self._d_kwargs("G_A")),  # judges B (paper D_Y)
            "D_B": gz.create_discriminator(cfg.discriminator, **self._d_kwargs("G_B")),  # judges A (paper D_X)
        })
        shape_a = self.networks["G_B"].output_shapes(1)[1:]
        shape_b = self.networks["G_A"].output_shapes(1)[1:]
        if cfg.lambda_idt > 0 and shape_a[0] != shape_b[0]:
            raise ConfigError(f"the identity loss needs domains with the same channels, got {shape_a[0]} (A) and "
                              f"{shape_b[0]} (B); set lambda_idt=0 or give both domains the same channels")
        self.pool_a = ImagePool(cfg.pool_size, tuple(shape_a))  # fakes G_B(B) for D_B
        self.pool_b = ImagePool(cfg.pool_size, tuple(shape_b))  # fakes G_A(A) for D_A
        self.gan_loss = gz.build_gan_loss(cfg)
        self.phases = (  # the reference order: G step first, then D on the pooled fakes of that step
            gz.Phase(name="G", networks=("G_A", "G_B"), lr=cfg.lr, betas=cfg.betas),
            gz.Phase(name="D", networks=("D_A", "D_B"), lr=cfg.lr, betas=cfg.betas),
        )

    @staticmethod
    def _reverse(kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """G_B maps B → A: swap the channel counts of G_A's overrides."""
        out = dict(kwargs)
        if "in_channels" in kwargs or "out_channels" in kwargs:
            out["in_channels"], out["out_channels"] = kwargs.get("out_channels", 3), kwargs.get("in_channels", 3)
        return out

    def _d_kwargs(self, generator: str) -> dict[str, Any]:
        """Each D sees its generator's output domain: its channels follow that generator's."""
        kwargs = dict(self.cfg.discriminator_kwargs)
        g = self._reverse(self.cfg.generator_kwargs) if generator == "G_B" else dict(self.cfg.generator_kwargs)
        if "out_channels" in g:
            kwargs.setdefault("in_channels", g["out_channels"])
        return kwargs

    @property
    def image_shape(self) -> tuple[int, int, int]:  # lets `ganzoo train` fit the dataset to the networks
        return tuple(self.networks["G_B"].output_shapes(1)[1:])  # type: ignore[return-value]

    def loss(self, phase: str, batch: Mapping[str, Tensor], ctx: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        if phase == "G":
            return self._generator_loss(batch["image"], batch["image_b"], ctx)
        if phase == "D":
            return self._discriminator_loss(batch["image"], batch["image_b"], ctx)
        raise KeyError(f"CycleGAN has phases 'G' and 'D', got {phase!r}")

    def _generator_loss(self, real_a: Tensor, real_b: Tensor, ctx: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        n, cfg, L = self.networks, self.cfg, self.gan_loss
        fake_b, fake_a = n["G_A"](real_a), n["G_B"](real_b)  # G(x), F(y)
        rec_a, rec_b = n["G_B"](fake_b), n["G_A"](fake_a)  # F(G(x)) ≈ x, G(F(y)) ≈ y
        ctx["fake_a"], ctx["fake_b"] = fake_a.detach(), fake_b.detach()  # for the D phase's pools
        with _no_weight_grads(n["D_A"], n["D_B"], enabled=ctx.get("world", 1) == 1):
            terms = {"gan_a": L.g_fake(n["D_A"](fake_b)), "gan_b": L.g_fake(n["D_B"](fake_a))}
        terms["cycle_a"] = cfg.lambda_a * F.l1_loss(rec_a, real_a)
        terms["cycle_b"] = cfg.lambda_b * F.l1_loss(rec_b, real_b)
        if cfg.lambda_idt > 0:  # G_A should leave B images alone, G_B leave A images alone
            terms["idt_a"] = cfg.lambda_idt * cfg.lambda_b * F.l1_loss(n["G_A"](real_b), real_b)
            terms["idt_b"] = cfg.lambda_idt * cfg.lambda_a * F.l1_loss(n["G_B"](real_a), real_a)
        total = sum(terms.values())
        return total, {k: v.detach() for k, v in terms.items()}  # type: ignore[return-value]

    def _discriminator_loss(self, real_a: Tensor, real_b: Tensor,
                            ctx: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        n, L = self.networks, self.gan_loss
        fake_a, fake_b = ctx.pop("fake_a", None), ctx.pop("fake_b", None)
        if fake_a is None or fake_b is None:  # D phase alone: translate this batch without gradients
            with torch.no_grad():
                fake_a, fake_b = n["G_B"](real_b), n["G_A"](real_a)
        gen = ctx.get("noise")
        pooled_b, pooled_a = self.pool_b.query(fake_b, gen), self.pool_a.query(fake_a, gen)
        d_a = 0.5 * (L.d_real(n["D_A"](real_b)) + L.d_fake(n["D_A"](pooled_b.to(real_b.dtype))))
        d_b = 0.5 * (L.d_real(n["D_B"](real_a)) + L.d_fake(n["D_B"](pooled_a.to(real_a.dtype))))
        return d_a + d_b, {"d_a": d_a.detach(), "d_b": d_b.detach()}

    # -- the user's own images (`ganzoo translate`, the demo page) ---------------------------------------------
    translation_options: Mapping[str, Any] = {
        "direction": gz.TranslationOption(choices=("AtoB", "BtoA"), default="AtoB",
                                          help="AtoB: G_A (domain A to B); BtoA: G_B")}

    @property
    def translation_size(self) -> tuple[int, int]:
        _, h, w = self.image_shape
        return h, w

    @torch.no_grad()
    def translate_images(self, images: Tensor, direction: str = "AtoB") -> Tensor:
        """RGB images (N, 3, H, W) in [-1, 1] through G_A or G_B (grey networks take their mean)."""
        g = self.networks["G_A" if direction == "AtoB" else "G_B"]
        x = images.to(next(g.parameters()).device)
        return self.translate(x.mean(1, keepdim=True) if g.cfg.in_channels == 1 else x, direction)

    @torch.no_grad()
    def translate(self, images: Tensor, direction: str = "AtoB") -> Tensor:
        """Images of one domain through ``G_A`` (``"AtoB"``) or ``G_B`` (``"BtoA"``)."""
        if direction not in ("AtoB", "BtoA"):
            raise ValueError(f"direction must be 'AtoB' or 'BtoA', got {direction!r}")
        return self.networks["G_A" if direction == "AtoB" else "G_B"](images)

    @torch.no_grad()
    def sample(self, n: int, batch: Mapping[str, Tensor] | None = None, seed: int = 0) -> Tensor:
        """Rows of (A, G_A(A), G_B(G_A(A))) for the first ``n`` // 3 images of ``batch`` (or of seeded noise
        images when there is none): ``n`` images in [-1, 1]."""
        g = self.networks["G_A"]
        device = next(g.parameters()).device
        k = max(1, -(-n // 3))
        if batch is not None and "image" in batch and len(batch["image"]) >= k:
            real = batch["image"][:k].to(device)
        else:
            (example,) = g.example_inputs(1)
            gen = gz.seeded_rng(seed)
            real = (torch.rand(k, *example.shape[1:], generator=gen) * 2 - 1).to(device)
        fake = g(real)
        rec = self.networks["G_B"](fake)
        grid = torch.stack([real, fake.to(real.dtype), rec.to(real.dtype)], 1)  # (k, 3, C, H, W)
        return grid.flatten(0, 1)[:n]  # (3k, C, H, W): real, translated, reconstructed per row

    def example_batch(self, batch_size: int = 2) -> dict[str, Tensor]:
        (image_a,) = self.networks["G_A"].example_inputs(batch_size)
        (image_b,) = self.networks["G_B"].example_inputs(batch_size)
        return {"image": image_a, "image_b": image_b}


class _no_weight_grads:
    """Inside the block the discriminators' weights do not require gradients: the G phase backpropagates through
    D to the fakes without computing D's weight gradients (the reference's ``set_requires_grad(D, False)``). Autograd
    records this at forward time, so the flags can be restored before ``backward``. Off under DDP."""

    def __init__(self, *modules: nn.Module, enabled: bool = True) -> None:
        self.params = [p for m in modules for p in m.parameters() if p.requires_grad] if enabled else []

    def __enter__(self) -> None:
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc: Any) -> None:
        for p in self.params:
            p.requires_grad_(True)


# ---------------------------------------------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------------------------------------------

G_VARIANTS = {
    "resnet_9blocks": GeneratorCfg(),  # 256×256, 11,378,179 parameters
    "resnet_6blocks": GeneratorCfg(image_size=128, n_blocks=6),  # 128×128, 7,837,699 parameters
    "resnet_9blocks_lua": GeneratorCfg(affine=True),  # junyanz/CycleGAN (Torch), 11,388,675 parameters
    "resnet_6blocks_lua": GeneratorCfg(image_size=128, n_blocks=6, affine=True),  # the Torch default, 7,845,123
    "small32": GeneratorCfg(image_size=32, ngf=32, n_blocks=3),  # CPU: Animal-MNIST horse ↔ zebra
    "small64": GeneratorCfg(image_size=64, ngf=32, n_blocks=3),  # CPU: emoji
}
D_VARIANTS = {
    "patch70": DiscriminatorCfg(),  # 70×70 patches, 30×30 logits at 256, 2,764,737 parameters
    "patch70_128": DiscriminatorCfg(image_size=128),  # the same network, 14×14 logits at 128
    "small32": DiscriminatorCfg(image_size=32, ndf=32, n_layers=2),  # 34×34 patches, 6×6 logits
    "small64": DiscriminatorCfg(image_size=64, ndf=32, n_layers=3),  # 70×70 field, 6×6 logits
}
OBJECTIVE_VARIANTS = {
    "small32": ObjectiveCfg(generator="cyclegan.small32", discriminator="cyclegan.small32",
                            dataset="cyclegan.horse2zebra"),
    "small64": ObjectiveCfg(generator="cyclegan.small64", discriminator="cyclegan.small64",
                            dataset="cyclegan.emoji2line"),
}

# ---------------------------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------------------------

PAPER = "Zhu, Park, Isola & Efros, ICCV 2017, arXiv:1703.10593"

gz.register_generator("cyclegan", variants=G_VARIANTS, default="resnet_9blocks", paper=PAPER)(ResnetGenerator)
gz.register_discriminator("cyclegan", variants=D_VARIANTS, default="patch70", paper=PAPER)(PatchDiscriminator)
gz.register_objective("cyclegan", variants=OBJECTIVE_VARIANTS, default="small32", paper=PAPER)(CycleGANObjective)


# ---------------------------------------------------------------------------------------------------------------
# Reference weights
# ---------------------------------------------------------------------------------------------------------------

_STALE_NORM_KEYS = ("running_mean", "running_var", "num_batches_tracked")


@gz.hookimpl
def ganzoo_convert_checkpoint(kind: str, name: str, path: Path) -> dict[str, Tensor] | None:
    """Load reference-port weights that do not fit as they are: DataParallel names (``module.model.1.weight``)
    and checkpoints from before the port dropped InstanceNorm's running statistics (``model.2.running_mean``, ...;
    the port's own ``__patch_instance_norm_state_dict`` drops them too). Current ``latest_net_G_A.pth`` files need
    no conversion: the parameter names are the same. A Torch7 file (told by content) is a released generator of
    the Torch original: ``official.convert_t7``."""
    if not name.startswith("cyclegan.") or kind not in ("generator", "discriminator"):
        return None
    if is_t7_file(path):
        return official.convert_t7(kind, name, path)
    if path.suffix not in (".pt", ".pth"):
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a weights-only PyTorch file: not ours to convert
        return None
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        return None
    out = {str(k).removeprefix("module."): v for k, v in state.items()}
    # InstanceNorm(affine=False) has no weight: running statistics without a weight beside them are stale ones
    # (a BatchNorm's have weight and bias next to them and are kept)
    out = {k: v for k, v in out.items()
           if not (k.endswith(_STALE_NORM_KEYS) and k.rsplit(".", 1)[0] + ".weight" not in out)}
    return out if any(k.startswith("model.") for k in out) else None
