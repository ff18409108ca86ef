"""FusedAdam: the fused Adam step on channels_last weights without copies, equal to torch's Adam."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.profiler import profile

from ganzoo_core.optim import FusedAdam, dense_order


def _net(channels_last: bool) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 4, 2, 1), nn.Flatten(),
                        nn.Linear(4 * 4 * 4, 2))
    return net.to(memory_format=torch.channels_last) if channels_last else net


def _train(net: nn.Module, opt: torch.optim.Optimizer, steps: int = 4) -> None:
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(5, 3, 8, 8, generator=gen).contiguous(memory_format=torch.channels_last)
        opt.zero_grad()
        net(x).square().mean().backward()
        opt.step()


@pytest.mark.parametrize("amsgrad", [False, True])
def test_fused_adam_on_channels_last_equals_torch_adam(amsgrad: bool) -> None:
    ours, ref = _net(True), _net(False)
    kwargs = {"lr": 1e-2, "betas": (0.5, 0.999), "weight_decay": 1e-3, "amsgrad": amsgrad}
    _train(ours, FusedAdam(ours.parameters(), **kwargs))
    _train(ref, torch.optim.Adam(ref.parameters(), fused=True, **kwargs))
    for (name, a), b in zip(ours.named_parameters(), ref.parameters()):
        assert torch.equal(a, b), name
        if a.ndim == 4:
            assert a.is_contiguous(memory_format=torch.channels_last) and not a.is_contiguous(), name


def test_fused_adam_copies_nothing_for_channels_last_weights() -> None:
    def clones(opt_cls: type, **kw: object) -> int:
        net = _net(True)
        opt = opt_cls(net.parameters(), lr=1e-3, **kw)
        _train(net, opt, 1)  # the moments exist now
        with profile() as p:
            _train(net, opt, 1)
        def in_adam(e: object) -> bool:
            while e is not None:
                if getattr(e, "name", "") == "aten::_fused_adam_":
                    return True
                e = getattr(e, "cpu_parent", None)
            return False

        return sum(1 for e in p.events() if e.name == "aten::clone" and in_adam(e))

    assert clones(torch.optim.Adam, fused=True) >= 2  # torch's copies each channels_last weight (and more)
    assert clones(FusedAdam) == 0


def test_dense_order() -> None:
    t = torch.empty(2, 3, 4, 5)
    assert dense_order(t) is None
    cl = t.contiguous(memory_format=torch.channels_last)
    assert dense_order(cl) == (0, 2, 3, 1) and cl.permute(0, 2, 3, 1).is_contiguous()
    assert dense_order(t[:, :, ::2]) is None  # gaps: no permutation makes it contiguous
