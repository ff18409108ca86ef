"""Checkpoints: safetensors tensors plus the metadata that rebuilds the module, written atomically, read without pickle.

Metadata keys (all strings): ``ganzoo.format`` ("1"), ``ganzoo.kind``, ``ganzoo.name``, ``ganzoo.config`` (JSON),
``ganzoo.config_class``, ``ganzoo.versions`` (JSON: core and owning plugin distributions), ``ganzoo.sha256`` (the
hash of every tensor's name, dtype, shape and bytes, checked on load), plus any ``extra``.

A checkpoint saved under a name that was retired since (``register_retired``) is read as its replacement's: the
replacement's factory rebuilds it from the checkpoint's own, complete config.

A file is data, never code: the metadata may name registry entries and values, never a file path that loading would
then open. A saved config whose path-like fields (``*_dir``, ``*_file``, ``*_path``, ``*checkpoint``, ``weights``,
... inside nested ``*_kwargs`` too) hold anything but their defaults is refused; what a network needs from outside is
the caller's argument.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from ganzoo_core._atomic import atomic_path
from ganzoo_core._entries import NETWORK_KINDS, SPEC_ATTR, Entry
from ganzoo_core._plugins import get_host
from ganzoo_core.config import cfg_from_dict, cfg_to_json
from ganzoo_core.errors import CheckpointError, GanzooError

FORMAT = "1"


@attrs.frozen(kw_only=True)
class CheckpointInfo:
    """What a checkpoint says about itself. ``name`` is the registry name that rebuilds it: the saved name, or the
    replacement of a saved name retired since (then ``saved_name`` holds the saved one)."""

    path: Path
    kind: str
    name: str
    config: dict[str, Any]
    versions: dict[str, str]
    extra: dict[str, str]
    tensors: dict[str, tuple[int, ...]]
    saved_name: str = ""


def _entry(kind: str, name: str) -> Entry:
    return get_host().registry.get(kind, name)


def _versions(module_name: str) -> dict[str, str]:
    from ganzoo_core._version import __version__

    versions = {"ganzoo-core": __version__}
    info = get_host().plugin_of_module(module_name)
    if info is not None and info.distribution not in ("?", "ganzoo-core"):
        versions[info.distribution] = info.version
    return versions


def state_tensors(module: nn.Module) -> dict[str, Tensor]:
    """The module's state dict as contiguous CPU tensors, with aliased tensors stored once (first name wins)."""
    out: dict[str, Tensor] = {}
    seen: dict[tuple[int, int, tuple[int, ...]], str] = {}
    for key, tensor in module.state_dict().items():
        ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if tensor.numel() and ident in seen:
            continue
        seen[ident] = key
        out[key] = tensor.detach().to("cpu").contiguous()
    return out


