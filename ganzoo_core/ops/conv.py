"""``conv``: a 2-d convolution or transposed convolution (groups 1, dilation 1), as ``nn.Conv2d`` and
``nn.ConvTranspose2d`` compute it.

    y = conv2d(x, w, b, stride, padding)                                  (transposed=False, w: [Cout, Cin, kh, kw])
    y = conv_transpose2d(x, w, b, stride, padding, output_padding)        (transposed=True,  w: [Cin, Cout, kh, kw])

Implementations (the reference first):

- ``ref``: ``F.conv2d`` / ``F.conv_transpose2d`` (oneDNN on the CPU, cuDNN on CUDA).
- ``gemm``: the convolution as one matrix product. Forward: ``y = W · unfold(x)`` (``[Cout, Cin·kh·kw] @ [N,
  Cin·kh·kw, L]``), transposed: ``y = fold(Wᵀ · x)`` (``[Cout·kh·kw, Cin] @ [N, Cin, H·W]``, then the columns are
  summed into the output, ``F.fold``, which is exactly the adjoint of ``unfold``); autograd's backward is two more
  products, ``Wᵀ·dY`` and ``dY·colsᵀ``. Under autocast the input is cast once, before ``unfold``, so the columns are
  built in the compute dtype.
- ``wgrad``: the library kernel for the forward and the input gradient, the weight gradient as one matrix product:
  ``dW = dY · unfold(x)ᵀ`` (``[Cout, N·L] @ [N·L, Cin·kh·kw]``, L the output positions), transposed ``dW = x ·
  unfold(dY)ᵀ`` (``[Cin, N·H·W] @ [N·H·W, Cout·kh·kw]``). Where a layer has few positions and deep channels
  (GAN-INT-CLS's 1024→512 up-convolution from 4×4, batch 96, bf16, 2 cores) oneDNN's weight-gradient kernel ran
  at 118-149 GFLOP/s against 446 for the same layer's forward; the product takes 79-101 ms against its 194-218.
  The backward is written with differentiable ops (the input gradient as the adjoint convolution's forward), so a
  gradient penalty can differentiate through it.
- ``linear``: where the kernel covers the whole input (no padding; a convolution whose output is 1×1, or a
  transposed one from a 1×1 input) the layer is a linear map of the flattened input, run as one ``F.linear``
  (DCGAN's and GAN-INT-CLS's 4×4 discriminator heads, their generators' first layer); the reference elsewhere.
  oneDNN took 2.4-3.9 ms for the forward and both gradients of DCGAN's head (512→1 on 4×4, batch 64, bf16
  channels_last, 2 cores), ``F.linear`` 0.39 ms.
- ``subpixel``: a transposed convolution whose stride ``s`` divides its kernel as one stride-1 convolution
  (kernel ``k/s``, ``s²·Cout`` output channels, one per output phase) over the input, its phases then interleaved
  into the output; exact (the same products, summed per phase), the reference elsewhere. It computes
  ``((H + k/s - 1)/H)²`` times the multiply-adds (1.56x from 4×4, 1.13x from 16×16) but runs oneDNN's convolution
  kernels, which on a CPU with AMX outrun its transposed ones where positions are few: bf16 inference, 2 cores of an
  Intel Xeon with AMX, DCGAN's 512→256 up-convolution from 4×4 at batch 64 8.3 against 12.4 ms, pix2pix's
  1024→256 from 16×16 at batch 1 2.6 against 5.0 ms, the 64→3 output layer 1.4 against 1.8 ms; with many
  positions and few channels the interleaving copies cost more than that saves (128→64 at 64×64, batch 16: 0.32x),
  and in training the library's backward wins (0.4-1.0x). Without gradients, the rearranged weight is kept per
  weight tensor until that changes in place (``_phase_weight_for``).
- ``small``: ``linear`` where it applies, ``gemm`` where the layer's weights outnumber its input and output
  elements ``WEIGHT_BOUND`` times or more, ``subpixel`` where ``subpixel_wins`` (bf16 inference on an AMX CPU, a
  layer to an image or from deep channels at few positions), ``wgrad`` where the product has at most ``WGRAD_POSITIONS`` positions
  per sample, the reference elsewhere. Where weights dominate, the layer is bound by them (pix2pix's U-Net at batch
  1: 8.4 M weights against 65 k input values in the 1024→512 up-convolution at 8×8) and the library kernel spends its time
  on the weights' layout, not on the arithmetic: measured on CPU (2 cores, forward + backward, bf16), 35.6 → 3.9 ms
  at 2×2, 37.7 → 8.5 ms at 4×4, 44.3 → 13.0 ms at 8×8, and 11.2 → 6.8 ms for a 512→512 convolution of 16×16. Where
  activations dominate (every layer of the batch-64 families, CycleGAN's 256-channel blocks) the library kernel is
  faster (``gemm`` ran at 0.2-0.9x of it) and runs. The weight-gradient product wins at 4×4 positions (1.1-2.4x
  the library's weight gradient at batch 64-96) and loses from 8×8 on (0.4-0.6x), hence ``WGRAD_POSITIONS = 16``.
  ``impl="auto"`` picks ``small`` on the CPU; on CUDA the reference until a measurement says otherwise.

The products sum in another order than the library kernels: in fp32 the two differ by rounding (~1e-6 relative),
in bf16 by bf16 rounding of the output.
"""

