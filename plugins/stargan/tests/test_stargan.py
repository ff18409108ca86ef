"""StarGAN against its specification (models.md §6): layer tables and parameter counts at 128×128, the WGAN-GP
objective (penalty through the core op, n_critic, classification and reconstruction terms), target-label
permutation, the mask vector, the CelebA reader on files written here, and a learning outcome on shapes."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import ganzoo_stargan.model as sg
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ganzoo_stargan.data import CELEBA_ATTRIBUTES, stargan_split
from ganzoo_stargan.evaluate import colour_targets
from ganzoo_stargan.grid import write_translation_grid
from PIL import Image
from torch import nn

import ganzoo_core as gz
from ganzoo_core.testing import bad_value_cases, check_plugin, check_refused
from ganzoo_core.training import TrainCfg, train


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_plugin_conformance() -> None:
    names = check_plugin("ganzoo_stargan")
    assert {"generator stargan.128", "discriminator stargan.128", "objective stargan.tiny32",
            "objective stargan.both128", "block stargan.res"} <= set(names)


# -- validation at the edge: a bad override fails at create_*, naming the field ---------------------------------

BAD_VALUES: dict[str, tuple[Any, ...]] = {  # field → values every registered config with that field refuses
    "n_down": (0, -1), "image_size": (0, -1), "nc": (0, -1), "c_dim": (0, -1), "c2_dim": (-1,), "conv_dim": (0, -1),
    "repeat_num": (-1,), "channels": (0, -1), "slope": (-0.1, 1.0), "eval_stats": ("batch",), "cls": ("mse",),
    "cls2": ("mse",), "one_hot_groups": (((0, 99),), ((0, 0),)), "lambda_cls": (-1.0,), "lambda_rec": (-1.0,),
    "lambda_gp": (-1.0,), "n_critic": (0, -1), "g_lr": (0.0, -1.0), "d_lr": (0.0, -1.0),
    "betas": ((1.5, 0.999), (0.5, 1.0), (-0.1, 0.999)), "split": ("val",), "test_size": (-1,), "limit": (0, -1),
    "n": (0, -1), "seed": (-1,),
}
WITH = {"one_hot_groups": {"cls": "bce"}}  # field → other overrides under which its values are checked (ce: ignored)
CASES = bad_value_cases("stargan", BAD_VALUES)


@pytest.mark.parametrize(("kind", "name", "field", "value"), CASES, ids=[f"{n}-{f}={x!r}" for _, n, f, x in CASES])
def test_bad_override_fails_at_create(kind: str, name: str, field: str, value: Any) -> None:
    check_refused(kind, name, {**WITH.get(field, {}), field: value}, field)


# -- architecture ---------------------------------------------------------------------------------------------------


def g_count_from_table(nc: int = 3, c: int = 5, d: int = 64, res: int = 6, n_down: int = 2) -> int:
    """models.md §6.1 row by row: convs have no bias; each IN(affine) has 2 × channels; ``n_down`` strided convs
    (official 2) each doubling the width, mirrored by as many transposed convs."""
    conv = lambda i, o, k: i * o * k * k  # noqa: E731
    widths = [d * 2**i for i in range(n_down + 1)]  # official: d, 2d, 4d
    down = sum(conv(a, b, 4) + 2 * b for a, b in zip(widths, widths[1:]))
    up = sum(conv(b, a, 4) + 2 * a for a, b in zip(widths, widths[1:]))
    return (conv(nc + c, d, 7) + 2 * d + down + res * 2 * (conv(widths[-1], widths[-1], 3) + 2 * widths[-1])
            + up + conv(d, nc, 7))


def d_count_from_table(nc: int = 3, c: int = 5, d: int = 64, repeat: int = 6, size: int = 128) -> int:
    """models.md §6.2: strided 4×4 convs with bias, a 3×3 source head and a (size/2^repeat) class head, no bias."""
    widths = [nc] + [d * 2**i for i in range(repeat)]
    trunk = sum(a * b * 16 + b for a, b in zip(widths, widths[1:]))
    k = size // 2**repeat
    return trunk + widths[-1] * 9 + widths[-1] * c * k * k


def test_official_parameter_counts() -> None:
    g, d = gz.create_generator("stargan.128"), gz.create_discriminator("stargan.128")
    assert n_params(g) == g_count_from_table() == 8_430_528
    assert n_params(d) == d_count_from_table() == 44_762_048
    assert n_params(g) + n_params(d) == 53_192_576  # the paper's "53.2M"
    both = gz.create_objective("stargan.both128")  # CelebA (5) + RaFD (8): G takes 5 + 8 + 2 mask channels
    assert n_params(both.networks["G"]) == g_count_from_table(c=15)
    assert n_params(both.networks["D"]) == d_count_from_table(c=13)


@pytest.mark.parametrize("variant", ["32", "tiny32", "64", "32_res16"])
def test_small_variants_follow_the_same_table(variant: str) -> None:
    g = gz.create_generator(f"stargan.{variant}")
    d = gz.create_discriminator(f"stargan.{variant.split('_')[0]}")  # stargan.32_res16 is a G variant only
    gc, dc = g.cfg, d.cfg
    assert n_params(g) == g_count_from_table(c=gc.c_dim, d=gc.conv_dim, res=gc.repeat_num, n_down=gc.n_down)
    assert n_params(d) == d_count_from_table(c=dc.c_dim, d=dc.conv_dim, repeat=dc.repeat_num, size=dc.image_size)


def test_generator_128_layer_by_layer() -> None:
    g = gz.create_generator("stargan.128").eval()
    x = tile = sg.tile_labels(torch.randn(1, 3, 128, 128), torch.tensor([[1.0, 0, 0, 1, 0]]))
    assert tile.shape == (1, 8, 128, 128) and torch.equal(tile[0, 3:, 5, 7], torch.tensor([1.0, 0, 0, 1, 0]))
    shapes = []
    with torch.no_grad():
        for layer in g.main:
            x = layer(x)
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, sg.ResidualBlock)):
                shapes.append((type(layer).__name__, tuple(x.shape[1:])))
    assert shapes == [("Conv2d", (64, 128, 128)), ("Conv2d", (128, 64, 64)), ("Conv2d", (256, 32, 32))] + [
        ("ResidualBlock", (256, 32, 32))] * 6 + [("ConvTranspose2d", (128, 64, 64)), ("ConvTranspose2d", (64, 128, 128)),
                                                 ("Conv2d", (3, 128, 128))]
    assert isinstance(g.main[-1], nn.Tanh)
    convs = [m for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert all(m.bias is None and m.padding_mode == "zeros" for m in convs)
    norms = [m for m in g.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 5 + 12 and all(m.affine and m.track_running_stats for m in norms)
    res = g.main[9].main
    assert [type(m).__name__ for m in res] == ["Conv2d", "StarInstanceNorm", "Identity", "Conv2d", "StarInstanceNorm"]
    assert res[1].act == "relu" and res[4].act == "linear"  # no ReLU after the second IN (nor after the sum)


def test_one_downsampling_keeps_the_residual_blocks_at_half_resolution() -> None:
    g = gz.create_generator("stargan.32_res16")
    x, shapes = sg.tile_labels(torch.randn(2, 3, 32, 32), torch.zeros(2, 8)), []
    with torch.no_grad():
        for layer in g.main:
            x = layer(x)
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, sg.ResidualBlock)):
                shapes.append((type(layer).__name__, tuple(x.shape[1:])))
    assert shapes == [("Conv2d", (32, 32, 32)), ("Conv2d", (64, 16, 16))] + [("ResidualBlock", (64, 16, 16))] * 3 + [
        ("ConvTranspose2d", (32, 32, 32)), ("Conv2d", (3, 32, 32))]
    with pytest.raises(gz.ConfigError, match=r"multiple of 2\*\*n_down = 8 .*got 36"):
        gz.create_generator("stargan.32", image_size=36, n_down=3)


def test_discriminator_128_layer_by_layer() -> None:
    d = gz.create_discriminator("stargan.128")
    x, widths = torch.randn(2, 3, 128, 128), []
    with torch.no_grad():
        for layer in d.main:
            x = layer(x)
            if isinstance(layer, nn.Conv2d):
                widths.append(tuple(x.shape[1:]))
        out = d(torch.randn(2, 3, 128, 128))
    assert widths == [(64, 64, 64), (128, 32, 32), (256, 16, 16), (512, 8, 8), (1024, 4, 4), (2048, 2, 2)]
    assert all(m.negative_slope == 0.01 for m in d.modules() if isinstance(m, nn.LeakyReLU))
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) for m in d.modules())
    assert (d.conv1.kernel_size, d.conv2.kernel_size) == ((3, 3), (2, 2)) and d.conv1.bias is None
    assert isinstance(out, gz.DiscOutput) and out.logits.shape == (2, 1, 2, 2) and out.aux.shape == (2, 5)


def test_official_parameter_names() -> None:
    """The official model.py layout: G.main.<i> (ReLU slots hold Identity), D.main / conv1 / conv2."""
    g = gz.create_generator("stargan.128").state_dict()
    for key in ("main.0.weight", "main.1.weight", "main.1.running_mean", "main.1.num_batches_tracked",
                "main.9.main.0.weight", "main.9.main.4.bias", "main.15.weight", "main.21.weight"):
        assert key in g, key
    assert "main.2.weight" not in g and g["main.21.weight"].shape == (3, 64, 7, 7)
    d = gz.create_discriminator("stargan.128").state_dict()
    assert {"main.0.weight", "main.0.bias", "main.10.weight", "conv1.weight", "conv2.weight"} <= set(d)


def test_default_init_is_pytorchs() -> None:
    """No custom init (models.md): a conv's weights are kaiming-uniform(a=√5), |w| ≤ 1/√fan_in; IN γ=1, β=0."""
    g = gz.create_generator("stargan.128")
    conv = g.main[3].weight.detach()
    bound = 1 / (conv[0].numel() ** 0.5)
    assert 0.9 * bound < float(conv.abs().max()) <= bound
    assert torch.equal(g.main[1].weight, torch.ones(64)) and torch.equal(g.main[1].bias, torch.zeros(64))


