"""The training loop: runs any registered objective's phases on a dataset, with samples, logs and checkpoints.

This is the single-process fp32 engine; precision policies, exact resume and ``torchrun`` build on it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ganzoo_core.checkpoints import atomic_path, save
from ganzoo_core.errors import GanzooError, NonFiniteLossError
from ganzoo_core.interfaces import Objective, Phase
from ganzoo_core.visual import save_grid

log = logging.getLogger("ganzoo.train")


@attrs.frozen(kw_only=True)
class TrainCfg:
    steps: int = 2000  # iterations (one pass over every due phase each)
    batch_size: int = 64
    seed: int = 0
    device: str = "cpu"
    num_workers: int = 0
    log_every: int = 50
    sample_every: int = 500  # 0: only at the end
    checkpoint_every: int = 1000  # 0: only at the end
    n_samples: int = 64  # images in each sample grid, from fixed noise

    def __attrs_post_init__(self) -> None:
        for name in ("steps", "batch_size", "n_samples"):
            if getattr(self, name) < 1:
                raise GanzooError(f"{name} must be at least 1, got {getattr(self, name)}")


@attrs.frozen(kw_only=True)
class TrainResult:
    out_dir: Path
    checkpoint: Path
    samples: tuple[Path, ...]
    history: tuple[dict[str, float], ...]  # one row per logged step


def _batches(loader: DataLoader, device: torch.device) -> Iterator[dict[str, Tensor]]:
    while True:
        for batch in loader:
            yield {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def make_optimizers(objective: Objective) -> dict[str, torch.optim.Optimizer]:
    """One Adam per phase over the parameters of the networks the phase updates."""
    optimizers: dict[str, torch.optim.Optimizer] = {}
    for phase in objective.phases:
        params = [p for net in phase.networks for p in objective.networks[net].parameters() if p.requires_grad]
        if not params:
            raise GanzooError(f"phase {phase.name!r} updates {phase.networks}, which have no trainable parameters")
        optimizers[phase.name] = torch.optim.Adam(
            params, lr=phase.lr, betas=phase.betas, weight_decay=phase.weight_decay
        )
    return optimizers


def run_phase(
    objective: Objective, phase: Phase, optimizer: torch.optim.Optimizer, batch: Mapping[str, Tensor],
    ctx: dict[str, Any], step: int,
) -> dict[str, float]:
    """zero_grad → loss → NaN guard → backward → step, for one phase; returns the logged terms."""
    optimizer.zero_grad(set_to_none=True)
    loss, terms = objective.loss(phase.name, batch, ctx)
    value = float(loss.detach())
    if not math.isfinite(value):
        raise NonFiniteLossError(step, phase.name, f"loss_{phase.name}", value)
    loss.backward()
    optimizer.step()
    return {f"loss_{phase.name}": value, **{f"{phase.name}/{k}": float(v) for k, v in terms.items()}}


def write_samples(objective: Objective, path: Path, n: int, batch: Mapping[str, Tensor] | None, seed: int) -> Path:
    """A PNG grid of ``objective.sample`` in eval mode, from fixed noise."""
    was_training = objective.training  # type: ignore[attr-defined]
    objective.eval()  # type: ignore[attr-defined]
    try:
        with torch.no_grad():
            images = objective.sample(n, batch=batch, seed=seed)
    finally:
        objective.train(was_training)  # type: ignore[attr-defined]
    return save_grid(images, path)


def train(
    objective: Objective,
    dataset: Dataset,
    out_dir: str | Path,
    cfg: TrainCfg = TrainCfg(),
    *,
    on_log: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train ``objective`` on ``dataset`` for ``cfg.steps`` iterations; writes into ``out_dir``:

    ``checkpoint.safetensors`` (``ganzoo_core.load`` rebuilds the objective), ``samples_<step>.png``,
    ``samples.png`` (the last grid) and ``metrics.jsonl``. A NaN or infinite loss raises ``NonFiniteLossError``
    and leaves the last checkpoint as it was.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(cfg.device)
    objective.to(device).train()  # type: ignore[attr-defined]
    if len(dataset) < cfg.batch_size:  # type: ignore[arg-type]
        raise GanzooError(f"the dataset has {len(dataset)} items, fewer than batch_size={cfg.batch_size}")  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, drop_last=True, generator=gen,
                        num_workers=cfg.num_workers)
    fixed = next(iter(DataLoader(dataset, batch_size=min(cfg.n_samples, len(dataset)))))  # type: ignore[arg-type]
    fixed = {k: v.to(device) for k, v in fixed.items()}
    optimizers = make_optimizers(objective)
    checkpoint, samples, history = out / "checkpoint.safetensors", [], []
    batches = _batches(loader, device)
    with (out / "metrics.jsonl").open("a", encoding="utf-8") as metrics:
        start = time.perf_counter()
        for step in range(1, cfg.steps + 1):
            batch, row = next(batches), {"step": float(step)}
            ctx: dict[str, Any] = {}
            for phase in objective.phases:
                if step % phase.every == 0:
                    row.update(run_phase(objective, phase, optimizers[phase.name], batch, ctx, step))
            if step % cfg.log_every == 0 or step == cfg.steps:
                row["it_per_s"] = step / (time.perf_counter() - start)
                history.append(row)
                metrics.write(json.dumps(row) + "\n")
                metrics.flush()
                (on_log or _log_row)(row | {"steps": float(cfg.steps)})
            if (cfg.sample_every and step % cfg.sample_every == 0) or step == cfg.steps:
                samples.append(write_samples(objective, out / f"samples_{step:07d}.png", cfg.n_samples, fixed, cfg.seed))
            if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.steps:
                save(objective, checkpoint, extra={"step": str(step), "train_cfg": json.dumps(attrs.asdict(cfg))})  # type: ignore[arg-type]
    with atomic_path(out / "samples.png") as tmp:
        tmp.write_bytes(samples[-1].read_bytes())
    return TrainResult(out_dir=out, checkpoint=checkpoint, samples=tuple(samples), history=tuple(history))


def _log_row(row: dict[str, float]) -> None:
    step, steps, rate = int(row["step"]), int(row["steps"]), row.get("it_per_s", 0.0)
    eta = (steps - step) / rate if rate else 0.0
    losses = "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k.startswith("loss_"))
    log.info("step %d/%d  %s  %.1f it/s  ETA %dm%02ds", step, steps, losses, rate, eta // 60, eta % 60)
