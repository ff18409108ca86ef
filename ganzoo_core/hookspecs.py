"""Every ganzoo hook, in one module. A plugin implements any of them with ``@ganzoo_core.hookimpl``.

Named things (networks, losses, objectives, datasets) are added with the ``@register_*`` decorators, not with hooks;
hooks are for behaviour and for registration that has to be computed at load time. Every hook here has a
``test_hook_<name>`` in ``tests/test_hooks.py`` and an entry in ``docs/writing-plugins.md``.

``Baseline``, what ``ganzoo_bench_baselines`` returns, is defined here rather than in ``ganzoo_core.bench`` (which
re-exports it, as does ``ganzoo_core.Baseline``): the benchmark module reaches the plugin host, which imports this
module, so a hook signature naming a class of ``bench`` would close an import cycle.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import pluggy
from torch import Tensor

PROJECT = "ganzoo"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@attrs.frozen(kw_only=True)
class Baseline:
    """One family's official training iteration and generation, written as its official code writes them (its own
    networks as nn.Sequential/nn.Module code, its losses, its optimizers and their settings, the order of
    zero_grad/forward/backward/step), eager fp32, on synthetic data of the official shapes.

    ``train_step(batch_size, device, seed)`` and ``generate(batch_size, device, seed)`` build everything (networks,
    optimizers, data) and return a callable that runs exactly one official iteration, or one eval-mode, no-grad
    generator forward; ``ganzoo bench models --baseline official`` times it beside ganzoo's engine on ``objective``
    with ``overrides`` (the same networks, losses and optimizers), ratios against it.
    """

    name: str  # "<family>.official", e.g. "tinygan.official"
    objective: str  # the ganzoo objective that is the same model (same networks, losses, optimizers)
    overrides: Mapping[str, Any] = attrs.field(factory=dict)  # objective overrides that make it the same model
    source: str  # official repository @ commit, file(s): "someone/tinygan@1a2b3c4 train.py"
    batch_size: int  # the documented size `ganzoo bench models --all` runs at
    train_step: Callable[[int, str, int], Callable[[], Any]]  # (batch_size, device, seed) -> one iteration
    generate: Callable[[int, str, int], Callable[[], Tensor]] | None = None  # (batch, device, seed) -> G forward
    # (eval, no_grad)
    note: str = ""  # what the iteration contains, e.g. "D step + G step every 5th (n_critic=5) as 1 D + 1/5 G"


@hookspec
def ganzoo_register(register: Callable[..., None]) -> None:
    """Register components whose names or configs are computed when the plugin loads.

    Called once per plugin, right after its modules are imported and their ``@register_*`` names are filed.
    Everything registered here belongs to the calling plugin and is rolled back with it if the plugin fails.

    :param register: ``register(kind, name, factory, *, cfg=None, default=False, summary="", paper="")``
        files one ``family.variant`` name (no ``variants=``: call it once per variant; ``default=True`` makes the
        name its family's default). ``summary`` defaults to the first line of the factory's docstring.
    """


@hookspec(firstresult=True)
def ganzoo_convert_checkpoint(kind: str, name: str, path: Path) -> Mapping[str, Tensor] | None:
    """Turn a foreign weights file (an original release, another port's layout) into a state dict for ``name``.

    Called by ``create_*(name, weights=path)`` / ``load_weights`` when the file cannot be read as safetensors or
    as a weights-only PyTorch state dict, or when its names or shapes do not fit the network exactly.
    Stops at the first non-None result. Never unpickle arbitrary objects here (use ``weights_only=True``).

    :param kind: the registry kind of the component being loaded (``"generator"``, ...).
    :param name: its registry name (``"family.variant"``).
    :param path: the file the user gave.
    :return: a state dict that loads strictly into the component, or None if the file is not yours.
    """


@hookspec
def ganzoo_add_commands(subparsers: argparse._SubParsersAction, context: Mapping[str, Any]) -> None:
    """Add sub-commands to the ``ganzoo`` command line.

    :param subparsers: the ``add_subparsers()`` object of the ``ganzoo`` parser; call ``add_parser`` on it and
        ``set_defaults(func=...)`` on the new parser, where ``func(args) -> int`` runs the command.
    :param context: read-only facts about the running CLI (``{"prog": "ganzoo"}``).
    """


@hookspec
def ganzoo_pretrained_folders() -> Sequence[Path]:
    """Model folders of pretrained weights this plugin ships (``create_*(name, pretrained=True)``, ``ganzoo list
    --pretrained``).

    Each folder is what ``ganzoo export CKPT --format hub --tag TAG`` writes: ``model.safetensors``, ``config.json``
    (whose ``kind``, ``name`` and ``tag`` file it as ``name.tag``) and the ``README.md`` model card. The folders are
    read only when pretrained names are listed or asked for.

    :return: the folders, usually inside the plugin's own package (``Path(__file__).parent / "weights" / ...``).
    """


@hookspec
def ganzoo_bench_baselines() -> Sequence[Baseline]:
    """Official training iterations of this plugin's families for ``ganzoo bench models --baseline official``.

    Called when baselines are listed (``ganzoo bench models --baseline official``, ``--all``); building a
    ``Baseline`` must be cheap: networks are built only when its ``train_step`` / ``generate`` is called.

    :return: one ``Baseline`` per family (``gz.Baseline``), each named ``<family>.official``.
    """
