"""The per-layer roofline (``ganzoo bench roofline``): which layer calls an iteration makes and with which gradients,
their FLOPs and bytes, and the ceiling the command reports from times measured side by side."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from ganzoo_core import bench, roofline
from ganzoo_core.cli import main


def _nets() -> tuple[nn.Module, nn.Module]:
    g = nn.Sequential(nn.Linear(8, 16 * 2 * 2), nn.Unflatten(1, (16, 2, 2)), nn.ConvTranspose2d(16, 4, 4, 2, 1))
    d = nn.Sequential(nn.Conv2d(4, 6, 3, 1, 1), nn.Flatten(), nn.Linear(6 * 4 * 4, 1))
    return g, d


def _iteration(g: nn.Module, d: nn.Module, batch: int = 3) -> Callable[[], None]:
    """A GAN-like iteration: D on real and fake (D's weights train), then G through a frozen D, then a no-grad
    sample."""
    z, real = torch.randn(batch, 8), torch.randn(batch, 4, 4, 4)

    def step() -> None:
        fake = g(z)
        (d(real).mean() - d(fake.detach()).mean()).backward()
        d.requires_grad_(False)
        d(fake).mean().backward()
        d.requires_grad_(True)
        with torch.no_grad():
            g(z)

    return step


def test_record_layers_finds_each_call_with_its_gradients_and_work() -> None:
    g, d = _nets()
    calls, modules = roofline.record_layers(_iteration(g, d), calls=2)
    found = {(c.layer, c.shape, c.input_grad, c.weight_grad): c for c in calls}
    conv_d = "Conv2d 4->6 k3 s1 p1"
    assert set(found) == {
        ("Linear 8->64", (3, 8), False, True),  # G's first layer: z needs no gradient
        ("ConvTranspose2d 16->4 k4 s2 p1", (3, 16, 2, 2), True, True),
        ("Linear 8->64", (3, 8), False, False),  # the no-grad sample: forward only
        ("ConvTranspose2d 16->4 k4 s2 p1", (3, 16, 2, 2), False, False),
        (conv_d, (3, 4, 4, 4), False, True),  # D on real and on the detached fake: weights only
        (conv_d, (3, 4, 4, 4), True, False),  # D frozen, on the fake: the input's gradient only
        ("Linear 96->1", (3, 96), True, True),
        ("Linear 96->1", (3, 96), True, False),
    }
    assert found[(conv_d, (3, 4, 4, 4), False, True)].calls == 4  # real and fake, two iterations
    assert found[(conv_d, (3, 4, 4, 4), True, False)].calls == 2
    c = found[(conv_d, (3, 4, 4, 4), False, True)]
    assert c.macs == 3 * 6 * 4 * 4 * (4 * 3 * 3) and c.params == 6 * 4 * 9 + 6 and c.out_numel == 3 * 6 * 4 * 4
    t = found[("ConvTranspose2d 16->4 k4 s2 p1", (3, 16, 2, 2), True, True)]
    assert t.macs == 3 * 16 * 2 * 2 * 4 * 16 and t.out_numel == 3 * 4 * 4 * 4
    assert roofline.flops(t) == 2 * t.macs * 3 and roofline.flops(c) == 2 * c.macs * 2
    assert set(modules) == {"Linear 8->64", "ConvTranspose2d 16->4 k4 s2 p1", conv_d, "Linear 96->1"}
    assert all(p.requires_grad for m in modules.values() for p in m.parameters())  # copies, not the frozen originals


def test_min_bytes_counts_what_each_pass_reads_and_writes() -> None:
    call = roofline.LayerCall(layer="x", shape=(2, 3), input_grad=False, weight_grad=False, calls=1, macs=1,
                              params=10, out_numel=4)
    assert roofline.min_bytes(call, 4) == (6 + 10 + 4) * 4  # forward: x, W, y
    both = roofline.LayerCall(layer="x", shape=(2, 3), input_grad=True, weight_grad=True, calls=1, macs=1,
                              params=10, out_numel=4)
    assert roofline.min_bytes(both, 2) == (6 + 10 + 4 + 4 + (6 + 10) + (6 + 10)) * 2


def test_layer_step_times_the_passes_the_call_needs() -> None:
    conv = nn.Conv2d(4, 6, 3, 1, 1)
    call = roofline.LayerCall(layer=roofline.describe(conv), shape=(2, 4, 5, 5), input_grad=True, weight_grad=False,
                              calls=1, macs=0, params=0, out_numel=0)
    for dtype, cl in ((torch.float32, False), (torch.bfloat16, True)):
        run = roofline.layer_step(conv, call, dtype, cl)
        m, x = run.module, run.input  # type: ignore[attr-defined]
        assert m.weight.dtype == dtype and x.dtype == dtype
        assert x.is_contiguous(memory_format=torch.channels_last) == cl and x.is_contiguous() == (not cl)
        assert x.requires_grad and not m.weight.requires_grad  # the input's gradient only, as the call
        grads: list[torch.Tensor] = []
        x.register_hook(grads.append)
        run()
        run()
        assert len(grads) == 2 and x.grad is None  # a backward per call; gradients dropped, same work every call
    # a copy runs: the original keeps its dtype, layout and (absent) gradients
    assert conv.weight.dtype == torch.float32 and conv.weight.is_contiguous() and conv.weight.grad is None


def test_ganzoo_layer_is_the_same_layer_on_the_conv_op_or_none() -> None:
    from ganzoo_core.ops.conv import Conv2d, ConvTranspose2d

    torch.manual_seed(0)
    x = torch.randn(2, 4, 6, 6)
    for layer, kind in ((nn.Conv2d(4, 6, 3, 2, 1), Conv2d), (nn.ConvTranspose2d(4, 6, 4, 2, 1, bias=False), ConvTranspose2d)):
        ours = roofline.ganzoo_layer(layer)
        assert type(ours) is kind and ours.impl == "auto"
        torch.testing.assert_close(ours(x), layer(x))
    assert roofline.ganzoo_layer(nn.Linear(3, 4)) is None
    assert roofline.ganzoo_layer(nn.Conv2d(4, 6, 3, padding=1, padding_mode="reflect")) is None
    assert roofline.ganzoo_layer(nn.Conv2d(4, 6, 3, groups=2)) is None


def _conv_baseline() -> bench.Baseline:
    def train(batch_size: int, device: str, seed: int) -> Callable[[], Any]:
        torch.manual_seed(seed)
        g, d = _nets()
        return _iteration(g, d, batch_size)

    def generate(batch_size: int, device: str, seed: int) -> Callable[[], Any]:
        g, _ = _nets()
        g.eval()
        z = torch.randn(batch_size, 8)
        return torch.no_grad()(lambda: g(z))

    return bench.Baseline(name="tiny.official", objective="dcgan.28", source="tiny/tiny@abc123 train.py",
                          batch_size=3, train_step=train, generate=generate)


def test_bench_roofline_reports_layers_totals_and_the_ceiling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(bench, "list_baselines", lambda: [_conv_baseline()])
    out = tmp_path / "roof"
    assert main(["bench", "roofline", "--model", "tiny", "--rounds", "2", "--warmup", "0", "--out", str(out),
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "tiny.official (dcgan.28, batch 3): per-layer roofline" in printed and "ceiling" in printed
    data = json.loads((out / "bench-roofline.json").read_text())
    (family,) = data["families"]
    rows, t = family["rows"], family["totals"]
    assert len(rows) == 8 and [r["fp32_ms"] for r in rows] == sorted((r["fp32_ms"] for r in rows), reverse=True)
    assert t["layers_fp32_ms"] == pytest.approx(sum(r["fp32_ms"] for r in rows), abs=0.005 * len(rows) + 1e-6)  # rows rounded
    assert t["layers_ratio"] == pytest.approx(t["layers_fp32_ms"] / t["layers_bf16_ms"])
    assert t["ceiling"] == pytest.approx(t["official_ms"] / t["layers_bf16_ms"])
    assert t["ceiling_torch"] == pytest.approx(t["official_ms"] / t["layers_bf16_torch_ms"])
    assert t["ceiling"] >= t["ceiling_torch"] * 0.99  # each layer's best of PyTorch's kernel and ganzoo's op
    for r in rows:  # ganzoo's conv op is timed for the convolutions, not for the linear layers
        assert (r["ops_ms"] is None) == r["layer"].startswith("Linear"), r
        assert r["best_bf16_ms"] == pytest.approx(min(r["bf16_ms"], r["ops_ms"] or math.inf), abs=0.011)
    assert t["official_ms"] > 0 and t["layers_share"] > 0
    assert math.isclose(t["gflop"], sum(r["gflop"] for r in rows), rel_tol=1e-2)
    assert family["peak_gflops"]["fp32"] > 0 and family["bandwidth_gbs"] > 0
    assert data["meta"]["suite"] == "roofline" and data["meta"]["cpu_model"]
    row = next(r for r in rows if r["layer"] == "Conv2d 4->6 k3 s1 p1" and r["grads"] == "fwd+dW")
    assert row["calls"] == 2 and row["input"] == [3, 4, 4, 4]
    # ganzoo's own iteration (dcgan.28, the objective the baseline names), bounded against the official time: its
    # G step freezes D, so D's layers there compute the input's gradient only
    ours = family["ganzoo_rows"]
    assert any(r["layer"].startswith("Conv2d") and r["grads"] == "fwd+dX" for r in ours), ours
    first = {r["grads"] for r in ours if r["layer"].startswith("Conv2d 1->")}  # D's first layer
    assert first == {"fwd+dW", "fwd+dX"}, ours  # D step: its weights; G step: the fake's gradient only
    assert t["ceiling_ganzoo"] == pytest.approx(t["official_ms"] / t["ganzoo_layers_bf16_ms"])
    assert math.isclose(t["ganzoo_gflop"], sum(r["gflop"] for r in ours), rel_tol=1e-2)
    assert "ceiling for ganzoo's policies" in printed
    gen = family["generate"]  # forward passes only: G's two layers
    assert sorted((r["layer"], r["grads"]) for r in gen["rows"]) == [("ConvTranspose2d 16->4 k4 s2 p1", "fwd"),
                                                                     ("Linear 8->64", "fwd")]
    assert gen["totals"]["ceiling"] == pytest.approx(gen["totals"]["official_ms"] / gen["totals"]["layers_bf16_ms"])
    assert "official generation" in printed
    assert main(["bench", "roofline", "--model", "tiny", "--out", str(out), "--quiet"]) == 2  # no overwrite
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "message"), [
    (["roofline"], "needs --model FAMILY (repeatable) or --all"),
    (["roofline", "--all", "--model", "dcgan"], "needs --model FAMILY (repeatable) or --all, not both"),
    (["roofline", "--model", "nosuch"], "no official baseline for 'nosuch'"),
])
def test_roofline_options_are_refused_before_measuring(args: list[str], message: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", *args, "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_call_whose_output_no_backward_reaches_is_a_forward() -> None:
    """StarGAN's D step runs G with gradients on and detaches the fake: G's layers there do no backward."""
    conv = nn.Conv2d(3, 4, 3)
    x = torch.randn(2, 3, 6, 6, requires_grad=True)

    def step() -> None:
        conv(x).detach()  # gradients on, output detached: no backward reaches it
        conv(x).sum().backward()

    calls, _ = roofline.record_layers(step)
    assert sorted((c.input_grad, c.weight_grad, c.calls) for c in calls) == [(False, False, 1), (True, True, 1)]


def test_layers_that_differ_in_bias_groups_or_output_padding_are_timed_apart() -> None:
    convs = [nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1, bias=False),
             nn.Conv2d(4, 4, 3, padding=1, groups=2), nn.ConvTranspose2d(4, 4, 3, 2, 1, output_padding=1)]
    names = [roofline.describe(c) for c in convs]
    assert names == ["Conv2d 4->4 k3 s1 p1", "Conv2d 4->4 k3 s1 p1 no bias", "Conv2d 4->4 k3 s1 p1 g2",
                     "ConvTranspose2d 4->4 k3 s2 p1 op1"]
    x = torch.randn(2, 4, 5, 5)
    _, modules = roofline.record_layers(lambda: [c(x) for c in convs])
    assert set(modules) == set(names)
    assert modules[names[1]].bias is None and modules[names[0]].bias is not None  # each timed as it is
