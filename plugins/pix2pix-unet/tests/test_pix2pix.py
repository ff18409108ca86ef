"""pix2pix against its specification (models.md §4): layer shapes, parameter counts, dropout placement and skip
order of both layouts, receptive fields, the junyanz weights layout, the objective's terms, test-time modes, Lab
against scikit-image, the paired data, and a learning outcome on held-out emoji pairs."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ganzoo_pix2pix_unet.color import lab_to_rgb, pix2pix_to_rgb, rgb_to_lab, rgb_to_pix2pix
from ganzoo_pix2pix_unet.data import PairedCfg, edge_map, make_pair
from ganzoo_pix2pix_unet.model import UnetCfg, UnetGenerator, convert_junyanz_unet, receptive_field
from PIL import Image
from torch import nn

import ganzoo_core as gz
from ganzoo_core.ops import BatchNormAct2d
from ganzoo_core.testing import bad_value_cases, check_plugin, check_refused
from ganzoo_core.training import TrainCfg, train


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_plugin_conformance() -> None:
    names = check_plugin("ganzoo_pix2pix_unet")
    assert {"generator pix2pix.unet_256", "discriminator pix2pix.patch70", "objective pix2pix.emoji_32"} <= set(names)


# -- validation at the edge: a bad override fails at create_*, naming the field ---------------------------------

BAD_VALUES: dict[str, tuple[Any, ...]] = {  # field → values every registered config with that field refuses
    "n_downs": (1, 0), "image_size": (0, -1), "in_channels": (0, -1), "out_channels": (0, -1), "ngf": (0, -1),
    "ndf": (0, -1), "n_layers": (-1,), "norm": ("group", "Batch"), "dropout": (-0.1, 1.5), "dropout_at": ("keras",),
    "skip_order": ("random",), "init_std": (0.0, -0.02), "lambda_l1": (-1.0,), "gan_weight": (-1.0,),
    "lr": (0.0, -1.0), "betas": ((1.5, 0.999), (0.5, 1.0), (-0.1, 0.999)), "direction": ("AtoC",),
    "sample_norm": ("none",), "output": ("hsv",), "task": ("depth",), "channels": (0, 2, -1),
    "edge_threshold": (-0.5,),
}
CASES = bad_value_cases("pix2pix-unet", BAD_VALUES)


@pytest.mark.parametrize(("kind", "name", "field", "value"), CASES, ids=[f"{n}-{f}={x!r}" for _, n, f, x in CASES])
def test_bad_override_fails_at_create(kind: str, name: str, field: str, value: Any) -> None:
    check_refused(kind, name, {field: value}, field)


# -- parameter counts, from the layer tables ---------------------------------------------------------------------


def unet_table_count(n_downs: int, ngf: int = 64, c_in: int = 3, c_out: int = 3) -> int:
    """models.md §4.1: bias-free k4 convs, BN (2 per channel) after every conv but e1, e_n and the output ConvT,
    which has a bias. Decoder level i sees 2·w_i channels (skip concat) except the innermost."""
    w = [ngf * min(2**i, 8) for i in range(n_downs)]
    enc = c_in * w[0] * 16 + sum(w[i - 1] * w[i] * 16 + (2 * w[i] if i < n_downs - 1 else 0)
                                 for i in range(1, n_downs))
    dec = w[-1] * w[-2] * 16 + 2 * w[-2]  # d1: innermost ConvT + BN
    dec += sum(2 * w[i] * w[i - 1] * 16 + 2 * w[i - 1] for i in range(1, n_downs - 1))
    dec += 2 * w[0] * c_out * 16 + c_out  # output ConvT with bias
    return enc + dec


def patch_table_count(n_layers: int, c_in: int = 6, ndf: int = 64) -> int:
    """models.md §4.2: biased input conv, bias-free BN'd convs, biased 1-logit conv."""
    total, mult = c_in * ndf * 16 + ndf, 1
    for k in range(1, n_layers + 1):
        prev, mult = mult, min(2**k, 8)
        total += ndf * prev * ndf * mult * 16 + 2 * ndf * mult
    return total + ndf * mult * 16 + 1


