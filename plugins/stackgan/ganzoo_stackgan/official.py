"""Weights released with the PyTorch StackGAN code (hanzhanggit/StackGAN-Pytorch: ``netG_epoch_*.pth``,
``netD_epoch_last.pth``, plain ``torch.save(net.state_dict())`` files) → ganzoo's StackGAN networks.

The released modules hold the same tensors in the same order under other names:

    STAGE1_G / STAGE2_G                        ganzoo generators
    ca_net.fc                                  ca.fc
    fc.0, fc.1 (Stage-I)                       fc.0, fc.1
    upsample<k>.1 / .2 (conv, BN)              up.<k-1>.0 / .1
    img.0                                      to_rgb.0
    encoder.0; encoder.<i> (i ≥ 2)             encoder.0; encoder.<2 + (i-2)//3>.<(i-2)%3>
    hr_joint.0 / .1                            joint.0 / .1
    residual.<r>.block.0 / .1 / .3 / .4        residual.<r>.body.0.0 / .0.1 / .1 / .2
    STAGE1_G.* (inside STAGE2_G)               the Stage-I generator's own names (dropped for a Stage-II G)

    STAGE1_D / STAGE2_D                        StackDiscriminator
    encode_img.0; encode_img.<i> (i ≥ 2)       features.0.0; features.<1 + (i-2)//3>.<(i-2)%3>
    get_cond_logits.outlogits.0 / .1 / .3      cond_head.0.0 / cond_head.0.1 / cond_head.1
    get_uncond_logits.outlogits.0              uncond

The released D ends in a Sigmoid; ganzoo's returns the logit before it. Files written before PyTorch 0.4 have no
BatchNorm ``num_batches_tracked``; it is set to 0, as PyTorch does when it loads such a file.

``gz.create_generator(name, weights=path)`` checks the file against ``name``'s registered sizes (the hook sees no
overrides). The birds defaults are ``stackgan.s1_64`` / ``stackgan.s2_256``; for other sizes (the released COCO
files: ``GF_DIM 192`` → Stage-I ``ngf=1536``, Stage-II ``ngf=192, n_res=2``; ``DF_DIM 96`` → ``ndf=96``) build the
network with them and call ``load_stackgan_pytorch(network, path)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import ganzoo_core as gz
from ganzoo_core._api import SPEC_ATTR
from ganzoo_core.errors import CheckpointError
from ganzoo_stackgan.model import StackDiscriminator, StageIGenerator, StageIIGenerator

LAYOUTS = ("stage1_g", "stage2_g", "stage1_d", "stage2_d")  # the four released modules
_STAGE1_PREFIX = "STAGE1_G."
_RESBLOCK = {"0": "0.0", "1": "0.1", "3": "1", "4": "2"}  # block.<i> → body.<...>: conv, BN, (ReLU), conv, BN
_D_HEADS = {
    "get_cond_logits.outlogits.0": "cond_head.0.0",  # conv3×3 on [h, c]
    "get_cond_logits.outlogits.1": "cond_head.0.1",  # its BatchNorm (the LeakyReLU is fused into it here)
    "get_cond_logits.outlogits.3": "cond_head.1",  # conv k4 s4 → the conditional logit
    "get_uncond_logits.outlogits.0": "uncond",  # conv k4 s4 → the unconditional logit (Stage-II)
}
_G_FIXED = {"ca_net.fc": "ca.fc", "fc.0": "fc.0", "fc.1": "fc.1", "img.0": "to_rgb.0", "encoder.0": "encoder.0",
            "hr_joint.0": "joint.0", "hr_joint.1": "joint.1"}


def official_layout(state: Mapping[str, Any]) -> str | None:
    """Which released module ``state`` holds (one of ``LAYOUTS``), told by its names; None when it is none of them."""
    keys = set(state)
    if {"ca_net.fc.weight", "upsample1.1.weight", "img.0.weight"} <= keys:
        return "stage2_g" if "hr_joint.0.weight" in keys else "stage1_g"
    if {"encode_img.0.weight", "get_cond_logits.outlogits.0.weight"} <= keys:
        return "stage2_d" if "get_uncond_logits.outlogits.0.weight" in keys else "stage1_d"
    return None


def _g_module(name: str) -> str | None:
    if name in _G_FIXED:
        return _G_FIXED[name]
    if m := re.fullmatch(r"upsample([1-9]\d*)\.([12])", name):
        return f"up.{int(m[1]) - 1}.{int(m[2]) - 1}"
    if (m := re.fullmatch(r"encoder\.(\d+)", name)) and int(m[1]) >= 2:
        i = int(m[1]) - 2  # (conv k4 s2, BN, ReLU) triplets after conv3×3 + ReLU
        return f"encoder.{2 + i // 3}.{i % 3}"
    if (m := re.fullmatch(r"residual\.(\d+)\.block\.(\d+)", name)) and m[2] in _RESBLOCK:
        return f"residual.{m[1]}.body.{_RESBLOCK[m[2]]}"
    return None


def _d_module(name: str) -> str | None:
    if name == "encode_img.0":
        return "features.0.0"
    if (m := re.fullmatch(r"encode_img\.(\d+)", name)) and int(m[1]) >= 2:
        i = int(m[1]) - 2  # (conv, BN, LeakyReLU) triplets after conv + LeakyReLU
        return f"features.{1 + i // 3}.{i % 3}"
    return _D_HEADS.get(name)


def ganzoo_name(official: str, layout: str) -> str | None:
    """The ganzoo state-dict name of released tensor ``official`` (Stage-I names for ``STAGE1_G.*`` inside a Stage-II
    G file), or None when ganzoo's networks have no such tensor."""
    module, _, leaf = official.removeprefix(_STAGE1_PREFIX).rpartition(".")
    ours = _d_module(module) if layout.endswith("_d") else _g_module(module)
    return None if ours is None else f"{ours}.{leaf}"


