"""Checkpoints: safetensors tensors plus the metadata that rebuilds the module, written atomically, read without pickle.

Metadata keys (all strings): ``ganzoo.format`` ("1"), ``ganzoo.kind``, ``ganzoo.name``, ``ganzoo.config`` (JSON),
``ganzoo.config_class``, ``ganzoo.versions`` (JSON: core and owning plugin distributions), plus any ``extra``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from ganzoo_core._api import SPEC_ATTR, get_entry
from ganzoo_core._plugins import get_host
from ganzoo_core.config import cfg_from_dict, cfg_to_json
from ganzoo_core.errors import CheckpointError, GanzooError

FORMAT = "1"


@attrs.frozen(kw_only=True)
class CheckpointInfo:
    """What a checkpoint says about itself."""

    path: Path
    kind: str
    name: str
    config: dict[str, Any]
    versions: dict[str, str]
    extra: dict[str, str]
    tensors: dict[str, tuple[int, ...]]


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed over ``path`` in one step.

    A crash or an exception leaves the previous file untouched and no partial file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the file the mode a plain open() would
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - directories cannot be opened on some platforms
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _versions(module_name: str) -> dict[str, str]:
    from ganzoo_core import __version__

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
    entry = get_entry(kind, name)
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


def save(module: nn.Module, path: str | Path, *, extra: Mapping[str, str] | None = None) -> Path:
    """Write ``module`` (built by a ``create_*`` call) and its full config to ``path``, atomically."""
    metadata = checkpoint_metadata(module, extra=extra)
    with atomic_path(path) as tmp:
        save_file(state_tensors(module), str(tmp), metadata=metadata)
    return Path(path)


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
    return CheckpointInfo(
        path=path, kind=meta.get("ganzoo.kind", ""), name=meta.get("ganzoo.name", ""), config=config,
        versions=versions, extra={k[6:]: v for k, v in meta.items() if k.startswith("extra.")},
        tensors={k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()},
    )


RESERVED_PREFIXES = ("__train__.", "__ema__.")  # training state stored beside the weights (see _train_state)


def read_tensors(path: Path, *, with_state: bool = False) -> dict[str, Tensor]:
    """The tensors of a safetensors file, without the training state unless ``with_state``."""
    handle = _open(path)
    skip = () if with_state else RESERVED_PREFIXES
    try:
        return {k: handle.get_tensor(k) for k in handle.keys() if not k.startswith(skip)}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated or corrupt: {err}") from err


def load(path: str | Path, *, device: torch.device | str = "cpu", ema: bool = False) -> nn.Module:
    """Rebuild the exact module saved at ``path``: registry name, full config, then the tensors (strictly).

    ``ema=True`` loads the exponential moving average of the networks a training run kept one of (``--ema``).
    """
    info = read_info(path)
    entry = get_entry(info.kind, info.name)
    try:
        cfg = cfg_from_dict(entry.cfg, info.config, what=f"{info.kind} {info.name!r} config")
    except GanzooError as err:
        raise CheckpointError(
            f"checkpoint {str(info.path)!r} was saved with a config this version cannot read: {err} "
            f"(saved with {info.versions})"
        ) from err
    module = entry.factory(cfg) if entry.cfg is not None else entry.factory()
    setattr(module, SPEC_ATTR, (info.kind, entry.name))
    tensors = read_tensors(info.path)
    if ema:
        everything = read_tensors(info.path, with_state=True)
        averaged = {k[len("__ema__."):]: v for k, v in everything.items() if k.startswith("__ema__.")}
        if not averaged:
            raise CheckpointError(f"{str(info.path)!r} holds no EMA weights (train with --ema to keep them)")
        for key, value in averaged.items():  # "G.main.0.weight" → "networks.G.main.0.weight"
            tensors[f"networks.{key}" if f"networks.{key}" in tensors else key] = value
    load_into(module, tensors, info.path)
    return module.to(device)


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
                parts.append(f"{label}: {', '.join(items[:5])}" + (f" (+{len(items) - 5} more)" if len(items) > 5 else ""))
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
    """Load plain weights into ``module``: a ganzoo checkpoint, a safetensors state dict, or a ``.pt``/``.pth``
    state dict (read with ``weights_only=True``). When the file cannot be read that way or does not fit exactly,
    plugins get to convert it (``ganzoo_convert_checkpoint``) before an error is raised."""
    path = Path(path)
    tensors: dict[str, Tensor] | None = None
    error: CheckpointError | None = None
    try:
        tensors = _torch_state_dict(path) if path.suffix in (".pt", ".pth", ".bin") else read_tensors(path)
    except CheckpointError as err:
        error = err
    spec = getattr(module, SPEC_ATTR, None)
    if spec is not None and path.is_file() and (tensors is None or not _fits(module, tensors)):
        try:
            converted = get_host().pm.hook.ganzoo_convert_checkpoint(kind=spec[0], name=spec[1], path=path)
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
