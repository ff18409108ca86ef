"""norm_act beyond the generated parity tests: running statistics, and the module with BatchNorm2d's names."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganzoo_core.ops import BatchNormAct2d, list_ops, norm_act

IMPLS = [i for i in list_ops("norm_act")["norm_act"] if i != "compiled"]


@pytest.fixture(autouse=True)
def _triton_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    if not torch.cuda.is_available():
        monkeypatch.setenv("TRITON_INTERPRET", "1")


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", ["batch", "instance"])
def test_running_statistics_update_as_torch_does(impl: str, kind: str) -> None:
    if impl == "triton":
        pytest.importorskip("triton")
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 6) * 2 + 1
    rm_ref, rv_ref = torch.randn(3) * 0.1, torch.rand(3) + 0.5
    rm, rv = rm_ref.clone(), rv_ref.clone()
    w, b = torch.rand(3) + 0.5, torch.randn(3)
    if kind == "batch":
        expected = torch.relu(nn.functional.batch_norm(x, rm_ref, rv_ref, w, b, True, 0.3, 1e-5))
    else:
        expected = torch.relu(nn.functional.instance_norm(x, rm_ref, rv_ref, w, b, True, 0.3, 1e-5))
    got = norm_act(x, w, b, rm, rv, kind=kind, training=True, momentum=0.3, act="relu", impl=impl)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(rm, rm_ref)
    torch.testing.assert_close(rv, rv_ref)


def test_module_keeps_batchnorm_names_and_matches_bn_then_activation() -> None:
    torch.manual_seed(1)
    plain = nn.Sequential(nn.BatchNorm2d(8), nn.LeakyReLU(0.2))
    fused = BatchNormAct2d(8, act="lrelu", alpha=0.2)
    assert set(fused.state_dict()) == {k.removeprefix("0.") for k in plain.state_dict()}
    fused.load_state_dict({k.removeprefix("0."): v for k, v in plain.state_dict().items()})
    for mode in (True, True, False):
        plain.train(mode), fused.train(mode)
        x = torch.randn(4, 8, 6, 6)
        torch.testing.assert_close(fused(x), plain(x), rtol=1e-5, atol=1e-6)
    for key, value in plain[0].state_dict().items():
        torch.testing.assert_close(fused.state_dict()[key], value, msg=key)


def test_bad_arguments_are_named() -> None:
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"weight has shape \(4,\), expected \(3,\)"):
        norm_act(x, torch.ones(4), None, None, None)
    with pytest.raises(ValueError, match="eval mode needs running statistics"):
        norm_act(x, None, None, None, None, training=False)
    with pytest.raises(KeyError, match="'layer'"):
        norm_act(x, None, None, None, None, kind="layer")
