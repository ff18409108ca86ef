"""Skip-thought vectors: Kiros et al., "Skip-Thought Vectors", NIPS 2015 (arXiv:1506.06726).

Encoders (facts: shared/reference/models.md §7):
    uni-skip     word table (620) ▸ GRU 620→2400 ▸ final hidden state (2400)
    bi-skip      word table (620) ▸ forward GRU 620→1200 ‖ backward GRU 620→1200 over the reversed *unpadded*
                 sentence ▸ both final states (2400)
    combine-skip [uni ‖ bi] = 4800, each half L2-normalised (the original's ``use_norm=True``)

Paper / original code symbols → code names:
    Wemb, utable / btable (word tables)       → ``uni_emb`` / ``bi_emb`` (row 0 is padding, zeros)
    encoder_W = [W_r ‖ W_u], encoder_Wx      → ``gru.weight_ih_l0`` = [W_r; W_u; Wx]ᵀ (PyTorch gates r, z=u, n)
    encoder_U = [U_r ‖ U_u], encoder_Ux      → ``gru.weight_hh_l0`` = [U_r; U_u; Ux]ᵀ
    encoder_b, encoder_bx                     → ``gru.bias_ih_l0``; the hidden-side bias is a zero buffer
    encoder_r_*                               → the ``*_reverse`` tensors of the bi-skip GRU
    decoder_f / decoder_b (prev / next)       → ``networks["decoder_prev"]`` / ``networks["decoder_next"]``

The GRU step is h' = u ⊙ h + (1 − u) ⊙ tanh(x·Wx + bx + r ⊙ (h·Ux)) with h₀ = 0: exactly ``nn.GRU`` with
``bias_hh = 0``. ``ZeroHiddenBiasGRU`` keeps that bias as a zero, non-trainable, non-saved buffer, so no optimizer,
``requires_grad_(True)`` or state dict can make it non-zero.

Vocabulary layout of every encoder: id 0 = ``<pad>``, then the words. Models trained here use
``<pad>, <eos>, UNK`` + words by frequency; models loaded from the released files use ``<pad>`` + the lines of
``dictionary.txt`` (which holds ``<eos>`` and ``UNK`` itself). The word list travels with the weights as a
``vocab_bytes`` buffer (one zero-padded UTF-8 row per word), so one safetensors file is a complete encoder.

File order: config → vocabulary → GRU → encoders → decoders → objective → dataset → variants → registration.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence
from torch.optim.optimizer import register_optimizer_step_pre_hook
from torch.utils.data import Dataset

import ganzoo_core as gz
from ganzoo_core import validators as v
from ganzoo_core.errors import GanzooError, InputError, ShapeError
from ganzoo_skipthought_encoder.tokenize import word_tokenize

log = logging.getLogger("ganzoo.skipthought")

PAD, EOS, UNK = "<pad>", "<eos>", "UNK"
PAD_ID = 0
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
SHIPPED = "shipped"  # weights_file value: the file shipped in WEIGHTS_DIR for this variant
MODES = ("uni", "bi", "combine")

# ---------------------------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------------------------


def _finite(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{attribute.name!r} must be a finite number, got {value!r}")


_STD = attrs.validators.and_(v.non_negative, _finite)  # an init standard deviation


@attrs.frozen(kw_only=True)
class EncoderCfg:
    mode: str = attrs.field(default="uni", validator=v.one_of(MODES))
    # rows of each word table, padding row included (original training vocabulary: 20k)
    vocab_size: int = attrs.field(default=20_000, validator=attrs.validators.ge(2))
    word_dim: int = attrs.field(default=620, validator=v.size)  # dim_word
    uni_dim: int = attrs.field(default=2400, validator=v.size)  # uni-skip GRU size
    bi_dim: int = attrs.field(default=1200, validator=v.size)  # bi-skip GRU size per direction
    # UTF-8 bytes per row of the stored word list (at least len("<pad>") = 5)
    max_word_bytes: int = attrs.field(default=32, validator=attrs.validators.ge(len(PAD)))
    use_eos: bool = False  # append <eos> to every sentence in encode (original default: False)
    normalize: bool = True  # L2-normalise the uni and the bi vector separately (original use_norm=True)
    # sentences per forward pass in encode (grouped by length, no padding inside a group)
    batch_size: int = attrs.field(default=128, validator=v.size)
    weights_file: str | None = None  # "shipped", a safetensors path, or None (random init)
    original_dir: str | None = None  # folder with the released dictionary.txt, u/btable.npy, uni/bi_skip.npz
    # N(0, 0.1) input and embedding weights, orthogonal recurrent blocks (original init)
    init_std: float = attrs.field(default=0.1, validator=_STD)


# ---------------------------------------------------------------------------------------------------------------
# Vocabulary: a word list stored as a uint8 buffer
# ---------------------------------------------------------------------------------------------------------------


def placeholder_words(vocab_size: int) -> list[str]:
    """The word list of an encoder built without one: <pad>, <eos>, UNK, then unreachable ``<wN>`` names."""
    base = [PAD, EOS, UNK]
    return (base + [f"<w{i}>" for i in range(len(base), vocab_size)])[:vocab_size]


def words_to_bytes(words: Sequence[str], max_bytes: int) -> Tensor:
    """(len(words), max_bytes) uint8, each row one UTF-8 word padded with zeros."""
    out = torch.zeros(len(words), max_bytes, dtype=torch.uint8)
    for i, word in enumerate(words):
        raw = word.encode("utf-8")
        if len(raw) > max_bytes or not raw or b"\0" in raw:
            raise GanzooError(f"word {i} ({word!r}) needs {len(raw)} bytes, the word list holds 1 to {max_bytes} "
                              "without NUL; build the encoder with a larger max_word_bytes")
        out[i, :len(raw)] = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    return out


def bytes_to_words(table: Tensor) -> list[str]:
    rows = table.cpu().numpy()
    return [bytes(r).rstrip(b"\0").decode("utf-8") for r in rows]


# ---------------------------------------------------------------------------------------------------------------
# GRU with a zero hidden-side bias
# ---------------------------------------------------------------------------------------------------------------


class ZeroHiddenBiasGRU(nn.GRU):
    """``nn.GRU`` (one layer, batch first) whose ``bias_hh`` tensors are zero buffers: the Theano GRU of the
    original has no hidden-side bias."""

    def __init__(self, input_size: int, hidden_size: int, *, bidirectional: bool = False) -> None:
        super().__init__(input_size, hidden_size, batch_first=True, bidirectional=bidirectional)
        for name in [n for n in self._flat_weights_names if n.startswith("bias_hh")]:
            param = self._parameters.pop(name)
            self.register_buffer(name, torch.zeros_like(param.data), persistent=False)
        self._init_flat_weights()  # the flat weight list must point at the buffers, not the removed parameters

    def init_original_(self, std: float) -> None:
        """The original's init: input weights N(0, std), each recurrent gate block orthogonal, biases zero."""
        h = self.hidden_size
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.startswith("weight_ih"):
                    p.normal_(0.0, std)
                elif name.startswith("weight_hh"):
                    for block in p.view(3, h, h):  # (3H, H) → 3 × (H, H): r, z, n
                        nn.init.orthogonal_(block)
                else:
                    p.zero_()

    def final_state(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Final hidden state(s) of right-padded ``x`` (B, T, in) with ``lengths`` (B): (B, H) or (B, 2H).

        Packed sequences run each sentence over its own length only; the backward direction therefore reads
        each *unpadded* sentence reversed (reversing a padded batch would put the padding first)."""
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h_n = super().forward(packed)  # (num_directions, B, H), in the original batch order
        return torch.cat(list(h_n), dim=1)  # (B, num_directions · H): [forward ‖ backward]


# ---------------------------------------------------------------------------------------------------------------
# Encoders
# ---------------------------------------------------------------------------------------------------------------


def lengths_of(token_ids: Tensor, what: str = "token_ids") -> Tensor:
    """Lengths of right-padded (B, T) ids; refuses empty rows and padding before a word."""
    if token_ids.ndim != 2 or token_ids.dtype not in (torch.int64, torch.int32):
        raise ShapeError(f"{what} must be a (B, T) integer tensor, got {tuple(token_ids.shape)} {token_ids.dtype}")
    mask = token_ids != PAD_ID
    lengths = mask.sum(1)
    if bool((lengths == 0).any()):
        raise ShapeError(f"{what} rows {torch.nonzero(lengths == 0).flatten().tolist()} are empty (all padding)")
    if token_ids.shape[1] > 1 and bool((mask[:, 1:] & ~mask[:, :-1]).any()):
        raise ShapeError(f"{what} must be right-padded with {PAD_ID}: padding appears before a word")
    return lengths


class SkipThoughtEncoder(nn.Module):
    """Skip-thought sentence encoder (uni-skip, bi-skip or combine-skip): sentences → (B, embed_dim) vectors."""

    vocab_bytes: Tensor

    def __init__(self, cfg: EncoderCfg = EncoderCfg(), *, words: Sequence[str] | None = None) -> None:
        """``words``: the word list (default: the original files' or the weights file's, else placeholders).

        ``cfg`` keeps no path it read: after ``original_dir`` it holds the files' sizes and ``original_dir=None``,
        after a ``weights_file`` path ``weights_file=None`` (the weights are in the module; ``"shipped"`` names a
        file of this package and stays), so a checkpoint of this encoder rebuilds it without opening any file."""
        super().__init__()
        original = None
        if cfg.original_dir is not None:
            from ganzoo_skipthought_encoder.original import read_original

            original = read_original(cfg.original_dir, cfg.mode)
            cfg = attrs.evolve(cfg, original_dir=None, weights_file=None, **original.sizes(cfg.max_word_bytes))
        self.cfg = cfg
        self.embed_dim = {"uni": cfg.uni_dim, "bi": 2 * cfg.bi_dim, "combine": cfg.uni_dim + 2 * cfg.bi_dim}[cfg.mode]
        if cfg.mode in ("uni", "combine"):
            self.uni_emb = nn.Embedding(cfg.vocab_size, cfg.word_dim, padding_idx=PAD_ID)
            self.uni_gru = ZeroHiddenBiasGRU(cfg.word_dim, cfg.uni_dim)
        if cfg.mode in ("bi", "combine"):
            self.bi_emb = nn.Embedding(cfg.vocab_size, cfg.word_dim, padding_idx=PAD_ID)
            self.bi_gru = ZeroHiddenBiasGRU(cfg.word_dim, cfg.bi_dim, bidirectional=True)
        self.register_buffer("vocab_bytes", torch.zeros(cfg.vocab_size, cfg.max_word_bytes, dtype=torch.uint8))
        self._index: dict[str, int] | None = None
        self.register_load_state_dict_post_hook(_forget_index)
        self.reset_parameters()
        if original is not None:
            original.load_into(self)
        elif cfg.weights_file is not None:
            self._load_weights(cfg.weights_file)  # its vocab_bytes hold the word list
            if cfg.weights_file != SHIPPED:
                self.cfg = attrs.evolve(cfg, weights_file=None)
        if words is not None:
            self.set_words(words)
        elif original is None and cfg.weights_file is None:
            self.set_words(placeholder_words(cfg.vocab_size))

    # -- parameters and vocabulary --
    def reset_parameters(self) -> None:
        for emb in self._embeddings():
            nn.init.normal_(emb.weight, 0.0, self.cfg.init_std)
            with torch.no_grad():
                emb.weight[PAD_ID].zero_()
        for gru in self._grus():
            gru.init_original_(self.cfg.init_std)

    def _embeddings(self) -> list[nn.Embedding]:
        return [m for m in (getattr(self, "uni_emb", None), getattr(self, "bi_emb", None)) if m is not None]

    def _grus(self) -> list[ZeroHiddenBiasGRU]:
        return [m for m in (getattr(self, "uni_gru", None), getattr(self, "bi_gru", None)) if m is not None]

    def _load_weights(self, weights: str) -> None:
        path = WEIGHTS_DIR / "austen_uni.safetensors" if weights == SHIPPED else Path(weights)
        if not path.is_file():
            hint = ("train it with '.venv/bin/python plugins/skipthought-encoder/scripts/train_austen.py'"
                    if weights == SHIPPED else "check the path")
            raise GanzooError(f"skip-thought weights {str(path)!r} are missing; {hint}")
        from safetensors.torch import load_file

        from ganzoo_core.checkpoints import load_into

        load_into(self, load_file(str(path)), path)

    @property
    def words(self) -> list[str]:
        """The word list: ``words[i]`` is the word of id ``i`` (0 is ``<pad>``)."""
        return bytes_to_words(self.vocab_bytes)

    def set_words(self, words: Sequence[str]) -> None:
        """Replace the word list (``len(words) == vocab_size``, ``words[0] == '<pad>'``)."""
        if len(words) != self.cfg.vocab_size or (words and words[0] != PAD):
            raise GanzooError(f"the word list must have vocab_size={self.cfg.vocab_size} words starting with {PAD!r}, "
                              f"got {len(words)} starting with {words[0] if words else None!r}")
        self.vocab_bytes.copy_(words_to_bytes(words, self.cfg.max_word_bytes))
        self._index = None

    def expanded(self, texts: Sequence[str], source: Any) -> Any:
        """An ``Expansion`` (``.encoder``, ``.shared``, ``.added``): this encoder with its vocabulary grown by the
        words of ``texts``, their rows mapped from ``source``'s one-word embeddings (``expand_vocabulary``)."""
        from ganzoo_skipthought_encoder.expand import expand_vocabulary, trained_words, word_vectors

        index = self.word_index()
        words = [*trained_words(self), *sorted({w for t in texts for w in word_tokenize(t) if w not in index})]
        return expand_vocabulary(self, words, word_vectors(source, words))

    def word_index(self) -> dict[str, int]:
        if self._index is None:
            self._index = {w: i for i, w in reversed(list(enumerate(self.words)))}  # first occurrence wins
        return self._index

    # -- text → ids --
    def token_ids(self, sentences: Sequence[str]) -> list[list[int]]:
        """Word ids of each sentence (original tokenisation, no lower-casing; unknown words → UNK)."""
        if isinstance(sentences, str) or not isinstance(sentences, Sequence):
            raise GanzooError(f"encode expects a list of sentences (str), got {type(sentences).__name__}")
        index = self.word_index()
        if UNK not in index:
            raise GanzooError(f"the word list has no {UNK!r} entry, so unknown words cannot be encoded")
        unk, eos = index[UNK], index.get(EOS)
        if self.cfg.use_eos and eos is None:
            raise GanzooError(f"use_eos=True but the word list has no {EOS!r} entry")
        out = []
        for i, sentence in enumerate(sentences):
            if not isinstance(sentence, str):
                raise GanzooError(f"sentence {i} is a {type(sentence).__name__}, expected str")
            tokens = word_tokenize(sentence)
            if not tokens:
                raise InputError(f"sentence {i} ({sentence!r}) is empty or whitespace only; skip-thought cannot encode "
                                 "an empty sentence: remove it or replace it with text")
            ids = [index.get(t, unk) for t in tokens]
            out.append(ids + [eos] if self.cfg.use_eos else ids)  # type: ignore[list-item]
        return out

    # -- the network --
    def hidden(self, token_ids: Tensor) -> dict[str, Tensor]:
        """Raw final states of right-padded ids (B, T): ``{"uni": (B, uni_dim), "bi": (B, 2·bi_dim)}`` per mode."""
        lengths = lengths_of(token_ids)
        if int(token_ids.max()) >= self.cfg.vocab_size or int(token_ids.min()) < 0:
            raise ShapeError(f"token ids must lie in [0, {self.cfg.vocab_size}), got [{int(token_ids.min())}, "
                             f"{int(token_ids.max())}]; was the data tokenised with another vocabulary?")
        out = {}
        if self.cfg.mode in ("uni", "combine"):
            out["uni"] = self.uni_gru.final_state(self.uni_emb(token_ids), lengths)  # (B, T, word) → (B, uni_dim)
        if self.cfg.mode in ("bi", "combine"):
            out["bi"] = self.bi_gru.final_state(self.bi_emb(token_ids), lengths)  # (B, T, word) → (B, 2·bi_dim)
        return out

    def forward(self, token_ids: Tensor) -> Tensor:
        """(B, T) right-padded ids → (B, embed_dim): [uni] | [bi] | [uni ‖ bi], each part L2-normalised if
        ``normalize``."""
        parts = list(self.hidden(token_ids).values())
        if self.cfg.normalize:
            parts = [F.normalize(p, dim=1) for p in parts]
        return torch.cat(parts, dim=1)

    @torch.no_grad()
    def encode(self, batch: Sequence[str]) -> Tensor:
        """(B, embed_dim) float32 vectors of sentences, computed in eval mode, grouped by length (no padding)."""
        ids = self.token_ids(batch)
        device = self.vocab_bytes.device
        out = torch.zeros(len(ids), self.embed_dim, device=device)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        was_training = self.training
        self.eval()
        try:
            for start in range(0, len(order), self.cfg.batch_size):
                chunk = order[start:start + self.cfg.batch_size]
                width = max(len(ids[i]) for i in chunk)
                rows = torch.tensor([ids[i] + [PAD_ID] * (width - len(ids[i])) for i in chunk], device=device)
                out[torch.tensor(chunk, device=device)] = self.forward(rows).float()
        finally:
            self.train(was_training)
        return out

    # -- Component --
    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor]:
        """Right-padded random ids of lengths 1..7 (one row uses the full width)."""
        lengths = torch.randint(1, 8, (batch_size,))
        lengths[0] = 7
        ids = torch.randint(1, self.cfg.vocab_size, (batch_size, 7))
        return (ids.masked_fill(torch.arange(7)[None] >= lengths[:, None], PAD_ID),)

    def output_shapes(self, batch_size: int = 2) -> tuple[int, int]:
        return (batch_size, self.embed_dim)


