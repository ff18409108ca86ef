"""Fuzzing with hypothesis: whatever a user or a damaged file hands ganzoo (config overrides, checkpoint and HDF5
bytes, captions, command-line values) ends in a result or a ``GanzooError``, never another exception or a traceback.

Each bug the fuzzers found has a plain reproducer at the end. ``GANZOO_FUZZ_SCALE=20`` runs 20 times the examples,
drawn at random instead of from the fixed seed: a bug hunt rather than a regression test."""

from __future__ import annotations

import json
import math
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import h5py
import numpy as np
import pytest
import torch
from conftest import HOST
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

import ganzoo_core as gz
from ganzoo_core.cli import build_parser, main
from ganzoo_core.config import apply_overrides
from ganzoo_core.data import schema
from ganzoo_core.data.schema import ArrayBundle, write_h5
from ganzoo_core.errors import GanzooError
from ganzoo_core.text import encode_texts

SCALE = int(os.environ.get("GANZOO_FUZZ_SCALE", "1"))


def fuzz(examples: int) -> settings:
    """``examples`` fixed examples (times GANZOO_FUZZ_SCALE, then random ones); no example database in the repo."""
    return settings(max_examples=examples * SCALE, deadline=None, database=None, derandomize=SCALE == 1,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much])


def _ints(value: Any) -> Iterator[int]:
    """Every int inside ``value`` (lists, tuples, dict values), bools left out."""
    if isinstance(value, int) and not isinstance(value, bool):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _ints(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _ints(v)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)


# -- 1. config overrides of every registered name ------------------------------------------------------------------

FUZZED_KINDS = ("generator", "discriminator", "encoder", "block", "loss", "objective", "dataset")
SLOW_TO_BUILD = {  # their default build alone takes seconds (pretrained weights read, 10,000 images drawn)
    ("encoder", "minilm.l6_v2"), ("encoder", "skipthought.bi"), ("encoder", "skipthought.combine"),
    ("encoder", "skipthought.uni"), ("dataset", "shapes.32"), ("dataset", "shapes.64"), ("dataset", "stackgan.shapes"),
    ("dataset", "stargan.shapes"), ("dataset", "stargan.shapes_with_shape"),
}
NAMES = {kind: [n for n in HOST.registry.names(kind) if (kind, n) not in SLOW_TO_BUILD] for kind in FUZZED_KINDS}
SIZE_CAP = 8
"""Drawn ints above this and above every int of the field's default are only put through the config step: a
network of width 2**31 is a validator's business, and building one is not this test's."""


REGISTRY_STRINGS = sorted({s for kind in FUZZED_KINDS for name in HOST.registry.names(kind)
                           for cfg in [HOST.registry.get(kind, name).cfg] if cfg is not None
                           for s in _strings(attrs.asdict(cfg))} | {n for kind in FUZZED_KINDS
                                                                     for n in HOST.registry.names(kind)})
"""Every str a registered config holds (choices such as 'batch' or 'lua') and every registry name: values that pass
the choice validators and reach the factories."""

FIELD_NAMES = sorted({f.name for kind in FUZZED_KINDS for name in HOST.registry.names(kind)
                      for cfg in [HOST.registry.get(kind, name).cfg] if cfg is not None
                      for f in attrs.fields(type(cfg))})
SPECIAL_INTS = [0, -1, 1, 2, 3, 7, 2**31, 2**63, -(2**63), 10**18, 2**100]
SPECIAL_FLOATS = [0.0, -0.0, -1.0, 0.5, 1.0, 1e-12, 1e300, -1e300, math.nan, math.inf, -math.inf]
scalars = st.one_of(
    st.none(), st.booleans(), st.sampled_from(SPECIAL_INTS), st.integers(-4, 16), st.sampled_from(SPECIAL_FLOATS),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.sampled_from(REGISTRY_STRINGS),
)
override_values = st.one_of(
    scalars,
    st.lists(scalars, max_size=4),
    st.lists(scalars, max_size=4).map(tuple),
    st.lists(st.lists(st.integers(-2, 12), max_size=3).map(tuple), max_size=3).map(tuple),  # tuple-of-tuples fields
    st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=6), scalars, max_size=3),  # *_kwargs fields
)