def official_sizes(state: Mapping[str, Tensor], layout: str) -> dict[str, Any]:
    """The config values a released module (``layout``; a Stage-II G without its ``STAGE1_G.*``) was made with, in
    ganzoo's field names."""
    if layout.endswith("_g"):
        fc = state["ca_net.fc.weight"]  # (2·Ng, text_dim)
        sizes: dict[str, Any] = {"text_dim": fc.shape[1], "cond_dim": fc.shape[0] // 2}
        if layout == "stage1_g":  # fc.0: (16·ngf, nz + Ng)
            return sizes | {"nz": state["fc.0.weight"].shape[1] - fc.shape[0] // 2,
                            "ngf": state["fc.0.weight"].shape[0] // 16}
        return sizes | {"ngf": state["encoder.0.weight"].shape[0],
                        "n_res": len({k.split(".")[1] for k in state if k.startswith("residual.")})}
    ndf = state["encode_img.0.weight"].shape[0]
    n_down = sum(1 for k, t in state.items() if k.startswith("encode_img.") and t.ndim == 4 and t.shape[-1] == 4)
    return {"image_size": 4 * 2**n_down, "ndf": ndf,  # stride-2 k4 convs down to 4×4
            "cond_dim": state["get_cond_logits.outlogits.0.weight"].shape[1] - 8 * ndf,  # conv3×3 on [h (8·ndf), c]
            "uncond_head": layout == "stage2_d"}


def _what(network: nn.Module) -> str:
    spec = getattr(network, SPEC_ATTR, None)
    return spec[1] if spec is not None else type(network).__name__


def _hint(state: Mapping[str, Tensor], layout: str, network: nn.Module) -> str:
    """What to do when the file's sizes differ from the network's: ``state`` is the module's own tensors."""
    cfg = getattr(network, "cfg", None)
    module = {k.removeprefix(_STAGE1_PREFIX): v for k, v in state.items()}
    try:
        sizes = official_sizes(module, layout)
    except (KeyError, IndexError):  # a released tensor the sizes are read from is missing: the error says which
        return ""
    differ = {k: v for k, v in sizes.items() if getattr(cfg, k, v) != v}
    if not differ:
        return ""
    saved = ", ".join(f"{k}={v}" for k, v in differ.items())
    return (f"; the file was saved with {saved}: build the network with those sizes and load the file with "
            "ganzoo_stackgan.load_stackgan_pytorch(network, path)")


def _select(state: Mapping[str, Tensor], layout: str, network: nn.Module, source: str) -> dict[str, Tensor]:
    """The tensors of ``state`` that belong to ``network``: a Stage-II G file's embedded Stage-I for a Stage-I G,
    the rest of it for a Stage-II G."""
    what = _what(network)
    if isinstance(network, StackDiscriminator):
        if not layout.endswith("_d"):
            raise CheckpointError(f"{source} holds a released generator ({layout.upper()}), but {what} is a "
                                  "discriminator; load it into a stackgan generator")
        return dict(state)
    if layout.endswith("_d"):
        raise CheckpointError(f"{source} holds a released discriminator ({layout.upper()}), but {what} is a "
                              "generator; load it into a stackgan discriminator")
    if isinstance(network, StageIGenerator):
        if layout == "stage1_g":
            return dict(state)
        return {k: v for k, v in state.items() if k.startswith(_STAGE1_PREFIX)}
    if layout == "stage1_g":
        raise CheckpointError(f"{source} holds a released Stage-I generator (STAGE1_G), but {what} is a Stage-II "
                              "generator; load it into a Stage-I generator (stackgan.s1_64)")
    return {k: v for k, v in state.items() if not k.startswith(_STAGE1_PREFIX)}


def convert_stackgan_pytorch(state: Mapping[str, Tensor], network: nn.Module, *, source: str = "the state dict"
                             ) -> dict[str, Tensor]:
    """A StackGAN-Pytorch state dict (``STAGE1_G``, ``STAGE2_G``, ``STAGE1_D`` or ``STAGE2_D``) renamed for
    ``network`` (a ``StageIGenerator``, ``StageIIGenerator`` or ``StackDiscriminator``, of any sizes, on any device,
    ``meta`` included). A Stage-II G file gives a Stage-I G its embedded ``STAGE1_G``.

    :raises CheckpointError: ``state`` is not a released layout, is one for another kind of network, or has a tensor
        that does not fit ``network`` (the first such tensor is named with the ganzoo tensor and shape expected).
    """
    if not isinstance(network, (StageIGenerator, StageIIGenerator, StackDiscriminator)):
        raise CheckpointError(f"StackGAN-Pytorch weights load into stackgan generators and discriminators, not into "
                              f"a {type(network).__name__}")
    state = {str(k): v for k, v in state.items()}
    if state and all(k.startswith("module.") for k in state):  # saved from an nn.DataParallel wrapper
        state = {k.removeprefix("module."): v for k, v in state.items()}
    layout = official_layout(state)
    if layout is None:
        raise CheckpointError(f"{source} is not a StackGAN-Pytorch state dict: it has neither ca_net.fc.weight with "
                              "upsample1.1.weight (a generator) nor encode_img.0.weight (a discriminator)")
    what, expected = _what(network), network.state_dict()
    selected = _select(state, layout, network, source)  # released names (STAGE1_G.* kept in error messages)
    if isinstance(network, StageIGenerator):
        layout = "stage1_g"
    out: dict[str, Tensor] = {}
    for key, tensor in selected.items():
        ours = ganzoo_name(key, layout)
        if ours is None or ours not in expected:
            where = "no tensor of that name" if ours is None else f"no {ours}"
            raise CheckpointError(f"{source}: released tensor {key} {tuple(tensor.shape)} does not fit {what}, which "
                                  f"has {where}{_hint(selected, layout, network)}")
        if tensor.shape != expected[ours].shape:
            raise CheckpointError(f"{source}: released tensor {key} {tuple(tensor.shape)} does not fit {what}: its "
                                  f"{ours} is {tuple(expected[ours].shape)}{_hint(selected, layout, network)}")
        out[ours] = tensor
    for ours, tensor in expected.items():
        if ours in out:
            continue
        if ours.endswith(".num_batches_tracked"):  # files saved before PyTorch 0.4
            out[ours] = torch.zeros((), dtype=torch.long)
            continue
        raise CheckpointError(f"{source} has no released tensor for {what}'s {ours} {tuple(tensor.shape)} (a "
                              f"{layout.upper()} file){_hint(selected, layout, network)}")
    return out


def read_state_dict(path: str | Path) -> dict[str, Tensor] | None:
    """The tensors of a weights-only ``torch.save`` file, or None when ``path`` is not one (never unpickles objects)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a weights-only PyTorch file, or not a file: not ours to read
        return None
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        return None
    return {str(k): v for k, v in obj.items()}


def load_stackgan_pytorch(network: nn.Module, path: str | Path) -> nn.Module:
    """Load a released StackGAN-Pytorch file into ``network`` (built with the file's sizes), in place; returns it."""
    state = read_state_dict(path)
    if state is None:
        raise CheckpointError(f"{str(path)!r} could not be read as a weights-only PyTorch state dict")
    network.load_state_dict(convert_stackgan_pytorch(state, network, source=repr(str(path))), strict=True)
    return network


@gz.hookimpl
def ganzoo_convert_checkpoint(kind: str, name: str, path: Path) -> dict[str, Tensor] | None:
    """StackGAN-Pytorch ``netG_epoch_*.pth`` / ``netD_epoch_*.pth`` → ``stackgan.*`` generators and discriminators,
    checked against ``name``'s registered sizes; a Stage-II G file also loads into a Stage-I G (its ``STAGE1_G``).
    None for any other file."""
    if not name.startswith("stackgan.") or kind not in ("generator", "discriminator"):
        return None
    state = read_state_dict(path)
    if state is None or official_layout({k.removeprefix("module."): v for k, v in state.items()}) is None:
        return None
    with torch.device("meta"):  # shapes only: nothing allocated
        network = gz.create(kind, name)
    return convert_stackgan_pytorch(state, network, source="this StackGAN-Pytorch file")  # load_weights names the path
