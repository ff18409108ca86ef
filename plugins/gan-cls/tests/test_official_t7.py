"""The released GAN-CLS Torch7 files load by ``weights=``: files in the released format (written by
``ganzoo_core.testing.write_t7``, with random weights) against a transcription of the official forward
(reedscot/icml2016 ``main_cls_int.lua`` for CUB and flowers, ``main_cls.lua`` for COCO), in eval and train mode;
parameter counts; errors for files that do not fit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ganzoo_gan_cls import model as M
from ganzoo_gan_cls.official import ganzoo_convert_checkpoint, load_official
from torch import Tensor

import ganzoo_core as gz
from ganzoo_core.errors import CheckpointError, ConfigError
from ganzoo_core.testing import T7Object, write_t7

pytest.importorskip("torchfile")

# -- a transcription of the Torch nn modules the official scripts use (forward semantics of torch/nn) --------------

CUDNN = {"SpatialConvolution", "SpatialFullConvolution", "SpatialBatchNormalization", "BatchNormalization", "ReLU",
         "Tanh", "Sigmoid"}  # the classes cudnn.convert replaces (use_cudnn=1 in every training script)


class Lua:
    """A Torch ``nn`` module: ``forward(x)`` with Torch's semantics, ``t7()`` as torch.save writes it."""

    params: dict[str, Tensor]
    train = True

    def __init__(self, **fields: Any) -> None:
        self.fields, self.params, self.children = fields, {}, []

    def add(self, module: Lua) -> Lua:
        self.children.append(module)
        return self

    def forward(self, x: Any) -> Any:
        raise NotImplementedError

    def modules(self) -> list[Lua]:
        return [self, *(m for c in self.children for m in c.modules())]

    def set_train(self, train: bool) -> None:
        for m in self.modules():
            m.train = train

    def t7(self, cudnn: bool) -> T7Object:
        name = type(self).__name__
        fields: dict[str, Any] = {**self.fields, **self.params, "train": self.train,
                                  "output": torch.zeros(0), "gradInput": torch.zeros(0)}
        if "bias" in self.params:
            fields["gradBias"] = torch.zeros_like(self.params["bias"])  # transient: not read
        if self.children:
            fields["modules"] = [c.t7(cudnn) for c in self.children]
        return T7Object(f"{'cudnn' if cudnn and name in CUDNN else 'nn'}.{name}", fields)


class Sequential(Lua):
    def forward(self, x: Any) -> Any:
        for m in self.children:
            x = m.forward(x)
        return x


class ConcatTable(Lua):
    def forward(self, x: Any) -> Any:
        return [m.forward(x) for m in self.children]


class ParallelTable(Lua):
    def forward(self, x: Any) -> Any:
        return [m.forward(xi) for m, xi in zip(self.children, x)]


class Identity(Lua):
    def forward(self, x: Any) -> Any:
        return x


class CAddTable(Lua):
    def forward(self, x: list[Tensor]) -> Tensor:
        out = x[0].clone()
        for t in x[1:]:
            out = out + t
        return out


class JoinTable(Lua):
    """Output sized like the first input with the join dimension summed; each input copied into its narrow (Torch
    copies by element count, so a (B, nt) text lands in a (B, nz + nt, 1, 1) slot)."""

    def __init__(self, dimension: int) -> None:
        super().__init__(dimension=dimension)

    def forward(self, x: list[Tensor]) -> Tensor:
        d = self.fields["dimension"] - 1
        size = list(x[0].shape)
        size[d] = sum(t.shape[d] for t in x)
        out, offset = x[0].new_empty(size), 0
        for t in x:
            part = out.narrow(d, offset, t.shape[d])
            part.copy_(t.reshape(part.shape))
            offset += t.shape[d]
        return out


class Replicate(Lua):
    def __init__(self, nfeatures: int, dim: int) -> None:
        super().__init__(nfeatures=nfeatures, dim=dim)

    def forward(self, x: Tensor) -> Tensor:
        d = self.fields["dim"] - 1
        shape = list(x.shape)
        shape.insert(d, self.fields["nfeatures"])
        return x.unsqueeze(d).expand(shape)


