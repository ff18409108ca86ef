"""The released phillipi/pix2pix generators (Torch7 ``.t7``) as ganzoo state dicts:
``create_generator("pix2pix.unet_256_lua", weights="facades_label2image.t7")``.

phillipi/pix2pix @89ff2a8 releases generators only (``models/download_model.sh``: ``facades_label2image``,
``cityscapes_label2image``, ``cityscapes_image2label``, ``edges2shoes``, ``edges2handbags``, ``day2night``), each
the ``netG`` that ``train.lua`` saves (``netG:clearState()``, usually after the cudnn conversion, so with
``cudnn.*`` classes and CUDA tensors). ``models.lua`` builds it with nngraph: ``defineG_unet`` (8 levels, 256×256,
``which_model_netG=unet``) or ``defineG_unet_128`` (7 levels), which load into ``pix2pix.unet_256_lua`` and
``pix2pix.unet_128_lua``.

An ``nn.gModule`` lists its modules in ``graph.Graph:topsort`` order, a post-order walk from the output over each
node's inputs in the order they were given. For the U-Net that is the encoder (e1 conv, LeakyReLU, then conv, BN,
LeakyReLU per level, the innermost conv and the decoder's ReLU), then per decoder level its full convolution, BN,
Dropout (d1..d3), the ``JoinTable{d_, e}`` and the next ReLU, and the output full convolution and Tanh
(``unet_layout``). A file is read as data (``pip install 'ganzoo-core[torch7]'``), and its modules are checked
against that table one by one (class, strides, paddings, slopes, dropout rate, join dimension, BN eps); the first
module that does not fit is named. The tensors' shapes are checked when the dict is loaded into the network.

Every Torch convolution has a bias. ``train.lua`` zeroes them at the start of each D and G step, but a saved G
holds the last optimizer step of them and ``test.lua`` runs with them, so they load as they are into the Lua
layout's biased convs (``UnetCfg.conv_bias``): every tensor of the file has its place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import ganzoo_core as gz
from ganzoo_core.errors import CheckpointError
from ganzoo_core.torch7 import T7Module, read_t7, t7_modules

Row = tuple[str, str | None, dict[str, Any]]
"""One module of a layout: its Torch class without the ``nn.`` / ``cudnn.`` package, the ganzoo module its tensors go
to (None for a module without tensors), and the fields it must have (Torch's defaults stand for absent ones)."""

TORCH_DEFAULTS: dict[str, Any] = {"dW": 1, "dH": 1, "padW": 0, "padH": 0, "adjW": 0, "adjH": 0, "negval": 0.01,
                                  "eps": 1e-5, "p": 0.5}
_DOWN = {"dW": 2, "dH": 2, "padW": 1, "padH": 1}  # k4 s2 p1, every conv and full convolution of the U-Net
_UP = {**_DOWN, "adjW": 0, "adjH": 0}
_LRELU = {"negval": 0.2}
_BN = {"eps": 1e-5}
_DROPOUT = {"p": 0.5}
_JOIN = {"dimension": 2}
_LUA_DROPOUT_LEVELS = 3  # d1, d2, d3


def unet_layout(n_downs: int) -> list[Row]:
    """The modules of ``defineG_unet`` (n_downs = 8) / ``defineG_unet_128`` (7) in the gModule's order, each with the
    ``UnetGenerator`` module it loads into: e1 → ``down.0.0``; e_k's conv and BN → ``down.{k-1}.0`` / ``.1``; d_j's
    full convolution and BN → ``up.{n-j}.0`` / ``.1``; the output full convolution → ``up.0.0``."""
    rows: list[Row] = [("SpatialConvolution", "down.0.0", _DOWN), ("LeakyReLU", None, _LRELU)]
    for level in range(1, n_downs - 1):
        rows += [("SpatialConvolution", f"down.{level}.0", _DOWN),
                 ("SpatialBatchNormalization", f"down.{level}.1", _BN), ("LeakyReLU", None, _LRELU)]
    rows += [("SpatialConvolution", f"down.{n_downs - 1}.0", _DOWN), ("ReLU", None, {})]
    for j in range(1, n_downs):  # d1 .. d(n-1), innermost first
        level = n_downs - j
        rows += [("SpatialFullConvolution", f"up.{level}.0", _UP), ("SpatialBatchNormalization", f"up.{level}.1", _BN)]
        if j <= _LUA_DROPOUT_LEVELS:
            rows.append(("Dropout", None, _DROPOUT))
        rows += [("JoinTable", None, _JOIN), ("ReLU", None, {})]
    return rows + [("SpatialFullConvolution", "up.0.0", _UP), ("Tanh", None, {})]


def _what(n_downs: int) -> str:
    source = {8: "models.lua defineG_unet", 7: "models.lua defineG_unet_128"}.get(
        n_downs, f"the layout of models.lua defineG_unet with {n_downs} levels")
    return f"the official pix2pix U-Net ({source})"


def _misfit(m: T7Module, row: Row) -> str:
    """Why module ``m`` does not fit ``row`` ("" when it does)."""
    base, key, fields = row
    needed = ("weight", "bias", "running_mean", "running_var") if base.endswith("Normalization") else (
        ("weight", "bias") if key is not None else ())
    return m.misfit(base, fields, TORCH_DEFAULTS, needed)


def state_dict_from_modules(modules: list[T7Module], where: str) -> tuple[int, dict[str, Tensor]]:
    """(n_downs, ``UnetGenerator`` state dict) of the official U-Net whose modules, in the gModule's order, are
    ``modules``; a one-line ``CheckpointError`` naming the first module that does not fit."""
    n_downs = max(2, sum(m.base == "SpatialConvolution" for m in modules))
    rows, what = unet_layout(n_downs), _what(n_downs)
    out: dict[str, Tensor] = {}
    for index, (m, row) in enumerate(zip(modules, rows)):
        problem = _misfit(m, row)
        if problem:
            raise CheckpointError(f"{where}: module {index} ({m.describe()}) does not fit {what}: {problem}")
        key = row[1]
        if key is None:
            continue
        if row[0].endswith("Convolution"):
            out[f"{key}.weight"], out[f"{key}.bias"] = m.conv_weight(), m.tensors["bias"].reshape(-1)
        else:
            out.update({f"{key}.{k}": m.tensors[k] for k in ("weight", "bias", "running_mean", "running_var")})
            out[f"{key}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    if len(modules) != len(rows):
        if len(modules) < len(rows):
            raise CheckpointError(f"{where}: the network ends after {len(modules)} modules; {what} has {len(rows)} "
                                  f"(next: {rows[len(modules)][0]})")
        m = modules[len(rows)]
        raise CheckpointError(f"{where}: module {len(rows)} ({m.describe()}) is past the end of {what}")
    return n_downs, out


def load_lua_unet(path: str | Path) -> tuple[int, dict[str, Tensor]]:
    """(n_downs, ``UnetGenerator`` state dict) of a released phillipi/pix2pix generator file, for a U-Net built with
    ``UnetCfg(n_downs=n_downs, dropout_at="lua", skip_order="decoder_first", conv_bias=True)``."""
    where = f"Torch7 file {str(path)!r}"
    return state_dict_from_modules(t7_modules(read_t7(path)), where)


def _lua_name(n_downs: int) -> str:
    return {8: "pix2pix.unet_256_lua", 7: "pix2pix.unet_128_lua"}.get(n_downs, f"pix2pix.unet_256_lua with "
                                                                                f"n_downs={n_downs}")


def convert_t7(kind: str, name: str, path: Path) -> dict[str, Tensor]:
    """The ``ganzoo_convert_checkpoint`` branch for Torch7 files: a released generator into a network of the Lua
    layout (a registered config with ``conv_bias``, ``skip_order="decoder_first"`` and no ``innermost_norm``); any
    other target is refused in one line naming the variant to use."""
    where = f"Torch7 file {str(path)!r}"
    if kind != "generator":
        raise CheckpointError(f"{where}: ganzoo reads the released phillipi/pix2pix generators from Torch7 files, not a "
                              f"{kind} (the project released none); load it with create_generator")
    n_downs, state = load_lua_unet(path)
    cfg = gz.get_generator_cfg(name)
    if not (cfg.conv_bias and cfg.skip_order == "decoder_first" and not cfg.innermost_norm):
        raise CheckpointError(f"{where} holds a phillipi/pix2pix (Lua) U-Net of {n_downs} levels, whose layout "
                              f"{name} does not have: load it into {_lua_name(n_downs)}")
    return state
