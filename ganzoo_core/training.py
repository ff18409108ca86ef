"""The training engine: one loop for every registered objective.

Per step it runs each due phase of the objective (``zero_grad → loss → NaN guard → backward → step``) under the
chosen precision policy, steps the LR schedules, updates EMA copies, and on rank 0 logs (progress bar, JSONL,
TensorBoard when installed), writes sample grids from fixed noise and writes checkpoints atomically: every
``checkpoint_every`` steps, at the end, and on SIGINT/SIGTERM. ``resume=True`` continues exactly where the last
checkpoint left off: the data order and noise of a step depend only on (seed, step), and the optimizer, schedule,
grad-scaler, EMA and RNG states are restored. Under ``torchrun`` every network is wrapped in PyTorch's DDP (with
``sync_bn``, its BatchNorm layers synchronised first, and put back as they were when the loop ends).

A run folder belongs to one run. Training into a folder that holds a run needs ``resume=True`` (continue it) or
``overwrite=True`` (delete its checkpoint, metrics and samples first), and a lock (``.ganzoo.lock``, ``fcntl``,
released by the OS when the process dies) stops a second process. ``resume`` compares the saved objective config
and training settings with the new ones and refuses any difference unless ``accept_changes`` names it; accepted
changes are applied (to the optimizers too) and recorded in the checkpoint's ``changes`` list.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import math
import os
import shutil
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset

from ganzoo_core import distributed as gdist
from ganzoo_core._train_state import load_training, read_train_meta, save_training
from ganzoo_core.checkpoints import atomic_path, read_info
from ganzoo_core.config import cfg_to_dict
from ganzoo_core.errors import GanzooError, NonFiniteLossError, RunFolderError
from ganzoo_core.interfaces import Objective, Phase
from ganzoo_core.policy import Policy
from ganzoo_core.schedules import ScheduleCfg, make_scheduler
from ganzoo_core.visual import save_grid

log = logging.getLogger("ganzoo.train")
CHECKPOINT = "checkpoint.safetensors"
LOCK = ".ganzoo.lock"
DIVERGED = 1e6  # a finite loss above this (in absolute value) is reported once as a diverging run
COMPARED_SETTINGS = ("batch_size", "seed", "policy", "schedule", "ema", "ema_networks", "sync_bn")
"""The training settings ``resume`` compares (besides the objective's config); ``steps`` too for a linear decay."""


@attrs.frozen(kw_only=True)
class TrainCfg:
    steps: int = 2000  # iterations (one pass over every due phase each)
    max_minutes: float | None = None  # also stop once this invocation's loop has run this long (wall clock)
    batch_size: int = 64  # the global batch, split over torchrun processes
    seed: int = 0
    device: str = "cpu"
    num_workers: int = 0
    log_every: int = 50
    sample_every: int = 500  # 0: only at the end
    checkpoint_every: int = 1000  # 0: only at the end (and on SIGINT/SIGTERM)
    n_samples: int = 64  # images in each sample grid, from fixed noise
    policy: Policy = attrs.field(factory=Policy)
    schedule: ScheduleCfg = attrs.field(factory=ScheduleCfg)
    ema: float | None = None  # decay of an exponential moving average of ``ema_networks`` (e.g. 0.999)
    ema_networks: tuple[str, ...] = attrs.field(default=("G",), converter=tuple)
    sync_bn: bool = False  # torchrun: BatchNorm statistics over the global batch (one process: no effect)
    resume: bool = False  # continue from out_dir/checkpoint.safetensors when it exists
    overwrite: bool = False  # out_dir holds a run: delete its checkpoint, metrics and samples, and start again
    accept_changes: tuple[str, ...] = attrs.field(default=(), converter=tuple)  # resume: settings allowed to differ
    progress: bool = True  # a progress bar on a terminal (log lines otherwise)
    tensorboard: bool = True  # also log to out_dir/tb when the tensorboard package is installed

    def __attrs_post_init__(self) -> None:
        for name in ("steps", "batch_size", "n_samples"):
            if getattr(self, name) < 1:
                raise GanzooError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise GanzooError(f"max_minutes must be positive, got {self.max_minutes}")
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise GanzooError(f"ema decay must be between 0 and 1, got {self.ema}")
        if not 0 <= self.seed <= 2**31 - 1:
            raise GanzooError(f"seed must be from 0 to {2**31 - 1}, got {self.seed}")
        for name in ("log_every", "sample_every", "checkpoint_every", "num_workers"):
            if getattr(self, name) < 0:
                raise GanzooError(f"{name} must be 0 or more, got {getattr(self, name)}")
        if self.log_every == 0:
            raise GanzooError("log_every must be at least 1, got 0")
        if self.resume and self.overwrite:
            raise GanzooError("resume and overwrite exclude each other: continue the run, or start it again")


@attrs.frozen(kw_only=True)
class TrainResult:
    out_dir: Path
    checkpoint: Path
    samples: tuple[Path, ...]
    history: tuple[dict[str, float], ...]  # logged rows of this run
    step: int  # the last completed step
    interrupted: bool = False  # stopped by SIGINT/SIGTERM; resume with resume=True


def make_optimizers(objective: Objective, *, fused: bool = False) -> dict[str, torch.optim.Optimizer]:
    """One Adam per phase over the parameters of the networks the phase updates; ``fused``: Adam's fused
    single-kernel step (``ganzoo_core.optim.FusedAdam``, which also updates channels_last weights in place)."""
    from ganzoo_core.optim import FusedAdam

    optimizers: dict[str, torch.optim.Optimizer] = {}
    for phase in objective.phases:
        params = [p for net in phase.networks for p in objective.networks[net].parameters() if p.requires_grad]
        if not params:
            raise GanzooError(f"phase {phase.name!r} updates {phase.networks}, which have no trainable parameters")
        cls = FusedAdam if fused else torch.optim.Adam
        optimizers[phase.name] = cls(params, lr=phase.lr, betas=phase.betas, weight_decay=phase.weight_decay)
    return optimizers


def run_phase(
    objective: Objective,
    phase: Phase,
    optimizer: torch.optim.Optimizer,
    batch: Mapping[str, Tensor],
    ctx: dict[str, Any],
    step: int,
    *,
    policy: Policy = Policy(),
    scaler: torch.amp.GradScaler | None = None,
    info: gdist.DistInfo = gdist.DistInfo(),
    skip_frozen_grads: bool = True,
) -> dict[str, float]:
    """zero_grad → loss (autocast) → NaN guard (on every rank) → backward → step; returns the logged terms.

    With ``skip_frozen_grads``, networks that neither this phase nor a later phase of the iteration updates get no
    parameter gradients: the G phase backpropagates *through* D to the fake images but never needs D's weight
    gradients, which pytorch/examples computes and throws away. (A network a later phase updates keeps them: its
    graph, e.g. the D phase's fake batch, may be reused there.) Off under DDP, whose reducer expects every gradient.
    """
    first = next(iter(batch.values()), None)
    if first is None or len(first) == 0:
        raise GanzooError(f"phase {phase.name!r} got an empty batch (0 items) at step {step}; a loss over no items "
                          "is NaN: check the dataset and the batch size")
    optimizer.zero_grad(set_to_none=True)
    device = first.device
    with _frozen_outside(objective, phase, skip_frozen_grads and not info.enabled):
        with policy.autocast(device):
            loss, terms = objective.loss(phase.name, batch, ctx)
        return _finish_phase(loss, terms, phase, optimizer, step, device, scaler, info)


@contextlib.contextmanager
def _frozen_outside(objective: Objective, phase: Phase, enabled: bool) -> Iterator[None]:
    """For the block, parameters of networks that no phase from ``phase`` on updates stop requiring gradients."""
    phases = list(objective.phases)
    if not enabled or phase not in phases:
        yield
        return
    keep = {name for later in phases[phases.index(phase):] for name in later.networks}
    own = {id(p) for name in keep for p in objective.networks[name].parameters()}
    frozen = [p for name, net in objective.networks.items() if name not in keep
              for p in net.parameters() if p.requires_grad and id(p) not in own]
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


def _finish_phase(loss: Tensor, terms: Mapping[str, Tensor], phase: Phase, optimizer: torch.optim.Optimizer,
                  step: int, device: torch.device, scaler: torch.amp.GradScaler | None,
                  info: gdist.DistInfo) -> dict[str, float]:
    value = float(loss.detach())
    finite = math.isfinite(value)
    if info.enabled:  # every rank must stop together, or the others would wait forever in the next all-reduce
        flag = torch.tensor([1.0 if finite else 0.0], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        finite = bool(flag.item())
    if not finite:
        raise NonFiniteLossError(step, phase.name, f"loss_{phase.name}", value)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return {f"loss_{phase.name}": value, **{f"{phase.name}/{k}": float(v) for k, v in terms.items()}}


@contextlib.contextmanager
def ema_weights(objective: Objective, emas: Mapping[str, AveragedModel]) -> Iterator[None]:
    """Temporarily put the EMA weights into the networks that have them."""
    saved = {name: {k: v.clone() for k, v in objective.networks[name].state_dict().items()} for name in emas}
    try:
        for name, ema in emas.items():
            objective.networks[name].load_state_dict(ema.module.state_dict())
        yield
    finally:
        for name, state in saved.items():
            objective.networks[name].load_state_dict(state)


def write_samples(objective: Objective, path: Path, n: int, batch: Mapping[str, Tensor] | None, seed: int,
                  emas: Mapping[str, AveragedModel] | None = None) -> Path:
    """A PNG grid of ``objective.sample`` in eval mode, from fixed noise (with EMA weights when kept)."""
    was_training = objective.training  # type: ignore[attr-defined]
    objective.eval()  # type: ignore[attr-defined]
    try:
        with torch.no_grad(), ema_weights(objective, emas or {}):
            images = objective.sample(n, batch=batch, seed=seed)
    finally:
        objective.train(was_training)  # type: ignore[attr-defined]
    return save_grid(images.float(), path)


class _DDP(nn.parallel.DistributedDataParallel):
    """DDP that also answers for the wrapped network's own members (``cfg``, ``example_inputs``, ...), so an
    objective's code runs unchanged under torchrun."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


class _StopSignals:
    """SIGINT/SIGTERM set a flag the loop checks after each step (main thread only)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


class Trainer:
    """Trains ``objective`` on ``dataset`` into ``out_dir`` (see the module docstring)."""

    def __init__(self, objective: Objective, dataset: Dataset, out_dir: str | Path, cfg: TrainCfg = TrainCfg(),
                 *, on_log: Callable[[dict[str, float]], None] | None = None) -> None:
        self.objective, self.dataset, self.out, self.cfg, self.on_log = objective, dataset, Path(out_dir), cfg, on_log
        if len(dataset) == 0:  # type: ignore[arg-type]
            raise GanzooError("the dataset is empty (0 items), so there is nothing to train on; check its options "
                              "(--data-set ...) and its files")
        self.info = gdist.init(cfg.device)
        self.device = gdist.device_for(cfg.device, self.info)
        cfg.policy.check_device(self.device)
        self.module: nn.Module = objective  # type: ignore[assignment]
        self.module.to(self.device).train()
        cfg.policy.prepare(objective.networks)
        self.optimizers = make_optimizers(objective, fused=cfg.policy.fused_adam)
        self.schedulers = {k: make_scheduler(o, cfg.schedule, cfg.steps) for k, o in self.optimizers.items()}
        self.scaler = cfg.policy.grad_scaler(self.device)
        self.emas = self._make_emas()
        self.checkpoint = self.out / CHECKPOINT
        self.history: list[dict[str, float]] = []
        self.samples: list[Path] = []
        self.changes: list[dict[str, Any]] = []  # settings changed on resume, with the step they took effect
        self._lock: Any = None
        self._warned_divergence = False
        self._sync_swaps: list[gdist.Swap] = []  # BatchNorm layers replaced by synchronised ones (sync_bn)

    def _make_emas(self) -> dict[str, AveragedModel]:
        if self.cfg.ema is None:
            return {}
        missing = [n for n in self.cfg.ema_networks if n not in self.objective.networks]
        if missing:
            raise GanzooError(f"ema_networks {missing} are not networks of this objective "
                              f"(it has {list(self.objective.networks)})")
        return {n: AveragedModel(self.objective.networks[n], multi_avg_fn=get_ema_multi_avg_fn(self.cfg.ema),
                                 use_buffers=True) for n in self.cfg.ema_networks}

    # -- state ---------------------------------------------------------------------------------------------------
    def _train_info(self) -> dict[str, Any]:
        return {"policy": cfg_to_dict(self.cfg.policy), "policy_name": self.cfg.policy.name,
                "train_cfg": cfg_to_dict(self.cfg), "world": self.info.world, "changes": self.changes}

    # -- the run folder ------------------------------------------------------------------------------------------
    def _claim_folder(self) -> None:
        """Make ``out`` this run's folder: lock it, and refuse one holding another run unless resuming/overwriting."""
        if self.out.exists() and not self.out.is_dir():
            raise RunFolderError(f"run folder {str(self.out)!r} exists and is not a folder; choose another --out")
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunFolderError(f"cannot create run folder {str(self.out)!r}: {err.strerror or err}") from err
        if not self.info.is_main:
            return
        self._lock = _lock_folder(self.out)
        held = [name for name in (CHECKPOINT, "metrics.jsonl") if (self.out / name).exists()]
        if not held or self.cfg.resume:
            return
        if not self.cfg.overwrite:
            what = (f"a checkpoint at step {read_info(self.checkpoint).extra.get('step', '?')}"
                    if (self.out / CHECKPOINT).is_file() else "the metrics of an earlier run")
            raise RunFolderError(
                f"run folder {str(self.out)!r} already holds a run ({what}); continue it with --resume "
                "(resume=True), start it again with --overwrite (deletes its checkpoint, metrics and samples), "
                "or choose another --out"
            )
        for path in _run_files(self.out):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        log.info("deleted the earlier run in %s (--overwrite)", self.out)

    def _release_folder(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the descriptor releases the flock
            self._lock = None

    def _check_changes(self, train: dict[str, Any]) -> bool:
        """Compare the checkpoint's objective and training settings with the new ones; True when values changed
        (all accepted), RunFolderError listing them when some are not in ``accept_changes``."""
        saved_info = read_info(self.checkpoint)
        spec = getattr(self.module, "ganzoo_spec", None)
        if spec is not None and saved_info.name != spec[1]:
            raise RunFolderError(f"run folder {str(self.out)!r} holds a run of {saved_info.name!r}, not {spec[1]!r}; "
                                 "train into another --out")
        objective_cfg = cfg_to_dict(getattr(self.module, "cfg", None))

        def settings(train_cfg: Mapping[str, Any]) -> dict[str, Any]:  # "train.seed" where the objective has a seed
            return {(f"train.{k}" if k in objective_cfg else k): v for k, v in train_cfg.items()
                    if k in _compared(self.cfg)}

        saved_cfg = train.get("train_cfg", {})
        if saved_cfg:  # a run saved before sync_bn (fused_adam) existed trained without it
            saved_cfg = {"sync_bn": False, **saved_cfg}
            if isinstance(saved_cfg.get("policy"), Mapping):
                saved_cfg["policy"] = {"fused_adam": False, **saved_cfg["policy"]}
        old = {**saved_info.config, **settings(saved_cfg)}
        new = {**objective_cfg, **settings(cfg_to_dict(self.cfg))}
        diff = {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new))
                if _jsonable(old.get(k)) != _jsonable(new.get(k))}
        if not diff:
            return False
        refused = [k for k in diff if k not in self.cfg.accept_changes and "all" not in self.cfg.accept_changes]
        listed = "; ".join(f"{k}: {diff[k][0]!r} -> {diff[k][1]!r}" for k in diff)
        if refused:
            raise RunFolderError(
                f"--resume: the run in {str(self.out)!r} was saved with other settings ({listed}); resume with the "
                f"same settings, or pass --accept-changes {','.join(refused)} to continue with the new values (they "
                "are applied to the optimizers too and recorded in the checkpoint)"
            )
        self.changes = [*train.get("changes", []),
                        {"step": int(train["step"]), "changed": {k: [_jsonable(a), _jsonable(b)]
                                                                 for k, (a, b) in diff.items()}}]
        log.warning("resuming with changed settings (accepted): %s", listed)
        return True

    def save(self, step: int) -> None:
        if self.info.is_main:
            save_training(self.checkpoint, self.module, step=step, optimizers=self.optimizers,
                          schedulers=self.schedulers, scaler=self.scaler, emas=self.emas, info=self._train_info())

    def _resume(self) -> int:
        if not (self.cfg.resume and self.checkpoint.is_file()):
            if self.cfg.resume:
                self._trim_metrics(0)  # killed before its first checkpoint: start again, one clean metrics file
            return 0
        changed = self._check_changes(read_train_meta(self.checkpoint))
        train = load_training(self.checkpoint, self.module, optimizers=self.optimizers, schedulers=self.schedulers,
                              scaler=self.scaler, emas=self.emas, device=self.device, new_hyperparameters=changed)
        if not changed:
            self.changes = list(train.get("changes", []))
        step = int(train["step"])
        self._trim_metrics(step)
        if self.info.is_main:
            log.info("resumed from %s at step %d", self.checkpoint, step)
        return step

    def _trim_metrics(self, step: int) -> None:
        """Drop logged rows past the checkpoint, so the metrics file reads as one uninterrupted run."""
        path = self.out / "metrics.jsonl"
        if not (self.info.is_main and path.is_file()):
            return
        rows = [ln for ln in path.read_text().splitlines() if ln and _row_step(ln) <= step]
        with atomic_path(path, overwrite=True, what="metrics file") as tmp:
            tmp.write_text("".join(r + "\n" for r in rows))

    # -- loop ----------------------------------------------------------------------------------------------------
    def _loader(self, start: int) -> Iterator[dict[str, Tensor]]:
        groups = getattr(self.dataset, "step_groups", None)  # joined datasets taken one per step, in turn
        sampler = gdist.StepBatchSampler(len(self.dataset), self.cfg.batch_size, self.cfg.seed, self.info, start,  # type: ignore[arg-type]
                                         groups=groups)
        loader = DataLoader(self.dataset, batch_sampler=sampler, num_workers=self.cfg.num_workers)  # type: ignore[arg-type]
        for batch in loader:
            yield self.cfg.policy.batch({k: v.to(self.device, non_blocking=True) for k, v in batch.items()})

    def _wrap_ddp(self) -> dict[str, nn.Module]:
        """Wrap each trainable network in DDP under torchrun (its BatchNorm layers synchronised first with
        ``sync_bn``); returns the networks as they were, for ``_unwrap``."""
        originals = dict(self.objective.networks.items())
        if self.cfg.sync_bn and not self.info.enabled:
            log.info("--sync-bn: a single process already normalises over the whole batch; training as usual")
        if self.info.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            trainable = {name: net for name, net in originals.items() if any(p.requires_grad for p in net.parameters())}
            if self.cfg.sync_bn:
                self._synchronise_batchnorm(trainable.values())
            for name, net in trainable.items():
                self.objective.networks[name] = _DDP(net, device_ids=ids)
        return originals

    def _synchronise_batchnorm(self, networks: Iterable[nn.Module]) -> None:
        """Replace the BatchNorm layers of ``networks`` by synchronised ones (all of them, or none on an error)."""
        try:
            for net in networks:
                self._sync_swaps += gdist.convert_sync_batchnorm(net, self.device)
        except GanzooError:
            gdist.revert_sync_batchnorm(self._sync_swaps)
            self._sync_swaps = []
            raise
        if self.info.is_main:
            log.info("--sync-bn: %d BatchNorm layers normalise over the global batch of %d processes",
                     len(self._sync_swaps), self.info.world)

    def _step_schedules(self) -> None:
        """One schedule step per engine step for every phase, so a phase's LR at step ``s`` is its schedule's value
        at ``s - 1`` whether or not the phase ran. A phase that runs every n steps (StarGAN's G, every n_critic) has
        not stepped its optimizer yet at step 1, which PyTorch reports as a misordered call; here it is intended."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before",
                                    category=UserWarning)
            for sched in self.schedulers.values():
                sched.step()

    def run(self) -> TrainResult:
        try:
            self._claim_folder()
            return self._run()
        except NonFiniteLossError as err:
            kept = str(self.checkpoint) if self.checkpoint.is_file() else None
            raise NonFiniteLossError(err.step, err.phase, err.loss_name, err.value, checkpoint=kept) from None
        finally:
            self._release_folder()

    def _run(self) -> TrainResult:
        cfg, info = self.cfg, self.info
        start = self._resume()
        fixed = next(iter(DataLoader(self.dataset, batch_size=min(cfg.n_samples, len(self.dataset)))))  # type: ignore[arg-type]
        fixed = {k: v.to(self.device) for k, v in fixed.items()}
        originals = self._wrap_ddp()
        writer = self._tensorboard() if info.is_main else None
        bar = self._progress(start) if info.is_main else None
        step, interrupted, t0 = start, False, time.perf_counter()
        try:
            with _StopSignals() as stop, (self.out / "metrics.jsonl").open("a", encoding="utf-8") as metrics:
                batches = self._loader(start)
                for step in range(start + 1, cfg.steps + 1):
                    row = self._step(step, next(batches))
                    self._step_schedules()
                    last = step == cfg.steps or self._out_of_time(t0)
                    if step % cfg.log_every == 0 or last:
                        self._log(gdist.all_mean(row, info) | {"step": float(step),
                                  "it_per_s": (step - start) / (time.perf_counter() - t0)}, metrics, writer)
                    if bar is not None:
                        bar.update(1)
                    with self._unwrapped(originals):
                        if info.is_main and ((cfg.sample_every and step % cfg.sample_every == 0) or last):
                            self.samples.append(write_samples(self.objective, self.out / f"samples_{step:07d}.png",
                                                              cfg.n_samples, fixed, cfg.seed, self.emas))
                            if writer is not None:
                                _log_image(writer, self.samples[-1], step)
                        if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or last:
                            self.save(step)
                        elif stop.received is not None:
                            self.save(step)
                    if last and step < cfg.steps:
                        if info.is_main:
                            log.info("time limit of %g min reached at step %d of %d; continue with --resume",
                                     cfg.max_minutes, step, cfg.steps)
                        break
                    if stop.received is not None:
                        interrupted = True
                        if info.is_main:
                            log.warning("stopped by signal %d at step %d; checkpoint written, resume with --resume",
                                        stop.received, step)
                        break
        finally:
            self._unwrap(originals)
            gdist.revert_sync_batchnorm(self._sync_swaps)  # the objective's own BatchNorm layers again
            self._sync_swaps = []
            if bar is not None:
                bar.close()
            if writer is not None:
                if sys.exc_info()[0] is None:  # a run that ended (done, time limit or signal), not one failing
                    self._log_hparams(writer)
                writer.close()
        if info.is_main:
            self._finish(step)
        return TrainResult(out_dir=self.out, checkpoint=self.checkpoint, samples=tuple(self.samples),
                           history=tuple(self.history), step=step, interrupted=interrupted)

    def _out_of_time(self, t0: float) -> bool:
        if self.cfg.max_minutes is None:
            return False
        over = time.perf_counter() - t0 >= 60.0 * self.cfg.max_minutes
        if self.info.enabled:  # rank 0's clock decides, so every rank stops after the same step
            flag = torch.tensor([1.0 if over else 0.0], device=self.device)
            dist.broadcast(flag, src=0)
            over = bool(flag.item())
        return over

    def _step(self, step: int, batch: dict[str, Tensor]) -> dict[str, float]:
        ctx = gdist.step_context(self.cfg.seed, step, self.info)
        row: dict[str, float] = {}
        for phase in self.objective.phases:
            if not phase.due(step):
                continue
            row.update(run_phase(self.objective, phase, self.optimizers[phase.name], batch, ctx, step,
                                 policy=self.cfg.policy, scaler=self.scaler, info=self.info))
            self._check_divergence(row, step)
            for name in phase.networks:
                if name in self.emas:
                    net = self.objective.networks[name]
                    self.emas[name].update_parameters(getattr(net, "module", net))
        return row

    def _check_divergence(self, row: Mapping[str, float], step: int) -> None:
        if self._warned_divergence or not self.info.is_main:
            return
        big = {k: v for k, v in row.items() if k.startswith("loss_") and abs(v) > DIVERGED}
        if big:
            self._warned_divergence = True
            lrs = {name: opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()}
            log.warning("training is diverging: %s at step %d (learning rates %s); stop it and lower the learning "
                        "rate", ", ".join(f"{k} = {v:.3g}" for k, v in big.items()), step, lrs)
            warnings.warn(f"ganzoo: losses above {DIVERGED:g} at step {step} ({', '.join(big)}): the run is "
                          "diverging; lower the learning rate", RuntimeWarning, stacklevel=2)

    @contextlib.contextmanager
    def _unwrapped(self, originals: dict[str, nn.Module]) -> Iterator[None]:
        if not self.info.enabled:
            yield
            return
        wrapped = dict(self.objective.networks.items())
        self._unwrap(originals)
        try:
            yield
        finally:
            for name, net in wrapped.items():
                self.objective.networks[name] = net

    def _unwrap(self, originals: dict[str, nn.Module]) -> None:
        for name, net in originals.items():
            self.objective.networks[name] = net

    # -- reporting -----------------------------------------------------------------------------------------------
    def _log(self, row: dict[str, float], metrics: Any, writer: Any) -> None:
        if not self.info.is_main:
            return
        self.history.append(row)
        metrics.write(json.dumps(row) + "\n")
        metrics.flush()
        if writer is not None:
            for key, value in row.items():
                if key != "step":
                    writer.add_scalar(key, value, int(row["step"]))
        (self.on_log or self._log_line)(row)

    def _log_line(self, row: dict[str, float]) -> None:
        if self.cfg.progress and sys.stderr.isatty():
            return  # the progress bar shows it
        step, rate = int(row["step"]), row.get("it_per_s", 0.0)
        eta = (self.cfg.steps - step) / rate if rate else 0.0
        losses = "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k.startswith("loss_"))
        log.info("step %d/%d  %s  %.1f it/s  ETA %dm%02ds", step, self.cfg.steps, losses, rate, eta // 60, eta % 60)

    def _progress(self, start: int) -> Any:
        if not (self.cfg.progress and sys.stderr.isatty()):
            return None
        from tqdm import tqdm

        return tqdm(total=self.cfg.steps, initial=start, unit="step", dynamic_ncols=True)

    def _log_hparams(self, writer: Any) -> None:
        """The run's settings (objective config and training settings, flattened to scalars) beside its last logged
        values, for TensorBoard's HPARAMS tab."""
        if writer is None or not self.history:
            return
        settings = {f"objective.{k}": v for k, v in _flat(cfg_to_dict(getattr(self.objective, "cfg", None)))}
        settings |= {f"train.{k}": v for k, v in _flat({"batch_size": self.cfg.batch_size, "steps": self.cfg.steps,
                                                          "seed": self.cfg.seed, "policy": self.cfg.policy.name,
                                                          "ema": self.cfg.ema})}
        final = {f"final/{k}": v for k, v in self.history[-1].items() if k != "step" and isinstance(v, float)}
        writer.add_hparams(settings, final, run_name="hparams")

    def _tensorboard(self) -> Any:
        if not self.cfg.tensorboard or importlib.util.find_spec("tensorboard") is None:
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(self.out / "tb"))

    def _finish(self, step: int) -> None:
        from ganzoo_core.plots import PLOTS_HINT, plotting_available, save_loss_curve

        rows = [json.loads(ln) for ln in (self.out / "metrics.jsonl").read_text().splitlines() if ln]
        if rows and not plotting_available():
            log.info("no loss_curve.png: matplotlib is not installed (%s); `ganzoo report %s` draws the curves",
                     PLOTS_HINT, self.out)
        elif rows:
            save_loss_curve(rows, self.out / "loss_curve.png", title=f"{getattr(self.module, 'ganzoo_spec', ('', ''))[1]}"
                            f" ({self.cfg.policy.name})")
        if self.samples:
            with atomic_path(self.out / "samples.png", overwrite=True) as tmp:
                tmp.write_bytes(self.samples[-1].read_bytes())


