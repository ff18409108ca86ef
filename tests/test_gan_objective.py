"""ganzoo_core.gan_objective: the G/D objective scaffold (its base config as a family subclasses it, the networks,
loss and phases it builds) and saved configs of subclasses."""

from __future__ import annotations

import attrs
import pytest

import ganzoo_core as gz
from ganzoo_core import validators as v
from ganzoo_core.config import apply_overrides, cfg_from_dict, cfg_to_dict
from ganzoo_core.errors import ConfigError, InputError


@attrs.frozen(kw_only=True)
class _Cfg(gz.GanObjectiveCfg):
    generator: str = "dcgan.28"
    discriminator: str = "dcgan.28"
    loss: str = "gan.lsgan"
    lambda_l1: float = attrs.field(default=100.0, validator=v.non_negative)


def test_subclass_keeps_the_fields_their_defaults_and_checks() -> None:
    cfg = _Cfg()
    assert (cfg.generator, cfg.loss, cfg.lr, cfg.betas, cfg.lambda_l1) == ("dcgan.28", "gan.lsgan", 2e-4, (0.5, 0.999),
                                                                          100.0)
    assert dict(cfg.generator_kwargs) == dict(cfg.loss_kwargs) == {}
    assert {"generator", "discriminator", "generator_kwargs", "discriminator_kwargs", "loss", "loss_kwargs", "lr",
            "betas", "lambda_l1"} == set(cfg_to_dict(cfg))
    with pytest.raises(TypeError):
        gz.GanObjectiveCfg()  # the names have no default: a family gives its own
    with pytest.raises(ConfigError, match="'lr' must be float, got 'fast'"):  # the base's fields are type-checked
        apply_overrides(cfg, {"lr": "fast"})
    with pytest.raises(ConfigError, match="'loss' must be str, got 3"):
        apply_overrides(cfg, {"loss": 3})
    with pytest.raises(ConfigError, match="betas"):
        apply_overrides(cfg, {"betas": (0.5, 1.0)})
    with pytest.raises(ConfigError, match="lr"):
        apply_overrides(cfg, {"lr": -1.0})


def test_saved_configs_round_trip_and_older_ones_without_new_fields_load() -> None:
    cfg = _Cfg(generator_kwargs={"ngf": 8}, loss_kwargs={"real_label": 0.9}, betas=(0.0, 0.99))
    assert cfg_from_dict(_Cfg(), cfg_to_dict(cfg)) == cfg
    saved = {k: val for k, val in cfg_to_dict(cfg).items() if k != "loss_kwargs"}  # saved before the field existed
    assert cfg_from_dict(_Cfg(), saved) == attrs.evolve(cfg, loss_kwargs={})


def test_build_gan_networks_by_name_with_derived_defaults() -> None:
    cfg = _Cfg(generator_kwargs={"ngf": 16})
    nets = gz.build_gan_networks(cfg, generator_defaults={"ngf": 8, "nz": 32}, discriminator_defaults={"ndf": 8})
    assert list(nets) == ["G", "D"]
    assert (nets["G"].cfg.ngf, nets["G"].cfg.nz, nets["D"].cfg.ndf) == (16, 32, 8)  # the config's kwargs win
    assert isinstance(nets["G"], gz.get_generator("dcgan.28")) and isinstance(nets["D"], gz.get_discriminator("dcgan.28"))
    plain = gz.build_gan_networks(_Cfg())
    assert plain["G"].cfg == gz.get_generator_cfg("dcgan.28")
    with pytest.raises(gz.UnknownNameError, match="dcgan.29"):
        gz.build_gan_networks(_Cfg(discriminator="dcgan.29"))


def test_build_gan_loss_passes_its_options() -> None:
    loss = gz.build_gan_loss(_Cfg(loss="gan.bce", loss_kwargs={"real_label": 0.9}))
    assert loss.cfg.real_label == 0.9
    assert type(gz.build_gan_loss(_Cfg())) is gz.get_loss("gan.lsgan")


def test_gan_phases_order_and_learning_rates() -> None:
    cfg = _Cfg(lr=1e-3, betas=(0.0, 0.9))
    d, g = gz.gan_phases(cfg)
    assert (d.name, d.networks, d.lr, d.betas, d.every) == ("D", ("D",), 1e-3, (0.0, 0.9), 1)
    assert (g.name, g.networks, g.lr, g.betas) == ("G", ("G",), 1e-3, (0.0, 0.9))
    assert [(p.name, p.lr) for p in gz.gan_phases(cfg, lr_d=2.5e-4)] == [("D", 2.5e-4), ("G", 1e-3)]
    assert [p.name for p in gz.gan_phases(cfg, order=("G", "D"))] == ["G", "D"]
    assert [p.name for p in gz.gan_phases(cfg, order=("G",))] == ["G"]
    for bad in (("D", "E"), ("G", "G"), ()):
        with pytest.raises(InputError, match=r"order must name each of \('G', 'D'\) at most once"):
            gz.gan_phases(cfg, order=bad)


def test_the_families_build_on_the_scaffold() -> None:
    """The G/D families' objective configs are GanObjectiveCfg subclasses; their objectives get what it builds."""
    for name in ("dcgan.28", "pix2pix.emoji_32", "gan_cls.cls_32", "stackgan.s1_16", "cyclegan.small32"):
        cfg = gz.get_objective_cfg(name)
        assert isinstance(cfg, gz.GanObjectiveCfg), name
        assert cfg_from_dict(cfg, cfg_to_dict(cfg)) == cfg
    objective = gz.create_objective("dcgan.28", lr_d=1e-4, loss="gan.lsgan")
    assert [(p.name, p.lr) for p in objective.phases] == [("D", 1e-4), ("G", 2e-4)]
    assert type(objective.gan_loss) is gz.get_loss("gan.lsgan")