@pytest.mark.parametrize("kind", FUZZED_KINDS)
@fuzz(25)
@given(data=st.data())
def test_a_drawn_override_builds_or_is_a_ganzoo_error(kind: str, data: st.DataObject, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a drawn relative path names nothing of the repository
    name = data.draw(st.sampled_from(NAMES[kind]), label="name")
    cfg = HOST.registry.get(kind, name).cfg
    fields = [] if cfg is None else [f.name for f in attrs.fields(type(cfg))]
    field = data.draw(st.sampled_from([*fields, "no_such_option"]), label="field")
    value = data.draw(override_values, label="value")
    assume(not any(Path(s).exists() for s in _strings(value)))  # "", ".", "/": never aim a factory at real folders
    if any(i > max([SIZE_CAP, *_ints(getattr(cfg, field, None))]) for i in _ints(value)):
        try:
            apply_overrides(cfg, {field: value}, what=f"{kind} {name!r}")
        except GanzooError:
            pass
        return
    try:
        built = gz.create(kind, name, **{field: value})
    except GanzooError:
        return
    if isinstance(built, torch.nn.Module):
        assert built.ganzoo_spec == (kind, name)


# -- 2. damaged checkpoints ---------------------------------------------------------------------------------------


@attrs.frozen
class Ckpt:
    data: bytes
    header_end: int  # the tensor bytes start here
    tensors: dict[str, bytes]  # every state-dict entry's raw bytes

    @property
    def header(self) -> dict[str, Any]:
        return json.loads(self.data[8:self.header_end])


def _raw(module: torch.nn.Module) -> dict[str, bytes]:
    return {k: v.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
            for k, v in module.state_dict().items()}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Ckpt:
    torch.manual_seed(0)
    path = gz.save(gz.create_generator("dcgan.28", ngf=4), tmp_path_factory.mktemp("ckpt") / "g.safetensors")
    data = path.read_bytes()
    return Ckpt(data=data, header_end=8 + struct.unpack("<Q", data[:8])[0], tensors=_raw(gz.load(path)))


def _load_or_error(data: bytes, path: Path) -> torch.nn.Module | None:
    """Load ``data`` as a checkpoint: the module, or None after a GanzooError; anything else fails the test."""
    path.write_bytes(data)
    try:
        return gz.load(path)
    except GanzooError:
        return None


def _header_bytes(header: dict[str, Any]) -> bytes:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


@fuzz(40)
@given(cut=st.integers(0, 10**9))
def test_a_truncated_checkpoint_is_a_checkpoint_error(ckpt: Ckpt, cut: int, tmp_path: Path) -> None:
    path = tmp_path / "cut.safetensors"
    path.write_bytes(ckpt.data[:cut % len(ckpt.data)])
    with pytest.raises(gz.CheckpointError):
        gz.load(path)


@fuzz(60)
@given(flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 255)), min_size=1, max_size=3))
def test_flipped_header_bytes_load_the_same_tensors_or_fail_cleanly(ckpt: Ckpt, flips: list[tuple[int, int]],
                                                                   tmp_path: Path) -> None:
    data = bytearray(ckpt.data)
    for position, mask in flips:
        data[position % ckpt.header_end] ^= mask  # the length prefix and the JSON header
    loaded = _load_or_error(bytes(data), tmp_path / "flipped.safetensors")
    if loaded is not None:
        assert _raw(loaded) == ckpt.tensors


@fuzz(40)
@given(flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 255)), min_size=1, max_size=3))
def test_flipped_tensor_bytes_fail_the_hash_and_load_unverified(ckpt: Ckpt, flips: list[tuple[int, int]],
                                                               tmp_path: Path) -> None:
    data = bytearray(ckpt.data)
    size = len(data) - ckpt.header_end
    for position, mask in flips:
        data[ckpt.header_end + position % size] ^= mask
    assume(bytes(data) != ckpt.data)  # two flips of one byte may cancel
    path = tmp_path / "flipped.safetensors"
    path.write_bytes(data)
    with pytest.raises(gz.CheckpointError, match="does not match the hash"):
        gz.load(path)
    loaded = gz.load(path, verify=False)  # the damage is in the numbers only: still a well-formed file
    assert _raw(loaded) != ckpt.tensors


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 64), st.sampled_from([2**20, 2**40, 10**18]),
                         st.floats(allow_nan=False),
                         st.text(max_size=8), st.sampled_from(REGISTRY_STRINGS))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=6), inner, max_size=4),
                           max_leaves=8)
