"""DCGAN against its specification (docs: models.md §1 facts): layer shapes, parameter counts, init, the reference
weights layout, the training step, and a learning outcome on held-out real data."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from ganzoo_dcgan.model import stage_plan
from torch import nn

import ganzoo_core as gz
from ganzoo_core.ops import BatchNormAct2d
from ganzoo_core.testing import check_plugin, check_refused
from ganzoo_core.training import TrainCfg, train


def test_plugin_conformance() -> None:
    names = check_plugin("ganzoo_dcgan")
    assert "objective dcgan.28" in names


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_reference_parameter_counts() -> None:
    assert n_params(gz.create_generator("dcgan.64")) == 3_576_704
    assert n_params(gz.create_discriminator("dcgan.64")) == 2_765_568


def _shapes(module: nn.Module, x: torch.Tensor) -> list[tuple[str, tuple[int, ...]]]:
    out = []
    for layer in module.main:
        x = layer(x)
        out.append((type(layer).__name__, tuple(x.shape[1:])))
    return out


def test_generator_64_layer_by_layer() -> None:
    g = gz.create_generator("dcgan.64").eval()
    shapes = _shapes(g, torch.randn(2, 100, 1, 1))
    assert [s for name, s in shapes if name == "ConvTranspose2d"] == [
        (512, 4, 4), (256, 8, 8), (128, 16, 16), (64, 32, 32), (3, 64, 64)]
    # BatchNorm + ReLU run as one norm_act op; the Identity holds the ReLU's pytorch/examples slot
    assert [name for name, _ in shapes] == ["ConvTranspose2d", "BatchNormAct2d", "Identity"] * 4 + [
        "ConvTranspose2d", "Tanh"]
    assert all(m.act == "relu" for m in g.modules() if isinstance(m, BatchNormAct2d))
    assert all(m.bias is None for m in g.modules() if isinstance(m, nn.ConvTranspose2d))


def test_discriminator_64_layer_by_layer() -> None:
    d = gz.create_discriminator("dcgan.64").eval()
    shapes = _shapes(d, torch.randn(2, 3, 64, 64))
    assert [s for name, s in shapes if name == "Conv2d"] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4),
                                                             (1, 1, 1)]
    assert [name for name, _ in shapes] == ["Conv2d", "LeakyReLU"] + ["Conv2d", "BatchNormAct2d", "Identity"] * 3 + [
        "Conv2d"]  # no norm on the input layer; logits out (no Sigmoid)
    assert all(m.negative_slope == 0.2 for m in d.modules() if isinstance(m, nn.LeakyReLU))
    assert all((m.act, m.alpha) == ("lrelu", 0.2) for m in d.modules() if isinstance(m, BatchNormAct2d))


@pytest.mark.parametrize(("size", "plan"), [(64, (4, 4)), (32, (4, 3)), (28, (7, 2)), (128, (4, 5)), (14, (7, 1))])
def test_stage_plan(size: int, plan: tuple[int, int]) -> None:
    assert stage_plan(size) == plan
    assert gz.create_generator("dcgan.64", image_size=size, ngf=4)(torch.randn(1, 100)).shape[-1] == size


@pytest.mark.parametrize("size", [48, 30, 4, 7, 0])
def test_unsupported_size_is_refused(size: int) -> None:
    with pytest.raises(gz.ConfigError, match=f"got {size}"):
        gz.create_discriminator("dcgan.64", image_size=size)


def test_paper_init() -> None:
    torch.manual_seed(0)
    g = gz.create_generator("dcgan.64")
    conv = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, nn.ConvTranspose2d)])
    bn = torch.cat([m.weight for m in g.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(conv.std().item() - 0.02) < 0.001 and abs(conv.mean().item()) < 0.001
    assert abs(bn.mean().item() - 1.0) < 0.005 and abs(bn.std().item() - 0.02) < 0.005


def test_wrong_shapes_are_named() -> None:
    with pytest.raises(gz.ShapeError, match=r"\(B, 100\).*got \(2, 64\)"):
        gz.create_generator("dcgan.64")(torch.randn(2, 64))
    with pytest.raises(gz.ShapeError, match=r"\(B, 3, 64, 64\).*got \(2, 1, 28, 28\)"):
        gz.create_discriminator("dcgan.64")(torch.randn(2, 1, 28, 28))


def reference_layout_generator(nz: int = 100, ngf: int = 64, nc: int = 3) -> nn.Sequential:
    """The pytorch/examples 64×64 G, written from its layer table: weights saved from it use these names."""
    widths = [ngf * 8, ngf * 4, ngf * 2, ngf]
    layers: list[nn.Module] = [nn.ConvTranspose2d(nz, widths[0], 4, 1, 0, bias=False), nn.BatchNorm2d(widths[0]),
                               nn.ReLU(True)]
    for a, b in zip(widths, widths[1:]):
        layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True)]
    layers += [nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh()]
    return nn.Sequential(*layers)


def reference_layout_discriminator(ndf: int = 64, nc: int = 3) -> nn.Sequential:
    widths = [ndf, ndf * 2, ndf * 4, ndf * 8]
    layers: list[nn.Module] = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Conv2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.LeakyReLU(0.2, True)]
    layers += [nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid()]
    return nn.Sequential(*layers)


def _randomise(module: nn.Module) -> nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.05)
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return module.eval()


def test_loads_pytorch_examples_weights(tmp_path: Path) -> None:
    ref_g, ref_d = _randomise(reference_layout_generator()), _randomise(reference_layout_discriminator())
    torch.save({"main." + k: v for k, v in ref_g.state_dict().items()}, tmp_path / "netG_epoch_24.pth")
    torch.save({"module.main." + k: v for k, v in ref_d.state_dict().items()}, tmp_path / "netD_epoch_24.pth")
    g = gz.create_generator("dcgan.64", weights=tmp_path / "netG_epoch_24.pth").eval()
    d = gz.create_discriminator("dcgan.64", weights=tmp_path / "netD_epoch_24.pth").eval()  # DataParallel names
    z = torch.randn(4, 100, 1, 1)
    with torch.no_grad():
        assert torch.allclose(g(z), ref_g(z), atol=1e-6)
        images = ref_g(z)
        assert torch.allclose(torch.sigmoid(d(images)), ref_d(images).view(-1), atol=1e-6)


def test_generator_step_reuses_the_discriminator_steps_fake_batch() -> None:
    torch.manual_seed(0)
    obj = gz.create_objective("dcgan.28", generator_kwargs={"ngf": 8}, discriminator_kwargs={"ndf": 8})
    calls = []
    obj.networks["G"].register_forward_hook(lambda *_: calls.append(1))
    batch, ctx = obj.example_batch(4), {}
    loss_d, terms = obj.loss("D", batch, ctx)
    assert set(terms) == {"d_real", "d_fake"} and torch.allclose(loss_d, terms["d_real"] + terms["d_fake"])
    obj.loss("G", batch, ctx)
    assert len(calls) == 1 and ctx == {}


def test_loss_is_swappable_by_name() -> None:
    obj = gz.create_objective("dcgan.28", loss="gan.lsgan")
    assert type(obj.gan_loss).__name__ == "LSGANLoss"
    with pytest.raises(gz.UnknownNameError, match="gan.lsgan"):
        gz.create_objective("dcgan.28", loss="gan.lsgam")
    smoothed = gz.create_objective("dcgan.28", loss_kwargs={"real_label": 0.9})
    logits = torch.full((4,), 3.0)
    # BCE against 0.9 instead of 1: a confident D is penalised on real images
    assert float(smoothed.gan_loss.d_real(logits)) > float(gz.create_objective("dcgan.28").gan_loss.d_real(logits))
    with pytest.raises(gz.GanzooError, match="real_lable"):
        gz.create_objective("dcgan.28", loss_kwargs={"real_lable": 0.9})


def test_r1_penalty_is_the_squared_gradient_norm_on_real_images() -> None:
    torch.manual_seed(0)
    kw = {"generator_kwargs": {"ngf": 8}, "discriminator_kwargs": {"ndf": 8}}
    plain = gz.create_objective("dcgan.28", **kw)
    r1 = gz.create_objective("dcgan.28", r1_gamma=2.0, r1_every=4, **kw)
    r1.load_state_dict(plain.state_dict())
    batch = plain.example_batch(4)
    loss_plain, _ = plain.loss("D", batch, {"step": 8, "noise": gz.seeded_rng(0)})
    loss_r1, terms = r1.loss("D", batch, {"step": 8, "noise": gz.seeded_rng(0)})
    real = batch["image"].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(r1.networks["D"](real).sum(), real)
    expected = grad.flatten(1).square().sum(1).mean()  # E‖∇ₓD(x)‖², computed independently
    assert torch.allclose(terms["r1"], expected, rtol=1e-4)
    # lazy: γ/2 · every · penalty on steps divisible by every, nothing between
    assert torch.allclose(loss_r1 - loss_plain, 0.5 * 2.0 * 4 * expected, rtol=1e-4)
    loss_off, terms_off = r1.loss("D", batch, {"step": 9, "noise": gz.seeded_rng(0)})
    assert "r1" not in terms_off and torch.allclose(loss_off, loss_plain, rtol=1e-5)
    loss_r1.backward()  # the penalty is differentiable in D's weights (double backward)
    assert all(p.grad is not None for p in r1.networks["D"].parameters())
    with pytest.raises(gz.ConfigError):
        gz.create_objective("dcgan.28", r1_every=0)


# -- learning outcome --------------------------------------------------------------------------------------------


def _features(images: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(images, 4).flatten(1)  # (N, 1, 28, 28) → (N, 49): coarse shape, robust to pixel noise


def mmd2(a: torch.Tensor, b: torch.Tensor, scale: float) -> float:
    """Unbiased squared MMD with a Gaussian kernel of bandwidth ``scale`` (squared distance units)."""

    def mean_offdiag(k: torch.Tensor) -> torch.Tensor:
        n = k.shape[0]
        return (k.sum() - k.diagonal().sum()) / (n * (n - 1))

    kernel = lambda x, y: torch.exp(-torch.cdist(x, y).square() / scale)  # noqa: E731
    return float(mean_offdiag(kernel(a, a)) + mean_offdiag(kernel(b, b)) - 2 * kernel(a, b).mean())


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("animal_mnist") is None, reason="needs the animal-mnist package")
def test_dcgan_learns_animal_silhouettes(tmp_path: Path) -> None:
    """300 steps of dcgan.28 on Animal-MNIST train bring samples (eval mode) far closer to the held-out test images
    than the untrained generator's, in MMD on pooled pixels (measured: untrained ≈ 0.85, trained 0.04-0.11)."""
    test = gz.create_dataset("animal_mnist.test")
    real = _features(torch.stack([test[i]["image"] for i in range(len(test))]))
    scale = float(torch.cdist(real, real).square().median())
    torch.manual_seed(0)
    objective = gz.create_objective("dcgan.28")
    objective.eval()
    untrained = mmd2(_features(objective.sample(1000, seed=123)), real, scale)
    train(objective, gz.create_dataset("animal_mnist.train"), tmp_path,
          TrainCfg(steps=300, batch_size=64, seed=0, log_every=100, sample_every=0, checkpoint_every=0))
    objective.eval()
    trained = mmd2(_features(objective.sample(1000, seed=123)), real, scale)
    assert untrained > 0.5, untrained
    assert trained < 0.3 * untrained, (trained, untrained)


