"""Training checkpoints: the objective (loadable by ``ganzoo_core.load``) plus everything an exact resume needs,
in one safetensors file written atomically. No pickle: non-tensor state is JSON in the metadata.

Extra tensor keys: ``__train__.optim.<phase>.<index>.<name>`` (optimizer state), ``__ema__.<network>.<key>``
(EMA weights), ``__train__.rng.torch`` / ``__train__.rng.cuda.<i>`` / ``__train__.rng.numpy``.
Extra metadata: ``ganzoo.train`` (JSON: step, policy, train config, optimizer hyper-parameters, scheduler and grad
scaler states, Python and NumPy RNG details, EMA counters).
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from torch import Tensor, nn

from ganzoo_core.checkpoints import (
    checkpoint_metadata,
    load_into,
    read_info,
    read_tensors,
    state_tensors,
    write_checkpoint,
)
from ganzoo_core.errors import CheckpointError

TRAIN_PREFIX, EMA_PREFIX = "__train__.", "__ema__."


def _optimizer_tensors(name: str, opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for index, state in sd["state"].items():
        for key, value in state.items():
            if isinstance(value, Tensor):
                tensors[f"{TRAIN_PREFIX}optim.{name}.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    groups = [{k: v for k, v in g.items() if k != "params"} for g in sd["param_groups"]]
    return tensors, {"groups": groups, "scalars": scalars, "n_params": [len(g["params"]) for g in sd["param_groups"]]}


def _restore_optimizer(name: str, opt: torch.optim.Optimizer, tensors: Mapping[str, Tensor], meta: dict[str, Any],
                       device: torch.device, keep_hyperparameters: bool = False) -> None:
    sd = opt.state_dict()
    if [len(g["params"]) for g in sd["param_groups"]] != meta["n_params"]:
        raise CheckpointError(f"optimizer of phase {name!r} in the checkpoint has other parameter groups than now")
    state: dict[int, dict[str, Any]] = {}
    prefix = f"{TRAIN_PREFIX}optim.{name}."
    for key, value in tensors.items():
        if key.startswith(prefix):
            index, field = key[len(prefix):].split(".", 1)
            state.setdefault(int(index), {})[field] = value.to(device)
    for key, value in meta["scalars"].items():
        index, field = key.split(".", 1)
        state.setdefault(int(index), {})[field] = value
    groups = [{**g, **saved} for g, saved in zip(sd["param_groups"], meta["groups"])]
    if keep_hyperparameters:  # the new lr / betas / weight decay, at the point the saved schedule had reached
        for group, now, saved in zip(groups, sd["param_groups"], meta["groups"]):
            progress = saved["lr"] / saved["initial_lr"] if saved.get("initial_lr") else 1.0
            base = now.get("initial_lr", now["lr"])
            group.update({k: now[k] for k in ("betas", "weight_decay", "eps") if k in now},
                         lr=base * progress, **({"initial_lr": base} if "initial_lr" in now else {}))
    opt.load_state_dict({"state": state, "param_groups": groups})


def _rng_state() -> tuple[dict[str, Tensor], dict[str, Any]]:
    tensors = {f"{TRAIN_PREFIX}rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"{TRAIN_PREFIX}rng.cuda.{i}"] = s
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors[f"{TRAIN_PREFIX}rng.numpy"] = torch.from_numpy(keys.astype(np.int64))
    version, internal, gauss = random.getstate()
    return tensors, {"numpy": [kind, int(pos), int(has_gauss), float(cached)],
                     "python": [version, list(internal), gauss]}


def _restore_rng(tensors: Mapping[str, Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors[f"{TRAIN_PREFIX}rng.torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith(f"{TRAIN_PREFIX}rng.cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    kind, pos, has_gauss, cached = meta["numpy"]
    keys = tensors[f"{TRAIN_PREFIX}rng.numpy"].numpy().astype(np.uint32)
    np.random.set_state((kind, keys, pos, has_gauss, cached))
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))


def save_training(
    path: Path,
    objective: nn.Module,
    *,
    step: int,
    optimizers: Mapping[str, torch.optim.Optimizer],
    schedulers: Mapping[str, Any],
    scaler: torch.amp.GradScaler | None,
    emas: Mapping[str, torch.optim.swa_utils.AveragedModel],
    info: dict[str, Any],
) -> Path:
    """Write the objective and the full training state at ``step`` to ``path`` atomically."""
    tensors = state_tensors(objective)
    train: dict[str, Any] = {"step": step, **info, "optimizers": {}, "schedulers": {}, "ema": {}}
    for name, opt in optimizers.items():
        t, meta = _optimizer_tensors(name, opt)
        tensors.update(t)
        train["optimizers"][name] = meta
    for name, sched in schedulers.items():
        train["schedulers"][name] = {k: v for k, v in sched.state_dict().items() if k != "lr_lambdas"}
    for name, ema in emas.items():
        for key, value in ema.module.state_dict().items():
            tensors[f"{EMA_PREFIX}{name}.{key}"] = value.detach().cpu().contiguous()
        train["ema"][name] = int(ema.n_averaged)
    train["scaler"] = scaler.state_dict() if scaler is not None else None
    rng_tensors, rng_meta = _rng_state()
    tensors.update(rng_tensors)
    train["rng"] = rng_meta
    metadata = checkpoint_metadata(objective, extra={"step": str(step)})
    metadata["ganzoo.train"] = json.dumps(train)
    return write_checkpoint(tensors, metadata, path, overwrite=True)  # the run folder's own file (see training)


def read_train_meta(path: Path) -> dict[str, Any]:
    """The ``ganzoo.train`` metadata of a training checkpoint (step, train config, ...), without loading tensors."""
    read_info(path)  # a readable ganzoo checkpoint, or a CheckpointError naming the problem
    with safe_open(str(path), framework="pt") as handle:
        raw = (handle.metadata() or {}).get("ganzoo.train")
    if raw is None:
        raise CheckpointError(f"{str(path)!r} holds weights only, no training state; it cannot be resumed")
    try:
        train = json.loads(raw)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{str(path)!r} has damaged training metadata: {err}") from err
    if not isinstance(train, dict) or not isinstance(train.get("step"), int) or train["step"] < 0:
        raise CheckpointError(f"{str(path)!r} has damaged training metadata: no valid 'step'")
    return train


def load_training(
    path: Path,
    objective: nn.Module,
    *,
    optimizers: Mapping[str, torch.optim.Optimizer],
    schedulers: Mapping[str, Any],
    scaler: torch.amp.GradScaler | None,
    emas: Mapping[str, torch.optim.swa_utils.AveragedModel],
    device: torch.device,
    verify: bool = True,
    new_hyperparameters: bool = False,
) -> dict[str, Any]:
    """Restore everything ``save_training`` wrote into freshly built training objects; returns the train metadata.

    ``new_hyperparameters``: the optimizers keep their current learning rates, betas and weight decay (the user
    accepted changed settings on resume) instead of the saved ones; their moments and step counts are restored."""
    info = read_info(path)
    train = read_train_meta(path)
    tensors = read_tensors(path, with_state=True, verify=verify)
    load_into(objective, {k: v for k, v in tensors.items() if not k.startswith((TRAIN_PREFIX, EMA_PREFIX))}, path)
    objective.to(device)
    try:
        for name, opt in optimizers.items():
            if name not in train["optimizers"]:
                raise CheckpointError(f"{str(path)!r} has no optimizer state for phase {name!r}")
            _restore_optimizer(name, opt, tensors, train["optimizers"][name], device, new_hyperparameters)
        for name, sched in schedulers.items():
            sched.load_state_dict({**sched.state_dict(), **train["schedulers"][name],
                                   **({"base_lrs": sched.base_lrs} if new_hyperparameters else {})})
        for name, ema in emas.items():
            prefix = f"{EMA_PREFIX}{name}."
            ema.module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
            ema.n_averaged.fill_(train["ema"][name])
        if scaler is not None and train.get("scaler"):
            scaler.load_state_dict(train["scaler"])
        _restore_rng(tensors, train["rng"])
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as err:
        raise CheckpointError(f"{str(path)!r} has damaged or incompatible training state ({type(err).__name__}: "
                              f"{err}); start a new run, or resume from an earlier copy") from err
    train["info"] = info
    return train
