"""Whole-model costs per registered entry: one training iteration of every objective (all its phases, Adam steps
included) and generator throughput, eager fp32. Parametrised over the registry, so a new model gets its rows.

    .venv/bin/python -m pytest benchmarks/bench_models.py

Training iterations run under the eager precision policies (fp32, bf16, bf16 + channels_last), grouped per model so
pytest-benchmark prints them side by side; ``torch.compile`` is left out here because a cold compile costs 15-25 s
per graph on a small CPU.
"""

from __future__ import annotations

import pytest
import torch
from conftest import DEVICES, HOST

from ganzoo_core._api import create
from ganzoo_core.policy import Policy
from ganzoo_core.training import make_optimizers, run_phase

OBJECTIVES = HOST.registry.names("objective")
GENERATORS = HOST.registry.names("generator")
BATCH = 64


POLICIES = [Policy(), Policy(precision="bf16"), Policy(precision="bf16", channels_last=True)]


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.name)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", OBJECTIVES)
def test_train_iteration(benchmark, name: str, device: str, policy: Policy) -> None:
    torch.manual_seed(0)
    objective = create("objective", name).to(device).train()
    policy.prepare(objective.networks)
    batch = policy.batch({k: v.to(device) for k, v in objective.example_batch(BATCH).items()})
    optimizers = make_optimizers(objective)

    def iteration() -> dict[str, float]:
        ctx: dict = {}
        row: dict[str, float] = {}
        for phase in objective.phases:
            row |= run_phase(objective, phase, optimizers[phase.name], batch, ctx, step=1, policy=policy)
        if device == "cuda":
            torch.cuda.synchronize()
        return row

    benchmark.group = f"train {name} {device}"
    benchmark.extra_info.update(batch=BATCH, policy=policy.name)
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