metadata_text = st.one_of(st.text(max_size=40), st.sampled_from(REGISTRY_STRINGS), json_values.map(json.dumps),
                          st.sampled_from(["1", "generator", "dcgan.28", "{}", "[]", "null", "0" * 64]))


@fuzz(60)
@given(data=st.data())
def test_rewritten_metadata_loads_the_same_tensors_or_fails_cleanly(ckpt: Ckpt, data: st.DataObject,
                                                                   tmp_path: Path) -> None:
    """Metadata values replaced with drawn text, the header rewritten with a consistent length; drawn ints include
    huge ones (a config asking for a network the tensors do not fit is refused before anything is allocated)."""
    header = ckpt.header
    meta = header["__metadata__"]
    for key in data.draw(st.lists(st.sampled_from(sorted(meta)), min_size=1, max_size=3, unique=True), label="keys"):
        if key == "ganzoo.config" and data.draw(st.booleans(), label="edit one config field"):
            config = json.loads(meta[key])
            config[data.draw(st.sampled_from(FIELD_NAMES), label="field")] = data.draw(json_values, label="value")
            meta[key] = json.dumps(config)
        else:
            meta[key] = data.draw(metadata_text, label=key)
    loaded = _load_or_error(_header_bytes(header) + ckpt.data[ckpt.header_end:], tmp_path / "m.safetensors")
    if loaded is not None:
        assert _raw(loaded) == ckpt.tensors


@fuzz(25)
@given(garbage=st.binary(min_size=1, max_size=64))
def test_appended_garbage_loads_the_same_tensors_or_fails_cleanly(ckpt: Ckpt, garbage: bytes,
                                                                 tmp_path: Path) -> None:
    loaded = _load_or_error(ckpt.data + garbage, tmp_path / "long.safetensors")
    if loaded is not None:
        assert _raw(loaded) == ckpt.tensors


# -- 3. damaged HDF5 dataset files ----------------------------------------------------------------------------------

H5_KEYS = ["images", "images_b", "labels", "attributes", "domains", "captions/text", "captions/index",
           "text_embeddings/bow.hashed", "splits/train", "splits/test"]


@pytest.fixture(scope="module")
def h5_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    rng = np.random.default_rng(0)
    captions = [["a red square"], ["a blue circle", "blue, round"], ["green"], ["a star", "yellow"]]
    bundle = ArrayBundle(
        images=rng.integers(0, 256, (4, 6, 6, 1), dtype=np.uint8),
        images_b=rng.integers(0, 256, (4, 6, 6, 3), dtype=np.uint8),
        labels=np.array([0, 1, 0, 1]), label_names=["a", "b"],
        attributes=rng.integers(0, 2, (4, 2), dtype=np.uint8), attribute_names=["x", "y"],
        domains=np.array([0, 1, 1, 0]), domain_names=["A", "B"], captions=captions,
        text_embeddings={"bow.hashed": rng.standard_normal((6, 8)).astype(np.float32)},
        splits={"train": np.array([0, 1, 2]), "test": np.array([3])},
    )
    return write_h5(bundle, tmp_path_factory.mktemp("h5") / "d.h5", name="fuzz", source="test").read_bytes()


reader_options = st.fixed_dictionaries({
    "split": st.sampled_from([None, "train", "test", "nope"]), "encoder": st.sampled_from([None, "bow.hashed"]),
    "wrong_image": st.booleans(), "channels": st.sampled_from([None, 1, 3]), "image_size": st.sampled_from([None, 4]),
})


def _read_or_error(path: Path, options: dict[str, Any]) -> None:
    """Open ``path`` as h5.file and read its first and last items: success, or a GanzooError."""
    try:
        dataset = gz.create_dataset("h5.file", path=str(path), **options)
        items = [dataset[i] for i in {0, len(dataset) - 1} if len(dataset)]
    except GanzooError:
        return
    for item in items:
        assert item["image"].dtype == torch.float32 and item["image"].abs().max() <= 1.0


def _fresh(folder: Path, suffix: str) -> Path:
    """A new file name for each example: HDF5 hands out a file that is still open (a lazy reader's handle) instead
    of reading the new bytes at the same path."""
    return folder / f"{len(list(folder.iterdir()))}{suffix}"


@fuzz(25)
@given(cut=st.integers(0, 10**9), options=reader_options)
def test_a_truncated_h5_file_reads_or_fails_cleanly(h5_bytes: bytes, cut: int, options: dict[str, Any],
                                                   tmp_path: Path) -> None:
    path = _fresh(tmp_path, ".h5")
    path.write_bytes(h5_bytes[:cut % len(h5_bytes)])
    _read_or_error(path, options)


