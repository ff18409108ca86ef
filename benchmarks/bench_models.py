"""Whole-model costs per registered entry: one training iteration of every objective (all its phases, optimizer
steps included) and generator throughput, under each policy of ``ganzoo_core.bench`` (eager fp32 on reference ops
first). Parametrised over the registry, so a new model gets its rows.

    .venv/bin/python -m pytest benchmarks/bench_models.py --benchmark-group-by=group

The ``torch.compile`` policies (a cold compile costs 15-25 s per graph on a small CPU) run only with
``GANZOO_BENCH_COMPILE=1``, as ``ganzoo bench models --compile`` adds them.

``test_baseline_train_iteration`` times each family's official training iteration (the plugins'
``ganzoo_bench_baselines``) beside ganzoo's engine on the same objective, at the baseline's documented batch size.
pytest-benchmark times those rows one after another; for ratios that hold on a loaded machine use ``ganzoo bench
models --model FAMILY --baseline official`` (interleaved rounds, paired ratios; see ``ganzoo_core.bench``).
"""

from __future__ import annotations

import functools
import os

import pytest
from conftest import DEVICES, HOST

from ganzoo_core._plugins import use_host
from ganzoo_core.bench import (
    COMPILED_GENERATE,
    COMPILED_TRAIN,
    GENERATE_POLICIES,
    TRAIN_POLICIES,
    Baseline,
    ModelPolicy,
    generate_step,
    list_baselines,
    phase_cycle,
    train_step,
)

OBJECTIVES = HOST.registry.names("objective")
GENERATORS = HOST.registry.names("generator")
BATCH = 64
COMPILE = os.environ.get("GANZOO_BENCH_COMPILE") == "1"
TRAIN = TRAIN_POLICIES + ((COMPILED_TRAIN,) if COMPILE else ())
GENERATE = GENERATE_POLICIES + (COMPILED_GENERATE if COMPILE else ())
with use_host(HOST):
    BASELINES = list_baselines()


@functools.cache
def _cycle(name: str) -> int:
    """Calls that make whole cycles of the baseline objective's phases (StarGAN: 5, its G every 5th D step)."""
    from ganzoo_core._api import create

    b = next(b for b in BASELINES if b.name == name)
    return phase_cycle(create("objective", b.objective, **dict(b.overrides)))


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


@pytest.mark.parametrize("mp", [None, *TRAIN], ids=lambda p: "official" if p is None else p.name)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("b", BASELINES, ids=lambda b: b.name)
def test_baseline_train_iteration(benchmark, b: Baseline, device: str, mp: ModelPolicy | None) -> None:
    n = b.batch_size
    step = b.train_step(n, device, 0) if mp is None else train_step(b.objective, mp, device, n, 0, b.overrides)
    benchmark.group = f"baseline {b.name} train {device}, batch {n}"
    benchmark.extra_info.update(batch=n, policy="official" if mp is None else mp.name, source=b.source)
    benchmark.pedantic(step, rounds=5, iterations=_cycle(b.name), warmup_rounds=1)
