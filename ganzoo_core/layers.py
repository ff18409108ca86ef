"""Layers chosen by name: activations and normalisations from tables, norm + activation pairs (fused into one
``norm_act`` op where the op has the pair), and the GAN papers' weight init."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from ganzoo_core.errors import InputError, UnknownNameError

if TYPE_CHECKING:
    from ganzoo_core.ops.norm_act import BatchNormAct2d, InstanceNormAct2d

LayerType = str | type[nn.Module] | Callable[..., nn.Module] | None

LRELU_SLOPE = 0.2  # LeakyReLU's negative slope in every GAN here unless its config says otherwise (StarGAN: 0.01)


@attrs.frozen
class _ActSpec:
    """One row of the activation table: how to build it, and what the fused ops call it."""

    make: Callable[..., nn.Module]
    fused: str | None = None  # its name in ``ganzoo_core.ops`` (``norm_act``, ``bias_act``); None: not there
    alpha: float | None = None  # its parameter's default (LeakyReLU's slope); None: it has none
    param: str | None = None  # the keyword ``make`` takes that parameter as


@attrs.frozen
class _NormSpec:
    """One row of the normalisation table: how to build it over C channels, and its fused form."""

    make: Callable[..., nn.Module]  # takes the number of channels first
    fused: str | None = None  # the ``norm_act`` kind with the same parameters and buffers; None: no fused form
    options: Mapping[str, Any] = attrs.field(factory=dict)  # constructor arguments of both forms


_ACTS: dict[str, _ActSpec] = {
    "relu": _ActSpec(nn.ReLU, "relu"),
    "lrelu": _ActSpec(lambda slope=LRELU_SLOPE, **kw: nn.LeakyReLU(slope, **kw), "lrelu", LRELU_SLOPE, "slope"),
    "tanh": _ActSpec(nn.Tanh, "tanh"),
    "sigmoid": _ActSpec(nn.Sigmoid, "sigmoid"),
    "silu": _ActSpec(nn.SiLU, "silu"),
    "gelu": _ActSpec(nn.GELU),
    "identity": _ActSpec(nn.Identity, "linear"),
}

_NORMS: dict[str, _NormSpec] = {
    "batch": _NormSpec(nn.BatchNorm2d, "batch"),
    "batch1d": _NormSpec(nn.BatchNorm1d),
    "instance": _NormSpec(nn.InstanceNorm2d, "instance"),  # affine=False, no running stats: CycleGAN / pix2pix
    # StarGAN's: affine, with running statistics
    "instance_affine": _NormSpec(nn.InstanceNorm2d, "instance", {"affine": True, "track_running_stats": True}),
    "group": _NormSpec(lambda c, groups=32, **kw: nn.GroupNorm(groups, c, **kw)),
    "identity": _NormSpec(lambda c, **kw: nn.Identity()),
}


def _lookup(table: Mapping[str, Any], name: str, what: str) -> Any:
    try:
        return table[name]
    except KeyError:
        close = difflib.get_close_matches(name, table, n=3)
        raise UnknownNameError(name, what, close, f"valid: {', '.join(sorted(table))}") from None


def get_act(name: LayerType) -> Callable[..., nn.Module]:
    """The activation class or constructor for ``name`` (a table name, a class, or a callable)."""
    if name is None:
        return nn.Identity
    return _lookup(_ACTS, name, "activation").make if isinstance(name, str) else name


def create_act(name: LayerType, **kwargs: Any) -> nn.Module:
    """An activation module by name (``"relu"``, ``"lrelu"``, ...), class or callable; None gives Identity."""
    return get_act(name)(**kwargs)


def default_alpha(act: str | None) -> float | None:
    """The default parameter of activation ``act`` (``"lrelu"``: its slope, 0.2), None for one without a parameter."""
    return None if act is None else _lookup(_ACTS, act, "activation").alpha


def get_norm(name: LayerType) -> Callable[..., nn.Module]:
    """The normalisation class or constructor for ``name``; it takes the number of channels first."""
    if name is None:
        return _NORMS["identity"].make
    if not isinstance(name, str):
        return name
    spec = _lookup(_NORMS, name, "normalisation")
    return functools.partial(spec.make, **spec.options) if spec.options else spec.make


def create_norm(name: LayerType, num_features: int, **kwargs: Any) -> nn.Module:
    """A normalisation module over ``num_features`` channels by name (``"batch"``, ``"instance"``, ...)."""
    return get_norm(name)(num_features, **kwargs)


def _fusable(norm: str, act: str | None) -> bool:
    """Whether the ``norm_act`` op has the pair: a table norm with a fused form (batch, instance, instance_affine)
    and a table activation it has (relu, lrelu, tanh, sigmoid, silu, identity) or None."""
    spec = _NORMS.get(norm)
    return spec is not None and spec.fused is not None and (act is None or _lookup(_ACTS, act, "activation").fused
                                                             is not None)


def create_fused_norm_act(norm: str, channels: int, act: str | None = None, *, alpha: float | None = None,
                          impl: str = "auto") -> BatchNormAct2d | InstanceNormAct2d:
    """One ``BatchNormAct2d`` / ``InstanceNormAct2d`` computing ``norm`` over ``channels`` and then ``act`` (None: no
    activation) in one ``norm_act`` op, with the parameter and buffer names of the plain norm (``weight``, ``bias``,
    ``running_mean``, ...). ``alpha``: the activation's parameter, by default the table's (lrelu: 0.2). A pair
    without a fused form is an ``UnknownNameError``."""
    from ganzoo_core.ops.norm_act import BatchNormAct2d, InstanceNormAct2d  # not at import: ops register op entries

    norm_spec = _lookup(_NORMS, norm, "normalisation")
    if norm_spec.fused is None:
        fused = sorted(k for k, s in _NORMS.items() if s.fused is not None)
        raise UnknownNameError(norm, "fused normalisation", difflib.get_close_matches(norm, fused, n=3),
                               f"norm_act fuses {', '.join(fused)}; use create_norm_act for the two-module form")
    act_name = "identity" if act is None else act
    act_spec = _lookup(_ACTS, act_name, "activation")
    if act_spec.fused is None:
        fused = sorted(k for k, s in _ACTS.items() if s.fused is not None)
        raise UnknownNameError(act_name, "fused activation", difflib.get_close_matches(act_name, fused, n=3),
                               f"norm_act fuses {', '.join(fused)}; use create_norm_act for the two-module form")
    if alpha is not None and act_spec.alpha is None:
        raise InputError(f"alpha={alpha} is an activation parameter (lrelu's slope), but activation {act_name!r} "
                         "takes none; leave alpha=None")
    cls = BatchNormAct2d if norm_spec.fused == "batch" else InstanceNormAct2d
    return cls(channels, act=act_spec.fused, alpha=act_spec.alpha if alpha is None else alpha, impl=impl,
               **norm_spec.options)


def create_norm_act(norm: LayerType, channels: int, act: LayerType, *, alpha: float | None = None,
                    after: nn.Module | None = None, impl: str = "auto") -> list[nn.Module]:
    """Norm over ``channels`` then activation ``act``, as the slots of an ``nn.Sequential`` (splat the list in).

    - A pair the ``norm_act`` op has (batch / instance / instance_affine with relu, lrelu, tanh, sigmoid, silu or
      identity): ``[BatchNormAct2d | InstanceNormAct2d, after or nn.Identity()]``. The fused module keeps the norm's
      parameter and buffer names, and the second slot holds the activation's index, so state-dict keys stay those
      of the two-module reference layouts (``main.1.weight``, ``main.4.weight``, ...).
    - ``act=None`` with such a norm: ``[fused norm without activation]`` alone, one slot (a residual block's last norm).
    - Any other pair: ``[create_norm(norm, channels), create_act(act)]``, or with ``after``
      ``[create_norm(...), nn.Sequential(create_act(act), after)]``: two slots either way, so the layers after it
      keep their indices whichever norm is chosen; ``act=None``: ``[create_norm(norm, channels)]``.

    ``alpha``: the activation's parameter (lrelu's slope), by default the activation table's (0.2). ``after``: a
    module (a Dropout) that follows the activation, in the fused form in the activation's slot. ``impl``: the
    ``norm_act`` implementation of the fused module (``"auto"``, ``"ref"``, ...)."""
    if act is None and after is not None:
        raise InputError(f"create_norm_act: after={type(after).__name__} takes the activation's slot, but act=None "
                         "has no slot; append it yourself")
    if isinstance(norm, str) and (act is None or isinstance(act, str)) and _fusable(norm, act):
        fused = create_fused_norm_act(norm, channels, act, alpha=alpha, impl=impl)
        return [fused] if act is None else [fused, after if after is not None else nn.Identity()]
    layers: list[nn.Module] = [create_norm(norm, channels)]
    if act is None:
        return layers
    if alpha is None:
        layers.append(create_act(act))
    else:
        param = _lookup(_ACTS, act, "activation").param if isinstance(act, str) else None
        if param is None:
            raise InputError(f"alpha={alpha} is an activation parameter (lrelu's slope), but activation {act!r} "
                             "takes none here; leave alpha=None")
        layers.append(create_act(act, **{param: alpha}))
    return layers if after is None else [layers[0], nn.Sequential(layers[1], after)]


class ReflectionPad2d(nn.ReflectionPad2d):
    """``nn.ReflectionPad2d`` that pads in its input's dtype under autocast: the same module, state and output.

    CPU autocast runs ``reflection_pad2d`` in fp32, so in a bf16 network every padded activation is copied to fp32
    and back to bf16 by the convolution after it (two more copies in the backward; CycleGAN's ResNet generator pads
    before 24 convolutions). A pad only copies values, so the output has the same bits as padding in fp32 and
    casting; in the backward the edge gradients that sum reflected terms are summed in bf16 (within bf16 rounding of
    autocast's fp32 sum). Without autocast this is ``nn.ReflectionPad2d.forward``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return F.pad(x, self.padding, "reflect")
        return super().forward(x)


def init_normal_(module: nn.Module, std: float = 0.02) -> nn.Module:
    """The DCGAN-paper init, used by most GANs here: conv/linear weights N(0, std), biases 0, norm weights N(1, std).

    Norm layers without affine parameters (InstanceNorm's default) are left alone.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return module


def list_acts() -> list[str]:
    return sorted(_ACTS)


def list_norms() -> list[str]:
    return sorted(_NORMS)
