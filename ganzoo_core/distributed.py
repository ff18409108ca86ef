"""Multi-process training through ``torchrun`` (PyTorch's DDP; nothing home-made), and data order and noise that
do not depend on the number of processes.

- ``torchrun --nproc_per_node=N -m ganzoo_core.cli train ...`` sets ``RANK``/``WORLD_SIZE``; ``init()`` joins the
  process group (gloo on CPU, nccl on CUDA). Rank 0 logs, samples and checkpoints.
- ``batch_size`` is always the global batch: each of the N ranks gets ``batch_size / N`` of it.
- The data order of step ``s`` and the noise of step ``s`` are functions of (seed, s) alone, so a run resumed at
  step ``s``, or run on another number of processes, sees the same images and the same noise.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
import torch
import torch.distributed as dist

from ganzoo_core.errors import GanzooError


@attrs.frozen
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init(device: str) -> DistInfo:
    """Join the ``torchrun`` process group if this process was started by it; a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend)
        atexit.register(_leave_process_group)
    return DistInfo(rank=rank, world=world, local_rank=local)


def _leave_process_group() -> None:
    """At exit, every rank waits for the others, then the group is destroyed: a group left to the interpreter's
    teardown kills gloo's threads mid-flight ("terminate called without an active exception", exit code -6)."""
    if not dist.is_initialized():
        return
    try:
        dist.barrier()
    except Exception:  # a rank that already failed: torchrun reports that one, not this
        pass
    dist.destroy_process_group()


def device_for(device: str, info: DistInfo) -> torch.device:
    """``cuda`` means this rank's own GPU under torchrun."""
    if device == "cuda" and info.enabled:
        return check_device(torch.device("cuda", info.local_rank))
    return check_device(device)


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch.device, or a ``GanzooError`` naming it when it is malformed or not on this machine."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as err:
        raise GanzooError(f"device {str(device)!r} is not a device name; use cpu, cuda, cuda:1, ... ({err})") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise GanzooError(f"device {str(device)!r} asked for, but this machine has no usable CUDA device "
                              f"(torch {torch.__version__}); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise GanzooError(f"device {str(device)!r} does not exist: this machine has {torch.cuda.device_count()} "
                              "CUDA device(s), numbered from 0")
    elif dev.type not in ("cpu", "mps", "xpu", "meta"):
        backend = getattr(torch, dev.type, None)
        if backend is None or not getattr(backend, "is_available", lambda: False)():
            raise GanzooError(f"device {str(device)!r} is not available on this machine; use --device cpu")
    return dev


def local_batch_size(batch_size: int, info: DistInfo) -> int:
    if batch_size % info.world:
        raise GanzooError(
            f"batch_size={batch_size} is the global batch and must divide evenly over {info.world} processes"
        )
    return batch_size // info.world


class StepBatchSampler:
    """Index lists for each step: epoch ``e`` is a permutation seeded by (seed, e); step ``s`` takes global batch
    ``s mod batches_per_epoch`` of it, and this rank its own slice. Starting at any step needs no saved state.

    ``groups`` (sizes of consecutive index blocks summing to ``n``, e.g. two joined datasets) makes step ``s`` draw its
    whole batch from block ``s mod len(groups)``: each block then has its own epochs, over its own steps."""

    def __init__(self, n: int, batch_size: int, seed: int, info: DistInfo, start_step: int = 0,
                 groups: Sequence[int] | None = None) -> None:
        sizes = tuple(int(g) for g in groups) if groups is not None else (n,)
        if sum(sizes) != n or not sizes:
            raise GanzooError(f"step groups {sizes} must sum to the dataset's {n} items")
        if min(sizes) < batch_size:
            which = "the dataset has" if len(sizes) == 1 else f"a step group (sizes {sizes}) has"
            raise GanzooError(f"{which} {min(sizes)} items, fewer than one batch of {batch_size}")
        self.n, self.batch_size, self.seed, self.info, self.start_step = n, batch_size, seed, info, start_step
        self.sizes = sizes
        self.offsets = tuple(sum(sizes[:i]) for i in range(len(sizes)))
        self.local = local_batch_size(batch_size, info)

    @property
    def per_epoch(self) -> int:
        """Batches in one epoch of the first (or only) group."""
        return self.sizes[0] // self.batch_size

    def indices(self, step: int) -> list[int]:
        g, own_step = step % len(self.sizes), step // len(self.sizes)
        size = self.sizes[g]
        epoch, b = divmod(own_step, size // self.batch_size)
        seed = self.seed * 100_003 + epoch + g * 7_919  # group 0 draws what a plain sampler draws
        perm = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
        start = b * self.batch_size + self.info.rank * self.local
        return (perm[start: start + self.local] + self.offsets[g]).tolist()

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while True:
            yield self.indices(step)
            step += 1


def step_context(seed: int, step: int, info: DistInfo) -> dict[str, Any]:
    """The ``ctx`` an iteration starts with: the step, a noise generator for (seed, step), and this rank's place."""
    return {"noise": torch.Generator().manual_seed(seed * 1_000_003 + step), "step": step, "rank": info.rank,
            "world": info.world}


def batch_noise(ctx: dict[str, Any], n: int, *shape: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Standard normal noise for this rank's ``n`` samples, drawn as this rank's slice of the global batch's noise,
    so that 1 or N processes see the same numbers. Outside the engine (no generator in ``ctx``) it uses torch's RNG."""
    gen = ctx.get("noise")
    if gen is None:
        return torch.randn(n, *shape, device=device)
    world, rank = ctx.get("world", 1), ctx.get("rank", 0)
    full = torch.randn(n * world, *shape, generator=gen)
    return full[rank * n: (rank + 1) * n].to(device)


def all_mean(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average logged scalars over ranks (for logging only)."""
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(tensor)
    return {k: float(v) / info.world for k, v in zip(keys, tensor)}
