"""The char-CNN-RNN text encoder: Reed, Akata, Lee & Schiele, "Learning Deep Representations of Fine-Grained Visual
Descriptions", CVPR 2016 (arXiv:1605.05395), and its training objective DS-SJE.

The network, as the official Lua code builds it (reedscot/cvpr2016 @7988b42: ``modules/HybridCNN.lua``,
``modules/FixedRNN.lua``, ``train_sje_hybrid.lua``, ``util/MultimodalMinibatchLoaderCaption.lua``; reedscot/icml2016
@db3f0c6: ``modules/HybridCNNLong.lua``, ``modules/FixedGRU.lua``, ``main_txt_coco.lua``, ``txt2img_demo.lua``,
``CONFIG``):

    caption ▸ one-hot (doc_length=201 × 70)                    txt[t, dict[byte t]] = 1; other bytes: a zero row
    TemporalConvolution(70→384, k4) ▸ Threshold ▸ TemporalMaxPooling(3, 3)     201 → 198 → 66
    TemporalConvolution(384→512, k4) ▸ Threshold ▸ TemporalMaxPooling(3, 3)    66 → 63 → 21
    TemporalConvolution(512→cnn_dim, k4) ▸ Threshold ▸ TemporalMaxPooling(3, 2)  21 → 18 → 8   (HybridCNN)
                                          ▸ Threshold, no pooling              21 → 18          (HybridCNNLong)
    SplitTable ▸ RNN over the time steps ▸ Dropout(0) ▸ Linear(cnn_dim → 1024)

    FixedRNN:  h₁ = relu(W_i x₁ + b_i);  h_t = relu(W_i x_t + b_i + W_h h_{t−1} + b_h);  out = mean_t h_t
               (FixedRNN.lua always averages: the ``avg`` argument HybridCNN passes is ignored)
    FixedGRU:  h₁ = tanh(W x₁ + b)  (no gates at the first step);  z, r = σ(W_z x + U_z h), σ(W_r x + U_r h);
               h̃ = tanh(W x + U (r ⊙ h));  h = z ⊙ h̃ + (1 − z) ⊙ h;  out = mean_t h_t (avg=1) or the last h

``Threshold`` is ``nn.Threshold()``: x where x > 1e-6, else 0. The alphabet is the loader's string
``abcdefghijklmnopqrstuvwxyz0123456789-,;.!?:'"/\\|_@#$%^&*~`+-=<>()[]{} `` (70 characters, ``-`` twice: Lua's
``dict`` keeps the last index, so the first ``-`` column is never set). Characters are Lua bytes: a byte outside the
alphabet (an upper-case letter in ``txt2img_demo.lua``, any non-ASCII byte) leaves its time step blank; text past
``doc_length`` bytes is cut. ``lowercase=True`` (default) lower-cases ASCII letters first, since the alphabet has no
capitals; ``lowercase=False`` is the demo script byte for byte.

Released encoders and the variant of each (all 1024-d, doc_length 201):
    ``char_cnn_rnn.hybrid``   ``train_sje_hybrid.lua`` defaults (cvpr2016's released birds/flowers models):
                              HybridCNN + FixedRNN, cnn_dim 256 (8 steps) — 1,814,144 parameters
    ``char_cnn_rnn.flowers``  icml2016 ``CONFIG`` FLOWERS_NET_TXT ``lm_sje_flowers_c10_hybrid_…_iter16400.t7``,
                              written by ``train_flowers_hybrid.sh``: the same network as ``hybrid``
    ``char_cnn_rnn.cub``      icml2016 ``CONFIG`` CUB_NET_TXT ``lm_sje_nc4_cub_hybrid_gru18_a1_c512_…_iter30000.t7``
                              (the file StackGAN embeds CUB with): HybridCNNLong + FixedGRU over 18 steps, avg=1,
                              cnn_dim 512, the two modules icml2016 ships — 4,045,184 parameters
    ``char_cnn_rnn.coco``     ``main_txt_coco.lua`` (``scripts/train_coco_txt.sh``): the same network as ``cub``
    ``char_cnn_rnn.small``    ours: a CPU size for the captioned shapes (doc_length 72, 12 steps, 256-d)

Weights: a ``train_sje_hybrid.lua`` checkpoint (a table whose ``protos.enc_doc`` is the encoder) or a bare
``nn.gModule`` (as ``main_txt_coco.lua`` saves ``net_T``) loads by ``weights=`` (``ganzoo_convert_checkpoint``) or
``load_t7``; it is parsed with torchfile (data only, no Lua runs). TemporalConvolution's weight (out, kW·in) is
(out, kW, in) frame-major, so ``Conv1d.weight = W.view(out, kW, in).permute(0, 2, 1)``. The RNN's linear layers are
one module per time step sharing two (RNN) or six (GRU) weights; they are matched to their roles by the order
nngraph's ``gModule`` lists its modules (``graph.Graph:topsort``: a post-order walk from the output over each node's
inputs in order, transcribed in ``rnn_roles``), and every copy of a shared weight must equal the first.

DS-SJE (``train_sje_hybrid.lua`` ``JointEmbeddingLoss``, ``-symmetric 1``): with scores S = φ(v) φ(t)ᵀ over a batch,
    L = Σ_i Σ_{j: class j ≠ class i} max(0, margin + S_ij − S_ii) / B²  (images rank texts)
      + the same on Sᵀ                                                  (texts rank images),  margin 1.
The original draws one class per batch row (so no two rows share a class) and uses fixed GoogLeNet features with a
no-op image encoder (``-image_noop 1``); here pairs of one class never count as negatives, and the image side is
``image_net``: ours ``"conv"`` (a small conv net trained jointly), or ``"linear"`` / ``"noop"`` (the original's
``ImageEncoder``) on features a registered image encoder computed once (the dataset's ``image_encoder``). The
original optimiser is RMSprop (lr 7e-4, ×0.98 per epoch, uniform(−0.08, 0.08) init); the ganzoo engine uses Adam.

File order: config → text → blocks → encoder → .t7 weights → image side → objective → dataset → variants →
registration.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

import ganzoo_core as gz
from ganzoo_core import validators as v
from ganzoo_core.data.schema import read_h5
from ganzoo_core.errors import CheckpointError, ConfigError, GanzooError, ShapeError
from ganzoo_core.text import check_sentences
from ganzoo_core.torch7 import T7Module, is_t7_file, read_t7, t7_field, t7_modules, t7_typename

log = logging.getLogger("ganzoo.char_cnn_rnn")

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-,;.!?:'\"/\\|_@#$%^&*~`+-=<>()[]{} "  # the loader's string, 70
THRESHOLD = 1e-6  # nn.Threshold(): y = x if x > 1e-6 else 0
RNNS = ("rnn", "gru")
IMAGE_NETS = ("conv", "linear", "noop")
CLASSES = ("attributes", "label", "image")

# ---------------------------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------------------------


def _alphabet(_: Any, attribute: attrs.Attribute, value: str) -> None:
    if not value or len(value) > 255 or not all(32 <= ord(c) < 127 for c in value):
        raise ValueError(f"'{attribute.name}' must be 1 to 255 printable ASCII characters, got {value!r}")


def _finite(_: Any, attribute: attrs.Attribute, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"'{attribute.name}' must be a finite number, got {value!r}")


def conv_lengths(length: int, kernels: Sequence[int], pools: Sequence[int], strides: Sequence[int]) -> list[int]:
    """The sequence length after each conv (stride 1, no padding) and its max pooling (floor mode), from ``length``."""
    out = []
    for k, p, s in zip(kernels, pools, strides):
        length = (length - k + 1 - p) // s + 1 if length - k + 1 >= p else 0
        out.append(length)
    return out


@attrs.frozen(kw_only=True)
class EncoderCfg:
    doc_length: int = attrs.field(default=201, validator=v.size)  # characters read (the one-hot's time axis)
    alphabet: str = attrs.field(default=ALPHABET, validator=_alphabet)  # column i + 1 = alphabet[i] (last one wins)
    lowercase: bool = True  # ASCII letters lower-cased first (False: txt2img_demo.lua's encoding exactly)
    # TemporalConvolution output sizes; the last is the RNN size (the code's cnn_dim)
    channels: tuple[int, ...] = attrs.field(default=(384, 512, 256), converter=tuple, validator=v.each(v.size))
    kernel_sizes: tuple[int, ...] = attrs.field(default=(4, 4, 4), converter=tuple, validator=v.each(v.size))
    # TemporalMaxPooling(size, stride) after each conv; (1, 1) is no pooling (HybridCNNLong's third conv)
    pool_sizes: tuple[int, ...] = attrs.field(default=(3, 3, 3), converter=tuple, validator=v.each(v.size))
    pool_strides: tuple[int, ...] = attrs.field(default=(3, 3, 2), converter=tuple, validator=v.each(v.size))
    rnn: str = attrs.field(default="rnn", validator=v.one_of(RNNS))  # FixedRNN.lua or FixedGRU.lua
    average: bool = True  # the mean hidden state over the steps (FixedRNN always; FixedGRU avg=1), else the last
    embed_dim: int = attrs.field(default=1024, validator=v.size)  # the output Linear (the code's emb_dim)
    dropout: float = attrs.field(default=0.0, validator=v.probability)  # before the output Linear (-dropout 0)
    init_range: float = attrs.field(default=0.08, validator=attrs.validators.and_(v.non_negative, _finite))
    batch_size: int = attrs.field(default=256, validator=v.size)  # captions per forward pass in encode

    def __attrs_post_init__(self) -> None:
        n = len(self.channels)
        for name in ("kernel_sizes", "pool_sizes", "pool_strides"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"'{name}' must have one entry per conv layer ({n}, like 'channels'), got "
                                 f"{getattr(self, name)!r}")
        if self.steps < 1:
            raise ValueError(f"'doc_length' {self.doc_length} is too short for the conv stack (sequence lengths "
                             f"{conv_lengths(self.doc_length, self.kernel_sizes, self.pool_sizes, self.pool_strides)}"
                             "); the RNN needs at least one time step")

    @property
    def steps(self) -> int:
        """Time steps the RNN runs over (8 for HybridCNN at doc_length 201, 18 for HybridCNNLong)."""
        lengths = conv_lengths(self.doc_length, self.kernel_sizes, self.pool_sizes, self.pool_strides)
        return lengths[-1] if lengths and min(lengths) > 0 else 0

    @property
    def cnn_dim(self) -> int:
        return self.channels[-1]


# ---------------------------------------------------------------------------------------------------------------
# Text → character ids
# ---------------------------------------------------------------------------------------------------------------


def byte_table(alphabet: str, lowercase: bool) -> Tensor:
    """(256,) int64: the one-hot column + 1 of each byte (0: none), as the Lua ``dict`` maps characters (a repeated
    character keeps its last index); with ``lowercase`` an ASCII capital maps like its lower-case letter."""
    table = torch.zeros(256, dtype=torch.long)
    for i, ch in enumerate(alphabet, start=1):
        table[ord(ch)] = i
    if lowercase:
        for upper in range(ord("A"), ord("Z") + 1):
            table[upper] = table[upper + 32]
    return table


def caption_bytes(texts: Sequence[str], length: int) -> Tensor:
    """(B, length) uint8: the UTF-8 bytes of each text, cut or padded with zeros."""
    out = torch.zeros(len(texts), length, dtype=torch.uint8)
    for i, text in enumerate(texts):
        raw = text.encode("utf-8")[:length]
        if raw:
            out[i, :len(raw)] = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Blocks: the RNNs over the CNN's time steps
# ---------------------------------------------------------------------------------------------------------------


class FixedRnn(nn.Module):
    """``FixedRNN.lua``: a ReLU RNN whose first step has no recurrent term; the hidden states averaged over time."""

    ROLES = ("i2h", "h2h")

    def __init__(self, dim: int, *, average: bool = True) -> None:
        super().__init__()
        self.average = average
        self.i2h = nn.Linear(dim, dim)
        self.h2h = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, dim) → (B, dim)."""
        inputs = self.i2h(x)  # (B, T, dim): the shared input layer at every step
        h = torch.relu(inputs[:, 0])
        total = h
        for t in range(1, x.shape[1]):
            h = torch.relu(inputs[:, t] + self.h2h(h))
            total = total + h
        return total * (1.0 / x.shape[1]) if self.average else h


