"""``upsample_conv``: nearest-neighbour x2 upsampling followed by a 3x3 convolution with padding 1 (StackGAN's
``upBlock``: ``nn.Upsample(scale_factor=2, mode="nearest")`` then ``conv3x3``), without the 4x intermediate tensor.

    y = conv3x3(upsample2x(x), w, b)

Implementations (the reference first):

- ``ref``: ``F.interpolate`` then ``F.conv2d``, as the models write it. The convolution runs over the upsampled
  tensor: 9 taps at 4x the pixels, and the upsampled input is kept for the backward.
- ``subpixel``: the same result as a sub-pixel convolution of the *original* input (2.25x fewer multiply-adds, no
  upsampled tensor). Derivation, along one axis (the 2-D kernels are products of the two axes):

      u[Y] = x[Y // 2]                                   (nearest x2; u and x are zero outside)
      y[Y] = w0 u[Y-1] + w1 u[Y] + w2 u[Y+1]              (3-tap cross-correlation, padding 1)
      y[2i]   = w0 x[i-1] + (w1+w2) x[i]                  (phase 0: offsets (-1, 0))
      y[2i+1] = (w0+w1) x[i] + w2 x[i+1]                  (phase 1: offsets (0, +1))

  The zero padding agrees: ``u[-1] = u[2H] = 0`` are ``x[-1] = x[H] = 0``. So each of the four output phases
  ``(a, b)`` (row and column parity) is a 2x2 convolution of ``x`` with ``K_ab = A_a W A_b^T``, where
  ``A_0 = [[1,0,0],[0,1,1]]`` and ``A_1 = [[1,1,0],[0,0,1]]`` combine the 3 taps into 2. All four phases come from
  ONE convolution with a 2x2 kernel, ``4*Cout`` output channels and padding 1 on every side: its output ``o`` has
  ``(H+1) x (W+1)`` pixels and ``o[p]`` reads ``x[p-1], x[p]``, so phase 0 of output row ``i`` is ``o[i]`` and
  phase 1 is ``o[i+1]``:

      y[n, c, 2i+a, 2j+b] = o[n, (c, a, b), i+a, j+b]

  That interleave (a pixel shuffle with a per-phase shift) is one strided copy each way (``_PhaseShuffle``), in the
  memory format of the input. The combined kernels are one batched matrix product of ``w`` (``[16, 9] @ W[c]^T``,
  in fp32), so autograd gives the weight gradient. Measured on CPU (2 cores, oneDNN, forward + backward) at the
  StackGAN shapes, one convolution is faster than four separate 2x2 convolutions (smaller GEMMs, four padded
  copies of ``x``: 0.5-1.1x of ``ref`` against 1-2.9x) and than one zero-filled 3x3 convolution with ``4*Cout``
  outputs (as many multiply-adds as ``ref``: 0.8-1.4x). Where the input is tiny (StackGAN Stage-I's 4x4 block) the
  ``(H+1)(W+1)`` padding and the kernel sums eat the saving and it runs at about the reference's speed.
- ``lowp``: ``subpixel`` where the convolution runs in bf16 or fp16 (a low-precision input, or autocast on), the
  reference otherwise. The two orders of summation round differently, by about 4e-7 of the largest activation per
  block in fp32 (the size of fp32's own error against a float64 evaluation), which through StackGAN's four Stage-II up
  blocks reaches ~3e-5 at the image; in fp32 the released models are matched to the bit, and in bf16, where the
  rounding is ~3 orders of magnitude coarser, the sub-pixel form's speed is kept. ``impl="auto"`` picks it.
- ``compiled``: ``torch.compile`` of the reference.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo_core.errors import ShapeError
from ganzoo_core.ops._common import compile_requires, compiled
from ganzoo_core.ops._dispatch import AutoImpl, Case, OpSpec, define_op, dims_field, dispatch, register_op


def upsample_conv(x: Tensor, weight: Tensor, bias: Tensor | None = None, *, impl: str = "auto") -> Tensor:
    """``conv2d(interpolate(x, scale_factor=2, mode="nearest"), weight, bias, padding=1)``.

    Args:
        x: input ``[N, Cin, H, W]``.
        weight: 3x3 kernel ``[Cout, Cin, 3, 3]`` (an ``nn.Conv2d(Cin, Cout, 3, 1, 1)``'s weight).
        bias: ``[Cout]`` or None.
        impl: ``"auto"``, ``"ref"``, ``"subpixel"``, ``"lowp"``, ``"compiled"`` or one a plugin registered.

    Returns:
        ``[N, Cout, 2H, 2W]``, in ``x``'s memory format.
    """
    args = _checked(x, weight, bias)  # the arguments first, then the implementation
    return dispatch("upsample_conv", impl, x.device, _upsample_conv_ref)(*args)


def _checked(x: Tensor, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
    """``upsample_conv``'s arguments checked (modules call the implementation they resolved with these directly)."""
    if x.ndim != 4:
        raise ShapeError(f"upsample_conv: x must be [N, C, H, W], got shape {tuple(x.shape)}")
    if weight.ndim != 4 or tuple(weight.shape[2:]) != (3, 3) or weight.shape[1] != x.shape[1]:
        raise ShapeError(f"upsample_conv: weight of shape {tuple(weight.shape)} does not fit x {tuple(x.shape)}; "
                         f"expected [Cout, {x.shape[1]}, 3, 3]")
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != weight.shape[0]):
        raise ShapeError(f"upsample_conv: bias of shape {tuple(bias.shape)} does not fit weight "
                         f"{tuple(weight.shape)}; expected ({weight.shape[0]},)")
    return x, weight, bias