def _forget_index(module: nn.Module, incompatible: Any) -> None:
    if isinstance(module, SkipThoughtEncoder):
        module._index = None


# ---------------------------------------------------------------------------------------------------------------
# Decoders: conditional GRUs predicting the previous and the next sentence
# ---------------------------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class DecoderCfg:
    vocab_size: int = attrs.field(default=2000, validator=v.size)
    word_dim: int = attrs.field(default=64, validator=v.size)
    context_dim: int = attrs.field(default=128, validator=v.size)  # the encoder's sentence vector (uni_dim, or 2·bi_dim)
    dim: int = attrs.field(default=128, validator=v.size)
    init_std: float = attrs.field(default=0.1, validator=_STD)


class ConditionalGruDecoder(nn.Module):
    """GRU language model conditioned on a sentence vector: the vector enters every step's gates (it is concatenated
    to the word input), h₀ = 0; a linear layer gives the vocabulary logits. Word embeddings come from the encoder."""

    def __init__(self, cfg: DecoderCfg = DecoderCfg()) -> None:
        super().__init__()
        self.cfg = cfg
        self.gru = ZeroHiddenBiasGRU(cfg.word_dim + cfg.context_dim, cfg.dim)
        self.logits = nn.Linear(cfg.dim, cfg.vocab_size)
        self.gru.init_original_(cfg.init_std)
        nn.init.normal_(self.logits.weight, 0.0, cfg.init_std)
        nn.init.zeros_(self.logits.bias)

    def forward(self, words: Tensor, context: Tensor) -> Tensor:
        """Teacher-forced inputs (B, T, word_dim) and context (B, context_dim) → logits (B, T, vocab_size)."""
        ctx = context[:, None, :].expand(-1, words.shape[1], -1)  # (B, ctx) → (B, T, ctx)
        states, _ = nn.GRU.forward(self.gru, torch.cat([words, ctx], dim=2))  # (B, T, word + ctx) → (B, T, dim)
        return self.logits(states)

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor, Tensor]:
        return torch.randn(batch_size, 5, self.cfg.word_dim), torch.randn(batch_size, self.cfg.context_dim)

    def output_shapes(self, batch_size: int = 2) -> tuple[int, int, int]:
        return (batch_size, 5, self.cfg.vocab_size)