class FixedGru(nn.Module):
    """``FixedGRU.lua``: a GRU whose first step is h₁ = tanh(W x₁ + b) (no gates, no h₀); each gate has an input and
    a hidden Linear with its own bias; the reset gate scales h before the hidden Linear of the candidate."""

    ROLES = ("i2h_update", "i2h_reset", "i2h", "h2h_update", "h2h_reset", "h2h")

    def __init__(self, dim: int, *, average: bool = True) -> None:
        super().__init__()
        self.average = average
        for role in self.ROLES:
            setattr(self, role, nn.Linear(dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, dim) → (B, dim)."""
        xu, xr, xc = self.i2h_update(x), self.i2h_reset(x), self.i2h(x)  # (B, T, dim) each
        h = torch.tanh(xc[:, 0])
        total = h
        for t in range(1, x.shape[1]):
            z = torch.sigmoid(xu[:, t] + self.h2h_update(h))
            r = torch.sigmoid(xr[:, t] + self.h2h_reset(h))
            candidate = torch.tanh(xc[:, t] + self.h2h(r * h))
            h = z * candidate + (1 - z) * h
            total = total + h
        return total * (1.0 / x.shape[1]) if self.average else h


# ---------------------------------------------------------------------------------------------------------------
# The encoder
# ---------------------------------------------------------------------------------------------------------------


class CharCnnRnnEncoder(nn.Module):
    """char-CNN-RNN: captions (as character ids) → (B, embed_dim) vectors."""

    def __init__(self, cfg: EncoderCfg = EncoderCfg()) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed_dim = cfg.embed_dim
        widths = (len(cfg.alphabet), *cfg.channels)
        self.convs = nn.ModuleList(nn.Conv1d(widths[i], widths[i + 1], k) for i, k in enumerate(cfg.kernel_sizes))
        self.rnn = (FixedGru if cfg.rnn == "gru" else FixedRnn)(cfg.cnn_dim, average=cfg.average)
        self.dropout = nn.Dropout(cfg.dropout)
        self.proj = nn.Linear(cfg.cnn_dim, cfg.embed_dim)
        self._table = byte_table(cfg.alphabet, cfg.lowercase)  # not a buffer: the config defines it
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``params:uniform(-0.08, 0.08)`` over every parameter, as ``train_sje_hybrid.lua`` starts."""
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-self.cfg.init_range, self.cfg.init_range)

    # -- text → ids --
    def char_ids(self, texts: Sequence[str]) -> Tensor:
        """(B, doc_length) int64 one-hot column + 1 of each byte of each caption (0: blank step)."""
        return self.ids_from_bytes(caption_bytes(texts, self.cfg.doc_length))

    def ids_from_bytes(self, raw: Tensor) -> Tensor:
        """(B, N) uint8 caption bytes (zero-padded) → (B, doc_length) int64 ids: cut or padded to doc_length."""
        if raw.ndim != 2 or raw.dtype != torch.uint8:
            raise ShapeError(f"caption bytes must be a (B, N) uint8 tensor, got {tuple(raw.shape)} {raw.dtype}")
        n = self.cfg.doc_length
        raw = raw[:, :n] if raw.shape[1] >= n else F.pad(raw, (0, n - raw.shape[1]))
        return self._table.to(raw.device)[raw.long()]

    # -- the network --
    def features(self, chars: Tensor) -> Tensor:
        """The CNN part: (B, doc_length) ids → (B, steps, cnn_dim), the RNN's inputs."""
        a, n = len(self.cfg.alphabet), self.cfg.doc_length
        if chars.ndim != 2 or chars.shape[1] != n or chars.dtype not in (torch.int64, torch.int32):
            raise ShapeError(f"char-CNN-RNN input must be (B, {n}) integer character ids, got "
                             f"{tuple(chars.shape)} {chars.dtype}")
        if chars.numel() and (int(chars.min()) < 0 or int(chars.max()) > a):
            raise ShapeError(f"character ids must lie in [0, {a}] (0 = blank), got [{int(chars.min())}, "
                             f"{int(chars.max())}]")
        weight = self.convs[0].weight
        x = F.one_hot(chars.long(), a + 1)[..., 1:].to(weight.dtype).transpose(1, 2)  # (B, n) → (B, alphabet, n)
        for conv, k, s in zip(self.convs, self.cfg.pool_sizes, self.cfg.pool_strides):
            x = F.threshold(conv(x), THRESHOLD, 0.0)  # (B, C_in, L) → (B, C_out, L − k + 1)
            if (k, s) != (1, 1):
                x = F.max_pool1d(x, k, s)  # floor((L − k) / s) + 1, as TemporalMaxPooling
        return x.transpose(1, 2)  # (B, cnn_dim, steps) → (B, steps, cnn_dim)

    def forward(self, chars: Tensor) -> Tensor:
        """(B, doc_length) character ids → (B, embed_dim)."""
        return self.proj(self.dropout(self.rnn(self.features(chars))))

    @torch.no_grad()
    def encode(self, batch: Sequence[str]) -> Tensor:
        """(B, embed_dim) float32 embeddings of captions, computed in eval mode."""
        texts = check_sentences(batch, "char_cnn_rnn")
        device = self.proj.weight.device
        out = torch.zeros(len(texts), self.embed_dim, device=device)
        was_training = self.training
        self.eval()
        try:
            for start in range(0, len(texts), self.cfg.batch_size):
                chunk = texts[start:start + self.cfg.batch_size]
                out[start:start + len(chunk)] = self.forward(self.char_ids(chunk).to(device)).float()
        finally:
            self.train(was_training)
        return out

    def load_t7(self, path: str | Path) -> CharCnnRnnEncoder:
        """Load a released Torch7 text encoder (see ``t7_state_dict``) into this encoder; returns it."""
        from ganzoo_core.checkpoints import load_into

        load_into(self, t7_state_dict(path, self.cfg, what=type(self).__name__), Path(path))
        return self

    # -- Component --
    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor]:
        return (torch.randint(0, len(self.cfg.alphabet) + 1, (batch_size, self.cfg.doc_length)),)

    def output_shapes(self, batch_size: int = 2) -> tuple[int, int]:
        return (batch_size, self.embed_dim)


