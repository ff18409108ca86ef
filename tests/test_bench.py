"""``ganzoo bench``: the table, JSON and chart it writes, the choice it stores for ``impl="auto"``, and the model
steps it times. Sizes are the smallest real ones (one op shape, one repeat): these tests check what the command
produces, not speed."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import REPO

import ganzoo_core as gz
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
    base = rows[0].extra["round_ms"]
    for mp in bench.ORT_GENERATE:
        row = by_name[mp.name]
        assert row.group == "dcgan.28 generate" and row.ms > 0
        paired = statistics.median(b / m for b, m in zip(base, row.extra["round_ms"]))  # same round, same load
        assert row.ratio == pytest.approx(paired, rel=1e-3)
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


# -- interleaved timing and official baselines -------------------------------------------------------------------


def test_rounds_interleave_the_rows_in_a_rotated_order() -> None:
    """Each round runs every row for its calls, one row after another; the next round starts one row later, so
    every row leads once and no row always follows the same one. Warmup runs first, a sample spans ``cycle``
    calls."""
    log: list[int] = []
    fns = [lambda i=i: log.append(i) for i in range(3)]
    samples = bench.time_interleaved(fns, "cpu", rounds=3, calls=2, warmup=1, cycle=2)
    warm, timed = log[:6], log[6:]
    assert warm == [0, 0, 1, 1, 2, 2]
    per_round = [timed[r * 12:(r + 1) * 12] for r in range(3)]
    assert [[run[k] for k in range(0, 12, 4)] for run in per_round] == [[0, 1, 2], [1, 2, 0], [2, 0, 1]]
    assert all(run[k:k + 4] == [run[k]] * 4 for run in per_round for k in range(0, 12, 4))  # 2 samples x 2 calls
    assert [len(s) for row in samples for s in row] == [2] * 9
    assert bench.interleaved_order(3, 4)[3] == [0, 1, 2]


def test_min_seconds_adds_rounds_until_the_timed_calls_reach_it_up_to_the_cap() -> None:
    """Two rows of 1 s per call on a fake clock: 2 rounds (4 s) then a third, as 5 s are asked for; a budget no
    group reaches stops at MAX_ROUNDS; every row has a sample in every round."""
    clock = [0.0]

    def call() -> None:
        clock[0] += 1.0

    def rounds(**kw: Any) -> list[int]:
        samples = bench.time_interleaved([call, call], "cpu", rounds=2, calls=1, warmup=0, timer=lambda: clock[0], **kw)
        return [len(row) for row in samples]

    assert rounds() == [2, 2]
    assert rounds(min_seconds=5) == [3, 3]
    assert rounds(min_seconds=1e9) == [bench.MAX_ROUNDS] * 2
    with pytest.raises(GanzooError, match="min_seconds=-1"):
        rounds(min_seconds=-1)


def test_ratios_are_medians_of_per_round_ratios_on_a_fake_clock() -> None:
    """Load that moves between rounds moves both rows of a round: the paired ratio keeps B at 2x A's speed where
    the ratio of the medians (12 / 7) would not."""
    clock = [0.0]
    durations = {"A": [0.010, 0.030, 0.012], "B": [0.005, 0.014, 0.007]}  # seconds per call, by round

    def row(name: str) -> Callable[[], None]:
        left = iter(durations[name])
        return lambda: clock.__setitem__(0, clock[0] + next(left))

    samples = bench.time_interleaved([row("A"), row("B")], "cpu", rounds=3, calls=1, warmup=0,
                                     timer=lambda: clock[0])
    a, b = bench.interleaved_rows("models", "g", [("A", samples[0], {}), ("B", samples[1], {"k": 1})])
    assert a.ratio == 1.0 and a.ms == pytest.approx(12.0)
    assert b.ms == pytest.approx(7.0) and b.spread == pytest.approx((14 - 5) / 7)
    assert b.ratio == pytest.approx(2.0) and b.ratio != pytest.approx(a.ms / b.ms)
    assert b.extra["round_ms"] == pytest.approx([5.0, 14.0, 7.0]) and b.extra["k"] == 1 and b.extra["rounds"] == 3


def test_the_ratio_of_minima_is_recorded_beside_the_paired_median() -> None:
    """The load-free estimate: the reference's fastest call over the row's, whatever round each came from."""
    timed = [("A", [[10.0, 30.0], [12.0, 11.0]], {}), ("B", [[5.0, 9.0], [4.0, 20.0]], {})]
    a, b = bench.interleaved_rows("models", "g", timed)
    assert a.extra["ratio_of_minima"] == 1.0 and b.extra["ratio_of_minima"] == pytest.approx(10.0 / 4.0)
    assert b.ratio == pytest.approx(statistics.median([20.0 / 7.0, 11.5 / 12.0]))


def test_generation_rows_are_checked_against_the_reference_output_and_the_fastest_match_is_marked() -> None:
    """Every generation row's output is compared with the reference row's, with the RNG seeded alike (a generator
    that draws noise in its forward then draws the same); a row computing something else is not a candidate, even
    when it is the fastest."""
    weights = torch.randn(4, 4)

    def row(scale: float, noise: bool = True) -> Callable[[], torch.Tensor]:
        return lambda: (torch.randn(8, 4) if noise else torch.zeros(8, 4)) @ weights * scale

    cases = [bench._Case(name="official", build=lambda: None, extra={"official": True}),
             bench._Case(name="ref", build=lambda: None, reference=True),
             bench._Case(name="close", build=lambda: None), bench._Case(name="wrong", build=lambda: None),
             bench._Case(name="no noise", build=lambda: None)]
    checks = bench.output_parity(cases, [row(2.0), row(1.0), row(1.01), row(1.5), row(1.0, noise=False)])
    assert checks[0] == {} and checks[1] == {"rel_diff": 0.0, "matches_reference": True}
    assert checks[2]["rel_diff"] == pytest.approx(0.01, rel=1e-4) and checks[2]["matches_reference"]  # fp32 outputs
    assert checks[3]["rel_diff"] == pytest.approx(0.5, rel=1e-5) and not checks[3]["matches_reference"]
    assert checks[4]["rel_diff"] == pytest.approx(1.0) and not checks[4]["matches_reference"]
    rows = [bench.Row(suite="models", group="g", name=c.name, ms=1.0, spread=0.0, ratio=ratio, extra=dict(check))
            for c, check, ratio in zip(cases, checks, (1.0, 1.1, 1.8, 3.0, 4.0))]
    marked = bench.mark_fastest_matching(rows)
    assert [r.name for r in marked if r.extra.get("fastest_matching")] == ["close"]
    table = bench.format_table(marked)
    assert "close *" in table and "out diff" in table and "50.00%" in table


def test_summary_keeps_the_reference_and_the_fastest_policies_and_compile_can_add_generation_only() -> None:
    train, generate = bench._policies(False, False, "cpu", None, True, summary=True)
    assert [p.name for p in train] == [bench.TRAIN_POLICIES[i].name for i in (0, 4, 5)]
    assert [p.name for p in generate] == [bench.GENERATE_POLICIES[i].name for i in (0, 2)]
    train, generate = bench._policies("generate", False, "cpu", None, True)
    assert train == bench.TRAIN_POLICIES and generate == bench.GENERATE_POLICIES + bench.COMPILED_GENERATE
    assert bench._policies(True, False, "cpu", None, True)[0] == bench.TRAIN_POLICIES + (bench.COMPILED_TRAIN,)
    with pytest.raises(GanzooError, match="compile='fast': expected one of none, generate, all"):
        bench._policies("fast", False, "cpu", None, True)


def test_a_generator_drawing_noise_matches_in_every_pytorch_row_and_in_onnx_runtime() -> None:
    """StackGAN's conditioning augmentation draws noise in its forward: the eager, folded and (when inductor runs
    here) compiled rows draw the same from the same seed, and ONNX Runtime's row, whose noise is a graph input, is
    compared with the eager network on those inputs."""
    pytest.importorskip("ganzoo_stackgan")
    from ganzoo_core.ops._common import compile_requires

    policies = [bench.GENERATE_POLICIES[0], bench.GENERATE_POLICIES[2]]
    if compile_requires("cpu") is None:
        policies.append(bench.COMPILED_GENERATE[1])
    if bench.ort_note("cpu") is None:
        policies.append(bench.ORT_GENERATE[1])
    cases = [bench._Case(name=mp.name, build=lambda: None, reference=i == 0) for i, mp in enumerate(policies)]
    fns = [bench.generate_step("stackgan.s1_64", mp, "cpu", batch_size=2) for mp in policies]
    checks = bench.output_parity(cases, fns)
    assert all(c["matches_reference"] for c in checks), checks
    torch.manual_seed(1)
    first = bench._first(fns[0]())
    torch.manual_seed(2)
    assert bench.relative_difference(bench._first(fns[0]()), first) > 0.1  # the noise does matter: other seed, other images


def test_two_runs_compare_row_by_row_for_each_estimator(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import runpy

    def row(name: str, ratio: float, minima: float, group: str = "g") -> dict[str, Any]:
        return {"group": group, "name": name, "ratio": ratio, "extra": {"ratio_of_minima": minima}}

    a = [row("official", 1.0, 1.0), row("fast", 2.0, 2.2), row("only in a", 3.0, 3.0)]
    b = [row("official", 1.0, 1.0), row("fast", 2.2, 2.2), row("only in b", 3.0, 3.0)]
    (entry,) = bench.compare_runs(a, b)
    assert entry["name"] == "fast" and entry["ratio"]["change"] == pytest.approx(0.1)
    assert entry["ratio_of_minima"]["change"] == pytest.approx(0.0)
    for name, rows in (("a.json", a), ("b.json", b)):
        (tmp_path / name).write_text(json.dumps({"meta": {}, "rows": rows}))
    script = runpy.run_path(str(REPO / "scripts" / "compare_bench.py"))
    assert script["main"]([str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    printed = capsys.readouterr().out
    assert "g: fast" in printed and "+10.0%" in printed and "ratio: largest change 10.0%" in printed
    (tmp_path / "c.json").write_text("[]")
    assert script["main"]([str(tmp_path / "a.json"), str(tmp_path / "c.json")]) == 2
    assert "not a ganzoo bench JSON" in capsys.readouterr().err


def test_train_step_runs_the_phases_due_and_reports_its_cycle() -> None:
    """StarGAN's G runs every 5th D step: successive calls are engine steps, and the core times whole cycles."""
    step = bench.train_step("stargan.tiny32", bench.TRAIN_POLICIES[0], "cpu", batch_size=2)
    assert step.cycle == 5  # type: ignore[attr-defined]
    rows = [step() for _ in range(5)]
    assert ["loss_G" in r for r in rows] == [False, False, False, False, True]


