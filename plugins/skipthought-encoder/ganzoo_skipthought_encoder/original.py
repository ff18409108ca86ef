"""Reader for the released skip-thought files (ryankiros/skip-thoughts; models.md §7.2).

A folder holds ``dictionary.txt`` (one word per line; line i ↔ row i of both tables), ``utable.npy`` /
``btable.npy`` (N × 620 float32 saved as Python-2 pickled numpy objects: read with a restricted unpickler that
rebuilds numpy arrays and nothing else, Python-2 strings decoded as latin1), ``uni_skip.npz`` (``encoder_W``
620×4800 = [W_r ‖ W_u], ``encoder_b`` 4800, ``encoder_U`` 2400×4800, ``encoder_Wx`` 620×2400, ``encoder_bx`` 2400,
``encoder_Ux`` 2400×2400) and ``bi_skip.npz`` (the same names at 1200, plus ``encoder_r_*`` for the backward GRU).
``Wemb`` entries of the .npz files are ignored: encoding uses the tables. Use it through the registry:
``gz.create_encoder("skipthought.combine", original_dir="dir/")``.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from torch import nn

from ganzoo_core.errors import GanzooError, ShapeError
from ganzoo_skipthought_encoder.model import PAD

GRU_NAMES = ("W", "b", "U", "Wx", "bx", "Ux")
FILES = {"uni": ("utable.npy", "uni_skip.npz"), "bi": ("btable.npy", "bi_skip.npz")}


def _require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise GanzooError(f"missing {what}: {str(path)!r} does not exist; the folder must hold the released "
                          "dictionary.txt, utable.npy, btable.npy, uni_skip.npz and bi_skip.npz")
    return path


def read_dictionary(path: str | Path) -> list[str]:
    """The words of ``dictionary.txt``, one per line (UTF-8), in table-row order."""
    text = _require(Path(path), "word list").read_text(encoding="utf-8")
    words = text.split("\n")
    if words and words[-1] == "":
        words.pop()
    words = [w.rstrip("\r") for w in words]
    if not words:
        raise GanzooError(f"{str(path)!r} holds no words")
    return words


class _RefusedGlobal(pickle.UnpicklingError):
    """A pickle asked for a global (a function or class) the reader does not allow."""


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as Python-3 protocol-2 pickles use it for bytes, limited to latin1 (any other codec is a
    transformation no numpy array needs)."""
    if not isinstance(text, str) or encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise _RefusedGlobal(f"_codecs.encode({type(text).__name__}, {encoding!r}): only latin1 text is allowed")
    return text.encode("latin1")


class _TableUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays (of numbers, or of arrays) and nothing else. A pickle runs whatever function it names,
    so every global outside this table is refused before anything is called."""

    _RECONSTRUCT = np.zeros(0).__reduce__()[0]  # numpy's array rebuild function, whatever module numpy keeps it in
    _SCALAR = np.float32(0).__reduce__()[0]  # numpy's scalar rebuild function (numbers inside object arrays)
    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy.core.multiarray", "scalar"): _SCALAR, ("numpy._core.multiarray", "scalar"): _SCALAR,
        ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_bytes,  # bytes in a protocol-2 pickle written by Python 3
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise _RefusedGlobal(f"it names {module}.{name}, and a word table may only name numpy's array parts "
                                 f"({', '.join(sorted({f'{m}.{n}' for m, n in self.ALLOWED}))})") from None


def _read_npy(path: Path) -> Any:
    """The array of an .npy file; an object .npy's pickle goes through ``_TableUnpickler``."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            _, _, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            _, _, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ValueError(f".npy format version {version} (expected 1.0 or 2.0)")
        if not dtype.hasobject:
            handle.seek(0)
            return np.lib.format.read_array(handle, allow_pickle=False)
        try:
            return _TableUnpickler(handle, encoding="latin1").load()
        except _RefusedGlobal as err:
            raise GanzooError(f"refusing to read word table {str(path)!r}: {err}") from None


def read_table(path: str | Path) -> np.ndarray:
    """An (N, word_dim) float32 table: a plain float .npy, or the released Python-2 object .npy (a pickled array,
    of rows or of numbers, read without running code)."""
    path = _require(Path(path), "word table")
    try:
        table = _read_npy(path)
    except (OSError, ValueError, EOFError, TypeError, IndexError, KeyError, AttributeError,
            pickle.UnpicklingError) as err:
        raise GanzooError(f"cannot read word table {str(path)!r}: {err}") from err
    if isinstance(table, np.ndarray) and table.dtype == object and table.ndim == 0:
        table = table.item()  # a pickled array inside a 0-d object array
    if not isinstance(table, np.ndarray):
        raise ShapeError(f"word table {str(path)!r} holds a {type(table).__name__}, expected a numpy array")
    if table.dtype == object:  # an object array of rows (N,) or of numbers (N, word_dim)
        try:
            table = (np.stack([np.asarray(row, np.float32) for row in table]) if table.ndim == 1
                     else table.astype(np.float32))
        except (TypeError, ValueError) as err:
            raise ShapeError(f"word table {str(path)!r} holds objects that are not numbers ({err})") from err
    if table.ndim != 2 or not np.issubdtype(table.dtype, np.floating):
        raise ShapeError(f"word table {str(path)!r} must be an (N, word_dim) float array, got {table.dtype} "
                         f"{table.shape}")
    return table.astype(np.float32, copy=False)


