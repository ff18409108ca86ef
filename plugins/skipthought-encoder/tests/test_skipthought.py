"""Skip-thought against its specification (models.md §7): parameter counts, the NumPy reference GRU of the original
equations, the released file format, the tokenizer, vocabulary expansion, the objective and a learning outcome."""

from __future__ import annotations

import builtins
import codecs
import json
import math
import os
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from ganzoo_skipthought_encoder.expand import (
    expand_vocabulary,
    fit_linear_map,
    read_word2vec,
    trained_words,
    word_vectors,
    write_word2vec,
)
from ganzoo_skipthought_encoder.model import EOS, UNK, ZeroHiddenBiasGRU
from ganzoo_skipthought_encoder.original import read_table
from ganzoo_skipthought_encoder.tokenize import word_tokenize

import ganzoo_core as gz
from ganzoo_core.checkpoints import read_info
from ganzoo_core.errors import GanzooError, ShapeError
from ganzoo_core.testing import check_plugin

TINY = {"vocab_size": 12, "word_dim": 5, "uni_dim": 6, "bi_dim": 4}


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_plugin_conformance() -> None:
    names = check_plugin("ganzoo_skipthought_encoder")
    assert {"encoder skipthought.combine", "encoder skipthought.austen", "objective skipthought.uni_small"} <= set(names)


# -- official sizes ----------------------------------------------------------------------------------------------


def test_official_parameter_counts() -> None:
    """uni GRU 620→2400 = the six uni_skip.npz arrays (21,751,200); bi = 2 × 6,555,600; tables 20,000 × 620."""
    uni = gz.create_encoder("skipthought.uni")
    assert n_params(uni.uni_gru) == 21_751_200
    assert n_params(uni) == 21_751_200 + 20_000 * 620
    bi = gz.create_encoder("skipthought.bi")
    assert n_params(bi.bi_gru) == 2 * 6_555_600
    assert uni.embed_dim == 2400 and bi.embed_dim == 2400
    assert gz.create_encoder("skipthought.combine", vocab_size=10).embed_dim == 4800


def test_hidden_bias_is_a_zero_buffer() -> None:
    gru = ZeroHiddenBiasGRU(3, 4, bidirectional=True)
    names = [n for n, _ in gru.named_parameters()]
    assert not any("bias_hh" in n for n in names) and "bias_ih_l0_reverse" in names
    gru.requires_grad_(True)
    out = gru.final_state(torch.randn(2, 5, 3), torch.tensor([5, 2]))
    assert out.shape == (2, 8)
    assert torch.equal(gru.bias_hh_l0, torch.zeros(12)) and "bias_hh_l0" not in gru.state_dict()


def test_original_init() -> None:
    torch.manual_seed(0)
    enc = gz.create_encoder("skipthought.uni_small")
    block = enc.uni_gru.weight_hh_l0[:128]  # the reset gate's (H, H) block
    assert torch.allclose(block @ block.T, torch.eye(128), atol=1e-4)
    assert abs(float(enc.uni_gru.weight_ih_l0.detach().std()) - 0.1) < 0.01
    assert torch.equal(enc.uni_emb.weight[0], torch.zeros(64))


# -- NumPy reference of the original equations and the released file format ---------------------------------------


