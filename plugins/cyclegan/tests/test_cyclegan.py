"""CycleGAN against its specification (models.md §5 and §4.2): parameter counts of the reference networks, layer
shapes, the reference weights layout, the image pool, the loss terms, the data readers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ganzoo_cyclegan.data import UnpairedDataset
from ganzoo_cyclegan.model import ImagePool, patch_output_size, receptive_field
from PIL import Image
from torch import nn

import ganzoo_core as gz
from ganzoo_core.data.schema import ArrayBundle, BundleDataset, write_h5
from ganzoo_core.ops import InstanceNormAct2d
from ganzoo_core.testing import bad_value_cases, check_plugin, check_refused


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_plugin_conformance() -> None:
    names = check_plugin("ganzoo_cyclegan")
    assert {"objective cyclegan.small32", "generator cyclegan.resnet_9blocks", "discriminator cyclegan.patch70"} <= set(
        names)


# -- validation at the edge: a bad override fails at create_*, naming the field ---------------------------------

BAD_VALUES: dict[str, tuple[Any, ...]] = {  # field → values every registered config with that field refuses
    "image_size": (0, -1), "in_channels": (0, -1), "out_channels": (0, -1), "ngf": (0, -1), "ndf": (0, -1),
    "n_blocks": (0, -1), "n_layers": (0, -1), "norm": ("group", "none"), "init_std": (0.0, -0.02),
    "lambda_a": (-1.0,), "lambda_b": (-1.0,), "lambda_idt": (-0.5,), "pool_size": (-1,), "lr": (0.0, -1.0),
    "betas": ((1.5, 0.999), (0.5, 1.0), (-0.1, 0.999)), "source": ("maps",), "channels": (0, 2), "seed": (-1,),
}
CASES = bad_value_cases("cyclegan", BAD_VALUES)


@pytest.mark.parametrize(("kind", "name", "field", "value"), CASES, ids=[f"{n}-{f}={x!r}" for _, n, f, x in CASES])
def test_bad_override_fails_at_create(kind: str, name: str, field: str, value: Any) -> None:
    check_refused(kind, name, {field: value}, field)


def test_patchgan_too_small_for_its_layers_fails_at_create() -> None:
    with pytest.raises(gz.ConfigError, match=r"image_size 16 is too small for n_layers=3"):
        gz.create_discriminator("cyclegan.patch70", image_size=16)
    assert gz.create_discriminator("cyclegan.patch70", image_size=24).output_shapes(1) == (1, 1, 1, 1)


# -- parameter counts, from the layer table ---------------------------------------------------------------------


def resnet_generator_count(ngf: int, n_blocks: int, c: int = 3) -> int:
    """c7s1-ngf, d(2ngf), d(4ngf), R(4ngf) × n_blocks, u(2ngf), u(ngf), c7s1-c; every conv has a bias."""
    conv = lambda cin, cout, k: cin * cout * k * k + cout  # noqa: E731
    return (conv(c, ngf, 7) + conv(ngf, 2 * ngf, 3) + conv(2 * ngf, 4 * ngf, 3)
            + n_blocks * 2 * conv(4 * ngf, 4 * ngf, 3)
            + conv(4 * ngf, 2 * ngf, 3) + conv(2 * ngf, ngf, 3) + conv(ngf, c, 7))


def test_reference_parameter_counts() -> None:
    assert resnet_generator_count(64, 9) == 11_378_179 and resnet_generator_count(64, 6) == 7_837_699
    assert n_params(gz.create_generator("cyclegan.resnet_9blocks")) == 11_378_179
    assert n_params(gz.create_generator("cyclegan.resnet_6blocks")) == 7_837_699
    # 70×70 PatchGAN, InstanceNorm: 3→64 (no norm), 64→128, 128→256, 256→512 (stride 1), 512→1; all k4 with bias
    table = sum(cin * cout * 16 + cout for cin, cout in ((3, 64), (64, 128), (128, 256), (256, 512), (512, 1)))
    assert table == 2_764_737
    assert n_params(gz.create_discriminator("cyclegan.patch70")) == 2_764_737
    assert n_params(gz.create_generator("cyclegan.small32")) == resnet_generator_count(32, 3)


def test_patchgan_receptive_field_and_output_size() -> None:
    assert [receptive_field(n) for n in (1, 3, 5)] == [16, 70, 286]
    assert patch_output_size(256, 3) == 30 and patch_output_size(128, 3) == 14
    d = gz.create_discriminator("cyclegan.patch70", ndf=4)
    assert d(torch.randn(1, 3, 256, 256)).shape == (1, 1, 30, 30)


# -- layer-by-layer shapes ----------------------------------------------------------------------------------------


def _trace(model: nn.Sequential, x: torch.Tensor) -> list[tuple[str, tuple[int, ...]]]:
    out = []
    for layer in model:
        x = layer(x)
        out.append((type(layer).__name__, tuple(x.shape[1:])))
    return out


def test_generator_layer_by_layer() -> None:
    g = gz.create_generator("cyclegan.resnet_9blocks", ngf=8)  # the 256 layout at 1/8 width
    trace = _trace(g.model, torch.randn(1, 3, 256, 256))
    convs = [s for name, s in trace if name in ("Conv2d", "ConvTranspose2d", "ResnetBlock")]
    assert convs == [(8, 256, 256), (16, 128, 128), (32, 64, 64)] + [(32, 64, 64)] * 9 + [
        (16, 128, 128), (8, 256, 256), (3, 256, 256)]
    names = [name for name, _ in trace]
    assert names[:4] == ["ReflectionPad2d", "Conv2d", "InstanceNormAct2d", "Identity"]
    assert names[-3:] == ["ReflectionPad2d", "Conv2d", "Tanh"]
    block = g.model[10].conv_block
    assert [type(m).__name__ for m in block] == ["ReflectionPad2d", "Conv2d", "InstanceNormAct2d", "Identity",
                                                "ReflectionPad2d", "Conv2d", "InstanceNormAct2d"]
    assert block[2].act == "relu" and block[6].act == "linear"  # no ReLU after the block's second norm
    norms = [m for m in g.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert all(not m.affine and not m.track_running_stats for m in norms)
    strided = [m for m in g.modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
    assert [m.padding for m in strided] == [(1, 1), (1, 1)]  # zero padding in the downsampling convs
    ups = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert all(m.output_padding == (1, 1) for m in ups)


def test_residual_block_adds_its_input() -> None:
    g = gz.create_generator("cyclegan.small32")
    block = g.model[10]
    with torch.no_grad():
        for p in block.conv_block[5].parameters():
            p.zero_()  # the second conv outputs 0, its InstanceNorm 0: the block is the identity
        x = torch.randn(2, 128, 8, 8)
        assert torch.allclose(block(x), x)


def test_discriminator_layer_by_layer() -> None:
    d = gz.create_discriminator("cyclegan.patch70", ndf=8)
    trace = _trace(d.model, torch.randn(1, 3, 256, 256))
    assert [s for name, s in trace if name == "Conv2d"] == [(8, 128, 128), (16, 64, 64), (32, 32, 32), (64, 31, 31),
                                                           (1, 30, 30)]
    assert [name for name, _ in trace] == ["Conv2d", "LeakyReLU"] + ["Conv2d", "InstanceNormAct2d", "Identity"] * 3 + [
        "Conv2d"]  # no norm on the first layer, logits out
    assert all((m.act, m.alpha) == ("lrelu", 0.2) for m in d.modules() if isinstance(m, InstanceNormAct2d))


def test_reference_init() -> None:
    torch.manual_seed(0)
    g = gz.create_generator("cyclegan.resnet_6blocks")
    weights = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    biases = torch.cat([m.bias for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    assert abs(weights.std().item() - 0.02) < 0.001 and abs(weights.mean().item()) < 0.001
    assert biases.abs().max() == 0


def test_batch_norm_option_drops_the_biases() -> None:
    g = gz.create_generator("cyclegan.small32", norm="batch")
    convs = [m for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert all(m.bias is None for m in convs[:-1]) and convs[-1].bias is not None
    with pytest.raises(gz.ConfigError, match="'group'"):
        gz.create_generator("cyclegan.small32", norm="group")


def test_bad_inputs_are_named() -> None:
    g = gz.create_generator("cyclegan.small32")
    with pytest.raises(gz.ShapeError, match=r"multiples of 4, got \(1, 3, 30, 30\)"):
        g(torch.randn(1, 3, 30, 30))
    with pytest.raises(gz.ShapeError, match=r"\(B, 3, H, W\), got \(1, 1, 32, 32\)"):
        gz.create_discriminator("cyclegan.small32")(torch.randn(1, 1, 32, 32))
    with pytest.raises(gz.ConfigError, match="got 30"):
        gz.create_generator("cyclegan.small32", image_size=30)


# -- the reference weights layout ---------------------------------------------------------------------------------


def reference_layout_generator(ngf: int, n_blocks: int, stale_stats: bool = False) -> nn.Sequential:
    """The reference ResnetGenerator's ``model`` Sequential, written from the layer table with plain modules."""
    norm = lambda c: nn.InstanceNorm2d(c, track_running_stats=stale_stats)  # noqa: E731

    class Block(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.conv_block = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), norm(c), nn.ReLU(True),
                                            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), norm(c))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.conv_block(x)

    layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), norm(ngf), nn.ReLU(True)]
    for c in (ngf, 2 * ngf):
        layers += [nn.Conv2d(c, 2 * c, 3, 2, 1), norm(2 * c), nn.ReLU(True)]
    layers += [Block(4 * ngf) for _ in range(n_blocks)]
    for c in (4 * ngf, 2 * ngf):
        layers += [nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1), norm(c // 2), nn.ReLU(True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def reference_layout_discriminator(ndf: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(3, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
    for cin, cout, stride in ((ndf, 2 * ndf, 2), (2 * ndf, 4 * ndf, 2), (4 * ndf, 8 * ndf, 1)):
        layers += [nn.Conv2d(cin, cout, 4, stride, 1), nn.InstanceNorm2d(cout), nn.LeakyReLU(0.2, True)]
    layers.append(nn.Conv2d(8 * ndf, 1, 4, 1, 1))
    return nn.Sequential(*layers)


def _randomise(module: nn.Module) -> nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.05)
    return module.eval()


