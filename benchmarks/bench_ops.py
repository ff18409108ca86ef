"""Every op implementation next to its reference, at the shapes of the model layers that use the op (forward and
backward). Parametrised over the op registry and ``shapes.toml`` (this repository's model layers, read with
``ganzoo_core.bench.read_bench_shapes``): a new op, implementation or shape gets its rows without new code.

    .venv/bin/python -m pytest benchmarks/bench_ops.py --benchmark-group-by=group

pytest-benchmark prints each group (op x shape x dtype) with the reference beside the candidates.
``ganzoo bench ops --shapes benchmarks/shapes.toml`` measures the same calls and prints the ratios.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import DEVICES, HOST

from ganzoo_core._plugins import use_host
from ganzoo_core.bench import DTYPES, BenchShape, op_step, read_bench_shapes
from ganzoo_core.ops import Case, available_impls

SHAPES_FILE = Path(__file__).with_name("shapes.toml")

with use_host(HOST):
    SHAPES = read_bench_shapes(SHAPES_FILE)
    CASES = [
        pytest.param(shape, impl, dt, device, id=f"{shape.op}-{shape.name}-{dt}-{device}-{impl}")
        for shape in SHAPES
        for dt in DTYPES
        for device in DEVICES
        for impl in available_impls(shape.op, device)
    ]


@pytest.mark.parametrize(("shape", "impl", "dtype", "device"), CASES)
def test_op(benchmark, shape: BenchShape, impl: str, dtype: str, device: str) -> None:
    from ganzoo_core.ops import get_op_spec

    spec = get_op_spec(shape.op)
    step = op_step(shape.op, impl, Case(dtype=DTYPES[dtype], device=device, shape=shape.name,
                                        variant=spec.variants[0], params=shape.params))
    benchmark.group = f"{shape.op} {shape.name} {dtype} {device}"
    benchmark.extra_info.update(op=shape.op, impl=impl, shape=shape.name, layer=shape.layer, dtype=dtype)

    def run() -> None:
        step()
        if device == "cuda":
            torch.cuda.synchronize()

    benchmark.pedantic(run, rounds=7, warmup_rounds=2)
