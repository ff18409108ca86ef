"""``gradient_penalty``: WGAN-GP's penalty on the critic's gradient norm at points between real and fake samples.

    x̂ = α·real + (1 − α)·fake,  α ~ U[0, 1] per sample
    penalty = mean_i (‖∂ D(x̂)_i / ∂ x̂_i‖₂ − target)²

The caller multiplies by λ (StarGAN: λ_gp = 10). The penalty is differentiable with respect to the critic's
parameters (its backward is a second-order pass through the critic) and never reaches ``real`` or ``fake``: they are
detached, as StarGAN does, so no gradient flows into the generator from the penalty.

Implementations (the reference first):

- ``ref``: as StarGAN's official code writes it: ``torch.autograd.grad(outputs=out, inputs=x̂,
  grad_outputs=torch.ones(out.size()), retain_graph=True, create_graph=True, only_inputs=True)``, the gradient
  flattened, ``norm(2, dim=1)``, ``((norm − 1)²).mean()``.
- ``lean``: the same value without the redundant graph work: no ``retain_graph`` (``create_graph`` already keeps what
  the penalty's backward needs), no ones tensor (the gradient of ``out.sum()``), only ``x̂`` as input of the
  first-order pass (so no weight gradients are computed there), and the norm as one ``vector_norm`` call.

``head`` picks the tensor to differentiate when the critic returns several (StarGAN's D returns (source, class); only
the source logits count). The class head still runs in the critic's forward, but it gets no backward pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ganzoo_core.errors import ShapeError
from ganzoo_core.ops._dispatch import Case, OpSpec, define_op, dispatch, register_op

Critic = Callable[[Tensor], Any]


def gradient_penalty(
    critic: Critic,
    real: Tensor,
    fake: Tensor,
    *,
    target: float = 1.0,
    alpha: Tensor | None = None,
    generator: torch.Generator | None = None,
    head: Callable[[Any], Tensor] | None = None,
    impl: str = "auto",
) -> Tensor:
    """WGAN-GP penalty ``mean((‖∇D(x̂)‖₂ − target)²)`` (a scalar), differentiable in the critic's parameters.

    Args:
        critic: the discriminator (any callable; an ``nn.Module`` lets ``lean`` freeze its parameters).
        real, fake: batches of the same shape ``[B, ...]``; both are detached.
        target: the gradient norm the penalty pulls towards (1 in WGAN-GP).
        alpha: interpolation weights of shape ``[B]`` (drawn from U[0, 1] with ``generator`` when None).
        head: picks the tensor to differentiate from the critic's output (e.g. ``lambda out: out[0]``).
        impl: ``"auto"``, ``"ref"``, ``"lean"`` or one a plugin registered.
    """
    if real.shape != fake.shape:
        raise ShapeError(f"gradient_penalty: real {tuple(real.shape)} and fake {tuple(fake.shape)} must have the "
                         "same shape")
    if alpha is None:
        alpha = torch.rand(real.shape[0], generator=generator, device="cpu" if generator is None else
                           generator.device).to(real.device)
    elif tuple(alpha.shape) != (real.shape[0],):
        raise ShapeError(f"gradient_penalty: alpha must have shape ({real.shape[0]},) (one weight per sample), got "
                         f"{tuple(alpha.shape)}")
    a = alpha.to(real.dtype).reshape(-1, *[1] * (real.ndim - 1))
    x_hat = (a * real.detach() + (1 - a) * fake.detach()).requires_grad_(True)
    fn = dispatch("gradient_penalty", impl, real.device, _gradient_penalty_ref)
    return fn(critic, x_hat, float(target), head)


@register_op("gradient_penalty.ref", reference=True)
def _gradient_penalty_ref(critic: Critic, x_hat: Tensor, target: float, head: Callable[[Any], Tensor] | None
                          ) -> Tensor:
    """StarGAN's ``gradient_penalty``: ones as grad_outputs, retain_graph, flatten, norm."""
    out = critic(x_hat)
    out = head(out) if head is not None else out
    weight = torch.ones(out.size(), device=out.device, dtype=out.dtype)
    grad = torch.autograd.grad(outputs=out, inputs=x_hat, grad_outputs=weight, retain_graph=True,
                               create_graph=True, only_inputs=True)[0]
    grad = grad.reshape(grad.size(0), -1)
    norm = torch.sqrt(torch.sum(grad ** 2, dim=1))
    return torch.mean((norm - target) ** 2)


@register_op("gradient_penalty.lean")
def _gradient_penalty_lean(critic: Critic, x_hat: Tensor, target: float, head: Callable[[Any], Tensor] | None
                           ) -> Tensor:
    """No retain_graph, no ones tensor, one vector_norm call."""
    out = critic(x_hat)
    out = head(out) if head is not None else out
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    norm = torch.linalg.vector_norm(grad.flatten(1), dim=1)
    return (norm - target).square().mean()


# ---------------------------------------------------------------------------------------------------------------
# Test and benchmark specification
# ---------------------------------------------------------------------------------------------------------------


class _Critic(nn.Sequential):
    """A StarGAN-like critic: strided 4x4 convs with an activation, then a 3x3 PatchGAN source head."""

    def __init__(self, channels: int, widths: tuple[int, ...], act: str) -> None:
        layers: list[nn.Module] = []
        for w in widths:
            layers += [nn.Conv2d(channels, w, 4, 2, 1),
                       nn.LeakyReLU(0.01) if act == "lrelu" else nn.Tanh() if act == "tanh" else nn.Softplus()]
            channels = w
        layers.append(nn.Conv2d(channels, 1, 3, 1, 1, bias=False))
        super().__init__(*layers)


SHAPES = {  # name: (image shape, critic widths)
    "small": ((4, 3, 8, 8), (8, 16)),
    "odd": ((3, 3, 9, 7), (6, 10)),
    "stargan.d128": ((4, 3, 128, 128), (64, 128, 256, 512, 1024, 2048)),  # StarGAN D at 128x128, batch 4 on CPU
}
VARIANTS = ("lrelu", "tanh", "softplus")


def _sample(case: Case, gen: torch.Generator) -> tuple[tuple[Any, ...], dict[str, Any]]:
    shape, widths = SHAPES[case.shape]
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        critic = _Critic(shape[1], widths, case.variant or "lrelu").to(case.device, case.dtype)
    if case.channels_last:
        critic = critic.to(memory_format=torch.channels_last)
    real = torch.randn(shape, generator=gen).to(case.device, case.dtype)
    fake = torch.randn(shape, generator=gen).to(case.device, case.dtype)
    if case.channels_last:
        real, fake = (t.contiguous(memory_format=torch.channels_last) for t in (real, fake))
    alpha = torch.rand(shape[0], generator=gen).to(case.device)
    for p in critic.parameters():
        p.requires_grad_(case.requires_grad)
    return (critic, real, fake), {"alpha": alpha}


SPEC = define_op(OpSpec(
    name="gradient_penalty", call=gradient_penalty, sample=_sample, variants=VARIANTS, double_grad=True,
    shapes={"stargan.d128": "StarGAN D (6 strided convs to 2048 channels) at 128x128, batch 4"},
    tol={torch.float32: (1e-4, 1e-5), torch.bfloat16: (5e-2, 5e-2)},
))