# ---------------------------------------------------------------------------------------------------------------
# ref
# ---------------------------------------------------------------------------------------------------------------


@register_op("upsample_conv.ref", reference=True)
def _upsample_conv_ref(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """Nearest x2 upsampling, then a 3x3 convolution with padding 1 (the ground truth)."""
    return F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), weight, bias, padding=1)


# ---------------------------------------------------------------------------------------------------------------
# subpixel
# ---------------------------------------------------------------------------------------------------------------

def _tap_matrix(dtype: torch.dtype, device: torch.device) -> Tensor:
    """``[16, 9]``: row ``(a, b, p, q)`` sums the 3x3 taps ``(k, l)`` that phase ``(a, b)``'s 2x2 tap ``(p, q)`` covers,
    ``A_a[p, k] * A_b[q, l]`` with ``A_0 = [[1,0,0],[0,1,1]]``, ``A_1 = [[1,1,0],[0,0,1]]``."""
    a = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]], dtype=dtype,
                     device=device)  # [phase, tap, k]
    return torch.einsum("apk,bql->abpqkl", a, a).reshape(16, 9)


def subpixel_kernels(weight: Tensor, channels_last: bool = True) -> Tensor:
    """The four phase kernels of a 3x3 ``weight`` ``[Cout, Cin, 3, 3]`` as one 2x2 kernel ``[Cout*4, Cin, 2, 2]``,
    output channels ordered ``(c, a, b)``: ``K[c, a, b] = A_a @ W[c] @ A_b^T`` (see the module docstring).

    One batched matrix product ``[16, 9] @ W[c]^T`` per output channel writes the kernel straight into the
    channels_last layout ``[Cout*4, 2, 2, Cin]``, so no transpose copy is needed (``channels_last=False`` adds one).
    Computed in fp32 or wider (outside autocast), returned in ``weight``'s dtype, differentiable in ``weight``."""
    cout, cin = weight.shape[:2]
    dtype = torch.promote_types(weight.dtype, torch.float32)
    with torch.autocast(weight.device.type, enabled=False):
        k = _tap_matrix(dtype, weight.device) @ weight.to(dtype).reshape(cout, cin, 9).transpose(1, 2)
    k = k.view(cout * 4, 2, 2, cin).permute(0, 3, 1, 2).to(weight.dtype)  # [Cout*4, Cin, 2, 2], channels_last
    return k if channels_last else k.contiguous()


def _memory_format(t: Tensor) -> torch.memory_format:
    if t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def _phase_view(o: Tensor, c: int, h: int, w: int) -> Tensor:
    """``o [N, C*4, H+1, W+1]`` viewed as ``[N, C, H, 2(a), W, 2(b)]`` with element ``o[n, (c, a, b), i+a, j+b]``:
    the strides of ``a`` and ``b`` step one phase channel and one pixel at once (all strides stay positive)."""
    o6 = o.view(o.shape[0], c, 2, 2, h + 1, w + 1)
    s_n, s_c, s_a, s_b, s_p, s_q = o6.stride()
    return o.as_strided((o.shape[0], c, h, 2, w, 2), (s_n, s_c, s_p, s_a + s_p, s_q, s_b + s_q), o.storage_offset())


