"""The registry verbs users call: ``list_*``, ``is_*``, ``get_*``, ``get_*_cfg`` and ``create_*`` for every kind
but ``op`` (see ``ganzoo_core.ops``), each written out, on top of the generic ``list_names`` / ``is_name`` /
``get_entry`` / ``create``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ganzoo_core._entries import SPEC_ATTR, Entry, check_kind
from ganzoo_core._plugins import get_host
from ganzoo_core.checkpoints import load_weights
from ganzoo_core.config import apply_overrides
from ganzoo_core.errors import ConfigError
from ganzoo_core.hub import create_pretrained, split_tag
from ganzoo_core.interfaces import Loss

__all__ = [
    "SPEC_ATTR", "create", "create_block", "create_dataset", "create_discriminator", "create_encoder",
    "create_generator", "create_loss", "create_metric", "create_objective", "get_block", "get_block_cfg",
    "get_dataset", "get_dataset_cfg", "get_discriminator", "get_discriminator_cfg", "get_encoder", "get_encoder_cfg",
    "get_entry", "get_generator", "get_generator_cfg", "get_loss", "get_loss_cfg", "get_metric", "get_metric_cfg",
    "get_objective", "get_objective_cfg", "is_block", "is_dataset", "is_discriminator", "is_encoder", "is_generator",
    "is_loss", "is_metric", "is_name", "is_objective", "list_blocks", "list_datasets", "list_discriminators",
    "list_encoders", "list_generators", "list_losses", "list_metrics", "list_names", "list_objectives",
]


def list_names(
    kind: str, pattern: str | Sequence[str] = "*", *, plugin: str | None = None, exclude: str | Sequence[str] = ()
) -> list[str]:
    """Sorted registered names of ``kind`` matching ``pattern`` (fnmatch wildcards, or a list of them)."""
    return get_host().registry.names(kind, pattern, plugin=plugin, exclude=exclude)


def get_entry(kind: str, name: str) -> Entry:
    """The registry entry of ``name`` (a bare family name gives its default variant)."""
    return get_host().registry.get(kind, name)


def is_name(kind: str, name: str) -> bool:
    """Whether ``name`` is registered as ``kind`` (a bare family name counts; a retired name does not)."""
    return get_host().registry.has(kind, name)


def create(
    kind: str,
    name: str,
    *,
    weights: str | Path | None = None,
    pretrained: bool | str | Path = False,
    device: torch.device | str | None = None,
    **overrides: Any,
) -> Any:
    """Build ``name`` with its variant's config changed by ``overrides`` (``None`` values are ignored).

    For networks, ``weights`` loads a safetensors or ``.pt``/``.pth`` state dict strictly and ``device`` moves it.
    ``pretrained`` loads shipped weights: True (the default tag, or the tag in ``name``: ``family.variant.tag``),
    a tag, a model folder or ``hf-hub:ORG/NAME``; the network is built with the config they were trained with (see
    ``ganzoo_core.hub``).
    """
    kind = check_kind(kind)
    if pretrained or split_tag(kind, name)[1] is not None:
        return create_pretrained(kind, name, pretrained, overrides, weights=weights, device=device)
    entry = get_entry(kind, name)
    cfg = apply_overrides(entry.cfg, overrides, what=f"{kind} {entry.name!r}")
    try:
        obj = entry.factory(cfg) if entry.cfg is not None else entry.factory()
    except (MemoryError, RuntimeError) as err:  # torch's allocators raise RuntimeError (CUDA: OutOfMemoryError)
        if not isinstance(err, MemoryError) and "alloc" not in str(err).lower():
            raise
        raise ConfigError(f"{kind} {entry.name!r} with {overrides or 'its defaults'} is too large to build here "
                          f"({type(err).__name__}: {' '.join(str(err).split())[:200]}); use smaller sizes") from err
    if isinstance(obj, nn.Module):
        setattr(obj, SPEC_ATTR, (kind, entry.name))
        if weights is not None:
            load_weights(obj, weights)
        if device is not None:
            obj.to(device)
    elif weights is not None or device is not None:
        raise TypeError(f"{kind} {entry.name!r} is not a network; weights= and device= do not apply")
    return obj


# -- generator --------------------------------------------------------------------------------------------------------


def list_generators(
    pattern: str | Sequence[str] = "*", *, plugin: str | None = None, exclude: str | Sequence[str] = ()
) -> list[str]:
    """Sorted registered generator names matching ``pattern`` (wildcards; ``plugin=``, ``exclude=``)."""
    return list_names("generator", pattern, plugin=plugin, exclude=exclude)


def is_generator(name: str) -> bool:
    """Whether ``name`` is a registered generator (a bare family name counts; a retired name does not)."""
    return is_name("generator", name)


def get_generator(name: str) -> Callable[..., Any]:
    """The class or function registered as generator ``name``."""
    return get_entry("generator", name).factory


def get_generator_cfg(name: str) -> Any:
    """The frozen default config (an attrs instance) of generator ``name``, or None if it takes no options."""
    return get_entry("generator", name).cfg


def create_generator(
    name: str,
    *,
    weights: str | Path | None = None,
    pretrained: bool | str | Path = False,
    device: torch.device | str | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build generator ``name`` with config ``overrides``, loading ``weights`` (or ``pretrained``: shipped weights, a model
    folder or ``hf-hub:ORG/NAME``; see ``create``) and moving it to ``device``."""
    return create("generator", name, weights=weights, pretrained=pretrained, device=device, **overrides)


