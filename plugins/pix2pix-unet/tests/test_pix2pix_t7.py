"""The released phillipi/pix2pix generators (``.t7``) load by ``weights=``: files in the released format (an
``nn.gModule`` listing its modules in nngraph's topsort order, parameters as views into one flat storage as
``getParameters`` leaves them, cudnn classes with CUDA tensors or nn classes with float tensors; written by
``ganzoo_core.testing.write_t7`` with random weights) against a transcription of the official forward
(``models.lua`` ``defineG_unet`` / ``defineG_unet_128`` @89ff2a8, run node by node as nngraph runs it, in-place
activations included) in eval mode, in train mode with the same dropout masks and with dropout off, and in eval mode
after the train steps moved the running statistics; parameter counts; refusals of files that do not fit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ganzoo_pix2pix_unet.model import ganzoo_convert_checkpoint
from ganzoo_pix2pix_unet.official import load_lua_unet, unet_layout
from torch import Tensor, nn

import ganzoo_core as gz
from ganzoo_core.errors import CheckpointError
from ganzoo_core.testing import T7Object, T7Tensor, write_t7

pytest.importorskip("torchfile")

CUDNN = {"SpatialConvolution", "SpatialFullConvolution", "SpatialBatchNormalization", "ReLU", "Tanh"}  # the classes
# util/cudnn_convert_custom.lua replaces (train.lua: cudnn=1 by default)
RNG = torch.Generator().manual_seed(0)


# -- the Torch modules of the U-Net, with torch/nn's forward semantics --------------------------------------------


class Module:
    """A Torch ``nn`` module: ``forward`` as Torch computes it, ``params`` as ``torch.save`` writes them."""

    train = True

    def __init__(self, **fields: Any) -> None:
        self.fields, self.params = fields, {}

    def forward(self, x: Any) -> Tensor:
        raise NotImplementedError


class SpatialConvolution(Module):
    def __init__(self, n_in: int, n_out: int, kw: int, kh: int, dw: int, dh: int, padw: int, padh: int) -> None:
        super().__init__(nInputPlane=n_in, nOutputPlane=n_out, kW=kw, kH=kh, dW=dw, dH=dh, padW=padw, padH=padh)
        self.params = {"weight": torch.randn((n_out, n_in, kh, kw), generator=RNG) * 0.02,
                       "bias": torch.randn(n_out, generator=RNG) * 0.05}

    def forward(self, x: Tensor) -> Tensor:
        f = self.fields
        return F.conv2d(x, self.params["weight"], self.params["bias"], (f["dH"], f["dW"]), (f["padH"], f["padW"]))


class SpatialFullConvolution(Module):
    def __init__(self, n_in: int, n_out: int, kw: int, kh: int, dw: int, dh: int, padw: int, padh: int) -> None:
        super().__init__(nInputPlane=n_in, nOutputPlane=n_out, kW=kw, kH=kh, dW=dw, dH=dh, padW=padw, padH=padh,
                         adjW=0, adjH=0)
        self.params = {"weight": torch.randn((n_in, n_out, kh, kw), generator=RNG) * 0.02,
                       "bias": torch.randn(n_out, generator=RNG) * 0.05}

    def forward(self, x: Tensor) -> Tensor:
        f = self.fields
        return F.conv_transpose2d(x, self.params["weight"], self.params["bias"], (f["dH"], f["dW"]),
                                  (f["padH"], f["padW"]), (f["adjH"], f["adjW"]))


class SpatialBatchNormalization(Module):
    """Batch statistics in training (the biased variance normalises, the unbiased one goes into the running one)."""

    def __init__(self, n: int) -> None:
        super().__init__(eps=1e-5, momentum=0.1, affine=True, nDim=4)
        self.params = {"weight": 1 + 0.1 * torch.randn(n, generator=RNG), "bias": 0.1 * torch.randn(n, generator=RNG),
                       "running_mean": 0.1 * torch.randn(n, generator=RNG),
                       "running_var": torch.rand(n, generator=RNG) + 0.5}

    def forward(self, x: Tensor) -> Tensor:
        p, eps, m = self.params, self.fields["eps"], self.fields["momentum"]
        if self.train:
            mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
            count = x.numel() // x.shape[1]
            p["running_mean"] = (1 - m) * p["running_mean"] + m * mean
            p["running_var"] = (1 - m) * p["running_var"] + m * var * count / (count - 1)
        else:
            mean, var = p["running_mean"], p["running_var"]
        view = (1, -1, 1, 1)
        return (x - mean.view(view)) / torch.sqrt(var.view(view) + eps) * p["weight"].view(view) + p["bias"].view(view)


class LeakyReLU(Module):
    def __init__(self, negval: float, inplace: bool) -> None:
        super().__init__(negval=negval, inplace=inplace)

    def forward(self, x: Tensor) -> Tensor:  # in place: the node that produced x sees the result too
        return x.copy_(torch.where(x > 0, x, x * self.fields["negval"]))


class ReLU(Module):
    def __init__(self, inplace: bool) -> None:
        super().__init__(inplace=inplace, threshold=0, val=0)

    def forward(self, x: Tensor) -> Tensor:
        return x.clamp_(min=0)


class Dropout(Module):
    """v2 dropout: in training a Bernoulli(1 − p) mask scaled by 1/(1 − p), drawn as ``bernoulli_`` on a tensor like
    the input (so a seeded torch draws the masks torch's own dropout draws); at evaluation the input unchanged."""

    def __init__(self, p: float) -> None:
        super().__init__(p=p, v2=True, inplace=False)

    def forward(self, x: Tensor) -> Tensor:
        if not self.train:
            return x.clone()
        p = self.fields["p"]
        return x * torch.empty_like(x).bernoulli_(1 - p).div_(1 - p)


class JoinTable(Module):
    def __init__(self, dimension: int) -> None:
        super().__init__(dimension=dimension)

    def forward(self, x: list[Tensor]) -> Tensor:
        return torch.cat(x, self.fields["dimension"] - 1)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x)