def _phase_shuffle(o: Tensor, c: int, h: int, w: int, fmt: torch.memory_format) -> Tensor:
    """``y[n, c, 2i+a, 2j+b] = o[n, (c, a, b), i+a, j+b]`` in one strided copy, ``y`` in memory format ``fmt``."""
    y = torch.empty((o.shape[0], c, 2 * h, 2 * w), dtype=o.dtype, device=o.device, memory_format=fmt)
    y.view(o.shape[0], c, h, 2, w, 2).copy_(_phase_view(o, c, h, w))
    return y


def _phase_unshuffle(y: Tensor, fmt: torch.memory_format) -> Tensor:
    """The adjoint of ``_phase_shuffle``: scatter ``y`` back into ``[N, C*4, H+1, W+1]``, zeros where no phase reads."""
    n, c, h2, w2 = y.shape
    h, w = h2 // 2, w2 // 2
    o = torch.empty((n, c * 4, h + 1, w + 1), dtype=y.dtype, device=y.device, memory_format=fmt)
    _phase_view(o, c, h, w).copy_(y.view(n, c, h, 2, w, 2))
    o6 = o.view(n, c, 2, 2, h + 1, w + 1)
    o6[:, :, 0, :, h].zero_()  # phase a=0 reads rows 0..H-1, a=1 rows 1..H; the same for columns
    o6[:, :, 1, :, 0].zero_()
    o6[:, :, :, 0, :, w].zero_()
    o6[:, :, :, 1, :, 0].zero_()
    return o


class _PhaseShuffle(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, o: Tensor, c: int, h: int, w: int, fmt: torch.memory_format) -> Tensor:
        ctx.fmts = (_memory_format(o), fmt)
        return _phase_shuffle(o, c, h, w, fmt)

    @staticmethod
    def backward(ctx: Any, dy: Tensor) -> tuple[Tensor | None, ...]:
        return _PhaseUnshuffle.apply(dy, *ctx.fmts), None, None, None, None


