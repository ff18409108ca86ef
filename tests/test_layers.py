"""ganzoo_core.layers: the activation and norm tables, and create_norm_act's fused and two-module forms (state-dict
names of the reference layouts, the same function as norm then activation, the table's activation parameters)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import ganzoo_core as gz
from ganzoo_core.errors import InputError, UnknownNameError
from ganzoo_core.layers import LRELU_SLOPE, list_acts, list_norms
from ganzoo_core.ops import BatchNormAct2d, InstanceNormAct2d

FUSED_NORMS = ("batch", "instance", "instance_affine")
FUSED_ACTS = ("relu", "lrelu", "tanh", "sigmoid", "silu", "identity")


def _two_modules(norm: str, channels: int, act: str) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), gz.create_norm(norm, channels), gz.create_act(act),
                         nn.Conv2d(channels, 2, 1))


def _randomise_(module: nn.Module) -> None:
    """Non-trivial affine parameters and running statistics, so a mix-up of any two shows in the outputs."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=gen) + (0.5 if "var" in name or "weight" in name else -0.5))


@pytest.mark.parametrize("norm", FUSED_NORMS)
@pytest.mark.parametrize("act", FUSED_ACTS)
def test_fused_pair_keeps_the_two_module_layout_and_function(norm: str, act: str) -> None:
    torch.manual_seed(0)
    fused = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), *gz.create_norm_act(norm, 6, act, impl="ref"),
                          nn.Conv2d(6, 2, 1))
    plain = _two_modules(norm, 6, act)
    assert isinstance(fused[1], BatchNormAct2d if norm == "batch" else InstanceNormAct2d)
    assert isinstance(fused[2], nn.Identity) and fused[1].impl == "ref"
    assert list(fused.state_dict()) == list(plain.state_dict())  # "1.weight", "1.running_mean", "3.weight", ...
    _randomise_(plain)
    fused.load_state_dict(plain.state_dict())
    x = torch.randn(4, 3, 5, 5)
    for mode in (True, False):
        fused.train(mode), plain.train(mode)
        assert torch.allclose(fused(x), plain(x), atol=1e-6), (norm, act, mode)
    assert all(torch.equal(a, b) for a, b in zip(fused.state_dict().values(), plain.state_dict().values()))


def test_act_none_is_the_norm_alone() -> None:
    (fused,) = gz.create_norm_act("instance", 4, None)  # CycleGAN's residual block: one slot, no activation
    assert isinstance(fused, InstanceNormAct2d) and fused.act == "linear" and fused.alpha is None
    assert not fused.affine and not fused.track_running_stats
    (plain,) = gz.create_norm_act("group", 64, None)
    assert type(plain) is nn.GroupNorm
    with pytest.raises(InputError, match="after=Dropout.*act=None"):
        gz.create_norm_act("batch", 4, None, after=nn.Dropout(0.5))


def test_alpha_comes_from_the_activation_table() -> None:
    assert gz.default_alpha("lrelu") == LRELU_SLOPE == 0.2
    assert gz.default_alpha("relu") is None and gz.default_alpha(None) is None
    assert gz.create_act("lrelu").negative_slope == LRELU_SLOPE
    fused, _ = gz.create_norm_act("batch", 4, "lrelu")
    assert (fused.act, fused.alpha) == ("lrelu", 0.2)
    assert gz.create_fused_norm_act("instance_affine", 4, "lrelu", alpha=0.01).alpha == 0.01
    assert gz.create_fused_norm_act("batch", 4, "relu").alpha is None
    _, slope = gz.create_norm_act("group", 64, "lrelu", alpha=0.1)
    assert isinstance(slope, nn.LeakyReLU) and slope.negative_slope == 0.1
    _, default = gz.create_norm_act("group", 64, "lrelu")
    assert default.negative_slope == 0.2
    with pytest.raises(InputError, match="alpha=0.1 .*'relu' takes none"):
        gz.create_norm_act("batch", 4, "relu", alpha=0.1)
    with pytest.raises(InputError, match="alpha=0.1 .*'gelu' takes none"):
        gz.create_norm_act("batch", 4, "gelu", alpha=0.1)
    with pytest.raises(UnknownNameError, match="'lrleu'; did you mean 'lrelu'"):
        gz.default_alpha("lrleu")