# ---------------------------------------------------------------------------------------------------------------
# Released Torch7 weights
# ---------------------------------------------------------------------------------------------------------------


class _Node:
    """A node of the graph FixedRNN.lua / FixedGRU.lua build: a role for the linear layers, and ordered inputs."""

    __slots__ = ("inputs", "role")

    def __init__(self, role: str | None, *inputs: _Node) -> None:
        self.role, self.inputs = role, inputs


def rnn_roles(rnn: str, steps: int, average: bool) -> list[str]:
    """The roles of the RNN's linear layers (one per use of a shared weight) in the order the saved ``nn.gModule``
    lists them: its ``forwardnodes`` are ``graph.Graph:topsort()`` of the forward graph, a post-order depth-first
    walk from the output node over each node's inputs in the order they were given; the walker descends into each
    ``nn.Sequential{nn.Linear}`` in place."""
    op, lin = (lambda *xs: _Node(None, *xs)), (lambda role, x: _Node(role, x))
    xs = [op() for _ in range(steps)]
    if rnn == "rnn":  # FixedRNN.lua: relu(i2h x) first, then relu(CAdd{i2h x, h2h h}); the sum chain; MulConstant
        hidden = [op(lin("i2h", xs[0]))]
        total = hidden[0]
        for i in range(1, steps):
            hidden.append(op(op(lin("i2h", xs[i]), lin("h2h", hidden[-1]))))
            total = op(total, hidden[-1])
        out = op(total)
    else:  # FixedGRU.lua
        hidden = [op(lin("i2h", xs[0]))]
        for i in range(1, steps):
            x, h = xs[i], hidden[-1]
            update = op(op(lin("i2h_update", x), lin("h2h_update", h)))
            reset = op(op(lin("i2h_reset", x), lin("h2h_reset", h)))
            candidate = op(op(lin("i2h", x), lin("h2h", op(reset, h))))
            hidden.append(op(op(update, candidate), op(op(op(update)), h)))
        if average:
            total = hidden[0]
            for h in hidden[1:]:
                total = op(total, h)
            out = op(total)
        else:
            out = hidden[-1]
    roles: list[str] = []
    visited: set[int] = set()
    stack: list[tuple[_Node, bool]] = [(out, False)]
    while stack:  # iterative post-order (a 200-step GRU nests thousands deep)
        node, expanded = stack.pop()
        if expanded:
            if node.role is not None:
                roles.append(node.role)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(node.inputs) if id(child) not in visited)
    return roles


