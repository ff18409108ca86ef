"""``--sync-bn``: BatchNorm over the global batch under torchrun, on the CPU (gloo) too.

Two gloo processes with synchronised BatchNorm train as one process with the same global batch does; without it they
do not (each rank normalises over its own half). Checkpoints hold plain BatchNorm and load on a single process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from test_datasets import write_animal
from torch import nn

import ganzoo_core as gz
from ganzoo_core import distributed as gdist
from ganzoo_core.errors import GanzooError, RunFolderError
from ganzoo_core.ops.norm_act import BatchNormAct2d
from ganzoo_core.runconfig import read_run_config, train_cfg_of
from ganzoo_core.training import TrainCfg, train

needs_gloo = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with the gloo backend is not available in this torch build")
WORLD, BATCH = 2, 8


def _net() -> nn.Module:
    """ganzoo's fused BatchNorm + LeakyReLU (cumulative running average), a 1×1 convolution, plain BatchNorm; all
    parameters random. (No linear path from one BatchNorm's γ, β or a bias to the next BatchNorm: their gradients
    would vanish up to rounding, and compare nothing.)"""
    gen = torch.Generator().manual_seed(1)
    net = nn.Sequential(BatchNormAct2d(3, momentum=None, act="lrelu", alpha=0.1), nn.Conv2d(3, 4, 1, bias=False),
                        nn.BatchNorm2d(4))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return net


def _case(i: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Iteration ``i``'s global batch and the weights of its loss ``sum(net(x) * w)``."""
    gen = torch.Generator().manual_seed(10 + i)
    return torch.randn(BATCH, 3, 5, 5, generator=gen) * 2 + 0.5, torch.randn(BATCH, 4, 5, 5, generator=gen)


def _run_net(net: nn.Module, rank: int, world: int) -> dict[str, torch.Tensor]:
    """Two training iterations on this rank's slice: outputs, input gradients, then parameter gradients and buffers."""
    out: dict[str, torch.Tensor] = {}
    size = BATCH // world
    for i in range(2):
        x, w = _case(i)
        x = x[rank * size:(rank + 1) * size].clone().requires_grad_(True)
        y = net(x)
        (y * w[rank * size:(rank + 1) * size]).sum().backward()
        out |= {f"y{i}": y.detach(), f"dx{i}": x.grad}
    out |= {f"grad.{k}": p.grad for k, p in net.named_parameters()}
    out |= {f"buffer.{k}": b.float() for k, b in net.named_buffers()}
    return out


