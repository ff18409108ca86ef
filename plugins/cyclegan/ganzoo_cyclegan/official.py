"""The released generators of the Torch CycleGAN (junyanz/CycleGAN, ``.t7``) as ganzoo state dicts:
``create_generator("cyclegan.resnet_9blocks_lua", weights="horse2zebra.t7")``.

junyanz/CycleGAN @40b4498 releases one generator per direction (``pretrained_models/download_model.sh``:
``horse2zebra``, ``zebra2horse``, ``apple2orange``, ``orange2apple``, ``summer2winter_yosemite``,
``winter2summer_yosemite``, ``monet2photo``, ``style_monet``, ``style_cezanne``, ``style_ukiyoe``,
``style_vangogh``, ``map2sat``, ``sat2map``, ``facades_photo2label``, ``facades_label2photo``,
``iphone2dslr_flower``; ``<name>_cpu`` for nn-class copies), each saved as ``net:clearState()``. Its
``models/architectures.lua`` builds them with nngraph (``defineG_resnet_9blocks`` / ``defineG_resnet_6blocks``):
an input ``nn.Identity``, reflection padding 3, a 7×7 conv, two stride-2 3×3 convs, residual blocks
``ConcatTable{conv_block, Identity} → CAddTable`` (conv_block: reflection padding 1, 3×3 conv, norm, ReLU,
reflection padding 1, 3×3 conv, norm), two stride-2 full convolutions (adj 1), reflection padding 3, a 7×7 conv and
Tanh, every norm ``nn.InstanceNormalization`` (``util/InstanceNormalization.lua``: affine by default, and always
normalising by the instance's statistics, since its ``evaluate()`` does nothing). Those load into
``cyclegan.resnet_9blocks_lua`` / ``cyclegan.resnet_6blocks_lua`` (``GeneratorCfg.affine``).

The gModule is a chain, so its module list (``graph.Graph:topsort`` order, walked depth first through the residual
blocks' containers) is the forward order: ``resnet_layout``. A file is read as data (``pip install
'ganzoo-core[torch7]'``) and checked module by module against that table (class, strides, paddings, output
adjustments, reflection pads, norm eps and affine); the first module that does not fit is named. The number of
residual blocks is read from the file; the tensors' shapes are checked when the dict is loaded into the network.
The instance norms' running statistics (never used: momentum 0, and evaluation uses the instance's) are not read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

import ganzoo_core as gz
from ganzoo_core.errors import CheckpointError
from ganzoo_core.torch7 import T7Module, read_t7, t7_modules

Row = tuple[str, str | None, dict[str, Any]]
"""One module of a layout: its Torch class without the ``nn.`` / ``cudnn.`` package, the ganzoo module its tensors go
to (None for a module without tensors), and the fields it must have (Torch's defaults stand for absent ones)."""

TORCH_DEFAULTS: dict[str, Any] = {"dW": 1, "dH": 1, "padW": 0, "padH": 0, "adjW": 0, "adjH": 0, "eps": 1e-5,
                                  "affine": True}
_STEM = {"dW": 1, "dH": 1, "padW": 0, "padH": 0}  # the 7×7 and the residual 3×3 convs: reflection-padded before
_DOWN = {"dW": 2, "dH": 2, "padW": 1, "padH": 1}
_UP = {**_DOWN, "adjW": 1, "adjH": 1}
_IN = {"eps": 1e-5, "affine": True}


def _pad(p: int) -> dict[str, Any]:
    return {"pad_l": p, "pad_r": p, "pad_t": p, "pad_b": p}


def resnet_layout(n_blocks: int) -> list[Row]:
    """The modules of ``defineG_resnet_{n_blocks}blocks`` in forward order, each with the ``ResnetGenerator``
    module it loads into (``model.1`` the 7×7 conv, ``model.{10+b}.conv_block.{1,2,5,6}`` residual block b, ...)."""
    rows: list[Row] = [("Identity", None, {}), ("SpatialReflectionPadding", None, _pad(3)),
                       ("SpatialConvolution", "model.1", _STEM), ("InstanceNormalization", "model.2", _IN),
                       ("ReLU", None, {})]
    for conv in (4, 7):
        rows += [("SpatialConvolution", f"model.{conv}", _DOWN),
                 ("InstanceNormalization", f"model.{conv + 1}", _IN), ("ReLU", None, {})]
    for b in range(n_blocks):
        block = f"model.{10 + b}.conv_block"
        rows += [("SpatialReflectionPadding", None, _pad(1)), ("SpatialConvolution", f"{block}.1", _STEM),
                 ("InstanceNormalization", f"{block}.2", _IN), ("ReLU", None, {}),
                 ("SpatialReflectionPadding", None, _pad(1)), ("SpatialConvolution", f"{block}.5", _STEM),
                 ("InstanceNormalization", f"{block}.6", _IN), ("Identity", None, {}), ("CAddTable", None, {})]
    up = 10 + n_blocks
    for conv in (up, up + 3):
        rows += [("SpatialFullConvolution", f"model.{conv}", _UP),
                 ("InstanceNormalization", f"model.{conv + 1}", _IN), ("ReLU", None, {})]
    return rows + [("SpatialReflectionPadding", None, _pad(3)), ("SpatialConvolution", f"model.{up + 7}", _STEM),
                   ("Tanh", None, {})]


def _what(n_blocks: int) -> str:
    source = f"defineG_resnet_{n_blocks}blocks" if n_blocks in (6, 9) else \
        f"the layout of defineG_resnet_9blocks with {n_blocks} blocks"
    return f"the official CycleGAN generator (models/architectures.lua {source})"


def _misfit(m: T7Module, row: Row) -> str:
    """Why module ``m`` does not fit ``row`` ("" when it does)."""
    base, key, fields = row
    return m.misfit(base, fields, TORCH_DEFAULTS, ("weight", "bias") if key is not None else ())


def state_dict_from_modules(modules: list[T7Module], where: str) -> tuple[int, dict[str, Tensor]]:
    """(n_blocks, ``ResnetGenerator`` state dict) of the official generator whose modules, in forward order, are
    ``modules``; a one-line ``CheckpointError`` naming the first module that does not fit."""
    n_blocks = sum(m.base == "CAddTable" for m in modules)
    rows, what = resnet_layout(n_blocks), _what(n_blocks)
    out: dict[str, Tensor] = {}
    for index, (m, row) in enumerate(zip(modules, rows)):
        problem = _misfit(m, row)
        if problem:
            raise CheckpointError(f"{where}: module {index} ({m.describe()}) does not fit {what}: {problem}")
        base, key, _ = row
        if key is not None:
            weight = m.conv_weight() if base.endswith("Convolution") else m.tensors["weight"].reshape(-1)
            out[f"{key}.weight"], out[f"{key}.bias"] = weight, m.tensors["bias"].reshape(-1)
    if len(modules) < len(rows):
        raise CheckpointError(f"{where}: the network ends after {len(modules)} modules; {what} has {len(rows)} "
                              f"(next: {rows[len(modules)][0]})")
    if len(modules) > len(rows):
        raise CheckpointError(f"{where}: module {len(rows)} ({modules[len(rows)].describe()}) is past the end of "
                              f"{what}")
    return n_blocks, out


def load_lua_resnet(path: str | Path) -> tuple[int, dict[str, Tensor]]:
    """(n_blocks, ``ResnetGenerator`` state dict) of a released junyanz/CycleGAN generator file, for a generator
    built with ``GeneratorCfg(n_blocks=n_blocks, affine=True)``."""
    return state_dict_from_modules(t7_modules(read_t7(path)), f"Torch7 file {str(path)!r}")


def convert_t7(kind: str, name: str, path: Path) -> dict[str, Tensor]:
    """The ``ganzoo_convert_checkpoint`` branch for Torch7 files: a released generator into a network with affine
    instance norms (a registered config with ``affine=True``); any other target is refused in one line naming the
    variant to use."""
    where = f"Torch7 file {str(path)!r}"
    if kind != "generator":
        raise CheckpointError(f"{where}: ganzoo reads the released junyanz/CycleGAN generators from Torch7 files, not "
                              f"a {kind} (the project released none); load it with create_generator")
    n_blocks, state = load_lua_resnet(path)
    if not gz.get_generator_cfg(name).affine:
        lua = f"cyclegan.resnet_{n_blocks}blocks_lua" if n_blocks in (6, 9) else \
            f"cyclegan.resnet_9blocks_lua with n_blocks={n_blocks}"
        raise CheckpointError(f"{where} holds a junyanz/CycleGAN (Torch) generator with {n_blocks} residual blocks "
                              f"and affine instance norms, which {name} does not have: load it into {lua}")
    return state
