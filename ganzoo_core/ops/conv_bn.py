"""``conv_bn``: a convolution (or transposed convolution) followed by eval-mode BatchNorm, for generation.

In eval mode BatchNorm is an affine map per output channel, ``y = s * (conv(x) - mean) + beta`` with
``s = gamma / sqrt(var + eps)``, so it folds into the convolution: the weight's output channels are scaled by ``s``
and the bias becomes ``s * (b - mean) + beta``. A Conv2d weight is ``[C_out, C_in, k, k]`` (output channels on dim 0),
a ConvTranspose2d weight is ``[C_in, C_out, k, k]`` (output channels on dim 1).

Implementations (the reference first):

- ``ref``: the convolution, then ``F.batch_norm(training=False)``: two passes over the output.
- ``folded``: fold, then one convolution with a bias.

``fold_batchnorm(module)`` applies the same folding to a whole network once, for generation: every Conv2d /
ConvTranspose2d directly followed by a BatchNorm2d in an ``nn.Sequential`` becomes one folded convolution, and the
BatchNorm's place is taken by ``nn.Identity()`` (or by its fused activation), so module indices do not change.
"""

from __future__ import annotations

import copy
from typing import Any

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo_core.errors import GanzooError, ShapeError
from ganzoo_core.ops._dispatch import AutoImpl, Case, OpSpec, define_op, dispatch, register_op
from ganzoo_core.ops.bias_act import _bias_act_ref
from ganzoo_core.ops.bias_act import _checked as _bias_act_checked
from ganzoo_core.ops.conv import Conv2d, ConvTranspose2d


def conv_bn(
    x: Tensor,
    weight: Tensor,
    conv_bias: Tensor | None,
    bn_weight: Tensor | None,
    bn_bias: Tensor | None,
    running_mean: Tensor,
    running_var: Tensor,
    *,
    eps: float = 1e-5,
    transposed: bool = False,
    stride: int = 1,
    padding: int = 0,
    output_padding: int = 0,
    impl: str = "auto",
) -> Tensor:
    """``batch_norm(conv(x), running_mean, running_var, bn_weight, bn_bias, training=False, eps=eps)``.

    Args:
        x: input ``[N, C_in, H, W]``.
        weight: ``[C_out, C_in, k, k]`` (Conv2d) or ``[C_in, C_out, k, k]`` (ConvTranspose2d, ``transposed=True``).
        conv_bias, bn_weight, bn_bias: ``[C_out]`` or None (no conv bias; BatchNorm with ``affine=False``).
        running_mean, running_var: the BatchNorm's running statistics, ``[C_out]``.
        eps: the BatchNorm's epsilon.
        transposed, stride, padding, output_padding: the convolution (``output_padding`` only when transposed).
        impl: ``"auto"``, ``"ref"``, ``"folded"`` or one a plugin registered.

    Returns:
        ``[N, C_out, H', W']``. Inference only: gradients are not part of the op's contract.
    """
    c_out = weight.shape[1] if transposed else weight.shape[0]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("bn_weight", bn_weight),
                    ("bn_bias", bn_bias), ("conv_bias", conv_bias)):
        if t is not None and tuple(t.shape) != (c_out,):
            raise ShapeError(f"conv_bn: {name} has shape {tuple(t.shape)}, expected ({c_out},) for a weight of shape "
                             f"{tuple(weight.shape)} ({'transposed' if transposed else 'regular'} convolution)")
    fn = dispatch("conv_bn", impl, x.device, _conv_bn_ref)
    return fn(x, weight, conv_bias, bn_weight, bn_bias, running_mean, running_var, eps, transposed, stride, padding,
              output_padding)


def _conv(x: Tensor, weight: Tensor, bias: Tensor | None, transposed: bool, stride: int, padding: int,
          output_padding: int) -> Tensor:
    if transposed:
        return F.conv_transpose2d(x, weight, bias, stride, padding, output_padding)
    return F.conv2d(x, weight, bias, stride, padding)


@register_op("conv_bn.ref", reference=True)
def _conv_bn_ref(x: Tensor, weight: Tensor, conv_bias: Tensor | None, bn_weight: Tensor | None,
                 bn_bias: Tensor | None, running_mean: Tensor, running_var: Tensor, eps: float, transposed: bool,
                 stride: int, padding: int, output_padding: int) -> Tensor:
    """The convolution, then eval-mode BatchNorm."""
    y = _conv(x, weight, conv_bias, transposed, stride, padding, output_padding)
    return F.batch_norm(y, running_mean, running_var, bn_weight, bn_bias, training=False, eps=eps)


