"""The released GAN-CLS Torch7 models (reedscot/icml2016) as ganzoo state dicts: ``create_*(name, weights=file.t7)``.

The CUB and flowers GAN-INT-CLS files come from ``main_cls_int.lua`` and load into ``gan_cls.64``; the COCO GAN-CLS
files from ``main_cls.lua`` (``scripts/train_coco.sh``: ngf=ndf=196) load into ``gan_cls.coco64``. Both scripts build
the same G; their D differ (``D_LAYOUTS``). A file is told by its content (``ganzoo_core.torch7.is_t7_file``), read
as data (``pip install 'ganzoo-core[torch7]'``), and mapped module by module in forward order with an explicit table
per layout (``G_LAYOUT``, ``D_LAYOUTS``), checking each module's class, strides, paddings and slopes; the
tensors' shapes are then checked against the network they are loaded into.

Conv biases: the official code zeroes every conv bias at the start of each D and G step, but a saved G still holds
the last optimizer step of them, and the released demo runs with them; they load as they are into the official
variants' convs (``conv_bias=True``), so every tensor of the file has its place and the parameter counts are the
Torch networks'.

The official D ends in a Sigmoid: ganzoo's D returns the logit before it (``torch.sigmoid(D(x, t))`` is the
official output).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

import ganzoo_core as gz
from ganzoo_core.errors import CheckpointError
from ganzoo_core.torch7 import T7Module, is_t7_file, read_t7, t7_modules

BN_EPS = 1e-5  # Torch's and PyTorch's default; ganzoo's batch norms use it
LRELU_SLOPE = 0.2

Row = tuple[str, str | None, tuple[int, int]]
"""One module of a layout: Torch class (without its ``nn.`` / ``cudnn.`` package), the ganzoo module it maps to (None
for a module without tensors), and (stride, padding) for convolutions."""

_NO = (0, 0)


def _residual(prefix: str, act: str) -> list[Row]:
    """A ConcatTable{Identity, conv 1×1 → BN → act → conv 3×3 → BN → act → conv 3×3 → BN}, then CAddTable and act."""
    return [("Identity", None, _NO),
            ("SpatialConvolution", f"{prefix}.branch.0", (1, 0)), ("SpatialBatchNormalization", f"{prefix}.branch.1", _NO),
            (act, None, _NO),
            ("SpatialConvolution", f"{prefix}.branch.2", (1, 1)), ("SpatialBatchNormalization", f"{prefix}.branch.3", _NO),
            (act, None, _NO),
            ("SpatialConvolution", f"{prefix}.branch.4", (1, 1)), ("SpatialBatchNormalization", f"{prefix}.branch.5", _NO),
            ("CAddTable", None, _NO), (act, None, _NO)]


def _up(conv: str, bn: str) -> list[Row]:
    return [("SpatialFullConvolution", conv, (2, 1)), ("SpatialBatchNormalization", bn, _NO), ("ReLU", None, _NO)]


G_LAYOUT: tuple[Row, ...] = (  # main_cls.lua and main_cls_int.lua (64×64), → ReedGenerator
    ("Identity", None, _NO), ("Linear", "text.0", _NO), ("LeakyReLU", None, _NO),  # ParallelTable{z, fcG}
    ("JoinTable", None, _NO),  # [z, proj(t)]
    ("SpatialFullConvolution", "main.0", (1, 0)), ("SpatialBatchNormalization", "main.1", _NO),  # 4×4
    *_residual("main.2", "ReLU"),
    ("SpatialFullConvolution", "main.3", (2, 1)), ("SpatialBatchNormalization", "main.4", _NO),  # 8×8
    *_residual("main.5", "ReLU"),
    *_up("main.6", "main.7"), *_up("main.8", "main.9"),  # 16×16, 32×32
    ("SpatialFullConvolution", "main.10", (2, 1)), ("Tanh", None, _NO),  # 64×64
)


def _d_layout(act_after_third: bool, text_bn: bool) -> tuple[Row, ...]:
    third: list[Row] = [("LeakyReLU", None, _NO)] if act_after_third else []
    text: list[Row] = [("BatchNormalization", "text.1", _NO)] if text_bn else []
    return (
        ("SpatialConvolution", "body.0", (2, 1)), ("LeakyReLU", None, _NO),  # 32×32
        ("SpatialConvolution", "body.2", (2, 1)), ("SpatialBatchNormalization", "body.3", _NO),
        ("LeakyReLU", None, _NO),  # 16×16
        ("SpatialConvolution", "body.4", (2, 1)), ("SpatialBatchNormalization", "body.5", _NO), *third,  # 8×8
        ("SpatialConvolution", "body.6", (2, 1)), ("SpatialBatchNormalization", "body.7", _NO),  # 4×4
        *_residual("body.8", "LeakyReLU"),
        ("Linear", "text.0", _NO), *text, ("LeakyReLU", None, _NO), ("Replicate", None, _NO),
        ("Replicate", None, _NO),  # fcD, tiled to 4×4
        ("JoinTable", None, _NO),
        ("SpatialConvolution", "joint.0", (1, 0)), ("SpatialBatchNormalization", "joint.1", _NO),
        ("LeakyReLU", None, _NO),
        ("SpatialConvolution", "joint.2", (1, 0)), ("Sigmoid", None, _NO), ("View", None, _NO),
    )


D_LAYOUTS: dict[str, tuple[Row, ...]] = {  # the values of DiscriminatorCfg.layout
    "main_cls_int": _d_layout(act_after_third=False, text_bn=True),  # CUB, flowers → gan_cls.64
    "main_cls": _d_layout(act_after_third=True, text_bn=False),  # COCO → gan_cls.coco64
}
LAYOUTS: dict[str, dict[str, tuple[Row, ...]]] = {"generator": {"G": G_LAYOUT}, "discriminator": D_LAYOUTS}

_CONVS = ("SpatialConvolution", "SpatialFullConvolution")
_NORMS = ("SpatialBatchNormalization", "BatchNormalization")


def match_layout(modules: list[T7Module], kind: str, where: str) -> str:
    """The name of the layout of ``kind`` whose module classes, in forward order, are those of ``modules``; a
    ``CheckpointError`` naming the first module that fits none (against the layout that fits longest)."""
    got = [m.base for m in modules]

    def fitting(rows: tuple[Row, ...]) -> int:  # how many modules, from the first, have the layout's classes
        return next((i for i, (have, row) in enumerate(zip(got, rows)) if have != row[0]), min(len(got), len(rows)))

    for name, rows in LAYOUTS[kind].items():
        if fitting(rows) == len(got) == len(rows):
            return name
    other = next((k for k in LAYOUTS if k != kind and any(fitting(r) == len(got) == len(r) for r in LAYOUTS[k].values())),
                 None)
    if other is not None:
        raise CheckpointError(f"{where} holds the official GAN-CLS {other}, not a {kind}: load it with "
                              f"create_{other}(...)")
    fit, name = max((fitting(rows), name) for name, rows in LAYOUTS[kind].items())
    rows = LAYOUTS[kind][name]
    what = "the official GAN-CLS " + ("generator (main_cls*.lua)" if kind == "generator" else f"D of {name}.lua")
    if fit >= len(modules):
        raise CheckpointError(f"{where}: the network ends after {len(modules)} modules; {what} has {len(rows)} "
                              f"(next: {rows[fit][0]})")
    if fit >= len(rows):
        raise CheckpointError(f"{where}: module {fit} ({modules[fit].describe()}) is past the end of {what}")
    raise CheckpointError(f"{where}: module {fit} ({modules[fit].describe()}) does not fit {what}: expected "
                          f"{rows[fit][0]}")


def _check_fields(m: T7Module, index: int, row: Row, where: str) -> None:
    base, _, (stride, pad) = row
    f = m.fields
    wrong: list[str] = []
    if base in _CONVS:
        got = (f.get("dW", 1), f.get("dH", 1), f.get("padW", 0), f.get("padH", 0), f.get("adjW", 0), f.get("adjH", 0))
        if got != (stride, stride, pad, pad, 0, 0):
            wrong.append(f"stride/padding/adj {got}, expected {(stride, stride, pad, pad, 0, 0)}")
    elif base == "LeakyReLU" and abs(float(f.get("negval", 0.01)) - LRELU_SLOPE) > 1e-9:
        wrong.append(f"negval {f.get('negval', 0.01)}, expected {LRELU_SLOPE}")
    elif base in _NORMS:
        if abs(float(f.get("eps", BN_EPS)) - BN_EPS) > 1e-12:
            wrong.append(f"eps {f.get('eps')}, expected {BN_EPS}")
        missing = [k for k in ("weight", "bias", "running_mean", "running_var") if k not in m.tensors]
        if missing:
            wrong.append(f"no {', '.join(missing)} (an affine batch norm with running statistics is expected)")
    if base in _CONVS and not {"weight", "bias"} <= set(m.tensors):
        wrong.append("no weight or no bias")
    if base == "Linear" and not {"weight", "bias"} <= set(m.tensors):
        wrong.append("no weight or no bias")
    if wrong:
        raise CheckpointError(f"{where}: module {index} ({m.describe()}) does not fit the official layout: "
                              + "; ".join(wrong))


def state_dict_from_modules(modules: list[T7Module], kind: str, where: str) -> tuple[str, dict[str, Tensor]]:
    """(layout name, ganzoo state dict) of the official network whose modules are ``modules`` (forward order)."""
    layout = match_layout(modules, kind, where)
    rows = LAYOUTS[kind][layout]
    out: dict[str, Tensor] = {}
    for index, (m, row) in enumerate(zip(modules, rows)):
        base, key, _ = row
        _check_fields(m, index, row, where)
        if key is None:
            continue
        if base == "Linear":
            out[f"{key}.weight"], out[f"{key}.bias"] = m.tensors["weight"], m.tensors["bias"]
        elif base in _CONVS:
            out[f"{key}.weight"], out[f"{key}.bias"] = m.conv_weight(), m.tensors["bias"].reshape(-1)
        else:
            out.update({f"{key}.weight": m.tensors["weight"], f"{key}.bias": m.tensors["bias"],
                        f"{key}.running_mean": m.tensors["running_mean"], f"{key}.running_var": m.tensors["running_var"],
                        f"{key}.num_batches_tracked": torch.tensor(0, dtype=torch.long)})
    return layout, out


def load_official(path: str | Path, kind: str) -> tuple[str, dict[str, Tensor]]:
    """(layout name, ganzoo state dict) of a released GAN-CLS Torch7 file: ``kind`` "generator" (any script's G →
    ``ReedGenerator``) or "discriminator" (layout "main_cls_int" → ``gan_cls.64``'s D, "main_cls" →
    ``gan_cls.coco64``'s). Which tensors fit is decided when the dict is loaded into a network."""
    if kind not in LAYOUTS:
        raise CheckpointError(f"the official GAN-CLS files hold a generator or a discriminator, not a {kind!r}")
    where = f"Torch7 file {str(path)!r}"
    return state_dict_from_modules(t7_modules(read_t7(path)), kind, where)


@gz.hookimpl
def ganzoo_convert_checkpoint(kind: str, name: str, path: Path) -> Mapping[str, Tensor] | None:
    """A released GAN-CLS Torch7 G or D file (told by content) as the state dict of a ``gan_cls.*`` network; None for
    anything else. The D's two layouts have different tensors (BatchNorm1d in the text projection or not), so a file
    loaded into a D of the other layout fails on those names."""
    if not name.startswith("gan_cls.") or kind not in LAYOUTS or not is_t7_file(path):
        return None
    return load_official(path, kind)[1]
