"""Multi-process training through ``torchrun`` (PyTorch's DDP; nothing home-made), and data order and noise that
do not depend on the number of processes.

- ``torchrun --nproc_per_node=N -m ganzoo_core.cli train ...`` sets ``RANK``/``WORLD_SIZE``; ``init()`` joins the
  process group (gloo on CPU, nccl on CUDA). Rank 0 logs, samples and checkpoints.
- ``batch_size`` is always the global batch: each of the N ranks gets ``batch_size / N`` of it.
- The data order of step ``s`` and the noise of step ``s`` are functions of (seed, s) alone, so a run resumed at
  step ``s``, or run on another number of processes, sees the same images and the same noise.
- ``--sync-bn`` (``convert_sync_batchnorm``): BatchNorm layers normalise with the statistics of the global batch, so N
  processes train as one process with the same global batch does (otherwise each rank uses its own slice's).
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

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


def end_process(code: int) -> None:
    """The CLI's last call: in a process of a process group, run the exit handlers (leaving the group among them) and
    end the process with ``code`` here, without the interpreter's teardown; elsewhere return. Once a network was
    wrapped in DDP, gloo's worker threads outlive ``destroy_process_group`` (PyTorch 2.14 keeps a reference to the
    group), and a teardown with them running aborted one rank in about 1 of 30 runs that had finished ("terminate
    called without an active exception", exit code -6)."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed (a broken pipe): nothing left to write
            pass
    os._exit(code)


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


# -- --sync-bn -----------------------------------------------------------------------------------------------------

Swap = tuple[nn.Module, str, nn.Module]
"""(parent module, child name, the BatchNorm layer that ``convert_sync_batchnorm`` replaced there)."""


class _SumOverRanks(torch.autograd.Function):
    """The sum of a tensor over the ranks of ``group``. Its gradient is the sum of the ranks' gradients: every rank's
    loss depends on every rank's contribution, so each rank's backward needs them all (and stays differentiable)."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor, group: Any) -> Tensor:
        ctx.group = group
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return _SumOverRanks.apply(grad, ctx.group), None


class _Act:
    """An activation after the normalisation: ``act``/``alpha`` of ganzoo's fused ``BatchNormAct2d`` (torch's
    conversion knows only plain BatchNorm and would drop it); none when ``act`` is None."""

    act: str | None = None
    alpha: float | None = None

    @classmethod
    def from_batchnorm(cls, bn: _BatchNorm, act: str | None = None, alpha: float | None = None) -> Any:
        """A synchronised copy of ``bn`` holding the same parameter and buffer tensors (as torch's conversion does)."""
        sync = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)  # type: ignore[call-arg]
        _move_tensors(bn, sync)
        sync.train(bn.training)
        sync.act, sync.alpha = act, alpha
        return sync

    def _activate(self, y: Tensor) -> Tensor:
        if self.act is None:
            return y
        from ganzoo_core.ops.bias_act import ACTIVATIONS

        activation = ACTIVATIONS[self.act]
        return activation.func(y, float(activation.alpha if self.alpha is None else self.alpha))


class SyncBatchNormAct(_Act, nn.SyncBatchNorm):
    """torch's ``nn.SyncBatchNorm`` (CUDA), then the activation of the ``BatchNormAct2d`` it replaces."""

    def forward(self, input: Tensor) -> Tensor:
        return self._activate(super().forward(input))