def np_gru(x: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    """The Theano GRU of models.md §7.1, one step at a time, h₀ = 0; returns the final state."""
    dim = p["Ux"].shape[0]
    h = np.zeros(dim)
    for x_t in x:
        pre = x_t @ p["W"] + p["b"] + h @ p["U"]
        r, u = 1 / (1 + np.exp(-pre[:dim])), 1 / (1 + np.exp(-pre[dim:]))
        h_tilde = np.tanh(x_t @ p["Wx"] + p["bx"] + r * (h @ p["Ux"]))
        h = u * h + (1 - u) * h_tilde
    return h


def gru_arrays(rng: np.random.Generator, word_dim: int, dim: int) -> dict[str, np.ndarray]:
    shapes = {"W": (word_dim, 2 * dim), "b": (2 * dim,), "U": (dim, 2 * dim), "Wx": (word_dim, dim),
              "bx": (dim,), "Ux": (dim, dim)}
    return {k: rng.normal(0, 0.5, s).astype(np.float32) for k, s in shapes.items()}


WORDS = ["<eos>", "UNK", "the", "cat", "sat", ".", "on", "mat", "A", "dog", "barked", ","]


def py2_pickle(table: np.ndarray) -> bytes:
    """The bytes Python-2 numpy pickles a float32 array as (protocol 2, byte strings as py2 ``str``), written out by
    hand: they unpickle only with ``encoding='latin1'``."""
    def text(raw: bytes) -> bytes:
        return (b"U" + bytes([len(raw)]) if len(raw) < 256 else b"T" + struct.pack("<I", len(raw))) + raw

    shape = b"".join(b"J" + struct.pack("<i", n) for n in table.shape) + b"\x86"
    dtype = (b"cnumpy\ndtype\n" + text(b"f4") + b"K\x00K\x01\x87R(K\x03" + text(b"<")
             + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
    return (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + text(b"b") + b"\x87R(K\x01"
            + shape + dtype + b"\x89" + text(table.astype("<f4").tobytes()) + b"tb.")


def write_table(path: Path, table: np.ndarray, layout: str = "py3") -> None:
    """A word table as an object .npy whose payload is a protocol-2 pickle of: the float array written by Python 3
    ("py3") or by Python 2 ("py2"), an (N,) object array of rows ("rows"), an (N, d) object array of numpy scalars
    ("numbers"); or as a plain float .npy ("plain")."""
    if layout == "plain":
        np.save(path, table)
        return
    payload = table
    if layout in ("rows", "numbers"):
        payload = np.empty(table.shape[:1] if layout == "rows" else table.shape, dtype=object)
        for index in np.ndindex(payload.shape):
            payload[index] = table[index]  # a (d,) row or an np.float32
    with open(path, "wb") as handle:
        shape = payload.shape if layout in ("rows", "numbers") else ()
        np.lib.format.write_array_header_1_0(handle, {"descr": "|O", "fortran_order": False, "shape": shape})
        handle.write(py2_pickle(table) if layout == "py2" else pickle.dumps(payload, protocol=2))


def write_original(folder: Path, word_dim: int = 5, uni: int = 6, bi: int = 4, seed: int = 0,
                   words: list[str] = WORDS, layout: str = "py3") -> dict:
    """Small files in the released layout: Python-2-style pickled .npy tables (protocol 2) and the .npz arrays."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dictionary.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    tables = {n: rng.normal(0, 1, (len(words), word_dim)).astype(np.float32) for n in ("utable", "btable")}
    for name, table in tables.items():
        write_table(folder / f"{name}.npy", table, layout)
    p_uni, p_f, p_b = gru_arrays(rng, word_dim, uni), gru_arrays(rng, word_dim, bi), gru_arrays(rng, word_dim, bi)
    np.savez(folder / "uni_skip.npz", Wemb=rng.normal(size=(3, word_dim)),
             **{f"encoder_{k}": v for k, v in p_uni.items()})
    np.savez(folder / "bi_skip.npz", **{f"encoder_{k}": v for k, v in p_f.items()},
             **{f"encoder_r_{k}": v for k, v in p_b.items()})
    return {"utable": tables["utable"], "btable": tables["btable"], "uni": p_uni, "fwd": p_f, "bwd": p_b}


def reference_vectors(ref: dict, sentences: list[list[str]], mode: str) -> np.ndarray:
    out = []
    for tokens in sentences:
        rows = [WORDS.index(t) if t in WORDS else WORDS.index("UNK") for t in tokens]
        parts = []
        if mode in ("uni", "combine"):
            parts.append(np_gru(ref["utable"][rows], ref["uni"]))
        if mode in ("bi", "combine"):
            x = ref["btable"][rows]
            parts.append(np.concatenate([np_gru(x, ref["fwd"]), np_gru(x[::-1], ref["bwd"])]))
        out.append(np.concatenate([v / np.linalg.norm(v) for v in parts]))
    return np.stack(out)


SENTENCES = ["the cat sat on the mat.", "A dog barked", "the zebra sat, the dog barked on the mat."]


@pytest.mark.parametrize("mode", ["uni", "bi", "combine"])
def test_released_files_match_numpy_reference(tmp_path: Path, mode: str) -> None:
    ref = write_original(tmp_path)
    enc = gz.create_encoder(f"skipthought.{mode}", original_dir=str(tmp_path))
    assert enc.cfg.vocab_size == len(WORDS) + 1 and enc.cfg.word_dim == 5 and enc.cfg.original_dir is None
    got = enc.encode(SENTENCES).double().numpy()  # different lengths in one call: grouped, then reordered
    want = reference_vectors(ref, [word_tokenize(s) for s in SENTENCES], mode)
    assert got.shape == want.shape == (3, {"uni": 6, "bi": 8, "combine": 14}[mode])
    np.testing.assert_allclose(got, want, atol=1e-5)
    if mode == "combine":
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), np.sqrt(2), atol=1e-5)


def test_bi_backward_direction_ignores_padding(tmp_path: Path) -> None:
    """A padded batch gives each sentence the vector it has alone (the reversed pass starts at its last word)."""
    write_original(tmp_path)
    enc = gz.create_encoder("skipthought.bi", original_dir=str(tmp_path))
    ids = enc.token_ids(["A dog barked", "the cat sat on the mat ."])
    padded = torch.tensor([ids[0] + [0] * (len(ids[1]) - len(ids[0])), ids[1]])
    alone = enc(torch.tensor([ids[0]]))
    assert torch.allclose(enc(padded)[0], alone[0], atol=1e-6)
    assert not torch.allclose(enc(torch.tensor([ids[0] + [0] * 4]))[0][4:], enc.bi_gru.final_state(
        enc.bi_emb(torch.tensor([ids[0] + [2] * 4])), torch.tensor([7]))[0][4:])


def test_released_file_round_trip_keeps_words(tmp_path: Path) -> None:
    write_original(tmp_path)
    enc = gz.create_encoder("skipthought.uni", original_dir=str(tmp_path))
    gz.save(enc, tmp_path / "enc.safetensors")
    loaded = gz.load(tmp_path / "enc.safetensors")
    assert loaded.words == ["<pad>", *WORDS]
    assert torch.equal(loaded.encode(SENTENCES), enc.encode(SENTENCES))


def test_table_needs_latin1_pickle(tmp_path: Path) -> None:
    """The tables are pickles: numpy refuses them without allow_pickle, the reader rebuilds them with its own
    restricted unpickler (latin1 for Python-2 strings), and no plugin file turns allow_pickle on."""
    write_original(tmp_path, layout="py2")
    with pytest.raises(ValueError, match="allow_pickle"):
        np.load(tmp_path / "utable.npy")
    with open(tmp_path / "utable.npy", "rb") as handle:
        np.lib.format.read_magic(handle)
        np.lib.format.read_array_header_1_0(handle)
        with pytest.raises(UnicodeDecodeError):
            pickle.load(handle)  # Python 3's default ascii cannot decode the Python-2 float bytes
    assert gz.create_encoder("skipthought.uni", original_dir=str(tmp_path)).uni_emb.weight.shape == (13, 5)
    sources = [*Path(read_table.__code__.co_filename).parent.rglob("*.py"),
               *(Path(__file__).parents[1] / "scripts").rglob("*.py")]
    assert len(sources) >= 6 and not [f for f in sources if "allow_pickle=True" in f.read_text(encoding="utf-8")]


@pytest.mark.parametrize("layout", ["py3", "py2", "rows", "numbers", "plain"])
def test_table_layouts_load_alike(tmp_path: Path, layout: str) -> None:
    """Every way a float table can sit in a .npy gives the same tensors: what the encoder holds is the table."""
    ref = write_original(tmp_path, layout=layout)
    np.testing.assert_array_equal(read_table(tmp_path / "utable.npy"), ref["utable"])
    enc = gz.create_encoder("skipthought.combine", original_dir=str(tmp_path))
    assert torch.equal(enc.uni_emb.weight[1:], torch.from_numpy(ref["utable"]))
    assert torch.equal(enc.bi_emb.weight[1:], torch.from_numpy(ref["btable"]))


class _Call:
    """Pickles as a call of ``func(*args)``: what a hostile table would hold."""

    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple:
        return self.func, self.args


def _hostile_payloads(marker: Path) -> dict[str, tuple[object, str]]:
    shell = f"touch {marker}"
    inside = np.empty(2, dtype=object)
    inside[:] = [np.zeros(5, np.float32), _Call(os.system, shell)]  # a valid array around the call
    return {
        "os.system": (_Call(os.system, shell), rf"{os.system.__module__}\.system"),
        "exec": (_Call(builtins.exec, f"open({str(marker)!r}, 'w').close()"), r"__builtin__\.exec"),  # the Python-2 name
        "inside an array": (inside, rf"{os.system.__module__}\.system"),
        "other codec": (_Call(codecs.encode, "abc", "rot13"), "only latin1"),
    }


@pytest.mark.parametrize("case", ["os.system", "exec", "inside an array", "other codec"])
def test_table_pickle_cannot_run_code(tmp_path: Path, case: str) -> None:
    """A table whose pickle names anything but numpy's array parts is refused, naming the file and the global,
    before the global is called."""
    write_original(tmp_path)
    marker = tmp_path / "ran"
    payload, refused = _hostile_payloads(marker)[case]
    with open(tmp_path / "utable.npy", "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "|O", "fortran_order": False, "shape": ()})
        pickle.dump(payload, handle, protocol=2)
    with pytest.raises(GanzooError, match=rf"refusing to read word table .*utable\.npy.*{refused}"):
        gz.create_encoder("skipthought.uni", original_dir=str(tmp_path))
    assert not marker.exists()


@pytest.mark.parametrize("n_words", [101, 1200])
def test_short_words_and_a_long_dictionary(tmp_path: Path, n_words: int) -> None:
    """A dictionary of more than 100 words of at most 5 bytes (101: at most 3) loads: no ``<w100>`` placeholder is
    built, ``<pad>`` fits, and a larger ``max_word_bytes`` is kept."""
    words = ["UNK", *[f"w{i}" for i in range(n_words - 1)]]
    write_original(tmp_path, words=words)
    enc = gz.create_encoder("skipthought.uni", original_dir=str(tmp_path))
    assert enc.words == ["<pad>", *words] and enc.cfg.vocab_size == n_words + 1
    assert enc.token_ids(["w7 w99 zebra"]) == [[9, 101, 1]]  # <pad>, UNK, w0, ...
    assert gz.create_encoder("skipthought.uni", original_dir=str(tmp_path), max_word_bytes=40).cfg.max_word_bytes == 40


def test_placeholder_words_must_fit() -> None:
    """A fresh encoder's placeholder names must fit max_word_bytes; the error's advice works."""
    with pytest.raises(GanzooError, match="<w100>.*larger max_word_bytes"):
        gz.create_encoder("skipthought.uni_small", **(TINY | {"vocab_size": 101}), max_word_bytes=5)
    enc = gz.create_encoder("skipthought.uni_small", **(TINY | {"vocab_size": 101}), max_word_bytes=6)
    assert enc.words[-1] == "<w100>"


def _paths_source(kind: str, source: str, folder: Path) -> object:
    """A skip-thought encoder or objective built from files in ``folder``: the released files, or a weights file
    (given to the Austen variant, whose own file the checkpoint must not load either)."""
    if source == "original_dir":
        write_original(folder)
        kwargs = {"original_dir": str(folder)}
        name = "skipthought.uni"
    else:
        folder.mkdir()
        torch.manual_seed(3)
        from safetensors.torch import save_file

        save_file(gz.create_encoder("skipthought.uni_small", **TINY).state_dict(), str(folder / "w.safetensors"))
        kwargs = {**TINY, "weights_file": str(folder / "w.safetensors")}
        name = "skipthought.austen"
    if kind == "encoder":
        return gz.create_encoder(name, **kwargs)
    return gz.create_objective("skipthought.uni_small", encoder=name, encoder_kwargs=kwargs)


@pytest.mark.parametrize("kind", ["encoder", "objective"])
@pytest.mark.parametrize("source", ["original_dir", "weights_file"])
def test_checkpoint_opens_no_path_of_its_metadata(tmp_path: Path, kind: str, source: str) -> None:
    """A checkpoint of a module built from files records no path: with the files gone it loads the same tensors."""
    module = _paths_source(kind, source, tmp_path / "files")
    gz.save(module, tmp_path / "ck.safetensors")
    for f in (tmp_path / "files").iterdir():
        f.unlink()
    (tmp_path / "files").rmdir()
    info = read_info(tmp_path / "ck.safetensors")
    assert "files" not in json.dumps(info.config)
    enc_cfg = info.config if kind == "encoder" else info.config["encoder_kwargs"]
    assert enc_cfg["original_dir"] is None and enc_cfg["weights_file"] is None and enc_cfg["vocab_size"] == 13 - (
        source == "weights_file")
    loaded = gz.load(tmp_path / "ck.safetensors")
    assert loaded.cfg == module.cfg
    want, got = module.state_dict(), loaded.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)


def test_missing_file_is_named(tmp_path: Path) -> None:
    write_original(tmp_path)
    (tmp_path / "btable.npy").unlink()
    gz.create_encoder("skipthought.uni", original_dir=str(tmp_path))  # uni needs no btable
    with pytest.raises(GanzooError, match="btable.npy"):
        gz.create_encoder("skipthought.combine", original_dir=str(tmp_path))


def test_missing_parameter_is_named(tmp_path: Path) -> None:
    write_original(tmp_path)
    arrays = dict(np.load(tmp_path / "bi_skip.npz"))
    del arrays["encoder_r_Ux"]
    np.savez(tmp_path / "bi_skip.npz", **arrays)
    with pytest.raises(GanzooError, match="encoder_r_Ux"):
        gz.create_encoder("skipthought.bi", original_dir=str(tmp_path))


def test_wrong_shape_is_named(tmp_path: Path) -> None:
    write_original(tmp_path)
    arrays = dict(np.load(tmp_path / "uni_skip.npz"))
    arrays["encoder_Wx"] = arrays["encoder_Wx"][:, :5]
    np.savez(tmp_path / "uni_skip.npz", **arrays)
    with pytest.raises(ShapeError, match=r"encoder_Wx has shape \(5, 5\), expected \(5, 6\)"):
        gz.create_encoder("skipthought.uni", original_dir=str(tmp_path))


def test_table_rows_must_match_dictionary(tmp_path: Path) -> None:
    write_original(tmp_path)
    (tmp_path / "dictionary.txt").write_text("\n".join(WORDS[:-1]) + "\n")
    with pytest.raises(ShapeError, match="12 rows but dictionary.txt has 11 words"):
        gz.create_encoder("skipthought.uni", original_dir=str(tmp_path))


# -- tokenizer and encode ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "tokens"), [
    ('"I don\'t know," she said.', ["``", "I", "do", "n't", "know", ",", "''", "she", "said", "."]),
    ("Mr. Darcy paid 1,000 pounds at 10:30.", ["Mr.", "Darcy", "paid", "1,000", "pounds", "at", "10:30", "."]),
    ("It cost $5 (roughly)... Well--no!", ["It", "cost", "$", "5", "(", "roughly", ")", "...", "Well", "--", "no",
                                           "!"]),
    ("I'm here; you're there. We can't.", ["I", "'m", "here", ";", "you", "'re", "there", ".", "We", "ca", "n't",
                                           "."]),
    ("Emma cannot stop", ["Emma", "can", "not", "stop"]),
])
def test_word_tokenize(text: str, tokens: list[str]) -> None:
    assert word_tokenize(text) == tokens


def test_no_lower_casing_unknown_to_unk_and_eos(tmp_path: Path) -> None:
    write_original(tmp_path)
    enc = gz.create_encoder("skipthought.uni", original_dir=str(tmp_path))
    index = enc.word_index()
    assert enc.token_ids(["The cat"]) == [[index[UNK], index["cat"]]]  # "The" is not "the"
    eos = gz.create_encoder("skipthought.uni", original_dir=str(tmp_path), use_eos=True)
    assert eos.token_ids(["the cat"]) == [[index["the"], index["cat"], index[EOS]]]


@pytest.mark.parametrize("bad", ["", "   ", "\n\t"])
def test_empty_sentence_names_its_index(bad: str) -> None:
    enc = gz.create_encoder("skipthought.uni_small", **TINY)
    with pytest.raises(ValueError, match="sentence 1 .*empty"):
        enc.encode(["fine text", bad, "more"])


def test_encode_shapes_and_order() -> None:
    enc = gz.create_encoder("skipthought.combine_small", **TINY, batch_size=2)
    sentences = ["a b c d", "a", "a b", "a b c"]
    out = enc.encode(sentences)
    assert out.shape == (4, 14) and out.dtype == torch.float32
    for i, s in enumerate(sentences):
        assert torch.allclose(out[i], enc.encode([s])[0], atol=1e-6)
    with pytest.raises(GanzooError, match="list of sentences"):
        enc.encode("one string")


def test_forward_refuses_left_padding() -> None:
    enc = gz.create_encoder("skipthought.uni_small", **TINY)
    with pytest.raises(ShapeError, match="right-padded"):
        enc(torch.tensor([[0, 3, 4]]))
    with pytest.raises(ShapeError, match=r"\[0, 12\)"):
        enc(torch.tensor([[3, 99]]))


# -- vocabulary expansion --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_readers(tmp_path: Path, binary: bool) -> None:
    rng = np.random.default_rng(1)
    words, vectors = ["über", "cat", "New_York"], rng.normal(size=(3, 4)).astype(np.float32)
    path = tmp_path / ("v.bin" if binary else "v.txt")
    write_word2vec(path, words, vectors, binary=binary)
    got_words, got = read_word2vec(path)
    assert got_words == words
    np.testing.assert_allclose(got, vectors, rtol=1e-6)
    assert read_word2vec(path, limit=2)[0] == words[:2]


def test_word2vec_writer_bytes(tmp_path: Path) -> None:
    """The file layout of both formats, written out by hand: header 'N d', then one word per row."""
    words, vectors = ["a", "bé"], np.array([[1.0, 0.5], [-2.0, 3.25]], np.float32)
    write_word2vec(tmp_path / "t.txt", words, vectors)
    assert (tmp_path / "t.txt").read_bytes() == "2 2\na 1 0.5\nbé -2 3.25\n".encode()
    write_word2vec(tmp_path / "b.bin", words, vectors, binary=True)
    f32 = [np.array(row, "<f4").tobytes() for row in ([1.0, 0.5], [-2.0, 3.25])]
    assert (tmp_path / "b.bin").read_bytes() == b"2 2\na " + f32[0] + b"\n" + "bé ".encode() + f32[1] + b"\n"
    with pytest.raises(ShapeError, match="one row per word"):
        write_word2vec(tmp_path / "t.txt", words, vectors[:1])
    with pytest.raises(GanzooError, match="whitespace"):
        write_word2vec(tmp_path / "t.txt", ["a b", "c"], vectors)


class _HashEncoder:
    """A stand-in sentence encoder: a fixed random vector per distinct sentence."""

    embed_dim = 16

    def __init__(self) -> None:
        self.calls: list[int] = []

    def encode(self, batch: list[str]) -> torch.Tensor:
        self.calls.append(len(batch))
        rows = [np.random.default_rng(zlib.crc32(s.encode())).normal(size=self.embed_dim) for s in batch]
        return torch.tensor(np.stack(rows), dtype=torch.float32)


def test_word_vectors_from_a_sentence_encoder_expand_the_shipped_austen_model() -> None:
    """Words the Austen model maps to UNK ('red', 'cyan', 'triangle') encode alike before the expansion and apart
    after it, with word vectors taken from another encoder; batching does not change the vectors."""
    fake = _HashEncoder()
    austen = gz.create_encoder("skipthought.austen")
    assert "cyan" not in austen.word_index() and "triangle" not in austen.word_index()
    own = trained_words(austen)
    words = [*own, "red", "cyan", "triangle"]
    vectors = word_vectors(fake, words, batch_size=500)
    assert vectors.shape == (len(words), 16) and fake.calls[:2] == [500, 500]
    np.testing.assert_allclose(word_vectors(fake, words[-5:], batch_size=2), vectors[-5:], rtol=1e-6)
    before = austen.encode(["a red triangle", "a cyan triangle", "a red star"])
    assert torch.allclose(before[0], before[1])  # both colours are UNK
    result = expand_vocabulary(austen, words, vectors)
    assert result.added >= 2 and result.shared > 16
    after = result.encoder.encode(["a red triangle", "a cyan triangle", "a red star"])
    assert float((after[0] - after[1]).norm()) > 0.05
    with pytest.raises(GanzooError, match="at least one word"):
        word_vectors(fake, [])


def test_word2vec_truncated_binary(tmp_path: Path) -> None:
    path = tmp_path / "v.bin"
    write_word2vec(path, ["a", "b"], np.ones((2, 4), np.float32), binary=True)
    path.write_bytes(path.read_bytes()[:-6])
    with pytest.raises(ShapeError, match="ends inside vector 1"):
        read_word2vec(path)


def test_linear_map_recovers_exact_map() -> None:
    rng = np.random.default_rng(2)
    A, c = rng.normal(size=(4, 3)), rng.normal(size=3)
    x = rng.normal(size=(50, 4))
    got_A, got_c = fit_linear_map(x, x @ A + c)
    np.testing.assert_allclose(got_A, A, atol=1e-5)
    np.testing.assert_allclose(got_c, c, atol=1e-5)


def test_expansion_on_an_exactly_linear_case(tmp_path: Path) -> None:
    """Tables built as an exact linear image of word2vec vectors: new words get exactly that image, trained words
    keep their rows, words with '_' are skipped, and the expanded encoder encodes the new words."""
    torch.manual_seed(0)
    rng = np.random.default_rng(3)
    base = [f"w{i}" for i in range(20)]
    enc = gz.create_encoder("skipthought.combine_small", **(TINY | {"vocab_size": 23}))
    enc.set_words(["<pad>", "<eos>", "UNK", *base])
    w2v_words = [*base[:15], "zebra", "quagga", "New_York"]
    vectors = rng.normal(size=(len(w2v_words), 4)).astype(np.float32)
    A, c = rng.normal(size=(4, 5)).astype(np.float32), rng.normal(size=5).astype(np.float32)
    with torch.no_grad():  # the trained words' rows are exactly vectors @ A + c (the bi table: another map)
        for emb, (a, b) in zip(enc._embeddings(), [(A, c), (2 * A, -c)]):
            emb.weight[3:18] = torch.from_numpy(vectors[:15] @ a + b)
    path = tmp_path / "w2v.bin"
    write_word2vec(path, w2v_words, vectors, binary=True)
    result = expand_vocabulary(enc, *read_word2vec(path))
    new = result.encoder
    assert (result.shared, result.added) == (15, 2)
    assert new.words[-2:] == ["zebra", "quagga"] and "New_York" not in new.word_index()
    np.testing.assert_allclose(new.uni_emb.weight[-2:].detach().numpy(), vectors[15:17] @ A + c, atol=1e-4)
    np.testing.assert_allclose(new.bi_emb.weight[-1].detach().numpy(), vectors[16] @ (2 * A) - c, atol=1e-4)
    assert torch.equal(new.uni_emb.weight[:23], enc.uni_emb.weight)  # w15..w19 (not in word2vec) keep their rows
    assert torch.equal(new.uni_gru.weight_hh_l0, enc.uni_gru.weight_hh_l0)
    unk = enc.encode(["w1 zebra"])
    assert not torch.allclose(new.encode(["w1 zebra"]), unk)  # zebra is no longer UNK
    assert torch.allclose(new.encode(["w1 w2"]), enc.encode(["w1 w2"]), atol=1e-6)


# -- objective ------------------------------------------------------------------------------------------------------


def test_objective_step_and_clipping() -> None:
    torch.manual_seed(0)
    obj = gz.create_objective("skipthought.uni_small", encoder_kwargs=TINY, grad_clip=1e-3)
    batch = obj.example_batch(4)
    assert [p.name for p in obj.phases] == ["E"] and set(obj.phases[0].networks) == set(obj.networks)
    loss, terms = obj.loss("E", batch, {})
    assert abs(float(loss) - np.log(12)) < 0.5  # untrained: close to uniform over the vocabulary
    assert set(terms) == {"xent_prev", "xent_next"}
    params = [p for p in obj.parameters()]
    opt = torch.optim.SGD(params, lr=1.0)
    loss.backward()
    opt.step()  # the plugin's pre-step hook clips the global norm to grad_clip
    norm = torch.sqrt(sum(p.grad.square().sum() for p in params if p.grad is not None))
    assert float(norm) <= 1e-3 * 1.001


def test_objective_rejects_combine() -> None:
    with pytest.raises(GanzooError, match="uni or bi"):
        gz.create_objective("skipthought.uni_small", encoder="skipthought.combine_small")


BAD_VALUES = [
    ("encoder", "skipthought.uni_small", {"mode": "tri"}, "mode"),
    ("encoder", "skipthought.uni_small", {"vocab_size": 1}, "vocab_size"),
    ("encoder", "skipthought.uni_small", {"word_dim": 0}, "word_dim"),
    ("encoder", "skipthought.uni_small", {"uni_dim": 0}, "uni_dim"),
    ("encoder", "skipthought.bi_small", {"bi_dim": -1}, "bi_dim"),
    ("encoder", "skipthought.uni_small", {"max_word_bytes": 4}, "max_word_bytes"),
    ("encoder", "skipthought.uni_small", {"batch_size": 0}, "batch_size"),
    ("encoder", "skipthought.uni_small", {"init_std": -0.1}, "init_std"),
    ("encoder", "skipthought.uni_small", {"init_std": math.inf}, "init_std"),
    ("objective", "skipthought.uni_small", {"decoder_dim": 0}, "decoder_dim"),
    ("objective", "skipthought.uni_small", {"lr": 0.0}, "lr"),
    ("objective", "skipthought.uni_small", {"lr": math.nan}, "lr"),
    ("objective", "skipthought.uni_small", {"betas": (0.9, 1.0)}, "betas"),
    ("objective", "skipthought.uni_small", {"betas": (-0.1, 0.999)}, "betas"),
    ("objective", "skipthought.uni_small", {"betas": (0.9,)}, "betas"),
    ("objective", "skipthought.uni_small", {"grad_clip": 0.0}, "grad_clip"),
    ("objective", "skipthought.uni_small", {"grad_clip": math.nan}, "grad_clip"),
    ("objective", "skipthought.uni_small", {"encoder_kwargs": {"word_dim": 0}}, "word_dim"),
    ("dataset", "skipthought.triples", {"vocab_size": 2}, "vocab_size"),
    ("dataset", "skipthought.triples", {"max_len": 0}, "max_len"),
]


@pytest.mark.parametrize(("kind", "name", "overrides", "field"), BAD_VALUES,
                         ids=[f"{k}-{f}-{next(iter(o.values()))}" for k, _, o, f in BAD_VALUES])
def test_bad_config_values_name_the_field(kind: str, name: str, overrides: dict, field: str) -> None:
    with pytest.raises(GanzooError, match=f"'{field}'"):
        gz.create(kind, name, **overrides)


def test_limit_values_are_accepted() -> None:
    """The edges the validators allow still build (inf switches clipping off)."""
    obj = gz.create_objective("skipthought.uni_small", encoder_kwargs=TINY | {"init_std": 0.0}, grad_clip=math.inf,
                              betas=(0.0, 0.0), decoder_dim=1)
    assert obj.cfg.grad_clip == math.inf and obj.networks["decoder_next"].cfg.dim == 1
    assert gz.create_encoder("skipthought.uni_small", vocab_size=2, max_word_bytes=5, batch_size=1).words == [
        "<pad>", "<eos>"]


# -- learning (slow): the Austen corpus --------------------------------------------------------------------------


def _austen_available() -> bool:
    try:
        gz.create_dataset("austen.emma")
    except Exception:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _austen_available(), reason="Jane Austen corpus not fetched (scripts/fetch_austen.sh)")
def test_learns_on_austen(tmp_path: Path) -> None:
    """A short run on the engine lowers held-out perplexity far below the untrained model's, and the next-sentence
    decoder ranks the true next sentence above chance."""
    from ganzoo_skipthought_encoder.evaluate import perplexity, ranking

    from ganzoo_core.training import TrainCfg, train

    torch.manual_seed(0)
    kw = {"vocab_size": 1000, "word_dim": 64, "uni_dim": 128}
    obj = gz.create_objective("skipthought.uni_small", corpus="austen.novels", encoder_kwargs=kw, lr=3e-3)
    data = gz.create_dataset("skipthought.triples", vocab_size=1000, max_len=20)
    test = gz.create_dataset("skipthought.triples", vocab_size=1000, max_len=20, split="test")
    before = perplexity(obj, test, n=256)
    cfg = TrainCfg(steps=600, batch_size=32, log_every=100, sample_every=0, checkpoint_every=0, n_samples=4,
                   progress=False, tensorboard=False)
    train(obj, data, tmp_path, cfg)
    after = perplexity(obj, test, n=256)
    assert before > 700 and after < 0.25 * before, (before, after)
    rank = ranking(obj, test, n=400, k=10)
    # measured: perplexity 991 → 38, rank-1 0.19 (bag of words 0.19); chance 0.10, its standard error here 0.015
    assert rank["next_rank1"] > 0.14, rank


def test_expanded_adds_the_missing_words_of_the_texts() -> None:
    """encoder.expanded(texts, source): the same expansion as expand_vocabulary over the trained words plus the
    texts' unknown words (what experiments reach through the registry, without importing this plugin)."""
    fake = _HashEncoder()
    austen = gz.create_encoder("skipthought.austen")
    texts = ["a cyan triangle", "a red star"]
    result = austen.expanded(texts, fake)
    new = sorted({w for t in texts for w in word_tokenize(t) if w not in austen.word_index()})
    assert new and all(w in result.encoder.word_index() for w in new) and result.added == len(new)
    words = [*trained_words(austen), *new]
    want = expand_vocabulary(austen, words, word_vectors(fake, words)).encoder.encode(texts)
    torch.testing.assert_close(result.encoder.encode(texts), want)
