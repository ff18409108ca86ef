"""char-CNN-RNN against the official Lua code: released files written here in the Torch7 format with random weights
load by ``weights=`` and encode captions as a NumPy transcription of the Torch forward does (≤ 1e-5); parameter
counts; refusals of files that do not fit; the DS-SJE objective, its dataset, ``ganzoo encode``, and (slow) a
learning outcome on held-out captioned shapes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from ganzoo_char_cnn_rnn import ALPHABET, caption_bytes, rnn_roles, sje_hinge
from ganzoo_char_cnn_rnn.model import RELEASED_PARAMS
from safetensors.torch import save_file

import ganzoo_core as gz
from ganzoo_core.errors import CheckpointError, ConfigError, InputError, ShapeError
from ganzoo_core.testing import T7Object, T7Tensor, check_plugin, write_t7

pytest.importorskip("torchfile")

# the loader's string in util/MultimodalMinibatchLoaderCaption.lua and txt2img_demo.lua, as Lua reads the literal
LUA_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-,;.!?:'\"/\\|_@#$%^&*~`+-=<>()[]{} "


def empty(kind: str = "Float") -> T7Tensor:
    """An empty tensor, as a trained net holds its outputs and gradients."""
    return T7Tensor(np.zeros(0, np.float32), (0,), typename=f"torch.{kind}Tensor")


# -- the released networks as the Lua code builds them ------------------------------------------------------------

RNN_ROLES = {"rnn": ("i2h", "h2h"), "gru": ("i2h_update", "i2h_reset", "i2h", "h2h_update", "h2h_reset", "h2h")}


def nn(typename: str, **fields: Any) -> T7Object:
    """A module as a trained Torch net holds it: its own fields plus output / gradInput and the train flag."""
    return T7Object(f"nn.{typename}", {"output": empty(), "gradInput": empty(), "train": False, **fields})


def torch_text_encoder(layout: str, rng: np.random.Generator, *, kind: str = "Float", broken_share: bool = False
                       ) -> tuple[T7Object, dict[str, Any]]:
    """The enc_doc nn.gModule of a trained model: ``"hybrid"`` (HybridCNN + FixedRNN, cnn_dim 256, 8 steps) or
    ``"long"`` (HybridCNNLong + FixedGRU avg=1, cnn_dim 512, 18 steps). All parameters are views into one flat
    storage (``model_utils.combine_all_parameters``); the per-step copies of the RNN's layers view the same region.
    Returns the module and the weights in Torch layouts for the transcription."""
    long = layout == "long"
    cnn, steps, rnn = (512, 18, "gru") if long else (256, 8, "rnn")
    widths, k = (70, 384, 512, cnn), 4
    shapes: dict[str, tuple[int, ...]] = {}
    for i in range(3):
        shapes[f"conv{i}.weight"], shapes[f"conv{i}.bias"] = (widths[i + 1], widths[i] * k), (widths[i + 1],)
    for role in RNN_ROLES[rnn]:
        shapes[f"{role}.weight"], shapes[f"{role}.bias"] = (cnn, cnn), (cnn,)
    shapes["proj.weight"], shapes["proj.bias"] = (1024, cnn), (1024,)
    offsets, total = {}, 0
    for name, shape in shapes.items():
        offsets[name], total = total, total + int(np.prod(shape))
    flat = np.zeros(total, np.float32)
    views = {}
    for name, shape in shapes.items():
        fan_in = shape[1] if len(shape) == 2 else 10
        size = int(np.prod(shape))
        flat[offsets[name]:offsets[name] + size] = rng.normal(0, 1.5 / np.sqrt(fan_in), size)
        views[name] = T7Tensor(flat, shape, offset=offsets[name], typename=f"torch.{kind}Tensor")

    def linear(name: str) -> T7Object:
        w, b = views[f"{name}.weight"], views[f"{name}.bias"]
        return nn("Sequential", modules=[nn("Linear", weight=w, bias=b, gradWeight=empty(), gradBias=empty())])

    cnn_layers: list[T7Object] = []
    pools = [(3, 3), (3, 3)] + ([] if long else [(3, 2)])
    for i in range(3):
        cnn_layers += [nn("TemporalConvolution", inputFrameSize=widths[i], outputFrameSize=widths[i + 1], kW=k, dW=1,
                          weight=views[f"conv{i}.weight"], bias=views[f"conv{i}.bias"]),
                       nn("Threshold", threshold=1e-6, val=0, inplace=False)]
        if i < len(pools):
            cnn_layers.append(nn("TemporalMaxPooling", kW=pools[i][0], dW=pools[i][1], indices=empty()))
    # the RNN gModule's modules in forwardnodes order (a post-order walk from the output, inputs in order)
    rnn_layers: list[T7Object] = [nn("Identity"), linear("i2h"), nn("ReLU") if rnn == "rnn" else nn("Tanh")]
    for t in range(1, steps):
        if rnn == "rnn":  # relu_t = ReLU(CAdd{i2h(x_t), h2h(relu_{t-1})}); sum = CAdd{sum, relu_t}
            h2h = linear("h2h")
            if broken_share and t == 3:  # its own storage with other values: not shared any more
                own = T7Tensor(rng.normal(0, 0.1, cnn * cnn).astype(np.float32), (cnn, cnn),
                               typename=f"torch.{kind}Tensor")
                h2h.fields["modules"][0].fields["weight"] = own
            rnn_layers += [nn("Identity"), linear("i2h"), h2h, nn("CAddTable"), nn("ReLU"), nn("CAddTable")]
        else:  # FixedGRU.lua, step t: update, candidate (reset, gated h), interpolation; then the average chain
            rnn_layers += [nn("Identity"), linear("i2h_update"), linear("h2h_update"), nn("CAddTable"), nn("Sigmoid"),
                           linear("i2h"), linear("i2h_reset"), linear("h2h_reset"), nn("CAddTable"), nn("Sigmoid"),
                           nn("CMulTable"), linear("h2h"), nn("CAddTable"), nn("Tanh"), nn("CMulTable"),
                           nn("MulConstant", constant_scalar=-1), nn("AddConstant", constant_scalar=1),
                           nn("CMulTable"), nn("CAddTable"), nn("CAddTable")]
    rnn_layers.append(nn("MulConstant", constant_scalar=1.0 / steps))
    nodes = [T7Object("nngraph.Node", {"data": {"module": m, "annotations": {}}, "id": i + 1, "children": [],
                                       "visited": False, "marked": False})
             for i, m in enumerate(rnn_layers)]  # what the walker must not count twice
    rnn_net = nn("gModule", modules=rnn_layers, forwardnodes=nodes, nInputs=steps, verbose=False)
    proj = nn("Linear", weight=views["proj.weight"], bias=views["proj.bias"], gradWeight=empty(), gradBias=empty())
    net = nn("gModule", modules=[nn("Identity"), nn("Sequential", modules=cnn_layers), nn("SplitTable", dimension=2),
                                 rnn_net, nn("Dropout", p=0, v2=True, noise=empty()), proj], nInputs=1)
    weights = {name: view.numpy().astype(np.float64) for name, view in views.items()}
    return net, {"rnn": rnn, "steps": steps, "pools": pools, "weights": weights, "distinct": total}


def checkpoint(enc_doc: T7Object) -> dict[str, Any]:
    """What train_sje_hybrid.lua saves: protos (the text and the image encoder), opt, losses, i, epoch."""
    return {"protos": {"enc_doc": enc_doc, "enc_image": nn("gModule", modules=[nn("Identity")], nInputs=1)},
            "opt": {"doc_length": 201, "emb_dim": 1024, "image_noop": 1, "symmetric": 1, "learning_rate": 0.0007},
            "train_losses": [1.9, 1.5, 1.2], "val_loss": 0, "i": 16400, "epoch": 200.0}


# -- the Torch forward, transcribed (txt2img_demo.lua, HybridCNN(Long).lua, FixedRNN.lua, FixedGRU.lua) -----------


def torch_forward(model: dict[str, Any], query: bytes, doc_length: int = 201) -> np.ndarray:
    w = model["weights"]
    lua_dict = {ch: i for i, ch in enumerate(LUA_ALPHABET, start=1)}  # dict[alphabet:sub(i,i)] = i: the last wins
    txt = np.zeros((doc_length, 70))
    for t in range(doc_length):  # query_str:sub(t, t): one byte, '' past the end
        ix = lua_dict.get(chr(query[t])) if t < len(query) else None
        if ix:
            txt[t, ix - 1] = 1
    x = txt
    for i in range(3):
        weight, bias = w[f"conv{i}.weight"], w[f"conv{i}.bias"]  # TemporalConvolution: (out, kW·in), frame-major
        x = np.stack([bias + weight @ x[t:t + 4].reshape(-1) for t in range(len(x) - 4 + 1)])
        x = np.where(x > 1e-6, x, 0.0)  # nn.Threshold()
        if i < len(model["pools"]):
            k, d = model["pools"][i]
            x = np.stack([x[t * d:t * d + k].max(0) for t in range((len(x) - k) // d + 1)])
    steps = list(x)  # SplitTable(2)
    assert len(steps) == model["steps"]

    def lin(role: str, v: np.ndarray) -> np.ndarray:
        return w[f"{role}.weight"] @ v + w[f"{role}.bias"]

    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    if model["rnn"] == "rnn":
        h = np.maximum(lin("i2h", steps[0]), 0)
        total = h
        for s in steps[1:]:
            h = np.maximum(lin("i2h", s) + lin("h2h", h), 0)
            total = total + h
    else:
        h = np.tanh(lin("i2h", steps[0]))
        total = h
        for s in steps[1:]:
            update = sig(lin("i2h_update", s) + lin("h2h_update", h))
            reset = sig(lin("i2h_reset", s) + lin("h2h_reset", h))
            candidate = np.tanh(lin("i2h", s) + lin("h2h", reset * h))
            h = update * candidate + (1 - update) * h
            total = total + h
    hid = total * (1.0 / len(steps))  # MulConstant(1/nstep)
    return w["proj.weight"] @ hid + w["proj.bias"]  # Dropout(0) is the identity


CAPTIONS = [
    "this bird has a bright red crown and a short, pointed black beak.",
    "a yellow flower with five petals - and a dark-brown center!",
    "The Petals Are PINK with WHITE edges",  # capitals: blank in the demo unless lower-cased
    "crème brûlée coloured wings (0123456789) {x} [y] <z> ~`@#$%^&*_+=|\\/?;:'\"",  # non-ASCII bytes: blank
    "a very long description " * 12,  # 288 bytes: cut at 201
]


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Any]]]:
    """A cub-layout checkpoint (CUDA tensors, as trained on a GPU) and a flowers-layout one (float tensors)."""
    root = tmp_path_factory.mktemp("t7")
    out = {}
    for name, layout, kind, seed in (("cub", "long", "Cuda", 1), ("flowers", "hybrid", "Float", 2)):
        net, model = torch_text_encoder(layout, np.random.default_rng(seed), kind=kind)
        out[name] = (write_t7(checkpoint(net), root / f"{name}.t7"), model)
    return out


# -- released networks --------------------------------------------------------------------------------------------


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_plugin_conformance() -> None:
    names = check_plugin("ganzoo_char_cnn_rnn")
    assert {"encoder char_cnn_rnn.cub", "encoder char_cnn_rnn.flowers", "objective char_cnn_rnn.sje_small",
            "dataset char_cnn_rnn.captions"} <= set(names)


def test_released_sizes() -> None:
    """1024-d, doc_length 201, alphabet 70; 8 steps (HybridCNN), 18 (HybridCNNLong); counts from the layer sizes."""
    assert ALPHABET == LUA_ALPHABET and len(ALPHABET) == 70
    hybrid = 70 * 4 * 384 + 384 + 384 * 4 * 512 + 512 + 512 * 4 * 256 + 256 + 2 * (256 * 256 + 256) + 256 * 1024 + 1024
    long = 70 * 4 * 384 + 384 + 384 * 4 * 512 + 512 + 512 * 4 * 512 + 512 + 6 * (512 * 512 + 512) + 512 * 1024 + 1024
    assert (hybrid, long) == (1_814_144, 4_045_184)
    for name, count in RELEASED_PARAMS.items():
        enc = gz.create_encoder(f"char_cnn_rnn.{name}")
        assert n_params(enc) == count and enc.embed_dim == 1024 and enc.cfg.doc_length == 201
        assert enc.cfg.steps == (18 if name in ("cub", "coco") else 8)


@pytest.mark.parametrize("name", ["cub", "flowers"])
def test_released_file_encodes_like_the_torch_forward(released: dict[str, Any], name: str) -> None:
    path, model = released[name]
    enc = gz.create_encoder(f"char_cnn_rnn.{name}", weights=path)
    assert n_params(enc) == model["distinct"] == RELEASED_PARAMS[name]  # the flat storage: shared weights once
    got = enc.encode(CAPTIONS).double().numpy()
    want = np.stack([torch_forward(model, c.encode().lower()) for c in CAPTIONS])  # lowercase=True: ASCII only
    assert np.abs(want).max() > 0.5  # a forward that computes something
    assert np.abs(got - want).max() <= 1e-5
    demo = gz.create_encoder(f"char_cnn_rnn.{name}", weights=path, lowercase=False)  # txt2img_demo.lua exactly
    got = demo.encode(CAPTIONS).double().numpy()
    want = np.stack([torch_forward(model, c.encode()) for c in CAPTIONS])
    assert np.abs(got - want).max() <= 1e-5
    assert np.abs(got[2] - enc.encode(CAPTIONS[2:3]).double().numpy()[0]).max() > 1e-3  # capitals were dropped


def test_load_t7_takes_the_encoders_own_config(released: dict[str, Any]) -> None:
    path, model = released["flowers"]
    enc = gz.create_encoder("char_cnn_rnn.hybrid").load_t7(path)
    want = torch_forward(model, b"a pink flower")
    assert np.abs(enc.encode(["a pink flower"])[0].double().numpy() - want).max() <= 1e-5


def test_a_bare_gmodule_loads_too(tmp_path: Path) -> None:
    """main_txt_coco.lua saves the encoder itself (net_T), not a checkpoint table."""
    net, model = torch_text_encoder("long", np.random.default_rng(3))
    enc = gz.create_encoder("char_cnn_rnn.coco", weights=write_t7(net, tmp_path / "net_T.t7"))
    assert np.abs(enc.encode(["a man riding a horse"])[0].double().numpy()
                  - torch_forward(model, b"a man riding a horse")).max() <= 1e-5


def test_files_that_do_not_fit_are_refused_in_one_line(released: dict[str, Any], tmp_path: Path) -> None:
    cub, _ = released["cub"]
    with pytest.raises(CheckpointError) as err:  # the cub network is not the hybrid one: its third conv is 512 wide
        gz.create_encoder("char_cnn_rnn.hybrid", weights=cub)
    message = str(err.value)
    assert "\n" not in message and "nn.TemporalConvolution at 1.6 weight has shape (512, 2048), expected (256, 2048)" \
        in message
    net, _ = torch_text_encoder("hybrid", np.random.default_rng(4), broken_share=True)
    with pytest.raises(CheckpointError, match=r"nn.Linear at 3.\d+.0 should share its h2h weights with .* 3.5.0"):
        gz.create_encoder("char_cnn_rnn.flowers", weights=write_t7(checkpoint(net), tmp_path / "broken.t7"))
    with pytest.raises(CheckpointError, match="holds a Lua table without protos, not a char-CNN-RNN text encoder"):
        gz.create_encoder("char_cnn_rnn.cub", weights=write_t7({"net": 1}, tmp_path / "other.t7"))
    with pytest.raises(CheckpointError, match=r"protos table has no enc_doc .*'enc_image'"):
        gz.create_encoder("char_cnn_rnn.cub", weights=write_t7({"protos": {"enc_image": nn("Identity")}},
                                                               tmp_path / "image_only.t7"))
    with pytest.raises(CheckpointError, match="TemporalMaxPooling .* are \\[\\(3, 3\\), \\(3, 3\\)\\], expected"):
        gz.create_encoder("char_cnn_rnn.cub", pool_sizes=(3, 3, 3), pool_strides=(3, 3, 2)).load_t7(cub)


def test_rnn_roles_follow_the_gmodule_order() -> None:
    """Post-order from the output, inputs in order: FixedRNN i2h, (i2h, h2h)…; FixedGRU i2h, then per step update,
    candidate input, reset, reset hidden, candidate hidden."""
    assert rnn_roles("rnn", 3, True) == ["i2h", "i2h", "h2h", "i2h", "h2h"]
    gru = ["i2h_update", "h2h_update", "i2h", "i2h_reset", "h2h_reset", "h2h"]
    assert rnn_roles("gru", 3, True) == ["i2h", *gru, *gru]
    assert len(rnn_roles("gru", 200, False)) == 1 + 6 * 199  # deep graphs walk without recursion


# -- the encoder --------------------------------------------------------------------------------------------------


def test_character_ids_follow_the_lua_dict() -> None:
    enc = gz.create_encoder("char_cnn_rnn.small")
    ids = enc.char_ids(["a-Z é"])[0].tolist()
    assert ids[:7] == [1, 60, 26, 70, 0, 0, 0]  # '-' twice in the alphabet: the later index (60); é = 2 blank bytes
    assert gz.create_encoder("char_cnn_rnn.small", lowercase=False).char_ids(["Z"])[0, 0] == 0
    assert enc.char_ids(["x" * 500]).shape == (1, 72)
    raw = caption_bytes(["ab", "c"], 4)
    assert raw.tolist() == [[97, 98, 0, 0], [99, 0, 0, 0]] and enc.ids_from_bytes(raw)[:, :3].tolist() == [[1, 2, 0],
                                                                                                         [3, 0, 0]]


def test_bad_inputs_and_configs_are_refused() -> None:
    enc = gz.create_encoder("char_cnn_rnn.small")
    with pytest.raises(ShapeError, match=r"\(B, 72\) integer"):
        enc(torch.zeros(2, 71, dtype=torch.long))
    with pytest.raises(ShapeError, match=r"\[0, 70\]"):
        enc(torch.full((1, 72), 71))
    with pytest.raises(InputError, match="sentence 1 is empty"):
        enc.encode(["fine", " "])
    with pytest.raises(ConfigError, match="doc_length' 10 is too short"):
        gz.create_encoder("char_cnn_rnn.small", doc_length=10)
    with pytest.raises(ConfigError, match="'kernel_sizes' must have one entry per conv layer"):
        gz.create_encoder("char_cnn_rnn.small", kernel_sizes=(4, 4))
    with pytest.raises(ConfigError, match="printable ASCII"):
        gz.create_encoder("char_cnn_rnn.small", alphabet="abcé")


# -- DS-SJE -------------------------------------------------------------------------------------------------------


def test_sje_hinge_is_the_lua_loop() -> None:
    """JointEmbeddingLoss: for each anchor i and each other class j, max(0, 1 + s_ij − s_ii), over B·B."""
    gen = torch.Generator().manual_seed(0)
    a, o = torch.randn(5, 3, generator=gen), torch.randn(5, 3, generator=gen)
    want = sum(max(0.0, 1 + float(a[i] @ o[j]) - float(a[i] @ o[i])) for i in range(5) for j in range(5) if j != i) / 25
    assert abs(float(sje_hinge(a, o, torch.arange(5), 1.0)) - want) < 1e-6
    same = torch.tensor([0, 0, 1, 2, 3])  # rows 0 and 1 share a class: not negatives of each other
    drop = sum(max(0.0, 1 + float(a[i] @ o[j]) - float(a[i] @ o[i])) for i, j in ((0, 1), (1, 0))) / 25
    assert abs(float(sje_hinge(a, o, same, 1.0)) - (want - drop)) < 1e-6


def test_caption_dataset_items_and_classes() -> None:
    data = gz.create_dataset("char_cnn_rnn.captions", source_options={"n": 60})
    item = data[0]
    assert item["image"].shape == (3, 32, 32) and item["caption"].dtype == torch.uint8 and item["class"].ndim == 0
    text = bytes(item["caption"].tolist()).rstrip(b"\0").decode()
    assert text in data.captions[0]
    truths = [tuple(data.source.attributes[i].tolist()) for i in range(len(data))]
    for i in range(len(data)):
        for j in range(len(data)):
            assert (data.classes[i] == data.classes[j]) == (truths[i] == truths[j])
    assert len(gz.create_dataset("char_cnn_rnn.captions", source_options={"n": 60}, split="test")) == 6


def test_features_from_an_image_encoder_train_the_linear_image_side() -> None:
    """The original's setting: fixed image features (here attrs.shapes's) and ImageEncoder = Linear."""
    data = gz.create_dataset("char_cnn_rnn.captions", source_options={"n": 40}, image_encoder="attrs.shapes")
    dim = data.image_feat.shape[1]
    obj = gz.create_objective("char_cnn_rnn.sje_small", image_net="linear", image_dim=dim)
    batch = {k: torch.stack([data[i][k] for i in range(8)]) for k in ("caption", "class", "image", "image_feat")}
    loss, terms = obj.loss("E", batch, {})
    loss.backward()
    assert torch.isfinite(loss) and obj.networks["image"].weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="image_dim .* must equal the text embedding size"):
        gz.create_objective("char_cnn_rnn.sje_small", image_net="noop", image_dim=dim)


def test_a_few_steps_lower_the_loss_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    data = gz.create_dataset("char_cnn_rnn.captions", source_options={"n": 200})
    batch = {k: torch.stack([data[i][k] for i in range(32)]) for k in ("caption", "class", "image")}
    obj = gz.create_objective("char_cnn_rnn.sje_small")
    opt = torch.optim.Adam(obj.parameters(), lr=obj.cfg.lr, betas=obj.cfg.betas)
    losses = []
    for _ in range(25):
        opt.zero_grad()
        loss, _ = obj.loss("E", batch, {})
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_ganzoo_encode_writes_char_cnn_rnn_embeddings(tmp_path: Path) -> None:
    from ganzoo_core.cli import main

    path = tmp_path / "shapes.h5"
    assert main(["data", "build", "shapes.32", str(path), "--set", "n=12", "--set", "captions_per_image=2"]) == 0
    torch.manual_seed(0)
    assert main(["encode", str(path), "--encoder", "char_cnn_rnn.small", "--no-progress"]) == 0
    with h5py.File(path) as f:
        table = f["text_embeddings/char_cnn_rnn.small"][()]
        texts = [t.decode() for t in f["captions/text"][()]]
    torch.manual_seed(0)  # the same random initialisation as the command's
    assert table.shape == (24, 256)
    assert np.allclose(table, gz.create_encoder("char_cnn_rnn.small").encode(texts).numpy(), atol=1e-6)
    # the same file feeds DS-SJE: captions and attribute classes read from the file (split train: 11 of 12 images)
    pairs = gz.create_dataset("char_cnn_rnn.captions", source="h5.file", source_options={"path": str(path)})
    assert len(pairs) == 11 and pairs.captions[0] == texts[:2] and int(pairs.classes.max()) < 11
    assert bytes(pairs[0]["caption"].tolist()).rstrip(b"\0").decode() in texts[:2]
    # --weights: a trained encoder's file gives its embeddings, not a fresh initialisation's
    torch.manual_seed(7)
    trained = gz.create_encoder("char_cnn_rnn.small")
    save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, str(tmp_path / "enc.safetensors"))
    assert main(["encode", str(path), "--encoder", "char_cnn_rnn.small", "--weights", str(tmp_path / "enc.safetensors"),
                 "--force", "--no-progress"]) == 0
    with h5py.File(path) as f:
        again = f["text_embeddings/char_cnn_rnn.small"][()]
    assert np.allclose(again, trained.encode(texts).numpy(), atol=1e-6) and not np.allclose(again, table, atol=1e-3)


# -- learning outcome ---------------------------------------------------------------------------------------------


@torch.no_grad()
def caption_to_image(objective: torch.nn.Module, test: Any) -> tuple[float, float]:
    """Each held-out image's first caption ranks all held-out images: (top-1 of the right class, recall@5 of the
    exact image)."""
    objective.eval()
    images = torch.stack([test.source[i]["image"] for i in range(len(test))])
    scores = objective.embed_texts(caption_bytes([c[0] for c in test.captions], 256)) @ \
        objective.embed_images({"image": images}).T
    top1 = (test.classes[scores.argmax(1)] == test.classes).float().mean()
    recall5 = (scores.topk(5, 1).indices == torch.arange(len(test))[:, None]).any(1).float().mean()
    return float(top1), float(recall5)


STEPS = 400  # ≈ 14 epochs of 1,800 images at batch 64


@pytest.mark.slow
def test_sje_training_retrieves_held_out_images(tmp_path: Path) -> None:
    from ganzoo_core.training import TrainCfg, train

    data = gz.create_dataset("char_cnn_rnn.captions", source_options={"n": 2000})
    test = gz.create_dataset("char_cnn_rnn.captions", source_options={"n": 2000}, split="test")  # 200 unseen images
    torch.manual_seed(0)
    untrained = gz.create_objective("char_cnn_rnn.sje_small")
    torch.manual_seed(0)
    objective = gz.create_objective("char_cnn_rnn.sje_small")
    start = time.perf_counter()
    train(objective, data, tmp_path / "run", TrainCfg(steps=STEPS, batch_size=64, log_every=50, sample_every=0,
                                                      checkpoint_every=0, progress=False, tensorboard=False))
    seconds = time.perf_counter() - start
    before, after = caption_to_image(untrained, test), caption_to_image(objective, test)
    print(f"DS-SJE {STEPS} steps in {seconds:.0f} s: caption→image top-1 class {before[0]:.3f} → {after[0]:.3f}, "
          f"recall@5 exact {before[1]:.3f} → {after[1]:.3f} (200 held-out images)")
    assert after[0] >= before[0] + 0.3 and after[1] >= before[1] + 0.4