def _log_image(writer: Any, path: Path, step: int) -> None:
    """The sample grid just written to ``path``, as TensorBoard image ``samples`` at ``step``."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        writer.add_image("samples", np.asarray(image.convert("RGB")), step, dataformats="HWC")


def _flat(tree: Any, prefix: str = "") -> list[tuple[str, int | float | str | bool]]:
    """``(dotted.key, value)`` of every leaf, as TensorBoard hparams take them: numbers, strings and booleans as they
    are, anything else (tuples, None) as its text."""
    if isinstance(tree, Mapping):
        return [kv for k, v in tree.items() for kv in _flat(v, f"{prefix}{k}.")]
    key = prefix.rstrip(".")
    return [(key, tree if isinstance(tree, int | float | str | bool) else json.dumps(tree, default=str))]


def _compared(cfg: TrainCfg) -> tuple[str, ...]:
    return COMPARED_SETTINGS + (("steps",) if cfg.schedule.kind == "linear" else ())


def _jsonable(value: Any) -> Any:
    """Tuples as lists, so a value read back from JSON compares equal to the live one."""
    return json.loads(json.dumps(value, default=str))


def _row_step(line: str) -> float:
    try:
        return float(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return math.inf  # a torn last line from a killed process: dropped with the rows past the checkpoint


def _run_files(out: Path) -> list[Path]:
    """What a run writes into its folder (deleted by ``overwrite``); nothing else in the folder is touched."""
    names = [CHECKPOINT, "metrics.jsonl", "samples.png", "loss_curve.png", "tb"]
    return [out / n for n in names if (out / n).exists()] + sorted(out.glob("samples_*.png"))


def _lock_folder(out: Path) -> Any:
    """An exclusive ``fcntl`` lock on ``out/.ganzoo.lock``, held while the returned file is open."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        return None
    handle = open(out / LOCK, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise RunFolderError(f"run folder {str(out)!r} is in use by another ganzoo process (pid {holder}); wait for "
                             "it to finish, or train into another --out") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def train(objective: Objective, dataset: Dataset, out_dir: str | Path, cfg: TrainCfg = TrainCfg(), *,
          on_log: Callable[[dict[str, float]], None] | None = None) -> TrainResult:
    """Train ``objective`` on ``dataset`` into ``out_dir``: ``checkpoint.safetensors`` (``ganzoo_core.load`` rebuilds
    the objective; ``resume=True`` continues it), ``samples_<step>.png``, ``samples.png``, ``metrics.jsonl``,
    ``loss_curve.png`` and ``tb/`` (TensorBoard, when installed). A NaN or infinite loss raises
    ``NonFiniteLossError`` naming the step and the loss, and leaves the last checkpoint as it was. A folder holding
    another run needs ``cfg.resume`` or ``cfg.overwrite``; see the module docstring."""
    return Trainer(objective, dataset, out_dir, cfg, on_log=on_log).run()


def dataset_for(objective: Objective, name: str | None = None, **overrides: Any) -> Dataset:
    """The registered dataset ``name`` (default: the objective's ``cfg.dataset``) built to fit ``objective``'s
    networks, as ``ganzoo train`` builds it: where the dataset's config has ``channels`` / ``image_size`` fields and
    ``overrides`` leave them out, they are set from ``objective.image_shape`` (C, H, W); an override that contradicts
    the networks is a ``GanzooError`` (change the objective instead). Other ``overrides`` are the dataset's options.
    An objective's optional ``data_defaults`` mapping (e.g. GAN-CLS's ``{"caption_average": 4}``) fills the dataset
    options it names that the dataset has and ``overrides`` leave out.
    """
    from ganzoo_core._api import SPEC_ATTR, create, get_entry

    label = getattr(objective, SPEC_ATTR, ("objective", type(objective).__name__))[1]
    data_name = name or getattr(getattr(objective, "cfg", None), "dataset", None)
    if not data_name:
        raise GanzooError(f"objective {label!r} names no default dataset; pass --data NAME")
    entry = get_entry("dataset", data_name)
    kwargs = dict(overrides)
    shape = getattr(objective, "image_shape", None)
    fields = set(cfg_to_dict(entry.cfg))
    if shape is not None:  # make the data fit the networks unless the caller said otherwise
        for key, value in (("channels", shape[0]), ("image_size", shape[-1])):
            if key in fields:
                given = kwargs.setdefault(key, value)
                if given != value:
                    raise GanzooError(f"--data-set {key}={given!r} does not fit {label!r}, whose networks take "
                                      f"{key} {value}; change the objective instead (--set ...)")
    for key, value in dict(getattr(objective, "data_defaults", None) or {}).items():
        if key in fields:
            kwargs.setdefault(key, value)
    return create("dataset", entry.name, **kwargs)