def test_eval_mode_uses_instance_statistics() -> None:
    """eval() must not switch IN to its running statistics (yunjey/stargan#102); 'running' is torch's behaviour."""
    torch.manual_seed(0)
    g = gz.create_generator("stargan.tiny32")
    x, c = g.example_inputs(4)
    g.train()
    train_out = g(x, c)
    before = {k: v.clone() for k, v in g.state_dict().items()}
    g.eval()
    with torch.no_grad():
        eval_out = g(x, c)
    assert torch.allclose(eval_out, train_out, atol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in g.state_dict().items())  # eval updates no running stats
    running = gz.create_generator("stargan.tiny32", eval_stats="running")
    running.load_state_dict(before)
    with torch.no_grad():
        assert not torch.allclose(running.eval()(x, c), eval_out, atol=1e-3)


def test_wrong_inputs_are_named() -> None:
    g, d = gz.create_generator("stargan.tiny32"), gz.create_discriminator("stargan.tiny32")
    with pytest.raises(gz.ShapeError, match=r"\(B, 3, 32, 32\).*got \(2, 3, 64, 64\)"):
        g(torch.randn(2, 3, 64, 64), torch.zeros(2, 8))
    with pytest.raises(gz.ShapeError, match=r"\(2, 8\), got \(2, 5\)"):
        g(torch.randn(2, 3, 32, 32), torch.zeros(2, 5))
    with pytest.raises(gz.ShapeError, match=r"got None"):
        g(torch.randn(2, 3, 32, 32))
    with pytest.raises(gz.ShapeError, match=r"\(B, 3, 32, 32\)"):
        d(torch.randn(2, 1, 32, 32))
    with pytest.raises(gz.ConfigError, match=r"multiple of 2\*\*repeat_num = 64 .*got 32"):
        gz.create_discriminator("stargan.128", image_size=32)
    with pytest.raises(gz.ConfigError, match="c_dim"):
        gz.create_objective("stargan.tiny32", generator_kwargs={"c_dim": 3})
    with pytest.raises(gz.ConfigError, match="'bce'.*'ce'.*got 'softmax'"):
        gz.create_objective("stargan.tiny32", cls="softmax")