class _Wrapper(nn.Module):  # the reference saves ``net.state_dict()`` of a module whose Sequential is ``model``
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model


def test_loads_reference_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ref_g = _randomise(_Wrapper(reference_layout_generator(16, 6)))
    ref_d = _randomise(_Wrapper(reference_layout_discriminator(16)))
    torch.save(ref_g.state_dict(), tmp_path / "latest_net_G_A.pth")
    torch.save(ref_d.state_dict(), tmp_path / "latest_net_D_A.pth")
    g = gz.create_generator("cyclegan.resnet_6blocks", ngf=16, weights=tmp_path / "latest_net_G_A.pth").eval()
    d = gz.create_discriminator("cyclegan.patch70_128", ndf=16, weights=tmp_path / "latest_net_D_A.pth").eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(g(x), ref_g.model(x), atol=1e-5)
        assert torch.allclose(d(x), ref_d.model(x), atol=1e-5)


def test_hook_drops_stale_instance_norm_statistics(tmp_path: Path) -> None:
    """Checkpoints from before the reference set track_running_stats=False carry running stats the networks lack;
    the convert hook drops them (and DataParallel's ``module.`` prefix)."""
    torch.manual_seed(0)
    ref = _randomise(_Wrapper(reference_layout_generator(8, 2, stale_stats=True)))
    state = {"module." + k: v for k, v in ref.state_dict().items()}
    assert any(k.endswith("running_mean") for k in state)
    torch.save(state, tmp_path / "old_net_G.pth")
    g = gz.create_generator("cyclegan.small32", ngf=8, n_blocks=2, weights=tmp_path / "old_net_G.pth").eval()
    ref.model.train()  # a tracked InstanceNorm normalises with instance statistics in train mode, as ours always does
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(g(x), ref.model(x), atol=1e-5)


