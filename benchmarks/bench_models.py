"""Whole-model costs per registered entry: one training iteration of every objective (all its phases, Adam steps
included) and generator throughput, eager fp32. Parametrised over the registry, so a new model gets its rows.

    .venv/bin/python -m pytest benchmarks/bench_models.py --benchmark-group-by=param:name

Precision and compile policies (bf16, channels_last, torch.compile) and the per-op kernel suites come with the
kernels work; each row here is the eager fp32 reference they will be compared against in the same run.
"""

from __future__ import annotations

import pytest
import torch
from conftest import DEVICES, HOST

from ganzoo_core._api import create
from ganzoo_core.training import make_optimizers, run_phase

OBJECTIVES = HOST.registry.names("objective")
GENERATORS = HOST.registry.names("generator")
BATCH = 64


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", OBJECTIVES)
def test_train_iteration(benchmark, name: str, device: str) -> None:
    torch.manual_seed(0)
    objective = create("objective", name).to(device).train()
    batch = {k: v.to(device) for k, v in objective.example_batch(BATCH).items()}
    optimizers = make_optimizers(objective)

    def iteration() -> dict[str, float]:
        ctx: dict = {}
        row: dict[str, float] = {}
        for phase in objective.phases:
            row |= run_phase(objective, phase, optimizers[phase.name], batch, ctx, step=1)
        if device == "cuda":
            torch.cuda.synchronize()
        return row

    benchmark.extra_info.update(batch=BATCH, policy="eager-fp32")
    row = benchmark.pedantic(iteration, rounds=5, warmup_rounds=1)
    assert all(torch.isfinite(torch.tensor(v)) for v in row.values())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", GENERATORS)
def test_generate(benchmark, name: str, device: str) -> None:
    torch.manual_seed(0)
    g = create("generator", name).to(device).eval()
    inputs = [x.to(device) for x in g.example_inputs(BATCH)]

    @torch.no_grad()
    def generate() -> torch.Tensor:
        out = g(*inputs)
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    benchmark.extra_info.update(batch=BATCH, policy="eager-fp32")
    out = benchmark.pedantic(generate, rounds=10, warmup_rounds=2)
    assert tuple(out.shape) == g.output_shapes(BATCH)
