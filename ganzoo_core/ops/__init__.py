"""Kernels with several implementations: one module per op, each with its spec, a dispatcher taking ``impl=``,
the plain-PyTorch reference first, then the fast ones.

    from ganzoo_core import ops
    y = ops.bias_act(x, b, act="lrelu")              # impl="auto": the fastest that runs here
    y = ops.bias_act(x, b, act="lrelu", impl="ref")  # the reference
    ops.list_ops()                                   # {"bias_act": ["ref", "compiled", "fused", "triton"], ...}
    with ops.use_impls("ref"): ...                   # every op on its reference, e.g. to check a model

Implementations are registry entries of kind ``op`` named ``op.impl``; a plugin adds one with ``register_op``.
"""

from __future__ import annotations

from ganzoo_core.ops._dispatch import (
    Case,
    ImplSpec,
    OpSpec,
    OpUnavailableError,
    available_impls,
    cache_path,
    define_op,
    get_impl_entry,
    get_op_spec,
    list_op_specs,
    list_ops,
    register_op,
    use_impls,
    why_not,
    write_cache,
)
from ganzoo_core.ops.bias_act import bias_act
from ganzoo_core.ops.conv_bn import conv_bn, fold_batchnorm
from ganzoo_core.ops.gradient_penalty import gradient_penalty
from ganzoo_core.ops.norm_act import BatchNormAct2d, InstanceNormAct2d, norm_act
from ganzoo_core.ops.upsample_conv import UpsampleConv2d, upsample_conv

GANZOO_API_VERSION = "1.0"

__all__ = [
    "BatchNormAct2d",
    "Case",
    "ImplSpec",
    "InstanceNormAct2d",
    "OpSpec",
    "OpUnavailableError",
    "UpsampleConv2d",
    "available_impls",
    "bias_act",
    "cache_path",
    "conv_bn",
    "define_op",
    "fold_batchnorm",
    "get_impl_entry",
    "get_op_spec",
    "gradient_penalty",
    "list_op_specs",
    "list_ops",
    "norm_act",
    "register_op",
    "upsample_conv",
    "use_impls",
    "why_not",
    "write_cache",
]