def fold_weights(weight: Tensor, conv_bias: Tensor | None, bn_weight: Tensor | None, bn_bias: Tensor | None,
                 running_mean: Tensor, running_var: Tensor, eps: float, transposed: bool) -> tuple[Tensor, Tensor]:
    """(weight, bias) of the one convolution equal to conv followed by eval-mode BatchNorm (computed in fp32)."""
    scale = torch.rsqrt(running_var.float() + eps)
    if bn_weight is not None:
        scale = scale * bn_weight.float()
    shape = (1, -1, 1, 1) if transposed else (-1, 1, 1, 1)
    w = (weight.float() * scale.reshape(shape)).to(weight.dtype)
    b = conv_bias.float() if conv_bias is not None else torch.zeros_like(scale)
    b = (b - running_mean.float()) * scale
    if bn_bias is not None:
        b = b + bn_bias.float()
    return w, b.to(weight.dtype)


@register_op("conv_bn.folded", auto=("cpu",), priority=10)
def _conv_bn_folded(x: Tensor, weight: Tensor, conv_bias: Tensor | None, bn_weight: Tensor | None,
                    bn_bias: Tensor | None, running_mean: Tensor, running_var: Tensor, eps: float, transposed: bool,
                    stride: int, padding: int, output_padding: int) -> Tensor:
    """BatchNorm folded into the convolution's weight and bias: one pass."""
    w, b = fold_weights(weight, conv_bias, bn_weight, bn_bias, running_mean, running_var, eps, transposed)
    return _conv(x, w, b.to(x.dtype) if x.dtype != w.dtype else b, transposed, stride, padding, output_padding)


# ---------------------------------------------------------------------------------------------------------------
# Folding a whole network
# ---------------------------------------------------------------------------------------------------------------


class Act(AutoImpl, nn.Module):
    """The activation a fused norm+activation module applied, kept after its norm was folded away (``bias_act``
    without a bias; ``impl="auto"`` resolved once per device type, see ``AutoImpl``)."""

    op_name = "bias_act"

    def __init__(self, act: str, alpha: float | None = None, impl: str = "auto") -> None:
        super().__init__()
        self.act, self.alpha, self.impl = act, alpha, impl

    def forward(self, x: Tensor) -> Tensor:
        args = _bias_act_checked(x, None, 1, self.act, self.alpha, None, None)
        return self.resolved_function(x.device, _bias_act_ref)(*args)

    def extra_repr(self) -> str:
        return f"act={self.act!r}" + (f", alpha={self.alpha}" if self.alpha is not None else "")


def _folded_conv(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> nn.Module:
    transposed = isinstance(conv, nn.ConvTranspose2d)
    assert bn.running_mean is not None and bn.running_var is not None
    w, b = fold_weights(conv.weight.detach(), None if conv.bias is None else conv.bias.detach(),
                        None if bn.weight is None else bn.weight.detach(),
                        None if bn.bias is None else bn.bias.detach(), bn.running_mean, bn.running_var, bn.eps,
                        transposed)
    new = copy.deepcopy(conv)
    new.weight = nn.Parameter(w, requires_grad=False)
    new.bias = nn.Parameter(b, requires_grad=False)
    return new


_FOLDABLE = (nn.Conv2d, nn.ConvTranspose2d, Conv2d, ConvTranspose2d)  # ganzoo's compute what torch's do


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """A copy of ``module`` for generation with every (Conv2d | ConvTranspose2d, BatchNorm2d) pair of an
    ``nn.Sequential`` folded into one convolution; the BatchNorm's slot holds ``nn.Identity()`` (or ``Act`` when the
    norm carried a fused activation). The original is untouched. Refuses a module in training mode, whose
    BatchNorms use batch statistics that folding cannot reproduce."""
    if module.training or any(m.training for m in module.modules() if isinstance(m, nn.BatchNorm2d)):
        raise GanzooError("fold_batchnorm needs a module in eval mode (BatchNorm in training mode uses batch "
                          "statistics, which cannot be folded); call module.eval() first")
    folded = copy.deepcopy(module)
    for seq in [m for m in folded.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for prev, cur in zip(names, names[1:]):
            conv, bn = seq._modules[prev], seq._modules[cur]
            if (type(conv) in _FOLDABLE  # exact types: a subclass may change forward()
                    and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats and bn.running_mean is not None
                    and conv.groups == 1 and conv.out_channels == bn.num_features):
                seq._modules[prev] = _folded_conv(conv, bn)
                act = getattr(bn, "act", None)  # BatchNormAct2d: keep its activation
                keep_act = act not in (None, "linear")
                seq._modules[cur] = Act(act, getattr(bn, "alpha", None)) if keep_act else nn.Identity()
    return folded


# ---------------------------------------------------------------------------------------------------------------
# Test and benchmark specification
# ---------------------------------------------------------------------------------------------------------------

@attrs.frozen(kw_only=True)
class ConvBnShape:
    """The inputs of one ``conv_bn`` case (a test shape, or a benchmark shape of ``ganzoo bench ops --shapes``)."""

    batch: int = attrs.field(validator=attrs.validators.ge(1))
    in_channels: int = attrs.field(validator=attrs.validators.ge(1))
    out_channels: int = attrs.field(validator=attrs.validators.ge(1))
    size: int = attrs.field(validator=attrs.validators.ge(1))  # the input's height
    width: int | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.ge(1)))
    # the input's width (None: ``size``)
    kernel: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    stride: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    padding: int = attrs.field(default=1, validator=attrs.validators.ge(0))
    transposed: bool | None = None  # None: the case's variant decides ("convT": a 4x4, stride 2, padding 1 one)


