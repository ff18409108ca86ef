"""StarGAN: Choi, Choi, Kim, Ha, Kim & Choo, "StarGAN: Unified Generative Adversarial Networks for Multi-Domain
Image-to-Image Translation", CVPR 2018 (arXiv:1711.09020).

One generator translates an image to any target domain: the target label vector is tiled over the image and
concatenated to it as extra channels. The discriminator has two heads on one trunk: a PatchGAN real/fake map
(WGAN-GP critic) and a domain classifier. At 128×128 with 5 CelebA attributes the networks are those of the official
code (G 8,430,528 and D 44,762,048 parameters, 53.19 M together, the paper's "53.2M"); parameter names match it
(``main.*``, ``conv1``, ``conv2``), so its ``*-G.ckpt`` / ``*-D.ckpt`` state dicts load with
``create_generator(name, weights=path)``. Weights keep PyTorch's default init, as the official code does.

Paper symbols → code names:
    x, c (target domain label), c' (original label)   → ``x``, ``c_trg``, ``c_org``
    G(x, c), D_src, D_cls                              → ``StarGenerator``, ``DiscOutput.logits``, ``DiscOutput.aux``
    λ_cls, λ_rec, λ_gp, n_critic                       → ``lambda_cls``, ``lambda_rec``, ``lambda_gp``, ``n_critic``
    m (mask vector, multi-dataset training)            → the last two entries of ``cond`` (``mask``)
    n_c (domain label size) of datasets 1 and 2        → ``c_dim``, ``c2_dim``

File order: configs → blocks → networks → objective → variants → registration.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import ganzoo_core as gz
from ganzoo_core import validators as v
from ganzoo_core.config import SAVED_BEFORE
from ganzoo_core.errors import ConfigError, InputError, ShapeError
from ganzoo_core.ops import InstanceNormAct2d, gradient_penalty, norm_act

# ---------------------------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------------------------


def _halvable(by: str) -> Any:
    """Validator: image_size is a positive multiple of 2**<the ``by`` field> (one ×2 downsampling per strided conv)."""

    def check(inst: Any, attribute: attrs.Attribute, value: int) -> None:
        k = getattr(inst, by)
        if value < 2**k or value % 2**k:
            raise ValueError(f"{attribute.name} must be a positive multiple of 2**{by} = {2**k} (one ×2 downsampling "
                             f"per strided conv), got {value}")

    return check


_eval_stats = v.one_of(("instance", "running"))


@attrs.frozen(kw_only=True)
class GeneratorCfg:
    n_down: int = attrs.field(default=2, validator=[v.size, v.halvings])  # strided 4×4 convs before the residual
    # blocks (official: 2, so they run at 1/4 resolution), mirrored by as many transposed convs after them
    image_size: int = attrs.field(default=128, validator=_halvable("n_down"))
    nc: int = attrs.field(default=3, validator=v.size)  # image channels
    c_dim: int = attrs.field(default=5, validator=v.size)  # label channels tiled onto the image;
    # multi-dataset training: c_dim + c2_dim + 2 (the mask vector)
    conv_dim: int = attrs.field(default=64, validator=v.size)  # g_conv_dim: width of the first conv; ×2 per downsampling
    repeat_num: int = attrs.field(default=6, validator=v.depth)  # residual blocks at 1/2^n_down
    eval_stats: str = attrs.field(default="instance", validator=_eval_stats)  # what InstanceNorm uses in eval mode:
    # "instance": each image's own statistics, as the official test path (which never calls .eval()) computes;
    # "running": the tracked running statistics (torch's eval behaviour; degrades outputs, yunjey/stargan#102)


@attrs.frozen(kw_only=True)
class DiscriminatorCfg:
    repeat_num: int = attrs.field(default=6, validator=[v.size, v.halvings])  # d_repeat_num: strided 4×4 convs
    image_size: int = attrs.field(default=128, validator=_halvable("repeat_num"))
    nc: int = attrs.field(default=3, validator=v.size)
    c_dim: int = attrs.field(default=5, validator=v.size)  # domain logits (both datasets' labels)
    conv_dim: int = attrs.field(default=64, validator=v.size)  # d_conv_dim; ×2 per conv
    slope: float = attrs.field(default=0.01, validator=[v.non_negative, attrs.validators.lt(1.0)])  # LeakyReLU
    # negative slope (official: 0.01, not DCGAN's 0.2)


@attrs.frozen(kw_only=True)
class ResidualCfg:
    channels: int = attrs.field(default=256, validator=v.size)
    eval_stats: str = attrs.field(default="instance", validator=_eval_stats)


# ---------------------------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------------------------


class StarInstanceNorm(InstanceNormAct2d):
    """``InstanceNorm2d(affine=True, track_running_stats=True)`` plus an activation, as one ``norm_act`` call.

    The running statistics are tracked in training (and saved) as in the official code. In eval mode,
    ``eval_stats="instance"`` keeps normalising with each image's own statistics and leaves the running ones
    untouched: the official test path runs the network in train mode, and torch's eval mode (running statistics)
    changes its outputs (yunjey/stargan#102, #140)."""

    def __init__(self, channels: int, act: str = "relu", eval_stats: str = "instance") -> None:
        super().__init__(channels, affine=True, track_running_stats=True, act=act)
        self.eval_stats = eval_stats

    def forward(self, x: Tensor) -> Tensor:
        if self.training or self.eval_stats == "running":
            return super().forward(x)
        return norm_act(x, self.weight, self.bias, None, None, kind="instance", training=True, eps=self.eps,
                        act=self.act, alpha=self.alpha, impl=self.resolved_impl(x.device))  # no buffers: nothing updated


def norm_relu(channels: int, eval_stats: str) -> list[nn.Module]:
    """IN + ReLU as one fused module, then ``nn.Identity()`` in the ReLU's official slot (parameter names stay
    ``main.1.weight``, ``main.4.weight``, ... as in yunjey/stargan)."""
    return [StarInstanceNorm(channels, "relu", eval_stats), nn.Identity()]


class ResidualBlock(nn.Module):
    """conv3×3 ▸ IN ▸ ReLU ▸ conv3×3 ▸ IN, added to the input (no ReLU after the sum); zero padding, no conv bias."""

    def __init__(self, cfg: ResidualCfg = ResidualCfg()) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        self.main = nn.Sequential(
            nn.Conv2d(c, c, 3, 1, 1, bias=False), *norm_relu(c, cfg.eval_stats),
            nn.Conv2d(c, c, 3, 1, 1, bias=False), StarInstanceNorm(c, "linear", cfg.eval_stats),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.main(x)

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor]:
        return (torch.randn(batch_size, self.cfg.channels, 8, 8),)

    def output_shapes(self, batch_size: int = 2) -> tuple[int, ...]:
        return (batch_size, self.cfg.channels, 8, 8)


# ---------------------------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------------------------


def tile_labels(x: Tensor, c: Tensor) -> Tensor:
    """``[x, c tiled over H×W]`` along channels: (B, C, H, W), (B, c_dim) → (B, C + c_dim, H, W)."""
    c = c.to(x.dtype).view(c.shape[0], c.shape[1], 1, 1).expand(-1, -1, x.shape[2], x.shape[3])  # (B, c_dim, H, W)
    return torch.cat([x, c], dim=1)


class StarGenerator(nn.Module):
    """G: image (nc × S × S) and target label c (c_dim) → translated image (nc × S × S) in [-1, 1]."""

    def __init__(self, cfg: GeneratorCfg = GeneratorCfg()) -> None:
        super().__init__()
        self.cfg = cfg
        d, ev, k = cfg.conv_dim, cfg.eval_stats, cfg.n_down
        layers: list[nn.Module] = [nn.Conv2d(cfg.nc + cfg.c_dim, d, 7, 1, 3, bias=False), *norm_relu(d, ev)]  # → d × S
        for i in range(k):  # official k = 2: → 2d × S/2 → 4d × S/4
            layers += [nn.Conv2d(d * 2**i, d * 2 ** (i + 1), 4, 2, 1, bias=False), *norm_relu(d * 2 ** (i + 1), ev)]
        layers += [ResidualBlock(ResidualCfg(channels=d * 2**k, eval_stats=ev)) for _ in range(cfg.repeat_num)]
        for i in reversed(range(k)):  # back up: → 2d × S/2 → d × S
            layers += [nn.ConvTranspose2d(d * 2 ** (i + 1), d * 2**i, 4, 2, 1, bias=False), *norm_relu(d * 2**i, ev)]
        layers += [nn.Conv2d(d, cfg.nc, 7, 1, 3, bias=False), nn.Tanh()]  # → nc × S
        self.main = nn.Sequential(*layers)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        s, b = self.cfg.image_size, x.shape[0]
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.cfg.nc, s, s):
            raise ShapeError(f"StarGAN G expects images of shape (B, {self.cfg.nc}, {s}, {s}), got {tuple(x.shape)}")
        if cond is None or tuple(cond.shape) != (b, self.cfg.c_dim):
            got = None if cond is None else tuple(cond.shape)
            raise ShapeError(f"StarGAN G expects cond = target labels of shape ({b}, {self.cfg.c_dim}), got {got}")
        return self.main(tile_labels(x, cond))

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor, Tensor]:
        s = self.cfg.image_size
        return (torch.rand(batch_size, self.cfg.nc, s, s) * 2 - 1,
                torch.randint(0, 2, (batch_size, self.cfg.c_dim)).float())

    def output_shapes(self, batch_size: int = 2) -> tuple[int, ...]:
        return (batch_size, self.cfg.nc, self.cfg.image_size, self.cfg.image_size)