class CPUSyncBatchNorm(_Act, _BatchNorm):
    """BatchNorm over the global batch of a gloo process group, on the CPU, where torch's ``nn.SyncBatchNorm`` does
    not run: its forward refuses CPU tensors ("expected input tensor to be on GPU") and DDP refuses it in a CPU
    module ("SyncBatchNorm layers only work with GPU modules"), torch 2.14 included.

    In training mode with a process group, it sums over the ranks the count and sum per channel (the mean), then
    the sum of squared deviations (the biased variance for normalising, the unbiased one for the running
    statistics), in float64 and with gradients through both sums: BatchNorm's numbers over the global batch, as
    torch's SyncBatchNorm computes them on CUDA. In eval mode or without a process group it is BatchNorm. Then the
    activation, when it replaces a ``BatchNormAct2d``. Parameters and buffers have BatchNorm's names. (Used for
    every device but CUDA, as the engine's process group there is gloo.)
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: Tensor) -> Tensor:
        if self.training and dist.is_available() and dist.is_initialized():
            return self._activate(self._forward_synced(input))
        return self._activate(super().forward(input))

    def _forward_synced(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked)
        dims, shape = [0, *range(2, x.ndim)], (1, -1, *[1] * (x.ndim - 2))
        acc = torch.float64 if x.dtype == torch.float64 else torch.float32
        local = torch.cat([x.sum(dims, dtype=torch.float64),
                           torch.full((1,), float(x.numel() // max(x.shape[1], 1)), dtype=torch.float64)])
        sums = _SumOverRanks.apply(local, dist.group.WORLD)
        count = float(sums[-1])
        if count <= 1:
            raise ValueError(f"BatchNorm in training needs more than 1 value per channel over all processes, got "
                             f"input of shape {tuple(x.shape)} on this one")
        mean = sums[:-1] / count
        centered = x.to(acc) - mean.to(acc).view(shape)
        var = _SumOverRanks.apply(centered.square().sum(dims, dtype=torch.float64), dist.group.WORLD) / count
        y = centered * torch.rsqrt(var + self.eps).to(acc).view(shape)
        if self.weight is not None:
            y = y * self.weight.to(acc).view(shape)
        if self.bias is not None:
            y = y + self.bias.to(acc).view(shape)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.running_mean.mul_(1 - momentum).add_(mean.to(self.running_mean.dtype), alpha=momentum)
                unbiased = var * (count / (count - 1))
                self.running_var.mul_(1 - momentum).add_(unbiased.to(self.running_var.dtype), alpha=momentum)
        return y.to(x.dtype)


def _move_tensors(source: nn.Module, target: nn.Module) -> None:
    """Give ``target`` the parameter and buffer objects of ``source`` (BatchNorm's five)."""
    for key in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
        setattr(target, key, getattr(source, key))


def convert_sync_batchnorm(net: nn.Module, device: torch.device) -> list[Swap]:
    """Replace every BatchNorm layer inside ``net`` by a synchronised one holding the same parameters and buffers;
    returns what was replaced, for ``revert_sync_batchnorm``.

    On CUDA, plain BatchNorm becomes torch's ``nn.SyncBatchNorm`` (``convert_sync_batchnorm``) and ganzoo's fused
    ``BatchNormAct2d`` a ``SyncBatchNormAct`` (the same, then the activation); on the CPU either becomes a
    ``CPUSyncBatchNorm`` (see there why). A BatchNorm subclass with a forward of its own is refused: synchronising it
    would drop what that forward adds."""
    from ganzoo_core.ops.norm_act import BatchNormAct2d

    found: list[tuple[nn.Module, str, _BatchNorm, str | None, float | None]] = []
    for parent in list(net.modules()):
        for name, child in parent.named_children():
            if not isinstance(child, _BatchNorm) or isinstance(child, nn.SyncBatchNorm | CPUSyncBatchNorm):
                continue
            forward = type(child).forward
            if forward is _BatchNorm.forward:
                found.append((parent, name, child, None, None))
            elif isinstance(child, BatchNormAct2d) and forward is BatchNormAct2d.forward:
                found.append((parent, name, child, child.act, child.alpha))
            else:  # refused before anything is replaced
                raise GanzooError(f"--sync-bn cannot synchronise {type(child).__name__} (layer {name!r} of "
                                  f"{type(net).__name__}): a BatchNorm subclass with its own forward; train without "
                                  "--sync-bn, or build the network from plain BatchNorm layers")
    for parent, name, child, act, alpha in found:
        if device.type != "cuda":
            sync: nn.Module = CPUSyncBatchNorm.from_batchnorm(child, act=act, alpha=alpha)
        elif act is None:
            sync = nn.SyncBatchNorm.convert_sync_batchnorm(child)
        else:
            sync = SyncBatchNormAct.from_batchnorm(child, act=act, alpha=alpha)
        parent.add_module(name, sync)
    return [(parent, name, child) for parent, name, child, _, _ in found]


def revert_sync_batchnorm(swaps: Sequence[Swap]) -> None:
    """Put back the BatchNorm layers ``convert_sync_batchnorm`` replaced, holding the tensors the run trained."""
    for parent, name, original in reversed(swaps):
        sync = getattr(parent, name)
        _move_tensors(sync, original)
        original.train(sync.training)
        parent.add_module(name, original)