def test_after_takes_the_activation_slot() -> None:
    drop = nn.Dropout(0.5)
    fused, slot = gz.create_norm_act("batch", 4, "relu", after=drop)  # pix2pix's decoder dropout
    assert isinstance(fused, BatchNormAct2d) and slot is drop
    norm, slot = gz.create_norm_act("group", 64, "relu", after=drop)  # unfused: still two slots, so the layers
    assert isinstance(norm, nn.GroupNorm) and [type(m) for m in slot] == [nn.ReLU, nn.Dropout]  # after keep their index
    x = torch.randn(2, 64, 4, 4)
    torch.testing.assert_close(nn.Sequential(norm, slot).eval()(x), torch.relu(norm(x)))


def test_other_pairs_are_two_modules() -> None:
    assert [type(m) for m in gz.create_norm_act("batch", 4, "gelu")] == [nn.BatchNorm2d, nn.GELU]
    assert [type(m) for m in gz.create_norm_act("identity", 4, "relu")] == [nn.Identity, nn.ReLU]
    assert [type(m) for m in gz.create_norm_act("batch1d", 4, "relu")] == [nn.BatchNorm1d, nn.ReLU]
    assert [type(m) for m in gz.create_norm_act("batch", 4, nn.SiLU)] == [nn.BatchNorm2d, nn.SiLU]  # a class
    with pytest.raises(UnknownNameError, match="unknown normalisation 'btach'"):
        gz.create_norm_act("btach", 4, "relu")
    with pytest.raises(UnknownNameError, match="unknown activation 'rleu'"):
        gz.create_norm_act("batch", 4, "rleu")


def test_fused_norm_act_refuses_pairs_without_a_fused_form() -> None:
    with pytest.raises(UnknownNameError, match="fused normalisation 'group'.*batch, instance, instance_affine"):
        gz.create_fused_norm_act("group", 64, "relu")
    with pytest.raises(UnknownNameError, match="fused activation 'gelu'"):
        gz.create_fused_norm_act("batch", 4, "gelu")
    star = gz.create_fused_norm_act("instance_affine", 4, "relu")  # StarGAN's: affine, running statistics kept
    assert star.affine and star.track_running_stats and isinstance(star, InstanceNormAct2d)


def test_tables() -> None:
    assert {"relu", "lrelu", "tanh", "sigmoid", "silu", "gelu", "identity"} <= set(list_acts())
    assert {"batch", "batch1d", "instance", "instance_affine", "group", "identity"} <= set(list_norms())
    star = gz.create_norm("instance_affine", 4)
    assert type(star) is nn.InstanceNorm2d and star.affine and star.track_running_stats
    assert type(gz.create_norm("instance", 4)) is nn.InstanceNorm2d and not gz.create_norm("instance", 4).affine
    assert gz.create_norm("group", 64, groups=8).num_groups == 8
    assert gz.get_act(None) is nn.Identity and gz.get_act("relu") is nn.ReLU



@pytest.mark.parametrize("channels_last", [False, True])
def test_reflection_pad_keeps_the_dtype_under_autocast(channels_last: bool) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 4, 6, 5).bfloat16()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    ours, theirs = gz.ReflectionPad2d((1, 2, 3, 1)), nn.ReflectionPad2d((1, 2, 3, 1))
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, ref = ours(a), theirs(b)
    assert ref.dtype == torch.float32  # what autocast does to the plain module (the copies this layer avoids)
    assert y.dtype == torch.bfloat16 and torch.equal(y, ref.bfloat16())
    assert y.is_contiguous(memory_format=torch.channels_last) == channels_last
    g = torch.randn(y.shape)
    y.backward(g.bfloat16())
    ref.backward(g.bfloat16().float())
    assert a.grad is not None and b.grad is not None
    # the edges' gradients sum two or three reflected terms: in bf16 here, in fp32 (then rounded once) by autocast
    torch.testing.assert_close(a.grad.float(), b.grad.float(), rtol=1e-2, atol=1e-2)
    assert torch.equal(a.grad[..., 5, 0], b.grad[..., 5, 0])  # a pixel no reflection reaches: one term
    z = torch.randn(1, 2, 4, 4)
    assert torch.equal(ours(z), theirs(z)) and not ours.state_dict()  # outside autocast: the same module