class StarDiscriminator(nn.Module):
    """D: image → DiscOutput(logits = PatchGAN real/fake map B×1×h×w, aux = domain logits B×c_dim); no norm layers."""

    def __init__(self, cfg: DiscriminatorCfg = DiscriminatorCfg()) -> None:
        super().__init__()
        self.cfg = cfg
        widths = [cfg.conv_dim * 2**i for i in range(cfg.repeat_num)]  # 128×128: 64, 128, ..., 2048
        layers: list[nn.Module] = []
        for c_in, c_out in zip([cfg.nc, *widths], widths):  # each halves H and W: 128 → 64 → ... → 2
            # gz.ops.Conv2d: nn.Conv2d's layer, whose CPU default runs the weight-bound last one (33.5 M weights
            # against 0.4 M activations at 128 px, batch 16) as one matrix product, ~3x faster, penalty included
            layers += [gz.ops.Conv2d(c_in, c_out, 4, 2, 1), nn.LeakyReLU(cfg.slope)]
        self.main = nn.Sequential(*layers)
        self.conv1 = nn.Conv2d(widths[-1], 1, 3, 1, 1, bias=False)  # source head: (B, 1, h, w)
        self.conv2 = nn.Conv2d(widths[-1], cfg.c_dim, self.patch, bias=False)  # class head: (B, c_dim, 1, 1)

    @property
    def patch(self) -> int:
        """Side of the trunk's output map: image_size / 2^repeat_num (128 / 2^6 = 2)."""
        return self.cfg.image_size // 2**self.cfg.repeat_num

    def forward(self, x: Tensor, cond: Tensor | None = None) -> gz.DiscOutput:
        s = self.cfg.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.cfg.nc, s, s):
            raise ShapeError(f"StarGAN D expects images of shape (B, {self.cfg.nc}, {s}, {s}), got {tuple(x.shape)}")
        h = self.main(x)  # (B, conv_dim·2^(repeat−1), patch, patch)
        return gz.DiscOutput(logits=self.conv1(h), aux=self.conv2(h).view(x.shape[0], self.cfg.c_dim))  # (B, c_dim)

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor]:
        s = self.cfg.image_size
        return (torch.rand(batch_size, self.cfg.nc, s, s) * 2 - 1,)

    def output_shapes(self, batch_size: int = 2) -> gz.DiscOutput:
        return gz.DiscOutput(logits=(batch_size, 1, self.patch, self.patch), aux=(batch_size, self.cfg.c_dim))


