"""Checkpoints: exact rebuild from metadata, atomic writes, clear errors for damaged or foreign files, no pickle."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import ganzoo_core as gz
from ganzoo_core.checkpoints import atomic_path
from ganzoo_core.config import cfg_from_dict, cfg_to_dict


def test_load_rebuilds_the_exact_network_with_overrides(tmp_path: Path) -> None:
    g = gz.create_generator("dcgan.32", ngf=16, nc=1)
    path = gz.save(g, tmp_path / "g.safetensors", extra={"note": "hello"})
    info = gz.read_info(path)
    assert (info.kind, info.name) == ("generator", "dcgan.32")
    assert info.config["ngf"] == 16 and info.config["nc"] == 1
    assert info.versions["ganzoo-core"] == gz.__version__ and "ganzoo-dcgan" in info.versions
    assert info.extra == {"note": "hello"}
    loaded = gz.load(path)
    assert loaded.cfg == g.cfg and loaded.ganzoo_spec == ("generator", "dcgan.32")
    z = torch.randn(3, 100)
    g.eval(), loaded.eval()
    assert torch.equal(g(z), loaded(z))


def test_objective_checkpoint_keeps_nested_configs(tmp_path: Path) -> None:
    obj = gz.create_objective("dcgan.28", generator_kwargs={"ngf": 8}, discriminator_kwargs={"ndf": 8}, betas=[0.1, 0.2])
    loaded = gz.load(gz.save(obj, tmp_path / "o.safetensors"))
    assert loaded.cfg == obj.cfg and loaded.cfg.betas == (0.1, 0.2)
    assert loaded.networks["G"].cfg.ngf == 8


def test_config_dict_round_trip_restores_tuples() -> None:
    cfg = gz.get_objective_cfg("dcgan.64")
    data = json.loads(json.dumps(cfg_to_dict(cfg)))
    assert data["betas"] == [0.5, 0.999]
    assert cfg_from_dict(cfg, data) == cfg
    with pytest.raises(gz.ConfigError, match="does not know"):
        cfg_from_dict(cfg, {**data, "mystery": 1})


def test_atomic_write_keeps_previous_file_on_error(tmp_path: Path) -> None:
    target = tmp_path / "ckpt.safetensors"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError):
        with atomic_path(target, overwrite=True) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed while writing")
    assert target.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]  # no temporary left behind


def test_killed_process_leaves_previous_checkpoint_loadable(tmp_path: Path) -> None:
    """A process killed in the middle of a save (SIGKILL: no cleanup runs) never damages the old checkpoint."""
    target = tmp_path / "g.safetensors"
    gz.save(gz.create_generator("dcgan.28", ngf=4), target)
    before = target.read_bytes()
    script = f"""
import os, ganzoo_core as gz
from ganzoo_core import checkpoints
real = checkpoints.save_file
def dying(tensors, path, metadata=None):
    real(tensors, path, metadata)
    with open(path, "r+b") as f:
        f.truncate(100)  # the write got this far
    os.kill(os.getpid(), 9)
