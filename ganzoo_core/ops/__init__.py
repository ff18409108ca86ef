"""Kernels with several implementations: one module per op, each with its spec, a dispatcher taking ``impl=``,
the plain-PyTorch reference first, then the fast ones.

    from ganzoo_core import ops
    y = ops.bias_act(x, b, act="lrelu")              # impl="auto": the fastest that runs here
    y = ops.bias_act(x, b, act="lrelu", impl="ref")  # the reference
    ops.list_ops()                                   # {"bias_act": ["ref", "compiled", "fused", "triton"], ...}
    with ops.use_impls("ref"): ...                   # every op on its reference, e.g. to check a model
    ops.refresh_impls(G)                             # G's op modules choose their impl="auto" again

Implementations are registry entries of kind ``op`` named ``op.impl``; a plugin adds one with ``register_op``.
This built-in plugin also adds the ``ganzoo bench`` command (``ganzoo_core.bench_cli``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ganzoo_core.hookspecs import hookimpl
from ganzoo_core.ops._dispatch import (
    AutoImpl,
    Case,
    ImplSpec,
    OpSpec,
    OpUnavailableError,
    auto_impl,
    available_impls,
    cache_path,
    define_op,
    get_impl_entry,
    get_op_spec,
    list_op_specs,
    list_ops,
    refresh_impls,
    register_op,
    reload_impl_cache,
    use_impls,
    why_not,
    write_cache,
)
from ganzoo_core.ops.bias_act import bias_act
from ganzoo_core.ops.conv import Conv2d, ConvTranspose2d, conv
from ganzoo_core.ops.conv_bn import conv_bn, fold_batchnorm
from ganzoo_core.ops.gradient_penalty import gradient_penalty
from ganzoo_core.ops.norm_act import BatchNormAct2d, InstanceNormAct2d, norm_act
from ganzoo_core.ops.upsample_conv import UpsampleConv2d, upsample_conv

GANZOO_API_VERSION = "1.0"


@hookimpl
def ganzoo_add_commands(subparsers: Any, context: Mapping[str, Any]) -> None:
    """``ganzoo bench ops | models``."""
    from ganzoo_core.bench_cli import add_bench_commands

    add_bench_commands(subparsers)


__all__ = [
    "AutoImpl",
    "BatchNormAct2d",
    "Case",
    "Conv2d",
    "ConvTranspose2d",
    "ImplSpec",
    "InstanceNormAct2d",
    "OpSpec",
    "OpUnavailableError",
    "UpsampleConv2d",
    "auto_impl",
    "available_impls",
    "bias_act",
    "cache_path",
    "conv",
    "conv_bn",
    "define_op",
    "fold_batchnorm",
    "get_impl_entry",
    "get_op_spec",
    "gradient_penalty",
    "list_op_specs",
    "list_ops",
    "norm_act",
    "refresh_impls",
    "register_op",
    "reload_impl_cache",
    "upsample_conv",
    "use_impls",
    "why_not",
    "write_cache",
]
