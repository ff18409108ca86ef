"""Feature extractors for the metrics, registered as ``encoder``s: an image batch in [-1, 1] → ``(B, D)`` features.

Every extractor declares its input protocol (the size it resizes to, its channels, how it normalises) and where its
weights came from; ``evaluate`` writes both into every result, because scores from different extractors, input
protocols or weights are not comparable. All extractors are frozen: parameters do not require gradients and the
module stays in eval mode even when ``train()`` is called (batch-norm statistics never move).

- ``domain.fashion_mnist`` / ``domain.animal_mnist``: small CNN classifiers trained by
  ``scripts/train_domain_classifier.py`` and shipped in ``ganzoo_core/metrics/weights/``; 28×28 grey input,
  128-d features (the globally pooled last conv layer), 10-way head (``probs`` for IS and conditional accuracy).
- ``domain.emoji``: the same network on 32×32 RGB Noto colour emoji (white background), trained on the ``emoji.noto``
  train split to name the CLDR emoji group (8 classes, ``ganzoo_core.data.emoji.CATEGORIES``): the feature space of
  domain FID / KID for emoji image-to-image models (pix2pix line art → colour).
- ``timm.backbone``: any timm model, never downloaded (``pretrained=False``); real weights only from a local file.
- ``fid.inception_v3``: the Inception-v3 network of the FID reference implementation (the 2015-12-05 TensorFlow
  graph as ported to PyTorch by pytorch-fid), with the parameter names of ``pt_inception-2015-12-05-6726825d.pth``.
  Those weights are not shipped and cannot be downloaded by ganzoo: pass the file as ``weights_file``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from torch import Tensor, nn

from ganzoo_core import validators as v
from ganzoo_core._api import SPEC_ATTR
from ganzoo_core._registry import register_encoder
from ganzoo_core.checkpoints import load_into
from ganzoo_core.config import cfg_to_dict
from ganzoo_core.errors import CheckpointError, GanzooError, ShapeError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
SHIPPED = "shipped"  # weights_file value meaning "the file shipped in WEIGHTS_DIR"
RANDOM = "random"  # weights_file value meaning "random init" (create_* drops None overrides, so None cannot say it)
TRAIN_HINT = "train it with '.venv/bin/python scripts/train_domain_classifier.py --dataset {domain}'"


# -- input protocol and weight files -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class InputProtocol:
    """How an extractor turns an image batch in [-1, 1] into network input; written into every result."""

    size: int  # square side the network sees
    channels: int  # 1 or 3
    resize: str  # how other sizes are brought to ``size``
    channel_rule: str  # what happens to inputs with the other channel count
    normalize: str  # what is done to the values after resizing
    value_range: tuple[float, float] = (-1.0, 1.0)  # what the extractor accepts

    def as_dict(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "value_range": list(self.value_range)}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_weights(path: str | Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file, or the state dict of a ``.pt``/``.pth`` file read with
    ``weights_only=True`` (never unpickling code); a ``{"state_dict": ...}`` wrapper and ``module.`` prefixes are
    removed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                return {k: handle.get_tensor(k) for k in handle.keys()}, dict(handle.metadata() or {})
        except (SafetensorError, OSError, ValueError, RuntimeError) as err:  # a truncated, random or foreign file
            raise CheckpointError(f"weights file {str(path)!r} is not a readable safetensors file "
                                  f"({type(err).__name__}: {err})") from err
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for bad zips and disallowed pickles
        raise CheckpointError(f"{str(path)!r} is not a weights-only PyTorch file ({type(err).__name__}: {err}); "
                              "re-save it as a plain state_dict") from err
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(f"{str(path)!r} does not hold a state dict (a mapping of names to tensors)")
    return {k.removeprefix("module."): v for k, v in obj.items()}, {}


def metadata_value(metadata: Mapping[str, str], key: str, path: str | Path, parse: Any = json.loads) -> Any:
    """``parse(metadata[key])`` of a weights file's metadata; a value ganzoo did not write is a ``CheckpointError``."""
    try:
        return parse(metadata[key])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"weights file {str(path)!r}: its metadata {key!r} is {str(metadata[key])[:80]!r}, "
                              f"which ganzoo did not write ({err}); give a file written by ganzoo's training "
                              "scripts") from err


