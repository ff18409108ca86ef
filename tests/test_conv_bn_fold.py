"""``fold_batchnorm``: a network with every (conv, BatchNorm2d) pair folded gives the same eval output, refuses a
module in training mode, and leaves the original untouched."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from ganzoo_core.errors import GanzooError
from ganzoo_core.ops import conv_bn, fold_batchnorm


def _dcgan_generator(nz: int = 16, ngf: int = 8) -> nn.Sequential:
    """DCGAN-64-like G: ConvTranspose2d / BatchNorm2d / ReLU blocks to 64x64, then Tanh."""
    return nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
        nn.ConvTranspose2d(ngf, 3, 4, 2, 1, bias=False), nn.Tanh(),
    )


def _trained_looking(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random affine parameters and running statistics far from the defaults (mean 0, var 1, gamma 1, beta 0)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=gen) * 2 + 0.1)
                m.weight.copy_(1 + 0.3 * torch.randn(n, generator=gen))
                m.bias.copy_(0.2 * torch.randn(n, generator=gen))
    return module.eval()


def _state(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_fold_dcgan_generator_same_output() -> None:
    torch.manual_seed(0)
    g = _trained_looking(_dcgan_generator())
    before = _state(g)
    z = torch.randn(4, 16, 1, 1)
    with torch.no_grad():
        expected = g(z)
        folded = fold_batchnorm(g)
        got = folded(z)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert len(folded) == len(g)  # indices keep: nn.Identity() in each BatchNorm's place
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.Identity) for m in folded) == 4
    assert all(folded[i].bias is not None for i in (0, 3, 6, 9))
    assert folded[12].bias is None  # the output conv has no BatchNorm after it: unchanged
    # the original module is untouched: same modules, same tensors, still eval
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g.modules()) == 4
    after = _state(g)
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    with torch.no_grad():
        torch.testing.assert_close(g(z), expected, rtol=0, atol=0)


def test_fold_conv2d_nested_sequential() -> None:
    torch.manual_seed(1)
    net = _trained_looking(nn.Sequential(
        nn.Conv2d(3, 8, 3, 1, 1, bias=True), nn.BatchNorm2d(8), nn.LeakyReLU(0.2),
        nn.Sequential(nn.Conv2d(8, 16, 4, 2, 1, bias=False), nn.BatchNorm2d(16), nn.LeakyReLU(0.2)),
    ))
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(fold_batchnorm(net)(x), net(x), rtol=1e-5, atol=1e-5)


def test_fold_refuses_training_mode() -> None:
    g = _dcgan_generator().train()
    with pytest.raises(GanzooError, match="eval mode"):
        fold_batchnorm(g)
    g.eval()
    g[1].train()  # one BatchNorm left in training mode
    with pytest.raises(GanzooError, match="eval mode"):
        fold_batchnorm(g)


def test_fold_keeps_fused_activation() -> None:
    class BatchNormAct2d(nn.BatchNorm2d):  # the shape of ganzoo_core.ops.norm_act.BatchNormAct2d
        def __init__(self, n: int, act: str = "lrelu", alpha: float = 0.2) -> None:
            super().__init__(n)
            self.act, self.alpha = act, alpha

        def forward(self, x: Tensor) -> Tensor:
            return nn.functional.leaky_relu(super().forward(x), self.alpha)

    torch.manual_seed(2)
    net = _trained_looking(nn.Sequential(nn.Conv2d(3, 8, 4, 2, 1, bias=False), BatchNormAct2d(8)))
    x = torch.randn(2, 3, 16, 16)
    folded = fold_batchnorm(net)
    assert not isinstance(folded[1], (nn.BatchNorm2d, nn.Identity))
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("transposed", [False, True])
def test_conv_bn_op_matches_modules(transposed: bool) -> None:
    torch.manual_seed(3)
    conv = nn.ConvTranspose2d(6, 4, 4, 2, 1) if transposed else nn.Conv2d(6, 4, 3, 1, 1)
    bn = _trained_looking(nn.BatchNorm2d(4))
    x = torch.randn(2, 6, 5, 5)
    with torch.no_grad():
        expected = bn(conv(x))
        for impl in ("ref", "folded"):
            got = conv_bn(x, conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var,
                          eps=bn.eps, transposed=transposed, stride=conv.stride[0], padding=conv.padding[0],
                          impl=impl)
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