# The recipe of experiments/dcgan-fashion32 (formerly the objective dcgan.fashion32): dcgan.32 with its [set] overrides
DCGAN_FASHION32: dict[str, Any] = {"generator_kwargs": {"nc": 1}, "discriminator_kwargs": {"nc": 1}, "lr_d": 5e-5,
                                   "r1_gamma": 1.0, "r1_every": 16, "dataset": "fashion_mnist.train"}


def _fashion_installed() -> bool:
    return bool(gz.get_dataset("fashion_mnist.train").available(gz.get_dataset_cfg("fashion_mnist.train")))


@pytest.mark.slow
@pytest.mark.skipif(not _fashion_installed(), reason="needs the Debian package dataset-fashion-mnist")
def test_dcgan_fashion_mnist_domain_fid(tmp_path: Path) -> None:
    """1,500 steps of the recipe of experiments/dcgan-fashion32 (dcgan.32 grey, lr_d 5e-5, lazy R1) on Fashion-MNIST
    at 32×32 under the bf16 + channels_last policy bring the domain FID against the held-out test split (samples in
    eval mode) to at most 0.4× the untrained generator's, both measured here with the shipped Fashion-MNIST
    classifier."""
    from ganzoo_core.metrics.evaluate import evaluate
    from ganzoo_core.policy import Policy

    torch.manual_seed(0)
    objective = gz.create_objective("dcgan.32", **DCGAN_FASHION32)
    assert objective.networks["G"].cfg.nc == 1 and objective.cfg.r1_gamma > 0
    protocol = {"reference": "fashion_mnist.test", "extractor": "domain.fashion_mnist", "n_samples": 2000,
                "n_reference": 2000, "metrics": ("fid",), "cache_dir": tmp_path / "features"}
    untrained = evaluate(objective, **protocol)["scores"]["fid"]
    train(objective, gz.create_dataset("fashion_mnist.train", image_size=32), tmp_path,
          TrainCfg(steps=1500, batch_size=64, seed=0, log_every=500, sample_every=0, checkpoint_every=0,
                   progress=False, policy=Policy(precision="bf16", channels_last=True)))
    result = evaluate(objective, **protocol, out=tmp_path / "fid.json")
    assert result["protocol"]["samples"]["mode"] == "eval" and (tmp_path / "fid.json").is_file()
    assert untrained > 100, untrained
    assert result["scores"]["fid"] < 0.4 * untrained, (result["scores"]["fid"], untrained)


