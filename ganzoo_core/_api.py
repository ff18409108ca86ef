"""The registry verbs users call: ``list_*``, ``is_*``, ``get_*``, ``get_*_cfg`` and ``create_*`` for every kind."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganzoo_core._plugins import get_host
from ganzoo_core._registry import Entry, check_kind
from ganzoo_core.config import apply_overrides
from ganzoo_core.errors import ConfigError

SPEC_ATTR = "ganzoo_spec"
"""Attribute set on every module ``create_*`` builds: ``(kind, name)``, so checkpoints know what to rebuild."""


def list_names(
    kind: str, pattern: str | Sequence[str] = "*", *, plugin: str | None = None, exclude: str | Sequence[str] = ()
) -> list[str]:
    """Sorted registered names of ``kind`` matching ``pattern`` (fnmatch wildcards, or a list of them)."""
    return get_host().registry.names(kind, pattern, plugin=plugin, exclude=exclude)


def get_entry(kind: str, name: str) -> Entry:
    """The registry entry of ``name`` (a bare family name gives its default variant)."""
    return get_host().registry.get(kind, name)


def is_name(kind: str, name: str) -> bool:
    return get_host().registry.has(kind, name)


def create(
    kind: str,
    name: str,
    *,
    weights: str | Path | None = None,
    device: torch.device | str | None = None,
    **overrides: Any,
) -> Any:
    """Build ``name`` with its variant's config changed by ``overrides`` (``None`` values are ignored).

    For networks, ``weights`` loads a safetensors or ``.pt``/``.pth`` state dict strictly and ``device`` moves it.
    """
    entry = get_entry(check_kind(kind), name)
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
            from ganzoo_core.checkpoints import load_weights

            load_weights(obj, weights)
        if device is not None:
            obj.to(device)
    elif weights is not None or device is not None:
        raise TypeError(f"{kind} {entry.name!r} is not a network; weights= and device= do not apply")
    return obj


def _verbs(kind: str) -> tuple[Callable[..., list[str]], Callable[[str], bool], Callable[[str], Any],
                              Callable[[str], Any], Callable[..., Any]]:
    def list_(pattern: str | Sequence[str] = "*", *, plugin: str | None = None,
              exclude: str | Sequence[str] = ()) -> list[str]:
        return list_names(kind, pattern, plugin=plugin, exclude=exclude)

    def is_(name: str) -> bool:
        return is_name(kind, name)

    def get(name: str) -> Any:
        return get_entry(kind, name).factory

    def get_cfg(name: str) -> Any:
        return get_entry(kind, name).cfg

    def create_(name: str, **kwargs: Any) -> Any:
        return create(kind, name, **kwargs)

    plural = {"loss": "losses"}.get(kind, kind + "s")
    docs = {
        f"list_{plural}": f"Sorted registered {kind} names matching ``pattern`` (wildcards; ``plugin=``, ``exclude=``).",
        f"is_{kind}": f"Whether ``name`` is a registered {kind} (a bare family name counts).",
        f"get_{kind}": f"The class or function registered as {kind} ``name``.",
        f"get_{kind}_cfg": f"The frozen default config of {kind} ``name`` (None if it takes no options).",
        f"create_{kind}": f"Build {kind} ``name`` with config overrides (see ``create``).",
    }
    funcs = (list_, is_, get, get_cfg, create_)
    for func, (fname, doc) in zip(funcs, docs.items()):
        func.__name__ = func.__qualname__ = fname
        func.__doc__ = doc
    return funcs


list_generators, is_generator, get_generator, get_generator_cfg, create_generator = _verbs("generator")
list_discriminators, is_discriminator, get_discriminator, get_discriminator_cfg, create_discriminator = _verbs(
    "discriminator"
)
list_encoders, is_encoder, get_encoder, get_encoder_cfg, create_encoder = _verbs("encoder")
list_blocks, is_block, get_block, get_block_cfg, create_block = _verbs("block")
list_losses, is_loss, get_loss, get_loss_cfg, create_loss = _verbs("loss")
list_objectives, is_objective, get_objective, get_objective_cfg, create_objective = _verbs("objective")
list_datasets, is_dataset, get_dataset, get_dataset_cfg, create_dataset = _verbs("dataset")