def test_reference_parameter_counts() -> None:
    assert unet_table_count(8) == 54_413_955  # the official unet_256 count (models.md §4.1)
    assert patch_table_count(3) == 2_768_705  # the official 70×70 PatchGAN on 6 channels (models.md §4.2)
    assert n_params(gz.create_generator("pix2pix.unet_256")) == 54_413_955
    conv_biases = (64 + 128 + 256 + 5 * 512) + (4 * 512 + 256 + 128 + 64)  # e1..e8, d1..d7 (d8's is counted)
    assert n_params(gz.create_generator("pix2pix.unet_256_lua")) == 54_413_955 + conv_biases == 54_419_459
    assert n_params(gz.create_generator("pix2pix.unet_256_tf")) == 54_419_459 + 2 * 512  # BN on e8
    assert n_params(gz.create_generator("pix2pix.unet_128")) == unet_table_count(7) == 41_828_995
    assert n_params(gz.create_discriminator("pix2pix.patch70")) == 2_768_705
    assert n_params(gz.create_discriminator("pix2pix.patch286")) == patch_table_count(5)
    assert n_params(gz.create_discriminator("pix2pix.patch16")) == patch_table_count(1)
    pixel = 6 * 64 + 64 + 64 * 128 + 2 * 128 + 128  # 1×1 convs: biased, bias-free + BN, bias-free
    assert n_params(gz.create_discriminator("pix2pix.pixel")) == pixel


# -- layer-by-layer shapes ---------------------------------------------------------------------------------------


def _record(g: UnetGenerator, x: torch.Tensor) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    downs, ups = [], []
    for block in g.down:
        block.register_forward_hook(lambda _m, _i, out: downs.append(tuple(out.shape[1:])))
    for block in g.up:
        block.register_forward_hook(lambda _m, _i, out: ups.append(tuple(out.shape[1:])))
    with torch.no_grad():
        g(x)
    return downs, ups


def test_unet_256_layer_by_layer() -> None:
    g = gz.create_generator("pix2pix.unet_256").eval()
    downs, ups = _record(g, torch.randn(1, 3, 256, 256))
    assert downs == [(64, 128, 128), (128, 64, 64), (256, 32, 32), (512, 16, 16), (512, 8, 8), (512, 4, 4),
                     (512, 2, 2), (512, 1, 1)]  # e1..e8
    assert ups == [(512, 2, 2), (512, 4, 4), (512, 8, 8), (512, 16, 16), (256, 32, 32), (128, 64, 64),
                   (64, 128, 128), (3, 256, 256)]  # d1..d7 before their skip concat, then the output
    in_ch = [g.up[i][0].in_channels for i in reversed(range(8))]
    assert in_ch == [512, 1024, 1024, 1024, 1024, 512, 256, 128]  # d1 sees e8 alone, the rest a concat
    assert g.down[0][0].bias is None and g.up[0][0].bias is not None  # only the output ConvT has a bias
    assert all(m.bias is None for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
               and m is not g.up[0][0])
    assert len(g.down[0]) == 2 and not any(isinstance(m, nn.BatchNorm2d) for m in g.down[0])  # e1: no norm
    assert not any(isinstance(m, nn.BatchNorm2d) for m in g.down[7])  # e8: no norm
    assert [m.act for m in g.down.modules() if isinstance(m, BatchNormAct2d)] == ["lrelu"] * 6
    assert [m.act for m in g.up.modules() if isinstance(m, BatchNormAct2d)] == ["relu"] * 7
    assert isinstance(g.up[0][1], nn.Tanh)


