"""``gradient_penalty``: WGAN-GP's penalty on the critic's gradient norm at points between real and fake samples.

    x̂ = α·real + (1 − α)·fake,  α ~ U[0, 1] per sample
    penalty = mean_i (‖∂ D(x̂)_i / ∂ x̂_i‖₂ − target)²

The caller multiplies by λ (StarGAN: λ_gp = 10). The penalty is differentiable with respect to the critic's
parameters (its backward is a second-order pass through the critic) and never reaches ``real`` or ``fake``: they are
detached, as StarGAN does, so no gradient flows into the generator from the penalty. The first-order pass asks for
the gradient of ``x̂`` only, so it computes no weight gradients and leaves the parameters' ``.grad`` alone.

Implementations (the reference first):

- ``ref``: as StarGAN's official code writes it: ``torch.autograd.grad(outputs=out, inputs=x̂,
  grad_outputs=torch.ones(out.size()), retain_graph=True, create_graph=True, only_inputs=True)``, the gradient
  flattened, ``sqrt(sum(g²))``, ``((norm − target)²).mean()``.
- ``fused``: the same value with the redundant steps removed: no ``retain_graph`` (it defaults to ``create_graph``,
  so StarGAN's flag changes nothing), an expanded ones scalar as ``grad_outputs`` (no ones buffer), the norm as one
  ``torch.linalg.vector_norm`` call over the flattened sample (fewer temporaries than ``sqrt(sum(g**2))``, and a
  zero gradient gives a zero, not a NaN, penalty gradient), then ``(n − target).square().mean()``.

What was measured (CPU, 2 threads, a shared machine; StarGAN-like critic at 128x128 with LeakyReLU 0.01, fp32; the
penalty's forward and backward into the critic's parameters; implementations interleaved in one process, median of 5):
``fused`` takes the reference's time within the noise (ref/fused 0.98 and 0.99 at batch 16, about 6.5 s a step;
0.91 ± 0.2 at batch 4), and its graph saves the same bytes (196 MiB at batch 4). On the norm-and-hinge tail alone
(``g`` of [16, 3, 128, 128]) ``vector_norm`` is 1.2x faster than ``sqrt(sum(g**2))``, and a custom
``autograd.Function`` with the closed-form backward ``2(n − t)/n · g / B`` 1.34x; but that tail is about 0.1% of a
step and the Function saves the same ``g`` and ``n`` as ``vector_norm``, so it is not kept. ``fused`` is therefore no
``auto`` candidate; it is kept for the zero-norm guard. Where the time really goes: with
``nn.LeakyReLU`` about 30% of the step is the activation's zero second derivative, which autograd still propagates
back through the whole forward graph (``leaky_relu_backward``'s double backward returns ``zeros_like`` for its
input, so every forward conv runs a weight and input gradient of zeros). The same critic with the activation written
as ``torch.where(x > 0, x, slope * x)`` gives the same penalty and weight gradients 1.42x faster (batch 16; its
biases then get no gradient from the penalty, which is their true value, 0). That is the critic's business, not this
op's: with a smooth activation (tanh, softplus) the same path carries the real second-order terms.

``head`` picks the tensor to differentiate when the critic returns several (StarGAN's D returns (source, class); only
the source logits count). The class head still runs in the critic's forward, but it gets no backward pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import torch
from torch import Tensor, nn

from ganzoo_core.errors import ShapeError
from ganzoo_core.ops._dispatch import Case, OpSpec, define_op, dims_field, dispatch, register_op

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
        critic: the discriminator (an ``nn.Module`` or any callable of one batch).
        real, fake: batches of the same shape ``[B, ...]``; both are detached.
        target: the gradient norm the penalty pulls towards (1 in WGAN-GP).
        alpha: interpolation weights of shape ``[B]`` (drawn from U[0, 1] with ``generator`` when None).
        generator: the random generator ``alpha`` is drawn with (the global one when None).
        head: picks the tensor to differentiate from the critic's output (StarGAN: ``lambda out: out[0]``).
        impl: ``"auto"``, ``"ref"``, ``"fused"`` or one a plugin registered.

    Returns:
        A scalar of ``real``'s dtype. Under ``torch.no_grad()`` the gradient is still taken (a penalty needs it) and
        the result is detached.
    """
    if real.shape != fake.shape:
        raise ShapeError(f"gradient_penalty: real {tuple(real.shape)} and fake {tuple(fake.shape)} must have the "
                         "same shape")
    if real.ndim < 2:
        raise ShapeError(f"gradient_penalty: real and fake must be batches [B, ...], got shape {tuple(real.shape)}")
    if alpha is None:
        alpha = torch.rand(real.shape[0], generator=generator,
                           device=real.device if generator is None else generator.device)
    elif tuple(alpha.shape) != (real.shape[0],):
        raise ShapeError(f"gradient_penalty: alpha must have shape ({real.shape[0]},) (one weight per sample), got "
                         f"{tuple(alpha.shape)}")
    a = alpha.detach().to(real.device, real.dtype).reshape(-1, *[1] * (real.ndim - 1))
    x_hat = (a * real.detach() + (1 - a) * fake.detach()).requires_grad_(True)
    fn = dispatch("gradient_penalty", impl, real.device, _gradient_penalty_ref)
    if torch.is_grad_enabled():
        return fn(critic, x_hat, float(target), head)
    with torch.enable_grad():  # evaluation under no_grad: the penalty is built from a gradient all the same
        return fn(critic, x_hat, float(target), head).detach()