# -- image pool ---------------------------------------------------------------------------------------------------


def test_pool_fills_then_swaps_half_the_time() -> None:
    pool = ImagePool(4, (1, 2, 2))
    first = torch.arange(4.0)[:, None, None, None].expand(4, 1, 2, 2)
    assert torch.equal(pool.query(first), first) and int(pool.count) == 4  # filling: returns what it stores
    assert torch.equal(pool.images, first)
    gen = torch.Generator().manual_seed(0)
    returned_old, trials = 0, 400
    for t in range(trials):
        new = torch.full((1, 1, 2, 2), 100.0 + t)
        before = pool.images.clone()
        out = pool.query(new, gen)
        if out[0, 0, 0, 0] < 100 + t:  # an old image came back: it was in the pool and the new one took its place
            returned_old += 1
            assert any(torch.equal(out[0], b) for b in before)
            assert (pool.images == 100.0 + t).all(dim=(1, 2, 3)).sum() == 1
        else:
            assert torch.equal(pool.images, before)  # the new image passed through, the pool is unchanged
    assert 0.4 < returned_old / trials < 0.6


def test_pool_zero_passes_through_and_shapes_are_checked() -> None:
    x = torch.randn(3, 1, 2, 2, requires_grad=True)
    out = ImagePool(0, (1, 2, 2)).query(x)
    assert torch.equal(out, x) and not out.requires_grad
    with pytest.raises(gz.ShapeError, match=r"\(1, 2, 2\)"):
        ImagePool(2, (1, 2, 2)).query(torch.randn(1, 3, 2, 2))