# ---------------------------------------------------------------------------------------------------------------
# Objective
# ---------------------------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ObjectiveCfg:
    encoder: str = "skipthought.uni_small"  # a uni or bi encoder (combine-skip is two separately trained models)
    encoder_kwargs: Mapping[str, Any] = attrs.field(factory=dict, converter=dict, hash=False)
    decoder_dim: int | None = attrs.field(default=None, validator=v.optional(v.size))  # None: the encoder's sentence vector size
    corpus: str | None = None  # ordered sentence corpus whose train split gives the vocabulary (e.g. "austen.novels")
    lr: float = attrs.field(default=1e-3, validator=v.positive)  # Adam
    betas: tuple[float, float] = attrs.field(  # Adam defaults (not β1 = 0.5)
        default=(0.9, 0.999), converter=tuple, validator=v.betas)
    # clip the global gradient norm (original training code default; paper: 10); 0 would zero every gradient, inf
    # turns clipping off
    grad_clip: float = attrs.field(default=5.0, validator=attrs.validators.gt(0.0))
    dataset: str = "skipthought.triples"  # what `ganzoo train` uses when --data is not given


def _add_eos(ids: Tensor, eos: int) -> Tensor:
    """(B, T) right-padded → (B, L + 1) with <eos> after each sentence, L = the longest sentence (padding-only
    columns are dropped, so a batch of short sentences costs less)."""
    lengths = lengths_of(ids)
    out = F.pad(ids[:, :int(lengths.max())], (0, 1), value=PAD_ID)  # (B, T) → (B, L + 1)
    return out.scatter(1, lengths[:, None], eos)