# ---------------------------------------------------------------------------------------------------------------
# Objective
# ---------------------------------------------------------------------------------------------------------------

CELEBA_ATTRIBUTES = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")  # the official selected_attrs
RAFD_EXPRESSIONS = ("angry", "contemptuous", "disgusted", "fearful", "happy", "neutral", "sad", "surprised")  # the
# RaFD expression folders in sorted order: the class indices an ImageFolder gives them, as in the official loader
EMOJI_ATTRIBUTES = ("tone=none", "tone=light", "tone=medium-light", "tone=medium", "tone=medium-dark", "tone=dark",
                    "gender=man", "gender=woman")
MULTI_MODES = ("alternate", "mixed")  # two datasets: one per step in turn (official train_multi) / mixed batches
CLS_KINDS = ("bce", "ce")  # binary multi-label attributes (CelebA) / one categorical domain (RaFD)


def _cls_kind(_: Any, attribute: attrs.Attribute, value: str) -> None:
    if value not in CLS_KINDS:
        raise ValueError(f"{attribute.name} must be 'bce' (binary attributes) or 'ce' (one categorical domain), "
                         f"got {value!r}")


def _groups(value: Sequence[Sequence[int]]) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(i) for i in g) for g in value)


@attrs.frozen(kw_only=True)
class ObjectiveCfg:
    generator: str = "stargan.128"
    discriminator: str = "stargan.128"
    generator_kwargs: Mapping[str, Any] = attrs.field(factory=dict, converter=dict, hash=False)
    discriminator_kwargs: Mapping[str, Any] = attrs.field(factory=dict, converter=dict, hash=False)
    c_dim: int = attrs.field(default=5, validator=v.size)  # labels of dataset 1 (CelebA: 5)
    cls: str = attrs.field(default="bce", validator=_cls_kind)  # its classification loss
    c2_dim: int = attrs.field(default=0, validator=v.non_negative)  # labels of dataset 2 (RaFD: 8); 0: one
    cls2: str = attrs.field(default="ce", validator=_cls_kind)
    label_key: str | None = None  # batch key of dataset 1's labels; None: "attrs" (bce) or "label" (ce)
    label2_key: str | None = None  # dataset 2's; None: "attrs_b" (bce) or "label_b" (ce)
    dataset_key: str = "dataset"  # multi-dataset: which dataset (0 or 1) each image comes from
    # multi-dataset: "alternate" (official train_multi: each iteration a D step on a batch of dataset 1, G when due,
    # then the same on a batch of dataset 2; two engine steps per iteration) or "mixed" (ours: one step on a batch
    # of both). Sets the dataset's ``batches`` unless --data-set gives it.
    multi: str = attrs.field(default="alternate", validator=v.one_of(MULTI_MODES))
    one_hot_groups: tuple[tuple[int, ...], ...] = attrs.field(default=((0, 1, 2),), converter=_groups)  # bce labels
    # of dataset 1 that exclude each other (CelebA's hair colours): a sampling target sets one and clears the others
    lambda_cls: float = attrs.field(default=1.0, validator=v.non_negative)
    lambda_rec: float = attrs.field(default=10.0, validator=v.non_negative)
    lambda_gp: float = attrs.field(default=10.0, validator=v.non_negative)
    n_critic: int = attrs.field(default=5, validator=v.size)  # D steps per G step
    g_lr: float = attrs.field(default=1e-4, validator=v.positive)
    d_lr: float = attrs.field(default=1e-4, validator=v.positive)
    betas: tuple[float, float] = attrs.field(default=(0.5, 0.999), converter=tuple, validator=v.betas)
    # names of dataset 1's labels then dataset 2's (c_dim + c2_dim), for `ganzoo translate --set-attr NAME=1` and the
    # demo page (see ``names``)
    label_names: tuple[str, ...] = attrs.field(default=CELEBA_ATTRIBUTES, converter=tuple,
                                               metadata={SAVED_BEFORE: ()})
    dataset: str = "stargan.celeba"  # what `ganzoo train` uses when --data is not given
    sample_dataset: str | None = None  # inputs of sample(n) without a batch (`ganzoo sample`); None: random images
    sample_dataset_kwargs: Mapping[str, Any] = attrs.field(factory=dict, converter=dict, hash=False)

    @one_hot_groups.validator
    def _check_groups(self, _: attrs.Attribute, value: tuple[tuple[int, ...], ...]) -> None:
        flat = [i for g in value for i in g]
        if self.cls != "bce" and value:
            return  # categorical labels are one-hot already; the groups are ignored
        bad = [i for i in flat if not 0 <= i < self.c_dim]
        if bad or len(set(flat)) != len(flat):
            raise ValueError(f"one_hot_groups {value} must hold distinct attribute indices in 0..{self.c_dim - 1}")

    @property
    def names(self) -> tuple[str, ...]:
        """The label names; label0, label1, ... when ``label_names`` does not have c_dim + c2_dim of them (a variant
        whose c_dim was overridden without new names)."""
        n = self.c_dim + self.c2_dim
        return self.label_names if len(self.label_names) == n else tuple(f"label{i}" for i in range(n))

    @property
    def alternates(self) -> bool:
        """Two datasets, one per step in turn."""
        return bool(self.c2_dim) and self.multi == "alternate"

    @property
    def cond_dim(self) -> int:
        """Channels G's cond has: c_dim, or c_dim + c2_dim + 2 (the mask vector) with a second dataset."""
        return self.c_dim + (self.c2_dim + 2 if self.c2_dim else 0)