checkpoints.save_file = dying
gz.save(gz.create_generator("dcgan.28", ngf=4), {str(target)!r}, overwrite=True)
"""
    env = {**os.environ, "GANZOO_LOAD_PLUGINS": "dcgan"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()
    assert target.read_bytes() == before
    assert gz.load(target).cfg.ngf == 4
    assert len(list(tmp_path.glob(".g.safetensors.*.tmp"))) == 1  # the killed write's temporary file
    gz.save(gz.create_generator("dcgan.28", ngf=8), target, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.safetensors"]  # cleaned by the next write
    assert gz.load(target).cfg.ngf == 8


def test_truncated_checkpoint_says_so(tmp_path: Path) -> None:
    path = gz.save(gz.create_generator("dcgan.28", ngf=4), tmp_path / "g.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(gz.CheckpointError, match="truncated"):
        gz.load(path)
    path.write_bytes(data[:5])
    with pytest.raises(gz.CheckpointError, match="truncated"):
        gz.load(path)


def test_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(gz.CheckpointError, match="does not exist"):
        gz.load(tmp_path / "nope.safetensors")
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.ones(2)}, str(plain))
    with pytest.raises(gz.CheckpointError, match="not a ganzoo checkpoint"):
        gz.load(plain)


def test_mismatched_weights_list_what_differs(tmp_path: Path) -> None:
    path = gz.save(gz.create_generator("dcgan.28", ngf=4), tmp_path / "g.safetensors")
    with pytest.raises(gz.CheckpointError) as err:
        gz.create_generator("dcgan.28", ngf=8, weights=path)
    assert "shape mismatch" in str(err.value) and "main.0.weight" in str(err.value)
    with pytest.raises(gz.CheckpointError, match="missing: main.7.weight"):  # 32×32 has one more stage
        gz.create_generator("dcgan.32", ngf=4, weights=path)


def test_pt_files_load_weights_only(tmp_path: Path) -> None:
    g = gz.create_generator("dcgan.28", ngf=4)
    torch.save(g.state_dict(), tmp_path / "g.pt")
    torch.save({"state_dict": g.state_dict(), "epoch": 3}, tmp_path / "wrapped.pth")
    for name in ("g.pt", "wrapped.pth"):
        again = gz.create_generator("dcgan.28", ngf=4, weights=tmp_path / name)
        assert torch.equal(again.main[0].weight, g.main[0].weight)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickled_code_is_never_run(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    with path.open("wb") as handle:
        pickle.dump({"main.0.weight": _Evil()}, handle)
    with pytest.raises(gz.CheckpointError, match="weights-only"):
        gz.create_generator("dcgan.28", weights=path)


def test_saving_a_module_the_registry_did_not_build(tmp_path: Path) -> None:
    with pytest.raises(gz.CheckpointError, match="not built by the registry"):
        gz.save(torch.nn.Linear(2, 2), tmp_path / "x.safetensors")


def _rewrite_metadata(path: Path, **changes: str) -> None:
    """Rewrite a safetensors file with changed metadata, keeping its tensors (what an attacker can do)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as handle:
        meta = dict(handle.metadata())
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    meta.update(changes)
    save_file(tensors, str(path), metadata=meta)


def test_the_tensor_hash_catches_changed_bytes(tmp_path: Path) -> None:
    path = gz.save(gz.create_generator("dcgan.28", ngf=4), tmp_path / "g.safetensors")
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40  # one bit of the last tensor's last bytes: still a valid file
    path.write_bytes(bytes(data))
    with pytest.raises(gz.CheckpointError, match=r"g\.safetensors.*does not match the hash.*verify=False"):
        gz.load(path)
    with pytest.raises(gz.CheckpointError, match="does not match the hash"):
        gz.create_generator("dcgan.28", ngf=4, weights=path)
    assert gz.load(path, verify=False).cfg.ngf == 4  # the user's explicit choice


def test_a_checkpoint_naming_a_path_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    g = gz.create_generator("dcgan.28", ngf=4)
    path = gz.save(g, tmp_path / "g.safetensors")
    config = dict(gz.read_info(path).config)
    config["weights_file"] = str(tmp_path / "evil")  # a field this config does not even have
    _rewrite_metadata(path, **{"ganzoo.config": json.dumps(config)})
    with pytest.raises(gz.CheckpointError, match=r"names a file path in 'weights_file'"):
        gz.load(path)
    objective = gz.create_objective("dcgan.28", generator_kwargs={"ngf": 4}, discriminator_kwargs={"ndf": 4})
    path = gz.save(objective, tmp_path / "o.safetensors")
    config = dict(gz.read_info(path).config)
    config["generator_kwargs"] = {"ngf": 4, "original_dir": "/somewhere/else"}
    _rewrite_metadata(path, **{"ganzoo.config": json.dumps(config)})
    with pytest.raises(gz.CheckpointError, match=r"'generator_kwargs\.original_dir' = '/somewhere/else'.*never opens"):
        gz.load(path)
    config["generator_kwargs"] = {"ngf": 4, "weights": "/x.pth"}  # create_*(weights=) would read it
    _rewrite_metadata(path, **{"ganzoo.config": json.dumps(config)})
    with pytest.raises(gz.CheckpointError, match="generator_kwargs.weights"):
        gz.load(path)


