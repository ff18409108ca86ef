"""The WGAN-GP penalty against an independent per-sample computation, its gradient against finite differences, what
it must leave alone (the generator's graph, the parameters' ``.grad``), and its errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganzoo_core.errors import ShapeError
from ganzoo_core.ops import gradient_penalty, list_ops

IMPLS = list_ops("gradient_penalty")["gradient_penalty"]


def _critic() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 6, 3, 2, 1), nn.Tanh(), nn.Conv2d(6, 1, 3, 1, 1), nn.Softplus())


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("target", [1.0, 0.5])
def test_penalty_equals_a_per_sample_functional_computation(impl: str, target: float) -> None:
    torch.manual_seed(0)
    critic = _critic().double()
    real, fake, alpha = torch.randn(5, 3, 8, 8).double(), torch.randn(5, 3, 8, 8).double(), torch.rand(5).double()
    got = gradient_penalty(critic, real, fake, alpha=alpha, target=target, impl=impl)

    def d_sum(x: torch.Tensor) -> torch.Tensor:  # one sample: the sum of its patch outputs
        return critic(x.unsqueeze(0)).sum()

    x_hat = alpha.view(-1, 1, 1, 1) * real + (1 - alpha.view(-1, 1, 1, 1)) * fake
    per_sample = torch.func.vmap(torch.func.grad(d_sum))(x_hat)
    expected = ((torch.linalg.vector_norm(per_sample.flatten(1), dim=1) - target) ** 2).mean()
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("impl", IMPLS)
def test_critic_gradient_matches_finite_differences(impl: str) -> None:
    torch.manual_seed(1)
    critic = _critic().double()
    real, fake = torch.randn(3, 3, 8, 8, dtype=torch.float64), torch.randn(3, 3, 8, 8, dtype=torch.float64)
    alpha = torch.rand(3, dtype=torch.float64)
    gradient_penalty(critic, real, fake, alpha=alpha, impl=impl).backward()
    eps = 1e-6
    for param, index in ((critic[0].weight, (0, 0, 1, 1)), (critic[2].bias, (0,))):
        analytic = param.grad[index].item()
        with torch.no_grad():
            param[index] += eps
            up = gradient_penalty(critic, real, fake, alpha=alpha, impl=impl).item()
            param[index] -= 2 * eps
            down = gradient_penalty(critic, real, fake, alpha=alpha, impl=impl).item()
            param[index] += eps
        assert analytic == pytest.approx((up - down) / (2 * eps), rel=1e-4, abs=1e-8)


@pytest.mark.parametrize("impl", IMPLS)
def test_penalty_trains_the_critic_only(impl: str) -> None:
    torch.manual_seed(2)
    critic, gen = _critic(), nn.Linear(4, 3 * 8 * 8)
    real = torch.randn(3, 3, 8, 8, requires_grad=True)
    fake = gen(torch.randn(3, 4)).view(3, 3, 8, 8)  # a generator's output, still attached to its graph
    penalty = gradient_penalty(critic, real, fake, impl=impl)
    assert all(p.grad is None for p in critic.parameters()), "the first-order pass must not touch .grad"
    assert torch.autograd.grad(penalty, [real, fake, *gen.parameters()], allow_unused=True) == (None,) * 4
    penalty.backward()
    assert real.grad is None and all(p.grad is None for p in gen.parameters()), "the penalty reached the generator"
    assert all(p.grad is not None for p in critic.parameters())


@pytest.mark.parametrize("impl", IMPLS)
def test_head_picks_the_output_to_differentiate(impl: str) -> None:
    torch.manual_seed(3)
    body = _critic()
    real, fake, alpha = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8), torch.rand(2)
    two_heads = lambda x: (body(x), body(x).mean() * 100)  # noqa: E731 - StarGAN's D returns (source, class)
    torch.testing.assert_close(gradient_penalty(two_heads, real, fake, alpha=alpha, head=lambda out: out[0], impl=impl),
                               gradient_penalty(body, real, fake, alpha=alpha, impl=impl))


def test_alpha_from_the_generator_is_reproducible() -> None:
    critic, real, fake = _critic(), torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    a = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(7))
    b = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(7))
    alpha = torch.rand(4, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, gradient_penalty(critic, real, fake, alpha=alpha))


@pytest.mark.parametrize("impl", IMPLS)
def test_under_no_grad_the_penalty_is_still_computed(impl: str) -> None:
    critic, real, fake, alpha = _critic(), torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8), torch.rand(2)
    with torch.no_grad():
        value = gradient_penalty(critic, real, fake, alpha=alpha, impl=impl)
    assert value.grad_fn is None
    torch.testing.assert_close(value, gradient_penalty(critic, real, fake, alpha=alpha, impl=impl).detach())


def test_fused_gradient_is_finite_where_the_critic_gradient_vanishes() -> None:
    weight = nn.Parameter(torch.zeros(3, 4, 4))  # D(x) = <w, x>: its input gradient w is 0, so is the norm
    value = gradient_penalty(lambda x: (x * weight).flatten(1).sum(1), torch.randn(2, 3, 4, 4),
                             torch.randn(2, 3, 4, 4), impl="fused")
    value.backward()
    assert value.item() == 1.0
    assert torch.isfinite(weight.grad).all()  # StarGAN's sqrt(sum(g**2)) gives NaN here


def test_bad_shapes_are_named() -> None:
    critic = _critic()
    with pytest.raises(ShapeError, match=r"real \(2, 3, 8, 8\) and fake \(3, 3, 8, 8\)"):
        gradient_penalty(critic, torch.randn(2, 3, 8, 8), torch.randn(3, 3, 8, 8))
    with pytest.raises(ShapeError, match=r"alpha must have shape \(2,\).*got \(2, 1\)"):
        gradient_penalty(critic, torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8), alpha=torch.rand(2, 1))
    with pytest.raises(ShapeError, match=r"batches \[B, \.\.\.\], got shape \(5,\)"):
        gradient_penalty(critic, torch.randn(5), torch.randn(5))
