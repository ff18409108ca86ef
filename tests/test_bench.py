"""``ganzoo bench``: the table, JSON and chart it writes, the choice it stores for ``impl="auto"``, and the model
steps it times. Sizes are the smallest real ones (one op shape, one repeat): these tests check what the command
produces, not speed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import REPO

from ganzoo_core import bench
from ganzoo_core.cli import main
from ganzoo_core.errors import ConfigError, GanzooError
from ganzoo_core.ops import Case, get_op_spec, list_op_specs
from ganzoo_core.ops._dispatch import measured_choice

SHAPES_FILE = REPO / "benchmarks" / "shapes.toml"


def _row(op: str, name: str, ratio: float, shape: str = "s1") -> bench.Row:
    return bench.Row(suite="ops", group=f"{op} {shape} fp32", name=name, ms=1.0 / ratio, spread=0.0, ratio=ratio,
                     extra={"op": op, "device": "cpu", "shape": shape, "dtype": "fp32"})


def test_choice_is_the_best_geometric_mean_and_needs_a_real_gain() -> None:
    rows = [_row("a", "ref", 1.0), _row("a", "fast", 2.0), _row("a", "fast", 0.6, "s2"),
            _row("a", "other", 1.2), _row("a", "other", 1.2, "s2"),
            _row("b", "ref", 1.0), _row("b", "meh", 1.02)]
    choices, measured = bench.choose_impls(rows)
    assert choices == {"a/cpu": "other", "b/cpu": "ref"}  # fast: sqrt(2·0.6) = 1.10 < 1.2; meh < 1.05
    assert measured["a/cpu"]["fast"] == pytest.approx((2.0 * 0.6) ** 0.5, abs=1e-3)


def test_bench_ops_prints_ratios_saves_json_and_chart_and_writes_the_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "impls.json"
    monkeypatch.setenv("GANZOO_IMPL_CACHE", str(cache))
    out = tmp_path / "bench"
    rc = main(["bench", "ops", "--op", "bias_act", "--shapes", str(SHAPES_FILE), "--shape", "dcgan64.d1", "--dtype",
               "fp32", "--impl", "fused", "--repeat", "2", "--warmup", "1", "--out", str(out), "--write-cache",
               "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "bias_act dcgan64.d1 fp32" in printed and "x ref" in printed  # the groups earlier results have
    data = json.loads((out / "bench-ops.json").read_text())
    rows = data["rows"]
    assert [r["name"] for r in rows] == ["ref", "fused"]
    assert rows[0]["extra"]["layer"].startswith("DCGAN-64 D, first conv")
    assert rows[0]["ratio"] == 1.0 and rows[1]["ratio"] == pytest.approx(rows[0]["ms"] / rows[1]["ms"])
    assert data["meta"]["torch_version"] == torch.__version__ and data["meta"]["suite"] == "ops"
    assert (out / "bench-ops.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stored = json.loads(cache.read_text())["choices"]["bias_act/cpu"]
    expected = "fused" if rows[1]["ratio"] >= 1.05 else "ref"
    assert stored["impl"] == expected
    assert measured_choice("bias_act", "cpu") == expected  # what impl="auto" now reads


def test_bench_rejects_unknown_ops_and_cache_from_the_models_suite(capsys: pytest.CaptureFixture[str],
                                                                   tmp_path: Path) -> None:
    assert main(["bench", "ops", "--op", "bias_akt", "--out", str(tmp_path)]) == 2
    assert "unknown op(s) 'bias_akt'" in capsys.readouterr().err
    assert main(["bench", "models", "--model", "dcgan.28", "--write-cache", "--out", str(tmp_path)]) == 2
    assert "--write-cache needs the ops suite" in capsys.readouterr().err
    assert main(["bench", "models", "--out", str(tmp_path)]) == 2
    assert "'ganzoo bench models' needs --model NAME" in capsys.readouterr().err
    assert main(["bench", "models", "--model", "dcgan.28", "--shapes", str(SHAPES_FILE), "--out", str(tmp_path)]) == 2
    assert "--shapes applies to the ops suite" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # refused before measuring or writing anything


def test_the_ops_own_shapes_are_generic_and_the_shapes_file_has_the_model_layers() -> None:
    """Core carries generic benchmark shapes; the model layers (same names as before they left the core) are in
    benchmarks/shapes.toml, and each builds inputs through the op's own sample function."""
    shapes = bench.read_bench_shapes(SHAPES_FILE)
    assert {(s.op, s.name) for s in shapes} >= {("bias_act", "dcgan64.d1"), ("norm_act", "cyclegan.res"),
                                                 ("upsample_conv", "stackgan2.up1"), ("conv_bn", "dcgan64.g4"),
                                                 ("gradient_penalty", "stargan.d128")}
    for spec in list_op_specs():
        assert spec.shapes and spec.shape_type is not None, spec.name  # `ganzoo bench ops` works without a file
    small = {s.op: s for s in shapes if s.name in ("dcgan64.g2", "cyclegan.res", "stackgan1.up1")}
    for op, shape in small.items():
        case = Case(shape=shape.name, params=shape.params, variant=get_op_spec(op).variants[0],
                          requires_grad=False)
        args, _ = get_op_spec(op).sample(case, torch.Generator().manual_seed(0))
        x_shape = tuple(args[0].shape)
        expected = {"conv_bn": (64, 512, 4, 4), "norm_act": (1, 256, 64, 64), "bias_act": (1, 256, 64, 64),
                    "upsample_conv": (64, 1024, 4, 4)}[op]
        assert x_shape == expected, (op, x_shape)