def _text_encoder(top: Any, path: Path) -> Any:
    """The encoder module of a Torch7 file: ``protos.enc_doc`` of a training checkpoint, or the file's gModule."""
    protos = t7_field(top, "protos")
    if protos is not None:
        enc = t7_field(protos, "enc_doc")
        if enc is None:
            keys = sorted(k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)
                          for k in (protos.keys() if isinstance(protos, dict) else ()))
            raise CheckpointError(f"{str(path)!r}: the checkpoint's protos table has no enc_doc (the text encoder "
                                  f"train_sje_hybrid.lua saves), only {keys}")
        return enc
    if t7_typename(top) == "nn.gModule":
        return top
    kind = t7_typename(top) or ("Lua table without protos" if isinstance(top, dict | list) else type(top).__name__)
    raise CheckpointError(f"{str(path)!r} holds a {kind}, not a char-CNN-RNN text encoder: expected a "
                          "train_sje_hybrid.lua checkpoint (a table with protos.enc_doc) or an nn.gModule")


def _check_shape(path: Path, what: str, module: T7Module, name: str, expected: tuple[int, ...]) -> Tensor:
    tensor = module.tensors.get(name)
    if tensor is None:
        raise CheckpointError(f"{str(path)!r} does not fit {what}: {module.describe()} has no {name}, expected one of "
                              f"shape {expected}")
    if tuple(tensor.shape) != expected:
        raise CheckpointError(f"{str(path)!r} does not fit {what}: {module.describe()} {name} has shape "
                              f"{tuple(tensor.shape)}, expected {expected}")
    return tensor