def test_pool_is_saved_with_the_objective(tmp_path: Path) -> None:
    torch.manual_seed(0)
    obj = gz.create_objective("cyclegan.small32", generator_kwargs={"ngf": 4, "n_blocks": 1},
                              discriminator_kwargs={"ndf": 4})
    batch, ctx = obj.example_batch(3), {}
    obj.loss("G", batch, ctx)
    obj.loss("D", batch, ctx)
    assert int(obj.pool_a.count) == 3 and int(obj.pool_b.count) == 3
    gz.save(obj, tmp_path / "obj.safetensors")
    loaded = gz.load(tmp_path / "obj.safetensors")
    assert int(loaded.pool_b.count) == 3 and torch.equal(loaded.pool_b.images, obj.pool_b.images)
    assert loaded.pool_b.images[:3].abs().sum() > 0


# -- loss terms ---------------------------------------------------------------------------------------------------


def _tiny(**overrides: object) -> nn.Module:
    torch.manual_seed(0)
    return gz.create_objective("cyclegan.small32", generator_kwargs={"ngf": 4, "n_blocks": 1},
                               discriminator_kwargs={"ndf": 4}, **overrides)


def test_generator_phase_terms_match_their_definitions() -> None:
    obj = _tiny().eval()
    batch, ctx = obj.example_batch(2), {}
    a, b = batch["image"], batch["image_b"]
    total, terms = obj.loss("G", batch, ctx)
    n = obj.networks
    with torch.no_grad():
        fake_b, fake_a = n["G_A"](a), n["G_B"](b)
        expected = {
            "gan_a": ((n["D_A"](fake_b) - 1) ** 2).mean(), "gan_b": ((n["D_B"](fake_a) - 1) ** 2).mean(),
            "cycle_a": 10 * (n["G_B"](fake_b) - a).abs().mean(), "cycle_b": 10 * (n["G_A"](fake_a) - b).abs().mean(),
            "idt_a": 5 * (n["G_A"](b) - b).abs().mean(), "idt_b": 5 * (n["G_B"](a) - a).abs().mean(),
        }
    assert set(terms) == set(expected)
    for key, value in expected.items():
        assert torch.allclose(terms[key], value, atol=1e-5), key
    assert torch.allclose(total, sum(expected.values()), atol=1e-5)
    assert torch.equal(ctx["fake_b"], fake_b) and not ctx["fake_b"].requires_grad


def test_generator_phase_gives_no_discriminator_weight_gradients() -> None:
    obj = _tiny()
    total, _ = obj.loss("G", obj.example_batch(2), {})
    total.backward()
    assert all(p.grad is None for k in ("D_A", "D_B") for p in obj.networks[k].parameters())
    assert all(p.grad is not None for k in ("G_A", "G_B") for p in obj.networks[k].parameters())
    assert all(p.requires_grad for p in obj.networks["D_A"].parameters())  # restored after the forward pass