@pytest.mark.parametrize(("text", "says"), [
    ('[bias_akt."a"]\nx = [1, 2]\n', "no op 'bias_akt'; did you mean 'bias_act'?"),
    ('[bias_act."a"]\nx = [1, 2]\nactt = "relu"\n', "[bias_act.'a']: unknown key 'actt'; did you mean 'act'?"),
    ('[bias_act."a"]\nact = "relu"\n', "[bias_act.'a']: missing key(s) x"),
    ('[bias_act."a"]\nx = [1, 0]\n', "x must be a list of positive integers, got [1, 0]"),
    ('[bias_act."a"]\nx = [2, 2]\nbias = "yes"\n', "option 'bias' must be bool, got 'yes'"),
    ('[bias_act."a"]\nx = [2, 2]\nact = "swish"\n', "'act' must be in"),
    ('[norm_act."a"]\nx = [2, 2, 3]\nvariant = "batch-train"\n', "variant must be '' or KIND-MODE-ACT"),
    ('[upsample_conv."a"]\nx = [2, 2, 3]\nout_channels = 2\n', "x must have 4 sizes, got [2, 2, 3]"),
    ('[conv_bn."a"]\nbatch = 1\nin_channels = 2\nout_channels = 2\nsize = 4.5\n', "'size' must be int"),
    ('[gradient_penalty]\nx = 1\n', "[gradient_penalty.'x'] must be a table"),
    ("[bias_act\n", "not a valid TOML file"),
], ids=lambda v: v.split("\n")[0][:40] if "\n" in v else "")
def test_a_bad_shapes_file_is_one_line_naming_file_op_and_shape(text: str, says: str, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "shapes.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        bench.read_bench_shapes(path)
    assert says in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)
    assert main(["bench", "ops", "--shapes", str(path), "--out", str(tmp_path / "out")]) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before measuring