def read_gru(path: str | Path, prefix: str, word_dim: int) -> dict[str, np.ndarray]:
    """The six GRU arrays ``{prefix}{W,b,U,Wx,bx,Ux}`` of an .npz, checked against each other and ``word_dim``."""
    path = _require(Path(path), "parameter file")
    with np.load(path, allow_pickle=False) as npz:
        present = sorted(npz.files)
        missing = [prefix + n for n in GRU_NAMES if prefix + n not in present]
        if missing:
            raise GanzooError(f"{str(path)!r} lacks parameters {missing}; it has {present[:12]}"
                              f"{' ...' if len(present) > 12 else ''} (is it the right file for this encoder?)")
        p = {n: np.asarray(npz[prefix + n], np.float32) for n in GRU_NAMES}
    dim = p["Ux"].shape[-1] if p["Ux"].ndim == 2 else -1
    expected = {"W": (word_dim, 2 * dim), "b": (2 * dim,), "U": (dim, 2 * dim), "Wx": (word_dim, dim),
                "bx": (dim,), "Ux": (dim, dim)}
    for name, shape in expected.items():
        if p[name].shape != shape:
            raise ShapeError(f"{str(path)!r}: {prefix}{name} has shape {p[name].shape}, expected {shape} "
                             f"(word_dim {word_dim} from the table, GRU size {dim} from {prefix}Ux)")
    return p


def gru_state(p: Mapping[str, np.ndarray], suffix: str = "") -> dict[str, torch.Tensor]:
    """The ``nn.GRU`` tensors of one direction: weight_ih = [W_r; W_u; Wx]ᵀ, weight_hh = [U_r; U_u; Ux]ᵀ,
    bias_ih = [b_r; b_u; bx] (gate order r, z = u, n)."""
    return {
        f"weight_ih_l0{suffix}": torch.from_numpy(np.concatenate([p["W"].T, p["Wx"].T])),  # (3H, word)
        f"weight_hh_l0{suffix}": torch.from_numpy(np.concatenate([p["U"].T, p["Ux"].T])),  # (3H, H)
        f"bias_ih_l0{suffix}": torch.from_numpy(np.concatenate([p["b"], p["bx"]])),  # (3H,)
    }


@attrs.frozen(kw_only=True)
class OriginalFiles:
    words: list[str]
    tables: dict[str, np.ndarray]  # "uni" / "bi" → (N, word_dim)
    grus: dict[str, dict[str, torch.Tensor]]  # "uni" / "bi" → nn.GRU tensors

    def sizes(self, min_word_bytes: int = 0) -> dict[str, Any]:
        """The encoder sizes the files fix; ``max_word_bytes`` fits every word and ``<pad>``, and is at least
        ``min_word_bytes`` (the encoder's own setting)."""
        table = next(iter(self.tables.values()))
        longest = max(len(w.encode("utf-8")) for w in [PAD, *self.words])
        out: dict[str, Any] = {"vocab_size": len(self.words) + 1, "word_dim": table.shape[1],
                               "max_word_bytes": max(min_word_bytes, longest)}
        if "uni" in self.grus:
            out["uni_dim"] = self.grus["uni"]["weight_hh_l0"].shape[1]
        if "bi" in self.grus:
            out["bi_dim"] = self.grus["bi"]["weight_hh_l0"].shape[1]
        return out

    def load_into(self, encoder: Any) -> None:
        """Copy the tables (row 0 = padding, then the dictionary's rows) and GRU weights into ``encoder``."""
        encoder.set_words([PAD, *self.words])
        with torch.no_grad():
            for mode, table in self.tables.items():
                emb: nn.Embedding = getattr(encoder, f"{mode}_emb")
                emb.weight.zero_()
                emb.weight[1:].copy_(torch.from_numpy(table))
                gru: nn.GRU = getattr(encoder, f"{mode}_gru")
                gru.load_state_dict(self.grus[mode], strict=True)


def read_original(directory: str | Path, mode: str) -> OriginalFiles:
    """Read what ``mode`` ("uni", "bi" or "combine") needs from a folder of released files."""
    folder = Path(directory)
    if not folder.is_dir():
        raise GanzooError(f"original_dir {str(folder)!r} is not a folder of released skip-thought files")
    words = read_dictionary(folder / "dictionary.txt")
    if "UNK" not in words:
        raise GanzooError(f"{str(folder / 'dictionary.txt')!r} has no 'UNK' line; the released word list always has one")
    parts = ("uni", "bi") if mode == "combine" else (mode,)
    tables, grus = {}, {}
    for part in parts:
        table_name, npz_name = FILES[part]
        table = read_table(folder / table_name)
        if table.shape[0] != len(words):
            raise ShapeError(f"{table_name} has {table.shape[0]} rows but dictionary.txt has {len(words)} words; "
                             "line i of the dictionary must match row i of the table")
        tables[part] = table
        fwd = read_gru(folder / npz_name, "encoder_", table.shape[1])
        state = gru_state(fwd)
        if part == "bi":
            bwd = read_gru(folder / npz_name, "encoder_r_", table.shape[1])
            if bwd["Ux"].shape != fwd["Ux"].shape:
                raise ShapeError(f"{npz_name}: backward GRU size {bwd['Ux'].shape[0]} differs from forward "
                                 f"{fwd['Ux'].shape[0]}")
            state |= gru_state(bwd, "_reverse")
        grus[part] = state
    if len(tables) == 2 and tables["uni"].shape[1] != tables["bi"].shape[1]:
        raise ShapeError(f"utable has word_dim {tables['uni'].shape[1]} but btable {tables['bi'].shape[1]}")
    return OriginalFiles(words=words, tables=tables, grus=grus)