def _dropout_outputs(name: str) -> list[int]:
    g = gz.create_generator(name)
    return sorted(g.cfg.image_size // 2**i for i in range(g.cfg.n_downs) if isinstance(g.up[i][-1], nn.Dropout))


def test_dropout_positions_of_both_layouts() -> None:
    assert _dropout_outputs("pix2pix.unet_256") == [4, 8, 16]  # junyanz: d2, d3, d4
    assert _dropout_outputs("pix2pix.unet_256_lua") == [2, 4, 8]  # Lua / TF: d1, d2, d3
    assert _dropout_outputs("pix2pix.unet_128_lua") == [2, 4, 8]
    assert _dropout_outputs("pix2pix.unet_128") == [4, 8]  # 7 downs: num_downs − 5 = 2 dropout blocks
    assert all(m.p == 0.5 for m in gz.create_generator("pix2pix.unet_256").modules() if isinstance(m, nn.Dropout))
    assert _dropout_outputs("pix2pix.unet_32") == []  # 5 downs: none in the PyTorch layout


def test_skip_order_changes_the_function_but_not_the_parameters() -> None:
    torch.manual_seed(0)
    enc = gz.create_generator("pix2pix.unet_32", ngf=8).eval()
    dec = gz.create_generator("pix2pix.unet_32", ngf=8, skip_order="decoder_first").eval()
    dec.load_state_dict(enc.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(enc(x), dec(x), atol=1e-4)
        # swapping the concat halves in the decoder weights makes them agree
        converted = convert_junyanz_unet(junyanz_state_from(enc), skip_order="decoder_first")
        dec.load_state_dict(converted)
        assert torch.allclose(enc(x), dec(x), atol=1e-5)


def test_wrong_inputs_are_named() -> None:
    g = gz.create_generator("pix2pix.unet_32", ngf=8)
    with pytest.raises(gz.ShapeError, match=r"multiples of 32, got \(1, 3, 48, 48\)"):
        g(torch.randn(1, 3, 48, 48))
    with pytest.raises(gz.ShapeError, match=r"\(B, 3, H, W\).*got \(1, 1, 32, 32\)"):
        g(torch.randn(1, 1, 32, 32))
    d = gz.create_discriminator("pix2pix.patch34_32")
    with pytest.raises(gz.ShapeError, match="cond=A"):
        d(torch.randn(1, 3, 32, 32))
    with pytest.raises(gz.ConfigError):
        gz.create_generator("pix2pix.unet_32", dropout_at="keras")


# -- receptive fields --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "size", "rf"), [("patch70", 128, 70), ("patch16", 64, 16), ("patch286", 320, 286),
                                                  ("pixel", 16, 1)])
def test_receptive_field_by_gradient(name: str, size: int, rf: int) -> None:
    """One logit's gradient w.r.t. the (A, B) pair is nonzero exactly on an rf×rf window."""
    torch.manual_seed(0)
    d = gz.create_discriminator(f"pix2pix.{name}", ndf=8, image_size=size).eval()
    b = torch.randn(1, 3, size, size, requires_grad=True)
    a = torch.randn(1, 3, size, size, requires_grad=True)
    out = d(b, cond=a)
    i, j = out.shape[2] // 2, out.shape[3] // 2
    out[0, 0, i, j].backward()
    support = (b.grad.abs() + a.grad.abs()).sum((0, 1)) > 0  # (H, W)
    rows, cols = support.any(1).nonzero().flatten(), support.any(0).nonzero().flatten()
    assert rows.max() - rows.min() + 1 == rf and cols.max() - cols.min() + 1 == rf
    assert int(support.sum()) == rf * rf  # a full window, nothing outside it
    assert receptive_field(d.cfg.n_layers) == rf


def test_patchgan_output_sizes() -> None:
    assert gz.create_discriminator("pix2pix.patch70", ndf=8)(*gz.create_discriminator(
        "pix2pix.patch70", ndf=8).example_inputs(1)).shape == (1, 1, 30, 30)  # 30×30 logits at 256
    d = gz.create_discriminator("pix2pix.patch286", ndf=8, image_size=256)
    assert d(*d.example_inputs(1)).shape == (1, 1, 6, 6)


# -- the junyanz weights layout ----------------------------------------------------------------------------------


class RefUnetBlock(nn.Module):
    """The PyTorch port's recursive U-Net block, written from models.md §4.1 (its module order gives the names)."""

    def __init__(self, outer: int, inner: int, c_in: int | None = None, sub: nn.Module | None = None,
                 outermost: bool = False, innermost: bool = False, dropout: bool = False) -> None:
        super().__init__()
        self.outermost = outermost
        c_in = outer if c_in is None else c_in
        down = nn.Conv2d(c_in, inner, 4, 2, 1, bias=False)
        if outermost:
            layers = [down, sub, nn.ReLU(), nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1), nn.Tanh()]
        elif innermost:
            layers = [nn.LeakyReLU(0.2), down, nn.ReLU(), nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=False),
                      nn.BatchNorm2d(outer)]
        else:
            layers = [nn.LeakyReLU(0.2), down, nn.BatchNorm2d(inner), sub, nn.ReLU(),
                      nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1, bias=False), nn.BatchNorm2d(outer)]
            layers += [nn.Dropout(0.5)] if dropout else []
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)  # encoder feature first