from __future__ import annotations

import weakref
from typing import Any

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo_core.errors import ShapeError
from ganzoo_core.ops._common import cast_weight
from ganzoo_core.ops._dispatch import AutoImpl, Case, OpSpec, define_op, dims_field, dispatch, register_op

WEIGHT_BOUND = 16  # ``small`` runs ``gemm`` where weight elements >= WEIGHT_BOUND x (input + output elements)
WGRAD_POSITIONS = 16  # ``small`` runs ``wgrad`` where the weight gradient's product has <= this many positions per sample
# ``small`` runs ``subpixel`` (inference, bf16, AMX) to <= SUBPIXEL_OUT_CHANNELS channels, or from >= SUBPIXEL_CHANNELS
# channels at <= SUBPIXEL_POSITIONS input positions
SUBPIXEL_OUT_CHANNELS, SUBPIXEL_CHANNELS, SUBPIXEL_POSITIONS = 4, 256, 256
# AMX tiles (Intel Sapphire Rapids on): oneDNN's bf16 convolutions there outrun its transposed ones at small sizes
_AMX = bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())

# ---------------------------------------------------------------------------------------------------------------
# Spec
# ---------------------------------------------------------------------------------------------------------------


def conv(x: Tensor, weight: Tensor, bias: Tensor | None = None, *, stride: int | tuple[int, int] = 1,
         padding: int | tuple[int, int] = 0, output_padding: int | tuple[int, int] = 0, transposed: bool = False,
         impl: str = "auto") -> Tensor:
    """``F.conv2d(x, weight, bias, stride, padding)``, or with ``transposed``
    ``F.conv_transpose2d(x, weight, bias, stride, padding, output_padding)``.

    Args:
        x: input ``[N, Cin, H, W]``.
        weight: ``[Cout, Cin, kh, kw]``, transposed ``[Cin, Cout, kh, kw]`` (the ``nn`` layers' layouts).
        bias: ``[Cout]`` or None.
        impl: ``"auto"``, ``"ref"``, ``"gemm"``, ``"small"`` or one a plugin registered.

    Returns:
        ``[N, Cout, Ho, Wo]``, in ``x``'s memory format.
    """
    args = _checked(x, weight, bias, stride, padding, output_padding, transposed)
    return dispatch("conv", impl, x.device, _conv_ref)(*args)


def _pair(v: int | tuple[int, ...] | list[int], what: str) -> tuple[int, int]:
    t = (v, v) if isinstance(v, int) else tuple(v)
    if len(t) != 2 or any(not isinstance(i, int) or i < 0 for i in t):
        raise ShapeError(f"conv: {what} must be an int or a pair of ints >= 0, got {v!r}")
    return t[0], t[1]