def _exit_code(argv: list[str]) -> int:
    """``main(argv)``'s exit status, whether a usage error returns it or raises SystemExit as argparse does."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


@pytest.mark.parametrize(("args", "message"), [
    (["--dtype", "fp64"], "argument --dtype: unknown dtype(s) fp64; choose from fp32, bf16"),
    (["--dtype", "fp32,fp16"], "unknown dtype(s) fp16"),
    (["--dtype", ","], "unknown dtype(s) ','"),
    (["--repeat", "0"], "argument --repeat: expected an integer >= 1, got '0'"),
    (["--warmup", "-1"], "argument --warmup: expected an integer >= 0, got '-1'"),
    (["--threads", "0"], "argument --threads: expected an integer from 1 to 4096, got '0'"),
    (["--batch-size", "-4"], "argument --batch-size: expected an integer >= 1, got '-4'"),
])
def test_bench_refuses_bad_arguments_before_measuring(args: list[str], message: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_code(["bench", "ops", "--out", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_bench_api_refuses_what_the_command_refuses() -> None:
    with pytest.raises(GanzooError, match="unknown dtype"):
        bench.bench_ops(["bias_act"], dtypes=["fp64"])
    with pytest.raises(GanzooError, match="repeat must be at least 1"):
        bench.time_call(lambda: None, torch.device("cpu"), repeat=0)


@pytest.mark.parametrize("mp", [bench.TRAIN_POLICIES[0], bench.TRAIN_POLICIES[-1]], ids=lambda p: p.name)
def test_train_step_is_a_real_iteration(mp: bench.ModelPolicy) -> None:
    """Every timed call steps the optimizers: on the same batch and noise, the losses move from call to call."""
    step = bench.train_step("dcgan.28", mp, "cpu", batch_size=8)
    rows = [step() for _ in range(3)]
    assert {"loss_D", "loss_G"} <= set(rows[0]) and all(v == v for r in rows for v in r.values())
    for key in ("loss_D", "loss_G"):
        assert len({r[key] for r in rows}) == 3, (key, rows)


def test_generate_step_folded_matches_the_reference_ops() -> None:
    ref = bench.generate_step("dcgan.28", bench.GENERATE_POLICIES[0], "cpu", batch_size=4)()
    fast = bench.generate_step("dcgan.28", bench.ModelPolicy(name="folded", fold=True), "cpu", batch_size=4)()
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-4)


def test_inference_graph_generates_what_the_eager_generator_does() -> None:
    """Folded BN, bf16 weights, compiled with the weights frozen: the same images to bf16 precision."""
    pytest.importorskip("torch._inductor")
    from ganzoo_core.ops._common import compile_requires

    if (why := compile_requires("cpu")) is not None:
        pytest.skip(why)
    ref = bench.generate_step("dcgan.28", bench.GENERATE_POLICIES[0], "cpu", batch_size=4)()
    got = bench.generate_step("dcgan.28", bench.COMPILED_GENERATE[-1], "cpu", batch_size=4)()
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), ref, rtol=0.05, atol=0.03)


def test_onnxruntime_rows_are_timed_beside_pytorch_and_generate_the_reference_images() -> None:
    """The generation group gains ONNX Runtime rows (the generator's exported ONNX graph): timed like the others,
    with a ratio against the same reference row, and the images they time are the reference generation's."""
    for name in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(name, reason=f"the onnxruntime rows need {name}: pip install 'ganzoo-core[onnx]'")
    ref = bench.generate_step("dcgan.28", bench.GENERATE_POLICIES[0], "cpu", batch_size=4)()
    for mp in bench.ORT_GENERATE:
        got = bench.generate_step("dcgan.28", mp, "cpu", batch_size=4)()
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
    rows = bench.bench_models([], ["dcgan.28"], batch_size=4, repeat=1, warmup=0)
    by_name = {r.name: r for r in rows}
    assert [r.name for r in rows] == [mp.name for mp in bench.GENERATE_POLICIES + bench.ORT_GENERATE]
    base = rows[0].ms
    for mp in bench.ORT_GENERATE:
        row = by_name[mp.name]
        assert row.group == "dcgan.28 generate" and row.ms > 0
        assert row.ratio == pytest.approx(base / row.ms)
    assert "onnxruntime fp32" in bench.format_table(rows)


def test_without_onnxruntime_the_rows_are_left_out_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    from ganzoo_core import export

    monkeypatch.setattr(export, "onnx_missing",
                        lambda: "ONNX export needs onnxruntime, which is not installed: pip install 'ganzoo-core[onnx]'")
    lines: list[str] = []
    rows = bench.bench_models([], ["dcgan.28"], batch_size=2, repeat=1, warmup=0, log=lines.append)
    assert [r.name for r in rows] == [mp.name for mp in bench.GENERATE_POLICIES]
    assert lines[0] == ("no onnxruntime rows: ONNX export needs onnxruntime, which is not installed: "
                        "pip install 'ganzoo-core[onnx]'")
    assert bench.ort_note("cuda") is not None and "CPU" in bench.ort_note("cuda")
