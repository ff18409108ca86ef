"""StackGAN against its specification (models.md §3): parameter counts from the layer tables, layer shapes, the CA
reparameterisation and KL, the matching-aware losses, Stage-II's frozen Stage-I, the pickle reader, and learning."""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from ganzoo_stackgan.data import convert_char_cnn_rnn, read_char_cnn_rnn, read_pickle
from ganzoo_stackgan.model import kl_divergence
from torch import nn

import ganzoo_core as gz
from ganzoo_core.data.schema import DataError
from ganzoo_core.ops import BatchNormAct2d, UpsampleConv2d
from ganzoo_core.testing import check_plugin, check_refused
from ganzoo_core.training import TrainCfg, make_optimizers, train


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_plugin_conformance() -> None:
    names = check_plugin("ganzoo_stackgan")
    assert {"block stackgan.ca", "generator stackgan.s1_64", "generator stackgan.s2_256",
            "objective stackgan.s2_32"} <= set(names)


# -- parameter counts, recomputed from the layer tables -----------------------------------------------------------

def bn(c: int) -> int:
    return 2 * c


def conv(cin: int, cout: int, k: int, bias: bool = False) -> int:
    return cin * cout * k * k + (cout if bias else 0)


CA = 1024 * 256 + 256  # Linear(1024 → 2·128) with bias


def test_official_stage1_counts() -> None:
    g = CA + 228 * 1024 * 16 + 2 * 1024 * 16  # FC(228 → 1024·4·4, no bias) + BatchNorm1d
    g += sum(conv(a, b, 3) + bn(b) for a, b in [(1024, 512), (512, 256), (256, 128), (128, 64)])  # upBlocks
    g += conv(64, 3, 3)
    d = conv(3, 64, 4) + sum(conv(a, b, 4) + bn(b) for a, b in [(64, 128), (128, 256), (256, 512)])
    d += conv(640, 512, 3) + bn(512) + conv(512, 1, 4, bias=True)  # condition joint + k4 s4 logit
    assert (g, d) == (10_301_248, 5_715_713)  # models.md §3.2 [computed]
    assert n_params(gz.create_generator("stackgan.s1_64")) == g
    assert n_params(gz.create_discriminator("stackgan.s1_64")) == d
    assert n_params(gz.create_block("stackgan.ca")) == CA


def test_official_stage2_counts() -> None:
    g = CA + conv(3, 128, 3) + conv(128, 256, 4) + bn(256) + conv(256, 512, 4) + bn(512)  # encoder
    g += conv(640, 512, 3) + bn(512)  # joint with c
    g += 4 * 2 * (conv(512, 512, 3) + bn(512))  # 4 residual blocks
    g += sum(conv(a, b, 3) + bn(b) for a, b in [(512, 256), (256, 128), (128, 64), (64, 32)]) + conv(32, 3, 3)
    d = conv(3, 64, 4) + sum(conv(a, b, 4) + bn(b) for a, b in [(64, 128), (128, 256), (256, 512), (512, 1024),
                                                                (1024, 2048)])
    d += conv(2048, 1024, 3) + bn(1024) + conv(1024, 512, 3) + bn(512)
    d += conv(640, 512, 3) + bn(512) + conv(512, 1, 4, bias=True) + conv(512, 1, 4, bias=True)  # cond + uncond
    assert (g, d) == (26_290_080, 71_269_122)
    assert n_params(gz.create_generator("stackgan.s2_256")) == g
    assert n_params(gz.create_discriminator("stackgan.s2_256")) == d


# -- shapes ------------------------------------------------------------------------------------------------------

def _trace(module: nn.Module, run) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []
    hooks = [m.register_forward_hook(lambda _m, _i, o: shapes.append(tuple(o.shape[1:])))
             for m in module.modules() if isinstance(m, (UpsampleConv2d, nn.Conv2d))]
    with torch.no_grad():
        run()
    for h in hooks:
        h.remove()
    return shapes


def test_stage1_64_layer_by_layer() -> None:
    g = gz.create_generator("stackgan.s1_64").eval()
    z, t = g.example_inputs(1)
    shapes = _trace(g, lambda: g(z, t))
    assert shapes == [(512, 8, 8), (256, 16, 16), (128, 32, 32), (64, 64, 64), (3, 64, 64)]
    assert all(m.act == "relu" for m in g.modules() if isinstance(m, BatchNormAct2d))
    d = gz.create_discriminator("stackgan.s1_64").eval()
    x, c = d.example_inputs(1)
    assert _trace(d, lambda: d(x, c)) == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 4, 4),
                                         (1, 1, 1)]