SHAPES = {
    "small": ConvBnShape(batch=2, in_channels=4, out_channels=6, size=5),
    "odd": ConvBnShape(batch=3, in_channels=5, out_channels=7, size=9, width=10),
    # benchmark shapes: generic generator upsampling layers (benchmarks/shapes.toml has the zoo's model layers)
    "convT.64x512x4x4": ConvBnShape(batch=64, in_channels=512, out_channels=256, size=4, kernel=4, stride=2,
                                    padding=1, transposed=True),
    "convT.64x128x16x16": ConvBnShape(batch=64, in_channels=128, out_channels=64, size=16, kernel=4, stride=2,
                                      padding=1, transposed=True),
}
VARIANTS = ("conv", "convT")


def _sample(case: Case, gen: torch.Generator) -> tuple[tuple[Any, ...], dict[str, Any]]:
    p = case.params if case.params is not None else SHAPES[case.shape]
    n, c_in, c_out, h = p.batch, p.in_channels, p.out_channels, p.size
    transposed = case.variant == "convT" if p.transposed is None else p.transposed
    k, stride, pad = (4, 2, 1) if p.transposed is None and transposed else (p.kernel, p.stride, p.padding)
    x = torch.randn(n, c_in, h, p.width or h, generator=gen).to(case.device, case.dtype)
    if case.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    wshape = (c_in, c_out, k, k) if transposed else (c_out, c_in, k, k)
    w = (torch.randn(wshape, generator=gen) * 0.05).to(case.device, case.dtype)
    vecs = [torch.randn(c_out, generator=gen).to(case.device) for _ in range(4)]
    conv_bias, bn_weight, bn_bias, mean = vecs[0] * 0.1, 1 + 0.2 * vecs[1], 0.1 * vecs[2], 0.1 * vecs[3]
    var = torch.rand(c_out, generator=gen).to(case.device) + 0.5
    if case.dtype != torch.float32:
        conv_bias = conv_bias.to(case.dtype)
    args = (x, w, conv_bias, bn_weight, bn_bias, mean, var)
    if case.dtype != torch.float32:  # eval-mode BN of a bf16 activation takes fp32 statistics, as autocast does
        args = (x, w, conv_bias, bn_weight.to(case.dtype), bn_bias.to(case.dtype), mean.to(case.dtype),
                var.to(case.dtype))
    return args, {"transposed": transposed, "stride": stride, "padding": pad}


SPEC = define_op(OpSpec(
    name="conv_bn", call=conv_bn, sample=_sample, variants=VARIANTS, grad=False,
    shapes={k: f"{'ConvTranspose2d' if v.transposed else 'Conv2d'} {v.in_channels}->{v.out_channels} at "
               f"{v.size}x{v.width or v.size}, batch {v.batch}" for k, v in SHAPES.items() if k not in ("small", "odd")},
    tol={torch.float32: (1e-4, 1e-4), torch.bfloat16: (3e-2, 3e-2)},
    shape_type=ConvBnShape,
))
