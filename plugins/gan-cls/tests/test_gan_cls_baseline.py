"""The official GAN-INT-CLS iteration (ganzoo_gan_cls.baseline) against ganzoo's ``gan_cls.int_cls``: the same
networks (parameter counts, and the same outputs once the weights are copied across), and main_cls_int.lua's
iteration (both networks learn; conv biases zeroed at each step's start; no D gradients kept from the G step)."""

from __future__ import annotations

import pytest
import torch
from ganzoo_gan_cls import baseline as B
from torch import nn

import ganzoo_core as gz
import ganzoo_core.bench as core_bench
from ganzoo_core.errors import ConfigError
from ganzoo_core.testing import copy_state_by_position, parameter_count


@pytest.fixture(scope="module")
def pair() -> tuple[dict[str, nn.Module], dict[str, nn.Module]]:
    """The official networks and those of the ganzoo objective the baseline names (with its overrides)."""
    objective = gz.create_objective(B.OBJECTIVE, **B.OVERRIDES)
    return B.official_networks(seed=0), dict(objective.networks)


@pytest.mark.parametrize("net", ["G", "D"])
def test_parameter_counts_equal_the_objective(pair: tuple[dict[str, nn.Module], dict[str, nn.Module]], net: str) -> None:
    official, ours = pair
    assert parameter_count(official[net]) == parameter_count(ours[net]) > 0


def test_the_objective_is_the_code_s_model() -> None:
    cfg = gz.create_objective(B.OBJECTIVE, **B.OVERRIDES).cfg
    assert (cfg.matching, cfg.interpolate, cfg.mismatch, cfg.zero_conv_bias) == (True, True, "wrong_image", True)
    assert (cfg.cls_weight, cfg.interp_beta, cfg.interp_weight, cfg.lr) == (B.CLS_WEIGHT, 0.5, B.INTERP_WEIGHT, B.LR)


def test_same_function_as_the_ganzoo_networks(pair: tuple[dict[str, nn.Module], dict[str, nn.Module]]) -> None:
    official, ours = pair
    for net in ("G", "D"):
        copy_state_by_position(official[net], ours[net])
    torch.manual_seed(1)
    z, text = torch.randn(4, B.NZ), torch.randn(4, B.TEXT_DIM)
    with torch.no_grad():
        image = official["G"](z, text)
        assert image.shape == (4, 3, 64, 64)
        torch.testing.assert_close(image, ours["G"](z, text), atol=1e-4, rtol=1e-4)
        prob = official["D"](image, text)
        assert prob.shape == (4,)
        torch.testing.assert_close(prob, torch.sigmoid(ours["D"](image, text)), atol=1e-5, rtol=1e-4)


def test_one_iteration_trains_both_networks_with_the_biases_as_the_code_leaves_them() -> None:
    nets = B.official_networks(seed=0)
    step = B.iteration(nets, 2)
    before = {k: [p.detach().clone() for p in n.parameters()] for k, n in nets.items()}
    err_d, err_g = step()
    assert torch.isfinite(err_d) and torch.isfinite(err_g)
    for k, net in nets.items():
        moved = sum(not torch.equal(a, p) for a, p in zip(before[k], net.parameters()))
        assert moved > len(before[k]) // 2, f"{k}: only {moved} of {len(before[k])} tensors changed"
    # fGx zeroes every bias after D's step and D is not stepped again: D's conv biases end at 0;
    # G's hold exactly one Adam step from 0 (|Δ| ≤ lr)
    assert all(torch.count_nonzero(b) == 0 for b in B.conv_biases(nets["D"]))
    g_biases = torch.cat([b.detach().flatten() for b in B.conv_biases(nets["G"])])
    assert 0 < g_biases.abs().max() <= B.LR * 1.001
    assert all(p.requires_grad for p in nets["D"].parameters())  # frozen for the G step only


def test_gradients_are_computed_where_the_torch_code_computes_them() -> None:
    """fDx: three D backward passes, G forward only; fGx: one backward into G through D (updateGradInput), none
    into D's parameters. Counted by gradient hooks over one iteration."""
    nets = B.official_networks(seed=0)
    step = B.iteration(nets, 2)
    calls = {k: [0] * len(list(n.parameters())) for k, n in nets.items()}
    for k, net in nets.items():
        for i, p in enumerate(net.parameters()):
            p.register_hook(lambda grad, k=k, i=i: calls[k].__setitem__(i, calls[k][i] + 1))
    step()
    assert set(calls["D"]) == {3}
    assert set(calls["G"]) == {1}


def test_the_seed_fixes_the_run() -> None:
    first = [B.train_step(2, "cpu", seed)() for seed in (0, 0, 1)]
    torch.testing.assert_close(first[0], first[1])
    assert not torch.equal(first[0][0], first[2][0])


@pytest.mark.parametrize("batch", [1, 3])
def test_gan_int_needs_an_even_batch(batch: int) -> None:
    with pytest.raises(ConfigError, match=f"got {batch}"):
        B.iteration(B.official_networks(), batch)


def test_generation_is_an_eval_forward_without_autograd() -> None:
    forward = B.generate(3, "cpu", 0)
    first, second = forward(), forward()
    assert first.shape == (3, 3, 64, 64) and not first.requires_grad
    assert float(first.abs().max()) <= 1.0
    torch.testing.assert_close(first, second)  # eval mode: running statistics, nothing updated between calls


def test_the_package_exports_the_hook() -> None:
    import ganzoo_gan_cls

    assert ganzoo_gan_cls.ganzoo_bench_baselines is B.ganzoo_bench_baselines
    assert ganzoo_gan_cls.GANZOO_API_VERSION == "1.1"


def test_the_hook_returns_the_baseline() -> None:
    (baseline,) = B.ganzoo_bench_baselines()
    assert isinstance(baseline, gz.Baseline)
    assert (baseline.name, baseline.objective, dict(baseline.overrides)) == (B.NAME, B.OBJECTIVE, B.OVERRIDES)
    assert baseline.batch_size == 64 and baseline.source.startswith("reedscot/icml2016@")
    assert baseline.train_step is B.train_step and baseline.generate is B.generate
    assert gz.is_objective(baseline.objective)
    assert core_bench.find_baseline(B.OBJECTIVE) == baseline  # the host finds it through the package's re-export