def test_stage2_256_layer_by_layer() -> None:
    g = gz.create_generator("stackgan.s2_256").eval()
    x, t = g.example_inputs(1)
    shapes = _trace(g, lambda: g(x, t))
    assert shapes[:4] == [(128, 64, 64), (256, 32, 32), (512, 16, 16), (512, 16, 16)]  # encoder, joint
    assert shapes[4:12] == [(512, 16, 16)] * 8  # 4 residual blocks
    assert shapes[12:] == [(256, 32, 32), (128, 64, 64), (64, 128, 128), (32, 256, 256), (3, 256, 256)]
    assert sum(isinstance(m, UpsampleConv2d) for m in g.modules()) == 4  # the upsample_conv op
    d = gz.create_discriminator("stackgan.s2_256").eval()
    x, c = d.example_inputs(1)
    out = d(x, c)
    assert isinstance(out, gz.DiscOutput) and out.logits.shape == out.aux.shape == (1,)
    with torch.no_grad():
        assert tuple(d.features(x).shape[1:]) == (512, 4, 4)


@pytest.mark.parametrize(("s1", "s2", "low", "high"), [("s1_16", "s2_64", 16, 64), ("s1_32", "s2_128", 32, 128),
                                                       ("s1_16", "s2_32", 16, 32)])
def test_small_variants_chain(s1: str, s2: str, low: int, high: int) -> None:
    g1, g2 = gz.create_generator(f"stackgan.{s1}").eval(), gz.create_generator(f"stackgan.{s2}").eval()
    t = torch.randn(2, 512)
    with torch.no_grad():
        image, mu, logvar = g1(torch.randn(2, 100), t)
        out = g2(image, t)[0]
    assert image.shape == (2, 3, low, low) and out.shape == (2, 3, high, high) and mu.shape == logvar.shape == (2, 128)


