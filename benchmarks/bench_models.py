"""Whole-model costs per registered entry: one training iteration of every objective (all its phases, optimizer
steps included) and generator throughput, under each policy of ``ganzoo_core.bench`` (eager fp32 on reference ops
first). Parametrised over the registry, so a new model gets its rows.

    .venv/bin/python -m pytest benchmarks/bench_models.py --benchmark-group-by=group

The ``torch.compile`` policies (a cold compile costs 15-25 s per graph on a small CPU) run only with
``GANZOO_BENCH_COMPILE=1``, as ``ganzoo bench models --compile`` adds them.
"""

from __future__ import annotations

import os

import pytest
from conftest import DEVICES, HOST

from ganzoo_core.bench import (
    COMPILED_GENERATE,
    COMPILED_TRAIN,
    GENERATE_POLICIES,
    TRAIN_POLICIES,
    ModelPolicy,
    generate_step,
    train_step,
)

OBJECTIVES = HOST.registry.names("objective")
GENERATORS = HOST.registry.names("generator")
BATCH = 64
COMPILE = os.environ.get("GANZOO_BENCH_COMPILE") == "1"
TRAIN = TRAIN_POLICIES + ((COMPILED_TRAIN,) if COMPILE else ())
GENERATE = GENERATE_POLICIES + (COMPILED_GENERATE if COMPILE else ())


@pytest.mark.parametrize("mp", TRAIN, ids=lambda p: p.name)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", OBJECTIVES)
def test_train_iteration(benchmark, name: str, device: str, mp: ModelPolicy) -> None:
    iteration = train_step(name, mp, device, BATCH)
    benchmark.group = f"train {name} {device}"
    benchmark.extra_info.update(batch=BATCH, policy=mp.name)
    row = benchmark.pedantic(iteration, rounds=5, warmup_rounds=1)
    assert all(v == v for v in row.values()), row  # no NaN


@pytest.mark.parametrize("mp", GENERATE, ids=lambda p: p.name)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", GENERATORS)
def test_generate(benchmark, name: str, device: str, mp: ModelPolicy) -> None:
    generate = generate_step(name, mp, device, BATCH)
    benchmark.group = f"generate {name} {device}"
    benchmark.extra_info.update(batch=BATCH, policy=mp.name)
    out = benchmark.pedantic(generate, rounds=10, warmup_rounds=2)
    assert out.shape[0] == BATCH