# ---------------------------------------------------------------------------------------------------------------
# ref
# ---------------------------------------------------------------------------------------------------------------


@register_op("gradient_penalty.ref", reference=True)
def _gradient_penalty_ref(critic: Critic, x_hat: Tensor, target: float, head: Callable[[Any], Tensor] | None
                          ) -> Tensor:
    """StarGAN's ``gradient_penalty``: a ones tensor as grad_outputs, retain_graph, flatten, sqrt of sum of squares."""
    out = critic(x_hat)
    out = head(out) if head is not None else out
    weight = torch.ones(out.size(), device=out.device, dtype=out.dtype)
    grad = torch.autograd.grad(outputs=out, inputs=x_hat, grad_outputs=weight, retain_graph=True,
                               create_graph=True, only_inputs=True)[0]
    grad = grad.view(grad.size(0), -1) if grad.is_contiguous() else grad.reshape(grad.size(0), -1)
    norm = torch.sqrt(torch.sum(grad ** 2, dim=1))
    return torch.mean((norm - target) ** 2)


# ---------------------------------------------------------------------------------------------------------------
# fused
# ---------------------------------------------------------------------------------------------------------------


@register_op("gradient_penalty.fused")
def _gradient_penalty_fused(critic: Critic, x_hat: Tensor, target: float, head: Callable[[Any], Tensor] | None
                            ) -> Tensor:
    """No retain_graph, an expanded ones scalar, one vector_norm call (see the module docstring for timings)."""
    out = critic(x_hat)
    out = head(out) if head is not None else out
    (grad,) = torch.autograd.grad(out, x_hat, grad_outputs=torch.ones((), device=out.device, dtype=out.dtype
                                                                      ).expand_as(out), create_graph=True)
    norm = torch.linalg.vector_norm(grad.flatten(1), dim=1)
    return (norm - target).square().mean()


# ---------------------------------------------------------------------------------------------------------------
# Test and benchmark specification
# ---------------------------------------------------------------------------------------------------------------


class _Critic(nn.Sequential):
    """A StarGAN-like critic: strided 4x4 convs with an activation (no normalisation), then a 3x3 PatchGAN head."""

    def __init__(self, channels: int, widths: tuple[int, ...], act: str) -> None:
        layers: list[nn.Module] = []
        for w in widths:
            layers += [nn.Conv2d(channels, w, 4, 2, 1),
                       nn.LeakyReLU(0.01) if act == "lrelu" else nn.Tanh() if act == "tanh" else nn.Softplus()]
            channels = w
        layers.append(nn.Conv2d(channels, 1, 3, 1, 1, bias=False))
        super().__init__(*layers)


@attrs.frozen(kw_only=True)
class PenaltyShape:
    """The inputs of one ``gradient_penalty`` case (a test shape, or a benchmark shape of ``ganzoo bench ops
    --shapes``): an image batch and the widths of a critic of strided 4x4 convolutions."""

    x: tuple[int, ...] = dims_field(4)  # the image batch [B, C, H, W]
    widths: tuple[int, ...] = dims_field()  # output channels of each strided convolution


SHAPES = {
    "small": PenaltyShape(x=(4, 3, 8, 8), widths=(8, 16)),
    "odd": PenaltyShape(x=(3, 3, 9, 7), widths=(6, 10)),
    # benchmark shape: a deep critic at 128x128 (benchmarks/shapes.toml has the zoo's model critics)
    "critic6.16x3x128x128": PenaltyShape(x=(16, 3, 128, 128), widths=(64, 128, 256, 512, 1024, 2048)),
}
VARIANTS = ("lrelu", "tanh", "softplus")  # lrelu: StarGAN's; the smooth ones have nonzero second derivatives


def _sample(case: Case, gen: torch.Generator) -> tuple[tuple[Any, ...], dict[str, Any]]:
    params = case.params if case.params is not None else SHAPES[case.shape]
    shape, widths = params.x, params.widths
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
    with torch.random.fork_rng(devices=[]):  # the critic's init from the case's seed, without touching global RNG
        torch.manual_seed(seed)
        critic = _Critic(shape[1], widths, case.variant or VARIANTS[0])
    critic = critic.to(case.device, case.dtype)
    if case.channels_last:
        critic = critic.to(memory_format=torch.channels_last)
    real = torch.randn(shape, generator=gen).to(case.device, case.dtype)
    fake = torch.randn(shape, generator=gen).to(case.device, case.dtype)
    if case.channels_last:
        real, fake = (t.contiguous(memory_format=torch.channels_last) for t in (real, fake))
    alpha = torch.rand(shape[0], generator=gen).to(case.device)
    for t in (real, fake, *critic.parameters()):  # real/fake too: the harness then checks both get no gradient
        t.requires_grad_(case.requires_grad)
    return (critic, real, fake), {"alpha": alpha}


SPEC = define_op(OpSpec(
    name="gradient_penalty", call=gradient_penalty, sample=_sample, variants=VARIANTS, double_grad=True,
    shapes={k: f"a critic of {len(v.widths)} strided 4x4 convs to {v.widths[-1]} channels at {v.x[2]}x{v.x[3]}, "
               f"batch {v.x[0]}" for k, v in SHAPES.items() if k not in ("small", "odd")},
    shape_type=PenaltyShape,
    tol={torch.float32: (1e-4, 1e-5), torch.bfloat16: (5e-2, 5e-2)},
))
