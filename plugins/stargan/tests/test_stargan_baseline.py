"""The official StarGAN iteration (ganzoo_stargan.baseline) against ganzoo's ``stargan.celeba128``: the same networks
(parameter counts and state-dict names at 128×128; the same outputs once the weights are loaded), the same gradient
penalty and classification loss, and Solver.train's loop body: a D step every call, a G step every 5th."""

from __future__ import annotations

import pytest
import torch
from ganzoo_stargan import baseline as B
from ganzoo_stargan.model import DiscriminatorCfg, GeneratorCfg, StarDiscriminator, StarganObjective, StarGenerator
from torch import nn

import ganzoo_core as gz
import ganzoo_core.bench as core_bench
from ganzoo_core.ops import gradient_penalty
from ganzoo_core.testing import parameter_count

SMALL = {"image_size": 32, "conv_dim": 8, "g_repeat": 2, "d_repeat": 5}  # the same code at a size CPUs run in seconds



def snapshot(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(before: list[torch.Tensor], module: nn.Module) -> int:
    return sum(not torch.equal(a, p) for a, p in zip(before, module.parameters()))


@pytest.fixture(scope="module")
def pair() -> tuple[dict[str, nn.Module], dict[str, nn.Module]]:
    """The official networks and those of the ganzoo objective the baseline names (with its overrides)."""
    objective = gz.create_objective(B.OBJECTIVE, **B.OVERRIDES)
    return B.official_networks(seed=0), dict(objective.networks)


@pytest.mark.parametrize("net", ["G", "D"])
def test_parameter_counts_and_names_equal_the_objective(pair: tuple[dict[str, nn.Module], dict[str, nn.Module]],
                                                        net: str) -> None:
    official, ours = pair
    assert parameter_count(official[net]) == parameter_count(ours[net]) > 0
    a, b = official[net].state_dict(), ours[net].state_dict()
    assert [(k, v.shape) for k, v in a.items()] == [(k, v.shape) for k, v in b.items()]


def test_the_objective_is_the_code_s_model() -> None:
    cfg = gz.create_objective(B.OBJECTIVE, **B.OVERRIDES).cfg
    assert (cfg.lambda_cls, cfg.lambda_rec, cfg.lambda_gp, cfg.n_critic) == (B.LAMBDA_CLS, B.LAMBDA_REC, B.LAMBDA_GP,
                                                                              B.N_CRITIC)
    assert (cfg.g_lr, cfg.d_lr, tuple(cfg.betas), cfg.c_dim, cfg.cls) == (B.LR, B.LR, B.BETAS, B.C_DIM, "bce")


def test_same_function_as_the_ganzoo_networks() -> None:
    official = B.official_networks(seed=0, **SMALL)
    g = StarGenerator(GeneratorCfg(image_size=32, conv_dim=8, repeat_num=2))
    d = StarDiscriminator(DiscriminatorCfg(image_size=32, conv_dim=8, repeat_num=5))
    g.load_state_dict(official["G"].state_dict())
    d.load_state_dict(official["D"].state_dict())
    torch.manual_seed(1)
    x, c = torch.rand(3, 3, 32, 32) * 2 - 1, torch.randint(0, 2, (3, B.C_DIM)).float()
    with torch.no_grad():
        out = official["G"](x, c)  # training mode, as Solver.test runs it
        torch.testing.assert_close(out, g.eval()(x, c), atol=1e-5, rtol=1e-4)  # ganzoo's eval: per-image statistics
        src, cls = official["D"](out)
        ours = d(out)
        assert src.shape == (3, 1, 1, 1) and cls.shape == (3, B.C_DIM)
        torch.testing.assert_close((src, cls), (ours.logits, ours.aux), atol=1e-5, rtol=1e-4)


def test_gradient_penalty_and_class_loss_are_ganzoo_s() -> None:
    D = B.official_networks(seed=0, **SMALL)["D"]
    torch.manual_seed(2)
    real, fake, alpha = torch.rand(3, 3, 32, 32) * 2 - 1, torch.rand(3, 3, 32, 32) * 2 - 1, torch.rand(3)
    x_hat = (alpha.view(3, 1, 1, 1) * real + (1 - alpha.view(3, 1, 1, 1)) * fake).requires_grad_(True)
    ours = gradient_penalty(lambda x: D(x)[0], real, fake, alpha=alpha)
    torch.testing.assert_close(B.gradient_penalty(D(x_hat)[0], x_hat), ours, atol=1e-6, rtol=1e-5)
    logits, target = torch.randn(4, B.C_DIM), torch.randint(0, 2, (4, B.C_DIM)).float()
    torch.testing.assert_close(B.classification_loss(logits, target),
                               StarganObjective._set_loss(logits, target, "bce").mean())


def test_d_every_call_and_g_every_fifth() -> None:
    nets = B.official_networks(seed=0, **SMALL)
    step = B.iteration(nets, 2)
    g_start = snapshot(nets["G"])
    for call in range(1, 11):
        d_before, g_before = snapshot(nets["D"]), snapshot(nets["G"])
        losses = step()
        assert changed(d_before, nets["D"]) == len(d_before), f"call {call}: D did not step"
        g_moved = changed(g_before, nets["G"])
        if call % B.N_CRITIC:
            assert (len(losses), g_moved) == (1, 0), f"call {call}: G stepped"
        else:
            assert len(losses) == 2 and g_moved == len(g_before), f"call {call}: G did not step"
        assert all(torch.isfinite(v) for v in losses)
    assert changed(g_start, nets["G"]) == len(g_start)


@pytest.mark.slow
def test_the_official_sizes_train_in_five_calls() -> None:
    """Baseline.train_step at 128×128 (batch 2 here; 16 in the benchmark): five calls step D five times and G once."""
    step = B.train_step(2, "cpu", 0)
    losses = [step() for _ in range(B.N_CRITIC)]
    assert [len(v) for v in losses] == [1, 1, 1, 1, 2]
    assert all(torch.isfinite(t) for v in losses for t in v)


def test_the_seed_fixes_the_run() -> None:
    runs = [B.iteration(B.official_networks(seed=s, **SMALL), 2)() for s in (0, 0, 1)]
    torch.testing.assert_close(runs[0], runs[1])
    assert not torch.equal(runs[0][0], runs[2][0])


def test_generation_runs_g_without_autograd_as_solver_test() -> None:
    forward = B.generate(1, "cpu", 0)
    first = forward()
    assert first.shape == (1, 3, B.IMAGE_SIZE, B.IMAGE_SIZE) and not first.requires_grad
    assert float(first.abs().max()) <= 1.0
    torch.testing.assert_close(first, forward())  # per-image statistics: the running ones it updates are not read


def test_the_package_exports_the_hook() -> None:
    import ganzoo_stargan

    assert ganzoo_stargan.ganzoo_bench_baselines is B.ganzoo_bench_baselines
    assert ganzoo_stargan.GANZOO_API_VERSION == "1.1"


def test_the_hook_returns_the_baseline() -> None:
    (baseline,) = B.ganzoo_bench_baselines()
    assert isinstance(baseline, gz.Baseline)
    assert (baseline.name, baseline.objective, dict(baseline.overrides)) == (B.NAME, B.OBJECTIVE, B.OVERRIDES)
    assert baseline.batch_size == 16 and baseline.source.startswith("yunjey/stargan@")
    assert baseline.train_step is B.train_step and baseline.generate is B.generate
    assert "5th" in baseline.note
    assert gz.is_objective(baseline.objective)
    assert core_bench.find_baseline(B.OBJECTIVE) == baseline  # the host finds it through the package's re-export
