"""The WGAN-GP penalty against an independent per-sample computation, its gradient against finite differences, and
its errors."""

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
def test_penalty_equals_a_per_sample_functional_computation(impl: str) -> None:
    torch.manual_seed(0)
    critic = _critic().double()
    real, fake, alpha = torch.randn(5, 3, 8, 8).double(), torch.randn(5, 3, 8, 8).double(), torch.rand(5).double()
    got = gradient_penalty(critic, real, fake, alpha=alpha, impl=impl)

    def d_sum(x: torch.Tensor) -> torch.Tensor:  # one sample: the sum of its patch outputs
        return critic(x.unsqueeze(0)).sum()

    x_hat = alpha.view(-1, 1, 1, 1) * real + (1 - alpha.view(-1, 1, 1, 1)) * fake
    per_sample = torch.func.vmap(torch.func.grad(d_sum))(x_hat)
    expected = ((per_sample.flatten(1).norm(dim=1) - 1) ** 2).mean()
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("impl", IMPLS)
def test_penalty_trains_the_critic_only(impl: str) -> None:
    torch.manual_seed(1)
    critic = _critic().double()
    real = torch.randn(3, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    fake = torch.randn(3, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    alpha = torch.rand(3, dtype=torch.float64)
    gradient_penalty(critic, real, fake, alpha=alpha, impl=impl).backward()
    assert real.grad is None and fake.grad is None, "the penalty must not reach the generator's graph"
    weight = critic[0].weight
    analytic = weight.grad[0, 0, 1, 1].item()
    eps = 1e-6
    with torch.no_grad():
        weight[0, 0, 1, 1] += eps
    up = gradient_penalty(critic, real, fake, alpha=alpha, impl=impl).item()
    with torch.no_grad():
        weight[0, 0, 1, 1] -= 2 * eps
    down = gradient_penalty(critic, real, fake, alpha=alpha, impl=impl).item()
    assert analytic == pytest.approx((up - down) / (2 * eps), rel=1e-4, abs=1e-8)


def test_head_picks_the_output_to_differentiate() -> None:
    torch.manual_seed(2)
    body = _critic()
    real, fake, alpha = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8), torch.rand(2)
    two_heads = lambda x: (body(x), body(x).mean() * 100)  # noqa: E731 - StarGAN's D returns (source, class)
    torch.testing.assert_close(gradient_penalty(two_heads, real, fake, alpha=alpha, head=lambda out: out[0]),
                               gradient_penalty(body, real, fake, alpha=alpha))


def test_bad_shapes_are_named() -> None:
    critic = _critic()
    with pytest.raises(ShapeError, match=r"real \(2, 3, 8, 8\) and fake \(3, 3, 8, 8\)"):
        gradient_penalty(critic, torch.randn(2, 3, 8, 8), torch.randn(3, 3, 8, 8))
    with pytest.raises(ShapeError, match=r"alpha must have shape \(2,\).*got \(2, 1\)"):
        gradient_penalty(critic, torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8), alpha=torch.rand(2, 1))