class RefUnet(nn.Module):
    def __init__(self, n_downs: int, ngf: int, c_in: int = 3, c_out: int = 3) -> None:
        super().__init__()
        block = RefUnetBlock(ngf * 8, ngf * 8, innermost=True)
        for _ in range(n_downs - 5):
            block = RefUnetBlock(ngf * 8, ngf * 8, sub=block, dropout=True)
        for k in (4, 2, 1):
            block = RefUnetBlock(ngf * k, ngf * k * 2, sub=block)
        self.model = RefUnetBlock(c_out, ngf, c_in=c_in, sub=block, outermost=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _randomise(module: nn.Module) -> nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.05)
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return module.eval()


def junyanz_state_from(g: UnetGenerator) -> dict[str, torch.Tensor]:
    """Our encoder-first weights under junyanz names (via an independent RefUnet of the same size)."""
    ref = RefUnet(g.cfg.n_downs, g.cfg.ngf)
    ours = g.state_dict()
    ref_state = ref.state_dict()
    from ganzoo_pix2pix_unet.model import junyanz_unet_names
    names = junyanz_unet_names(g.cfg.n_downs)
    for key in ref_state:
        module, _, leaf = key.rpartition(".")
        ref_state[key] = ours[f"{names[module]}.{leaf}"]
    return ref_state


def test_loads_junyanz_unet_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ref = _randomise(RefUnet(n_downs=5, ngf=32))  # the registered pix2pix.unet_32
    torch.save(ref.state_dict(), tmp_path / "latest_net_G.pth")
    assert any(k.startswith("model.model.1.model.3.model.3.") for k in ref.state_dict())  # the recursive names
    g = gz.create_generator("pix2pix.unet_32", weights=tmp_path / "latest_net_G.pth").eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(g(x), ref(x), atol=1e-5)


def test_converts_junyanz_unet_256_with_dropout_blocks() -> None:
    torch.manual_seed(0)
    ref = _randomise(RefUnet(n_downs=8, ngf=4))  # full depth, narrow: 3 dropout blocks
    g = UnetGenerator(UnetCfg(ngf=4)).eval()
    g.load_state_dict(convert_junyanz_unet({"module." + k: v for k, v in ref.state_dict().items()}))
    lua = UnetGenerator(UnetCfg(ngf=4, skip_order="decoder_first", dropout_at="lua")).eval()
    lua.load_state_dict(convert_junyanz_unet(ref.state_dict(), skip_order="decoder_first"))
    x = torch.randn(2, 3, 256, 256)
    with torch.no_grad():
        expected = ref(x)
        assert torch.allclose(g(x), expected, atol=1e-5)
        assert torch.allclose(lua(x), expected, atol=1e-5)  # eval mode: dropout placement does not matter