class View(Lua):
    def __init__(self, size: int) -> None:
        super().__init__(size=[size], numInputDims=3)

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], self.fields["size"][0])


class ReLU(Lua):
    def __init__(self, inplace: bool = False) -> None:
        super().__init__(inplace=inplace, threshold=0, val=0)

    def forward(self, x: Tensor) -> Tensor:
        return torch.where(x > 0, x, torch.zeros_like(x))


class LeakyReLU(Lua):
    def __init__(self, negval: float, inplace: bool = False) -> None:
        super().__init__(negval=negval, inplace=inplace)

    def forward(self, x: Tensor) -> Tensor:
        return torch.where(x > 0, x, x * self.fields["negval"])


class Tanh(Lua):
    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x)


class Sigmoid(Lua):
    last_input: Tensor

    def forward(self, x: Tensor) -> Tensor:
        self.last_input = x
        return torch.sigmoid(x)


RNG = torch.Generator().manual_seed(0)


def _normal(shape: tuple[int, ...], mean: float, std: float) -> Tensor:
    return torch.randn(shape, generator=RNG) * std + mean


class Linear(Lua):
    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        bound = 1 / n_in**0.5  # Torch's reset(): U(±1/√fan_in)
        self.params = {"weight": (torch.rand((n_out, n_in), generator=RNG) * 2 - 1) * bound,
                       "bias": (torch.rand(n_out, generator=RNG) * 2 - 1) * bound}

    def forward(self, x: Tensor) -> Tensor:
        return x @ self.params["weight"].T + self.params["bias"]


class SpatialConvolution(Lua):
    def __init__(self, n_in: int, n_out: int, kw: int, kh: int, dw: int = 1, dh: int = 1, padw: int = 0,
                 padh: int = 0) -> None:
        super().__init__(nInputPlane=n_in, nOutputPlane=n_out, kW=kw, kH=kh, dW=dw, dH=dh, padW=padw, padH=padh)
        self.params = {"weight": _normal((n_out, n_in, kh, kw), 0.0, 0.02), "bias": _normal((n_out,), 0.0, 0.05)}

    def forward(self, x: Tensor) -> Tensor:
        f = self.fields
        return F.conv2d(x, self.params["weight"], self.params["bias"], (f["dH"], f["dW"]), (f["padH"], f["padW"]))


class SpatialFullConvolution(Lua):
    def __init__(self, n_in: int, n_out: int, kw: int, kh: int, dw: int = 1, dh: int = 1, padw: int = 0,
                 padh: int = 0) -> None:
        super().__init__(nInputPlane=n_in, nOutputPlane=n_out, kW=kw, kH=kh, dW=dw, dH=dh, padW=padw, padH=padh,
                         adjW=0, adjH=0)
        self.params = {"weight": _normal((n_in, n_out, kh, kw), 0.0, 0.02), "bias": _normal((n_out,), 0.0, 0.05)}

    def forward(self, x: Tensor) -> Tensor:
        f = self.fields
        return F.conv_transpose2d(x, self.params["weight"], self.params["bias"], (f["dH"], f["dW"]),
                                  (f["padH"], f["padW"]), (f["adjH"], f["adjW"]))


class BatchNormalization(Lua):
    """Torch's BN: batch statistics in training (biased variance to normalise, unbiased into the running one)."""

    dims: tuple[int, ...] = (0,)

    def __init__(self, n: int) -> None:
        super().__init__(eps=1e-5, momentum=0.1, affine=True, nDim=2)
        self.params = {"weight": _normal((n,), 1.0, 0.1), "bias": _normal((n,), 0.0, 0.1),
                       "running_mean": _normal((n,), 0.0, 0.1), "running_var": torch.rand(n, generator=RNG) + 0.5}

    def forward(self, x: Tensor) -> Tensor:
        p, eps, m = self.params, self.fields["eps"], self.fields["momentum"]
        view = (1, -1) + (1,) * (x.ndim - 2)
        if self.train:
            mean, var = x.mean(self.dims), x.var(self.dims, unbiased=False)
            count = x.numel() // x.shape[1]
            p["running_mean"] = (1 - m) * p["running_mean"] + m * mean
            p["running_var"] = (1 - m) * p["running_var"] + m * var * count / (count - 1)
        else:
            mean, var = p["running_mean"], p["running_var"]
        x_hat = (x - mean.view(view)) / torch.sqrt(var.view(view) + eps)
        return x_hat * p["weight"].view(view) + p["bias"].view(view)