# -- objective ------------------------------------------------------------------------------------------------------


def tiny(**overrides: object) -> sg.StarganObjective:
    return gz.create_objective("stargan.tiny32", generator_kwargs={"conv_dim": 4, "repeat_num": 1},
                               discriminator_kwargs={"conv_dim": 4}, **overrides)


def test_hyper_parameters_and_phases() -> None:
    obj = gz.create_objective("stargan.celeba128")
    cfg = obj.cfg
    assert (cfg.lambda_cls, cfg.lambda_rec, cfg.lambda_gp, cfg.n_critic) == (1.0, 10.0, 10.0, 5)
    assert [(p.name, p.networks, p.lr, p.betas, p.every) for p in obj.phases] == [
        ("D", ("D",), 1e-4, (0.5, 0.999), 1), ("G", ("G",), 1e-4, (0.5, 0.999), 5)]


def test_d_loss_uses_the_core_gradient_penalty(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def spy(critic, real, fake, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(kwargs)
        out = critic(real)
        assert kwargs["head"](out) is out.logits  # the penalty differentiates the source head only
        return gz.ops.gradient_penalty(critic, real, fake, **kwargs)

    monkeypatch.setattr(sg, "gradient_penalty", spy)
    torch.manual_seed(0)
    obj = tiny()
    loss, terms = obj.loss("D", obj.example_batch(4), {})
    assert len(calls) == 1 and calls[0]["alpha"].shape == (4,) and 0 <= calls[0]["alpha"].min() <= 1
    expected = terms["d_real"] + terms["d_fake"] + terms["d_cls"] + 10 * terms["d_gp"]
    assert torch.allclose(loss.detach(), expected, atol=1e-5) and terms["d_gp"] > 0


def test_generator_loss_terms() -> None:
    torch.manual_seed(0)
    obj = tiny()
    batch, ctx = obj.example_batch(4), {}
    obj.loss("D", batch, ctx)
    c_org, _, c_trg = ctx["stargan.labels"]
    loss, terms = obj.loss("G", batch, ctx)
    assert "stargan.labels" not in ctx  # consumed: the G step uses the D step's targets
    assert torch.allclose(loss.detach(), terms["g_adv"] + 10 * terms["g_rec"] + terms["g_cls"], atol=1e-5)
    G = obj.networks["G"]
    rec = (batch["image"] - G(G(batch["image"], c_trg), c_org)).abs().mean()
    assert torch.allclose(terms["g_rec"], rec.detach(), atol=1e-5)


def test_n_critic_schedule(tmp_path: Path) -> None:
    """Through the engine: D on every step, G on steps 5 and 10 of 12."""
    torch.manual_seed(0)
    obj = tiny()
    seen: list[tuple[str, int]] = []
    original = obj.loss

    def counting(phase, batch, ctx):  # type: ignore[no-untyped-def]
        seen.append((phase, ctx["step"]))
        return original(phase, batch, ctx)

    obj.loss = counting  # type: ignore[method-assign]
    data = [obj.example_batch(1) for _ in range(8)]
    data = [{k: v[0] for k, v in item.items()} for item in data]
    train(obj, data, tmp_path, TrainCfg(steps=12, batch_size=4, log_every=100, sample_every=0, checkpoint_every=0,
                                        progress=False, tensorboard=False))
    assert [s for p, s in seen if p == "D"] == list(range(1, 13))
    assert [s for p, s in seen if p == "G"] == [5, 10]


def test_target_labels_permute_the_batch() -> None:
    obj = tiny()
    cond = torch.eye(8)[:6]  # six different label vectors
    ds = torch.zeros(6, dtype=torch.long)
    trg = obj.target_labels(cond, ds, {"noise": gz.seeded_rng(1)})
    assert sorted(map(tuple, trg.tolist())) == sorted(map(tuple, cond.tolist())) and not torch.equal(trg, cond)
    assert torch.equal(trg, obj.target_labels(cond, ds, {"noise": gz.seeded_rng(1)}))  # seeded by ctx
    groups = torch.tensor([0, 1, 0, 1, 0, 1])
    perm = sg.permute_within(groups, torch.randn(6))
    assert torch.equal(groups[perm], groups) and sorted(perm.tolist()) == list(range(6))


def multi() -> sg.StarganObjective:
    return gz.create_objective("stargan.tiny32", c_dim=3, c2_dim=4, one_hot_groups=((0, 1),),
                               generator_kwargs={"conv_dim": 4, "repeat_num": 1},
                               discriminator_kwargs={"conv_dim": 4})


def test_mask_vector() -> None:
    obj = multi()
    assert obj.networks["G"].cfg.c_dim == 3 + 4 + 2 and obj.networks["D"].cfg.c_dim == 3 + 4
    batch = {"image": torch.zeros(2, 3, 32, 32), "attrs": torch.tensor([[1.0, 0, 1], [1.0, 1, 1]]),
             "label_b": torch.tensor([3, 2]), "dataset": torch.tensor([0, 1])}
    cond, ds = obj.labels(batch)
    assert cond.tolist() == [[1, 0, 1, 0, 0, 0, 0, 1, 0],  # dataset 1: its attributes, no domain, mask (1, 0)
                             [0, 0, 0, 0, 0, 1, 0, 0, 1]]  # dataset 2: domain 2 one-hot, mask (0, 1)
    assert ds.tolist() == [0, 1]
    with pytest.raises(KeyError, match="dataset"):
        obj.labels({k: v for k, v in batch.items() if k != "dataset"})


def test_classification_only_over_the_active_dataset() -> None:
    obj = multi()
    cond = torch.tensor([[1.0, 0, 1, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 1, 0, 0, 1]])
    ds = torch.tensor([0, 1])
    logits = torch.randn(2, 7)
    base = obj.cls_loss(logits, cond, ds)
    other = logits.clone()
    other[0, 3:] += 5.0  # dataset 1's image: dataset 2's logits are not its business
    other[1, :3] -= 5.0
    assert torch.allclose(obj.cls_loss(other, cond, ds), base)
    bce = F.binary_cross_entropy_with_logits(logits[0, :3], cond[0, :3], reduction="sum")
    ce = F.cross_entropy(logits[1:, 3:], torch.tensor([2]))
    assert torch.allclose(base, (bce + ce) / 2)


def test_classification_loss_variants() -> None:
    logits, attrs = torch.randn(4, 5), torch.randint(0, 2, (4, 5)).float()
    bce = tiny(c_dim=5, one_hot_groups=((0, 1, 2),)).cls_loss(logits, attrs, torch.zeros(4, dtype=torch.long))
    # CelebA: BCE summed over attributes, averaged over the batch (official: reduction='sum' / batch size)
    assert torch.allclose(bce, F.binary_cross_entropy_with_logits(logits, attrs, reduction="sum") / 4)
    ce_obj = tiny(c_dim=5, cls="ce", one_hot_groups=())
    labels = torch.tensor([0, 4, 2, 2])
    batch = {"image": torch.zeros(4, 3, 32, 32), "label": labels}
    cond, ds = ce_obj.labels(batch)
    assert torch.equal(cond, F.one_hot(labels, 5).float())
    assert torch.allclose(ce_obj.cls_loss(logits, cond, ds), F.cross_entropy(logits, labels))
    with pytest.raises(ValueError, match="domain 7; expected 0..4"):
        ce_obj.labels({"image": batch["image"], "label": torch.tensor([0, 7, 1, 1])})


def test_sampling_targets_and_grid(tmp_path: Path) -> None:
    obj = gz.create_objective("stargan.celeba128", generator="stargan.tiny32", discriminator="stargan.tiny32")
    cond = torch.tensor([[1.0, 0, 0, 1, 0]])  # black hair, male, not young
    targets = torch.cat(obj.domain_targets(cond, torch.zeros(1, dtype=torch.long)))
    assert targets.tolist() == [[1, 0, 0, 1, 0], [0, 1, 0, 1, 0], [0, 0, 1, 1, 0],  # hair: one-hot group
                                [1, 0, 0, 0, 0], [1, 0, 0, 1, 1]]  # Male and Young flipped
    obj.eval()
    batch = obj.example_batch(3)
    images = obj.sample(12, batch=batch)  # 2 rows of (input + 5 domains)
    assert images.shape == (12, 3, 32, 32)
    assert torch.equal(images[0], batch["image"][0]) and torch.equal(images[6], batch["image"][1])
    path = write_translation_grid(obj, tmp_path / "grid.png", batch=batch, n_inputs=3)
    assert Image.open(path).size == (2 + 6 * 34, 2 + 3 * 34)  # 6 columns, 3 rows, 2-pixel padding


def test_sample_without_batch_translates_held_out_shapes() -> None:
    obj = tiny(sample_dataset_kwargs={"split": "test", "n": 100}).eval()
    a, b = obj.sample(9, seed=0), obj.sample(9, seed=1)
    test_images = torch.stack([it["image"] for it in gz.create_dataset("stargan.shapes", split="test", n=100)])
    assert any(torch.equal(a[0], t) for t in test_images) and not torch.equal(a[0], b[0])


# -- data -----------------------------------------------------------------------------------------------------------

NAMES = ["5_o_Clock_Shadow", "Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Smiling", "Young"]


def write_celeba(root: Path, n: int = 12) -> np.ndarray:
    """A CelebA-shaped folder: list_attr_celeba.txt (double spaces, -1/1) and n aligned 178×218 images."""
    rng = np.random.default_rng(0)
    values = rng.choice([-1, 1], size=(n, len(NAMES)))
    (root / "img_align_celeba").mkdir(parents=True)
    lines = [str(n), " ".join(NAMES)]
    for i, row in enumerate(values):
        name = f"{i + 1:06d}.jpg"
        lines.append(name + "  " + "  ".join(f"{v:2d}".strip() if v < 0 else f" {v}" for v in row))
        pixels = np.full((218, 178, 3), 20 * i, np.uint8)
        pixels[:, :89] = 255  # left half white: a flip is visible
        Image.fromarray(pixels).save(root / "img_align_celeba" / name, quality=95)
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    return values


def test_celeba_reader(tmp_path: Path) -> None:
    values = write_celeba(tmp_path)
    data = gz.create_dataset("stargan.celeba", root=str(tmp_path), image_size=32, split="all")
    assert data.attribute_names == CELEBA_ATTRIBUTES and len(data) == 12
    columns = [NAMES.index(a) for a in CELEBA_ATTRIBUTES]
    assert torch.equal(torch.stack([data[i]["attrs"] for i in range(12)]),
                       torch.from_numpy((values[:, columns] == 1).astype(np.float32)))
    item = data[3]
    assert item["image"].shape == (3, 32, 32) and -1 <= float(item["image"].min()) <= float(item["image"].max()) <= 1
    test = gz.create_dataset("stargan.celeba", root=str(tmp_path), image_size=32, split="test", test_size=5,
                             attributes="Male,Young")
    train_set = gz.create_dataset("stargan.celeba", root=str(tmp_path), image_size=32, test_size=5)
    assert len(test) == 5 and len(train_set) == 7 and test.attribute_names == ("Male", "Young")
    assert set(test.files).isdisjoint(train_set.files)
    with pytest.raises(gz.GanzooError, match=r"'Blond_Hiar'.*did you mean 'Blond_Hair'"):
        gz.create_dataset("stargan.celeba", root=str(tmp_path), attributes="Blond_Hiar")


def test_official_split_matches_the_reference_shuffle() -> None:
    lines = [f"{i:06d}.jpg" for i in range(5000)]
    random.seed(1234)
    random.shuffle(lines)  # yunjey/stargan data_loader.py: shuffle, then (i+1) < 2000 goes to test
    official_test = [int(line[:6]) for i, line in enumerate(lines) if (i + 1) < 2000]
    split = stargan_split(5000)
    assert split["test"].tolist() == official_test and len(split["test"]) == 1999
    assert len(split["train"]) == 3001 and set(split["train"]).isdisjoint(official_test)


def test_celeba_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(gz.DatasetUnavailableError, match="root="):
        gz.create_dataset("stargan.celeba")
    write_celeba(tmp_path)
    text = (tmp_path / "list_attr_celeba.txt").read_text().replace("  1", "  2", 1)
    (tmp_path / "list_attr_celeba.txt").write_text(text)
    with pytest.raises(gz.GanzooError, match="value '2'"):
        gz.create_dataset("stargan.celeba", root=str(tmp_path))


def test_shapes_and_emoji_label_vectors() -> None:
    shapes = gz.create_dataset("stargan.shapes", n=50, split="test")
    item = shapes[0]
    assert shapes.attribute_names == sg.SHAPES_ATTRIBUTES and item["attrs"].shape == (8,)
    assert float(item["attrs"][:7].sum()) == 1 and item["attrs_all"].shape == (17,)
    assert torch.equal(item["attrs"][:7], item["attrs_all"][:7])  # the colour block
    with pytest.raises(gz.GanzooError, match="unknown attribute.*colour=pink"):
        gz.create_dataset("stargan.shapes", n=20, attributes="colour=pink")


# The recipe of experiments/stargan-with-shape (formerly the objective stargan.shapes32_with_shape): stargan.shapes32
# with its [set] overrides, the 4 shapes in the label vector
STARGAN_WITH_SHAPE: dict[str, Any] = {"c_dim": 12, "one_hot_groups": ((0, 1, 2, 3, 4, 5, 6), (7, 8, 9, 10)),
                                      "dataset": "stargan.shapes_with_shape",
                                      "sample_dataset": "stargan.shapes_with_shape"}


def test_shapes_with_shape_labels_match_the_objective_groups() -> None:
    data = gz.create_dataset("stargan.shapes_with_shape", n=200, split="test")  # 20 held-out images
    obj = gz.create_objective("stargan.shapes32", **STARGAN_WITH_SHAPE)
    names = data.attribute_names
    assert len(names) == obj.cfg.c_dim == 12
    colours, shapes = obj.cfg.one_hot_groups
    assert all(names[i].startswith("colour=") for i in colours) and all(names[i].startswith("shape=") for i in shapes)
    picked = [data.base.attribute_names.index(n) for n in names]  # the columns of the full attribute vector
    for i in range(5):
        item = data[i]
        assert float(item["attrs"][list(colours)].sum()) == 1 and float(item["attrs"][list(shapes)].sum()) == 1
        assert torch.equal(item["attrs"], item["attrs_all"][picked])  # the label columns are the named attributes
    # a colour target keeps the source's shape label: the evaluation's targets change the first 7 labels only
    attrs = torch.stack([data[i]["attrs"] for i in range(20)])
    target = colour_targets(attrs, seed=0)
    assert torch.equal(target[:, 7:], attrs[:, 7:]) and bool((target[:, :7].argmax(1) != attrs[:, :7].argmax(1)).all())


def test_joint_dataset_feeds_the_mask_vector() -> None:
    data = gz.create_dataset("stargan.joint", a="stargan.shapes", a_kwargs={"n": 20, "split": "test"},
                             b="shapes.32", b_kwargs={"n": 30, "split": "test"})
    assert len(data) == 2 + 3
    first, last = data[0], data[4]
    assert int(first["dataset"]) == 0 and int(last["dataset"]) == 1 and int(first["label_b"]) == 0
    assert float(last["attrs"].sum()) == 0 and first["attrs"].shape == last["attrs"].shape == (8,)
    obj = gz.create_objective("stargan.tiny32", c_dim=8, c2_dim=4, one_hot_groups=(tuple(range(7)),), multi="mixed",
                              generator_kwargs={"conv_dim": 4, "repeat_num": 1}, discriminator_kwargs={"conv_dim": 4})
    batch = {k: torch.stack([data[i][k] for i in range(5)]) for k in first}
    cond, ds = obj.labels(batch)
    assert cond.shape == (5, 14) and cond[:2, 12].tolist() == [1, 1] and cond[2:, 13].tolist() == [1, 1, 1]
    loss, _ = obj.loss("D", batch, {})
    assert torch.isfinite(loss)
    alternating = gz.create_objective("stargan.tiny32", c_dim=8, c2_dim=4, one_hot_groups=(tuple(range(7)),),
                                      generator_kwargs={"conv_dim": 4, "repeat_num": 1},
                                      discriminator_kwargs={"conv_dim": 4})
    with pytest.raises(ValueError, match="mixes \\[0, 1\\]; use --data-set batches=alternate"):
        alternating.loss("D", batch, {})


def test_multi_dataset_training_alternates_as_the_official_train_multi(tmp_path: Path) -> None:
    """Official solver.train_multi: each iteration a D step on a CelebA batch, G (when due) on it, then the same on a
    RaFD batch, one Adam per network across both. Here: one engine step per dataset in turn, G due on both steps of
    every n_critic-th iteration; the mixed mode (ours) takes one step per iteration on batches of both."""
    data = gz.create_dataset("stargan.joint", a="stargan.shapes", a_kwargs={"n": 80, "split": "test"},
                             b="shapes.32", b_kwargs={"n": 100, "split": "test"})
    assert data.step_groups == (8, 10)
    paper = gz.create_objective("stargan.both128")
    assert paper.cfg.multi == "alternate" and paper.data_defaults == {"batches": "alternate"}
    assert [s for s in range(1, 21) if paper.phases[1].due(s)] == [9, 10, 19, 20]  # iterations 5 and 10
    seen: list[tuple[str, tuple[int, ...]]] = []
    for multi, steps in (("alternate", 8), ("mixed", 4)):
        obj = gz.create_objective("stargan.tiny32", c_dim=8, c2_dim=4, one_hot_groups=(tuple(range(7)),),
                                  n_critic=2, multi=multi, generator_kwargs={"conv_dim": 4, "repeat_num": 1},
                                  discriminator_kwargs={"conv_dim": 4})
        loss = obj.loss

        def record(phase: str, batch: Any, ctx: Any, loss: Any = loss) -> Any:
            seen.append((phase, tuple(sorted(set(batch["dataset"].tolist())))))
            return loss(phase, batch, ctx)

        obj.loss = record  # type: ignore[method-assign]
        joint = data if multi == "alternate" else gz.create_dataset(
            "stargan.joint", a="stargan.shapes", a_kwargs={"n": 80, "split": "test"}, b="shapes.32",
            b_kwargs={"n": 100, "split": "test"}, batches="mixed")
        result = train(obj, joint, tmp_path / multi, TrainCfg(steps=steps, batch_size=4, seed=0, log_every=1,
                                                             sample_every=0, checkpoint_every=0, progress=False,
                                                             tensorboard=False))
        assert result.step == steps and set(gz.training.make_optimizers(obj)) == {"D", "G"}
    D, G = "D", "G"
    assert seen[:12] == [(D, (0,)), (D, (1,)), (D, (0,)), (G, (0,)), (D, (1,)), (G, (1,)),  # iterations 1, 2
                         (D, (0,)), (D, (1,)), (D, (0,)), (G, (0,)), (D, (1,)), (G, (1,))]  # iterations 3, 4
    assert [p for p, _ in seen[12:]] == [D, D, G, D, D, G] and any(ds == (0, 1) for _, ds in seen[12:])


def test_step_groups_give_each_dataset_its_own_epochs() -> None:
    from ganzoo_core.distributed import DistInfo, StepBatchSampler

    sampler = StepBatchSampler(7 + 9, 3, seed=0, info=DistInfo(), groups=(7, 9))
    batches = [sampler.indices(s) for s in range(6)]
    assert all(max(b) < 7 for b in batches[0::2]) and all(min(b) >= 7 for b in batches[1::2])
    assert len({i for b in batches[0::2][:2] for i in b}) == 6  # one epoch of group 0: distinct items
    assert sampler.indices(0) == StepBatchSampler(7, 3, seed=0, info=DistInfo()).indices(0)
    with pytest.raises(gz.GanzooError, match="a step group \\(sizes \\(2, 9\\)\\) has 2 items"):
        StepBatchSampler(11, 3, seed=0, info=DistInfo(), groups=(2, 9))


# -- learning outcome -----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_stargan_learns_shapes_colours(tmp_path: Path) -> None:
    """A short run of stargan.tiny32 on shapes attributes, judged by the shipped attrs.shapes classifier on the
    held-out split (eval mode), against the untrained generator measured here. See the README for the full run."""
    from ganzoo_stargan.evaluate import shapes_translation_scores

    torch.manual_seed(0)
    objective = gz.create_objective("stargan.tiny32")
    test = gz.create_dataset("stargan.shapes", split="test", n=4000)  # 400 held-out images
    untrained = shapes_translation_scores(objective, test)
    train(objective, gz.create_dataset("stargan.shapes", split="train", n=4000), tmp_path,
          TrainCfg(steps=STEPS, batch_size=16, seed=0, log_every=100, sample_every=0, checkpoint_every=0,
                   progress=False, tensorboard=False))
    trained = shapes_translation_scores(objective, test)
    assert untrained["target"] < 0.3 and untrained["preserved_min"] < 0.5, untrained
    print("untrained", untrained, "\ntrained", trained)
    # Measured at 1,500 steps (seed 0): rec 1.007 → 0.073, pos 0.50 → 0.96, size 0.48 → 0.98, target colour
    # 0.175 → 0.20. The colour is learnt only later (0.72 at 2,500 steps, README): this CI budget checks the
    # reconstruction and the preserved attributes, the evidence script the target.
    assert trained["rec_l1"] < 0.2 * untrained["rec_l1"], (trained, untrained)
    assert min(trained["preserved"]["pos"], trained["preserved"]["size"]) >= 0.85, (trained, untrained)


STEPS = 1500  # CI budget: D steps (300 G steps); the colour target is measured by experiments/stargan-shapes32/evidence.py


@pytest.mark.parametrize("kind", ["generator", "discriminator"])
def test_official_ckpt_files_load_by_weights(tmp_path: Path, kind: str) -> None:
    """The official solver saves ``torch.save(G.state_dict(), '<step>-G.ckpt')``: such a file loads by weights=
    (told by its content, not its extension) and gives the same outputs."""
    create = gz.create_generator if kind == "generator" else gz.create_discriminator
    torch.manual_seed(0)
    source = create("stargan.tiny32").eval()
    path = tmp_path / f"200000-{kind[0].upper()}.ckpt"
    torch.save(source.state_dict(), path)
    loaded = create("stargan.tiny32", weights=path).eval()
    inputs = source.example_inputs(2)
    with torch.no_grad():
        a, b = source(*inputs), loaded(*inputs)
    for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        assert torch.equal(x, y)


def test_metric_shapes_translation_is_the_plugins_scoring_function() -> None:
    """``create_metric`` gives the function itself, so a script's scores are the function's."""
    from ganzoo_stargan.evaluate import shapes_translation_scores

    assert gz.is_metric("stargan.shapes_translation") and gz.get_metric_cfg("stargan.shapes_translation") is None
    assert gz.create_metric("stargan.shapes_translation") is shapes_translation_scores