@fuzz(60)
@given(flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 255)), min_size=1, max_size=4),
       options=reader_options)
def test_flipped_h5_bytes_read_or_fail_cleanly(h5_bytes: bytes, flips: list[tuple[int, int]],
                                              options: dict[str, Any], tmp_path: Path) -> None:
    data = bytearray(h5_bytes)
    for position, mask in flips:
        data[position % len(data)] ^= mask
    path = _fresh(tmp_path, ".h5")
    path.write_bytes(data)
    _read_or_error(path, options)


h5_dtypes = st.sampled_from(["u1", "i1", "i8", "f4", "f8", "?", "str", "S4", "group"])


@fuzz(60)
@given(key=st.sampled_from(H5_KEYS), dtype=h5_dtypes, shape=st.lists(st.integers(0, 7), max_size=4),
       fill=st.sampled_from([0, 1, -1, 7, 255]), options=reader_options)
def test_a_rewritten_h5_array_reads_or_fails_cleanly(h5_bytes: bytes, key: str, dtype: str, shape: list[int],
                                                    fill: int, options: dict[str, Any], tmp_path: Path) -> None:
    path = _fresh(tmp_path, ".h5")
    path.write_bytes(h5_bytes)
    with h5py.File(path, "r+") as f:
        if key in f:
            del f[key]
        if dtype == "group":
            f.create_group(key).create_dataset("x", data=np.zeros(3))
        elif dtype == "str":
            f.create_dataset(key, data=np.full(shape, str(fill), dtype=object), dtype=h5py.string_dtype())
        else:
            f.create_dataset(key, data=np.full(shape, fill).astype(dtype))
    _read_or_error(path, options)


@fuzz(40)
@given(target=st.sampled_from(["ganzoo.schema_version", "ganzoo.meta", "labels:names", "attributes:names",
                               "domains:names"]),
       value=st.one_of(json_values.map(json.dumps), st.integers(-3, 3), st.floats(),
                       st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=12),
                       st.lists(st.integers(-3, 3), max_size=3).map(np.array)),
       options=reader_options)
def test_a_rewritten_h5_attribute_reads_or_fails_cleanly(h5_bytes: bytes, target: str, value: Any,
                                                        options: dict[str, Any], tmp_path: Path) -> None:
    path = _fresh(tmp_path, ".h5")
    path.write_bytes(h5_bytes)
    key, _, attr = target.rpartition(":")
    with h5py.File(path, "r+") as f:
        (f[key] if key else f).attrs[attr] = value
    _read_or_error(path, options)


# -- 4. captions ----------------------------------------------------------------------------------------------------

long_captions_cut = pytest.mark.filterwarnings("ignore:.*MAX_CAPTION_CHARS:UserWarning")  # 5,000-character ones
captions = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40) | st.sampled_from(
    ["x" * 5000, "\u0085a", "a\u2028b", "\ufeffword", "🐴 horse", "a\tb\rc", "'''", "...", "ⅫⅪ"])


@long_captions_cut
@fuzz(60)
@given(texts=st.lists(captions, max_size=6))
def test_drawn_captions_embed_or_are_a_ganzoo_error(texts: list[str]) -> None:
    try:
        table = encode_texts("bow.hashed", texts)
    except GanzooError:
        return
    assert table.shape == (len(texts), 512) and torch.isfinite(table).all()
    norms = table.norm(dim=1)
    assert all(n == pytest.approx(1.0, abs=1e-5) or n == 0.0 for n in norms.tolist())  # unit rows, or no words


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    for i in range(2):
        Image.new("L", (8, 8), 60 * i).save(folder / f"img{i}.png")
    return folder