def _fake_baseline(name: str = "tiny", batch: int = 2, calls: list[tuple[Any, ...]] | None = None,
                   overrides: dict[str, Any] | None = None) -> bench.Baseline:
    """A baseline whose "official" iteration is a small Adam step, beside ganzoo's dcgan.28."""

    def train(batch_size: int, device: str, seed: int) -> Callable[[], Any]:
        if calls is not None:
            calls.append(("train", batch_size, device, seed))
        net = torch.nn.Linear(4, 4)
        opt = torch.optim.Adam(net.parameters())
        x = torch.randn(batch_size, 4)

        def iteration() -> torch.Tensor:
            if calls is not None:
                calls.append(("iteration",))
            opt.zero_grad()
            loss = net(x).square().mean()
            loss.backward()
            opt.step()
            return loss.detach()

        return iteration

    def generate(batch_size: int, device: str, seed: int) -> Callable[[], torch.Tensor]:
        return lambda: torch.zeros(batch_size, 1, 28, 28)

    return bench.Baseline(name=f"{name}.official", objective="dcgan.28", source=f"tiny/{name}@abc123 train.py",
                          batch_size=batch, train_step=train, generate=generate, note="a test",
                          overrides=overrides or {})


def test_bench_models_baseline_official_puts_the_official_iteration_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A baseline from a plugin's ganzoo_bench_baselines hook, found by its family name: its iteration is timed
    first (ratio 1.00), then ganzoo's engine under each policy, for training and generation."""
    import sys
    import types

    from ganzoo_core._plugins import PluginHost, use_host

    calls: list[tuple[Any, ...]] = []
    module = types.ModuleType("ganzoo_test_bench_baseline")
    module.GANZOO_API_VERSION = "1.1"  # type: ignore[attr-defined]
    module.ganzoo_bench_baselines = gz.hookimpl(lambda: [_fake_baseline(calls=calls)])  # type: ignore[attr-defined]
    host = PluginHost()
    host.load_defaults()
    assert host.load_module("ganzoo_dcgan"), host.failures
    monkeypatch.setitem(sys.modules, module.__name__, module)
    assert host.load_module(module.__name__), host.failures
    monkeypatch.setattr(bench, "ort_note", lambda device: "no onnxruntime rows: left out in this test")
    out = tmp_path / "bench"
    with use_host(host):
        assert [b.name for b in bench.list_baselines()] == ["dcgan.official", "tiny.official"]
        rc = main(["bench", "models", "--model", "tiny", "--baseline", "official", "--rounds", "2", "--repeat", "1",
                   "--warmup", "0", "--out", str(out), "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    official = "official fp32 eager (tiny/tiny@abc123)"
    assert "dcgan.28 train step, batch 2" in printed and "dcgan.28 generate, batch 2" in printed
    assert "machine: " in printed and "GFLOP/s" in printed
    data = json.loads((out / "bench-models.json").read_text())
    train = [r for r in data["rows"] if r["group"] == "dcgan.28 train step, batch 2"]
    assert [r["name"] for r in train] == [official] + [mp.name for mp in bench.TRAIN_POLICIES]
    assert train[0]["ratio"] == 1.0 and train[0]["extra"]["official"] and train[0]["extra"]["source"].startswith("tiny/")
    assert all(r["extra"]["rounds"] == 2 and r["extra"]["batch"] == 2 for r in train)
    gen = [r for r in data["rows"] if r["group"] == "dcgan.28 generate, batch 2"]
    assert gen[0]["name"] == "official fp32 eager generation (tiny/tiny@abc123)"
    assert [r["name"] for r in gen[1:]] == [mp.name for mp in bench.GENERATE_POLICIES]
    assert calls[0] == ("train", 2, "cpu", 0) and calls.count(("iteration",)) == 2  # 2 rounds x 1 call, no warmup
    assert data["meta"]["timing"]["rounds"] == 2


def test_bench_models_all_writes_one_json_and_chart_with_the_machine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    found = [_fake_baseline("one", batch=2), _fake_baseline("two", batch=3, overrides={"generator": "dcgan.28"})]
    monkeypatch.setattr(bench, "list_baselines", lambda: found)
    monkeypatch.setattr(bench, "ort_note", lambda device: "no onnxruntime rows: left out in this test")
    out = tmp_path / "all"
    assert main(["bench", "models", "--all", "--baseline", "official", "--rounds", "1", "--repeat", "1",
                 "--warmup", "0", "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["bench-models.json", "bench-models.png"]
    data = json.loads((out / "bench-models.json").read_text())
    groups = list(dict.fromkeys(r["group"] for r in data["rows"]))
    assert groups == ["dcgan.28 train step, batch 2", "dcgan.28 generate, batch 2",
                      "dcgan.28 (generator=dcgan.28) train step, batch 3",  # what it builds, overrides named
                      "dcgan.28 generate, batch 3"]  # each at its documented size
    assert {r["extra"]["baseline"] for r in data["rows"]} == {"one.official", "two.official"}
    meta = data["meta"]
    assert meta["cpu_model"] and set(meta["cpu_flags"]) == set(bench.CPU_FLAGS)
    assert {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"} <= set(meta["cpu_flags"])
    assert meta["matmul_gflops"]["fp32"] > 0 and meta["matmul_gflops"]["bf16"] > 0 and meta["matmul_gflops"]["n"] == 1024
    assert meta["threads"] == torch.get_num_threads() and len(meta["loadavg_before"]) == 3
    assert len(meta["loadavg_after"]) == 3 and meta["suite"] == "models"


@pytest.mark.parametrize(("args", "message"), [
    (["models", "--model", "nosuch", "--baseline", "official"], "no official baseline for 'nosuch'"),
    (["models", "--all", "--model", "dcgan.28"], "--all runs every family that has a baseline"),
    (["models", "--model", "dcgan", "--baseline", "official", "--generator", "dcgan.64"],
     "--generator applies without --baseline and --all"),
    (["ops", "--baseline", "official"], "--baseline applies to the models suite"),
    (["ops", "--all"], "--all applies to the models suite"),
])
def test_baseline_options_are_refused_before_measuring(args: list[str], message: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", *args, "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_find_baseline_by_name_family_or_objective() -> None:
    found = [_fake_baseline("one"), bench.Baseline(name="dcgan.official", objective="dcgan.64", source="x@y f",
                                                   batch_size=64, train_step=lambda b, d, s: lambda: None)]
    for name in ("dcgan.official", "dcgan", "dcgan.64"):
        assert bench.find_baseline(name, found).name == "dcgan.official"
    assert bench.find_baseline("one", found).name == "one.official"
    with pytest.raises(GanzooError, match=r"no official baseline for 'dcgan\.32'; baselines: one\.official"):
        bench.find_baseline("dcgan.32", found)


def test_objective_generator_is_the_network_the_objective_trains() -> None:
    assert bench.objective_generator("dcgan.64") == ("dcgan.64", {})
    assert bench.objective_generator("cyclegan.small32", {"generator_kwargs": {"ngf": 8}}) == (
        "cyclegan.small32", {"ngf": 8})
