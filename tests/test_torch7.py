"""The Torch7 (.t7) reader on files written by ``ganzoo_core.testing.write_t7``: types, nesting, float/double/CUDA
tensors, strided views, shared objects, old batch norms, Lua functions (kept as bytes, never run), damaged files and
the message when torchfile is missing."""

from __future__ import annotations

import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ganzoo_core.errors import CheckpointError
from ganzoo_core.testing import T7Function, T7Object, T7Tensor, write_t7
from ganzoo_core.torch7 import is_t7_file, read_t7, t7_field, t7_modules, t7_tensor, t7_typename

pytest.importorskip("torchfile")


def torch_obj(typename: str, version: int = 1, **fields: Any) -> T7Object:
    """A Torch class instance with its fields given by keyword: ``torch_obj("nn.Linear", weight=..., bias=...)``."""
    return T7Object(typename, fields, version)


# -- tests -----------------------------------------------------------------------------------------------------------


def _network() -> tuple[T7Object, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    arrays = {
        "lin_w": rng.standard_normal((4, 3)).astype(np.float32),
        "lin_b": rng.standard_normal(4),  # a DoubleTensor
        "conv_w": rng.standard_normal((2, 4, 3, 3)).astype(np.float32),
        "bn_w": rng.standard_normal(2).astype(np.float32),
    }
    linear = torch_obj("nn.Linear", weight=arrays["lin_w"], bias=arrays["lin_b"],
                       gradWeight=np.zeros((4, 3), np.float32), output=np.zeros(0, np.float32), train=True)
    cuda_w = T7Tensor(arrays["conv_w"].reshape(-1), arrays["conv_w"].shape, typename="torch.CudaTensor")
    conv = torch_obj("cudnn.SpatialConvolution", weight=cuda_w, kW=3, kH=3, dW=1, padW=1, nInputPlane=4,
                     nOutputPlane=2)
    bn = torch_obj("nn.SpatialBatchNormalization", 2, weight=arrays["bn_w"], bias=np.zeros(2, np.float32),
                   running_mean=np.ones(2, np.float32), running_var=np.full(2, 2.0, np.float32), eps=1e-5,
                   momentum=0.1)
    branch = torch_obj("nn.Sequential", modules=[conv, bn, torch_obj("nn.LeakyReLU", negval=0.2, inplace=True)])
    concat = torch_obj("nn.ConcatTable", modules=[torch_obj("nn.Identity"), branch])
    parallel = torch_obj("nn.ParallelTable",
                         modules=[torch_obj("nn.Identity"), torch_obj("nn.Sequential", modules=[linear])])
    net = torch_obj("nn.Sequential", modules=[parallel, torch_obj("nn.JoinTable", dimension=2), concat,
                                              torch_obj("nn.CAddTable"), torch_obj("nn.Tanh")], train=False, name="net")
    return net, arrays


def test_reads_a_network_in_forward_order_with_its_tensors(tmp_path: Path) -> None:
    net, arrays = _network()
    path = write_t7(net, tmp_path / "net.t7")
    assert is_t7_file(path)
    obj = read_t7(path)
    assert t7_typename(obj) == "nn.Sequential"
    assert t7_field(obj, "train") is False and t7_field(obj, "name") == b"net"
    modules = t7_modules(obj)
    assert [(m.typename, m.path) for m in modules] == [
        ("nn.Identity", "0.0"), ("nn.Linear", "0.1.0"), ("nn.JoinTable", "1"), ("nn.Identity", "2.0"),
        ("cudnn.SpatialConvolution", "2.1.0"), ("nn.SpatialBatchNormalization", "2.1.1"), ("nn.LeakyReLU", "2.1.2"),
        ("nn.CAddTable", "3"), ("nn.Tanh", "4"),
    ]
    linear, conv, bn, lrelu = modules[1], modules[4], modules[5], modules[6]
    assert set(linear.tensors) == {"weight", "bias"}  # gradWeight and the empty output are transient
    assert linear.tensors["weight"].dtype == torch.float32 and linear.tensors["bias"].dtype == torch.float32
    torch.testing.assert_close(linear.tensors["weight"], torch.from_numpy(arrays["lin_w"]), rtol=0, atol=0)
    torch.testing.assert_close(linear.tensors["bias"], torch.from_numpy(arrays["lin_b"]).float(), rtol=0, atol=0)
    torch.testing.assert_close(conv.tensors["weight"], torch.from_numpy(arrays["conv_w"]), rtol=0, atol=0)
    assert conv.fields == {"kW": 3, "kH": 3, "dW": 1, "padW": 1, "nInputPlane": 4, "nOutputPlane": 2}
    assert set(bn.tensors) == {"weight", "bias", "running_mean", "running_var"}
    assert bn.fields["eps"] == pytest.approx(1e-5) and lrelu.fields == {"negval": 0.2, "inplace": True}
    assert modules[2].fields == {"dimension": 2} and linear.describe() == "nn.Linear at 0.1.0"


def test_containers_are_listed_before_their_children_when_asked(tmp_path: Path) -> None:
    net, _ = _network()
    obj = read_t7(write_t7(net, tmp_path / "net.t7"))
    listed = [(m.typename, m.path) for m in t7_modules(obj, containers=True)]
    assert listed[:4] == [("nn.Sequential", ""), ("nn.ParallelTable", "0"), ("nn.Identity", "0.0"),
                          ("nn.Sequential", "0.1")]
    assert len(listed) == len(t7_modules(obj)) + 5


def test_strided_views_and_shared_storages_read_as_torch_lays_them_out(tmp_path: Path) -> None:
    storage = np.arange(24, dtype=np.float64)
    transposed = T7Tensor(storage, (4, 3), (1, 4), offset=0)  # a 3×4 tensor's :t()
    offset = T7Tensor(storage, (2, 2), (6, 2), offset=5)
    shared = T7Tensor(np.ones(3, np.float32), (3,))
    obj = read_t7(write_t7({"t": transposed, "o": offset, "a": shared, "b": shared, 1: "one"}, tmp_path / "t.t7"))
    torch.testing.assert_close(t7_tensor(t7_field(obj, "t")),
                               torch.arange(12, dtype=torch.float32).view(3, 4).t(), rtol=0, atol=0)
    torch.testing.assert_close(t7_tensor(t7_field(obj, "o")), torch.tensor([[5.0, 7.0], [11.0, 13.0]]))
    assert t7_field(obj, "a") is t7_field(obj, "b")  # one object, referenced twice
    assert obj[1] == b"one" and t7_typename(obj) == "" and t7_field(obj, "missing", 7) == 7
    assert t7_tensor(np.arange(3)).dtype == torch.int64  # integer tensors keep their type


def test_old_batch_norm_running_std_becomes_running_var(tmp_path: Path) -> None:
    """nn before class version 2 kept running_std = 1/sqrt(var + eps); nn converts it on load, and so do we."""
    var, eps = np.array([0.5, 2.0, 4.0], np.float32), 1e-3
    old = torch_obj("nn.SpatialBatchNormalization", 1, weight=np.ones(3, np.float32), bias=np.zeros(3, np.float32),
                    running_mean=np.zeros(3, np.float32), running_std=(1 / np.sqrt(var + eps)).astype(np.float32),
                    eps=eps)
    (module,) = t7_modules(read_t7(write_t7(old, tmp_path / "bn.t7")))
    assert "running_std" not in module.tensors
    torch.testing.assert_close(module.tensors["running_var"], torch.from_numpy(var), rtol=1e-5, atol=1e-6)


def test_lua_functions_are_kept_as_bytes_and_never_run(tmp_path: Path) -> None:
    net = torch_obj("nn.Sequential", modules=[torch_obj("nn.Linear", weight=np.ones((2, 2), np.float32))],
                    hook=T7Function(b"\x1bLJ os.execute('touch pwned')"))
    modules = t7_modules(read_t7(write_t7(net, tmp_path / "f.t7")))
    assert [m.typename for m in modules] == ["nn.Linear"]
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_is_t7_file_is_told_by_content(tmp_path: Path) -> None:
    table = write_t7({"a": 1}, tmp_path / "table.bin")
    assert is_t7_file(table) and not is_t7_file(tmp_path / "missing.t7")
    for name, data in [("zip.t7", b"PK\x03\x04" + bytes(20)), ("safetensors.t7", struct.pack("<q", 2) + b"{}"),
                       ("empty.t7", b""), ("text.t7", b"hello world, not torch"),
                       ("number.t7", struct.pack("<id", 1, 3.0) + bytes(8))]:
        (tmp_path / name).write_bytes(data)
        assert not is_t7_file(tmp_path / name), name


def test_a_file_that_is_not_torch7_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "weights.t7"
    path.write_bytes(b"PK\x03\x04" + bytes(40))
    with pytest.raises(CheckpointError, match=r"weights\.t7.*is not a Torch7 \(\.t7\) binary file"):
        read_t7(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_t7(tmp_path / "nope.t7")


def test_a_truncated_file_is_a_checkpoint_error(tmp_path: Path) -> None:
    net, _ = _network()
    data = write_t7(net, tmp_path / "net.t7").read_bytes()
    cut = tmp_path / "cut.t7"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.t7.*could not be read.*truncated"):
        read_t7(cut)


def test_a_tensor_reaching_outside_its_storage_is_refused(tmp_path: Path) -> None:
    bad = T7Tensor(np.zeros(4, np.float32), (4, 1000), (1, 4))  # claims 4000 floats of a 4-float storage
    path = write_t7(torch_obj("nn.Linear", weight=bad), tmp_path / "bad.t7")
    with pytest.raises(CheckpointError, match=r"bad\.t7.*weight.*reaches outside its storage"):
        read_t7(path)


def test_a_missing_torchfile_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_t7({"a": 1}, tmp_path / "a.t7")
    monkeypatch.setitem(sys.modules, "torchfile", None)  # import torchfile → ImportError
    with pytest.raises(CheckpointError) as info:
        read_t7(path)
    assert "pip install 'ganzoo-core[torch7]'" in str(info.value) and "\n" not in str(info.value)


def test_deeply_nested_tables_read(tmp_path: Path) -> None:
    """An nngraph module nests its graph's tables deeply; torchfile reads them recursively, past Python's default
    recursion limit, which the reader raises while it reads (and puts back)."""
    deep: dict[str, Any] = {"leaf": np.ones(2, np.float32)}
    for _ in range(3_000):
        deep = {"next": deep}
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)  # for the test's recursive writer
    try:
        path = write_t7(deep, tmp_path / "deep.t7")
    finally:
        sys.setrecursionlimit(limit)
    obj = read_t7(path)
    assert sys.getrecursionlimit() == limit
    for _ in range(3_000):
        obj = t7_field(obj, "next")
    assert t7_tensor(t7_field(obj, "leaf")).tolist() == [1.0, 1.0]