class SpatialBatchNormalization(BatchNormalization):
    dims = (0, 2, 3)

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.fields["nDim"] = 4


# -- the official networks, line by line (reedscot/icml2016 @db3f0c6) -----------------------------------------------

CUB = {"nz": 100, "nt": 128, "txtSize": 1024, "ngf": 128, "ndf": 64}  # scripts/train_cub.sh, main_cls_int.lua
COCO = {"nz": 100, "nt": 128, "txtSize": 1024, "ngf": 196, "ndf": 196}  # scripts/train_coco.sh, main_cls.lua


def _g_residual(c: int, inner: int) -> Lua:
    conc, conv = ConcatTable(), Sequential()
    conv.add(SpatialConvolution(c, inner, 1, 1, 1, 1, 0, 0))
    conv.add(SpatialBatchNormalization(inner)).add(ReLU(True))
    conv.add(SpatialConvolution(inner, inner, 3, 3, 1, 1, 1, 1))
    conv.add(SpatialBatchNormalization(inner)).add(ReLU(True))
    conv.add(SpatialConvolution(inner, c, 3, 3, 1, 1, 1, 1))
    conv.add(SpatialBatchNormalization(c))
    return conc.add(Identity()).add(conv)


def official_g(opt: dict[str, int]) -> Lua:
    """netG of main_cls.lua (large=0) and of main_cls_int.lua: the two build the same network."""
    ngf, nc = opt["ngf"], 3
    fc_g = Sequential().add(Linear(opt["txtSize"], opt["nt"])).add(LeakyReLU(0.2, True))
    net = Sequential()
    net.add(ParallelTable().add(Identity()).add(fc_g))
    net.add(JoinTable(2))
    net.add(SpatialFullConvolution(opt["nz"] + opt["nt"], ngf * 8, 4, 4))
    net.add(SpatialBatchNormalization(ngf * 8))
    net.add(_g_residual(ngf * 8, ngf * 2)).add(CAddTable()).add(ReLU(True))
    net.add(SpatialFullConvolution(ngf * 8, ngf * 4, 4, 4, 2, 2, 1, 1))
    net.add(SpatialBatchNormalization(ngf * 4))
    net.add(_g_residual(ngf * 4, ngf)).add(CAddTable()).add(ReLU(True))
    net.add(SpatialFullConvolution(ngf * 4, ngf * 2, 4, 4, 2, 2, 1, 1))
    net.add(SpatialBatchNormalization(ngf * 2)).add(ReLU(True))
    net.add(SpatialFullConvolution(ngf * 2, ngf, 4, 4, 2, 2, 1, 1))
    net.add(SpatialBatchNormalization(ngf)).add(ReLU(True))
    net.add(SpatialFullConvolution(ngf, nc, 4, 4, 2, 2, 1, 1))
    net.add(Tanh())
    return net