def _checked(x: Tensor, weight: Tensor, bias: Tensor | None, stride: Any, padding: Any, output_padding: Any,
             transposed: bool) -> tuple[Tensor, Tensor, Tensor | None, tuple[int, int], tuple[int, int],
                                        tuple[int, int], bool]:
    """``conv``'s arguments checked (modules call the implementation they resolved with these directly)."""
    if x.ndim != 4:
        raise ShapeError(f"conv: x must be [N, C, H, W], got shape {tuple(x.shape)}")
    cin = weight.shape[0] if transposed else weight.shape[1]
    if weight.ndim != 4 or cin != x.shape[1]:
        layout = f"[{x.shape[1]}, Cout, kh, kw]" if transposed else f"[Cout, {x.shape[1]}, kh, kw]"
        raise ShapeError(f"conv: weight of shape {tuple(weight.shape)} does not fit x {tuple(x.shape)}; expected "
                         f"{layout}")
    cout = weight.shape[1] if transposed else weight.shape[0]
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != cout):
        raise ShapeError(f"conv: bias of shape {tuple(bias.shape)} does not fit weight {tuple(weight.shape)}; "
                         f"expected ({cout},)")
    s, p, op = _pair(stride, "stride"), _pair(padding, "padding"), _pair(output_padding, "output_padding")
    if min(s) < 1:
        raise ShapeError(f"conv: stride must be >= 1, got {stride!r}")
    if not transposed and any(op):
        raise ShapeError(f"conv: output_padding {output_padding!r} applies to a transposed convolution only")
    return x, weight, bias, s, p, op, transposed


# ---------------------------------------------------------------------------------------------------------------
# ref
# ---------------------------------------------------------------------------------------------------------------


@register_op("conv.ref", reference=True)
def _conv_ref(x: Tensor, weight: Tensor, bias: Tensor | None, stride: tuple[int, int], padding: tuple[int, int],
              output_padding: tuple[int, int], transposed: bool) -> Tensor:
    """``F.conv2d`` / ``F.conv_transpose2d`` (the ground truth)."""
    if transposed:
        return F.conv_transpose2d(x, weight, bias, stride, padding, output_padding)
    return F.conv2d(x, weight, bias, stride, padding)


# ---------------------------------------------------------------------------------------------------------------
# gemm
# ---------------------------------------------------------------------------------------------------------------


def _output_size(x: Tensor, weight: Tensor, transposed: bool, stride: tuple[int, int], padding: tuple[int, int],
                 output_padding: tuple[int, int]) -> tuple[int, int, int]:
    """(Cout, Ho, Wo) of the layer on ``x``, as ``F.conv2d`` / ``F.conv_transpose2d`` give them."""
    (h, w), (kh, kw) = x.shape[2:], weight.shape[2:]
    if transposed:
        return (weight.shape[1], (h - 1) * stride[0] - 2 * padding[0] + kh + output_padding[0],
                (w - 1) * stride[1] - 2 * padding[1] + kw + output_padding[1])
    return weight.shape[0], (h + 2 * padding[0] - kh) // stride[0] + 1, (w + 2 * padding[1] - kw) // stride[1] + 1


def _compute_dtype(x: Tensor) -> torch.dtype:
    dev = x.device.type
    return torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else x.dtype


def _weight_matrix(weight: Tensor) -> tuple[Tensor, bool]:
    """The weight as the product's matrix without copying it: ``[Cout, Cin·kh·kw]`` (convolution) or ``[Cin,
    Cout·kh·kw]`` (transposed), columns in (channel, kh, kw) order for an NCHW-contiguous weight; for a channels_last
    one (``Policy(channels_last=True)`` converts weights too) the view with columns in (kh, kw, channel) order, and
    True: the caller then reorders the columns, which in a weight-bound layer are far fewer than the weights."""
    a, b, kh, kw = weight.shape
    if weight.is_contiguous():
        return weight.reshape(a, b * kh * kw), False
    if weight.is_contiguous(memory_format=torch.channels_last):
        return weight.permute(0, 2, 3, 1).reshape(a, kh * kw * b), True  # a view: memory order (a, kh, kw, b)
    return weight.reshape(a, b * kh * kw), False  # any other layout: one copy