def t7_state_dict(path: str | Path, cfg: EncoderCfg, *, what: str = "the char-CNN-RNN encoder") -> dict[str, Tensor]:
    """The state dict of ``CharCnnRnnEncoder(cfg)`` from a released Torch7 text encoder file.

    The file holds a ``train_sje_hybrid.lua`` checkpoint (``protos.enc_doc``) or a bare ``nn.gModule``. Its
    TemporalConvolution and Linear layers are taken in forward order: the convs, the RNN's per-step linear layers
    (``rnn_roles``), then the output layer. Anything that does not fit ``cfg`` is a ``CheckpointError`` naming the
    first module and tensor that does not fit and the expected shape."""
    path = Path(path)
    encoder = _text_encoder(read_t7(path), path)
    modules = t7_modules(encoder)
    convs = [m for m in modules if m.typename.endswith(".TemporalConvolution")]
    linears = [m for m in modules if m.typename.endswith(".Linear")]
    pools = [m for m in modules if m.typename.endswith(".TemporalMaxPooling")]
    known = {id(m) for m in convs + linears}
    for m in modules:
        if id(m) not in known and "weight" in m.tensors:
            raise CheckpointError(f"{str(path)!r} does not fit {what}: {m.describe()} has a weight "
                                  f"{tuple(m.tensors['weight'].shape)}; a char-CNN-RNN has only TemporalConvolution "
                                  "and Linear layers")
    if len(convs) != len(cfg.channels):
        raise CheckpointError(f"{str(path)!r} does not fit {what}: it has {len(convs)} TemporalConvolution layers, "
                              f"expected {len(cfg.channels)}")
    state: dict[str, Tensor] = {}
    widths = (len(cfg.alphabet), *cfg.channels)
    for i, (m, k) in enumerate(zip(convs, cfg.kernel_sizes)):
        w = _check_shape(path, what, m, "weight", (widths[i + 1], widths[i] * k))
        state[f"convs.{i}.bias"] = _check_shape(path, what, m, "bias", (widths[i + 1],))
        if m.fields.get("kW", k) != k or m.fields.get("dW", 1) != 1:
            raise CheckpointError(f"{str(path)!r} does not fit {what}: {m.describe()} has kW={m.fields.get('kW')}, "
                                  f"dW={m.fields.get('dW')}, expected kW={k}, dW=1")
        state[f"convs.{i}.weight"] = w.view(widths[i + 1], k, widths[i]).permute(0, 2, 1).contiguous()
    found = [(int(m.fields.get("kW", 0)), int(m.fields.get("dW", 0))) for m in pools]
    expected_pools = [(k, s) for k, s in zip(cfg.pool_sizes, cfg.pool_strides) if (k, s) != (1, 1)]
    if found != expected_pools:
        raise CheckpointError(f"{str(path)!r} does not fit {what}: its TemporalMaxPooling (kW, dW) are {found}, "
                              f"expected {expected_pools}")
    roles = rnn_roles(cfg.rnn, cfg.steps, cfg.average)
    kind = f"{'FixedGRU' if cfg.rnn == 'gru' else 'FixedRNN'} over {cfg.steps} steps"
    if len(linears) != len(roles) + 1:
        raise CheckpointError(f"{str(path)!r} does not fit {what}: it has {len(linears)} Linear layers, expected "
                              f"{len(roles) + 1} (a {kind}, one layer per step and weight, then the output layer)")
    d = cfg.cnn_dim
    first: dict[str, T7Module] = {}
    for role, m in zip(roles, linears):
        weight = _check_shape(path, what, m, "weight", (d, d))
        bias = _check_shape(path, what, m, "bias", (d,))
        if role not in first:
            first[role] = m
            state[f"rnn.{role}.weight"], state[f"rnn.{role}.bias"] = weight, bias
        elif not (torch.equal(weight, state[f"rnn.{role}.weight"]) and torch.equal(bias, state[f"rnn.{role}.bias"])):
            raise CheckpointError(f"{str(path)!r} does not fit {what}: {m.describe()} should share its {role} weights "
                                  f"with {first[role].describe()} (one {kind}) but differs from them")
    out = linears[-1]
    state["proj.weight"] = _check_shape(path, what, out, "weight", (cfg.embed_dim, d))
    state["proj.bias"] = _check_shape(path, what, out, "bias", (cfg.embed_dim,))
    return state