def test_discriminator_phase_is_halved_lsgan_on_pooled_fakes() -> None:
    obj = _tiny(pool_size=0).eval()
    batch, ctx = obj.example_batch(2), {}
    obj.loss("G", batch, ctx)
    fake_a, fake_b = ctx["fake_a"], ctx["fake_b"]
    total, terms = obj.loss("D", batch, ctx)
    n = obj.networks
    with torch.no_grad():
        d_a = 0.5 * (((n["D_A"](batch["image_b"]) - 1) ** 2).mean() + (n["D_A"](fake_b) ** 2).mean())
        d_b = 0.5 * (((n["D_B"](batch["image"]) - 1) ** 2).mean() + (n["D_B"](fake_a) ** 2).mean())
    assert torch.allclose(terms["d_a"], d_a, atol=1e-6) and torch.allclose(terms["d_b"], d_b, atol=1e-6)
    assert torch.allclose(total, d_a + d_b, atol=1e-6) and "fake_a" not in ctx
    total.backward()
    assert all(p.grad is None for k in ("G_A", "G_B") for p in n[k].parameters())  # fakes are detached


def test_identity_off_and_channel_mismatch() -> None:
    _, terms = _tiny(lambda_idt=0.0).loss("G", _tiny().example_batch(2), {})
    assert "idt_a" not in terms and "cycle_a" in terms
    with pytest.raises(gz.ConfigError, match="lambda_idt=0"):
        gz.create_objective("cyclegan.small32", generator_kwargs={"in_channels": 1})
    obj = gz.create_objective("cyclegan.small32", lambda_idt=0.0, generator_kwargs={"in_channels": 1, "ngf": 4})
    batch = obj.example_batch(2)
    assert batch["image"].shape[1] == 1 and batch["image_b"].shape[1] == 3
    assert obj.networks["D_B"].cfg.in_channels == 1 and obj.networks["D_A"].cfg.in_channels == 3
    for phase in ("G", "D"):
        obj.loss(phase, batch, {})[0].backward()


def test_phases_and_schedule_follow_the_reference() -> None:
    obj = _tiny()
    assert [(p.name, p.networks, p.lr, p.betas) for p in obj.phases] == [
        ("G", ("G_A", "G_B"), 2e-4, (0.5, 0.999)), ("D", ("D_A", "D_B"), 2e-4, (0.5, 0.999))]
    assert type(obj.gan_loss).__name__ == "LSGANLoss"
    from ganzoo_core.schedules import ScheduleCfg, make_scheduler

    opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=2e-4)
    sched = make_scheduler(opt, ScheduleCfg(kind="linear"), total_steps=200)  # 100 constant + 100 linear
    lrs = []
    for _ in range(200):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == lrs[100] == 2e-4 and lrs[150] == pytest.approx(1e-4) and lrs[199] == pytest.approx(2e-6)


def test_sample_rows_are_input_translation_reconstruction() -> None:
    obj = _tiny().eval()
    batch = obj.example_batch(4)
    images = obj.sample(6, batch=batch)
    with torch.no_grad():
        fake = obj.networks["G_A"](batch["image"][:2])
        assert torch.equal(images[0], batch["image"][0]) and torch.allclose(images[1], fake[0])
        assert torch.allclose(images[5], obj.networks["G_B"](fake)[1])


# -- data ---------------------------------------------------------------------------------------------------------


def _solid(value: int, n: int) -> BundleDataset:
    return BundleDataset(ArrayBundle(images=np.full((n, 8, 8, 1), value, np.uint8)))


def test_unpaired_dataset_cycles_a_and_permutes_b() -> None:
    a = BundleDataset(ArrayBundle(images=np.arange(3, dtype=np.uint8)[:, None, None, None].repeat(4, 1).repeat(4, 2)))
    b = BundleDataset(ArrayBundle(images=(10 + np.arange(5, dtype=np.uint8))[:, None, None, None].repeat(4, 1)
                                  .repeat(4, 2)))
    data = UnpairedDataset(a, b, channels=3, seed=1)
    assert len(data) == 5
    item = data[4]
    assert item["image"].shape == (3, 4, 4) and item["image_b"].shape == (3, 4, 4)
    to_uint8 = lambda t: round(float((t[0, 0, 0] + 1) * 127.5))  # noqa: E731
    assert [to_uint8(data[i]["image"]) for i in range(5)] == [0, 1, 2, 0, 1]  # index mod |A|
    b_seen = [to_uint8(data[i]["image_b"]) for i in range(5)]
    assert sorted(b_seen) == [10, 11, 12, 13, 14] and b_seen != [10, 11, 12, 13, 14]  # each B once, shuffled
    assert b_seen == [to_uint8(UnpairedDataset(a, b, seed=1)[i]["image_b"]) for i in range(5)]  # seeded
    with pytest.raises(IndexError):
        data[5]