class _PhaseUnshuffle(torch.autograd.Function):  # the backward of _PhaseShuffle, itself differentiable
    @staticmethod
    def forward(ctx: Any, y: Tensor, o_fmt: torch.memory_format, y_fmt: torch.memory_format) -> Tensor:
        ctx.shape, ctx.fmts = y.shape, (o_fmt, y_fmt)
        return _phase_unshuffle(y, o_fmt)

    @staticmethod
    def backward(ctx: Any, do: Tensor) -> tuple[Tensor | None, ...]:
        _, c, h2, w2 = ctx.shape
        return _PhaseShuffle.apply(do, c, h2 // 2, w2 // 2, ctx.fmts[1]), None, None


@register_op("upsample_conv.subpixel")
def _upsample_conv_subpixel(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """One 2x2 convolution of the original input with the four phase kernels, then a shifted pixel shuffle."""
    cout = weight.shape[0]
    h, w = x.shape[-2:]
    b4 = bias.repeat_interleave(4) if bias is not None else None
    fmt = _memory_format(x)
    k = subpixel_kernels(weight, channels_last=fmt == torch.channels_last)  # the conv then keeps x's format
    o = F.conv2d(x, k, b4, padding=1)  # [N, Cout*4, H+1, W+1]
    return _PhaseShuffle.apply(o, cout, h, w, fmt)


# ---------------------------------------------------------------------------------------------------------------
# lowp
# ---------------------------------------------------------------------------------------------------------------

_LOW_PRECISION = (torch.bfloat16, torch.float16)


def _runs_in_low_precision(x: Tensor) -> bool:
    dev = x.device.type
    return x.dtype in _LOW_PRECISION or (torch.is_autocast_enabled(dev) and torch.get_autocast_dtype(dev)
                                         in _LOW_PRECISION)


@register_op("upsample_conv.lowp", auto=("cpu",), priority=10)
def _upsample_conv_lowp(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``subpixel`` in bf16 / fp16, the reference in fp32 and wider."""
    if _runs_in_low_precision(x):
        return _upsample_conv_subpixel(x, weight, bias)
    return _upsample_conv_ref(x, weight, bias)


# ---------------------------------------------------------------------------------------------------------------
# compiled
# ---------------------------------------------------------------------------------------------------------------

_compiled_ref = compiled(_upsample_conv_ref)


@register_op("upsample_conv.compiled", requires=compile_requires)
def _upsample_conv_compiled(*args: Any) -> Tensor:
    """torch.compile of the reference."""
    return _compiled_ref(*args)


# ---------------------------------------------------------------------------------------------------------------
# Module
# ---------------------------------------------------------------------------------------------------------------


class UpsampleConv2d(AutoImpl, nn.Module):
    """``nn.Upsample(scale_factor=2, mode="nearest")`` then ``nn.Conv2d(in_channels, out_channels, 3, 1, 1)`` as one
    module running ``upsample_conv``. Its ``weight`` and ``bias`` have the names, shapes and initialisation of that
    ``nn.Conv2d``'s, so checkpoints of that layout load into it. ``impl="auto"`` is resolved once per device type
    (see ``AutoImpl``)."""

    op_name = "upsample_conv"

    def __init__(self, in_channels: int, out_channels: int, bias: bool = False, impl: str = "auto") -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.impl = in_channels, out_channels, impl
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Conv2d's default
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_channels * 9)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        args = _checked(x, self.weight, self.bias)
        return self.resolved_function(x.device, _upsample_conv_ref)(*args)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, bias={self.bias is not None}, impl={self.impl!r}"


# ---------------------------------------------------------------------------------------------------------------
# Test and benchmark specification
# ---------------------------------------------------------------------------------------------------------------

@attrs.frozen(kw_only=True)
class UpsampleConvShape:
    """The inputs of one ``upsample_conv`` case (a test shape, or a benchmark shape of ``ganzoo bench ops --shapes``)."""

    x: tuple[int, ...] = dims_field(4)  # the input's shape [N, Cin, H, W]
    out_channels: int = attrs.field(validator=attrs.validators.ge(1))


SHAPES = {
    "small": UpsampleConvShape(x=(2, 8, 6, 6), out_channels=6),
    "odd": UpsampleConvShape(x=(3, 5, 7, 9), out_channels=3),
    # benchmark shapes: generic upsampling blocks halving the channels, from a tiny input to a large one
    # (benchmarks/shapes.toml has the zoo's model layers)
    "64x1024x4x4": UpsampleConvShape(x=(64, 1024, 4, 4), out_channels=512),
    "64x256x16x16": UpsampleConvShape(x=(64, 256, 16, 16), out_channels=128),
    "8x512x16x16": UpsampleConvShape(x=(8, 512, 16, 16), out_channels=256),
    "8x128x64x64": UpsampleConvShape(x=(8, 128, 64, 64), out_channels=64),
}
VARIANTS = ("bias", "nobias")  # StackGAN's conv3x3 has no bias; a plain nn.Conv2d has one


def _sample(case: Case, gen: torch.Generator) -> tuple[tuple[Any, ...], dict[str, Any]]:
    params = case.params if case.params is not None else SHAPES[case.shape]
    shape, cout = params.x, params.out_channels
    x = torch.randn(shape, generator=gen).to(case.device, case.dtype)
    if case.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = (torch.randn(cout, shape[1], 3, 3, generator=gen) / math.sqrt(shape[1] * 9)).to(case.device, case.dtype)
    bias = (torch.randn(cout, generator=gen) * 0.5).to(case.device, case.dtype) if case.variant != "nobias" else None
    for t in (x, weight, bias):
        if t is not None:
            t.requires_grad_(case.requires_grad)
    return (x, weight, bias), {}


SPEC = define_op(OpSpec(
    name="upsample_conv", call=upsample_conv, sample=_sample, variants=VARIANTS,
    shapes={k: f"{v.x[1]}x{v.x[2]}x{v.x[3]} -> {v.out_channels}x{2 * v.x[2]}x{2 * v.x[3]}, batch {v.x[0]}"
            for k, v in SHAPES.items() if k not in ("small", "odd")},
    shape_type=UpsampleConvShape,
))