def test_released_init() -> None:
    torch.manual_seed(0)
    g = gz.create_generator("stackgan.s2_64")
    w = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, (UpsampleConv2d, nn.Conv2d))])
    gamma = torch.cat([m.weight for m in g.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(w.std().item() - 0.02) < 0.001 and abs(gamma.mean().item() - 1) < 0.005


def test_bad_inputs_are_named() -> None:
    g = gz.create_generator("stackgan.s1_16")
    with pytest.raises(gz.ShapeError, match=r"\(B, 512\).*got \(2, 1024\)"):
        g(torch.randn(2, 100), torch.randn(2, 1024))
    with pytest.raises(gz.ShapeError, match=r"\(B, 3, 16, 16\).*got \(2, 3, 32, 32\)"):
        gz.create_generator("stackgan.s2_64")(torch.randn(2, 3, 32, 32), torch.randn(2, 512))
    with pytest.raises(gz.ShapeError, match="cond"):
        gz.create_discriminator("stackgan.s1_16")(torch.randn(2, 3, 16, 16))
    with pytest.raises(gz.ConfigError, match="image_size"):
        gz.create_generator("stackgan.s1_16", image_size=24)
    with pytest.raises(gz.ConfigError, match="32px images.*in_size 16"):
        gz.create_objective("stackgan.s2_64", stage1="stackgan.s1_32")


# -- Conditioning Augmentation -------------------------------------------------------------------------------------

def test_ca_reparameterisation_statistics() -> None:
    torch.manual_seed(0)
    ca = gz.create_block("stackgan.ca", text_dim=16, cond_dim=8)
    text = torch.randn(1, 16).expand(20_000, -1)  # one caption, many draws
    with torch.no_grad():
        c, mu, logvar = ca(text)
    assert torch.allclose(c.mean(0), mu[0], atol=0.03 * logvar.exp().sqrt().max())
    assert torch.allclose(c.var(0), logvar[0].exp(), rtol=0.05)
    eps = torch.randn(3, 8)
    assert torch.equal(ca(text[:3], eps)[0], ca(text[:3], eps)[0])  # fixed noise → fixed c
    plain = gz.create_block("stackgan.ca", text_dim=16, cond_dim=8, augment=False)
    c, mu, _ = plain(text[:3])
    assert torch.equal(c, mu)


def test_kl_matches_the_closed_form() -> None:
    mu, logvar = torch.randn(5, 7), torch.randn(5, 7)
    std = (0.5 * logvar).exp()
    closed = torch.distributions.kl_divergence(torch.distributions.Normal(mu, std),
                                               torch.distributions.Normal(0.0, 1.0)).mean()
    tf_form = (-(0.5 * logvar) + 0.5 * (-1 + logvar.exp() + mu.square())).mean()  # TF code: log σ parametrisation
    assert torch.allclose(kl_divergence(mu, logvar), closed, atol=1e-6)
    assert torch.allclose(kl_divergence(mu, logvar), tf_form, atol=1e-6)
    assert float(kl_divergence(torch.zeros(3, 4), torch.zeros(3, 4))) == 0.0


def test_ca_mu_and_logvar_halves() -> None:
    ca = gz.create_block("stackgan.ca", text_dim=4, cond_dim=2, act="identity")
    with torch.no_grad():
        ca.fc.weight.zero_()
        ca.fc.bias.copy_(torch.tensor([1.0, 2.0, -3.0, 0.0]))
    _, mu, logvar = ca(torch.randn(1, 4))
    assert mu.tolist() == [[1.0, 2.0]] and logvar.tolist() == [[-3.0, 0.0]]  # first half μ, second log σ²


@pytest.mark.parametrize("kind", ["generator", "discriminator"])
@pytest.mark.parametrize("name", ["stackgan.s1_64", "stackgan.s2_256"])
def test_released_networks_take_the_embedding_as_given(kind: str, name: str) -> None:
    """The networks named after the release compute the official function by default: no text rescaling."""
    cfg = (gz.get_generator_cfg if kind == "generator" else gz.get_discriminator_cfg)(name)
    assert cfg.text_norm == "none"


def test_released_stage1_mu_follows_the_embedding_scale() -> None:
    torch.manual_seed(0)
    g = gz.create_generator("stackgan.s1_64").eval()
    x, t = g.example_inputs(2)
    eps = torch.zeros(2, g.cfg.cond_dim)
    with torch.no_grad():
        assert (g(x, t, eps=eps)[1] - g(x, 3 * t, eps=eps)[1]).abs().max() > 1e-4  # μ, as the released CA gives it


@pytest.mark.parametrize("name", ["stackgan.s1_16", "stackgan.s2_32"])
def test_text_norm_rms_makes_the_generator_blind_to_embedding_scale(name: str) -> None:
    """text_norm="rms" (the CPU variants'): CA sees t and 40·t alike (unit-norm encoders give entries ≈ 1/√D, which would
    leave μ far below CA's σ·ε noise); "none" (the released code) does not; unknown values are named."""
    torch.manual_seed(0)
    g = gz.create_generator(name).eval()
    raw = gz.create_generator(name, text_norm="none").eval()
    x, t = g.example_inputs(3)
    t = torch.nn.functional.normalize(t, dim=1)
    eps = torch.zeros(3, g.cfg.cond_dim)
    with torch.no_grad():
        torch.testing.assert_close(g(x, t, eps=eps)[0], g(x, 40 * t, eps=eps)[0])
        assert (raw(x, t, eps=eps)[1] - raw(x, 40 * t, eps=eps)[1]).abs().max() > 1e-3  # μ follows the scale
    with pytest.raises(gz.ConfigError, match="text_norm must be one of .*got 'l2'"):
        gz.create_generator(name, text_norm="l2")


# -- losses --------------------------------------------------------------------------------------------------------

def _small(name: str, **kw):
    torch.manual_seed(0)
    return gz.create_objective(name, **kw)


def test_stage1_d_loss_is_real_plus_half_fake_and_wrong() -> None:
    obj = _small("stackgan.s1_16")
    batch = obj.example_batch(6)
    loss, t = obj.loss("D", batch, {})
    assert torch.allclose(loss, t["real"] + (t["fake"] + t["wrong"]) / 2)


def test_stage2_losses_have_the_unconditional_terms() -> None:
    obj = _small("stackgan.s2_32")
    batch = obj.example_batch(6)
    loss, t = obj.loss("D", batch, ctx := {})
    assert torch.allclose(loss, (t["real"] + t["real_uncond"]) / 2 + (t["fake"] + t["wrong"] + t["fake_uncond"]) / 3)
    g, terms = obj.loss("G", batch, ctx)
    assert torch.allclose(g, terms["adv"] + 2.0 * terms["kl"])  # kl_coef 2.0, as the released code


def test_kl_coefficient_is_configurable_and_off_without_ca() -> None:
    batch = _small("stackgan.s1_16").example_batch(4)
    for kw, coef in (({"kl_coef": 0.5}, 0.5), ({"generator_kwargs": {"augment": False}}, 0.0)):
        obj = _small("stackgan.s1_16", **kw)
        g, t = obj.loss("G", batch, {})
        assert torch.allclose(g, t["adv"] + coef * t["kl"])


@pytest.mark.parametrize("wrong_pairs", ["released", "roll"])
def test_wrong_images_default_to_the_batch_shifted_by_one(wrong_pairs: str) -> None:
    """Without image_wrong, "released" pairs image i-1 with caption i for i = 1..B-1 (real[:B-1] with cond[1:]);
    "roll" (ours) also pairs image B-1 with caption 0: the same as image_wrong = the batch rolled by one."""
    obj = _small("stackgan.s1_16", wrong_pairs=wrong_pairs)
    assert gz.get_objective_cfg("stackgan.s1_64").wrong_pairs == "released"
    batch = obj.example_batch(6)
    assert "image_wrong" not in batch  # the example batch is what the released loader gives
    ctx = {"noise": gz.seeded_rng(1)}
    _, terms = obj.loss("D", batch | {"image_wrong": batch["image"].roll(1, 0)}, dict(ctx, noise=gz.seeded_rng(1)))
    _, shifted = obj.loss("D", batch, {"noise": gz.seeded_rng(1)})
    D, L = obj.networks["D"], obj.gan_loss
    with torch.no_grad():
        fake, mu, _, _ = obj.generate(batch["text_emb"], {"noise": gz.seeded_rng(1)})
        cond = obj._d_condition(batch["text_emb"], mu)
        h = D.features(batch["image"])
        want = L.d_fake(D.cond_logits(h[:-1], cond[1:])) if wrong_pairs == "released" else terms["wrong"]
    torch.testing.assert_close(shifted["wrong"], want, atol=1e-5, rtol=1e-5)
    if wrong_pairs == "released":
        assert not torch.allclose(shifted["wrong"], terms["wrong"], atol=1e-6)  # B-1 pairs, not B


def test_d_conditions_on_detached_mu() -> None:
    obj = _small("stackgan.s1_16")
    loss, _ = obj.loss("D", obj.example_batch(4), {})
    loss.backward()
    assert all(p.grad is None for p in obj.networks["G"].parameters())  # the D step never reaches G (or its CA)


def test_d_can_read_the_text_embedding_as_the_tf_code_does() -> None:
    """cond_input="text": D projects the raw embedding with its own FC; changing only the captions changes D's
    conditional terms, and a width that does not fit is named."""
    obj = _small("stackgan.s1_16", discriminator_kwargs={"cond_input": "text", "text_dim": 512})
    D = obj.networks["D"]
    assert D.cond_width == 512 and D.text_fc is not None
    batch = obj.example_batch(4)
    _, t = obj.loss("D", batch, {"noise": gz.seeded_rng(1)})
    other = dict(batch, text_emb=torch.randn_like(batch["text_emb"]))
    _, t2 = obj.loss("D", other, {"noise": gz.seeded_rng(1)})
    assert abs(float(t["real"] - t2["real"])) > 1e-5  # the same real images, other captions
    g, _ = obj.loss("G", batch, {})
    g.backward()
    assert D.text_fc[0].weight.grad is not None and D.text_fc[0].weight.grad.abs().sum() > 0
    x = D.example_inputs(2)[0]
    with pytest.raises(gz.ShapeError, match=r"\(2, 512\) \(the text embedding\)"):
        D(x, torch.randn(2, 128))
    with pytest.raises(gz.ConfigError, match="projects 384-d text but G"):
        gz.create_objective("stackgan.s1_16", discriminator_kwargs={"cond_input": "text", "text_dim": 384})
    with pytest.raises(gz.ConfigError):
        gz.create_discriminator("stackgan.s1_16", cond_input="caption")


# -- Stage-II on a frozen Stage-I ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stage1_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(3)
    s1 = gz.create_objective("stackgan.s1_16")
    with torch.no_grad():
        for p in s1.networks["G"].parameters():
            p.add_(torch.randn_like(p) * 0.01)  # not the init: the loaded weights must be these
    return gz.save(s1, tmp_path_factory.mktemp("s1") / "checkpoint.safetensors")


def test_stage2_loads_and_freezes_stage1(stage1_checkpoint: Path, tmp_path: Path) -> None:
    obj = gz.create_objective("stackgan.s2_32", stage1_checkpoint=str(stage1_checkpoint))
    saved = gz.load(stage1_checkpoint).networks["G"].state_dict()
    assert all(torch.equal(v, obj.stage1.state_dict()[k]) for k, v in saved.items())
    assert "stage1" not in obj.networks and all(not p.requires_grad for p in obj.stage1.parameters())
    obj.train()
    assert obj.stage1.training  # the released STAGE2_G runs its Stage-I in the G's mode
    obj.eval()
    assert not obj.stage1.training
    obj.train()
    trainable = {id(p) for opt in make_optimizers(obj).values() for g in opt.param_groups for p in g["params"]}
    assert trainable.isdisjoint(id(p) for p in obj.stage1.parameters())
    batch = obj.example_batch(4)
    ctx: dict = {}
    for phase in ("D", "G"):
        obj.loss(phase, batch, ctx)[0].backward()
    assert all(p.grad is None for p in obj.stage1.parameters())
    data = [{"image": torch.rand(3, 32, 32) * 2 - 1, "image_wrong": torch.rand(3, 32, 32) * 2 - 1,
             "text_emb": torch.randn(512)} for _ in range(8)]
    result = train(obj, data, tmp_path, TrainCfg(steps=2, batch_size=4, sample_every=0, log_every=1,
                                                 progress=False, tensorboard=False))
    after = gz.load(result.checkpoint).stage1.state_dict()
    for k, v in saved.items():  # weights untouched by training; BatchNorm statistics follow the batches (released)
        assert torch.equal(v, after[k]) == ("running_" not in k and "num_batches" not in k), k
    info = gz.read_info(result.checkpoint)
    n_opt = {k for k in info.tensors if k.startswith("__train__.optim.G.")}
    n_g = sum(1 for p in obj.networks["G"].parameters())
    assert len({k.split(".")[3] for k in n_opt}) == n_g  # Adam state for Stage-II G's parameters only


def test_train_stages_runs_stage2_on_the_stage1_it_trained(tmp_path: Path) -> None:
    from ganzoo_stackgan.pipeline import train_stages

    small = {"generator_kwargs": {"ngf": 32}, "discriminator_kwargs": {"ndf": 8}}
    s1, s2 = train_stages(tmp_path, stage1="stackgan.s1_16", stage2="stackgan.s2_32", steps1=3, steps2=2,
                          batch_size=4, lr_step=2, lr_step2=1, data_kwargs={"n": 40}, stage1_overrides=small,
                          stage2_overrides={"generator_kwargs": {"ngf": 8}, "discriminator_kwargs": {"ndf": 8},
                                            "stage1_kwargs": small["generator_kwargs"]})
    assert (s1.step, s2.step) == (3, 2) and s1.checkpoint.parent.name == "stage1"
    first = gz.load(s1.checkpoint).networks["G"].state_dict()
    under = gz.load(s2.checkpoint).stage1.state_dict()
    assert set(first) == set(under)
    assert all(torch.equal(first[k], under[k]) for k in first if "running_" not in k and "num_batches" not in k)


def test_missing_stage1_checkpoint_is_named(tmp_path: Path) -> None:
    with pytest.raises(gz.CheckpointError, match="nope.safetensors.*train Stage-I first"):
        gz.create_objective("stackgan.s2_32", stage1_checkpoint=str(tmp_path / "nope.safetensors"))


def test_sampling_is_seeded_and_stagewise(stage1_checkpoint: Path) -> None:
    obj = gz.create_objective("stackgan.s2_32", stage1_checkpoint=str(stage1_checkpoint)).eval()
    batch = obj.example_batch(3)
    high, low = obj.sample_stages(5, batch, seed=2)
    assert high.shape == (5, 3, 32, 32) and low.shape == (5, 3, 16, 16)
    assert torch.equal(high, obj.sample(5, batch, seed=2)) and not torch.equal(high, obj.sample(5, batch, seed=3))


@pytest.mark.parametrize(("kind", "overrides"), [
    ("generator", {"ngf": 32}),  # not the variant's Stage-I config: the reload must rebuild this one
    ("objective", {"generator_kwargs": {"ngf": 32}, "discriminator_kwargs": {"ndf": 8}}),
])
def test_saved_stage2_loads_without_the_stage1_file(kind: str, overrides: dict[str, Any], tmp_path: Path) -> None:
    torch.manual_seed(5)
    s1 = gz.create(kind, "stackgan.s1_16", **overrides)
    with torch.no_grad():
        for p in s1.parameters():
            p.add_(torch.randn_like(p) * 0.01)  # not the init
    s1_path = gz.save(s1, tmp_path / "stage1.safetensors")
    obj = gz.create_objective("stackgan.s2_32", stage1_checkpoint=str(s1_path), generator_kwargs={"ngf": 8},
                              discriminator_kwargs={"ndf": 8}).eval()
    assert obj.cfg.stage1_checkpoint is None  # what checkpoints save names no path
    assert (obj.cfg.stage1, obj.cfg.stage1_kwargs["ngf"]) == ("stackgan.s1_16", 32)
    s2_path = gz.save(obj, tmp_path / "stage2.safetensors")
    assert str(tmp_path) not in str(gz.read_info(s2_path).config)
    s1_path.unlink()
    loaded = gz.load(s2_path).eval()
    before, after = obj.state_dict(), loaded.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    batch = obj.example_batch(3)
    assert all(torch.equal(a, b) for a, b in zip(obj.sample_stages(3, batch, seed=1), loaded.sample_stages(3, batch, seed=1)))


def test_a_stage2_checkpoint_gives_its_stage1(stage1_checkpoint: Path, tmp_path: Path) -> None:
    """A Stage-II checkpoint as ``stage1_checkpoint`` gives the Stage-I it holds (how a moved Stage-II run resumes):
    the same weights and running statistics, and the same config as a Stage-II built on the Stage-I file."""
    small = {"generator_kwargs": {"ngf": 8}, "discriminator_kwargs": {"ndf": 8}}
    first = gz.create_objective("stackgan.s2_32", stage1_checkpoint=str(stage1_checkpoint), **small)
    with torch.no_grad():
        first.stage1.fc[1].running_mean.add_(0.5)  # as training in the objective's mode would move them
    stage2 = gz.save(first, tmp_path / "stage2.safetensors")
    again = gz.create_objective("stackgan.s2_32", stage1_checkpoint=str(stage2), **small)
    assert again.cfg == first.cfg and again.cfg.stage1_checkpoint is None
    want = first.stage1.state_dict()
    assert all(torch.equal(t, again.stage1.state_dict()[k]) for k, t in want.items())
    by_name = gz.create_objective("stackgan.s2_32", stage1_kwargs=first.cfg.stage1_kwargs, **small)
    assert by_name.cfg == first.cfg  # the full Stage-I config is recorded however the Stage-I was given


def test_stage2_refuses_a_stage1_trained_on_another_encoder(tmp_path: Path) -> None:
    s1 = gz.create_objective("stackgan.s1_16", encoder="bow.hashed", encoder_kwargs={"dim": 256},
                             generator_kwargs={"text_dim": 256}, discriminator_kwargs={"text_dim": 256})
    path = gz.save(s1, tmp_path / "stage1.safetensors")
    with pytest.raises(gz.ConfigError, match=r"trained on captions embedded by 'bow.hashed' \{'dim': 256\}, but this "
                                             r"Stage-II records 'bow.hashed'; .*--set encoder=bow.hashed"):
        gz.create_objective("stackgan.s2_32", stage1_checkpoint=str(path), generator_kwargs={"text_dim": 256},
                            discriminator_kwargs={"text_dim": 256})
    obj = gz.create_objective("stackgan.s2_32", stage1_checkpoint=str(path), encoder_kwargs={"dim": 256},
                              generator_kwargs={"text_dim": 256}, discriminator_kwargs={"text_dim": 256})
    assert obj.text_encoder == ("bow.hashed", {"dim": 256})


def test_train_stages_records_the_encoder_the_data_embedded_with(tmp_path: Path) -> None:
    """``data_kwargs`` naming an encoder config: both stages embed with it and record it (Stage-II takes its
    Stage-I's), so the Stage-II checkpoint samples from text as it was trained."""
    from ganzoo_stackgan.pipeline import train_stages

    text = {"text_dim": 256}
    s1, s2 = train_stages(tmp_path, stage1="stackgan.s1_16", stage2="stackgan.s2_32", steps1=1, steps2=1,
                          batch_size=4, data_kwargs={"n": 40, "encoder_kwargs": {"dim": 256}},
                          stage1_overrides={"generator_kwargs": {"ngf": 32, **text},
                                            "discriminator_kwargs": {"ndf": 8, **text}},
                          stage2_overrides={"generator_kwargs": {"ngf": 8, **text},
                                            "discriminator_kwargs": {"ndf": 8, **text}})
    for result in (s1, s2):
        assert gz.load(result.checkpoint).text_encoder == ("bow.hashed", {"dim": 256})


# -- data ----------------------------------------------------------------------------------------------------------

class _Py2Pickler(pickle._Pickler):  # type: ignore[misc]
    """Writes bytes as Python 2 ``str`` (BINSTRING), as the release's Python 2 pickles hold array data."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj: bytes) -> None:
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def _dump(obj, path: Path, py2: bool) -> None:
    if py2:
        buf = io.BytesIO()
        _Py2Pickler(buf, protocol=2, fix_imports=True).dump(obj)
        path.write_bytes(buf.getvalue())
    else:
        path.write_bytes(pickle.dumps(obj, protocol=2))


def _release(root: Path, py2: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for split, n in (("train", 5), ("test", 3)):
        d = root / split
        d.mkdir(parents=True)
        emb = rng.standard_normal((n, 10, 1024)).astype(np.float32)
        out[split] = emb
        _dump(emb, d / "char-CNN-RNN-embeddings.pickle", py2)
        _dump([f"{split}_cls/img_{i}" for i in range(n)], d / "filenames.pickle", py2)
        _dump(list(range(1 + (split == "test") * 100, 1 + n + (split == "test") * 100)), d / "class_info.pickle",
              py2)
        _dump(rng.integers(0, 255, (n, 76, 76, 3), dtype=np.uint8), d / "76images.pickle", py2)
    return out


@pytest.mark.parametrize("py2", [False, True], ids=["protocol2", "python2-latin1"])
def test_char_cnn_rnn_reader(tmp_path: Path, py2: bool) -> None:
    emb = _release(tmp_path, py2)
    if py2:
        with pytest.raises(UnicodeDecodeError):  # why encoding="latin1" is needed
            pickle.loads((tmp_path / "train" / "char-CNN-RNN-embeddings.pickle").read_bytes())
    bundle = read_char_cnn_rnn(tmp_path, image_size=64)
    assert bundle.images.shape == (8, 64, 64, 3) and bundle.labels.tolist() == list(range(8))
    assert bundle.label_names[:2] == ["1", "2"] and bundle.label_names[-1] == "103"
    rows = bundle.text_embeddings["char_cnn_rnn"]
    assert rows.shape == (80, 1024) and np.array_equal(rows[50:60], emb["test"][0])  # image 5 = test image 0
    assert bundle.splits["test"].tolist() == [5, 6, 7] and len(bundle.captions[0]) == 10
    path = convert_char_cnn_rnn(tmp_path, tmp_path / "birds.h5", image_size=64)
    ds = gz.create_dataset("h5.file", path=str(path), encoder="char_cnn_rnn")
    item = ds[6]
    assert any(np.allclose(item["text_emb"].numpy(), e) for e in emb["test"][1])


def test_reader_refuses_code_and_names_bad_files(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "char-CNN-RNN-embeddings.pickle").write_bytes(
        b"cos\nsystem\n(S'echo hacked'\ntR.")  # a pickle that would run a shell command
    with pytest.raises(DataError, match="refusing to load os.system"):
        read_pickle(tmp_path / "train" / "char-CNN-RNN-embeddings.pickle")
    with pytest.raises(DataError, match="filenames.pickle.*does not exist|does not exist"):
        read_pickle(tmp_path / "train" / "filenames.pickle")
    with pytest.raises(DataError, match="none of the split folders"):
        read_char_cnn_rnn(tmp_path / "empty")


def test_captioned_images_give_embeddings_and_wrong_images() -> None:
    torch.manual_seed(0)
    ds = gz.create_dataset("stackgan.shapes", image_size=16, n=40, split="all")
    enc = gz.create_encoder("bow.hashed")
    for i in (0, 7):
        item = ds[i]
        caps = ds.caption(i)
        assert any(torch.allclose(item["text_emb"], e) for e in enc.encode(caps))
        assert ds.captions_flat[int(item["caption_index"])] in caps
        assert item["image_wrong"].shape == item["image"].shape == (3, 16, 16)
        assert not torch.equal(item["attrs"], ds.base[ds._wrong_of(i)]["attrs"])


# -- learning --------------------------------------------------------------------------------------------------------



@pytest.mark.slow
def test_installs_alone_from_wheels(tmp_path: Path) -> None:
    """Wheels of ganzoo-core and ganzoo-stackgan → fresh venv (torch first) → pip install ganzoo-stackgan → Stage-I +
    Stage-II composed and run by registry name (plugins/stackgan/scripts/check_install.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_install", Path(__file__).parent.parent / "scripts"
                                                  / "check_install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.check_stackgan_install(tmp_path, log=lambda *_: None)
    assert out == "ok (3, 3, 32, 32) 26290080"


# -- validation at the edge: a bad override fails at create_*, naming the field ------------------------------------


BAD_VALUES = [  # (kind, name, overrides, the field the message must name)
    ("generator", "stackgan.s1_16", {"ngf": 0}, "ngf"),
    ("generator", "stackgan.s1_16", {"ngf": 6}, "ngf"),  # 16×16: two up blocks halve it, so a multiple of 4
    ("generator", "stackgan.s1_16", {"nz": 0}, "nz"),
    ("generator", "stackgan.s1_16", {"cond_dim": 0}, "cond_dim"),
    ("generator", "stackgan.s1_16", {"ca_act": "swish"}, "ca_act"),
    ("generator", "stackgan.s1_16", {"init_std": 0.0}, "init_std"),
    ("generator", "stackgan.s2_32", {"ngf": 0}, "ngf"),
    ("generator", "stackgan.s2_32", {"ngf": 1}, "ngf"),  # 4·ngf must survive three halvings
    ("generator", "stackgan.s2_32", {"in_size": 12}, "in_size"),
    ("generator", "stackgan.s2_32", {"image_size": 8}, "image_size"),  # below in_size 16
    ("discriminator", "stackgan.s1_16", {"ndf": 0}, "ndf"),
    ("discriminator", "stackgan.s1_16", {"text_dim": 0}, "text_dim"),
    ("discriminator", "stackgan.s1_16", {"cond_input": "caption"}, "cond_input"),
    ("block", "stackgan.ca", {"act": "swish"}, "act"),
    ("block", "stackgan.ca", {"cond_dim": 0}, "cond_dim"),
    ("objective", "stackgan.s1_16", {"lr": 0.0}, "lr"),
    ("objective", "stackgan.s1_16", {"betas": (0.5, 1.5)}, "betas"),
    ("objective", "stackgan.s1_16", {"betas": (1.0, 0.999)}, "betas"),
    ("objective", "stackgan.s1_16", {"generator_kwargs": {"ngf": 0}}, "ngf"),  # the nested create_generator
    ("dataset", "stackgan.shapes", {"image_size": 8}, "image_size"),
    ("dataset", "stackgan.shapes", {"n": 0}, "n"),
    ("dataset", "stackgan.shapes", {"split": "val"}, "split"),
]


@pytest.mark.parametrize(("kind", "name", "overrides", "field"), BAD_VALUES,
                         ids=[f"{k}:{n}:{o}" for k, n, o, _ in BAD_VALUES])
def test_bad_value_fails_at_create_naming_the_field(kind: str, name: str, overrides: dict[str, Any], field: str) -> None:
    check_refused(kind, name, overrides, field)


@pytest.mark.parametrize(("name", "overrides"), [
    ("stackgan.s1_16", {"ngf": 4, "nz": 1, "cond_dim": 1, "text_dim": 1}),  # 4 → 2 → 1 channels
    ("stackgan.s2_32", {"ngf": 2, "n_res": 0, "cond_dim": 1}),  # 4·ngf = 8 → 4 → 2 → 1 over three up blocks
])
def test_smallest_widths(name: str, overrides: dict[str, Any]) -> None:
    g = gz.create_generator(name, **overrides)
    image, _, _ = g(*g.example_inputs(2))
    assert tuple(image.shape) == g.output_shapes(2)[0]


def test_checkpoints_from_before_the_released_defaults_keep_their_behaviour(tmp_path: Path) -> None:
    """Objectives saved before wrong_pairs / stage1_train_mode / text_norm existed rolled the wrong pairs, kept
    Stage-I in eval mode and rescaled the text (rms): their saved configs load with those values."""
    from ganzoo_core.testing import saved_without

    obj = _small("stackgan.s2_32")
    assert (obj.cfg.wrong_pairs, obj.cfg.stage1_train_mode, obj.cfg.text_norm) == ("released", True, None)
    gz.save(obj, tmp_path / "s2.safetensors")
    old = gz.load(saved_without(tmp_path / "s2.safetensors", "wrong_pairs", "stage1_train_mode", "text_norm"))
    assert (old.cfg.wrong_pairs, old.cfg.stage1_train_mode, old.cfg.text_norm) == ("roll", False, "rms")
    old.train()
    assert not old.stage1.training and old.stage1.cfg.text_norm == old.networks["G"].cfg.text_norm == "rms"


@pytest.mark.parametrize(("name", "function"), [("stackgan.stages", "compare_stages"),
                                                ("stackgan.caption_accuracy", "caption_accuracy"),
                                                ("stackgan.diversity", "diversity")])
def test_metric_is_the_pipelines_scoring_function(name: str, function: str) -> None:
    """``create_metric`` gives the pipeline's function itself, so a script's scores are the function's."""
    from ganzoo_stackgan import pipeline

    assert gz.is_metric(name) and gz.get_metric_cfg(name) is None
    assert gz.create_metric(name) is getattr(pipeline, function)