def test_horse2zebra_is_horses_and_zebras() -> None:
    pytest.importorskip("animal_mnist")
    train = gz.create_dataset("cyclegan.horse2zebra")
    test = gz.create_dataset("cyclegan.horse2zebra", split="test")
    assert (train.n_a, train.n_b, test.n_a, test.n_b) == (900, 900, 100, 100)
    assert train[0]["image"].shape == (3, 32, 32)
    labels = gz.create_dataset("animal_mnist.test").labels
    assert (labels == 7).sum() == 100 and (labels == 9).sum() == 100
    with pytest.raises(gz.GanzooError, match="'val'"):
        gz.create_dataset("cyclegan.horse2zebra", split="val")


def _cyclegan_folder(root: Path) -> None:
    for folder, value, n in (("trainA", 0, 3), ("trainB", 255, 2), ("testA", 0, 1), ("testB", 255, 1)):
        (root / folder).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((12, 12, 3), value, np.uint8)).save(root / folder / f"{i}.png")


def test_folder_and_h5_sources(tmp_path: Path) -> None:
    _cyclegan_folder(tmp_path / "h2z")
    data = gz.create_dataset("cyclegan.folder", root=str(tmp_path / "h2z"), image_size=8)
    assert (data.n_a, data.n_b, len(data)) == (3, 2, 3)
    assert data[0]["image"].max() == -1 and data[0]["image_b"].min() == 1  # A black, B white
    test = gz.create_dataset("cyclegan.folder", root=str(tmp_path / "h2z"), image_size=8, split="test")
    assert (test.n_a, test.n_b) == (1, 1)
    from ganzoo_core.data.convert import from_cyclegan

    write_h5(from_cyclegan(tmp_path / "h2z"), tmp_path / "h2z.h5", name="h2z", source="test")
    data = gz.create_dataset("cyclegan.h5", path=str(tmp_path / "h2z.h5"), split="train", image_size=8)
    assert (data.n_a, data.n_b) == (3, 2) and data[1]["image"].shape == (3, 8, 8)
    assert data[0]["image"].max() < -0.999 and data[0]["image_b"].min() > 0.999


def test_data_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(gz.GanzooError, match="root="):
        gz.create_dataset("cyclegan.folder")
    write_h5(ArrayBundle(images=np.zeros((2, 4, 4, 1), np.uint8)), tmp_path / "plain.h5", name="p", source="t")
    with pytest.raises(gz.GanzooError, match="no 'domains'"):
        gz.create_dataset("cyclegan.h5", path=str(tmp_path / "plain.h5"))
    with pytest.raises(gz.GanzooError, match="domain B has no images"):
        UnpairedDataset(_solid(0, 2), torch.utils.data.Subset(_solid(0, 2), []))


def test_one_training_step_on_unpaired_data(tmp_path: Path) -> None:
    from ganzoo_core.training import TrainCfg, train

    _cyclegan_folder(tmp_path / "h2z")
    obj = gz.create_objective("cyclegan.small32", generator_kwargs={"ngf": 4, "n_blocks": 1, "image_size": 12},
                              discriminator_kwargs={"ndf": 4, "image_size": 12}, pool_size=2)
    data = gz.create_dataset("cyclegan.folder", root=str(tmp_path / "h2z"), image_size=12)
    result = train(obj, data, tmp_path / "run", TrainCfg(steps=2, batch_size=2, log_every=1, sample_every=0,
                                                          checkpoint_every=0, progress=False, tensorboard=False))
    assert {"loss_G", "loss_D", "G/cycle_a", "D/d_a"} <= set(result.history[-1])
    assert int(gz.load(result.checkpoint).pool_a.count) == 2
    assert F.l1_loss(obj.pool_a.images, torch.zeros_like(obj.pool_a.images)) > 0


def test_metric_horse2zebra_is_the_plugins_scoring_function() -> None:
    """``create_metric`` gives the function itself, so a script's scores are the function's."""
    from ganzoo_cyclegan.evaluate import score

    assert gz.is_metric("cyclegan.horse2zebra") and gz.get_metric_cfg("cyclegan.horse2zebra") is None
    assert gz.create_metric("cyclegan.horse2zebra") is score
