"""The released generators of the Torch CycleGAN (junyanz/CycleGAN ``.t7``) load by ``weights=``: files in the
released format (an ``nn.gModule`` whose modules are the chain of ``defineG_resnet_*blocks``, parameters as views
into one flat storage as ``getParameters`` leaves them, ``nn.InstanceNormalization`` with its inner batch norm;
cudnn classes with CUDA tensors or nn classes with float tensors; written by ``ganzoo_core.testing.write_t7`` with
random weights) against a transcription of the official forward (``models/architectures.lua`` and
``util/InstanceNormalization.lua`` @40b4498) in eval and train mode; parameter counts; refusals of files that do not
fit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ganzoo_cyclegan.model import ganzoo_convert_checkpoint
from ganzoo_cyclegan.official import load_lua_resnet, resnet_layout
from torch import Tensor, nn

import ganzoo_core as gz
from ganzoo_core.errors import CheckpointError, ConfigError
from ganzoo_core.testing import T7Object, T7Tensor, write_t7

pytest.importorskip("torchfile")

CUDNN = {"SpatialConvolution", "SpatialFullConvolution", "SpatialBatchNormalization", "ReLU", "Tanh"}  # the classes
# util/cudnn_convert_custom.lua replaces (cudnn=1 by default)
RNG = torch.Generator().manual_seed(0)


# -- the Torch modules of the ResNet generator, with torch/nn's forward semantics ----------------------------------


class Module:
    """A Torch ``nn`` module: ``forward`` as Torch computes it, ``params`` and ``children`` as ``torch.save`` writes
    them."""

    train = True

    def __init__(self, *children: Module, **fields: Any) -> None:
        self.fields, self.params, self.children = fields, {}, list(children)

    def forward(self, x: Any) -> Any:
        raise NotImplementedError

    def modules(self) -> list[Module]:
        return [self, *(m for c in self.children for m in c.modules())]


class Sequential(Module):
    def forward(self, x: Any) -> Any:
        for m in self.children:
            x = m.forward(x)
        return x


class ConcatTable(Module):
    def forward(self, x: Tensor) -> list[Tensor]:
        return [m.forward(x) for m in self.children]


class CAddTable(Module):
    def forward(self, x: list[Tensor]) -> Tensor:
        return x[0] + x[1]


class Identity(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x


class SpatialReflectionPadding(Module):
    def __init__(self, pad_l: int, pad_r: int, pad_t: int, pad_b: int) -> None:
        super().__init__(pad_l=pad_l, pad_r=pad_r, pad_t=pad_t, pad_b=pad_b)

    def forward(self, x: Tensor) -> Tensor:
        f = self.fields
        return F.pad(x, (f["pad_l"], f["pad_r"], f["pad_t"], f["pad_b"]), mode="reflect")


class SpatialConvolution(Module):
    def __init__(self, n_in: int, n_out: int, kw: int, kh: int, dw: int = 1, dh: int = 1, padw: int = 0,
                 padh: int = 0) -> None:
        super().__init__(nInputPlane=n_in, nOutputPlane=n_out, kW=kw, kH=kh, dW=dw, dH=dh, padW=padw, padH=padh)
        self.params = {"weight": torch.randn((n_out, n_in, kh, kw), generator=RNG) * 0.02,
                       "bias": torch.randn(n_out, generator=RNG) * 0.05}

    def forward(self, x: Tensor) -> Tensor:
        f = self.fields
        return F.conv2d(x, self.params["weight"], self.params["bias"], (f["dH"], f["dW"]), (f["padH"], f["padW"]))


class SpatialFullConvolution(Module):
    def __init__(self, n_in: int, n_out: int, kw: int, kh: int, dw: int, dh: int, padw: int, padh: int, adjw: int,
                 adjh: int) -> None:
        super().__init__(nInputPlane=n_in, nOutputPlane=n_out, kW=kw, kH=kh, dW=dw, dH=dh, padW=padw, padH=padh,
                         adjW=adjw, adjH=adjh)
        self.params = {"weight": torch.randn((n_in, n_out, kh, kw), generator=RNG) * 0.02,
                       "bias": torch.randn(n_out, generator=RNG) * 0.05}

    def forward(self, x: Tensor) -> Tensor:
        f = self.fields
        return F.conv_transpose2d(x, self.params["weight"], self.params["bias"], (f["dH"], f["dW"]),
                                  (f["padH"], f["padW"]), (f["adjH"], f["adjW"]))


class InstanceNormalization(Module):
    """util/InstanceNormalization.lua: the input viewed as one sample of B·C channels through a training-mode
    SpatialBatchNormalization(B·C, eps, momentum 0) whose weight and bias are the module's, repeated B times;
    ``evaluate()`` and ``training()`` do nothing, so evaluation normalises the same way."""

    def __init__(self, n: int) -> None:
        super().__init__(eps=1e-5, momentum=0.0, affine=True, nOutput=n, prev_batch_size=-1)
        self.params = {"weight": 1 + 0.1 * torch.randn(n, generator=RNG), "bias": 0.1 * torch.randn(n, generator=RNG),
                       "running_mean": torch.zeros(n), "running_var": torch.ones(n)}

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        one = x.contiguous().view(1, b * c, h, w)
        mean, var = one.mean((0, 2, 3)), one.var((0, 2, 3), unbiased=False)
        weight, bias = self.params["weight"].repeat(b), self.params["bias"].repeat(b)
        view = (1, -1, 1, 1)
        out = (one - mean.view(view)) / torch.sqrt(var.view(view) + self.fields["eps"])
        return (out * weight.view(view) + bias.view(view)).view_as(x)

    def bn(self, batch: int) -> T7Object:
        """The inner batch norm a forward leaves in the module (not a child: the walker must not read it)."""
        n = self.fields["nOutput"] * batch
        return T7Object("nn.SpatialBatchNormalization", {
            "eps": 1e-5, "momentum": 0.0, "affine": True, "train": True, "weight": torch.ones(n), "bias": torch.zeros(n),
            "running_mean": torch.zeros(n), "running_var": torch.ones(n), "output": empty(), "gradInput": empty()})


class ReLU(Module):
    def __init__(self) -> None:
        super().__init__(inplace=True, threshold=0, val=0)

    def forward(self, x: Tensor) -> Tensor:
        return x.clamp_(min=0)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x)


# -- the official generator, as models/architectures.lua defines it -------------------------------------------------


def build_res_block(dim: int) -> Module:
    """``build_res_block(dim, 'reflect')``: ConcatTable{conv_block, Identity} then CAddTable."""
    conv_block = Sequential(SpatialReflectionPadding(1, 1, 1, 1), SpatialConvolution(dim, dim, 3, 3, 1, 1, 0, 0),
                            InstanceNormalization(dim), ReLU(), SpatialReflectionPadding(1, 1, 1, 1),
                            SpatialConvolution(dim, dim, 3, 3, 1, 1, 0, 0), InstanceNormalization(dim))
    return Sequential(ConcatTable(conv_block, Identity()), CAddTable())


def define_g_resnet(input_nc: int, output_nc: int, ngf: int, n_blocks: int) -> list[Module]:
    """``defineG_resnet_6blocks`` / ``defineG_resnet_9blocks``: the gModule's chain of modules (its topsort order),
    from the input ``nn.Identity`` to the Tanh."""
    ks, f, p = 3, 7, 3
    return [Identity(), SpatialReflectionPadding(p, p, p, p), SpatialConvolution(input_nc, ngf, f, f, 1, 1),
            InstanceNormalization(ngf), ReLU(),
            SpatialConvolution(ngf, ngf * 2, ks, ks, 2, 2, 1, 1), InstanceNormalization(ngf * 2), ReLU(),
            SpatialConvolution(ngf * 2, ngf * 4, ks, ks, 2, 2, 1, 1), InstanceNormalization(ngf * 4), ReLU(),
            *(build_res_block(ngf * 4) for _ in range(n_blocks)),
            SpatialFullConvolution(ngf * 4, ngf * 2, ks, ks, 2, 2, 1, 1, 1, 1), InstanceNormalization(ngf * 2), ReLU(),
            SpatialFullConvolution(ngf * 2, ngf, ks, ks, 2, 2, 1, 1, 1, 1), InstanceNormalization(ngf), ReLU(),
            SpatialReflectionPadding(p, p, p, p), SpatialConvolution(ngf, output_nc, f, f, 1, 1), Tanh()]


def forward(chain: list[Module], x: Tensor) -> Tensor:
    for m in chain:
        x = m.forward(x)
    return x


def all_modules(chain: list[Module]) -> list[Module]:
    return [m for top in chain for m in top.modules()]


def n_official(chain: list[Module]) -> int:  # netG:getParameters():nElement()
    return sum(t.numel() for m in all_modules(chain) for k, t in m.params.items() if k in ("weight", "bias"))


def empty() -> np.ndarray:
    return np.zeros(0, np.float32)


def to_t7(chain: list[Module], *, cudnn: bool, batch: int = 1) -> T7Object:
    """The gModule as ``torch.save(path, net:clearState())`` writes it: weights and biases as views into the flat
    storage ``getParameters`` made (module order, weight then bias), running statistics apart."""
    tensor_type = "torch.CudaTensor" if cudnn else "torch.FloatTensor"
    order = [(m, k) for m in all_modules(chain) for k in ("weight", "bias") if k in m.params]
    flat = np.concatenate([m.params[k].reshape(-1).numpy() for m, k in order]).astype(np.float32)
    views, offset = {}, 0
    for m, k in order:
        shape = tuple(m.params[k].shape)
        views[id(m), k] = T7Tensor(flat, shape, offset=offset, typename=tensor_type)
        offset += int(np.prod(shape))

    def obj(m: Module) -> T7Object:
        name = type(m).__name__
        fields: dict[str, Any] = {**m.fields, "train": m.train, "output": empty(), "gradInput": empty()}
        for k, t in m.params.items():
            fields[k] = views.get((id(m), k)) or T7Tensor(t.numpy().astype(np.float32), tuple(t.shape),
                                                          typename=tensor_type)
        if "weight" in m.params:
            fields["gradWeight"], fields["gradBias"] = empty(), empty()
        if isinstance(m, InstanceNormalization):
            fields["bn"], fields["prev_batch_size"] = m.bn(batch), batch
        if m.children:
            fields["modules"] = [obj(c) for c in m.children]
        return T7Object(f"{'cudnn' if cudnn and name in CUDNN else 'nn'}.{name}", fields)

    modules = [obj(m) for m in chain]
    nodes = [T7Object("nngraph.Node", {"data": {"module": o, "annotations": {}}, "id": i + 1, "children": {},
                                       "visited": False, "marked": False}) for i, o in enumerate(modules)]
    return T7Object("nn.gModule", {"modules": modules, "forwardnodes": nodes, "nInputs": 1, "train": True,
                                   "output": empty(), "gradInput": empty(), "verbose": False})


def write(chain: list[Module], path: Path, *, cudnn: bool) -> Path:
    return write_t7(to_t7(chain, cudnn=cudnn), path, tensor_type="Cuda" if cudnn else "Float")


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def compare(chain: list[Module], ours: nn.Module, size: int, batch: int) -> dict[str, float]:
    """Max |official − ganzoo| of the images, in eval and in train mode (the Torch forward is the same in both)."""
    x = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    reference = forward(chain, x)
    diffs = {}
    with torch.no_grad():
        for label, train in (("eval", False), ("train", True)):
            ours.train(train)
            diffs[label] = (reference - ours(x)).abs().max().item()
    return diffs


# -- tests -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cudnn", [True, False], ids=["cudnn", "nn_cpu"])
def test_a_released_resnet_9blocks_matches_the_official_forward(tmp_path: Path, cudnn: bool) -> None:
    """The released width (ngf 64, 9 blocks) in both released forms (``horse2zebra`` and ``horse2zebra_cpu``), at
    32×32 (the generator is fully convolutional)."""
    official = define_g_resnet(3, 3, 64, 9)
    path = write(official, tmp_path / "horse2zebra.t7", cudnn=cudnn)
    ours = gz.create_generator("cyclegan.resnet_9blocks_lua", weights=path)
    diffs = compare(official, ours, 32, batch=2)
    assert max(diffs.values()) <= 1e-5, diffs
    assert n_params(ours) == n_official(official) == 11_388_675  # 11,378,179 + 2 × 5,248 norm channels


def test_resnet_6blocks_matches_the_official_forward(tmp_path: Path) -> None:
    official = define_g_resnet(3, 3, 16, 6)
    ours = gz.create_generator("cyclegan.resnet_6blocks_lua", ngf=16,
                               weights=write(official, tmp_path / "apple2orange.t7", cudnn=True))
    diffs = compare(official, ours, 24, batch=3)
    assert max(diffs.values()) <= 1e-5, diffs
    assert n_params(ours) == n_official(official)


def test_parameter_counts_equal_the_official_ones() -> None:
    for name, n_blocks, count in (("cyclegan.resnet_9blocks_lua", 9, 11_388_675),
                                  ("cyclegan.resnet_6blocks_lua", 6, 7_845_123)):
        with torch.device("meta"):
            ours = gz.create_generator(name)
        assert n_params(ours) == n_official(define_g_resnet(3, 3, 64, n_blocks)) == count, name
    assert len(resnet_layout(9)) == len([m for m in all_modules(define_g_resnet(3, 3, 4, 9))
                                         if not isinstance(m, Sequential | ConcatTable)])


def test_the_instance_norm_is_affine_and_normalises_by_the_instance_in_eval_too() -> None:
    g = gz.create_generator("cyclegan.resnet_6blocks_lua", ngf=8)
    norms = [m for m in g.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 17 and all(m.affine and not m.track_running_stats for m in norms)
    with pytest.raises(ConfigError, match=r"affine=True is an option of norm='instance'"):
        gz.create_generator("cyclegan.resnet_9blocks_lua", norm="batch")


def test_the_number_of_blocks_is_read_from_the_file(tmp_path: Path) -> None:
    n_blocks, state = load_lua_resnet(write(define_g_resnet(1, 2, 4, 3), tmp_path / "g.t7", cudnn=False))
    assert n_blocks == 3 and state["model.1.weight"].shape == (4, 1, 7, 7) and state["model.20.bias"].shape == (2,)
    assert state["model.12.conv_block.6.weight"].shape == (16,)  # block 2's second norm


def test_a_file_whose_modules_do_not_fit_names_the_first_one(tmp_path: Path) -> None:
    chain = define_g_resnet(3, 3, 4, 9)
    chain[5].fields["padW"] = chain[5].fields["padH"] = 0  # the first stride-2 conv
    with pytest.raises(CheckpointError, match=r"pad\.t7'?: module 5 \(cudnn\.SpatialConvolution at 5\) does not fit "
                                              r"the official CycleGAN generator \(models/architectures\.lua "
                                              r"defineG_resnet_9blocks\): padW 0, expected 1$"):
        load_lua_resnet(write(chain, tmp_path / "pad.t7", cudnn=True))
    chain = define_g_resnet(3, 3, 4, 6)
    block = chain[11].children[0]  # the first residual block's ConcatTable
    block.children.reverse()  # {Identity, conv_block}
    with pytest.raises(CheckpointError, match=r"module 11 \(nn\.Identity at 11\.0\.0\) does not fit the official "
                                              r"CycleGAN generator \(models/architectures\.lua defineG_resnet_6blocks\): "
                                              r"expected SpatialReflectionPadding$"):
        load_lua_resnet(write(chain, tmp_path / "order.t7", cudnn=False))
    chain = define_g_resnet(3, 3, 4, 6)
    chain[3].fields["affine"] = False
    del chain[3].params["weight"], chain[3].params["bias"]
    with pytest.raises(CheckpointError, match=r"module 3 \(nn\.InstanceNormalization at 3\) does not fit .*: affine "
                                              r"False, expected True$"):
        load_lua_resnet(write(chain, tmp_path / "plain.t7", cudnn=False))
    chain = define_g_resnet(3, 3, 4, 6)
    chain[-1:] = []  # no Tanh
    with pytest.raises(CheckpointError, match=r"the network ends after 73 modules; .* has 74 \(next: Tanh\)$"):
        load_lua_resnet(write(chain, tmp_path / "short.t7", cudnn=False))


def test_a_file_into_another_layout_names_the_lua_variant(tmp_path: Path) -> None:
    path = write(define_g_resnet(3, 3, 4, 6), tmp_path / "monet2photo.t7", cudnn=True)
    with pytest.raises(CheckpointError, match=r"monet2photo\.t7' holds a junyanz/CycleGAN \(Torch\) generator with 6 "
                                              r"residual blocks and affine instance norms, which cyclegan\.resnet_6blocks "
                                              r"does not have: load it into cyclegan\.resnet_6blocks_lua$"):
        gz.create_generator("cyclegan.resnet_6blocks", ngf=4, weights=path)
    with pytest.raises(CheckpointError) as info:  # 6 blocks into the 9-block layout
        gz.create_generator("cyclegan.resnet_9blocks_lua", ngf=4, weights=path)
    assert "missing: model.16.conv_block.1.weight" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(CheckpointError, match=r"monet2photo\.t7'?: ganzoo reads the released junyanz/CycleGAN "
                                              r"generators from Torch7 files, not a discriminator"):
        gz.create_discriminator("cyclegan.patch70", weights=path)


def test_the_hook_takes_only_torch7_files_for_cyclegan(tmp_path: Path) -> None:
    path = write(define_g_resnet(3, 3, 4, 9), tmp_path / "weights.bin", cudnn=False)
    state = ganzoo_convert_checkpoint(kind="generator", name="cyclegan.resnet_9blocks_lua", path=path)
    assert state is not None and set(state) == set(gz.create_generator("cyclegan.resnet_9blocks_lua", ngf=4).state_dict())
    assert ganzoo_convert_checkpoint(kind="generator", name="pix2pix.unet_256", path=path) is None
    assert ganzoo_convert_checkpoint(kind="objective", name="cyclegan.small32", path=path) is None