# -- nngraph: nodes, the topsort order, the gModule's forward --------------------------------------------------------


class Node:
    """A graph node ``input - module``: a module and its input nodes in the order given (``{d_, e} - JoinTable``)."""

    def __init__(self, module: Module, *inputs: Node) -> None:
        self.module, self.inputs = module, inputs


def chain(node: Node | None, *modules: Module) -> Node:
    """``node - m1 - m2 - ...`` (``- m1`` for the input node when ``node`` is None)."""
    for m in modules:
        node = Node(m, *([node] if node is not None else []))
    assert node is not None
    return node


class GModule:
    """``nn.gModule({input}, {output})``: its nodes in ``graph.Graph:topsort`` order, a post-order depth-first walk
    from the output over each node's inputs in order; forward runs them in that order."""

    def __init__(self, output: Node) -> None:
        self.nodes: list[Node] = []
        seen: set[int] = set()
        stack: list[tuple[Node, bool]] = [(output, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                self.nodes.append(node)
            elif id(node) not in seen:
                seen.add(id(node))
                stack.append((node, True))
                stack.extend((i, False) for i in reversed(node.inputs))

    @property
    def modules(self) -> list[Module]:
        return [n.module for n in self.nodes]

    def set_train(self, train: bool, dropout: bool | None = None) -> None:
        for m in self.modules:
            m.train = (train if dropout is None else dropout) if isinstance(m, Dropout) else train

    def forward(self, x: Tensor) -> Tensor:
        out: dict[int, Tensor] = {}
        for node in self.nodes:
            inputs = [out[id(i)] for i in node.inputs] or [x.clone()]
            out[id(node)] = node.module.forward(inputs[0] if len(inputs) == 1 else inputs)
        return out[id(self.nodes[-1])]

    def n_parameters(self) -> int:  # netG:getParameters():nElement()
        return sum(t.numel() for m in self.modules for k, t in m.params.items() if k in ("weight", "bias"))


# -- the official generators, as models.lua defines them ----------------------------------------------------------


def define_g_unet(input_nc: int, output_nc: int, ngf: int, n_downs: int = 8) -> GModule:
    """``defineG_unet`` (n_downs 8) and ``defineG_unet_128`` (7): e_k = e_(k−1) − LeakyReLU − conv − BN (none on e1
    and the innermost), d_j_ = d_(j−1) − ReLU − full conv − BN (− Dropout for j ≤ 3), d_j = {d_j_, e_(n−j)} −
    JoinTable(2), and the output d_n = d_(n−1) − ReLU − full conv, then Tanh."""
    w = [ngf * min(2**i, 8) for i in range(n_downs)]
    e = [chain(None, SpatialConvolution(input_nc, ngf, 4, 4, 2, 2, 1, 1))]
    for k in range(1, n_downs):
        conv = SpatialConvolution(w[k - 1], w[k], 4, 4, 2, 2, 1, 1)
        norm = [SpatialBatchNormalization(w[k])] if k < n_downs - 1 else []
        e.append(chain(e[-1], LeakyReLU(0.2, True), conv, *norm))
    d = e[-1]
    for j in range(1, n_downs):
        c_in, c_out = w[n_downs - j] * (1 if j == 1 else 2), w[n_downs - j - 1]
        drop = [Dropout(0.5)] if j <= 3 else []
        d_ = chain(d, ReLU(True), SpatialFullConvolution(c_in, c_out, 4, 4, 2, 2, 1, 1),
                   SpatialBatchNormalization(c_out), *drop)
        d = Node(JoinTable(2), d_, e[n_downs - j - 1])
    out = chain(d, ReLU(True), SpatialFullConvolution(ngf * 2, output_nc, 4, 4, 2, 2, 1, 1), Tanh())
    return GModule(out)


def empty() -> np.ndarray:
    return np.zeros(0, np.float32)


def to_t7(net: GModule, *, cudnn: bool) -> T7Object:
    """The gModule as ``torch.save(path, netG:clearState())`` writes it after training: weights and biases as views
    into the one flat storage ``getParameters`` made (module order, weight then bias), running statistics apart."""
    tensor_type = "torch.CudaTensor" if cudnn else "torch.FloatTensor"
    order = [(m, k) for m in net.modules for k in ("weight", "bias") if k in m.params]
    flat = np.concatenate([m.params[k].reshape(-1).numpy() for m, k in order]).astype(np.float32)
    views, offset = {}, 0
    for m, k in order:
        shape = tuple(m.params[k].shape)
        views[id(m), k] = T7Tensor(flat, shape, offset=offset, typename=tensor_type)
        offset += int(np.prod(shape))
    objects = []
    for m in net.modules:
        name = type(m).__name__
        fields: dict[str, Any] = {**m.fields, "train": m.train, "output": empty(), "gradInput": empty()}
        for k, t in m.params.items():
            fields[k] = views.get((id(m), k)) or T7Tensor(t.numpy().astype(np.float32), tuple(t.shape),
                                                          typename=tensor_type)
        if "weight" in m.params:
            fields["gradWeight"], fields["gradBias"] = empty(), empty()
        objects.append(T7Object(f"{'cudnn' if cudnn and name in CUDNN else 'nn'}.{name}", fields))
    nodes = [T7Object("nngraph.Node", {"data": {"module": o, "annotations": {}}, "id": i + 1, "children": {},
                                       "visited": False, "marked": False}) for i, o in enumerate(objects)]
    return T7Object("nn.gModule", {"modules": objects, "forwardnodes": nodes, "nInputs": 1, "train": True,
                                   "output": empty(), "gradInput": empty(), "verbose": False})


def write(net: GModule, path: Path, *, cudnn: bool) -> Path:
    return write_t7(to_t7(net, cudnn=cudnn), path, tensor_type="Cuda" if cudnn else "Float")


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def max_diff(a: Tensor, b: Tensor) -> float:
    return (a - b).abs().max().item()


def compare(official: GModule, ours: nn.Module, size: int, batch: int) -> dict[str, float]:
    """Max |official − ganzoo| of the images: eval mode; train mode with the dropout masks drawn from the same seed;
    train mode with dropout off; eval mode after those train steps moved both sides' running statistics."""
    x = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    diffs = {}
    with torch.no_grad():
        official.set_train(False)
        ours.eval()
        diffs["eval"] = max_diff(official.forward(x), ours(x))
        official.set_train(True)
        ours.train()
        torch.manual_seed(7)
        reference = official.forward(x)
        torch.manual_seed(7)
        diffs["train, same dropout masks"] = max_diff(reference, ours(x))
        official.set_train(True, dropout=False)
        for m in ours.modules():
            if isinstance(m, nn.Dropout):
                m.eval()
        diffs["train, dropout off"] = max_diff(official.forward(x), ours(x))
        official.set_train(False)
        ours.eval()
        diffs["eval after train"] = max_diff(official.forward(x), ours(x))
    return diffs


# -- tests -----------------------------------------------------------------------------------------------------------


def test_a_released_unet_256_matches_the_official_forward(tmp_path: Path) -> None:
    """The released size (ngf 64, 8 levels, 256×256) in the released format (cudnn classes, CUDA tensors)."""
    official = define_g_unet(3, 3, 64)
    path = write(official, tmp_path / "facades_label2image.t7", cudnn=True)
    ours = gz.create_generator("pix2pix.unet_256_lua", weights=path)
    diffs = compare(official, ours, 256, batch=2)
    assert max(diffs.values()) <= 1e-5, diffs
    assert n_params(ours) == official.n_parameters() == 54_419_459  # 54,413,955 + every conv's bias


@pytest.mark.parametrize("cudnn", [False, True], ids=["nn", "cudnn"])
def test_unet_128_and_other_widths_match_the_official_forward(tmp_path: Path, cudnn: bool) -> None:
    """``defineG_unet_128`` into ``pix2pix.unet_128_lua``, at ngf 16, with a batch of 3; the nn-class form is what a
    CPU-converted file holds."""
    official = define_g_unet(3, 3, 16, n_downs=7)
    path = write(official, tmp_path / "unet_128.t7", cudnn=cudnn)
    ours = gz.create_generator("pix2pix.unet_128_lua", ngf=16, weights=path)
    diffs = compare(official, ours, 128, batch=3)
    assert max(diffs.values()) <= 1e-5, diffs
    assert n_params(ours) == official.n_parameters()


def test_parameter_counts_equal_the_official_ones() -> None:
    for name, n_downs in (("pix2pix.unet_256_lua", 8), ("pix2pix.unet_128_lua", 7)):
        official = define_g_unet(3, 3, 64, n_downs)
        with torch.device("meta"):
            ours = gz.create_generator(name)
        assert n_params(ours) == official.n_parameters(), name
    assert len(unet_layout(8)) == len(define_g_unet(3, 3, 4).modules) == 55  # 22 encoder, 31 decoder, 2


def test_the_module_order_is_nngraphs() -> None:
    """The walk visits d_j_ before e_(n−j) at every JoinTable: the encoder comes first, whole, then the decoder."""
    classes = [type(m).__name__ for m in define_g_unet(3, 3, 4, n_downs=7).modules]
    assert classes == [row[0] for row in unet_layout(7)]
    assert classes[:4] == ["SpatialConvolution", "LeakyReLU", "SpatialConvolution", "SpatialBatchNormalization"]
    assert classes[-5:] == ["SpatialBatchNormalization", "JoinTable", "ReLU", "SpatialFullConvolution", "Tanh"]


def test_the_depth_is_read_from_the_file(tmp_path: Path) -> None:
    assert load_lua_unet(write(define_g_unet(3, 3, 4, n_downs=7), tmp_path / "g.t7", cudnn=False))[0] == 7
    n_downs, state = load_lua_unet(write(define_g_unet(1, 2, 4, n_downs=5), tmp_path / "g.t7", cudnn=True))
    assert n_downs == 5 and state["down.0.0.weight"].shape == (4, 1, 4, 4) and state["up.0.0.bias"].shape == (2,)


def test_a_file_of_another_width_names_the_first_tensor_that_does_not_fit(tmp_path: Path) -> None:
    path = write(define_g_unet(3, 3, 8), tmp_path / "narrow.t7", cudnn=True)
    with pytest.raises(CheckpointError) as info:
        gz.create_generator("pix2pix.unet_256_lua", weights=path)
    message = str(info.value)
    assert "narrow.t7" in message and "\n" not in message
    assert "shape mismatch: down.0.0.weight: file (8, 3, 4, 4) vs network (64, 3, 4, 4)" in message


def test_a_file_whose_modules_do_not_fit_names_the_first_one(tmp_path: Path) -> None:
    net = define_g_unet(3, 3, 4)
    drop = next(i for i, m in enumerate(net.modules) if isinstance(m, Dropout))
    del net.nodes[drop]  # a d1 without its Dropout
    with pytest.raises(CheckpointError, match=rf"nodrop\.t7'?: module {drop} \(nn\.JoinTable at {drop}\) does not fit "
                                              r"the official pix2pix U-Net \(models\.lua defineG_unet\): expected "
                                              r"Dropout$"):
        load_lua_unet(write(net, tmp_path / "nodrop.t7", cudnn=False))
    net = define_g_unet(3, 3, 4)
    lrelu = next(m for m in net.modules if isinstance(m, LeakyReLU))
    lrelu.fields["negval"] = 0.01
    with pytest.raises(CheckpointError, match=r"module 1 \(nn\.LeakyReLU at 1\) does not fit .*: negval 0\.01, "
                                              r"expected 0\.2$"):
        load_lua_unet(write(net, tmp_path / "slope.t7", cudnn=True))
    net = define_g_unet(3, 3, 4)
    net.nodes.pop()  # no Tanh
    with pytest.raises(CheckpointError, match=r"the network ends after 54 modules; the official pix2pix U-Net "
                                              r"\(models\.lua defineG_unet\) has 55 \(next: Tanh\)$"):
        load_lua_unet(write(net, tmp_path / "short.t7", cudnn=True))


def test_the_encoder_decoder_generator_and_a_discriminator_are_refused(tmp_path: Path) -> None:
    """``defineG_encoder_decoder`` (no skips) and ``defineD_basic`` (an nn.Sequential ending in a Sigmoid)."""
    e = chain(None, SpatialConvolution(3, 4, 4, 4, 2, 2, 1, 1), LeakyReLU(0.2, True),
              SpatialConvolution(4, 8, 4, 4, 2, 2, 1, 1))
    d = chain(e, ReLU(True), SpatialFullConvolution(8, 4, 4, 4, 2, 2, 1, 1), SpatialBatchNormalization(4),
              Dropout(0.5), ReLU(True), SpatialFullConvolution(4, 3, 4, 4, 2, 2, 1, 1), Tanh())
    with pytest.raises(CheckpointError, match=r"module 7 \(cudnn\.ReLU at 7\) does not fit the official pix2pix U-Net "
                                              r"\(the layout of models\.lua defineG_unet with 2 levels\): expected JoinTable"):
        gz.create_generator("pix2pix.unet_256_lua", weights=write(GModule(d), tmp_path / "ed.t7", cudnn=True))
    basic = [SpatialConvolution(6, 4, 4, 4, 2, 2, 1, 1), LeakyReLU(0.2, True),
             SpatialConvolution(4, 8, 4, 4, 1, 1, 1, 1), SpatialBatchNormalization(8), LeakyReLU(0.2, True),
             SpatialConvolution(8, 1, 4, 4, 1, 1, 1, 1)]
    seq = T7Object("nn.Sequential", {"modules": [T7Object(f"nn.{type(m).__name__}", {**m.fields, **m.params})
                                                 for m in basic] + [T7Object("nn.Sigmoid", {})]})
    path = write_t7(seq, tmp_path / "latest_net_D.t7")
    with pytest.raises(CheckpointError, match=r"module 2 \(nn\.SpatialConvolution at 2\) does not fit .*: dW 1, "
                                              r"expected 2$"):
        gz.create_generator("pix2pix.unet_256_lua", weights=path)
    with pytest.raises(CheckpointError, match=r"latest_net_D\.t7'?: ganzoo reads the released phillipi/pix2pix "
                                              r"generators from Torch7 files, not a discriminator"):
        gz.create_discriminator("pix2pix.patch70", weights=path)


def test_a_lua_file_into_another_layout_names_the_lua_variant(tmp_path: Path) -> None:
    path = write(define_g_unet(3, 3, 4), tmp_path / "edges2shoes.t7", cudnn=True)
    for name in ("pix2pix.unet_256", "pix2pix.unet_256_tf"):
        with pytest.raises(CheckpointError, match=rf"edges2shoes\.t7' holds a phillipi/pix2pix \(Lua\) U-Net of 8 "
                                                  rf"levels, whose layout {name} does not have: load it into "
                                                  r"pix2pix\.unet_256_lua$"):
            gz.create_generator(name, ngf=4, weights=path)
    small = write(define_g_unet(3, 3, 4, n_downs=7), tmp_path / "small.t7", cudnn=True)
    with pytest.raises(CheckpointError, match=r"load it into pix2pix\.unet_128_lua$"):
        gz.create_generator("pix2pix.unet_128", ngf=4, weights=small)


def test_the_hook_takes_only_torch7_files_for_pix2pix_generators(tmp_path: Path) -> None:
    path = write(define_g_unet(3, 3, 4), tmp_path / "weights.bin", cudnn=False)
    assert set(ganzoo_convert_checkpoint(kind="generator", name="pix2pix.unet_256_lua", path=path)) == {
        k for k in gz.create_generator("pix2pix.unet_256_lua", ngf=4).state_dict()}  # by content, not by name
    assert ganzoo_convert_checkpoint(kind="generator", name="dcgan.64", path=path) is None
    assert ganzoo_convert_checkpoint(kind="objective", name="pix2pix.unet_256", path=path) is None