def _bn_worker(rank: int, store: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        net = _net()
        swaps = gdist.convert_sync_batchnorm(net, torch.device("cpu"))
        assert [type(m).__name__ for m in net] == ["CPUSyncBatchNorm", "Conv2d", "CPUSyncBatchNorm"] and len(swaps) == 2
        save_file(_run_net(net, rank, WORLD), os.path.join(out_dir, f"rank{rank}.safetensors"))
    finally:
        dist.destroy_process_group()


@needs_gloo
def test_two_gloo_processes_normalise_over_the_global_batch(tmp_path: Path) -> None:
    """torch's SyncBatchNorm refuses CPU tensors; ganzoo's gives, on 2 gloo processes, BatchNorm's numbers over the
    global batch: outputs, input gradients, parameter gradients (summed over ranks, as the loss is) and running
    statistics, through a plain BatchNorm and a fused BatchNorm + activation."""
    mp.spawn(_bn_worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [load_file(tmp_path / f"rank{r}.safetensors") for r in range(WORLD)]
    ref = _run_net(_net(), 0, 1)
    size = BATCH // WORLD
    for key, value in ref.items():
        if key.startswith(("y", "dx")):
            got = torch.cat([r[key] for r in ranks])
        elif key.startswith("grad."):
            got = ranks[0][key] + ranks[1][key]
        else:
            assert torch.equal(ranks[0][key], ranks[1][key]), key
            got = ranks[0][key]
        assert got.shape == value.shape, key
        assert torch.allclose(got, value, atol=2e-5, rtol=1e-5), (key, float((got - value).abs().max()))
    # on its own half a rank's plain BatchNorm would see other statistics: the comparison above can fail
    alone = _run_net(_net(), 0, WORLD)
    assert not torch.allclose(alone["y0"], ref["y0"][:size], atol=1e-2)


def test_conversion_shares_the_tensors_keeps_the_state_dict_and_reverts() -> None:
    """Without a process group the synchronised layers compute what the originals do (the fused activation kept);
    state dict keys are BatchNorm's; reverting puts the original modules back, holding the trained tensors."""
    net, reference = _net(), _net()
    originals = list(net)
    keys = list(net.state_dict())
    swaps = gdist.convert_sync_batchnorm(net, torch.device("cpu"))
    assert isinstance(net[0], gdist.CPUSyncBatchNorm) and isinstance(net[2], gdist.CPUSyncBatchNorm)
    assert list(net.state_dict()) == keys
    assert net[0].act == "lrelu" and net[2].act is None and net[0].weight is originals[0].weight
    x, _ = _case(0)
    assert torch.allclose(net(x), reference(x), atol=1e-6)
    with torch.no_grad():
        net[0].weight.add_(1.0)
    gdist.revert_sync_batchnorm(swaps)
    assert list(net) == originals and type(net[0]) is BatchNormAct2d and list(net.state_dict()) == keys
    assert torch.equal(net[0].weight, reference[0].weight + 1.0)
    assert torch.equal(net[0].running_mean, reference[0].running_mean)  # both took one batch's statistics
    assert int(net[0].num_batches_tracked) == 1


def test_a_batchnorm_subclass_with_its_own_forward_is_refused_and_nothing_is_replaced() -> None:
    class Odd(nn.BatchNorm2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) * 2

    net = nn.Sequential(nn.BatchNorm2d(3), Odd(3))
    with pytest.raises(GanzooError, match="cannot synchronise Odd"):
        gdist.convert_sync_batchnorm(net, torch.device("cpu"))
    assert type(net[0]) is nn.BatchNorm2d


def _weights(path: Path) -> dict[str, torch.Tensor]:
    objective = gz.load(path)
    assert not any(isinstance(m, nn.SyncBatchNorm | gdist.CPUSyncBatchNorm) for m in objective.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in objective.modules())
    return objective.state_dict()


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


@needs_gloo
def test_torchrun_with_sync_bn_trains_as_one_process_and_without_it_does_not(tmp_path: Path) -> None:
    """DCGAN with BatchNorm, global batch 8: 2 gloo processes with --sync-bn end with the weights (and running
    statistics) of 1 process, and their checkpoint loads on one process; without --sync-bn they end elsewhere."""
    root = write_animal(tmp_path)
    args = ["train", "dcgan.28", "--steps", "3", "--batch-size", str(BATCH), "--log-every", "1", "--sample-every",
            "0", "--no-progress", "--set", "generator_kwargs={'ngf': 8}", "--set", "discriminator_kwargs={'ndf': 8}",
            "--data-set", f"root={str(root)!r}"]
    env = {**os.environ, "GANZOO_LOAD_PLUGINS": "dcgan", "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={WORLD}"]

    def run(name: str, *extra: str, launcher: tuple[str, ...] = (sys.executable,)) -> subprocess.CompletedProcess:
        done = subprocess.run([*launcher, "-m", "ganzoo_core.cli", *args, *extra, "--out", str(tmp_path / name)],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    one = run("one", "--sync-bn")
    assert "--sync-bn: a single process" in one.stderr
    synced = run("synced", "--sync-bn", launcher=tuple(torchrun))
    assert "BatchNorm layers normalise over the global batch of 2 processes" in synced.stderr
    run("plain", launcher=tuple(torchrun))
    w_one, w_synced, w_plain = (_weights(tmp_path / d / "checkpoint.safetensors") for d in ("one", "synced", "plain"))
    d_synced, d_plain = _max_diff(w_one, w_synced), _max_diff(w_one, w_plain)
    print(f"max |weight difference| to 1 process: --sync-bn {d_synced:.3g}, without {d_plain:.3g}")
    assert d_synced < 1e-5
    assert d_plain > 1e-4 and d_plain > 30 * d_synced
    rows = [[json.loads(ln) for ln in (tmp_path / d / "metrics.jsonl").read_text().splitlines()] for d in ("one", "synced")]
    assert [r["step"] for r in rows[0]] == [r["step"] for r in rows[1]] == [1.0, 2.0, 3.0]
    for a, b in zip(*rows):
        assert a["loss_D"] == pytest.approx(b["loss_D"], abs=1e-5) and a["loss_G"] == pytest.approx(b["loss_G"], abs=1e-5)
    with safe_open(str(tmp_path / "synced" / "checkpoint.safetensors"), framework="pt") as handle:
        meta = json.loads(handle.metadata()["ganzoo.train"])
    assert meta["train_cfg"]["sync_bn"] is True and meta["world"] == WORLD


def test_the_setting_comes_from_the_flag_or_a_run_config_and_resume_compares_it(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text('objective = "dcgan.28"\nsync_bn = true\n')
    assert train_cfg_of(read_run_config(config)).sync_bn is True
    assert train_cfg_of(read_run_config(config), sync_bn=False).sync_bn is False
    (tmp_path / "animal").mkdir()
    root = write_animal(tmp_path / "animal")
    data = gz.create_dataset("animal_mnist.train", root=str(root))
    cfg = TrainCfg(steps=1, batch_size=4, log_every=1, sample_every=0, checkpoint_every=0, n_samples=4, progress=False)

    def objective() -> Any:
        torch.manual_seed(0)
        return gz.create_objective("dcgan.28", generator_kwargs={"ngf": 8}, discriminator_kwargs={"ndf": 8})

    train(objective(), data, tmp_path / "run", cfg)
    with pytest.raises(RunFolderError, match=r"sync_bn: False -> True.*--accept-changes sync_bn"):
        train(objective(), data, tmp_path / "run", attrs.evolve(cfg, steps=2, resume=True, sync_bn=True))
    done = train(objective(), data, tmp_path / "run",
                 attrs.evolve(cfg, steps=2, resume=True, sync_bn=True, accept_changes=("sync_bn",)))
    assert done.step == 2


END_SCRIPT = """
import atexit, os, sys
import torch
import torch.distributed as dist
from ganzoo_core.distributed import end_process

end_process(5)  # no process group: returns
dist.init_process_group("gloo", init_method="file://" + sys.argv[1], rank=0, world_size=1)
torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(2, 2))  # keeps gloo's threads alive past the group
atexit.register(lambda: open(sys.argv[2], "w").write("handlers ran"))
print("written before the end", end="")
end_process(3)
print("never reached")
"""


@needs_gloo
def test_a_process_in_a_group_ends_with_its_code_after_its_exit_handlers(tmp_path: Path) -> None:
    """``end_process``: without a group it returns; in one it runs the exit handlers (leaving the group, the user's
    own), flushes the output and ends with the command's code, skipping the teardown that gloo's threads crash."""
    marker = tmp_path / "marker"
    done = subprocess.run([sys.executable, "-c", END_SCRIPT, str(tmp_path / "store"), str(marker)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr[-2000:]
    assert done.stdout == "written before the end"
    assert marker.read_text() == "handlers ran"
    assert not dist.is_initialized()  # the test process itself never joined a group