@register_op("conv.gemm")
def _conv_gemm(x: Tensor, weight: Tensor, bias: Tensor | None, stride: tuple[int, int], padding: tuple[int, int],
               output_padding: tuple[int, int], transposed: bool) -> Tensor:
    """One matrix product with ``unfold`` (convolution) or ``fold`` (transposed) around it."""
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    # cast here, each tensor in its own layout: autocast would cast the columns (k·k times larger than x) and the
    # weight's matrix view, whose cast (and its backward) copies through a transposed layout
    x = x.to(_compute_dtype(x))
    if torch.is_autocast_enabled(x.device.type):
        weight = cast_weight(weight, x.dtype)
    n, cin, h, w = x.shape
    kh, kw = weight.shape[2:]
    w2, spatial_first = _weight_matrix(weight)
    cout, ho, wo = _output_size(x, weight, transposed, stride, padding, output_padding)
    if transposed:
        # one 2-d product over every position of the batch (a batched product would expand the weight per sample):
        # x as [Cin, N·H·W] (a view for channels_last x, and for N = 1)
        cols = w2.t() @ x.transpose(0, 1).reshape(cin, n * h * w)  # [Cout·kh·kw (or kh·kw·Cout), N·H·W]
        if spatial_first:  # rows (kh, kw, Cout) → (Cout, kh, kw), as fold reads them
            cols = cols.view(kh * kw, cout, n * h * w).transpose(0, 1)
        cols = cols.reshape(cout * kh * kw, n, h * w).transpose(0, 1)  # [N, Cout·kh·kw, H·W]
        y = F.fold(cols, (ho, wo), (kh, kw), padding=padding, stride=stride)  # [N, Cout, Ho, Wo]
    else:
        cols = F.unfold(x, (kh, kw), padding=padding, stride=stride)  # [N, Cin·kh·kw, Ho·Wo]
        if spatial_first:  # [N, Cin, kh·kw, L] → [N, kh·kw, Cin, L], the weight view's order
            cols = cols.view(n, cin, kh * kw, ho * wo).transpose(1, 2)
        cols = cols.reshape(n, cin * kh * kw, ho * wo).transpose(0, 1).reshape(cin * kh * kw, n * ho * wo)
        y = (w2 @ cols).view(cout, n, ho, wo).transpose(0, 1)  # [Cout, N·Ho·Wo] → [N, Cout, Ho, Wo]
    if bias is not None:
        y = y + bias.to(y.dtype).view(1, cout, 1, 1)
    return y.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


# ---------------------------------------------------------------------------------------------------------------
# wgrad
# ---------------------------------------------------------------------------------------------------------------


def _adjoint(g: Tensor, weight: Tensor, transposed: bool, stride: tuple[int, int], padding: tuple[int, int],
             size: tuple[int, int]) -> Tensor:
    """The input gradient: the adjoint convolution of the output gradient ``g``, sized to the input (``size``)."""
    kh, kw = weight.shape[2:]
    if transposed:  # the adjoint of a transposed convolution is the convolution with the same weight
        return F.conv2d(g, weight, None, stride, padding)
    ho, wo = g.shape[2:]
    extra = (size[0] - ((ho - 1) * stride[0] - 2 * padding[0] + kh), size[1] - ((wo - 1) * stride[1] - 2 * padding[1] + kw))
    return F.conv_transpose2d(g, weight, None, stride, padding, extra)


def _weight_grad(x: Tensor, g: Tensor, weight: Tensor, transposed: bool, stride: tuple[int, int],
                 padding: tuple[int, int]) -> Tensor:
    """The weight gradient as one product over every position of the batch."""
    a, b, kh, kw = weight.shape
    # the side that is unfolded: the input for a convolution, the output gradient for a transposed one
    plain, unfolded = (x, g) if transposed else (g, x)
    n, c = plain.shape[:2]
    cols = F.unfold(unfolded, (kh, kw), padding=padding, stride=stride)  # [N, C'·kh·kw, L]
    cols = cols.transpose(1, 2).reshape(-1, cols.shape[1])  # [N·L, C'·kh·kw]
    rows = plain.transpose(0, 1).reshape(c, -1)  # [C, N·L] (L = plain's positions, unfold's count)
    return (rows @ cols).view(a, b, kh, kw)  # [Cout (Cin), Cin·kh·kw (Cout·kh·kw)] -> the weight's shape


class _WgradConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, stride: tuple[int, int],
                padding: tuple[int, int], output_padding: tuple[int, int], transposed: bool) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, transposed, bias is not None)
        return _conv_ref(x, weight, bias, stride, padding, output_padding, transposed)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        stride, padding, transposed, has_bias = ctx.conf
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx = _adjoint(g, weight, transposed, stride, padding, x.shape[2:]) if need_x else None
        gw = _weight_grad(x, g, weight, transposed, stride, padding) if need_w else None
        gb = g.sum((0, 2, 3)) if has_bias and need_b else None
        return gx, gw, gb, None, None, None, None


