"""The official StackGAN Stage-I iteration (ganzoo_stackgan.baseline) against ganzoo's ``stackgan.s1_64``: the same
networks (parameter counts, and the same outputs once the weights are copied across), the same KL term, the released
code's wrong pairs, and an iteration that trains both networks."""

from __future__ import annotations

import pytest
import torch
from ganzoo_stackgan import baseline as B
from ganzoo_stackgan.model import kl_divergence
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
    objective = gz.create_objective(B.OBJECTIVE, **B.OVERRIDES)
    cfg = objective.cfg
    assert (cfg.kl_coef, cfg.wrong_pairs, cfg.lr, tuple(cfg.betas)) == (B.KL_COEF, "released", B.LR, B.BETAS)
    assert objective.stage1 is None and objective.networks["D"].cfg.cond_input == "mu"


def test_same_function_as_the_ganzoo_networks(pair: tuple[dict[str, nn.Module], dict[str, nn.Module]]) -> None:
    official, ours = pair
    for net in ("G", "D"):
        copy_state_by_position(official[net], ours[net])
    torch.manual_seed(1)
    text, noise = torch.randn(4, B.TEXT_DIM), torch.randn(4, B.NZ)
    with torch.no_grad():
        torch.manual_seed(2)
        expected_eps = torch.randn(4, B.COND_DIM)
        torch.manual_seed(2)  # CA_NET draws ε inside its forward: the same draw as expected_eps
        image, mu, logvar = official["G"](text, noise)
        got, mu2, logvar2 = ours["G"](noise, text, eps=expected_eps)
        assert image.shape == (4, 3, 64, 64)
        torch.testing.assert_close(image, got, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close((mu, logvar), (mu2, logvar2))
        prob = official["D"].cond_logits(official["D"](image), mu)
        assert prob.shape == (4,)
        torch.testing.assert_close(prob, torch.sigmoid(ours["D"](image, mu)), atol=1e-5, rtol=1e-4)


def test_kl_term_is_ganzoo_s() -> None:
    mu, logvar = torch.randn(5, B.COND_DIM), torch.randn(5, B.COND_DIM)
    torch.testing.assert_close(B.kl_loss(mu, logvar), kl_divergence(mu, logvar))


def test_wrong_pairs_are_image_i_minus_1_with_condition_i() -> None:
    """In eval mode (no batch statistics) the wrong term reads real[:B-1] and μ[1:] only: changing the last image
    and the first condition leaves it, and changes the matching term."""
    D = B.official_networks(seed=0)["D"].eval()
    torch.manual_seed(0)
    real, fake, mu = torch.rand(4, 3, 64, 64) * 2 - 1, torch.rand(4, 3, 64, 64) * 2 - 1, torch.randn(4, B.COND_DIM)
    ones, zeros = torch.ones(4), torch.zeros(4)
    with torch.no_grad():
        _, before = B.discriminator_loss(D, real, fake, mu, ones, zeros)
        real2, mu2 = real.clone(), mu.clone()
        real2[-1], mu2[0] = -real2[-1], mu2[0] + 3
        _, after = B.discriminator_loss(D, real2, fake, mu2, ones, zeros)
        shifted = mu.clone()
        shifted[1] += 3
        _, moved = B.discriminator_loss(D, real, fake, shifted, ones, zeros)
    torch.testing.assert_close(before["wrong"], after["wrong"])
    assert not torch.equal(before["real"], after["real"])
    assert not torch.equal(before["wrong"], moved["wrong"])


def test_one_iteration_trains_both_networks() -> None:
    nets = B.official_networks(seed=0)
    step = B.iteration(nets, 2)
    before = {k: [p.detach().clone() for p in n.parameters()] for k, n in nets.items()}
    err_d, err_g = step()
    assert torch.isfinite(err_d) and torch.isfinite(err_g)
    for k, net in nets.items():
        moved = sum(not torch.equal(a, p) for a, p in zip(before[k], net.parameters()))
        assert moved == len(before[k]), f"{k}: only {moved} of {len(before[k])} tensors changed"


def test_the_seed_fixes_the_run() -> None:
    first = [B.train_step(2, "cpu", seed)() for seed in (0, 0, 1)]
    torch.testing.assert_close(first[0], first[1])
    assert not torch.equal(first[0][0], first[2][0])


def test_wrong_pairs_need_two_images() -> None:
    with pytest.raises(ConfigError, match="got batch size 1"):
        B.iteration(B.official_networks(), 1)


def test_generation_is_an_eval_forward_without_autograd() -> None:
    forward = B.generate(3, "cpu", 0)
    image = forward()
    assert image.shape == (3, 3, 64, 64) and not image.requires_grad
    assert float(image.abs().max()) <= 1.0
    assert not torch.equal(image, forward())  # CA draws a new ε each call, as the released sample() does


def test_the_package_exports_the_hook() -> None:
    import ganzoo_stackgan

    assert ganzoo_stackgan.ganzoo_bench_baselines is B.ganzoo_bench_baselines
    assert ganzoo_stackgan.GANZOO_API_VERSION == "1.1"


def test_the_hook_returns_the_baseline() -> None:
    (baseline,) = B.ganzoo_bench_baselines()
    assert isinstance(baseline, gz.Baseline)
    assert (baseline.name, baseline.objective, dict(baseline.overrides)) == (B.NAME, B.OBJECTIVE, B.OVERRIDES)
    assert baseline.batch_size == 64 and baseline.source.startswith("hanzhanggit/StackGAN-Pytorch@")
    assert baseline.train_step is B.train_step and baseline.generate is B.generate
    assert gz.is_objective(baseline.objective)
    assert core_bench.find_baseline(B.OBJECTIVE) == baseline  # the host finds it through the package's re-export