def ref_patch(n_layers: int, c_in: int = 6, ndf: int = 8) -> nn.Sequential:
    """junyanz NLayerDiscriminator written from models.md §4.2."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
    mult = 1
    for k in range(1, n_layers + 1):
        prev, mult = mult, min(2**k, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2 if k < n_layers else 1, 1, bias=False),
                   nn.BatchNorm2d(ndf * mult), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers, nn.Conv2d(ndf * mult, 1, 4, 1, 1))


def test_loads_junyanz_patchgan_and_pixelgan_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ref = _randomise(ref_patch(2, ndf=32))
    torch.save({"model." + k: v for k, v in ref.state_dict().items()}, tmp_path / "net_D.pth")
    d = gz.create_discriminator("pix2pix.patch34_32", weights=tmp_path / "net_D.pth").eval()
    a, b = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(d(b, cond=a), ref(torch.cat([a, b], 1)), atol=1e-5)
    pixel = _randomise(nn.Sequential(nn.Conv2d(6, 64, 1), nn.LeakyReLU(0.2), nn.Conv2d(64, 128, 1, bias=False),
                                     nn.BatchNorm2d(128), nn.LeakyReLU(0.2), nn.Conv2d(128, 1, 1, bias=False)))
    torch.save({"net." + k: v for k, v in pixel.state_dict().items()}, tmp_path / "pixel_D.pth")
    d = gz.create_discriminator("pix2pix.pixel", weights=tmp_path / "pixel_D.pth").eval()
    with torch.no_grad():
        assert torch.allclose(d(b, cond=a), pixel(torch.cat([a, b], 1)), atol=1e-5)


# -- objective ---------------------------------------------------------------------------------------------------


def _small(**overrides: object) -> nn.Module:
    torch.manual_seed(0)
    return gz.create_objective("pix2pix.emoji_32", generator_kwargs={"ngf": 8}, discriminator_kwargs={"ndf": 8},
                               **overrides)


def test_discriminator_loss_is_halved_and_generator_adds_weighted_l1() -> None:
    obj = _small()
    batch, ctx = obj.example_batch(4), {}
    loss_d, terms = obj.loss("D", batch, ctx)
    assert torch.allclose(loss_d, 0.5 * (terms["d_real"] + terms["d_fake"]))
    fake, a, b = ctx["fake"], batch["image"], batch["image_b"]
    D = obj.networks["D"]
    assert torch.allclose(terms["d_real"], F.binary_cross_entropy_with_logits(D(b, cond=a), torch.ones(4, 1, 6, 6)))
    loss_g, terms = obj.loss("G", batch, ctx)
    assert ctx == {}  # the G step took the D step's fake batch
    assert torch.allclose(terms["l1"], (fake - b).abs().mean())
    assert torch.allclose(loss_g, terms["g_fake"] + 100.0 * terms["l1"])
    assert all(p.requires_grad for p in D.parameters())  # D is unfrozen again after the G step
    loss_g10, terms10 = _small(lambda_l1=10.0).loss("G", batch, {})
    assert torch.allclose(loss_g10, terms10["g_fake"] + 10.0 * terms10["l1"])


def test_generator_step_sends_no_gradient_into_d() -> None:
    obj = _small()
    loss, _ = obj.loss("G", obj.example_batch(2), {})
    loss.backward()
    assert all(p.grad is None for p in obj.networks["D"].parameters())
    assert all(p.grad is not None for p in obj.networks["G"].parameters())


def test_l1_alone_has_no_gan_term_and_no_d_phase() -> None:
    obj = gz.create_objective("pix2pix.emoji_32_l1", generator_kwargs={"ngf": 8})
    assert [p.name for p in obj.phases] == ["G"]
    batch = obj.example_batch(2)
    loss, terms = obj.loss("G", batch, {})
    assert set(terms) == {"l1"} and torch.allclose(loss, 100.0 * terms["l1"])


def test_adam_settings_and_direction() -> None:
    obj = _small()
    assert {(p.name, p.lr, p.betas) for p in obj.phases} == {("D", 2e-4, (0.5, 0.999)), ("G", 2e-4, (0.5, 0.999))}
    swapped = _small(direction="BtoA")
    a, b = torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32)
    got_a, got_b = swapped.pair({"image": a, "image_b": b})
    assert got_a is b and got_b is a
    with pytest.raises(KeyError, match="image_b"):
        swapped.loss("G", {"image": a}, {})


def test_test_time_modes() -> None:
    """Default sampling runs G as in training (batch statistics, dropout as noise) without touching its running
    statistics; sample_norm="running" + no dropout is junyanz --eval: deterministic and equal to G.eval()."""
    torch.manual_seed(0)
    obj = gz.create_objective("pix2pix.emoji_32", generator_kwargs={"n_downs": 3, "ngf": 8, "dropout_at": "lua"})
    g = obj.networks["G"]
    with torch.no_grad():
        for _ in range(3):
            g.train()(torch.randn(8, 3, 32, 32))  # give it running statistics unlike the batch's
    obj.eval()
    batch = obj.example_batch(4)
    running = {k: v.clone() for k, v in g.state_dict().items()}
    noisy = obj.sample(4, batch, seed=0)
    assert torch.equal(noisy, obj.sample(4, batch, seed=0)) and not torch.allclose(noisy, obj.sample(4, batch, seed=1))
    assert all(torch.equal(v, g.state_dict()[k]) for k, v in running.items())  # statistics untouched
    assert not g.training  # modes restored
    det = gz.create_objective("pix2pix.emoji_32", sample_norm="running", sample_dropout=False,
                              generator_kwargs={"n_downs": 3, "ngf": 8, "dropout_at": "lua"})
    det.load_state_dict(obj.state_dict())
    det.eval()
    with torch.no_grad():
        expected = det.networks["G"](batch["image"])
    assert torch.equal(det.sample(4, batch, seed=0), det.sample(4, batch, seed=1))
    assert torch.allclose(det.sample(4, batch, seed=0), expected)
    assert not torch.allclose(noisy, expected, atol=1e-3)


def test_colorize_objective_samples_rgb() -> None:
    kwargs = {"generator_kwargs": {"ngf": 8}, "discriminator_kwargs": {"ndf": 8}}
    obj = gz.create_objective("pix2pix.colorize_32", **kwargs).eval()
    batch = obj.example_batch(2)
    assert batch["image"].shape == (2, 1, 32, 32) and batch["image_b"].shape == (2, 2, 32, 32)
    out = obj.sample(2, batch)
    assert out.shape == (2, 3, 32, 32) and out.min() >= -1 and out.max() <= 1
    raw = gz.create_objective("pix2pix.colorize_32", output="image", **kwargs).eval()
    raw.load_state_dict(obj.state_dict())
    ab = raw.sample(2, batch)  # the same G, same seed: its ab output
    assert ab.shape == (2, 2, 32, 32)
    assert torch.allclose(out, pix2pix_to_rgb(batch["image"], ab))  # L from the input, ab from G


# -- Lab ---------------------------------------------------------------------------------------------------------


def _skimage_color():  # type: ignore[no-untyped-def]
    if importlib.util.find_spec("skimage") is None:
        pytest.skip("scikit-image is not installed ('pip install scikit-image'): the Lab reference is skimage.color")
    from skimage import color

    return color


def test_lab_agrees_with_scikit_image() -> None:
    color = _skimage_color()
    rng = np.random.default_rng(0)
    rgb = rng.random((16, 16, 3))
    rgb[0, :4] = [[0, 0, 0], [1, 1, 1], [0.02, 0.03, 0.01], [1, 0, 0]]  # black, white, the linear toe, a primary
    ours = rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    assert np.abs(ours - color.rgb2lab(rgb)).max() < 1e-4
    lab = color.rgb2lab(rgb)
    lab_wide = lab + rng.normal(0, 20, lab.shape) * [0, 1, 1]  # also ab outside the sRGB gamut: clipped alike
    for x in (lab, lab_wide):
        back = lab_to_rgb(torch.from_numpy(x).permute(2, 0, 1)).permute(1, 2, 0).numpy()
        assert np.abs(back - color.lab2rgb(x)).max() < 1e-4


def test_lab_round_trip_is_differentiable_and_batched() -> None:
    rgb = torch.rand(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    back = lab_to_rgb(rgb_to_lab(rgb))
    assert torch.allclose(back, rgb, atol=1e-6)
    back.sum().backward()
    assert torch.isfinite(rgb.grad).all()
    a, b = rgb_to_pix2pix(rgb.detach() * 2 - 1)
    assert a.shape == (2, 1, 8, 8) and b.shape == (2, 2, 8, 8) and a.min() >= -1 and a.max() <= 1
    assert torch.allclose(pix2pix_to_rgb(a, b), rgb.detach() * 2 - 1, atol=1e-6)
    zero = torch.zeros(1, 3, 4, 4, requires_grad=True)
    rgb_to_lab(zero).sum().backward()
    assert torch.isfinite(zero.grad).all()  # no NaN from the cube root at 0
    with pytest.raises(gz.ShapeError, match=r"\(\.\.\., 3, H, W\)"):
        rgb_to_lab(torch.rand(2, 4, 8, 8))


# -- data --------------------------------------------------------------------------------------------------------


def test_edge_map_marks_exactly_the_boundary() -> None:
    image = -torch.ones(3, 16, 16)
    image[:, 4:12, 4:12] = 1.0  # a white square on black
    edges = edge_map(image)
    assert edges.shape == (1, 16, 16) and set(edges.unique().tolist()) == {-1.0, 1.0}
    on = edges[0] < 0
    assert on[4, 4] and on[3, 8] and on[11, 8]  # both sides of each boundary
    assert not on[8, 8] and not on[0, 0] and not on[1, 8]  # flat regions inside and outside
    assert int(on.sum()) == 10 * 10 - 6 * 6  # the 2-pixel ring rows/cols 3..12 around the boundary, corners included


def test_paired_tasks() -> None:
    rgb = torch.rand(3, 8, 8) * 2 - 1
    gray = make_pair("gray", {"image": rgb}, channels=None)
    assert gray["image"].shape == (1, 8, 8) and gray["image_b"] is rgb
    assert torch.allclose(gray["image"][0], 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])
    assert make_pair("gray", {"image": rgb}, channels=3)["image"].shape == (3, 8, 8)
    lab = make_pair("lab", {"image": rgb})
    assert lab["image"].shape == (1, 8, 8) and lab["image_b"].shape == (2, 8, 8)
    with pytest.raises(gz.GanzooError, match="paired source"):
        make_pair("emoji", {"image": rgb})


def _write_ab(folder: Path, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(len(str(folder)))
    pairs = []
    for i in range(n):
        a, b = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(np.concatenate([a, b], axis=1)).save(folder / f"{i}.png")  # A left, B right
        pairs.append((a, b))
    return pairs


def test_ab_folder_dataset(tmp_path: Path) -> None:
    train_pairs, _ = _write_ab(tmp_path / "train", 3), _write_ab(tmp_path / "test", 2)
    ds = gz.create_dataset("pix2pix.folder", root=str(tmp_path), split="train")
    assert len(ds) == 3
    item = ds[1]
    a, b = train_pairs[1]
    assert torch.allclose(item["image"], torch.from_numpy(a).permute(2, 0, 1).float() / 127.5 - 1)
    assert torch.allclose(item["image_b"], torch.from_numpy(b).permute(2, 0, 1).float() / 127.5 - 1)
    flipped = gz.create_dataset("pix2pix.folder", root=str(tmp_path), split="test", direction="BtoA")
    assert len(flipped) == 2 and not torch.equal(flipped[0]["image"], gz.create_dataset(
        "pix2pix.folder", root=str(tmp_path), split="test")[0]["image"])
    with pytest.raises(gz.GanzooError, match="root="):
        gz.create_dataset("pix2pix.folder")


def _emoji_available() -> bool:
    try:
        gz.create_dataset("pix2pix.emoji", split="test", image_size=16)
    except gz.GanzooError:
        return False
    return True


@pytest.mark.skipif(not _emoji_available(), reason="needs the emoji package and the Noto/Symbola Debian fonts")
def test_emoji_pairs_are_line_art_to_colour() -> None:
    ds = gz.create_dataset("pix2pix.emoji", split="test", image_size=16)
    item = ds[0]
    a, b = item["image"], item["image_b"]
    assert a.shape == b.shape == (3, 16, 16)
    assert torch.equal(a[0], a[1]) and torch.equal(a[1], a[2])  # Symbola: grey repeated to RGB
    assert not (torch.equal(b[0], b[1]) and torch.equal(b[1], b[2]))  # Noto: colour
    source = gz.create_dataset("emoji.pairs", split="test", image_size=16, keywords=False)[0]
    assert torch.equal(a[:1], source["image_b"]) and torch.equal(b, source["image"])
    edges = gz.create_dataset("pix2pix.edges", split="test", image_size=16)
    assert len(edges) > len(ds) and set(edges[0]["image"].unique().tolist()) <= {-1.0, 1.0}
    assert PairedCfg().channels == 3


# -- learning outcome --------------------------------------------------------------------------------------------


def heldout_l1(objective: nn.Module, data: torch.utils.data.Dataset) -> float:
    batch = {k: torch.stack([data[i][k] for i in range(len(data))]) for k in ("image", "image_b")}
    objective.eval()
    fake = objective.sample(len(data), batch, seed=0)
    return float((fake - batch["image_b"]).abs().mean())


@pytest.mark.slow
@pytest.mark.skipif(not _emoji_available(), reason="needs the emoji package and the Noto/Symbola Debian fonts")
def test_pix2pix_learns_grayscale_to_colour(tmp_path: Path) -> None:
    """300 steps (batch 16) of pix2pix.emoji_32 (L1 + cGAN) on grey → colour Noto emoji (train split) bring the
    held-out L1 of G(A) to B (test split, eval mode: running statistics, no dropout) below 0.5× the untrained
    generator's, computed here. (Line art → colour, pix2pix.emoji, is harder: 400 steps gave 0.43 vs 0.72.)"""
    test = gz.create_dataset("pix2pix.gray", split="test")
    torch.manual_seed(0)
    objective = gz.create_objective("pix2pix.emoji_32", sample_norm="running", sample_dropout=False)
    untrained = heldout_l1(objective, test)
    train(objective, gz.create_dataset("pix2pix.gray", split="train"), tmp_path,
          TrainCfg(steps=300, batch_size=16, seed=0, log_every=100, sample_every=0, checkpoint_every=0,
                   progress=False, tensorboard=False))
    trained = heldout_l1(objective, test)
    print(f"held-out L1: untrained {untrained:.4f}, trained {trained:.4f}")
    assert untrained > 0.4, untrained
    assert trained < 0.5 * untrained, (trained, untrained)