caption_files = st.one_of(captions.map(str.encode), st.binary(max_size=40),
                          st.lists(captions, max_size=4).map(lambda lines: "\n".join(lines).encode()))


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``main(argv)``'s exit status and stderr; argparse's SystemExit counts as its status."""
    try:
        code = main(argv)
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 2
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


def assert_one_line_error(code: int, err: str, command: str) -> None:
    """Exit status 2 and one ``ganzoo: error:`` line, alone on stderr; argparse's usage lines come before its own
    error line. Only "\n" ends a line (a terminal prints the other characters str.splitlines splits at)."""
    assert code == 2, err
    lines = err.split("\n")
    if lines[0].startswith("usage: ganzoo"):
        assert sum(line.startswith(f"ganzoo {command}: error: ") for line in lines) == 1, err
    else:
        assert err.count("\n") == 1 and err.startswith("ganzoo: error: "), err


@long_captions_cut
@fuzz(30)
@given(files=st.tuples(caption_files, caption_files))
def test_drawn_caption_files_build_and_encode_or_fail_in_one_line(files: tuple[bytes, bytes], image_folder: Path,
                                                                  tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    texts = tmp_path / "texts"
    texts.mkdir(exist_ok=True)
    for i, content in enumerate(files):
        (texts / f"img{i}.txt").write_bytes(content)
    out = tmp_path / "captions.h5"
    code, err = run_cli(["data", "build", "captions", str(out), "--overwrite", "--set", f"images_dir={str(image_folder)!r}",
                         "--set", f"captions_dir={str(texts)!r}"], capsys)
    if code:
        assert_one_line_error(code, err, "data build")
        return
    code, err = run_cli(["encode", str(out), "--encoder", "bow.hashed", "--no-progress", "--force"], capsys)
    if code:
        assert_one_line_error(code, err, "encode")
        return
    with h5py.File(out) as f:
        assert f["text_embeddings/bow.hashed"].shape == (f["captions/text"].shape[0], 512)


@pytest.fixture(scope="module")
def text_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    objective = gz.create_objective("gan_cls.cls_32", generator_kwargs={"ngf": 4}, discriminator_kwargs={"ndf": 4})
    return gz.save(objective, tmp_path_factory.mktemp("text") / "t.safetensors")


@long_captions_cut
@fuzz(25)
@given(texts=st.lists(captions, min_size=1, max_size=3))
def test_drawn_captions_sample_or_fail_in_one_line(texts: list[str], text_checkpoint: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assume(not any(t.startswith("-") for t in texts))  # argparse would read it as an option
    argv = ["sample", str(text_checkpoint), "--n", "1", "--out", str(tmp_path / "s.png"), "--overwrite"]
    code, err = run_cli([*argv, *(f"--text={t}" for t in texts)], capsys)
    if code:
        assert_one_line_error(code, err, "sample")
    else:
        assert Image.open(tmp_path / "s.png").size == (36, 2 + 34 * len(texts))  # one row of one image per caption


# -- 5. command-line values -----------------------------------------------------------------------------------------


def _command_options(command: str) -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return [o for o in ("--n", "--batch-size", "--steps", "--workers", "--seed", "--device") if o in
            sub._option_string_actions]


def _failing_call(command: str, folder: Path) -> list[str]:
    """A call of ``command`` that fails after parsing and checking its options, before any heavy work."""
    return {
        "sample": ["sample", str(folder / "missing.safetensors"), "--out", str(folder / "s.png")],
        "train": ["train", "dcgan.28", "--data", "no_such.dataset", "--out", str(folder / "run")],
        "eval": ["eval", str(folder / "missing.safetensors"), "--reference", "animal_mnist.test",
                 "--out", str(folder / "e.json")],
        "bench": ["bench", "models", "--model", "no_such.objective", "--quiet", "--out", str(folder / "bench")],
    }[command]


option_values = st.one_of(
    st.integers(-(2**70), 2**70).map(str), st.integers(-3, 70).map(str), st.text(max_size=10),
    st.sampled_from(["", " ", "0", "-0", "+3", " 7 ", "1_000", "0x10", "1e3", "2.5", "nan", "inf", "-inf", "٣",
                     str(2**63), str(2**64), "cpu", "cuda", "cuda:0", "cuda:-1", "cuda:99", "meta", "mps", "xla",
                     "cpu:1", "cuda:", ":0", "nonsense"]),
)


@pytest.mark.parametrize("command", ["sample", "train", "eval", "bench"])
@fuzz(30)
@given(data=st.data())
def test_drawn_option_values_fail_in_one_line(command: str, data: st.DataObject, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    options = data.draw(st.lists(st.sampled_from(_command_options(command)), min_size=1, max_size=3, unique=True),
                        label="options")
    values = [data.draw(option_values, label=option) for option in options]
    threads = torch.get_num_threads()
    try:
        code, err = run_cli([*_failing_call(command, tmp_path), *(f"{o}={v}" for o, v in zip(options, values))],
                            capsys)
    finally:
        torch.set_num_threads(threads)
    assert_one_line_error(code, err, command)


# -- the bugs this suite found, one reproducer each ---------------------------------------------------------------


def test_a_checkpoint_config_asking_for_a_huge_network_is_a_checkpoint_error(ckpt: Ckpt, tmp_path: Path) -> None:
    header = ckpt.header
    header["__metadata__"]["ganzoo.config"] = json.dumps({**json.loads(header["__metadata__"]["ganzoo.config"]),
                                                          "ngf": 2**40})
    path = tmp_path / "huge.safetensors"
    path.write_bytes(_header_bytes(header) + ckpt.data[ckpt.header_end:])
    with pytest.raises(gz.CheckpointError):
        gz.load(path)


@pytest.mark.parametrize(("kind", "name", "field"), [("generator", "stargan.32", "n_down"),
                                                     ("generator", "pix2pix.unet_32", "n_downs")])
def test_a_huge_exponent_field_is_refused_at_once(kind: str, name: str, field: str) -> None:
    """Seconds at 2**28 (a refusal should take microseconds); the time grows about 4× per doubling."""
    started = time.perf_counter()
    with pytest.raises(gz.ConfigError, match=field):
        gz.create(kind, name, **{field: 2**28})
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize("value", [{1: 2}, ((0, 0),)], ids=["dict", "pairs"])
def test_kwargs_with_non_string_keys_are_a_config_error(value: Any, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(gz.ConfigError, match="generator_kwargs"):
        gz.create_objective("dcgan.28", generator_kwargs=value)
    assert_one_line_error(*run_cli([*_failing_call("train", tmp_path), "--set", f"generator_kwargs={value!r}"],
                                   capsys), "train")


def test_cyclegan_h5_with_a_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(GanzooError, match="missing.h5"):
        gz.create_dataset("cyclegan.h5", path=str(tmp_path / "missing.h5"))


@pytest.mark.parametrize("reader", ["h5.file", "read_h5_info"])
def test_damaged_h5_metadata_is_a_data_error(reader: str, h5_bytes: bytes, tmp_path: Path) -> None:
    path = tmp_path / "heap.h5"
    assert h5_bytes.count(b"GCOL") == 1  # the global heap that holds the str attributes ('names', 'ganzoo.meta')
    path.write_bytes(h5_bytes.replace(b"GCOL", b"XCOL"))
    with pytest.raises(GanzooError):
        gz.create_dataset("h5.file", path=str(path)) if reader == "h5.file" else schema.read_h5_info(path)


@pytest.mark.parametrize("caption", ["", " ", "\u0085"])
def test_a_blank_caption_is_a_ganzoo_error(caption: str, text_checkpoint: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(GanzooError):
        encode_texts("bow.hashed", ["a caption", caption])
    bundle = ArrayBundle(images=np.zeros((2, 4, 4, 1), np.uint8), captions=[["a caption"], [caption]])
    path = write_h5(bundle, tmp_path / "blank.h5", name="blank", source="test")
    assert_one_line_error(*run_cli(["encode", str(path), "--encoder", "bow.hashed", "--no-progress"], capsys), "encode")
    assert_one_line_error(*run_cli(["sample", str(text_checkpoint), "--n", "1", f"--text={caption}", "--out",
                                    str(tmp_path / "s.png")], capsys), "sample")


def test_a_nul_in_a_caption_file_is_a_one_line_error(image_folder: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(2):
        (tmp_path / f"img{i}.txt").write_text(f"caption\0 {i}\n")
    assert_one_line_error(*run_cli(["data", "build", "captions", str(tmp_path / "c.h5"), "--set",
                                    f"images_dir={str(image_folder)!r}", "--set", f"captions_dir={str(tmp_path)!r}"],
                                   capsys), "data build")


@pytest.mark.parametrize("command", ["train", "sample"])
def test_a_huge_seed_is_a_one_line_error(command: str, text_checkpoint: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    call = (_failing_call("train", tmp_path) if command == "train" else
            ["sample", str(text_checkpoint), "--n", "1", "--out", str(tmp_path / "s.png")])
    assert_one_line_error(*run_cli([*call, f"--seed={2**64}"], capsys), command)


def test_bench_with_a_huge_thread_count_is_a_one_line_error(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    threads = torch.get_num_threads()
    try:
        assert_one_line_error(*run_cli([*_failing_call("bench", tmp_path), f"--threads={2**40}"], capsys), "bench")
    finally:
        torch.set_num_threads(threads)