def test_save_never_replaces_without_overwrite_nor_writes_to_devices(tmp_path: Path) -> None:
    g = gz.create_generator("dcgan.28", ngf=4)
    path = gz.save(g, tmp_path / "g.safetensors")
    before = path.read_bytes()
    with pytest.raises(gz.OutputExistsError, match=r"g\.safetensors' already exists; pass --overwrite"):
        gz.save(gz.create_generator("dcgan.28", ngf=8), path)
    assert path.read_bytes() == before
    gz.save(gz.create_generator("dcgan.28", ngf=8), path, overwrite=True)
    assert gz.load(path).cfg.ngf == 8
    for target in (Path("/dev/null"), tmp_path):
        with pytest.raises(gz.OutputPathError, match="ganzoo writes only regular files"):
            gz.save(g, target, overwrite=True)
    assert Path("/dev/null").is_char_device()
    link = tmp_path / "link.safetensors"
    link.symlink_to(tmp_path / "missing" / "x")
    with pytest.raises(gz.OutputPathError, match="dangling symbolic link"):
        gz.save(g, link)


def test_a_full_disk_is_one_clear_error_and_keeps_the_previous_file(tmp_path: Path, monkeypatch) -> None:
    import errno

    from ganzoo_core import checkpoints

    path = gz.save(gz.create_generator("dcgan.28", ngf=4), tmp_path / "g.safetensors")
    before = path.read_bytes()

    def full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints, "save_file", full)
    with pytest.raises(gz.CheckpointError, match=r"could not write checkpoint .*g\.safetensors.*free disk space"):
        gz.save(gz.create_generator("dcgan.28", ngf=8), path, overwrite=True)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["g.safetensors"]


def test_a_checkpoint_cannot_ask_for_a_dataset_to_be_built(tmp_path: Path) -> None:
    path = gz.save(gz.create_generator("dcgan.28", ngf=4), tmp_path / "g.safetensors")
    _rewrite_metadata(path, **{"ganzoo.kind": "dataset", "ganzoo.name": "shapes.32",
                               "ganzoo.config": json.dumps({"n": 10**12})})
    with pytest.raises(gz.CheckpointError, match=r"says it holds a 'dataset'"):
        gz.load(path)


@pytest.mark.parametrize(("writer", "name"), [("torch", "weights.ckpt"), ("torch", "weights.bin"),
                                              ("safetensors", "weights.pth"), ("safetensors", "weights.pt")])
def test_weights_format_is_told_by_content(tmp_path: Path, writer: str, name: str) -> None:
    """Released files come under many names (.ckpt, .pth, .bin): the reader goes by the first bytes."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    source = gz.create_generator("dcgan.28", ngf=8)
    path = tmp_path / name
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    torch.save(state, path) if writer == "torch" else save_file(state, str(path))
    loaded = gz.create_generator("dcgan.28", ngf=8, weights=path)
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), loaded.state_dict().values()))


def test_fields_added_later_take_their_saved_before_value_in_old_checkpoints() -> None:
    import attrs

    from ganzoo_core.config import SAVED_BEFORE, cfg_from_dict, cfg_to_dict

    @attrs.frozen(kw_only=True)
    class Cfg:
        size: int = 4
        mode: str = attrs.field(default="new", metadata={SAVED_BEFORE: "old"})
        plain: str = "x"

    template = Cfg()
    assert cfg_from_dict(template, {"size": 8}) == Cfg(size=8, mode="old")  # saved before 'mode' existed
    assert cfg_from_dict(template, cfg_to_dict(template)) == template  # saved after: its own value
    assert cfg_from_dict(template, {"mode": "new", "size": 4}).plain == "x"  # no metadata: the template's value