@register_op("conv.wgrad")
def _conv_wgrad(x: Tensor, weight: Tensor, bias: Tensor | None, stride: tuple[int, int], padding: tuple[int, int],
                output_padding: tuple[int, int], transposed: bool) -> Tensor:
    """The library kernel forward and input gradient; the weight gradient as one matrix product."""
    if torch.is_autocast_enabled(x.device.type):  # cast as autocast would: the function then sees one dtype
        x = x.to(_compute_dtype(x))
        weight = cast_weight(weight, x.dtype)
        bias = None if bias is None else cast_weight(bias, x.dtype)
    return _WgradConv.apply(x, weight, bias, stride, padding, output_padding, transposed)


# ---------------------------------------------------------------------------------------------------------------
# linear
# ---------------------------------------------------------------------------------------------------------------


def covers_input(x: Tensor, weight: Tensor, transposed: bool, padding: tuple[int, int],
                 output_padding: tuple[int, int] = (0, 0)) -> bool:
    """Whether the kernel covers the whole input with no padding: a convolution with a 1×1 output, or a transposed
    one from a 1×1 input (then every output element is a sum over every input element: a linear map)."""
    if padding != (0, 0) or output_padding != (0, 0):
        return False
    return tuple(x.shape[2:]) == (1, 1) if transposed else tuple(x.shape[2:]) == tuple(weight.shape[2:])


@register_op("conv.linear")
def _conv_linear(x: Tensor, weight: Tensor, bias: Tensor | None, stride: tuple[int, int], padding: tuple[int, int],
                 output_padding: tuple[int, int], transposed: bool) -> Tensor:
    """One ``F.linear`` where ``covers_input``, the reference elsewhere."""
    if not covers_input(x, weight, transposed, padding, output_padding):
        return _conv_ref(x, weight, bias, stride, padding, output_padding, transposed)
    x = x.to(_compute_dtype(x))  # cast as autocast would, each tensor in its own layout (see gemm)
    if torch.is_autocast_enabled(x.device.type):
        weight = cast_weight(weight, x.dtype)
        bias = None if bias is None else cast_weight(bias, x.dtype)
    n, kh, kw = x.shape[0], weight.shape[2], weight.shape[3]
    w2, spatial_first = _weight_matrix(weight)  # columns (C, kh, kw), or (kh, kw, C) for a channels_last weight
    if transposed:
        y = x.reshape(n, x.shape[1]) @ w2  # [N, Cin] @ [Cin, Cout·kh·kw] (a view of x: it is 1×1)
        cout = weight.shape[1]
        y = y.view(n, kh, kw, cout).permute(0, 3, 1, 2) if spatial_first else y.view(n, cout, kh, kw)
        return y if bias is None else y + bias.view(1, cout, 1, 1)
    # x flattened in the weight columns' order: a view where the two layouts agree (channels_last policy: both)
    flat = x.permute(0, 2, 3, 1).reshape(n, -1) if spatial_first else x.reshape(n, -1)
    return F.linear(flat, w2, bias).view(n, weight.shape[0], 1, 1)  # [N, Cout] → [N, Cout, 1, 1]


def wgrad_positions(x: Tensor, weight: Tensor, transposed: bool, stride: tuple[int, int], padding: tuple[int, int],
                    output_padding: tuple[int, int] = (0, 0)) -> int:
    """Positions per sample of ``wgrad``'s product: the output's for a convolution, the input's for a transposed one."""
    if transposed:
        return x.shape[2] * x.shape[3]
    _, ho, wo = _output_size(x, weight, transposed, stride, padding, output_padding)
    return ho * wo


# ---------------------------------------------------------------------------------------------------------------
# subpixel
# ---------------------------------------------------------------------------------------------------------------


def splits_into_phases(x: Tensor, weight: Tensor, transposed: bool, stride: tuple[int, int],
                       padding: tuple[int, int], output_padding: tuple[int, int] = (0, 0)) -> bool:
    """Whether a transposed convolution splits into ``s²`` stride-1 convolutions of one input: a square stride
    ``s`` > 1 that divides the kernel, and an output padding no larger than the padding (its crop then lies inside)."""
    (sh, sw), (kh, kw) = stride, weight.shape[2:]
    return (transposed and sh == sw > 1 and kh % sh == 0 and kw % sw == 0
            and output_padding[0] <= padding[0] and output_padding[1] <= padding[1])


