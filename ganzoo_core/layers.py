"""Layers chosen by name: activations and normalisations from tables, and the GAN papers' weight init."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from torch import nn

from ganzoo_core.errors import UnknownNameError

LayerType = str | type[nn.Module] | Callable[..., nn.Module] | None

_ACTS: dict[str, Callable[..., nn.Module]] = {
    "relu": nn.ReLU,
    "lrelu": lambda slope=0.2, **kw: nn.LeakyReLU(slope, **kw),  # every GAN here uses 0.2 unless it says 0.01
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "identity": nn.Identity,
}

_NORMS: dict[str, Callable[..., nn.Module]] = {
    "batch": nn.BatchNorm2d,
    "batch1d": nn.BatchNorm1d,
    "instance": nn.InstanceNorm2d,  # affine=False, no running stats: the CycleGAN / pix2pix default
    "instance_affine": lambda c, **kw: nn.InstanceNorm2d(c, affine=True, track_running_stats=True, **kw),  # StarGAN
    "group": lambda c, groups=32, **kw: nn.GroupNorm(groups, c, **kw),
    "identity": lambda c, **kw: nn.Identity(),
}


def _lookup(table: dict[str, Callable[..., nn.Module]], name: str, what: str) -> Callable[..., nn.Module]:
    try:
        return table[name]
    except KeyError:
        close = difflib.get_close_matches(name, table, n=3)
        raise UnknownNameError(name, what, close, f"valid: {', '.join(sorted(table))}") from None


def get_act(name: LayerType) -> Callable[..., nn.Module]:
    """The activation class or constructor for ``name`` (a table name, a class, or a callable)."""
    if name is None:
        return nn.Identity
    return _lookup(_ACTS, name, "activation") if isinstance(name, str) else name


def create_act(name: LayerType, **kwargs: Any) -> nn.Module:
    """An activation module by name (``"relu"``, ``"lrelu"``, ...), class or callable; None gives Identity."""
    return get_act(name)(**kwargs)


def get_norm(name: LayerType) -> Callable[..., nn.Module]:
    """The normalisation class or constructor for ``name``; it takes the number of channels first."""
    if name is None:
        return _NORMS["identity"]
    return _lookup(_NORMS, name, "normalisation") if isinstance(name, str) else name


def create_norm(name: LayerType, num_features: int, **kwargs: Any) -> nn.Module:
    """A normalisation module over ``num_features`` channels by name (``"batch"``, ``"instance"``, ...)."""
    return get_norm(name)(num_features, **kwargs)


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