def fill_batch_counts(tensors: Mapping[str, Tensor], expected: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Add the ``num_batches_tracked`` counters a file may lack (older ports, ganzoo's fp16 files) as the network's
    own values; they do not affect eval-mode outputs."""
    out = dict(tensors)
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in out:
            out[key] = value
    return out


# -- the shared extractor behaviour --------------------------------------------------------------------------------


class FeatureExtractor(nn.Module):
    """Frozen network: ``prepare`` (check, channels, resize, normalise) → ``_run`` → (features, logits)."""

    cfg: Any
    embed_dim: int
    num_classes: int  # 0: no classifier head, no ``probs``
    input_protocol: InputProtocol

    def __init__(self) -> None:
        super().__init__()
        self.weights_info: dict[str, Any] = {"kind": "random", "random": True}
        self.register_load_state_dict_post_hook(_note_state_dict_load)

    # -- subclasses implement --
    def _run(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError

    def _normalize(self, x: Tensor) -> Tensor:
        return x

    def _expected_weights(self) -> str:
        """What a weights file for this extractor holds, for error messages."""
        return f"the state dict of this {type(self).__name__}"

    # -- public --
    def train(self, mode: bool = True) -> FeatureExtractor:
        """Always eval mode: a metric's network must not change its batch-norm statistics."""
        return super().train(False)

    def prepare(self, images: Tensor) -> Tensor:
        """Check ``images`` (B, 1 or 3, H, W) in [-1, 1]; match channels, resize and normalise per the protocol."""
        p = self.input_protocol
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ShapeError(f"{self._what()} expects images (B, 1 or 3, H, W), got {tuple(images.shape)}")
        lo, hi = (float(v) for v in torch.aminmax(images.detach()))
        if lo < p.value_range[0] - 0.01 or hi > p.value_range[1] + 0.01:
            raise GanzooError(f"{self._what()} expects images in [-1, 1], got values in [{lo:.3g}, {hi:.3g}]; "
                              "rescale [0, 1] images with x * 2 - 1 and [0, 255] images with x / 127.5 - 1")
        x = images.float()
        if x.shape[1] != p.channels:
            x = x.mean(1, keepdim=True) if p.channels == 1 else x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (p.size, p.size):
            x = self._resize(x, p.size)
        return self._normalize(x)

    def _resize(self, x: Tensor, size: int) -> Tensor:
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)

    def features_and_logits(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """Features (B, embed_dim) and classifier logits (B, num_classes), or None without a head, in one pass."""
        return self._run(self.prepare(images))

    def forward(self, images: Tensor) -> Tensor:
        return self.features_and_logits(images)[0]

    @torch.no_grad()
    def encode(self, batch: Tensor) -> Tensor:
        """Features (B, embed_dim) of an image batch in [-1, 1] (no gradients)."""
        return self.forward(batch)

    @torch.no_grad()
    def probs(self, images: Tensor) -> Tensor:
        """Class probabilities (B, num_classes) for the Inception Score and conditional accuracy."""
        logits = self.features_and_logits(images)[1]
        if logits is None:
            raise GanzooError(f"{self._what()} has no classifier head, so no class probabilities; use an extractor "
                              "with one (domain.*, fid.inception_v3) for IS and conditional accuracy")
        return logits.float().softmax(1)

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor]:
        """Random images in [-1, 1] that require grad (the parameters are frozen; gradients reach the input)."""
        p = self.input_protocol
        return (torch.rand(batch_size, p.channels, p.size, p.size).mul(2).sub(1).requires_grad_(),)

    def output_shapes(self, batch_size: int = 2) -> tuple[int, int]:
        return (batch_size, self.embed_dim)

    def protocol(self) -> dict[str, Any]:
        """Name, config, input protocol and weight provenance: what a result must say about its extractor."""
        spec = getattr(self, SPEC_ATTR, ("encoder", type(self).__name__))
        return {
            "name": spec[1], "config": cfg_to_dict(self.cfg), "embed_dim": self.embed_dim,
            "num_classes": self.num_classes, "input": self.input_protocol.as_dict(), "weights": dict(self.weights_info),
        }

    # -- helpers --
    def _what(self) -> str:
        return f"encoder {getattr(self, SPEC_ATTR, ('', type(self).__name__))[1]!r}"

    def _freeze(self) -> None:
        self.requires_grad_(False)
        self.train(False)

    def _read_file(self, path: str | Path) -> tuple[dict[str, Tensor], dict[str, str]]:
        """``read_weights(path)``; a file that cannot be read also says what this extractor expects."""
        try:
            return read_weights(path)
        except CheckpointError as err:
            raise CheckpointError(f"{err}; {type(self).__name__} expects {self._expected_weights()}") from err

    def _load_file(self, path: str | Path, target: nn.Module | None = None) -> dict[str, str]:
        """Load a weights file strictly into ``target`` (default: self) and record its provenance."""
        path = Path(path)
        tensors, metadata = self._read_file(path)
        target = self if target is None else target
        try:
            load_into(target, fill_batch_counts(tensors, target.state_dict()), path)
        except CheckpointError as err:  # missing or unexpected keys, wrong shapes
            raise CheckpointError(f"{err}; {type(self).__name__} expects {self._expected_weights()}") from err
        self.weights_info = {"kind": "file", "random": False, "path": str(path), "sha256": sha256_of(path)}
        return metadata


def _note_state_dict_load(module: nn.Module, incompatible: Any) -> None:
    """Weights loaded after building (``create_*(..., weights=path)``, ``gz.load``): no longer the random init."""
    if isinstance(module, FeatureExtractor):
        module.weights_info = {"kind": "state_dict", "random": False,
                               "note": "loaded with load_state_dict after building; the file is not recorded"}


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


# -- domain classifiers --------------------------------------------------------------------------------------------


def _widths(count: int) -> Any:
    """attrs validator: ``count`` layer widths, each at least 1."""
    return attrs.validators.deep_iterable(v.size, attrs.validators.and_(
        attrs.validators.min_len(count), attrs.validators.max_len(count)))


@attrs.frozen(kw_only=True)
class DomainCfg:
    domain: str = "fashion_mnist"  # the dataset family it was trained on; names the shipped weights file
    weights_file: str | None = SHIPPED  # "shipped": weights/domain_<domain>.safetensors; a path; "random" (or None)
    widths: tuple[int, int, int, int] = attrs.field(default=(16, 32, 64, 128), converter=tuple,
                                                    validator=_widths(4))  # channels of the four conv layers
    num_classes: int = attrs.field(default=10, validator=attrs.validators.ge(2))
    channels: int = attrs.field(default=1, validator=attrs.validators.in_((1, 3)))  # 1: grey (RGB averaged); 3: RGB
    image_size: int = attrs.field(default=28, validator=attrs.validators.ge(8))  # inputs are resized to this side


def shipped_weights(domain: str) -> Path:
    return WEIGHTS_DIR / f"domain_{domain}.safetensors"


class DomainNet(nn.Module):
    """conv(c→w0) ▸ max-pool ▸ conv(w0→w1) ▸ max-pool ▸ conv(w1→w2) ▸ conv(w2→w3) ▸ global mean ▸ linear."""

    def __init__(self, widths: tuple[int, ...], num_classes: int, channels: int = 1) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        self.body = nn.Sequential(  # S×S input (28 or 32)
            _conv_bn_relu(channels, w0), nn.MaxPool2d(2),  # (B, w0, S/2, S/2)
            _conv_bn_relu(w0, w1), nn.MaxPool2d(2),  # (B, w1, S/4, S/4)
            _conv_bn_relu(w1, w2), _conv_bn_relu(w2, w3),  # (B, w3, S/4, S/4)
        )
        self.head = nn.Linear(w3, num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.body(x).mean((2, 3))  # (B, w3)
        return features, self.head(features)


DOMAIN_VARIANTS = {
    "fashion_mnist": DomainCfg(domain="fashion_mnist"),
    "animal_mnist": DomainCfg(domain="animal_mnist"),
    "emoji": DomainCfg(domain="emoji", channels=3, image_size=32, widths=(32, 64, 128, 128), num_classes=8),
}


@register_encoder("domain", variants=DOMAIN_VARIANTS)
class DomainClassifier(FeatureExtractor):
    """Small CNN classifier of one image domain (shipped weights); 128-d features for FID/KID/PR, probs for IS."""

    def __init__(self, cfg: DomainCfg = DomainCfg()) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed_dim, self.num_classes = cfg.widths[-1], cfg.num_classes
        self.input_protocol = InputProtocol(
            size=cfg.image_size, channels=cfg.channels,
            resize="bilinear, antialiased, align_corners=False (as the datasets resize)",
            channel_rule="RGB → mean of the three channels" if cfg.channels == 1 else "grey → replicated to RGB",
            normalize="none: the network takes [-1, 1]",
        )
        self.net = DomainNet(cfg.widths, cfg.num_classes, cfg.channels)
        self.trained_accuracy: float | None = None  # test accuracy recorded in the weights file
        if cfg.weights_file not in (None, RANDOM):
            self._load_domain_weights(cfg.weights_file)
        self._freeze()

    def _load_domain_weights(self, weights: str) -> None:
        path = shipped_weights(self.cfg.domain) if weights == SHIPPED else Path(weights)
        if not path.is_file():
            hint = TRAIN_HINT.format(domain=self.cfg.domain)
            raise GanzooError(f"domain classifier weights {str(path)!r} are missing; {hint}, or pass "
                              "weights_file='random' for an untrained network")
        metadata = self._load_file(path)
        if weights == SHIPPED:
            self.weights_info["path"] = f"ganzoo_core/metrics/weights/{path.name} (shipped)"
        if "test_accuracy" in metadata:
            self.trained_accuracy = metadata_value(metadata, "test_accuracy", path, float)
            self.weights_info["test_accuracy"] = self.trained_accuracy

    def _expected_weights(self) -> str:
        c = self.cfg
        return (f"a {c.domain} domain classifier (widths {c.widths}, {c.num_classes} classes, {c.channels} input "
                f"channel(s)) as {TRAIN_HINT.format(domain=c.domain).removeprefix('train it with ')} writes it")

    def _run(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.net(x)


# -- any timm model ------------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class TimmCfg:
    model: str = "resnet18"  # any timm model name; built with pretrained=False (never downloads)
    weights_file: str | None = None  # a local timm state dict (.safetensors / .pth); None or "random": random init
    image_size: int | None = attrs.field(default=None, validator=v.optional(attrs.validators.ge(8)))  # None: the
    # model's default input size
    num_classes: int | None = attrs.field(default=None, validator=v.optional(v.non_negative))  # None: timm's default head; 0: no
    # head (no probs)


@register_encoder("timm.backbone", cfg=TimmCfg())
class TimmBackbone(FeatureExtractor):
    """A timm model's pooled pre-logit features (random weights unless weights_file is given: then FID is meaningless)."""

    mean: Tensor
    std: Tensor

    def __init__(self, cfg: TimmCfg = TimmCfg()) -> None:
        super().__init__()
        try:
            import timm
        except ImportError:
            raise GanzooError("timm.backbone needs timm; install it with 'pip install timm'") from None
        self.cfg = cfg
        extra: dict[str, Any] = {} if cfg.num_classes is None else {"num_classes": cfg.num_classes}
        try:
            model: Any = timm.create_model(cfg.model, pretrained=False, **extra)
        except RuntimeError as err:  # timm's "Unknown model"
            raise GanzooError(f"timm cannot build {cfg.model!r} ({err}); see timm.list_models()") from err
        self.model = model
        pretrained = dict(getattr(model, "pretrained_cfg", None) or {})
        size = cfg.image_size or int(pretrained.get("input_size", (3, 224, 224))[-1])
        mean, std = tuple(pretrained.get("mean", (0.5, 0.5, 0.5))), tuple(pretrained.get("std", (0.5, 0.5, 0.5)))
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        self.embed_dim = int(getattr(model, "head_hidden_size", None) or model.num_features)
        self.num_classes = int(getattr(model, "num_classes", 0) or 0)
        self.input_protocol = InputProtocol(
            size=size, channels=3, resize="bilinear, antialiased, align_corners=False",
            channel_rule="grey → repeated to RGB",
            normalize=f"(x + 1) / 2, then (x - mean) / std with mean {list(mean)} and std {list(std)}",
        )
        if cfg.weights_file not in (None, RANDOM):
            self._load_file(cfg.weights_file, target=self.model)
        self._freeze()

    def _normalize(self, x: Tensor) -> Tensor:
        return ((x + 1) / 2 - self.mean) / self.std

    def _expected_weights(self) -> str:
        head = "timm's default head" if self.cfg.num_classes is None else f"num_classes={self.cfg.num_classes}"
        return f"a state dict of timm model {self.cfg.model!r} ({head})"

    def _run(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        model: Any = self.model
        trunk = model.forward_features(x)
        features = model.forward_head(trunk, pre_logits=True)  # the model's own global pool
        return features, (model.forward_head(trunk) if self.num_classes else None)


# -- the FID Inception-v3 ------------------------------------------------------------------------------------------
# Names and shapes follow torchvision's Inception3 (which pt_inception-2015-12-05 was saved from) without AuxLogits,
# with a 1008-way fc. The FID graph differs from torchvision's network only in its pooling branches: average pools
# leave the padding out of the mean (count_include_pad=False) in Mixed_5b-d, 6b-e and 7b, and Mixed_7c max-pools.


class BasicConv2d(nn.Module):
    """Conv (no bias) ▸ batch norm (eps 0.001, as TensorFlow's) ▸ ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def pool_3x3(x: Tensor, kind: str) -> Tensor:
    """The 3×3, stride-1 pooling in front of a block's ``branch_pool`` conv, as in the FID graph."""
    if kind == "max":
        return F.max_pool2d(x, 3, stride=1, padding=1)
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """Mixed_5b-d (35×35): 1×1 | 1×1▸5×5 | 1×1▸3×3▸3×3 | pool▸1×1 → 224 + pool_features channels."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)
        self.pool_kind = "avg"

    def forward(self, x: Tensor) -> Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(pool_3x3(x, self.pool_kind))], 1)


class InceptionB(nn.Module):
    """Mixed_6a (35→17): 3×3/2 | 1×1▸3×3▸3×3/2 | max-pool/2 → 480 + cin channels."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionC(nn.Module):
    """Mixed_6b-e (17×17): factorised 7×7 convolutions with c7 inner channels → 768 channels."""

    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)
        self.pool_kind = "avg"

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for conv in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                     self.branch7x7dbl_5):
            d = conv(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(pool_3x3(x, self.pool_kind))], 1)


class InceptionD(nn.Module):
    """Mixed_7a (17→8): 1×1▸3×3/2 | 1×1▸1×7▸7×1▸3×3/2 | max-pool/2 → 512 + cin channels."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    """Mixed_7b/7c (8×8): 1×1 | 1×1▸(1×3, 3×1) | 1×1▸3×3▸(1×3, 3×1) | pool▸1×1 → 2048 channels."""

    def __init__(self, cin: int, pool_kind: str) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)
        self.pool_kind = pool_kind  # "avg" in Mixed_7b (E_1), "max" in Mixed_7c (E_2)

    def forward(self, x: Tensor) -> Tensor:
        s = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(s), self.branch3x3_2b(s)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(pool_3x3(x, self.pool_kind))], 1)


@attrs.frozen(kw_only=True)
class InceptionCfg:
    weights_file: str | None = None  # a local pt_inception-2015-12-05-6726825d.pth; None / "random": random init


@register_encoder("fid.inception_v3", cfg=InceptionCfg(), paper="Heusel et al. 2017, arXiv:1706.08500")
class FidInceptionV3(FeatureExtractor):
    """The FID Inception-v3 (2015-12-05 graph, pytorch-fid layout): 2048-d pool3 features, 1008-way logits for IS."""

    def __init__(self, cfg: InceptionCfg = InceptionCfg()) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed_dim, self.num_classes = 2048, 1008
        self.input_protocol = InputProtocol(
            size=299, channels=3, resize="bilinear, align_corners=False, no antialiasing (as pytorch-fid)",
            channel_rule="grey → repeated to RGB", normalize="none: the graph takes [-1, 1]",
        )
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)  # (B, 32, 149, 149)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)  # (B, 32, 147, 147)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)  # (B, 64, 147, 147) ▸ max-pool → 73×73
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)  # (B, 192, 71, 71) ▸ max-pool → 35×35
        self.Mixed_5b = InceptionA(192, pool_features=32)  # (B, 256, 35, 35)
        self.Mixed_5c = InceptionA(256, pool_features=64)  # (B, 288, 35, 35)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)  # (B, 768, 17, 17)
        self.Mixed_6b = InceptionC(768, c7=128)
        self.Mixed_6c = InceptionC(768, c7=160)
        self.Mixed_6d = InceptionC(768, c7=160)
        self.Mixed_6e = InceptionC(768, c7=192)
        self.Mixed_7a = InceptionD(768)  # (B, 1280, 8, 8)
        self.Mixed_7b = InceptionE(1280, pool_kind="avg")  # (B, 2048, 8, 8)
        self.Mixed_7c = InceptionE(2048, pool_kind="max")
        self.fc = nn.Linear(2048, 1008)
        self._init_random()
        if cfg.weights_file not in (None, RANDOM):
            self._load_file(cfg.weights_file)
        self._freeze()

    def _init_random(self) -> None:
        """He init keeps activations finite through 94 random conv layers (eval-mode batch norm is the identity)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)

    def _resize(self, x: Tensor, size: int) -> Tensor:
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)

    def _expected_weights(self) -> str:
        return "pytorch-fid's pt_inception-2015-12-05-6726825d.pth (the FID Inception-v3 weights)"

    def _run(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, stride=2)))
        x = F.max_pool2d(x, 3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        pool3 = x.mean((2, 3))  # (B, 2048)
        return pool3, F.linear(pool3, self.fc.weight)  # IS logits without the bias, as the original IS code

    def logits(self, images: Tensor) -> Tensor:
        """The graph's full 1008-way logits (with the fc bias); ``probs`` uses the bias-free ones of the IS code."""
        return self.fc(self.features_and_logits(images)[0])


__all__ = [
    "RANDOM", "SHIPPED", "WEIGHTS_DIR", "DomainCfg", "DomainClassifier", "DomainNet", "FeatureExtractor", "FidInceptionV3",
    "InceptionCfg", "InputProtocol", "TimmBackbone", "TimmCfg", "fill_batch_counts", "metadata_value", "read_weights",
    "sha256_of", "shipped_weights",
]