CLIP_ATTR = "_ganzoo_skipthought_clip"  # set on an objective's parameters: the max global gradient norm


def _clip_before_step(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    """Global-norm gradient clipping for the parameters of skip-thought objectives, just before their optimizer
    steps (the engine has no clipping option; see the plugin README)."""
    params = [p for g in optimizer.param_groups for p in g["params"] if hasattr(p, CLIP_ATTR) and p.grad is not None]
    if params:
        torch.nn.utils.clip_grad_norm_(params, getattr(params[0], CLIP_ATTR))


register_optimizer_step_pre_hook(_clip_before_step)


def _resolved(cfg: ObjectiveCfg, encoder: EncoderCfg) -> ObjectiveCfg:
    """``cfg`` with the encoder's config as built (``original_dir`` and path ``weights_file`` already read and set to
    None, the sizes they gave filled in), so a checkpoint rebuilds the same shapes without opening any file."""
    name = cfg.encoder
    template = gz.get_encoder_cfg(name)
    if encoder.weights_file is None and template.weights_file is not None:
        name = f"skipthought.{encoder.mode}"  # create_* ignores None overrides: a variant naming no weights file
    return attrs.evolve(cfg, encoder=name, encoder_kwargs=attrs.asdict(encoder))


class SkipThoughtObjective(nn.Module):
    """Encode sentence i, decode sentences i−1 and i+1 from its vector (teacher forcing, cross-entropy)."""

    def __init__(self, cfg: ObjectiveCfg = ObjectiveCfg()) -> None:
        super().__init__()
        encoder = gz.create_encoder(cfg.encoder, **cfg.encoder_kwargs)
        if not isinstance(encoder, SkipThoughtEncoder) or encoder.cfg.mode == "combine":
            raise GanzooError(f"the skip-thought objective trains a uni or bi skip-thought encoder, got {cfg.encoder!r}"
                              " (combine-skip concatenates two separately trained models)")
        self.cfg = _resolved(cfg, encoder.cfg)
        if cfg.corpus is not None:
            encoder.set_words(corpus_vocabulary(cfg.corpus, encoder.cfg.vocab_size))
        else:
            log.info("skip-thought objective without corpus=: the encoder keeps placeholder words")
        e = encoder.cfg
        dec = DecoderCfg(vocab_size=e.vocab_size, word_dim=e.word_dim, context_dim=encoder.embed_dim,
                         dim=cfg.decoder_dim or encoder.embed_dim, init_std=e.init_std)
        self.networks = nn.ModuleDict({"encoder": encoder, "decoder_prev": ConditionalGruDecoder(dec),
                                       "decoder_next": ConditionalGruDecoder(dec)})
        self.phases = (gz.Phase(name="E", networks=tuple(self.networks), lr=cfg.lr, betas=cfg.betas),)
        for p in self.parameters():
            setattr(p, CLIP_ATTR, cfg.grad_clip)

    @property
    def encoder(self) -> SkipThoughtEncoder:
        return self.networks["encoder"]  # type: ignore[return-value]

    def _embed(self, ids: Tensor) -> Tensor:
        e = self.encoder
        return (e.uni_emb if e.cfg.mode == "uni" else e.bi_emb)(ids)  # the one word table of a trained model

    def _context(self, cur: Tensor) -> Tensor:
        """Raw (unnormalised) sentence vectors of ``cur`` with <eos> appended, as the original trains."""
        return torch.cat(list(self.encoder.hidden(_add_eos(cur, self._eos)).values()), dim=1)

    @property
    def _eos(self) -> int:
        return self.encoder.word_index().get(EOS, 1)

    def decoder_nll(self, name: str, target: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        """Per-sentence summed negative log-likelihood (B,) and token counts (B,) of ``target`` (+ <eos>) under
        decoder ``name``."""
        full = _add_eos(target, self._eos)  # (B, L + 1): the words, then <eos>
        words = F.pad(self._embed(full[:, :-1]), (0, 0, 1, 0))  # shifted right, zeros at step 0: (B, L + 1, word)
        logits = self.networks[name](words, context)  # (B, L + 1, V)
        nll = F.cross_entropy(logits.transpose(1, 2).float(), full, ignore_index=PAD_ID, reduction="none")  # (B, L+1)
        return nll.sum(1), (full != PAD_ID).sum(1)

    def loss(self, phase: str, batch: Mapping[str, Tensor], ctx: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        if phase != "E":
            raise KeyError(f"the skip-thought objective has one phase 'E', got {phase!r}")
        context = self._context(batch["cur"])
        nll_p, n_p = (t.sum() for t in self.decoder_nll("decoder_prev", batch["prev"], context))
        nll_n, n_n = (t.sum() for t in self.decoder_nll("decoder_next", batch["next"], context))
        loss = (nll_p + nll_n) / (n_p + n_n)  # mean cross-entropy per predicted token (nats)
        return loss, {"xent_prev": (nll_p / n_p).detach(), "xent_next": (nll_n / n_n).detach()}

    @torch.no_grad()
    def greedy_next(self, cur: Tensor, max_len: int = 30) -> Tensor:
        """Greedy decoding of the next sentence of each row of ``cur``: (B, max_len) ids, <pad> after <eos>."""
        context, decoder = self._context(cur), self.networks["decoder_next"]
        b, eos = cur.shape[0], self._eos
        out = torch.zeros(b, max_len, dtype=torch.long, device=cur.device)
        word = torch.zeros(b, 1, self._embed(out[:, :1]).shape[-1], device=cur.device)  # step 0: zeros
        h = None
        done = torch.zeros(b, dtype=torch.bool, device=cur.device)
        for t in range(max_len):
            x = torch.cat([word, context[:, None]], dim=2)  # (B, 1, word + ctx)
            state, h = nn.GRU.forward(decoder.gru, x, h)
            nxt = decoder.logits(state[:, 0]).argmax(1)
            nxt = nxt.masked_fill(done, PAD_ID)
            out[:, t] = nxt
            done |= nxt == eos
            word = self._embed(nxt[:, None].clamp(min=0))
        return out

    def decode_next(self, sentences: Sequence[str], max_len: int = 30) -> list[str]:
        """The greedy next sentence of each of ``sentences``, as text."""
        ids = self.encoder.token_ids(sentences)
        width = max(len(r) for r in ids)
        cur = torch.tensor([r + [PAD_ID] * (width - len(r)) for r in ids], device=self.encoder.vocab_bytes.device)
        words = self.encoder.words
        rows = self.greedy_next(cur, max_len).tolist()
        return [" ".join(words[i] for i in r if i not in (PAD_ID, self._eos)) for r in rows]

    @torch.no_grad()
    def sample(self, n: int, batch: Mapping[str, Tensor] | None = None, seed: int = 0) -> Tensor:
        """The greedily decoded next sentences of ``n`` current sentences (the batch's, else random ids from
        ``seed``), as an (n, 1, 1, 30) strip of word ids scaled to [-1, 1]; ``decode_next`` gives them as text."""
        if batch is not None and "cur" in batch:
            cur = batch["cur"][torch.arange(n) % batch["cur"].shape[0]]
        else:
            gen = gz.seeded_rng(seed)
            cur = torch.randint(1, self.encoder.cfg.vocab_size, (n, 8), generator=gen)
        ids = self.greedy_next(cur.to(self.encoder.vocab_bytes.device))
        return (ids.float() / max(1, self.encoder.cfg.vocab_size - 1) * 2 - 1)[:, None, None, :]  # (n, 1, 1, 30)

    def example_batch(self, batch_size: int = 2) -> dict[str, Tensor]:
        return {k: self.encoder.example_inputs(batch_size)[0] for k in ("prev", "cur", "next")}


# ---------------------------------------------------------------------------------------------------------------
# Dataset: (previous, current, next) sentence triples of an ordered corpus
# ---------------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _tokenized_corpus(corpus: str, split: str) -> tuple[tuple[tuple[str, ...], ...], tuple[int, ...]]:
    data = gz.create_dataset(corpus, split=split)
    return tuple(tuple(word_tokenize(s)) for s in data.sentences), tuple(int(d) for d in data.docs)


@functools.lru_cache(maxsize=4)
def corpus_vocabulary(corpus: str, vocab_size: int) -> tuple[str, ...]:
    """``<pad>, <eos>, UNK`` and the ``vocab_size − 3`` most frequent words of the corpus's train split (ties: first
    seen first), as the original's ``vocab.py`` orders them."""
    from collections import Counter

    sentences, _ = _tokenized_corpus(corpus, "train")
    counts = Counter(t for s in sentences for t in s)
    words = [w for w, _ in counts.most_common(vocab_size - 3)]
    if len(words) < vocab_size - 3:
        raise GanzooError(f"{corpus!r} has only {len(words)} distinct words; use vocab_size <= {len(words) + 3}")
    return (PAD, EOS, UNK, *words)


@attrs.frozen(kw_only=True)
class TriplesCfg:
    corpus: str = "austen.novels"  # a registered ordered sentence corpus (sentences, docs; train/test splits)
    split: str = "train"
    # must equal the encoder's vocab_size; the vocabulary always comes from the train split (<pad>, <eos>, UNK, words)
    vocab_size: int = attrs.field(default=2000, validator=attrs.validators.ge(3))
    max_len: int = attrs.field(default=30, validator=v.size)  # words kept per sentence (the original's maxlen_w)


class SentenceTriples(Dataset[dict[str, Tensor]]):
    """``{"prev", "cur", "next"}``: right-padded (max_len,) int64 word ids of three consecutive sentences of one
    document (no <eos>; the objective appends it)."""

    def __init__(self, cfg: TriplesCfg = TriplesCfg()) -> None:
        self.cfg = cfg
        self.words = corpus_vocabulary(cfg.corpus, cfg.vocab_size)
        index = {w: i for i, w in enumerate(self.words)}
        sentences, docs = _tokenized_corpus(cfg.corpus, cfg.split)
        ids = [[index.get(t, 2) for t in s[:cfg.max_len]] for s in sentences]
        self.sentences = [" ".join(s) for s in sentences]
        self.triples = [i for i in range(1, len(ids) - 1)
                        if docs[i - 1] == docs[i] == docs[i + 1] and all(ids[j] for j in (i - 1, i, i + 1))]
        if not self.triples:
            raise GanzooError(f"{cfg.corpus!r} split {cfg.split!r} has no three consecutive sentences of one document")
        table = torch.zeros(len(ids), cfg.max_len, dtype=torch.long)
        for i, row in enumerate(ids):
            table[i, :len(row)] = torch.tensor(row, dtype=torch.long)
        self.table = table  # (N, max_len)

    def __len__(self) -> int:
        return len(self.triples)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        j = self.triples[i]
        return {"prev": self.table[j - 1], "cur": self.table[j], "next": self.table[j + 1]}


# ---------------------------------------------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------------------------------------------

_SMALL = {"vocab_size": 2000, "word_dim": 64, "uni_dim": 128, "bi_dim": 64}
ENCODER_VARIANTS = {
    "uni": EncoderCfg(mode="uni"),  # uni-skip: 21,751,200 GRU parameters + 20,000 × 620 table
    "bi": EncoderCfg(mode="bi"),  # bi-skip: 2 × 6,555,600 GRU parameters + 20,000 × 620 table
    "combine": EncoderCfg(mode="combine"),  # both, 4800-d
    "uni_small": EncoderCfg(mode="uni", **_SMALL),  # CPU size: what the Austen model uses
    "bi_small": EncoderCfg(mode="bi", **_SMALL),
    "combine_small": EncoderCfg(mode="combine", **_SMALL),
    "austen": EncoderCfg(mode="uni", weights_file=SHIPPED, **_SMALL),  # trained here on Jane Austen's novels
}
OBJECTIVE_VARIANTS = {
    "uni_small": ObjectiveCfg(encoder="skipthought.uni_small"),
    "bi_small": ObjectiveCfg(encoder="skipthought.bi_small"),
}

# ---------------------------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------------------------

PAPER = "Kiros et al., NIPS 2015, arXiv:1506.06726"

gz.register_encoder("skipthought", variants=ENCODER_VARIANTS, default="combine", paper=PAPER)(SkipThoughtEncoder)
gz.register_objective("skipthought", variants=OBJECTIVE_VARIANTS, default="uni_small", paper=PAPER)(
    SkipThoughtObjective)
gz.register_dataset("skipthought.triples", cfg=TriplesCfg(), paper=PAPER)(SentenceTriples)