def official_d(opt: dict[str, int], script: str) -> Lua:
    """netD of main_cls_int.lua (CUB, flowers) or main_cls.lua (COCO)."""
    ndf, nc, interp = opt["ndf"], 3, script == "main_cls_int"
    conv_d = Sequential()
    conv_d.add(SpatialConvolution(nc, ndf, 4, 4, 2, 2, 1, 1)).add(LeakyReLU(0.2, True))
    conv_d.add(SpatialConvolution(ndf, ndf * 2, 4, 4, 2, 2, 1, 1))
    conv_d.add(SpatialBatchNormalization(ndf * 2)).add(LeakyReLU(0.2, True))
    conv_d.add(SpatialConvolution(ndf * 2, ndf * 4, 4, 4, 2, 2, 1, 1))
    conv_d.add(SpatialBatchNormalization(ndf * 4))
    if not interp:
        conv_d.add(LeakyReLU(0.2, True))
    conv_d.add(SpatialConvolution(ndf * 4, ndf * 8, 4, 4, 2, 2, 1, 1))
    conv_d.add(SpatialBatchNormalization(ndf * 8))
    conc, conv = ConcatTable(), Sequential()
    conv.add(SpatialConvolution(ndf * 8, ndf * 2, 1, 1, 1, 1, 0, 0))
    conv.add(SpatialBatchNormalization(ndf * 2)).add(LeakyReLU(0.2, True))
    conv.add(SpatialConvolution(ndf * 2, ndf * 2, 3, 3, 1, 1, 1, 1))
    conv.add(SpatialBatchNormalization(ndf * 2)).add(LeakyReLU(0.2, True))
    conv.add(SpatialConvolution(ndf * 2, ndf * 8, 3, 3, 1, 1, 1, 1))
    conv.add(SpatialBatchNormalization(ndf * 8))
    conv_d.add(conc.add(Identity()).add(conv)).add(CAddTable()).add(LeakyReLU(0.2, True))
    fc_d = Sequential().add(Linear(opt["txtSize"], opt["nt"]))
    if interp:
        fc_d.add(BatchNormalization(opt["nt"]))
    fc_d.add(LeakyReLU(0.2, True)).add(Replicate(4, 3)).add(Replicate(4, 4))
    net = Sequential().add(ParallelTable().add(conv_d).add(fc_d)).add(JoinTable(2))
    net.add(SpatialConvolution(ndf * 8 + opt["nt"], ndf * 8, 1, 1))
    net.add(SpatialBatchNormalization(ndf * 8)).add(LeakyReLU(0.2, True))
    net.add(SpatialConvolution(ndf * 8, 1, 4, 4))
    net.add(Sigmoid()).add(View(1))
    return net


def write(net: Lua, path: Path, *, cudnn: bool) -> Path:
    return write_t7(net.t7(cudnn), path, tensor_type="Cuda" if cudnn else "Float")