@gz.hookimpl
def ganzoo_convert_checkpoint(kind: str, name: str, path: Path) -> dict[str, Tensor] | None:
    """Released Torch7 char-CNN-RNN files (``.t7``) for ``create_encoder("char_cnn_rnn.<variant>", weights=...)``,
    checked against the variant's registered config."""
    if kind != "encoder" or not name.startswith("char_cnn_rnn.") or not is_t7_file(path):
        return None
    return t7_state_dict(path, gz.get_encoder_cfg(name), what=name)


# ---------------------------------------------------------------------------------------------------------------
# Image side
# ---------------------------------------------------------------------------------------------------------------


class ImageConvNet(nn.Module):
    """Ours: stride-2 4×4 convs with LeakyReLU(0.2), flattened (positions matter in captions), a Linear to
    ``embed_dim``. (B, C, H, W) in [-1, 1] → (B, embed_dim)."""

    def __init__(self, *, channels: int, image_size: int, widths: Sequence[int], embed_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = channels
        for w in widths:
            layers += [nn.Conv2d(c, w, 4, 2, 1), nn.LeakyReLU(0.2)]
            c = w
        self.body = nn.Sequential(*layers)
        side = image_size // 2 ** len(widths)
        self.out = nn.Linear(c * side * side, embed_dim)

    def forward(self, images: Tensor) -> Tensor:
        return self.out(self.body(images).flatten(1))  # (B, C, H, W) → (B, w·side²) → (B, embed_dim)


# ---------------------------------------------------------------------------------------------------------------
# Objective: DS-SJE
# ---------------------------------------------------------------------------------------------------------------


def sje_hinge(anchors: Tensor, others: Tensor, classes: Tensor, margin: float) -> Tensor:
    """``JointEmbeddingLoss(others, anchors, labels)``: Σ_i Σ_{j: class j ≠ class i} max(0, margin + ⟨a_i, o_j⟩ −
    ⟨a_i, o_i⟩) / B², row i of ``anchors`` paired with row i of ``others``."""
    scores = anchors.float() @ others.float().T  # (B, B)
    hinge = (margin + scores - scores.diagonal()[:, None]).clamp_min(0)
    negative = classes[:, None] != classes[None, :]
    return (hinge * negative).sum() / scores.numel()


def _image_net_fits(instance: Any, attribute: attrs.Attribute, value: int) -> None:
    if instance.image_net == "conv" and instance.image_size % 2 ** len(instance.image_widths):
        raise ValueError(f"'image_size' {instance.image_size} must be divisible by 2**{len(instance.image_widths)} "
                         f"(one halving per entry of image_widths {instance.image_widths})")


@attrs.frozen(kw_only=True)
class ObjectiveCfg:
    encoder: str = "char_cnn_rnn.small"  # the text encoder trained (a char_cnn_rnn variant)
    encoder_kwargs: Mapping[str, Any] = attrs.field(factory=dict, converter=dict, hash=False)
    # "conv": ours, on batch["image"]; "linear" / "noop": the original's ImageEncoder on batch["image_feat"]
    image_net: str = attrs.field(default="conv", validator=v.one_of(IMAGE_NETS))
    channels: int = attrs.field(default=3, validator=v.size)  # conv: image channels
    image_size: int = attrs.field(default=32, validator=[v.size, _image_net_fits])  # conv: image side
    image_widths: tuple[int, ...] = attrs.field(default=(32, 64, 128), converter=tuple,
                                                validator=[v.each(v.size), attrs.validators.min_len(1)])
    image_dim: int = attrs.field(default=1024, validator=v.size)  # linear / noop: size of the image features
    margin: float = attrs.field(default=1.0, validator=v.positive)  # the hinge's 1 in JointEmbeddingLoss
    symmetric: bool = True  # -symmetric 1: also rank images for each text
    lr: float = attrs.field(default=7e-4, validator=v.positive)  # the scripts' -learning_rate (RMSprop there)
    betas: tuple[float, float] = attrs.field(default=(0.9, 0.999), converter=tuple, validator=v.betas)
    dataset: str = "char_cnn_rnn.captions"  # what `ganzoo train` uses when --data is not given


class SjeObjective(nn.Module):
    """DS-SJE: a char-CNN-RNN and an image network trained so that each caption scores its own image (and each
    image its own caption) above those of other classes by a margin."""

    def __init__(self, cfg: ObjectiveCfg = ObjectiveCfg()) -> None:
        super().__init__()
        text = gz.create_encoder(cfg.encoder, **cfg.encoder_kwargs)
        if not isinstance(text, CharCnnRnnEncoder):
            raise ConfigError(f"the DS-SJE objective trains a char_cnn_rnn encoder, got {cfg.encoder!r} "
                              f"({type(text).__name__})")
        sizes = {f.name: getattr(text.cfg, f.name) for f in attrs.fields(EncoderCfg)}
        self.cfg = attrs.evolve(cfg, encoder_kwargs=sizes)  # the encoder as built
        d = text.embed_dim
        if cfg.image_net == "conv":
            image: nn.Module = ImageConvNet(channels=cfg.channels, image_size=cfg.image_size,
                                            widths=cfg.image_widths, embed_dim=d)
            self.image_shape = (cfg.channels, cfg.image_size, cfg.image_size)  # `ganzoo train` sizes the data by it
        elif cfg.image_net == "linear":
            image = nn.Linear(cfg.image_dim, d)
        else:
            if cfg.image_dim != d:
                raise ConfigError(f"image_net='noop' uses the image features as they are, so image_dim "
                                  f"({cfg.image_dim}) must equal the text embedding size ({d})")
            image = nn.Identity()
        if cfg.image_net != "conv":
            with torch.no_grad():
                for p in image.parameters():
                    p.uniform_(-text.cfg.init_range, text.cfg.init_range)
        self.networks = nn.ModuleDict({"text": text, "image": image})
        self.phases = (gz.Phase(name="E", networks=("text", "image"), lr=cfg.lr, betas=cfg.betas),)

    @property
    def text(self) -> CharCnnRnnEncoder:
        return self.networks["text"]  # type: ignore[return-value]

    def embed_texts(self, caption: Tensor) -> Tensor:
        """(B, N) uint8 caption bytes → (B, D) text features φ(t)."""
        return self.networks["text"](self.text.ids_from_bytes(caption))

    def embed_images(self, batch: Mapping[str, Tensor]) -> Tensor:
        """θ(v): the image network on ``image`` (conv) or ``image_feat`` (linear / noop) → (B, D)."""
        key = "image" if self.cfg.image_net == "conv" else "image_feat"
        if key not in batch:
            hint = ("build the dataset with image_encoder=<a registered image encoder>" if key == "image_feat"
                    else "use a dataset whose items carry images")
            raise GanzooError(f"image_net={self.cfg.image_net!r} reads batch[{key!r}], which the batch lacks; {hint}")
        return self.networks["image"](batch[key])

    def loss(self, phase: str, batch: Mapping[str, Tensor], ctx: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        if phase != "E":
            raise KeyError(f"the DS-SJE objective has one phase 'E', got {phase!r}")
        txt, img = self.embed_texts(batch["caption"]), self.embed_images(batch)
        classes = batch["class"]
        by_image = sje_hinge(img, txt, classes, self.cfg.margin)  # each image ranks the batch's texts
        by_text = sje_hinge(txt, img, classes, self.cfg.margin)  # each text ranks the batch's images
        loss = by_image + by_text if self.cfg.symmetric else by_image
        with torch.no_grad():
            scores = img.float() @ txt.float().T
            hit = classes[scores.argmax(1)] == classes  # the top text of each image is of its class
        return loss, {"sje_image": by_image.detach(), "sje_text": by_text.detach(), "acc_image": hit.float().mean()}

    @torch.no_grad()
    def sample(self, n: int, batch: Mapping[str, Tensor] | None = None, seed: int = 0) -> Tensor:
        """For each of ``n`` captions of ``batch`` (else of ``example_batch`` drawn from ``seed``), the batch image
        its text embedding scores highest: (n, C, H, W) in [-1, 1]."""
        if batch is None or "caption" not in batch or "image" not in batch:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                batch = self.example_batch(max(n, 2))
        device = self.text.proj.weight.device
        batch = {k: t.to(device) for k, t in batch.items()}
        rows = torch.arange(n, device=device) % batch["caption"].shape[0]
        scores = self.embed_texts(batch["caption"][rows]).float() @ self.embed_images(batch).float().T  # (n, B)
        return batch["image"][scores.argmax(1)].float().clamp(-1, 1)

    def example_batch(self, batch_size: int = 2) -> dict[str, Tensor]:
        cfg = self.cfg
        letters = torch.tensor(list(b"abcdefghijklmnopqrstuvwxyz "), dtype=torch.uint8)
        caption = letters[torch.randint(len(letters), (batch_size, 60))]  # random lower-case text, 60 bytes
        out = {"caption": caption, "class": torch.arange(batch_size),
               "image": torch.rand(batch_size, cfg.channels, cfg.image_size, cfg.image_size) * 2 - 1}
        if cfg.image_net != "conv":
            out["image_feat"] = torch.randn(batch_size, cfg.image_dim)
        return out


# ---------------------------------------------------------------------------------------------------------------
# Dataset: (image, one caption's bytes, class) from a captioned dataset
# ---------------------------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class CaptionsCfg:
    source: str = "shapes.32"  # a registered dataset with images and captions (shapes.32, h5.file, ...)
    source_options: Mapping[str, Any] = attrs.field(factory=dict, converter=dict, hash=False)  # its options
    split: str = "train"  # passed to the source
    image_size: int | None = attrs.field(default=None, validator=v.optional(v.size))  # passed to the source if set
    # what a class is: the attribute row (shapes: colour, shape, size, position), the label, or each image
    classes: str = attrs.field(default="attributes", validator=v.one_of(CLASSES))
    max_bytes: int = attrs.field(default=256, validator=v.size)  # caption bytes per item (the encoder cuts further)
    image_encoder: str | None = None  # a registered image encoder: items also carry its features as "image_feat"


def _captions_of(source: Any) -> tuple[list[list[str]] | None, Any]:
    """The captions (a list per item) and attribute rows of a dataset: its ``captions`` / ``attributes`` (built-in
    datasets), or read from its schema file (``h5.file``: ``captions/text``, ``captions/index``, ``attributes``)."""
    captions, attributes = getattr(source, "captions", None), getattr(source, "attributes", None)
    path, index = getattr(source, "path", None), getattr(source, "index", None)
    if captions is None and path is not None and index is not None:
        with read_h5(path) as f:
            if "captions/text" in f:
                texts, starts = f["captions/text"][()], f["captions/index"][()]
                captions = [[t.decode("utf-8") if isinstance(t, bytes) else str(t)
                             for t in texts[starts[j]:starts[j + 1]]] for j in index]
            if attributes is None and "attributes" in f:
                attributes = f["attributes"][()][index]
    return (None if captions is None else [list(c) for c in captions]), attributes


class CaptionPairs(Dataset[dict[str, Tensor]]):
    """``{"image", "caption" (max_bytes,) uint8, "class"}`` (+ ``"image_feat"``): each image with one of its
    captions, drawn anew each time (the original's ``sen_ix:random``)."""

    def __init__(self, cfg: CaptionsCfg = CaptionsCfg()) -> None:
        self.cfg = cfg
        options = {"split": cfg.split, **cfg.source_options}
        if cfg.image_size is not None:
            options["image_size"] = cfg.image_size
        source = gz.create_dataset(cfg.source, **options)
        captions, attributes = _captions_of(source)
        if not captions or any(not c for c in captions):
            raise GanzooError(f"dataset {cfg.source!r} has images without captions; DS-SJE needs captioned images")
        self.source, self.captions = source, captions
        self.classes = self._classes(len(source), attributes, getattr(source, "labels", None))
        self.image_feat: Tensor | None = None
        if cfg.image_encoder is not None:  # fixed features, computed once (the original's precomputed GoogLeNet)
            extractor = gz.create_encoder(cfg.image_encoder).eval()
            feats = [extractor.encode(torch.stack([source[i]["image"] for i in range(s, min(s + 64, len(source)))]))
                     for s in range(0, len(source), 64)]
            self.image_feat = torch.cat(feats).float()

    def _classes(self, n: int, attributes: Any, labels: Any) -> Tensor:
        if self.cfg.classes == "image":
            return torch.arange(n)
        values = attributes if self.cfg.classes == "attributes" else labels
        if values is None:
            raise GanzooError(f"dataset {self.cfg.source!r} has no {self.cfg.classes}; use classes='image' (each "
                              "image its own class) or 'label' / 'attributes' where the dataset has them")
        values = torch.as_tensor(np.asarray(values))
        return torch.unique(values.reshape(n, -1), dim=0, return_inverse=True)[1]

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        caps = self.captions[i]
        text = caps[int(torch.randint(len(caps), ()))]
        item = {"image": self.source[i]["image"], "caption": caption_bytes([text], self.cfg.max_bytes)[0],
                "class": self.classes[i]}
        if self.image_feat is not None:
            item["image_feat"] = self.image_feat[i]
        return item


# ---------------------------------------------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------------------------------------------

_LONG = {"channels": (384, 512, 512), "pool_sizes": (3, 3, 1), "pool_strides": (3, 3, 1), "rnn": "gru"}
ENCODER_VARIANTS = {
    "cub": EncoderCfg(**_LONG),  # icml2016 CUB: HybridCNNLong + FixedGRU (18 steps, avg=1), cnn_dim 512
    "flowers": EncoderCfg(),  # icml2016 flowers: HybridCNN + FixedRNN (8 steps), cnn_dim 256
    "hybrid": EncoderCfg(),  # train_sje_hybrid.lua's defaults (cvpr2016 released birds / flowers)
    "coco": EncoderCfg(**_LONG),  # main_txt_coco.lua: as cub
    # ours: the captioned shapes on a CPU (captions ≤ 72 bytes): 72 → 69 → 34 → 31 → 15 → 12 steps
    "small": EncoderCfg(doc_length=72, channels=(64, 128, 128), pool_sizes=(2, 2, 1), pool_strides=(2, 2, 1),
                        embed_dim=256),
}
OBJECTIVE_VARIANTS = {
    "sje_small": ObjectiveCfg(lr=1e-3),  # ours: char_cnn_rnn.small and a small conv net on 32×32 images
    "sje_hybrid": ObjectiveCfg(encoder="char_cnn_rnn.hybrid", image_size=64, image_widths=(64, 128, 256, 256)),
}
RELEASED_PARAMS = {"hybrid": 1_814_144, "flowers": 1_814_144, "cub": 4_045_184, "coco": 4_045_184}

# ---------------------------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------------------------

PAPER = "Reed, Akata, Lee & Schiele, CVPR 2016, arXiv:1605.05395"

gz.register_encoder("char_cnn_rnn", variants=ENCODER_VARIANTS, default="cub", paper=PAPER)(CharCnnRnnEncoder)
gz.register_objective("char_cnn_rnn", variants=OBJECTIVE_VARIANTS, default="sje_small", paper=PAPER)(SjeObjective)
gz.register_dataset("char_cnn_rnn.captions", cfg=CaptionsCfg(), paper=PAPER)(CaptionPairs)