# -- discriminator ----------------------------------------------------------------------------------------------------


def list_discriminators(
    pattern: str | Sequence[str] = "*", *, plugin: str | None = None, exclude: str | Sequence[str] = ()
) -> list[str]:
    """Sorted registered discriminator names matching ``pattern`` (wildcards; ``plugin=``, ``exclude=``)."""
    return list_names("discriminator", pattern, plugin=plugin, exclude=exclude)


def is_discriminator(name: str) -> bool:
    """Whether ``name`` is a registered discriminator (a bare family name counts; a retired name does not)."""
    return is_name("discriminator", name)


def get_discriminator(name: str) -> Callable[..., Any]:
    """The class or function registered as discriminator ``name``."""
    return get_entry("discriminator", name).factory


def get_discriminator_cfg(name: str) -> Any:
    """The frozen default config (an attrs instance) of discriminator ``name``, or None if it takes no options."""
    return get_entry("discriminator", name).cfg


def create_discriminator(
    name: str,
    *,
    weights: str | Path | None = None,
    pretrained: bool | str | Path = False,
    device: torch.device | str | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build discriminator ``name`` with config ``overrides``, loading ``weights`` (or ``pretrained``: shipped weights, a model
    folder or ``hf-hub:ORG/NAME``; see ``create``) and moving it to ``device``."""
    return create("discriminator", name, weights=weights, pretrained=pretrained, device=device, **overrides)


# -- encoder ----------------------------------------------------------------------------------------------------------


def list_encoders(
    pattern: str | Sequence[str] = "*", *, plugin: str | None = None, exclude: str | Sequence[str] = ()
) -> list[str]:
    """Sorted registered encoder names matching ``pattern`` (wildcards; ``plugin=``, ``exclude=``)."""
    return list_names("encoder", pattern, plugin=plugin, exclude=exclude)


def is_encoder(name: str) -> bool:
    """Whether ``name`` is a registered encoder (a bare family name counts; a retired name does not)."""
    return is_name("encoder", name)


def get_encoder(name: str) -> Callable[..., Any]:
    """The class or function registered as encoder ``name``."""
    return get_entry("encoder", name).factory


def get_encoder_cfg(name: str) -> Any:
    """The frozen default config (an attrs instance) of encoder ``name``, or None if it takes no options."""
    return get_entry("encoder", name).cfg


def create_encoder(
    name: str,
    *,
    weights: str | Path | None = None,
    pretrained: bool | str | Path = False,
    device: torch.device | str | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build encoder ``name`` with config ``overrides``, loading ``weights`` (or ``pretrained``: shipped weights, a model
    folder or ``hf-hub:ORG/NAME``; see ``create``) and moving it to ``device``."""
    return create("encoder", name, weights=weights, pretrained=pretrained, device=device, **overrides)


# -- block ------------------------------------------------------------------------------------------------------------


def list_blocks(
    pattern: str | Sequence[str] = "*", *, plugin: str | None = None, exclude: str | Sequence[str] = ()
) -> list[str]:
    """Sorted registered block names matching ``pattern`` (wildcards; ``plugin=``, ``exclude=``)."""
    return list_names("block", pattern, plugin=plugin, exclude=exclude)


def is_block(name: str) -> bool:
    """Whether ``name`` is a registered block (a bare family name counts; a retired name does not)."""
    return is_name("block", name)


def get_block(name: str) -> Callable[..., Any]:
    """The class or function registered as block ``name``."""
    return get_entry("block", name).factory


def get_block_cfg(name: str) -> Any:
    """The frozen default config (an attrs instance) of block ``name``, or None if it takes no options."""
    return get_entry("block", name).cfg


def create_block(
    name: str, *, weights: str | Path | None = None, device: torch.device | str | None = None, **overrides: Any
) -> nn.Module:
    """Build block ``name`` with config ``overrides``, loading ``weights`` and moving it to ``device``."""
    return create("block", name, weights=weights, device=device, **overrides)


# -- loss -------------------------------------------------------------------------------------------------------------


def list_losses(
    pattern: str | Sequence[str] = "*", *, plugin: str | None = None, exclude: str | Sequence[str] = ()
) -> list[str]:
    """Sorted registered loss names matching ``pattern`` (wildcards; ``plugin=``, ``exclude=``)."""
    return list_names("loss", pattern, plugin=plugin, exclude=exclude)


def is_loss(name: str) -> bool:
    """Whether ``name`` is a registered loss (a bare family name counts; a retired name does not)."""
    return is_name("loss", name)


def get_loss(name: str) -> Callable[..., Any]:
    """The class or function registered as loss ``name``."""
    return get_entry("loss", name).factory


def get_loss_cfg(name: str) -> Any:
    """The frozen default config (an attrs instance) of loss ``name``, or None if it takes no options."""
    return get_entry("loss", name).cfg


def create_loss(
    name: str, *, weights: str | Path | None = None, device: torch.device | str | None = None, **overrides: Any
) -> Loss:
    """Build loss ``name`` with config ``overrides``, loading ``weights`` and moving it to ``device``."""
    return create("loss", name, weights=weights, device=device, **overrides)


# -- objective --------------------------------------------------------------------------------------------------------


def list_objectives(
    pattern: str | Sequence[str] = "*", *, plugin: str | None = None, exclude: str | Sequence[str] = ()
) -> list[str]:
    """Sorted registered objective names matching ``pattern`` (wildcards; ``plugin=``, ``exclude=``)."""
    return list_names("objective", pattern, plugin=plugin, exclude=exclude)


def is_objective(name: str) -> bool:
    """Whether ``name`` is a registered objective (a bare family name counts; a retired name does not)."""
    return is_name("objective", name)


def get_objective(name: str) -> Callable[..., Any]:
    """The class or function registered as objective ``name``."""
    return get_entry("objective", name).factory


def get_objective_cfg(name: str) -> Any:
    """The frozen default config (an attrs instance) of objective ``name``, or None if it takes no options."""
    return get_entry("objective", name).cfg


def create_objective(
    name: str,
    *,
    weights: str | Path | None = None,
    pretrained: bool | str | Path = False,
    device: torch.device | str | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build objective ``name`` with config ``overrides``, loading ``weights`` (or ``pretrained``: shipped weights, a
    model folder or ``hf-hub:ORG/NAME``; see ``create``) and moving it to ``device``."""
    return create("objective", name, weights=weights, pretrained=pretrained, device=device, **overrides)


# -- dataset ----------------------------------------------------------------------------------------------------------


def list_datasets(
    pattern: str | Sequence[str] = "*", *, plugin: str | None = None, exclude: str | Sequence[str] = ()
) -> list[str]:
    """Sorted registered dataset names matching ``pattern`` (wildcards; ``plugin=``, ``exclude=``)."""
    return list_names("dataset", pattern, plugin=plugin, exclude=exclude)


def is_dataset(name: str) -> bool:
    """Whether ``name`` is a registered dataset (a bare family name counts; a retired name does not)."""
    return is_name("dataset", name)


def get_dataset(name: str) -> Callable[..., Any]:
    """The class or function registered as dataset ``name``."""
    return get_entry("dataset", name).factory


def get_dataset_cfg(name: str) -> Any:
    """The frozen default config (an attrs instance) of dataset ``name``, or None if it takes no options."""
    return get_entry("dataset", name).cfg


def create_dataset(name: str, **overrides: Any) -> Dataset:
    """Build dataset ``name`` with config ``overrides`` (see ``create``)."""
    return create("dataset", name, **overrides)


# -- metric -----------------------------------------------------------------------------------------------------------


def list_metrics(
    pattern: str | Sequence[str] = "*", *, plugin: str | None = None, exclude: str | Sequence[str] = ()
) -> list[str]:
    """Sorted registered metric names matching ``pattern`` (wildcards; ``plugin=``, ``exclude=``)."""
    return list_names("metric", pattern, plugin=plugin, exclude=exclude)


def is_metric(name: str) -> bool:
    """Whether ``name`` is a registered metric (a bare family name counts; a retired name does not)."""
    return is_name("metric", name)


def get_metric(name: str) -> Callable[..., Any]:
    """The factory registered as metric ``name`` (``create_metric`` calls it to get the scoring callable)."""
    return get_entry("metric", name).factory


def get_metric_cfg(name: str) -> Any:
    """The frozen default config (an attrs instance) of metric ``name``, or None if it takes no options."""
    return get_entry("metric", name).cfg


def create_metric(name: str, **overrides: Any) -> Callable[..., Any]:
    """The scoring callable of metric ``name`` (its factory's result, with config ``overrides``; see ``create``)."""
    return create("metric", name, **overrides)