def checkpoint_metadata(module: nn.Module, *, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The metadata that lets ``load`` rebuild ``module`` (built by a ``create_*`` call)."""
    spec = getattr(module, SPEC_ATTR, None)
    if spec is None:
        raise CheckpointError(
            f"{type(module).__name__} was not built by the registry, so a checkpoint could not rebuild it; "
            "build it with ganzoo_core.create_*(name) or save its state_dict with safetensors directly"
        )
    kind, name = spec
    entry = _entry(kind, name)
    metadata = {
        "ganzoo.format": FORMAT,
        "ganzoo.kind": kind,
        "ganzoo.name": name,
        "ganzoo.config": cfg_to_json(getattr(module, "cfg", entry.cfg)),
        "ganzoo.config_class": "" if entry.cfg is None else type(entry.cfg).__qualname__,
        "ganzoo.versions": json.dumps(_versions(entry.module)),
    }
    for key, value in (extra or {}).items():
        metadata[f"extra.{key}"] = str(value)
    return metadata


def tensor_hash(tensors: Mapping[str, Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().to("cpu").contiguous()
        digest.update(f"{key}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        if t.numel():
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def write_checkpoint(tensors: Mapping[str, Tensor], metadata: Mapping[str, str], path: str | Path, *,
                     overwrite: bool) -> Path:
    """Write ``tensors`` with ``metadata`` plus their hash to ``path`` atomically (disk errors as one line)."""
    tensors = dict(tensors)
    metadata = {**metadata, "ganzoo.sha256": tensor_hash(tensors)}
    with atomic_path(path, overwrite=overwrite, what="checkpoint") as tmp:
        try:
            save_file(tensors, str(tmp), metadata=metadata)
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"could not write checkpoint {str(path)!r}: {err}; check the free disk space and "
                                  "the folder's permissions (the previous file, if any, is unchanged)") from err
    return Path(path)


def save(module: nn.Module, path: str | Path, *, extra: Mapping[str, str] | None = None,
         overwrite: bool = False) -> Path:
    """Write ``module`` (built by a ``create_*`` call) and its full config to ``path``, atomically.

    An existing file at ``path`` is kept (``OutputExistsError``) unless ``overwrite=True``."""
    metadata = checkpoint_metadata(module, extra=extra)
    refuse_paths(json.loads(metadata["ganzoo.config"]), _entry(metadata["ganzoo.kind"], metadata["ganzoo.name"]).cfg,
                 f"the config of {type(module).__name__}", saving=True)
    return write_checkpoint(state_tensors(module), metadata, path, overwrite=overwrite)


_PATH_FIELD = re.compile(r"(^|_)(dir|dirs|file|files|path|paths|checkpoint|checkpoints|root|folder|weights)$")
_NOT_PATHS = (None, "", "shipped", "random")  # sentinels: the package's own file, or random init


def is_path_field(name: str) -> bool:
    """Whether a config field or kwargs key names a file or folder (``original_dir``, ``weights_file``, ...)."""
    return bool(_PATH_FIELD.search(name))


def refuse_paths(config: Any, template: Any, where: str, *, saving: bool = False, _prefix: str = "") -> None:
    """Raise ``CheckpointError`` when ``config`` (a saved config dict) names a file path that building it would open.

    A path-like field may hold its default (``template``'s value), None, "" or a sentinel ("shipped", "random");
    inside mappings (``generator_kwargs``, ...) only None and the sentinels, since no default is known there."""
    if not isinstance(config, Mapping):
        return
    for key, value in config.items():
        field = f"{_prefix}{key}"
        default = getattr(template, key, _MISSING) if template is not None and attrs.has(type(template)) else _MISSING
        if isinstance(value, Mapping):
            refuse_paths(value, default if default is not _MISSING and attrs.has(type(default)) else None, where,
                         saving=saving, _prefix=f"{field}.")
        elif is_path_field(str(key)) and value not in _NOT_PATHS and value != default:
            advice = ("set it to None once its contents are in the module's tensors (a checkpoint must rebuild "
                      "without it)" if saving else
                      "ganzoo never opens a path read from a file: rebuild with create_*(name, ...) and the path "
                      "as your own argument, or use a checkpoint saved by this version")
            raise CheckpointError(f"{where} names a file path in {field!r} = {value!r}; {advice}")


_MISSING = object()


def _open(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        return safe_open(str(path), framework="pt", device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not a readable safetensors file ({err}); it may be truncated by an "
            "interrupted copy or write: use an earlier copy"
        ) from err


def read_info(path: str | Path) -> CheckpointInfo:
    """The metadata and tensor shapes of a ganzoo checkpoint, without loading the tensors."""
    path = Path(path)
    handle = _open(path)
    meta = handle.metadata() or {}
    if meta.get("ganzoo.format") != FORMAT:
        raise CheckpointError(
            f"{str(path)!r} is a safetensors file but not a ganzoo checkpoint (no 'ganzoo.format' = {FORMAT!r} in "
            "its metadata); load plain weights with create_*(name, weights=path)"
        )
    try:
        config, versions = json.loads(meta["ganzoo.config"]), json.loads(meta["ganzoo.versions"])
    except (KeyError, json.JSONDecodeError) as err:
        raise CheckpointError(f"checkpoint {str(path)!r} has damaged metadata: {err}") from err
    if not isinstance(config, dict) or not isinstance(versions, dict):
        raise CheckpointError(f"checkpoint {str(path)!r} has damaged metadata: 'ganzoo.config' and 'ganzoo.versions' "
                              "must be JSON objects")
    kind, name = meta.get("ganzoo.kind", ""), meta.get("ganzoo.name", "")
    replacement = get_host().registry.replacement(kind, name)
    return CheckpointInfo(
        path=path, kind=kind, name=replacement or name, config=config,
        versions=versions, extra={k[6:]: v for k, v in meta.items() if k.startswith("extra.")},
        tensors={k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()},
        saved_name=name if replacement else "",
    )


LOADABLE_KINDS = (*NETWORK_KINDS, "loss", "objective")
"""The kinds a checkpoint may rebuild: modules with tensors, never datasets or ops."""

RESERVED_PREFIXES = ("__train__.", "__ema__.")  # training state stored beside the weights (see _train_state)


def read_tensors(path: Path, *, with_state: bool = False, verify: bool = True) -> dict[str, Tensor]:
    """The tensors of a safetensors file, without the training state unless ``with_state``.

    With ``verify`` (the default), a file that records ``ganzoo.sha256`` must match it: a ``CheckpointError`` names
    the file when its tensors were changed or damaged after it was written."""
    handle = _open(path)
    expected = (handle.metadata() or {}).get("ganzoo.sha256") if verify else None
    skip = () if with_state or expected else RESERVED_PREFIXES
    try:
        tensors = {k: handle.get_tensor(k) for k in handle.keys() if not k.startswith(skip)}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated or corrupt: {err}") from err
    if expected and tensor_hash(tensors) != expected:
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not match the hash recorded when it was saved: its tensors were changed "
            "or damaged afterwards; use an earlier copy (or pass verify=False to load it anyway)"
        )
    if not with_state:
        tensors = {k: v for k, v in tensors.items() if not k.startswith(RESERVED_PREFIXES)}
    return tensors


def load(path: str | Path, *, device: torch.device | str = "cpu", ema: bool = False, verify: bool = True
         ) -> nn.Module:
    """Rebuild the exact module saved at ``path``: registry name, full config, then the tensors (strictly).

    ``ema=True`` loads the exponential moving average of the networks a training run kept one of (``--ema``).
    ``verify=False`` skips the check of the tensors against the hash recorded at save time (faster on big files).
    Nothing in the file can make ganzoo open another path (see the module docstring).
    ``ganzoo_core.load`` (``ganzoo_core.hub.load``) takes model folders, ``hf-hub:ORG/NAME`` and pretrained names too.
    """
    info = read_info(path)
    if info.kind not in LOADABLE_KINDS:  # a dataset or an op is never built from a file's say-so
        raise CheckpointError(f"checkpoint {str(info.path)!r} says it holds a {info.kind!r}; ganzoo checkpoints hold "
                              f"one of {', '.join(LOADABLE_KINDS)}")
    entry = _entry(info.kind, info.name)
    refuse_paths(info.config, entry.cfg, f"checkpoint {str(info.path)!r}")
    try:
        cfg = cfg_from_dict(entry.cfg, info.config, what=f"{info.kind} {info.name!r} config")
    except GanzooError as err:
        raise CheckpointError(
            f"checkpoint {str(info.path)!r} was saved with a config this version cannot read: {err} "
            f"(saved with {info.versions})"
        ) from err
    _check_shapes_on_meta(entry, cfg, info)
    try:
        module = entry.factory(cfg) if entry.cfg is not None else entry.factory()
    except (MemoryError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint {str(info.path)!r}: its {info.kind} {info.name!r} could not be built "
                              f"({type(err).__name__}: {' '.join(str(err).split())[:200]})") from err
    setattr(module, SPEC_ATTR, (info.kind, entry.name))
    everything = read_tensors(info.path, with_state=True, verify=verify)
    tensors = {k: v for k, v in everything.items() if not k.startswith(RESERVED_PREFIXES)}
    if ema:
        averaged = {k[len("__ema__."):]: v for k, v in everything.items() if k.startswith("__ema__.")}
        if not averaged:
            raise CheckpointError(f"{str(info.path)!r} holds no EMA weights (train with --ema to keep them)")
        for key, value in averaged.items():  # "G.main.0.weight" → "networks.G.main.0.weight"
            tensors[f"networks.{key}" if f"networks.{key}" in tensors else key] = value
    load_into(module, tensors, info.path)
    return module.to(device)


def _check_shapes_on_meta(entry: Any, cfg: Any, info: CheckpointInfo) -> None:
    """Build the module on the meta device (no memory) and compare its tensor shapes with the file's, so a config
    that does not match its tensors (``ngf=2**40``) is a CheckpointError before anything is allocated. A module whose
    constructor cannot run on the meta device is checked after the real build (by ``load_into``) instead."""
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constructors that load weights warn that copies into meta are no-ops
            ghost = entry.factory(cfg) if entry.cfg is not None else entry.factory()
        expected = {k: tuple(t.shape) for k, t in ghost.state_dict().items()}
    except Exception:  # reads a file, needs real values, ...: leave it to the real build
        return
    saved = {k: s for k, s in info.tensors.items() if not k.startswith(RESERVED_PREFIXES)}
    wrong = [f"{k}: file {saved[k]} vs config {expected[k]}"
             for k in expected if k in saved and saved[k] != expected[k]]
    unexpected = [k for k in saved if k not in expected]
    if wrong or unexpected:
        what = "; ".join(wrong[:3]) if wrong else f"tensors the config does not build: {', '.join(unexpected[:3])}"
        raise CheckpointError(f"checkpoint {str(info.path)!r}: its config does not match its tensors ({what}); the "
                              "metadata was changed or damaged: use an earlier copy")


def load_into(module: nn.Module, tensors: Mapping[str, Tensor], path: Path) -> None:
    expected = module.state_dict()
    aliases = _alias_groups(module)
    missing = [k for k in expected if k not in tensors and not any(a in tensors for a in aliases.get(k, ()))]
    unexpected = [k for k in tensors if k not in expected]
    wrong = [
        f"{k}: file {tuple(t.shape)} vs network {tuple(expected[k].shape)}"
        for k, t in tensors.items()
        if k in expected and t.shape != expected[k].shape
    ]
    if missing or unexpected or wrong:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", wrong)):
            if items:
                more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
                parts.append(f"{label}: {', '.join(items[:5])}{more}")
        raise CheckpointError(
            f"weights in {str(path)!r} do not fit {type(module).__name__}: " + "; ".join(parts)
            + "; check that the file was saved from the same registry name and config"
        )
    full = dict(tensors)
    for key in (k for k in expected if k not in tensors):  # aliases of a tensor stored once
        full[key] = tensors[next(a for a in aliases[key] if a in tensors)]
    module.load_state_dict(full, strict=True)


def _alias_groups(module: nn.Module) -> dict[str, tuple[str, ...]]:
    by_ident: dict[tuple[int, int, tuple[int, ...]], list[str]] = {}
    for key, tensor in module.state_dict().items():
        if tensor.numel():
            ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
            by_ident.setdefault(ident, []).append(key)
    return {k: tuple(o for o in group if o != k) for group in by_ident.values() if len(group) > 1 for k in group}


def load_weights(module: nn.Module, path: str | Path) -> nn.Module:
    """Load plain weights into ``module``: a ganzoo checkpoint, a safetensors state dict, or a ``torch.save`` state
    dict (read with ``weights_only=True``; told by content, whatever the extension: ``.ckpt``, ``.pth``, ...).
    When the file cannot be read that way or does not fit exactly, plugins get to convert it
    (``ganzoo_convert_checkpoint``) before an error is raised."""
    path = Path(path)
    tensors: dict[str, Tensor] | None = None
    error: CheckpointError | None = None
    try:
        tensors = _torch_state_dict(path) if _is_torch_file(path) else read_tensors(path)
    except CheckpointError as err:
        error = err
    spec = getattr(module, SPEC_ATTR, None)
    if spec is not None and path.is_file() and (tensors is None or not _fits(module, tensors)):
        try:
            converted = get_host().pm.hook.ganzoo_convert_checkpoint(kind=spec[0], name=spec[1], path=path)
        except CheckpointError:  # a converter that knows the layout says what does not fit: its own line
            raise
        except Exception as err:  # a plugin's converter choked on the file
            raise CheckpointError(
                f"{str(path)!r} could not be read ({error or 'its names or shapes do not fit'}) and a plugin's "
                f"converter failed on it: {type(err).__name__}: {err}"
            ) from err
        if converted is not None:
            tensors = dict(converted)
    if tensors is None:
        assert error is not None
        raise error
    load_into(module, tensors, path)
    return module


def _is_torch_file(path: Path) -> bool:
    """Whether ``path`` holds a ``torch.save`` file, told by its first bytes (a zip archive, or a legacy pickle
    stream), not by its name: released checkpoints come as ``.ckpt``, ``.pth``, ``.pt``, ``.bin`` or ``.pkl``. A
    safetensors file starts with an 8-byte header length and ``{``."""
    try:
        with path.open("rb") as f:
            head = f.read(9)
    except OSError:
        return path.suffix in (".pt", ".pth", ".bin", ".ckpt")
    if head.startswith(b"PK\x03\x04"):
        return True
    if len(head) == 9 and head[8:9] == b"{":
        return False
    return head[:1] == b"\x80" or path.suffix in (".pt", ".pth", ".bin", ".ckpt")


def _fits(module: nn.Module, tensors: Mapping[str, Tensor]) -> bool:
    expected = module.state_dict()
    return set(tensors) == set(expected) and all(t.shape == expected[k].shape for k, t in tensors.items())


def _torch_state_dict(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise CheckpointError(f"weights file {str(path)!r} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated zips and disallowed pickles
        raise CheckpointError(
            f"{str(path)!r} could not be read as a weights-only PyTorch file ({type(err).__name__}: {err}); "
            "ganzoo never unpickles arbitrary objects: re-save it as a plain state_dict"
        ) from err
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(f"{str(path)!r} does not hold a state dict (a mapping of names to tensors)")
    return dict(obj)