def test_discriminator_learning_rate_can_differ() -> None:
    phases = {p.name: p.lr for p in gz.create_objective("dcgan.32", lr_d=1e-4).phases}
    assert phases == {"D": 1e-4, "G": 2e-4}
    assert {p.name: p.lr for p in gz.create_objective("dcgan.32").phases} == {"D": 2e-4, "G": 2e-4}


# -- validation at the edge: a bad override fails at create_*, naming the field ------------------------------------


BAD_VALUES = [  # (kind, name, overrides, the field the message must name)
    ("generator", "dcgan.64", {"ngf": 0}, "ngf"),
    ("generator", "dcgan.64", {"nz": 0}, "nz"),
    ("generator", "dcgan.28", {"nc": 0}, "nc"),
    ("generator", "dcgan.64", {"init_std": 0.0}, "init_std"),
    ("generator", "dcgan.64", {"image_size": 48}, "image_size"),
    ("generator", "dcgan.64", {"norm": "batchnorm"}, "norm"),
    ("discriminator", "dcgan.32", {"norm": "batch1d"}, "norm"),  # 1-d BatchNorm cannot take feature maps
    ("discriminator", "dcgan.32", {"ndf": 0}, "ndf"),
    ("block", "dcgan.up", {"act": "swish"}, "act"),
    ("block", "dcgan.down", {"out_channels": 0}, "out_channels"),
    ("objective", "dcgan.64", {"lr": 0.0}, "lr"),
    ("objective", "dcgan.64", {"lr_d": 0.0}, "lr_d"),
    ("objective", "dcgan.64", {"betas": (0.5, 1.0)}, "betas"),
    ("objective", "dcgan.64", {"betas": (1.5, 0.999)}, "betas"),
    ("objective", "dcgan.64", {"betas": (0.5,)}, "betas"),
    ("objective", "dcgan.32", {"r1_gamma": 1.0, "r1_every": 0}, "r1_every"),
    ("objective", "dcgan.32", {"generator_kwargs": {"ngf": 0}}, "ngf"),  # the nested create_generator
]


@pytest.mark.parametrize(("kind", "name", "overrides", "field"), BAD_VALUES,
                         ids=[f"{k}:{n}:{o}" for k, n, o, _ in BAD_VALUES])
def test_bad_value_fails_at_create_naming_the_field(kind: str, name: str, overrides: dict[str, Any], field: str) -> None:
    check_refused(kind, name, overrides, field)


@pytest.mark.parametrize("overrides", [
    {"ngf": 1, "nz": 1, "nc": 1}, {"norm": "group", "ngf": 32}, {"norm": "identity"}, {"norm": "instance_affine"},
])
def test_edge_values_build_working_networks(overrides: dict[str, Any]) -> None:
    g = gz.create_generator("dcgan.28", **overrides)
    assert g(*g.example_inputs(2)).shape == g.output_shapes(2)


def test_adam_betas_may_start_at_zero() -> None:
    obj = gz.create_objective("dcgan.28", betas=(0.0, 0.99))
    assert [p.betas for p in obj.phases] == [(0.0, 0.99)] * 2
