"""The set-up most GAN objectives share: a generator and a discriminator built by name, an adversarial loss by name,
and one Adam phase per network. The training step itself stays in the objective::

    @attrs.frozen(kw_only=True)
    class ObjectiveCfg(gz.GanObjectiveCfg):
        generator: str = "mygan.64"  # the names have no default in the base: every family gives its own
        discriminator: str = "mygan.64"
        lambda_l1: float = attrs.field(default=100.0, validator=v.non_negative)  # the family's own fields

    class MyObjective(nn.Module):
        def __init__(self, cfg: ObjectiveCfg = ObjectiveCfg()) -> None:
            super().__init__()
            self.cfg = cfg
            self.networks = gz.build_gan_networks(cfg)  # {"G": ..., "D": ...}
            self.gan_loss = gz.build_gan_loss(cfg)
            self.phases = gz.gan_phases(cfg)  # a D step, then a G step

A family whose objective differs (four networks, learning rates of its own) takes what fits: ``build_gan_networks``
reads any config with the four network fields (``GanNetworksSpec``).
"""

# No ``from __future__ import annotations`` here: the fields' annotations are objects, not strings, so the core's
# type checks of a plugin's subclass (``ganzoo_core.config``) resolve them without the plugin module's imports.

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs
from torch import nn

from ganzoo_core import validators as v
from ganzoo_core._api import create_discriminator, create_generator, create_loss
from ganzoo_core.errors import InputError
from ganzoo_core.interfaces import Loss, Phase

ROLES = ("G", "D")  # the keys of the networks build_gan_networks makes, and the phases gan_phases can make


class GanNetworksSpec(Protocol):
    """What ``build_gan_networks`` reads from a config: the two networks' registry names and their overrides."""

    @property
    def generator(self) -> str: ...

    @property
    def discriminator(self) -> str: ...

    @property
    def generator_kwargs(self) -> Mapping[str, Any]: ...

    @property
    def discriminator_kwargs(self) -> Mapping[str, Any]: ...


@attrs.frozen(kw_only=True)
class GanObjectiveCfg:
    """The fields every G/D objective config has; a family's ``ObjectiveCfg`` subclasses it, gives ``generator`` and
    ``discriminator`` their defaults (and ``loss``, ``lr`` or ``betas`` other ones where its paper does), and adds
    its own fields. Saved configs hold these fields under the same names as the family's own."""

    generator: str  # registry names, built with gz.create_generator / create_discriminator: swap a network by name
    discriminator: str
    generator_kwargs: Mapping[str, Any] = attrs.field(factory=dict, converter=dict, hash=False)  # overrides of G's cfg
    discriminator_kwargs: Mapping[str, Any] = attrs.field(factory=dict, converter=dict, hash=False)
    loss: str = "gan.bce"  # any registered loss (gan.lsgan, gan.hinge, ...)
    loss_kwargs: Mapping[str, Any] = attrs.field(factory=dict, converter=dict, hash=False)  # {"real_label": 0.9}
    lr: float = attrs.field(default=2e-4, validator=v.positive)  # Adam, both networks (DCGAN's, kept by most papers)
    betas: tuple[float, float] = attrs.field(default=(0.5, 0.999), converter=tuple, validator=v.betas)


def build_gan_networks(cfg: GanNetworksSpec, *, generator_defaults: Mapping[str, Any] | None = None,
                       discriminator_defaults: Mapping[str, Any] | None = None) -> nn.ModuleDict:
    """``{"G": generator, "D": discriminator}`` built by name from ``cfg``. ``*_defaults``: options the objective
    derives (the text size, the label count), given to the network under the config's ``*_kwargs``, which win."""
    return nn.ModuleDict({
        "G": create_generator(cfg.generator, **{**(generator_defaults or {}), **cfg.generator_kwargs}),
        "D": create_discriminator(cfg.discriminator, **{**(discriminator_defaults or {}), **cfg.discriminator_kwargs}),
    })


def build_gan_loss(cfg: GanObjectiveCfg) -> Loss:
    """The adversarial loss ``cfg.loss`` with ``cfg.loss_kwargs``: the ``d_real`` / ``d_fake`` / ``g_fake`` terms."""
    return create_loss(cfg.loss, **cfg.loss_kwargs)


def gan_phases(cfg: GanObjectiveCfg, *, order: Sequence[str] = ("D", "G"), lr_d: float | None = None
               ) -> tuple[Phase, ...]:
    """One Adam phase per network of ``order`` ("D" updates ``networks["D"]``, "G" ``networks["G"]``), in that order,
    each every step, with ``cfg.lr`` and ``cfg.betas``; ``lr_d``: D's own learning rate (None: ``cfg.lr``)."""
    unknown = [name for name in order if name not in ROLES]
    if unknown or len(set(order)) != len(order) or not order:
        raise InputError(f"gan_phases: order must name each of {ROLES} at most once, got {tuple(order)}")
    lrs = {"G": cfg.lr, "D": cfg.lr if lr_d is None else lr_d}
    return tuple(Phase(name=name, networks=(name,), lr=lrs[name], betas=cfg.betas) for name in order)


def load_generator_weights(objective: nn.Module, path: str | Path) -> nn.Module:
    """Load a generator's weights file into ``objective``: a ganzoo checkpoint, a state dict, or a released file a
    plugin converts (read as ``load_weights`` reads it). By default the file goes into ``networks["G"]``; an objective
    whose generator is more than that network overrides this with a method of its own,
    ``load_generator_weights(path)`` (a two-stage family, say, also loads its frozen first stage from the file).
    ``ganzoo sample FILE --objective NAME`` calls this. Returns the objective."""
    own = getattr(objective, "load_generator_weights", None)
    if callable(own):
        own(path)
        return objective
    networks = getattr(objective, "networks", None)
    if not isinstance(networks, nn.ModuleDict) or "G" not in networks:
        roles = list(networks) if isinstance(networks, nn.ModuleDict) else []
        raise InputError(f"{type(objective).__name__} has no generator networks['G'] (its networks: {roles}) to load "
                         f"{str(path)!r} into; pick an objective with a generator")
    from ganzoo_core.checkpoints import load_weights  # late: checkpoints imports the registry

    load_weights(networks["G"], path)
    return objective


__all__ = ["ROLES", "GanNetworksSpec", "GanObjectiveCfg", "build_gan_loss", "build_gan_networks", "gan_phases",
           "load_generator_weights"]