def _default_key(kind: str, second: bool) -> str:
    return ("attrs" if kind == "bce" else "label") + ("_b" if second else "")


def permute_within(groups: Tensor, noise: Tensor) -> Tensor:
    """A random permutation (from ``noise``'s order) that maps each image to one of its own group (dataset)."""
    perm = torch.arange(len(groups), device=groups.device)
    for g in groups.unique():
        idx = torch.nonzero(groups == g).flatten()
        perm[idx] = idx[noise[idx].argsort()]
    return perm


def _uniform(ctx: dict[str, Any], n: int, device: torch.device) -> Tensor:
    """U[0, 1) noise through the engine's seeded ``batch_noise`` (Φ of standard normals)."""
    return torch.special.ndtr(gz.batch_noise(ctx, n, device=device))


class StarganObjective(nn.Module):
    """WGAN-GP critic with a domain classifier every step; G (adversarial + classification + cycle L1) every n_critic."""

    def __init__(self, cfg: ObjectiveCfg = ObjectiveCfg()) -> None:
        super().__init__()
        self.cfg = cfg
        for where, kwargs in (("generator_kwargs", cfg.generator_kwargs),
                              ("discriminator_kwargs", cfg.discriminator_kwargs)):
            if "c_dim" in kwargs:
                raise ConfigError(f"{where} must not set c_dim: the objective derives it from c_dim / c2_dim "
                                  f"(set those instead), got {kwargs['c_dim']}")
        self.networks = gz.build_gan_networks(cfg, generator_defaults={"c_dim": cfg.cond_dim},
                                              discriminator_defaults={"c_dim": cfg.c_dim + cfg.c2_dim})
        g_size, d_size = self.networks["G"].cfg.image_size, self.networks["D"].cfg.image_size
        if g_size != d_size:
            raise ConfigError(f"G ({cfg.generator}) makes {g_size}×{g_size} images but D ({cfg.discriminator}) "
                              f"reads {d_size}×{d_size}; pick networks of one size")
        self.phases = (
            gz.Phase(name="D", networks=("D",), lr=cfg.d_lr, betas=cfg.betas),
            # alternating: an iteration is one step per dataset, and G steps on both in the iterations it is due
            gz.Phase(name="G", networks=("G",), lr=cfg.g_lr, betas=cfg.betas, every=cfg.n_critic,
                     cycle=2 if cfg.alternates else 1),
        )
        self._sample_inputs: dict[str, Tensor] | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.networks["G"].output_shapes(1)[1:])  # type: ignore[return-value]

    @property
    def data_defaults(self) -> dict[str, Any]:
        """Dataset options this objective implies: a joined dataset's batch mode (``stargan.joint``'s ``batches``)."""
        return {"batches": self.cfg.multi} if self.cfg.c2_dim else {}

    @property
    def n_domains(self) -> int:
        """Target domains of the sample grid: every label of both datasets."""
        return self.cfg.c_dim + self.cfg.c2_dim

    # -- labels ---------------------------------------------------------------------------------------------
    def _read(self, batch: Mapping[str, Tensor], second: bool, active: Tensor) -> Tensor:
        """One dataset's labels as (B, n) floats: bce attributes as given, ce domains one-hot (zeros where inactive)."""
        cfg = self.cfg
        kind, n = (cfg.cls2, cfg.c2_dim) if second else (cfg.cls, cfg.c_dim)
        key = (cfg.label2_key if second else cfg.label_key) or _default_key(kind, second)
        if key not in batch:
            raise KeyError(f"StarGAN reads its {'second' if second else ''} labels from batch[{key!r}] ({kind}); the "
                           f"batch has {sorted(batch)}: set label{'2' if second else ''}_key or use a dataset "
                           "that serves it")
        value, b = batch[key], len(active)
        if kind == "bce":
            if tuple(value.shape) != (b, n):
                raise ShapeError(f"batch[{key!r}] must be ({b}, {n}) binary attributes, got {tuple(value.shape)}")
            return value.float() * active[:, None]
        if tuple(value.shape) != (b,):
            raise ShapeError(f"batch[{key!r}] must be ({b},) domain indices, got {tuple(value.shape)}")
        index = torch.where(active, value.long(), 0)
        if ((index < 0) | (index >= n)).any():
            raise ValueError(f"batch[{key!r}] holds domain {int(index[(index < 0) | (index >= n)][0])}; expected "
                             f"0..{n - 1} (c{'2' if second else ''}_dim = {n})")
        return F.one_hot(index, n).float() * active[:, None]

    def labels(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(cond, dataset): the original labels as G's cond (B, cond_dim), with the mask vector appended for two
        datasets ([labels_1, labels_2, mask], the other dataset's part zero), and each image's dataset (B,)."""
        b, device = batch["image"].shape[0], batch["image"].device
        if not self.cfg.c2_dim:
            return self._read(batch, False, torch.ones(b, dtype=torch.bool, device=device)), torch.zeros(
                b, dtype=torch.long, device=device)
        key = self.cfg.dataset_key
        if key not in batch:
            raise KeyError(f"multi-dataset StarGAN needs batch[{key!r}] (0 or 1 per image); the batch has "
                           f"{sorted(batch)}")
        ds = batch[key].long().to(device)
        if ((ds < 0) | (ds > 1)).any():
            raise ValueError(f"batch[{key!r}] must be 0 or 1 (which dataset), got {ds.unique().tolist()}")
        first, second = self._read(batch, False, ds == 0), self._read(batch, True, ds == 1)
        return torch.cat([first, second, F.one_hot(ds, 2).float()], dim=1), ds  # (B, c_dim + c2_dim + 2)

    def cls_loss(self, logits: Tensor, cond: Tensor, ds: Tensor) -> Tensor:
        """Classification loss against ``cond``'s labels, each image on its own dataset's labels only: bce summed over
        attributes, ce over the domains; averaged over the batch (as the official code)."""
        c1, c2 = self.cfg.c_dim, self.cfg.c2_dim
        per = self._set_loss(logits[:, :c1], cond[:, :c1], self.cfg.cls)
        if c2:
            per = torch.where(ds == 0, per, self._set_loss(logits[:, c1:c1 + c2], cond[:, c1:c1 + c2], self.cfg.cls2))
        return per.mean()

    @staticmethod
    def _set_loss(logits: Tensor, target: Tensor, kind: str) -> Tensor:
        logits = logits.float()
        if kind == "bce":
            return F.binary_cross_entropy_with_logits(logits, target.float(), reduction="none").sum(1)  # (B,)
        return F.cross_entropy(logits, target.argmax(1), reduction="none")  # (B,)

    def target_labels(self, cond: Tensor, ds: Tensor, ctx: dict[str, Any]) -> Tensor:
        """The official ``label_org[randperm]``: other images' labels, drawn within each image's dataset."""
        return cond[permute_within(ds, gz.batch_noise(ctx, len(ds), device=ds.device))]

    # -- training ---------------------------------------------------------------------------------------------
    def loss(self, phase: str, batch: Mapping[str, Tensor], ctx: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        key = self.cfg.dataset_key
        if self.cfg.alternates and key in batch and bool((batch[key] != batch[key][0]).any()):
            raise ValueError(f"multi='alternate' trains on one dataset per batch, but batch[{key!r}] mixes "
                             f"{batch[key].unique().tolist()}; use --data-set batches=alternate, or --set multi=mixed")
        if phase == "D":
            return self._d_loss(batch, ctx)
        if phase == "G":
            return self._g_loss(batch, ctx)
        raise KeyError(f"StarGAN has phases 'D' and 'G', got {phase!r}")

    def _d_loss(self, batch: Mapping[str, Tensor], ctx: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        G, D, cfg = self.networks["G"], self.networks["D"], self.cfg
        x = batch["image"]
        c_org, ds = self.labels(batch)
        c_trg = self.target_labels(c_org, ds, ctx)
        ctx["stargan.labels"] = (c_org, ds, c_trg)  # the G step of this iteration uses the same targets
        out = D(x)
        d_real = -out.logits.float().mean()  # WGAN critic: maximise D_src(x)
        d_cls = self.cls_loss(out.aux, c_org, ds)
        with torch.no_grad():
            fake = G(x, c_trg)
        d_fake = D(fake).logits.float().mean()
        gp = gradient_penalty(D, x, fake, alpha=_uniform(ctx, len(x), x.device), head=lambda o: o.logits)
        loss = d_real + d_fake + cfg.lambda_cls * d_cls + cfg.lambda_gp * gp
        return loss, {"d_real": d_real.detach(), "d_fake": d_fake.detach(), "d_cls": d_cls.detach(),
                      "d_gp": gp.detach()}

    def _g_loss(self, batch: Mapping[str, Tensor], ctx: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        G, D, cfg = self.networks["G"], self.networks["D"], self.cfg
        x = batch["image"]
        labels = ctx.pop("stargan.labels", None)
        if labels is None:
            c_org, ds = self.labels(batch)
            labels = (c_org, ds, self.target_labels(c_org, ds, ctx))
        c_org, ds, c_trg = labels
        fake = G(x, c_trg)
        out = D(fake)
        g_adv = -out.logits.float().mean()
        g_cls = self.cls_loss(out.aux, c_trg, ds)
        g_rec = (x - G(fake, c_org)).abs().float().mean()  # the cycle back to the original domain
        loss = g_adv + cfg.lambda_rec * g_rec + cfg.lambda_cls * g_cls
        return loss, {"g_adv": g_adv.detach(), "g_cls": g_cls.detach(), "g_rec": g_rec.detach()}

    # -- the user's own images (`ganzoo translate`, the demo page) ---------------------------------------------
    @property
    def translation_options(self) -> Mapping[str, Any]:
        return {"attributes": gz.TranslationOption(
            kind="attributes", choices=self.cfg.names, default={},
            help="target labels by name (NAME=1 on, NAME=0 off); unnamed ones are 0, since the input's own labels "
                 "are not known")}

    @property
    def translation_size(self) -> tuple[int, int]:
        _, h, w = self.image_shape
        return h, w

    def target_from_names(self, attributes: Mapping[str, float], n: int, device: torch.device) -> Tensor:
        """G's cond (n, cond_dim) for the named target labels: the others 0; a one-hot group member set to 1 clears
        its group; with two datasets the names must come from one, whose mask entry is set."""
        cfg, names = self.cfg, self.cfg.names
        if not attributes:
            raise InputError(f"StarGAN needs a target: --set-attr NAME=1 with NAME one of {', '.join(names)}")
        index = {name: i for i, name in enumerate(names)}
        bad = [k for k in attributes if k not in index]
        if bad:
            raise InputError(f"unknown attribute {bad[0]!r}; expected one of {', '.join(names)}")
        sets = {int(index[k] >= cfg.c_dim) for k in attributes}
        if len(sets) > 1:
            raise InputError(f"the targets {sorted(attributes)} name labels of both datasets; name one dataset's")
        cond = torch.zeros(cfg.cond_dim, device=device)
        for name, value in attributes.items():
            i = index[name]
            group = next((g for g in cfg.one_hot_groups if i in g), None) if cfg.cls == "bce" and i < cfg.c_dim else None
            if group is not None and value:
                cond[list(group)] = 0
            cond[i] = float(value)
        if cfg.c2_dim:
            cond[cfg.c_dim + cfg.c2_dim + sets.pop()] = 1  # the mask names the target's dataset
        return cond.expand(n, -1)

    @torch.no_grad()
    def translate_images(self, images: Tensor, attributes: Mapping[str, float] | None = None) -> Tensor:
        """RGB images (N, 3, H, W) in [-1, 1] → G(x, c) for the target labels named in ``attributes``."""
        G = self.networks["G"]
        x = images.to(next(G.parameters()).device)
        return G(x, self.target_from_names(dict(attributes or {}), len(x), x.device))

    # -- sampling -----------------------------------------------------------------------------------------------
    def domain_targets(self, cond: Tensor, ds: Tensor) -> list[Tensor]:
        """One target cond per grid column (the official ``create_labels``): each attribute of a bce dataset
        flipped (or, in a one-hot group, set and its group cleared); each domain of a ce dataset."""
        cfg, b = self.cfg, len(cond)
        targets = []
        for second, (kind, n, start) in enumerate(((cfg.cls, cfg.c_dim, 0), (cfg.cls2, cfg.c2_dim, cfg.c_dim))):
            own = (ds == second)[:, None].float()
            base = cond[:, start:start + n] * own  # an image of the other dataset starts from no labels
            for j in range(n):
                part = torch.zeros_like(base)
                if kind == "bce":
                    part = base.clone()
                    group = next((g for g in cfg.one_hot_groups if j in g), None) if second == 0 else None
                    if group is not None:
                        part[:, list(group)] = 0
                        part[:, j] = 1
                    else:
                        part[:, j] = 1 - part[:, j]
                else:
                    part[:, j] = 1
                if not cfg.c2_dim:
                    targets.append(part)
                    continue
                full = torch.zeros(b, cfg.cond_dim, device=cond.device)
                full[:, start:start + n] = part
                full[:, cfg.c_dim + cfg.c2_dim + second] = 1  # the mask names the target's dataset
                targets.append(full)
        return targets

    @torch.no_grad()
    def translate(self, images: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        """(B, n_domains + 1, C, H, W): each input, then its translation to every target domain."""
        cond, ds = self.labels(batch)
        G = self.networks["G"]
        columns = [images] + [G(images, t) for t in self.domain_targets(cond, ds)]
        return torch.stack(columns, dim=1)  # (B, 1 + n_domains, C, H, W)

    def _inputs(self, rows: int, seed: int, device: torch.device) -> dict[str, Tensor]:
        """``rows`` inputs for ``sample`` without a batch: images of ``sample_dataset`` chosen by ``seed``, or seeded
        random images (and labels) when it is None or not available here."""
        if self._sample_inputs is None and self.cfg.sample_dataset is not None:
            try:
                data = gz.create_dataset(self.cfg.sample_dataset, **self.cfg.sample_dataset_kwargs)
                items = [data[i] for i in range(min(len(data), 256))]
                self._sample_inputs = {k: torch.stack([it[k] for it in items]) for k in items[0]}
            except gz.DatasetUnavailableError as err:
                warnings.warn(f"StarGAN sample: {self.cfg.sample_dataset} is not available ({err}); translating "
                              "random images instead", stacklevel=3)
                self._sample_inputs = {}
        gen = gz.seeded_rng(seed)
        if self._sample_inputs:
            pool = len(self._sample_inputs["image"])
            index = torch.randperm(pool, generator=gen)[:rows].repeat(rows // pool + 1)[:rows]
            return {k: v[index].to(device) for k, v in self._sample_inputs.items()}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            batch = self.example_batch(rows)
        if self.cfg.c2_dim:
            batch[self.cfg.dataset_key] = torch.arange(rows) % 2  # the grid shows inputs of both datasets
        return {k: v.to(device) for k, v in batch.items()}

    @torch.no_grad()
    def sample(self, n: int, batch: Mapping[str, Tensor] | None = None, seed: int = 0) -> Tensor:
        """The translation grid, row by row, cut to ``n`` images: each input then one image per target domain
        (``ceil(n / (1 + n_domains))`` inputs, from ``batch`` or, without one, from ``sample_dataset``).
        ``n = k · (1 + n_domains)`` gives k whole rows; ``write_translation_grid`` lays them out."""
        cols = 1 + self.n_domains
        rows = -(-n // cols)
        device = next(self.parameters()).device
        if batch is None:
            batch = self._inputs(rows, seed, device)
        b = batch["image"].shape[0]
        index = torch.arange(rows, device=batch["image"].device) % b  # repeat a small batch's images
        picked = {k: v[index] for k, v in batch.items() if isinstance(v, Tensor) and v.shape[:1] == (b,)}
        grid = self.translate(picked["image"], picked)  # (rows, cols, C, H, W)
        return grid.flatten(0, 1)[:n]  # row-major: the input, then its translations

    def example_batch(self, batch_size: int = 2) -> dict[str, Tensor]:
        (images,) = self.networks["D"].example_inputs(batch_size)
        cfg, batch = self.cfg, {"image": images}
        for second, (kind, n) in enumerate(((cfg.cls, cfg.c_dim), (cfg.cls2, cfg.c2_dim))):
            if n == 0:
                continue
            key = (cfg.label2_key if second else cfg.label_key) or _default_key(kind, bool(second))
            batch[key] = torch.randint(0, 2, (batch_size, n)).float() if kind == "bce" else torch.randint(
                0, n, (batch_size,))
        if cfg.c2_dim:  # alternating: a batch of dataset 1, as the first step of an iteration trains on
            batch[cfg.dataset_key] = torch.zeros(batch_size, dtype=torch.long) if cfg.alternates else torch.arange(
                batch_size) % 2
        return batch


# ---------------------------------------------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------------------------------------------

SHAPES_ATTRIBUTES = ("colour=red", "colour=green", "colour=blue", "colour=yellow", "colour=magenta", "colour=cyan",
                     "colour=white", "size=large")  # stargan.shapes' default label vector: 7 colours + size
SHAPES_WITH_SHAPE_ATTRIBUTES = (*SHAPES_ATTRIBUTES[:7], "shape=circle", "shape=square", "shape=triangle",
                                "shape=star", "size=large")  # stargan.shapes_with_shape: 7 colours + 4 shapes + size

G_VARIANTS = {
    "128": GeneratorCfg(),  # official CelebA 128×128: 8,430,528 parameters
    "both128": GeneratorCfg(c_dim=5 + 8 + 2),  # official CelebA + RaFD: labels + mask vector
    "64": GeneratorCfg(image_size=64, conv_dim=32, repeat_num=4),
    "32": GeneratorCfg(image_size=32, conv_dim=32, repeat_num=3, c_dim=8),
    "tiny32": GeneratorCfg(image_size=32, conv_dim=16, repeat_num=2, c_dim=8),  # CPU learning test
    # one downsampling: the residual blocks at 16×16 (2d channels, the same MACs as 4d at 8×8), so a shape of a few
    # pixels spans a few cells of the bottleneck, as a face part does at 128×128 in the official model
    "32_res16": GeneratorCfg(image_size=32, conv_dim=32, repeat_num=3, c_dim=8, n_down=1),
}
D_VARIANTS = {
    "128": DiscriminatorCfg(),  # official: 44,762,048 parameters
    "both128": DiscriminatorCfg(c_dim=5 + 8),
    "64": DiscriminatorCfg(image_size=64, conv_dim=32, repeat_num=5),
    "32": DiscriminatorCfg(image_size=32, conv_dim=32, repeat_num=4, c_dim=8),
    "tiny32": DiscriminatorCfg(image_size=32, conv_dim=16, repeat_num=4, c_dim=8),
}
_SHAPES_DATA = {"split": "test", "n": 2000}
OBJECTIVE_VARIANTS = {
    "celeba128": ObjectiveCfg(),  # Black/Blond/Brown hair (one-hot group), Male, Young
    "both128": ObjectiveCfg(generator="stargan.both128", discriminator="stargan.both128", c2_dim=8,
                            dataset="stargan.joint", label_names=CELEBA_ATTRIBUTES + RAFD_EXPRESSIONS),
    "shapes32": ObjectiveCfg(generator="stargan.32", discriminator="stargan.32", c_dim=8,
                             one_hot_groups=(tuple(range(7)),), dataset="stargan.shapes", label_names=SHAPES_ATTRIBUTES,
                             sample_dataset="stargan.shapes", sample_dataset_kwargs=_SHAPES_DATA),
    "tiny32": ObjectiveCfg(generator="stargan.tiny32", discriminator="stargan.tiny32", c_dim=8,
                           one_hot_groups=(tuple(range(7)),), dataset="stargan.shapes", label_names=SHAPES_ATTRIBUTES,
                           sample_dataset="stargan.shapes", sample_dataset_kwargs=_SHAPES_DATA),
    "emoji32": ObjectiveCfg(generator="stargan.32", discriminator="stargan.32", c_dim=6, cls="ce",
                            one_hot_groups=(), dataset="emoji.tones", label_names=EMOJI_ATTRIBUTES[:6],
                            sample_dataset="emoji.tones", sample_dataset_kwargs={"split": "test", "image_size": 32}),
}

# ---------------------------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------------------------

PAPER = "Choi et al., CVPR 2018, arXiv:1711.09020"

gz.register_generator("stargan", variants=G_VARIANTS, default="128", paper=PAPER)(StarGenerator)
gz.register_discriminator("stargan", variants=D_VARIANTS, default="128", paper=PAPER)(StarDiscriminator)
gz.register_objective("stargan", variants=OBJECTIVE_VARIANTS, default="celeba128", paper=PAPER)(StarganObjective)
# settings tried beyond the paper (a label vector with the shapes, the bottleneck at 16×16) are experiment configs
# now; their checkpoints load as stargan.shapes32 (stargan.32_res16 stays: those checkpoints' configs name it)
gz.register_retired("objective", "stargan.shapes32_with_shape", replacement="stargan.shapes32",
                    note="now an experiment: ganzoo train --config experiments/stargan-with-shape/config.toml "
                         "(stargan.shapes32 with c_dim=12 on stargan.shapes_with_shape)")
gz.register_retired("objective", "stargan.shapes32_res16", replacement="stargan.shapes32",
                    note="now an experiment: ganzoo train --config experiments/stargan-res16/config.toml "
                         "(stargan.shapes32 with generator=stargan.32_res16)")
gz.register_block("stargan.res", cfg=ResidualCfg(), paper=PAPER)(ResidualBlock)