def n_official(net: Lua) -> tuple[int, int]:
    """(netG:getParameters():nElement(), of which conv biases)."""
    total = sum(p.numel() for m in net.modules() for k, p in m.params.items() if k in ("weight", "bias"))
    biases = sum(m.params["bias"].numel() for m in net.modules()
                 if isinstance(m, SpatialConvolution | SpatialFullConvolution))
    return total, biases


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def max_diff(a: Tensor, b: Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


def compare_g(official: Lua, ours: torch.nn.Module, opt: dict[str, int], batch: int = 4) -> dict[str, float]:
    """Max |official − ganzoo| of the images, in eval mode, in train mode, and in eval mode after the train step
    moved both sides' running statistics."""
    torch.manual_seed(1)
    z, text = torch.randn(batch, opt["nz"], 1, 1), torch.randn(batch, opt["txtSize"])
    diffs = {}
    with torch.no_grad():
        for label, train in (("eval", False), ("train", True), ("eval after train", False)):
            official.set_train(train)
            ours.train(train)
            diffs[label] = max_diff(official.forward([z, text]), ours(z.flatten(1), text))
    return diffs


def compare_d(official: Lua, ours: torch.nn.Module, opt: dict[str, int], batch: int = 4) -> dict[str, float]:
    """As ``compare_g`` for D: the official Sigmoid output against sigmoid(ganzoo's logit), and the logits."""
    torch.manual_seed(2)
    image, text = torch.rand(batch, 3, 64, 64) * 2 - 1, torch.randn(batch, opt["txtSize"])
    sigmoid = next(m for m in official.modules() if isinstance(m, Sigmoid))
    diffs = {}
    with torch.no_grad():
        for label, train in (("eval", False), ("train", True), ("eval after train", False)):
            official.set_train(train)
            ours.train(train)
            prob = official.forward([image, text])
            logit = ours(image, text)
            assert prob.shape == (batch, 1) and logit.shape == (batch,)
            diffs[label] = max(max_diff(prob[:, 0], torch.sigmoid(logit)),
                               max_diff(sigmoid.last_input.flatten(), logit))
    return diffs


# -- tests -----------------------------------------------------------------------------------------------------------


def test_cub_and_flowers_generator_matches_the_official_forward(tmp_path: Path) -> None:
    official = official_g(CUB)
    path = write(official, tmp_path / "cub_v2_nc4_cls0.5_int1.0_ngf128_ndf64_600_net_G.t7", cudnn=True)
    ours = gz.create_generator("gan_cls.64", weights=path)
    diffs = compare_g(official, ours, CUB)
    assert max(diffs.values()) <= 1e-5, diffs
    total, biases = n_official(official)
    assert (total, biases) == (18_909_699, 4_227)  # netG:getParameters():nElement() of main_cls_int.lua
    assert n_params(ours) == total == M.REED_G_PARAMS  # every official tensor, the conv biases included


def test_cub_and_flowers_discriminator_matches_the_official_forward(tmp_path: Path) -> None:
    official = official_d(CUB, "main_cls_int")
    path = write(official, tmp_path / "cub_net_D.t7", cudnn=False)
    ours = gz.create_discriminator("gan_cls.64", weights=path)
    diffs = compare_d(official, ours, CUB)
    assert max(diffs.values()) <= 1e-5, diffs
    total, biases = n_official(official)
    assert (total, biases) == (4_032_321, 2_241)
    assert n_params(ours) == total == M.REED_D_PARAMS


SMALL_COCO = {"nz": 100, "nt": 32, "txtSize": 64, "ngf": 24, "ndf": 20}  # main_cls.lua's layout, small widths


@pytest.mark.parametrize("kind", ["generator", "discriminator"])
def test_coco_layout_matches_the_official_forward(tmp_path: Path, kind: str) -> None:
    """main_cls.lua (COCO) into gan_cls.coco64, at small widths (the same layout; overrides pass through)."""
    opt = SMALL_COCO
    sizes = {"nz": opt["nz"], "nt": opt["nt"], "text_dim": opt["txtSize"]}
    if kind == "generator":
        official = official_g(opt)
        ours = gz.create_generator("gan_cls.coco64", weights=write(official, tmp_path / "coco_G.t7", cudnn=True),
                                   ngf=opt["ngf"], **sizes)
        diffs = compare_g(official, ours, opt)
    else:
        sizes.pop("nz")
        official = official_d(opt, "main_cls")
        ours = gz.create_discriminator("gan_cls.coco64", weights=write(official, tmp_path / "coco_D.t7", cudnn=True),
                                       ndf=opt["ndf"], **sizes)
        diffs = compare_d(official, ours, opt)
    assert max(diffs.values()) <= 1e-5, diffs
    assert n_params(ours) == n_official(official)[0]


def test_coco_parameter_counts_equal_the_official_ones() -> None:
    for kind, official in (("generator", official_g(COCO)), ("discriminator", official_d(COCO, "main_cls"))):
        with torch.device("meta"):
            ours = gz.create(kind, "gan_cls.coco64")
        assert n_params(ours) == n_official(official)[0], kind


def test_layout_of_a_d_is_found_and_the_other_layout_does_not_load(tmp_path: Path) -> None:
    small = {**SMALL_COCO, "ndf": 8}
    cub = write(official_d(small, "main_cls_int"), tmp_path / "int.t7", cudnn=False)
    coco = write(official_d(small, "main_cls"), tmp_path / "cls.t7", cudnn=False)
    assert load_official(cub, "discriminator")[0] == "main_cls_int"
    assert load_official(coco, "discriminator")[0] == "main_cls"
    sizes = {"ndf": 8, "nt": small["nt"], "text_dim": small["txtSize"]}
    with pytest.raises(CheckpointError, match=r"cls\.t7.*missing: text\.1\.weight"):
        gz.create_discriminator("gan_cls.64", weights=coco, **sizes)
    with pytest.raises(CheckpointError, match=r"int\.t7.*unexpected: text\.1\.weight"):
        gz.create_discriminator("gan_cls.coco64", weights=cub, **sizes)


def test_a_file_of_another_size_names_the_first_tensor_that_does_not_fit(tmp_path: Path) -> None:
    path = write(official_g(CUB), tmp_path / "net_G.t7", cudnn=True)
    with pytest.raises(CheckpointError) as info:
        gz.create_generator("gan_cls.32", weights=path)
    message = str(info.value)
    assert "net_G.t7" in message and "\n" not in message
    assert "shape mismatch: text.0.weight: file (128, 1024) vs network (64, 512)" in message


def test_a_file_whose_modules_do_not_fit_names_the_first_one(tmp_path: Path) -> None:
    net = official_g(SMALL_COCO)
    net.children[6:6] = [_g_residual(SMALL_COCO["ngf"] * 8, 4), CAddTable()]  # main_cls.lua with large=1
    with pytest.raises(CheckpointError, match=r"large\.t7.*module 16 \(nn\.Identity at 6\.0\) does not fit the "
                                              r"official GAN-CLS generator \(main_cls\*\.lua\): expected ReLU"):
        load_official(write(net, tmp_path / "large.t7", cudnn=False), "generator")
    d = official_d(SMALL_COCO, "main_cls")
    with pytest.raises(CheckpointError, match=r"d\.t7' holds the official GAN-CLS discriminator, not a generator"):
        gz.create_generator("gan_cls.64", weights=write(d, tmp_path / "d.t7", cudnn=False))
    del d.children[-2]  # no Sigmoid
    with pytest.raises(CheckpointError, match=r"module 30 \(nn\.View at 6\) does not fit the official GAN-CLS D of "
                                              r"main_cls\.lua: expected Sigmoid"):
        load_official(write(d, tmp_path / "d.t7", cudnn=False), "discriminator")


def test_a_conv_with_other_strides_is_refused(tmp_path: Path) -> None:
    net = official_g(SMALL_COCO)
    deconv = next(m for m in net.modules() if isinstance(m, SpatialFullConvolution) and m.fields["dW"] == 2)
    deconv.fields["padW"] = deconv.fields["padH"] = 0
    with pytest.raises(CheckpointError, match=r"module 17 \(nn\.SpatialFullConvolution at 7\).*stride/padding/adj "
                                              r"\(2, 2, 0, 0, 0, 0\), expected \(2, 2, 1, 1, 0, 0\)"):
        load_official(write(net, tmp_path / "g.t7", cudnn=False), "generator")


def test_a_network_without_conv_biases_refuses_a_file_naming_the_bias(tmp_path: Path) -> None:
    opt = SMALL_COCO
    path = write(official_g(opt), tmp_path / "small.t7", cudnn=False)
    with pytest.raises(CheckpointError, match=r"small\.t7.*unexpected: main\.0\.bias"):
        gz.create_generator("gan_cls.coco64", weights=path, conv_bias=False, ngf=opt["ngf"], nz=opt["nz"],
                            nt=opt["nt"], text_dim=opt["txtSize"])


def test_the_hook_takes_only_torch7_files_for_gan_cls(tmp_path: Path) -> None:
    path = write(official_g(SMALL_COCO), tmp_path / "weights.bin", cudnn=False)
    assert ganzoo_convert_checkpoint(kind="generator", name="gan_cls.64", path=path) is not None  # by content
    assert ganzoo_convert_checkpoint(kind="generator", name="dcgan.64", path=path) is None
    assert ganzoo_convert_checkpoint(kind="objective", name="gan_cls.cls", path=path) is None
    other = tmp_path / "other.t7"
    other.write_bytes(np.zeros(16, np.uint8).tobytes())
    assert ganzoo_convert_checkpoint(kind="generator", name="gan_cls.64", path=other) is None


def test_the_layout_field_keeps_gan_cls_64_and_builds_main_cls_for_coco() -> None:
    d = gz.create_discriminator("gan_cls.64")
    assert d.cfg.layout == "main_cls_int" and n_params(d) == M.REED_D_PARAMS
    assert type(d.body[5]) is torch.nn.BatchNorm2d and isinstance(d.text[1], torch.nn.BatchNorm1d)
    coco = gz.create_discriminator("gan_cls.coco64", ndf=8)
    assert type(coco.body[5]) is not torch.nn.BatchNorm2d  # BN fused with its LeakyReLU
    assert [type(m).__name__ for m in coco.text] == ["Linear", "LeakyReLU"]
    with pytest.raises(ConfigError, match="layout='main_cls' is a layout of the official D"):
        gz.create_discriminator("gan_cls.port32", layout="main_cls")
