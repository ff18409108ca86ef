"""Every op implementation next to its reference, at the shapes of the model layers that use the op (forward and
backward). Parametrised over the op registry: a new op or implementation gets its rows without new code.

    .venv/bin/python -m pytest benchmarks/bench_ops.py --benchmark-group-by=group

pytest-benchmark prints each group (op x shape x dtype) with the reference beside the candidates. ``ganzoo bench ops``
measures the same calls and prints the ratios.
"""

from __future__ import annotations

import pytest
import torch
from conftest import DEVICES, HOST

from ganzoo_core._plugins import use_host
from ganzoo_core.bench import DTYPES, op_step
from ganzoo_core.ops import Case, available_impls, list_op_specs

with use_host(HOST):
    CASES = [
        pytest.param(spec.name, impl, shape, dt, device, id=f"{spec.name}-{shape}-{dt}-{device}-{impl}")
        for spec in list_op_specs()
        for shape in spec.shapes
        for dt in DTYPES
        for device in DEVICES
        for impl in available_impls(spec.name, device)
    ]


@pytest.mark.parametrize(("op", "impl", "shape", "dtype", "device"), CASES)
def test_op(benchmark, op: str, impl: str, shape: str, dtype: str, device: str) -> None:
    from ganzoo_core.ops import get_op_spec

    spec = get_op_spec(op)
    step = op_step(op, impl, Case(dtype=DTYPES[dtype], device=device, shape=shape, variant=spec.variants[0]))
    benchmark.group = f"{op} {shape} {dtype} {device}"
    benchmark.extra_info.update(op=op, impl=impl, shape=shape, layer=spec.shapes[shape], dtype=dtype)

    def run() -> None:
        step()
        if device == "cuda":
            torch.cuda.synchronize()

    benchmark.pedantic(run, rounds=7, warmup_rounds=2)
