"""GAN-CLS against its specification (models.md §2): layer shapes, parameter counts from the official table, init,
the D loss terms and their weights, GAN-INT's 1.5·B generator batch, trunk sharing, sampling grids, readers."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import attrs
import pytest
import torch
from ganzoo_gan_cls import model as M
from ganzoo_gan_cls.sampling import caption_grid, interpolation_grid, sample_from_text, save_png
from ganzoo_gan_cls.text import get_text_encoder
from torch import nn

import ganzoo_core as gz
from ganzoo_core.errors import ConfigError
from ganzoo_core.ops import BatchNormAct2d, UpsampleConv2d
from ganzoo_core.testing import check_plugin, check_refused


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_plugin_conformance() -> None:
    names = check_plugin("ganzoo_gan_cls")
    assert {"objective gan_cls.int_cls_32", "generator gan_cls.port64", "discriminator gan_cls.64"} <= set(names)


# -- parameter counts, written out from the layer tables (models.md §2.1, §2.3) --------------------------------------


def conv(c_in: int, c_out: int, k: int, bias: bool = False) -> int:
    return c_in * c_out * k * k + (c_out if bias else 0)


def bn(c: int) -> int:
    return 2 * c


def linear(a: int, b: int) -> int:
    return a * b + b


def res(c: int, inner: int, bias: bool = False) -> int:
    return (conv(c, inner, 1, bias) + bn(inner) + conv(inner, inner, 3, bias) + bn(inner) + conv(inner, c, 3, bias)
            + bn(c))


def reed_counts(bias: bool) -> tuple[int, int]:
    b = bias
    g = (linear(1024, 128) + conv(228, 1024, 4, b) + bn(1024) + res(1024, 256, b) + conv(1024, 512, 4, b) + bn(512)
         + res(512, 128, b) + conv(512, 256, 4, b) + bn(256) + conv(256, 128, 4, b) + bn(128) + conv(128, 3, 4, b))
    d = (conv(3, 64, 4, b) + conv(64, 128, 4, b) + bn(128) + conv(128, 256, 4, b) + bn(256) + conv(256, 512, 4, b)
         + bn(512) + res(512, 128, b) + linear(1024, 128) + bn(128) + conv(640, 512, 1, b) + bn(512)
         + conv(512, 1, 4, b))
    return g, d


def test_official_parameter_counts() -> None:
    """Torch's convs carry a bias (the training zeroes them each step; the saved files hold them): the official
    counts include them, and ``conv_bias=False`` drops exactly those."""
    g, d = reed_counts(bias=True)
    assert (g, d) == (M.REED_G_PARAMS, M.REED_D_PARAMS) == (18_909_699, 4_032_321)
    assert n_params(gz.create_generator("gan_cls.64")) == g
    assert n_params(gz.create_discriminator("gan_cls.64")) == d
    assert reed_counts(bias=False) == (18_905_472, 4_030_080)  # models.md §2.1's table, without the biases
    assert n_params(gz.create_generator("gan_cls.64", conv_bias=False)) == 18_905_472
    assert n_params(gz.create_discriminator("gan_cls.64", conv_bias=False)) == 4_030_080


def test_the_official_objective_zeroes_every_conv_bias_at_the_start_of_each_step() -> None:
    """main_cls*.lua zeroes all conv biases of G and D at the start of fDx and fGx, so training runs bias-free while
    the optimizer's last step stays in the saved networks."""
    obj = gz.create_objective("gan_cls.int_cls", generator_kwargs={"ngf": 8}, discriminator_kwargs={"ndf": 8},
                              text_dim=16)
    assert obj.cfg.zero_conv_bias
    convs = [m for net in obj.networks.values() for m in net.modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert convs and all(m.bias is not None and not m.bias.any() for m in convs)  # initialised to 0
    with torch.no_grad():
        for m in convs:
            m.bias.fill_(0.5)
    batch = obj.example_batch(4)
    reference = copy.deepcopy(obj)
    loss, _ = obj.loss("D", batch, {"noise": gz.seeded_rng(0)})
    assert all(not m.bias.any() for m in convs)
    reference.cfg = attrs.evolve(reference.cfg, zero_conv_bias=False)
    kept, _ = reference.loss("D", batch, {"noise": gz.seeded_rng(0)})
    assert not torch.allclose(loss, kept)  # the biases change the function when they are kept
    ours = gz.create_objective("gan_cls.int_cls", generator_kwargs={"ngf": 8}, discriminator_kwargs={"ndf": 8},
                               text_dim=16, zero_conv_bias=False)
    for m in ours.networks.modules():
        if isinstance(m, torch.nn.Conv2d) and m.bias is not None:
            with torch.no_grad():
                m.bias.fill_(0.5)
    ours.loss("G", ours.example_batch(4), {"noise": gz.seeded_rng(0)})
    assert all(m.bias.eq(0.5).all() for m in ours.networks.modules()
               if isinstance(m, torch.nn.Conv2d) and m.bias is not None)


def test_the_paper_objectives_average_four_captions_and_the_cpu_ones_one() -> None:
    from ganzoo_core.training import dataset_for

    obj = gz.create_objective("gan_cls.cls", generator_kwargs={"ngf": 8}, discriminator_kwargs={"ndf": 8})
    assert obj.cfg.caption_average == 4 and obj.data_defaults == {"caption_average": 4}
    data = dataset_for(obj, "shapes.64", n=8, encoder="bow.hashed")
    assert data.caption_average == 4
    assert dataset_for(obj, "shapes.64", n=8, encoder="bow.hashed", caption_average=2).caption_average == 2
    small = gz.create_objective("gan_cls.cls_32")
    assert small.cfg.caption_average == 1 and dataset_for(small, n=8, encoder="bow.hashed").caption_average == 1


def test_port_parameter_counts() -> None:
    g = (linear(1024, 128) + bn(128) + conv(228, 512, 4) + bn(512) + conv(512, 256, 4) + bn(256)
         + conv(256, 128, 4) + bn(128) + conv(128, 64, 4) + bn(64) + conv(64, 3, 4))
    d = (conv(3, 64, 4) + conv(64, 128, 4) + bn(128) + conv(128, 256, 4) + bn(256) + conv(256, 512, 4) + bn(512)
         + linear(1024, 128) + bn(128) + conv(640, 1, 4))
    assert n_params(gz.create_generator("gan_cls.port64")) == g == M.PORT_G_PARAMS
    assert n_params(gz.create_discriminator("gan_cls.port64")) == d == M.PORT_D_PARAMS


def test_text_dim_is_a_config_field() -> None:
    g = gz.create_generator("gan_cls.32", text_dim=384)
    assert g(torch.randn(2, 100), torch.randn(2, 384)).shape == (2, 3, 32, 32)
    obj = gz.create_objective("gan_cls.cls_32", text_dim=384)
    assert obj.networks["D"].cfg.text_dim == 384 and obj.text_dim == 384


# -- layer by layer ----------------------------------------------------------------------------------------------


def _trace(seq: nn.Sequential, x: torch.Tensor) -> list[tuple[str, tuple[int, ...]]]:
    out = []
    for layer in seq:
        x = layer(x)
        out.append((type(layer).__name__, tuple(x.shape[1:])))
    return out


def test_official_generator_layers() -> None:
    g = gz.create_generator("gan_cls.64").eval()
    assert isinstance(g.text[1], nn.LeakyReLU) and len(g.text) == 2  # Linear + LReLU, no BN in G's text path
    shapes = _trace(g.main, torch.randn(2, 228, 1, 1))
    assert shapes == [
        ("ConvTranspose2d", (1024, 4, 4)), ("BatchNorm2d", (1024, 4, 4)),  # no ReLU before the residual
        ("ResidualBlock", (1024, 4, 4)),
        ("ConvTranspose2d", (512, 8, 8)), ("BatchNorm2d", (512, 8, 8)), ("ResidualBlock", (512, 8, 8)),
        ("ConvTranspose2d", (256, 16, 16)), ("BatchNormAct2d", (256, 16, 16)),
        ("ConvTranspose2d", (128, 32, 32)), ("BatchNormAct2d", (128, 32, 32)),
        ("ConvTranspose2d", (3, 64, 64)), ("Tanh", (3, 64, 64)),
    ]
    res = g.main[2]
    assert [tuple(m.weight.shape) for m in res.branch if isinstance(m, nn.Conv2d)] == [
        (256, 1024, 1, 1), (256, 256, 3, 3), (1024, 256, 3, 3)]
    assert isinstance(res.branch[-1], nn.BatchNorm2d) and not isinstance(res.branch[-1], BatchNormAct2d)
    convs = [m for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert all(m.bias is not None and not m.bias.any() for m in convs)  # Torch's convs have one, initialised to 0


def test_official_discriminator_layers() -> None:
    d = gz.create_discriminator("gan_cls.64").eval()
    shapes = _trace(d.body, torch.randn(2, 3, 64, 64))
    assert shapes == [
        ("Conv2d", (64, 32, 32)), ("LeakyReLU", (64, 32, 32)),
        ("Conv2d", (128, 16, 16)), ("BatchNormAct2d", (128, 16, 16)),
        ("Conv2d", (256, 8, 8)), ("BatchNorm2d", (256, 8, 8)),  # the code's "no activation"
        ("Conv2d", (512, 4, 4)), ("BatchNorm2d", (512, 4, 4)),
        ("ResidualBlock", (512, 4, 4)),
    ]
    assert [type(m).__name__ for m in d.text] == ["Linear", "BatchNorm1d", "LeakyReLU"]
    assert tuple(d.joint[0].weight.shape) == (512, 640, 1, 1)  # the 1×1 conv after the concat
    assert tuple(d.joint[-1].weight.shape) == (1, 512, 4, 4)
    x, t = torch.randn(3, 3, 64, 64), torch.randn(3, 1024)
    logits = d(x, t)
    with torch.no_grad():
        d.joint[-1].weight.mul_(1000.0)  # logits scale with the last conv; probabilities would stay in (0, 1)
    assert logits.shape == (3,) and torch.allclose(d(x, t), 1000.0 * logits, rtol=1e-4, atol=1e-4)
    assert not any(isinstance(m, nn.Sigmoid) for m in d.modules())
    assert all(m.bias is not None and not m.bias.any() for m in d.modules() if isinstance(m, nn.Conv2d))


def test_port_networks() -> None:
    g, d = gz.create_generator("gan_cls.port64").eval(), gz.create_discriminator("gan_cls.port64").eval()
    assert [type(m).__name__ for m in g.text] == ["Linear", "BatchNorm1d", "LeakyReLU"]
    assert [s for n, s in _trace(g.main, torch.randn(2, 228, 1, 1)) if n == "ConvTranspose2d"] == [
        (512, 4, 4), (256, 8, 8), (128, 16, 16), (64, 32, 32), (3, 64, 64)]
    assert _trace(d.body, torch.randn(2, 3, 64, 64))[-1] == ("BatchNormAct2d", (512, 4, 4))
    assert len(d.joint) == 1 and tuple(d.joint[0].weight.shape) == (1, 640, 4, 4)


def test_port_generator_puts_text_first() -> None:
    """The port concatenates [t, z], the original [z, t]: the first ConvT's input rows say which is which."""
    torch.manual_seed(0)
    z, t = torch.randn(2, 100), torch.randn(2, 1024)
    for name, text_rows in (("gan_cls.port64", slice(0, 128)), ("gan_cls.64", slice(100, 228))):
        g = gz.create_generator(name).eval()
        with torch.no_grad():
            g.main[0].weight[text_rows] = 0  # cut the text path
            a, b = g(z, t), g(z, torch.randn(2, 1024))
        assert torch.allclose(a, b), name


@pytest.mark.parametrize("name", ["gan_cls.32", "gan_cls.port32"])
def test_refine_adds_a_full_resolution_stage(name: str) -> None:
    """refine=True: the last ×2 stage keeps ngf channels at full resolution (BN, ReLU), then a 3×3 conv to nc;
    every layer before it is the official one, with the same state-dict names and shapes."""
    base, refined = gz.create_generator(name).eval(), gz.create_generator(name, refine=True).eval()
    ngf = base.cfg.ngf
    x = torch.randn(2, 164, 1, 1)
    shapes_base, shapes = _trace(base.main, x), _trace(refined.main, x)
    assert shapes[:-2] == [*shapes_base[:-2], ("ConvTranspose2d", (ngf, 32, 32)), ("BatchNormAct2d", (ngf, 32, 32))]
    assert shapes[-2:] == [("Conv2d", (3, 32, 32)), ("Tanh", (3, 32, 32))]
    assert tuple(refined.main[-2].weight.shape) == (3, ngf, 3, 3) and refined.main[-2].bias is None
    last = f"main.{len(base.main) - 2}.weight"  # the official last transposed conv: ngf → nc there, ngf → ngf here
    before = {k: v.shape for k, v in base.state_dict().items() if k != last}
    assert {k: v.shape for k, v in refined.state_dict().items() if k in before} == before
    assert (base.state_dict()[last].shape[1], refined.state_dict()[last].shape[1]) == (3, ngf)
    extra = conv(ngf, ngf, 4) + bn(ngf) + conv(ngf, 3, 3) - conv(ngf, 3, 4)
    assert n_params(refined) == n_params(base) + extra


def test_nearest_upsampling_replaces_every_transposed_stride_2_conv() -> None:
    """upsample="nearest": each ×2 stage is a nearest resize + 3×3 conv (UpsampleConv2d), initialised N(0, 0.02)
    like the convs it replaces; the 4×4 projection of [z, t] stays a transposed conv."""
    g = gz.create_generator("gan_cls.32", upsample="nearest", refine=True).eval()
    kinds = [n for n, _ in _trace(g.main, torch.randn(2, 164, 1, 1))]
    assert kinds.count("ConvTranspose2d") == 1 and kinds.count("UpsampleConv2d") == 3
    ups = [m for m in g.modules() if isinstance(m, UpsampleConv2d)]
    assert all(m.bias is None and 0.015 < float(m.weight.detach().std()) < 0.025 for m in ups)
    assert g(*g.example_inputs(2)).shape == (2, 3, 32, 32)
    with pytest.raises(ConfigError, match="upsample.*bilinear"):
        gz.create_generator("gan_cls.32", upsample="bilinear")


@pytest.mark.parametrize("name", ["gan_cls.32", "gan_cls.port32"])
def test_projection_head_takes_the_text_as_an_inner_product(name: str) -> None:
    """head="projection": logit = ψ(h) + ⟨V·proj(t), mean(h)⟩; the joint convs see only the C trunk channels, and
    with V = 0 the text has no effect. The trunk is the official one."""
    torch.manual_seed(0)
    concat, proj = gz.create_discriminator(name).eval(), gz.create_discriminator(name, head="projection").eval()
    c, nt = concat.body(torch.randn(1, 3, 32, 32)).shape[1], proj.cfg.nt
    assert (proj.joint[0].weight.shape[1], concat.joint[0].weight.shape[1]) == (c, c + nt)  # joint convs' inputs
    assert tuple(proj.embed.weight.shape) == (c, nt) and proj.embed.bias is None and concat.embed is None
    assert n_params(proj) == n_params(concat) - (concat.joint[0].weight[:, c:].numel()) + c * nt
    x, t = proj.example_inputs(4)
    features = proj.trunk(x)
    by_hand = proj.joint(features).view(4) + (proj.embed(proj.text(t)) * features.mean((2, 3))).sum(1)
    assert torch.allclose(proj(x, t), by_hand, atol=1e-5)
    assert not torch.allclose(proj(x, t), proj(x, torch.randn_like(t)))
    with torch.no_grad():
        proj.embed.weight.zero_()
    assert torch.allclose(proj(x, t), proj(x, torch.randn_like(t)))
    obj = gz.create_objective("gan_cls.cls_32", discriminator_kwargs={"head": "projection"})
    loss, terms = obj.discriminator_loss(obj.example_batch(4), torch.randn(4, 3, 32, 32))
    assert torch.isfinite(loss) and {"d_real", "d_fake", "d_wrong"} <= set(terms)
    with pytest.raises(ConfigError, match="head.*film"):
        gz.create_discriminator(name, head="film")


def test_small_variants_are_32() -> None:
    for name in ("gan_cls.32", "gan_cls.port32"):
        g, d = gz.create_generator(name), gz.create_discriminator(name)
        assert g(*g.example_inputs(2)).shape == (2, 3, 32, 32)
        assert d.trunk(torch.randn(2, 3, 32, 32)).shape[-2:] == (4, 4)
        assert n_params(g) < 1_000_000 and n_params(d) < 1_000_000


@pytest.mark.parametrize("kind", ["generator", "discriminator"])
@pytest.mark.parametrize("name", ["gan_cls.64", "gan_cls.port64"])
def test_released_networks_take_the_embedding_as_given(kind: str, name: str) -> None:
    """The networks named after a release compute the official function by default: no text rescaling."""
    create = gz.create_generator if kind == "generator" else gz.create_discriminator
    net = create(name).eval()
    assert net.cfg.text_norm == "none"
    x, t = net.example_inputs(2)
    with torch.no_grad():
        assert (net(x, t) - net(x, 3 * t)).abs().max() > 1e-4  # the scale of t reaches the output


@pytest.mark.parametrize("kind", ["generator", "discriminator"])
@pytest.mark.parametrize("name", ["gan_cls.32", "gan_cls.port32"])
def test_text_norm_rms_makes_the_networks_blind_to_embedding_scale(kind: str, name: str) -> None:
    """text_norm="rms" (the small variants'): t and 40·t give the same output (unit-norm encoders would otherwise feed a
    projection ≈ 1/√D the size of z); "none" (the official code) does not; the state-dict names are the same."""
    create = gz.create_generator if kind == "generator" else gz.create_discriminator
    torch.manual_seed(0)
    rms = create(name).eval()
    torch.manual_seed(0)
    raw = create(name, text_norm="none").eval()
    assert list(rms.state_dict()) == list(raw.state_dict())
    x, t = rms.example_inputs(4)
    t = torch.nn.functional.normalize(t, dim=1)  # unit rows, as bow.hashed and minilm.l6_v2 give
    with torch.no_grad():
        torch.testing.assert_close(rms(x, t), rms(x, 40 * t))
        assert (raw(x, t) - raw(x, 40 * t)).abs().max() > 1e-3
        torch.testing.assert_close(rms(x, t), raw(x, t * t.shape[1] ** 0.5), rtol=1e-4, atol=1e-5)
    with pytest.raises(ConfigError, match="text_norm must be one of .*got 'l2'"):
        create(name, text_norm="l2")


def test_init() -> None:
    torch.manual_seed(0)
    g = gz.create_generator("gan_cls.64")
    w = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    bnw = torch.cat([m.weight for m in g.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(w.std().item() - 0.02) < 0.001 and abs(bnw.mean().item() - 1) < 0.005
    lin = g.text[0].weight  # Linear: default U(±1/√fan_in), as Torch's nn.Linear
    assert lin.abs().max() <= 1 / math.sqrt(1024) and lin.std() > 0.015


def test_bad_inputs_are_named() -> None:
    g, d = gz.create_generator("gan_cls.32"), gz.create_discriminator("gan_cls.32")
    with pytest.raises(gz.ShapeError, match=r"\(2, 512\).*got \(2, 384\)"):
        g(torch.randn(2, 100), torch.randn(2, 384))
    with pytest.raises(gz.ShapeError, match="cond=text_emb"):
        d(torch.randn(2, 3, 32, 32))
    with pytest.raises(gz.ShapeError, match=r"\(B, 3, 32, 32\).*got \(2, 3, 64, 64\)"):
        d(torch.randn(2, 3, 64, 64), torch.randn(2, 512))
    with pytest.raises(gz.ConfigError, match="48"):
        gz.create_generator("gan_cls.32", image_size=48)
    with pytest.raises(gz.ConfigError):
        gz.create_objective("gan_cls.cls_32", mismatch="wrong_caption")
    with pytest.raises(KeyError, match="text_emb"):
        obj = gz.create_objective("gan_cls.cls_32")
        obj.loss("D", {"image": torch.randn(2, 3, 32, 32)}, {})


# -- objective ---------------------------------------------------------------------------------------------------


def small(name: str, **kw: object) -> nn.Module:
    torch.manual_seed(0)
    return gz.create_objective(name, generator_kwargs={"ngf": 8}, discriminator_kwargs={"ndf": 8}, **kw)


class Recorder:
    """A loss that records what each term saw, with BCE values."""

    def __init__(self) -> None:
        self.inner = gz.create_loss("gan.bce")
        self.calls: list[tuple[str, torch.Tensor]] = []

    def d_real(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(("d_real", x.detach()))
        return self.inner.d_real(x)

    def d_fake(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(("d_fake", x.detach()))
        return self.inner.d_fake(x)

    def g_fake(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(("g_fake", x.detach()))
        return self.inner.g_fake(x)


@pytest.mark.parametrize(("name", "w"), [("gan_cls.cls_32", 0.5), ("gan_cls.gan_32", 0.0)])
def test_discriminator_terms_and_weights(name: str, w: float) -> None:
    obj = small(name)
    batch = obj.example_batch(6)
    loss, terms = obj.loss("D", batch, {})
    expected = terms["d_real"] + (1 - w) * terms["d_fake"] + w * terms.get("d_wrong", torch.tensor(0.0))
    assert torch.allclose(loss, expected)
    assert ("d_wrong" in terms) == (w > 0)
    if w:
        loss2, t2 = small(name, cls_weight=0.2).loss("D", batch, {})
        assert torch.allclose(loss2, t2["d_real"] + 0.8 * t2["d_fake"] + 0.2 * t2["d_wrong"])


def test_mismatch_term_sees_real_images_with_wrong_text() -> None:
    """Paper pairing: s_w = D(real, rolled text); code pairing: s_w = D(image_wrong, right text)."""
    obj = small("gan_cls.cls_32").eval()  # eval: BN by running stats, so separate calls are comparable
    D = obj.networks["D"]
    batch = obj.example_batch(5)
    rec = Recorder()
    obj.gan_loss = rec
    with torch.no_grad():
        obj.discriminator_loss(batch, torch.zeros_like(batch["image"]))
        wrong_text = D(batch["image"], batch["text_emb"].roll(1, 0))
        right = D(batch["image"], batch["text_emb"])
    seen = dict((n, x) for n, x in rec.calls if n == "d_real") | {"d_wrong": rec.calls[-1][1]}
    assert torch.allclose(seen["d_real"], right, atol=1e-6)
    assert torch.allclose(seen["d_wrong"], wrong_text, atol=1e-6)

    code = small("gan_cls.cls_32", mismatch="wrong_image").eval()
    code.load_state_dict(obj.state_dict())
    code.gan_loss = rec2 = Recorder()
    with torch.no_grad():
        code.discriminator_loss(batch, torch.zeros_like(batch["image"]))
        expected = code.networks["D"](batch["image_wrong"], batch["text_emb"])
    assert torch.allclose(rec2.calls[-1][1], expected, atol=1e-6)
    del batch["image_wrong"]  # without image_wrong: the real batch rolled by one
    with torch.no_grad():
        code.discriminator_loss(batch, torch.zeros_like(batch["image"]))
        expected = code.networks["D"](batch["image"].roll(1, 0), batch["text_emb"])
    assert torch.allclose(rec2.calls[-1][1], expected, atol=1e-6)


def test_both_mismatch_pairs_share_the_mismatch_weight() -> None:
    base = small("gan_cls.cls_32").eval()
    both = small("gan_cls.cls_32", mismatch="both").eval()
    both.load_state_dict(base.state_dict())
    batch = base.example_batch(5)
    D = both.networks["D"]
    both.gan_loss = rec = Recorder()
    with torch.no_grad():
        loss, terms = both.discriminator_loss(batch, torch.zeros_like(batch["image"]))
        by_text = D(batch["image"], batch["text_emb"].roll(1, 0))
        by_image = D(batch["image_wrong"], batch["text_emb"])
    fakes = [x for n, x in rec.calls if n == "d_fake"]
    assert torch.allclose(fakes[-2], by_text, atol=1e-6) and torch.allclose(fakes[-1], by_image, atol=1e-6)
    assert torch.allclose(terms["d_wrong"], (terms["d_wrong_text"] + terms["d_wrong_image"]) / 2)
    assert torch.allclose(loss, terms["d_real"] + 0.5 * terms["d_fake"] + 0.5 * terms["d_wrong"])
    assert not torch.allclose(terms["d_wrong_text"], terms["d_wrong_image"])  # two different pairs


def test_r1_penalty_is_the_squared_input_gradient_of_real_pairs() -> None:
    """r1_gamma=γ adds γ/2·mean‖∇ₓD(x, t)‖² over the real images with their right text; no gradient reaches G."""
    torch.manual_seed(0)
    plain = gz.create_objective("gan_cls.cls_32")
    r1 = gz.create_objective("gan_cls.cls_32", r1_gamma=10.0)
    r1.load_state_dict(plain.state_dict())
    batch = plain.example_batch(4)
    fake = torch.randn(4, 3, 32, 32, requires_grad=True)
    torch.manual_seed(1)
    base, _ = plain.discriminator_loss(batch, fake)
    torch.manual_seed(1)
    loss, terms = r1.discriminator_loss(batch, fake)
    x = batch["image"].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(plain.networks["D"](x, batch["text_emb"]).sum(), x)
    by_hand = g.flatten(1).square().sum(1).mean()
    assert torch.allclose(terms["r1"], by_hand, rtol=1e-4) and float(by_hand) > 0
    assert torch.allclose(loss - base, 5.0 * by_hand, rtol=1e-3)
    loss.backward()
    assert fake.grad is None or float(fake.grad.abs().max()) == 0.0
    with pytest.raises(ConfigError, match="r1_gamma"):
        gz.create_objective("gan_cls.cls_32", r1_gamma=-1.0)


@pytest.mark.parametrize("name", ["gan_cls.cls_32", "gan_cls.int_cls_32"])
def test_mode_seeking_term_is_the_inverse_image_to_noise_distance_ratio(name: str) -> None:
    """ms_weight=λ adds λ / (mean|G(z₁,t) − G(z₂,t)| / mean|z₁ − z₂| + ε) to G's loss, for the texts of the batch
    (with GAN-INT, for the whole 1.5·B batch); a G that ignores z makes it huge."""
    torch.manual_seed(0)
    plain = gz.create_objective(name)
    ms = gz.create_objective(name, ms_weight=2.0)
    ms.load_state_dict(plain.state_dict())
    batch = ms.example_batch(4)

    def g_loss(obj: nn.Module) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        ctx = {"noise": torch.Generator().manual_seed(7)}
        obj.loss("D", batch, ctx)
        return obj.loss("G", batch, ctx)

    base, _ = g_loss(plain)
    loss, terms = g_loss(ms)
    ratio = float(terms["ms_ratio"])
    assert ratio > 0 and torch.allclose(loss - base, torch.tensor(2.0 / (ratio + 1e-5)), rtol=1e-4)
    G = ms.networks["G"]
    gen, text = torch.Generator().manual_seed(7), batch["text_emb"]
    z1 = torch.randn(4, 100, generator=gen)  # the D step's draw, reused by the plain G step
    x1 = G(z1, text)
    if ms.cfg.interpolate:  # the G step's fresh 1.5·B draw, with its interpolated texts
        text = torch.cat([text, ms.interpolated_texts(text)])
        z1 = torch.randn(6, 100, generator=gen)
        x1 = G(z1, text)
    z2 = torch.randn(len(text), 100, generator=gen)
    by_hand = (x1 - G(z2, text)).abs().mean() / (z1 - z2).abs().mean()
    assert ratio == pytest.approx(float(by_hand.detach()), rel=1e-4)
    with torch.no_grad():
        G.main[0].weight[:100] = 0  # cut z out: one image per caption
    _, terms = g_loss(ms)
    assert float(terms["ms_ratio"]) < 1e-6
    with pytest.raises(ConfigError, match="ms_weight"):
        gz.create_objective(name, ms_weight=-1.0)


def test_nearest_other_class_is_the_hardest_sure_negative() -> None:
    text = torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 1.0, 0.0], [0.8, 0.0, 0.6], [1.0, 0.0, 0.05]])
    label = torch.tensor([0, 0, 1, 2, 0])
    # row 0: rows 1 and 4 are nearer but of its class, so the nearest other-class text is row 3 (cos 0.8)
    assert M.nearest_other_class(text, label).tolist() == [3, 3, 1, 4, 3]
    # without labels: the nearest text that differs (row 2 duplicates row 0, so it is not a wrong caption)
    plain = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.6, 0.8, 0.0]])
    assert M.nearest_other_class(plain, None).tolist() == [3, 3, 3, 1]
    one_class = torch.zeros(3, dtype=torch.long)
    assert M.nearest_other_class(text[:3], one_class).tolist() == [2, 0, 1]  # no candidate: roll by one
    onehot = torch.nn.functional.one_hot(label, 3)  # (B, K) label vectors: the same pairs as the class indices
    assert M.nearest_other_class(text, onehot).tolist() == [3, 3, 1, 4, 3]
    with pytest.raises(gz.GanzooError, match="4 rows for 5 texts"):
        M.nearest_other_class(text, label[:4])


def test_nearest_wrong_text_reaches_the_mismatch_term() -> None:
    obj = small("gan_cls.cls_32", wrong_text="nearest").eval()
    batch = obj.example_batch(6)
    batch["label"] = torch.tensor([0, 0, 1, 1, 2, 2])
    rec = Recorder()
    obj.gan_loss = rec
    with torch.no_grad():
        obj.discriminator_loss(batch, torch.zeros_like(batch["image"]))
        idx = M.nearest_other_class(batch["text_emb"], batch["label"])
        expected = obj.networks["D"](batch["image"], batch["text_emb"][idx])
    assert bool((batch["label"][idx] != batch["label"]).all())
    assert torch.allclose(rec.calls[-1][1], expected, atol=1e-6)
    with pytest.raises(ConfigError, match="'wrong_text' must be one of .*'hardest'"):
        small("gan_cls.cls_32", wrong_text="hardest")


@pytest.mark.parametrize("wrong_text", M.WRONG_TEXT)
def test_trunk_sharing_gives_the_same_loss_and_gradients(wrong_text: str) -> None:
    shared = small("gan_cls.cls_32", wrong_text=wrong_text)
    twice = small("gan_cls.cls_32", share_trunk=False, wrong_text=wrong_text)
    twice.load_state_dict(shared.state_dict())
    batch = shared.example_batch(8)
    fake = torch.randn(8, 3, 32, 32)
    calls = []
    shared.networks["D"].body.register_forward_hook(lambda *_: calls.append("shared"))
    twice.networks["D"].body.register_forward_hook(lambda *_: calls.append("twice"))
    la, ta = shared.discriminator_loss(batch, fake)
    lb, tb = twice.discriminator_loss(batch, fake)
    assert calls.count("shared") == 2 and calls.count("twice") == 3  # (real once + fake) vs (real twice + fake)
    assert torch.allclose(la, lb, atol=1e-6) and ta.keys() == tb.keys()
    la.backward()
    lb.backward()
    for (name, p), q in zip(shared.networks["D"].named_parameters(), twice.networks["D"].parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5), name


def test_gan_int_generator_batch_is_one_and_a_half_b() -> None:
    obj = small("gan_cls.int_cls_32")
    G, D = obj.networks["G"], obj.networks["D"]
    seen: dict[str, torch.Tensor] = {}
    G.register_forward_hook(lambda m, args, out: seen.__setitem__("g_text", args[1]))
    D.register_forward_hook(lambda m, args, out: seen.__setitem__("d_text", args[1]))
    batch = obj.example_batch(8)
    ctx: dict = {}
    obj.loss("D", batch, ctx)
    obj.gan_loss = rec = Recorder()
    loss, terms = obj.loss("G", batch, ctx)
    t = batch["text_emb"]
    assert seen["g_text"].shape == (12, t.shape[1])  # 1.5·B
    assert torch.allclose(seen["g_text"][:8], t)
    assert torch.allclose(seen["g_text"][8:], 0.5 * (t[:4] + t[4:8]))  # β = 0.5 between the two halves
    assert torch.equal(seen["d_text"], seen["g_text"])
    assert [n for n, _ in rec.calls] == ["g_fake", "g_fake"] and [len(x) for _, x in rec.calls] == [8, 4]
    logits = torch.cat([x for _, x in rec.calls])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    assert torch.allclose(loss, bce, atol=1e-6)  # weight 1 for every sample: the mean over 1.5·B
    assert "g_int" in terms and ctx == {}


def test_gan_int_weight_and_beta() -> None:
    obj = small("gan_cls.int_32", interp_weight=0.0, interp_beta=0.25)
    t = torch.randn(6, 512)
    assert torch.allclose(obj.interpolated_texts(t), 0.25 * t[:3] + 0.75 * t[3:6])
    batch = obj.example_batch(6)
    obj.loss("D", batch, ctx := {})
    obj.gan_loss = rec = Recorder()
    loss, _ = obj.loss("G", batch, ctx)
    normal = rec.calls[0][1]
    bce = torch.nn.functional.binary_cross_entropy_with_logits(normal, torch.ones_like(normal))
    assert torch.allclose(loss, bce * 6 / 9, atol=1e-6)  # interpolated samples weigh 0, mean still over 9


def test_plain_generator_step_reuses_the_fake_batch() -> None:
    obj = small("gan_cls.cls_32")
    calls = []
    obj.networks["G"].register_forward_hook(lambda *_: calls.append(1))
    ctx: dict = {}
    batch = obj.example_batch(4)
    obj.loss("D", batch, ctx)
    obj.loss("G", batch, ctx)
    assert len(calls) == 1 and ctx == {}


def test_adam_and_loss_by_name() -> None:
    obj = gz.create_objective("gan_cls.cls_32", loss="gan.lsgan")
    assert type(obj.gan_loss).__name__ == "LSGANLoss"
    assert {(p.name, p.lr, p.betas) for p in obj.phases} == {("D", 2e-4, (0.5, 0.999)), ("G", 2e-4, (0.5, 0.999))}


def test_sample_conditions_on_the_batch_text() -> None:
    obj = small("gan_cls.cls_32").eval()
    batch = obj.example_batch(3)
    a = obj.sample(6, batch=batch, seed=1)
    assert a.shape == (6, 3, 32, 32) and torch.equal(a, obj.sample(6, batch=batch, seed=1))
    other = dict(batch, text_emb=torch.randn(3, 512))
    assert not torch.allclose(a, obj.sample(6, batch=other, seed=1))
    assert torch.equal(obj.sample(3, text_emb=batch["text_emb"], seed=1), obj.sample(3, batch=batch, seed=1))


# -- sampling grids ----------------------------------------------------------------------------------------------


def test_caption_grid_rows_are_captions_columns_are_noise(tmp_path: Path) -> None:
    obj = small("gan_cls.cls_32")
    obj.train()
    texts = torch.randn(3, 512)
    grid = caption_grid(obj, texts, n_noise=4, seed=0)
    assert grid.shape == (12, 3, 32, 32) and obj.networks["G"].training  # mode restored
    row1 = caption_grid(obj, texts[1:2], n_noise=4, seed=0)  # the same z, only caption 1
    assert torch.allclose(grid[4:8], row1, atol=1e-6)
    assert not torch.allclose(grid[0], grid[1])
    assert save_png(grid, tmp_path / "grid.png", nrow=4).stat().st_size > 0


def test_interpolation_grid_ends_are_the_captions() -> None:
    obj = small("gan_cls.cls_32")
    a, b = torch.randn(512), torch.randn(512)
    grid = interpolation_grid(obj, a, b, steps=5, n_noise=2, seed=0)
    assert grid.shape == (10, 3, 32, 32)
    ends = caption_grid(obj, torch.stack([a, b]), n_noise=2, seed=0)  # rows a, b; columns z_0, z_1
    assert torch.allclose(grid[0], ends[0], atol=1e-5) and torch.allclose(grid[4], ends[2], atol=1e-5)
    assert torch.allclose(grid[5], ends[1], atol=1e-5) and torch.allclose(grid[9], ends[3], atol=1e-5)
    with pytest.raises(gz.GanzooError, match="at least 2"):
        interpolation_grid(obj, a, b, steps=1)


def test_sample_from_text() -> None:
    obj = small("gan_cls.cls_32")
    images = sample_from_text(obj, ["a small red circle in the top left", "big blue star"], "bow.hashed", 3, seed=0)
    assert images.shape == (6, 3, 32, 32)
    expected = caption_grid(obj, gz.create_encoder("bow.hashed").encode(["a small red circle in the top left",
                                                                         "big blue star"]), 3)
    assert torch.allclose(images, expected)  # the registered encoder, the seed's noise
    with pytest.raises(gz.ShapeError, match="512"):
        sample_from_text(small("gan_cls.cls_32", text_dim=384), ["red circle"], "bow.hashed", 1)


def test_the_objective_records_its_encoder_config_and_the_data_embed_with_it() -> None:
    """``encoder_kwargs`` (a 64-bucket bag of words): sample_from_text embeds with it; the objective's data defaults
    give it to a dataset that takes it (gan_cls.captions), which embeds 64-d; the official 64×64 objectives record
    the release's char-CNN-RNN, whose weights are a file, so sampling without it is refused in one line."""
    obj = small("gan_cls.cls_32", text_dim=64, encoder_kwargs={"dim": 64})
    assert obj.text_encoder == ("bow.hashed", {"dim": 64})
    captions = ["a small red circle in the top left", "big blue star"]
    expected = caption_grid(obj, gz.create_encoder("bow.hashed", dim=64).encode(captions), 2)
    assert torch.equal(sample_from_text(obj, captions, n_per_caption=2, seed=0), expected)
    data = dataset_for_captions(obj)
    assert data.embeddings.shape[1] == 64
    official = small("gan_cls.int_cls")
    assert official.text_encoder == ("char_cnn_rnn.cub", {}) and "encoder" not in official.data_defaults
    with pytest.raises(gz.GanzooError, match=r"'char_cnn_rnn.cub' has no trained weights .*--encoder-weights FILE"):
        sample_from_text(official, captions)


def dataset_for_captions(objective: nn.Module) -> object:
    from ganzoo_core.training import dataset_for

    return dataset_for(objective, "gan_cls.captions", base_kwargs={"n": 8})


def test_text_encoder_is_the_registered_one() -> None:
    """``get_text_encoder`` builds registered encoders only: bow.hashed is the core's, stable and word-sensitive."""
    enc = get_text_encoder()
    assert isinstance(enc, gz.get_encoder("bow.hashed")) and enc.embed_dim == 512
    a, b, c = enc.encode(["a red circle", "a red circle", "a blue square"])
    assert torch.equal(a, b) and a.shape == (512,) and abs(float(a.norm()) - 1) < 1e-5
    assert float(a @ c) < 0.5
    assert torch.equal(get_text_encoder("bow.hashed").encode(["a red circle"])[0], a)
    with pytest.raises(gz.GanzooError, match="empty or whitespace"):
        enc.encode(["   "])
    with pytest.raises(gz.UnknownNameError, match="bow.hashd"):
        get_text_encoder("bow.hashd")


class _Captioned:
    """A captioned dataset with labels (shape) and multi-hot attributes [colour 0/1 | shape 0/1/2 | size 0/1]."""

    def __init__(self, rows: list[tuple[int, int, int]]) -> None:
        self.rows = rows
        self.labels = torch.tensor([shape for _, shape, _ in rows])
        hot = lambda v, n: [float(i == v) for i in range(n)]  # noqa: E731
        self.attributes = torch.tensor([hot(c, 2) + hot(s, 3) + hot(z, 2) for c, s, z in rows])

    def __len__(self) -> int:
        return len(self.rows)

    def caption(self, i: int) -> list[str]:
        c, s, z = self.rows[i]
        return [f"{['small', 'large'][z]} {['red', 'blue'][c]} {['circle', 'square', 'star'][s]}"]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": torch.full((3, 4, 4), float(i)), "label": self.labels[i]}


def test_nearest_wrong_image_differs_in_the_label_only() -> None:
    from ganzoo_gan_cls.text import CaptionEmbeddings

    rows = [(0, 0, 0), (0, 1, 0), (0, 2, 0), (1, 1, 0), (1, 0, 1), (0, 1, 1), (0, 0, 0)]
    base = _Captioned(rows)
    data = CaptionEmbeddings(base, get_text_encoder(), wrong_pick="nearest", seed=0)
    seen: dict[int, set[int]] = {i: set() for i in range(len(rows))}
    for _ in range(60):
        for i in range(len(rows)):
            seen[i].add(int(data[i]["image_wrong"][0, 0, 0]))
    # item 0 (red small circle): red small square (1) and red small star (2) differ in the shape alone
    assert seen[0] == {1, 2} and seen[6] == {1, 2}
    assert seen[1] == {0, 2, 6}  # red small circles (0, 6) and the red small star
    assert seen[3] == {0, 2, 4, 6}  # blue small square: no other blue small shape; all four differ in two attributes
    assert all(base.labels[j] != base.labels[i] for i in seen for j in seen[i])
    random_pick = CaptionEmbeddings(base, get_text_encoder(), seed=0)
    assert any(int(random_pick[0]["image_wrong"][0, 0, 0]) not in (1, 2) for _ in range(60))
    with pytest.raises(gz.GanzooError, match="wrong_pick must be one of .*got 'hardest'"):
        CaptionEmbeddings(base, get_text_encoder(), wrong_pick="hardest")
    one_label = _Captioned([(0, 1, 0), (1, 1, 1)])
    with pytest.raises(gz.GanzooError, match="at least two labels, got only label 1"):
        CaptionEmbeddings(one_label, get_text_encoder(), wrong_pick="nearest")
    base.attributes = None
    with pytest.raises(gz.GanzooError, match="labels and attributes"):
        CaptionEmbeddings(base, get_text_encoder(), wrong_pick="nearest")


# -- learning outcome (slow) -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_samples_follow_held_out_captions(tmp_path: Path) -> None:
    """GAN-CLS (official layout, 32×32) trained for a step budget on shapes.32 train captions (bow.hashed): the
    shipped attrs.shapes classifier reads the caption's colour, position and size off the samples (eval mode) for
    test-split captions far more often than off the untrained generator's, measured here (≈ 0.15 / 0.24 / 0.48).
    Measured (seed 0, batch 64): colour / shape / position / size 0.77 / 0.27 / 1.00 / 0.98 after 2,000 steps,
    0.77 / 0.34 / 1.00 / 0.98 after 2,500 and 0.97 / 0.66 / 1.00 / 1.00 after 4,000; shape comes last."""
    from ganzoo_gan_cls.evaluate import caption_accuracy, shapes_data

    from ganzoo_core.training import TrainCfg, train

    train_data, test_data = shapes_data("train", n=6000), shapes_data("test", n=6000, seed=1)
    torch.manual_seed(0)
    objective = gz.create_objective("gan_cls.cls_32")
    blocks = ("colour", "shape", "pos", "size")
    untrained = caption_accuracy(objective, test_data, n=300, seed=123, blocks=blocks)
    train(objective, train_data, tmp_path, TrainCfg(steps=2500, batch_size=64, seed=0, log_every=500, sample_every=0,
                                                    checkpoint_every=0, progress=False, tensorboard=False))
    trained = caption_accuracy(objective, test_data, n=300, seed=123, blocks=blocks)
    assert untrained["colour"] < 0.3 and untrained["pos"] < 0.4, untrained
    for block, at_least in (("colour", 0.5), ("pos", 0.8), ("size", 0.8)):
        assert trained[block] >= at_least and trained[block] > untrained[block] + 0.25, (block, trained, untrained)


# -- validation at the edge: a bad override fails at create_*, naming the field ------------------------------------


BAD_VALUES = [  # (kind, name, overrides, the field the message must name)
    ("generator", "gan_cls.64", {"ngf": 0}, "ngf"),
    ("generator", "gan_cls.64", {"nz": 0}, "nz"),
    ("generator", "gan_cls.port64", {"nt": 0}, "nt"),
    ("generator", "gan_cls.64", {"text_dim": 0}, "text_dim"),
    ("generator", "gan_cls.64", {"init_std": 0.0}, "init_std"),
    ("generator", "gan_cls.64", {"image_size": 8}, "image_size"),
    ("generator", "gan_cls.64", {"upsample": "bilinear"}, "upsample"),
    ("generator", "gan_cls.32", {"image_size": 16, "ngf": 3}, "ngf"),  # the 8×8 residual block would have 0 channels
    ("discriminator", "gan_cls.64", {"image_size": 16, "ndf": 1}, "ndf"),  # the 4×4 residual block: 0 channels
    ("discriminator", "gan_cls.port32", {"nc": 0}, "nc"),
    ("discriminator", "gan_cls.64", {"head": "linear"}, "head"),
    ("discriminator", "gan_cls.64", {"text_norm": "l2"}, "text_norm"),
    ("objective", "gan_cls.cls_32", {"lr": 0.0}, "lr"),
    ("objective", "gan_cls.cls_32", {"betas": (0.5, 1.5)}, "betas"),
    ("objective", "gan_cls.cls_32", {"betas": (1.0, 0.999)}, "betas"),
    ("objective", "gan_cls.int_cls_32", {"interp_beta": 1.5}, "interp_beta"),
    ("objective", "gan_cls.cls_32", {"cls_weight": 1.5}, "cls_weight"),
    ("objective", "gan_cls.cls_32", {"text_dim": 0}, "text_dim"),
    ("objective", "gan_cls.cls_32", {"mismatch": "wrong_caption"}, "mismatch"),
    ("objective", "gan_cls.cls_32", {"wrong_text": "farthest"}, "wrong_text"),
    ("objective", "gan_cls.cls_32", {"generator_kwargs": {"ngf": 0}}, "ngf"),  # the nested create_generator
]


@pytest.mark.parametrize(("kind", "name", "overrides", "field"), BAD_VALUES,
                         ids=[f"{k}:{n}:{o}" for k, n, o, _ in BAD_VALUES])
def test_bad_value_fails_at_create_naming_the_field(kind: str, name: str, overrides: dict[str, Any], field: str) -> None:
    check_refused(kind, name, overrides, field)


@pytest.mark.parametrize(("kind", "name", "overrides"), [
    ("generator", "gan_cls.32", {"image_size": 16, "ngf": 4}),  # the smallest widths the residual blocks allow
    ("generator", "gan_cls.64", {"ngf": 1}),
    ("generator", "gan_cls.port32", {"ngf": 1, "nz": 1, "nt": 1, "text_dim": 1}),
    ("discriminator", "gan_cls.64", {"image_size": 16, "ndf": 2}),
    ("discriminator", "gan_cls.port32", {"ndf": 1, "nt": 1}),
])
def test_smallest_widths_build_working_networks(kind: str, name: str, overrides: dict[str, Any]) -> None:
    net = gz.create(kind, name, **overrides)
    assert tuple(net(*net.example_inputs(2)).shape) == net.output_shapes(2)



def test_checkpoints_from_before_the_official_text_norm_default_keep_rms(tmp_path: Path) -> None:
    """Objectives saved before the official networks' default became text_norm="none" ran with "rms": their saved
    config lacks the objective's text_norm field, which then stands for "rms" (SAVED_BEFORE)."""
    from ganzoo_core.testing import saved_without

    small = {"generator_kwargs": {"ngf": 8}, "discriminator_kwargs": {"ndf": 8}, "text_dim": 32}
    torch.manual_seed(0)
    new = gz.create_objective("gan_cls.int_cls", **small)
    assert new.cfg.text_norm is None and new.networks["G"].cfg.text_norm == "none"
    gz.save(new, tmp_path / "run.safetensors")
    old = gz.load(saved_without(tmp_path / "run.safetensors", "text_norm"))
    assert old.cfg.text_norm == "rms" and old.networks["G"].cfg.text_norm == old.networks["D"].cfg.text_norm == "rms"
    assert gz.load(tmp_path / "run.safetensors").networks["G"].cfg.text_norm == "none"  # a new checkpoint: its own


def test_metric_caption_accuracy_is_the_plugins_scoring_function() -> None:
    """``create_metric`` gives the function itself, so a script's scores are the function's."""
    from ganzoo_gan_cls.evaluate import caption_accuracy

    assert gz.is_metric("gan_cls.caption_accuracy") and gz.get_metric_cfg("gan_cls.caption_accuracy") is None
    assert gz.create_metric("gan_cls.caption_accuracy") is caption_accuracy


def test_captions_dataset_is_caption_embeddings_over_the_named_base() -> None:
    from ganzoo_gan_cls.text import CaptionEmbeddings

    data = gz.create_dataset("gan_cls.captions", base="shapes.32", base_kwargs={"n": 60, "split": "train"}, seed=3)
    same = CaptionEmbeddings(gz.create_dataset("shapes.32", n=60, split="train"), get_text_encoder("bow.hashed"),
                             seed=3)
    assert isinstance(data, CaptionEmbeddings) and len(data) == len(same) > 0
    assert torch.equal(data.embeddings, same.embeddings)
    for i in range(3):
        a, b = data[i], same[i]
        assert torch.equal(a["text_emb"], b["text_emb"]) and torch.equal(a["image_wrong"], b["image_wrong"])
    with pytest.raises(ConfigError, match="wrong_pick"):
        gz.create_dataset("gan_cls.captions", wrong_pick="closest")