def phase_weight(weight: Tensor, s: int) -> Tensor:
    """A transposed convolution's weight ``[Cin, Cout, J·s, J·s]`` as the stride-1 convolution weight ``[s²·Cout,
    Cin, J, J]`` of its ``s²`` output phases, phase ``(rh, rw)`` in rows ``(rh·s + rw)·Cout`` on, tap ``t`` of a
    phase being the kernel's ``r + s·(J - 1 - t)`` (a convolution correlates, a transposed one scatters)."""
    cin, cout, kh, kw = weight.shape
    w = weight.reshape(cin, cout, kh // s, s, kw // s, s).flip(2, 4)  # [Cin, Cout, Jh, rh, Jw, rw], taps reversed
    return w.permute(3, 5, 1, 0, 2, 4).reshape(s * s * cout, cin, kh // s, kw // s)


_phase_weights: dict[int, tuple[weakref.ref[Tensor], int, tuple[Any, ...], Tensor]] = {}  # id(weight) -> its entry


def _phase_weight_for(weight: Tensor, s: int, channels_last: bool, dtype: torch.dtype) -> Tensor:
    """``phase_weight`` of ``weight`` cast to ``dtype``, in the input's layout. Where no gradient reaches the weight
    (inference) it is kept per weight tensor until that changes in place (its version counter) or is freed: the
    rearrangement is a transposing copy (33 ms for a 1024→512 4×4 weight in bf16 on 2 cores, against 2 ms for the
    convolution)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if (torch.is_grad_enabled() and weight.requires_grad) or torch.compiler.is_compiling() or weight.is_inference():
        # with gradients: part of the graph; compiled with frozen weights: a constant; an inference-mode tensor
        # has no version counter to tell an in-place change
        return phase_weight(cast_weight(weight, dtype), s).contiguous(memory_format=fmt)
    key, conf = id(weight), (s, channels_last, dtype)
    hit = _phase_weights.get(key)
    if hit is not None and hit[0]() is weight and hit[1] == weight._version and hit[2] == conf:
        return hit[3]
    out = phase_weight(weight.detach().to(dtype), s).contiguous(memory_format=fmt)
    _phase_weights[key] = (weakref.ref(weight, lambda _, key=key: _phase_weights.pop(key, None)),
                           weight._version, conf, out)
    return out


@register_op("conv.subpixel")
def _conv_subpixel(x: Tensor, weight: Tensor, bias: Tensor | None, stride: tuple[int, int],
                   padding: tuple[int, int], output_padding: tuple[int, int], transposed: bool) -> Tensor:
    """A transposed convolution as one stride-1 convolution to its ``s²`` output phases (``phase_weight``), whose
    outputs are interleaved into the result; the reference where ``splits_into_phases`` does not hold."""
    if not splits_into_phases(x, weight, transposed, stride, padding, output_padding):
        return _conv_ref(x, weight, bias, stride, padding, output_padding, transposed)
    s, (kh, kw) = stride[0], weight.shape[2:]
    cout, ho, wo = _output_size(x, weight, transposed, stride, padding, output_padding)
    jh, jw = kh // s, kw // s
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    x = x.to(_compute_dtype(x))  # cast as autocast would; the phase weight is cast before it is rearranged
    w = _phase_weight_for(weight, s, channels_last, x.dtype)
    if torch.is_autocast_enabled(x.device.type) and bias is not None:
        bias = cast_weight(bias, x.dtype)
    b = None if bias is None else bias.repeat(s * s)
    # every phase over the input padded by J - 1: z[.., m', n'] is output (s·m' + rh - ph, s·n' + rw - pw)
    z = F.conv2d(x, w, b, 1, (jh - 1, jw - 1))  # [N, s²·Cout, H + Jh - 1, W + Jw - 1]
    y = torch.empty((x.shape[0], cout, ho, wo), dtype=z.dtype, device=z.device,
                    memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    for rh in range(s):
        oh = (rh - padding[0]) % s  # the first output row of phase rh, and its row in z
        mh, nh = (oh + padding[0] - rh) // s, len(range(oh, ho, s))
        for rw in range(s):
            ow = (rw - padding[1]) % s
            mw, nw = (ow + padding[1] - rw) // s, len(range(ow, wo, s))
            k = (rh * s + rw) * cout
            y[:, :, oh::s, ow::s] = z[:, k:k + cout, mh:mh + nh, mw:mw + nw]
    return y


# ---------------------------------------------------------------------------------------------------------------
# small
# ---------------------------------------------------------------------------------------------------------------


def weight_bound(x: Tensor, weight: Tensor, transposed: bool, stride: tuple[int, int], padding: tuple[int, int],
                 output_padding: tuple[int, int] = (0, 0)) -> bool:
    """Whether the layer's weights outnumber its input and output elements ``WEIGHT_BOUND`` times or more."""
    cout, ho, wo = _output_size(x, weight, transposed, stride, padding, output_padding)
    return weight.numel() >= WEIGHT_BOUND * (x.numel() + x.shape[0] * cout * ho * wo)


def subpixel_wins(x: Tensor, weight: Tensor, transposed: bool, stride: tuple[int, int], padding: tuple[int, int],
                  output_padding: tuple[int, int] = (0, 0)) -> bool:
    """Whether ``small`` runs ``subpixel``: an inference call (no gradient wanted) in bf16 on a CPU with AMX, of a
    transposed convolution that ``splits_into_phases``, to at most ``SUBPIXEL_OUT_CHANNELS`` channels (an image) or
    from ``SUBPIXEL_CHANNELS`` channels or more at ``SUBPIXEL_POSITIONS`` input positions or fewer."""
    if not (_AMX and x.device.type == "cpu" and _compute_dtype(x) == torch.bfloat16):
        return False
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return False
    if not splits_into_phases(x, weight, transposed, stride, padding, output_padding):
        return False
    cin, cout, (h, w) = weight.shape[0], weight.shape[1], x.shape[2:]
    return cout <= SUBPIXEL_OUT_CHANNELS or (cin >= SUBPIXEL_CHANNELS and h * w <= SUBPIXEL_POSITIONS)


@register_op("conv.small", auto=("cpu",), priority=10)
def _conv_small(x: Tensor, weight: Tensor, bias: Tensor | None, stride: tuple[int, int], padding: tuple[int, int],
                output_padding: tuple[int, int], transposed: bool) -> Tensor:
    """``linear`` where the kernel covers the input, ``gemm`` for weight-bound layers, ``wgrad`` for layers of few
    positions, the reference for the others."""
    args = (x, weight, bias, stride, padding, output_padding, transposed)
    if covers_input(x, weight, transposed, padding, output_padding):
        return _conv_linear(*args)
    if weight_bound(x, weight, transposed, stride, padding, output_padding):
        return _conv_gemm(*args)
    if subpixel_wins(x, weight, transposed, stride, padding, output_padding):
        return _conv_subpixel(*args)
    if torch.is_grad_enabled() and weight.requires_grad and \
            wgrad_positions(x, weight, transposed, stride, padding, output_padding) <= WGRAD_POSITIONS:
        return _conv_wgrad(*args)
    return _conv_ref(*args)


# ---------------------------------------------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------------------------------------------


class Conv2d(AutoImpl, nn.Conv2d):
    """``nn.Conv2d`` (same constructor, parameters, initialisation and state dict) running ``conv``; groups 1,
    dilation 1 and zero padding only. ``impl="auto"`` is resolved once per device type (see ``AutoImpl``)."""

    op_name = "conv"

    def __init__(self, *args: Any, impl: str = "auto", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.groups != 1 or self.dilation != (1, 1) or self.padding_mode != "zeros" or isinstance(self.padding, str):
            raise ShapeError(f"ganzoo Conv2d runs groups=1, dilation=1, numeric zero padding; got groups={self.groups}, "
                             f"dilation={self.dilation}, padding={self.padding!r}, padding_mode={self.padding_mode!r}"
                             " (use nn.Conv2d for those)")
        self.impl = impl

    def forward(self, x: Tensor) -> Tensor:
        args = _checked(x, self.weight, self.bias, self.stride, self.padding, (0, 0), False)
        return self.resolved_function(x.device, _conv_ref)(*args)


class ConvTranspose2d(AutoImpl, nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` (same constructor, parameters, initialisation and state dict) running ``conv`` with
    ``transposed=True``; groups 1, dilation 1, no ``output_size`` argument."""

    op_name = "conv"

    def __init__(self, *args: Any, impl: str = "auto", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.groups != 1 or self.dilation != (1, 1):
            raise ShapeError(f"ganzoo ConvTranspose2d runs groups=1, dilation=1; got groups={self.groups}, "
                             f"dilation={self.dilation} (use nn.ConvTranspose2d for those)")
        self.impl = impl

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        if output_size is not None:
            raise ShapeError("ganzoo ConvTranspose2d takes no output_size; set output_padding in the constructor")
        args = _checked(x, self.weight, self.bias, self.stride, self.padding, self.output_padding, True)
        return self.resolved_function(x.device, _conv_ref)(*args)


# ---------------------------------------------------------------------------------------------------------------
# Test and benchmark specification
# ---------------------------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ConvShape:
    """The inputs of one ``conv`` case (a test shape, or a benchmark shape of ``ganzoo bench ops --shapes``)."""

    x: tuple[int, ...] = dims_field(4)  # the input's shape [N, Cin, H, W]
    out_channels: int = attrs.field(validator=attrs.validators.ge(1))
    kernel: int = attrs.field(default=4, validator=attrs.validators.ge(1))
    stride: int = attrs.field(default=2, validator=attrs.validators.ge(1))
    padding: int = attrs.field(default=1, validator=attrs.validators.ge(0))
    output_padding: int = attrs.field(default=0, validator=attrs.validators.ge(0))  # transposed only
    transposed: bool | None = None  # None: as the case's variant says


SHAPES = {
    "small": ConvShape(x=(2, 6, 6, 6), out_channels=5),
    "odd": ConvShape(x=(3, 5, 7, 9), out_channels=3, kernel=3, stride=2, padding=1, output_padding=1),
    "weight_bound": ConvShape(x=(1, 64, 2, 2), out_channels=48),  # small picks gemm here (tests every branch)
    "few_positions": ConvShape(x=(4, 32, 4, 4), out_channels=24),  # and wgrad here: 2x2 (4x4 transposed) positions
    # and linear here: a 4x4 kernel over a 4x4 input, and a transposed one from 1x1
    "whole_input": ConvShape(x=(3, 16, 4, 4), out_channels=5, stride=1, padding=0, transposed=False),
    "from_1x1": ConvShape(x=(3, 16, 1, 1), out_channels=6, stride=1, padding=0, transposed=True),
    # benchmark shapes: pix2pix's U-Net at batch 1 (weight-bound) and a batch-64 layer (activation-bound)
    "1x1024x2x2.T": ConvShape(x=(1, 1024, 2, 2), out_channels=512, transposed=True),
    "1x1024x8x8.T": ConvShape(x=(1, 1024, 8, 8), out_channels=512, transposed=True),
    "1x512x16x16": ConvShape(x=(1, 512, 16, 16), out_channels=512, transposed=False),
    "64x256x8x8": ConvShape(x=(64, 256, 8, 8), out_channels=512, transposed=False),
    "64x512x4x4->1": ConvShape(x=(64, 512, 4, 4), out_channels=1, stride=1, padding=0, transposed=False),  # D's head
}
VARIANTS = ("conv-bias", "transposed-nobias", "conv-nobias", "transposed-bias")
_TEST_ONLY = ("small", "odd", "weight_bound", "few_positions", "whole_input", "from_1x1")


def _sample(case: Case, gen: torch.Generator) -> tuple[tuple[Any, ...], dict[str, Any]]:
    params = case.params if case.params is not None else SHAPES[case.shape]
    kind, with_bias = (case.variant or VARIANTS[0]).split("-")
    transposed = kind == "transposed" if params.transposed is None else params.transposed
    cin, cout, k = params.x[1], params.out_channels, params.kernel
    x = torch.randn(params.x, generator=gen).to(case.device, case.dtype)
    if case.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    shape = (cin, cout, k, k) if transposed else (cout, cin, k, k)
    weight = (torch.randn(shape, generator=gen) / (cin * k * k) ** 0.5).to(case.device, case.dtype)
    bias = (torch.randn(cout, generator=gen) * 0.5).to(case.device, case.dtype) if with_bias == "bias" else None
    for t in (x, weight, bias):
        if t is not None:
            t.requires_grad_(case.requires_grad)
    return (x, weight, bias), {"stride": params.stride, "padding": params.padding, "transposed": transposed,
                               "output_padding": params.output_padding if transposed else 0}


SPEC = define_op(OpSpec(
    name="conv", call=conv, sample=_sample, variants=VARIANTS,
    shapes={k: f"{'transposed ' * bool(v.transposed)}{v.x[1]}x{v.x[2]}x{v.x[3]} -> {v.out_channels}, k{v.kernel} "
               f"s{v.stride}, batch {v.x[0]}"
            for k, v in SHAPES.items() if k not in _TEST_ONLY},
    shape_type=ConvShape, test_shapes=_TEST_ONLY[2:],
    tol={torch.float32: (1e-4, 1e-5), torch.bfloat16: (3e-2, 3e-2)},
))
