"""The ganzoo command line: every command, --help everywhere, and one-line errors."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from test_datasets import write_animal

from ganzoo_core.cli import build_parser, main


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_list_filters_by_pattern_and_kind(capsys) -> None:
    code, out, _ = run(["list", "dcgan.*", "--kind", "generator"], capsys)
    assert code == 0
    assert [ln.split()[1] for ln in out.splitlines()] == ["dcgan.28", "dcgan.32", "dcgan.64"]
    code, out, _ = run(["list", "--json"], capsys)
    rows = json.loads(out)
    assert {"kind": "loss", "name": "gan.bce"} in rows and {"kind": "objective", "name": "dcgan.28"} in rows


def test_info_shows_fields_defaults_paper_and_plugin(capsys) -> None:
    code, out, _ = run(["info", "dcgan.64"], capsys)
    assert code == 0
    assert "(generator)" in out and "(discriminator)" in out and "(objective)" in out
    assert "ngf = 64" in out and "nz = 100" in out and "arXiv:1511.06434" in out and "plugin: dcgan" in out


def test_unknown_name_is_one_line_with_advice(capsys) -> None:
    from ganzoo_core._plugins import PluginHost, use_host

    core_only = PluginHost()
    core_only.load_defaults()
    with use_host(core_only):  # as for a user who installed ganzoo-core alone
        code, out, err = run(["info", "stackgan.s1_64"], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "ganzoo-stackgan" in err and err.startswith("ganzoo: error:")
    code, _, err = run(["info", "dcgan.46"], capsys)
    assert code == 2 and "did you mean 'dcgan.64'" in err


def test_bad_override_is_one_line(capsys) -> None:
    code, _, err = run(["train", "dcgan.28", "--set", "ngff=3"], capsys)
    assert code == 2 and "ngff" in err and "valid options" in err and "Traceback" not in err


def test_plugins_lists_loaded(capsys) -> None:
    code, out, _ = run(["plugins"], capsys)
    assert code == 0 and "loaded  dcgan" in out and "ganzoo-dcgan 0.1.0" in out


def _subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


@pytest.mark.parametrize("command", [[], *[[c] for c in _subcommands()]])
def test_help_everywhere(command: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    assert "usage: ganzoo" in capsys.readouterr().out


def test_train_then_sample_end_to_end(tmp_path: Path, capsys) -> None:
    (tmp_path / "data").mkdir()
    root = write_animal(tmp_path / "data")
    out = tmp_path / "run"
    code, stdout, err = run(
        ["train", "dcgan.28", "--steps", "6", "--batch-size", "8", "--sample-every", "3", "--log-every", "2",
         "--set", "generator_kwargs={'ngf': 8}", "--set", "discriminator_kwargs={'ndf': 8}",
         "--data-set", f"root={str(root)!r}", "--out", str(out)], capsys)
    assert code == 0, err
    assert (out / "checkpoint.safetensors").is_file() and (out / "samples_0000003.png").is_file()
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6] and all("loss_D" in r and "loss_G" in r for r in rows)
    grid = Image.open(out / "samples.png")
    assert grid.size == (8 * 30 + 2, 8 * 30 + 2)  # 64 samples of 28×28, 8 per row, 2 px padding
    code, stdout, err = run(["sample", str(out / "checkpoint.safetensors"), "--n", "9", "--out",
                             str(tmp_path / "new.png")], capsys)
    assert code == 0, err
    assert Image.open(tmp_path / "new.png").size == (3 * 30 + 2, 3 * 30 + 2)


def test_console_script_runs_in_a_clean_process() -> None:
    env = {**os.environ, "GANZOO_LOAD_PLUGINS": ""}
    proc = subprocess.run([sys.executable, "-m", "ganzoo_core.cli", "list", "--kind", "loss"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0 and "gan.bce" in proc.stdout and "dcgan" not in proc.stdout


def test_train_policy_flags_reach_the_checkpoint(tmp_path: Path, capsys) -> None:
    (tmp_path / "data").mkdir()
    root = write_animal(tmp_path / "data")
    code, _, err = run(
        ["train", "dcgan.28", "--steps", "2", "--batch-size", "8", "--precision", "bf16", "--channels-last",
         "--lr-schedule", "step", "--step-size", "1", "--ema", "0.9", "--no-progress",
         "--set", "generator_kwargs={'ngf': 8}", "--set", "discriminator_kwargs={'ndf': 8}",
         "--data-set", f"root={str(root)!r}", "--out", str(tmp_path / "run")], capsys)
    assert code == 0, err
    from safetensors import safe_open

    with safe_open(str(tmp_path / "run" / "checkpoint.safetensors"), framework="pt") as handle:
        meta = json.loads(handle.metadata()["ganzoo.train"])
    assert meta["policy_name"] == "bf16+channels_last" and meta["train_cfg"]["ema"] == 0.9
    assert meta["schedulers"]["D"]["_last_lr"] == [pytest.approx(2e-4 * 0.25)]
    code, _, err = run(["train", "dcgan.28", "--precision", "fp16", "--steps", "1", "--data-set",
                        f"root={str(root)!r}", "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and "fp16 needs a CUDA device" in err


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import ganzoo_core as gz

    path = tmp_path_factory.mktemp("ck") / "g.safetensors"
    return gz.save(gz.create_objective("dcgan.28", generator_kwargs={"ngf": 4}, discriminator_kwargs={"ndf": 4}),
                   path)


@pytest.mark.parametrize(("args", "says"), [
    (["--n", "0"], "argument --n: expected an integer >= 1, got '0'"),
    (["--n", "-1"], "argument --n: expected an integer >= 1, got '-1'"),
    (["--batch-size", "0"], "argument --batch-size: expected an integer >= 1"),
    (["--device", "cuda:7"], "'cuda:7'"),
    (["--device", "gpu"], "'gpu' is not a device name"),
    (["--out", "/proc/ganzoo.png"], "/proc/ganzoo.png"),
    (["--out", "/dev/full"], "'/dev/full' is not a regular file"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_bad_sample_arguments_are_one_line(args: list[str], says: str, tiny_checkpoint: Path, capsys) -> None:
    try:
        code = main(["sample", str(tiny_checkpoint), *args])
    except SystemExit as done:  # argparse's own one-line errors
        code = done.code
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if not ln.startswith(("usage:", " "))]
    assert code == 2 and len(lines) == 1 and says in lines[0] and "Traceback" not in err, err


def test_sample_never_replaces_and_draws_in_batches(tiny_checkpoint: Path, tmp_path: Path, capsys,
                                                   monkeypatch) -> None:
    from ganzoo_core import checkpoints

    out = tmp_path / "s.png"
    out.write_bytes(b"mine")
    code, _, err = run(["sample", str(tiny_checkpoint), "--n", "4", "--out", str(out)], capsys)
    assert code == 2 and "already exists; pass --overwrite" in err and out.read_bytes() == b"mine"
    sizes: list[int] = []
    real_load = checkpoints.load

    def spy_load(*a, **k):
        module = real_load(*a, **k)
        real_sample = module.sample
        module.sample = lambda n, **kw: (sizes.append(n), real_sample(n, **kw))[1]
        return module

    monkeypatch.setattr(checkpoints, "load", spy_load)
    code, stdout, err = run(["sample", str(tiny_checkpoint), "--n", "10", "--batch-size", "4", "--out", str(out),
                             "--overwrite"], capsys)
    assert code == 0, err
    assert sizes == [4, 4, 2] and "wrote 10 samples" in stdout
    assert Image.open(out).size == (4 * 30 + 2, 3 * 30 + 2)


def test_train_into_a_held_folder_is_one_line_and_debug_shows_the_traceback(tmp_path: Path, capsys) -> None:
    (tmp_path / "data").mkdir()
    root = write_animal(tmp_path / "data")
    args = ["train", "dcgan.28", "--steps", "1", "--batch-size", "8", "--no-progress",
            "--set", "generator_kwargs={'ngf': 4}", "--set", "discriminator_kwargs={'ndf': 4}",
            "--data-set", f"root={str(root)!r}", "--out", str(tmp_path / "run")]
    assert run(args, capsys)[0] == 0
    code, _, err = run(args, capsys)
    assert code == 2 and err.count("\n") == 1 and "already holds a run" in err
    code, _, err = run([*args, "--resume", "--set", "lr=0.001"], capsys)
    assert code == 2 and "lr: 0.0002 -> 0.001" in err and "--accept-changes lr" in err
    code, _, err = run([*args, "--data-set", "channels=3"], capsys)
    assert code == 2 and "channels=3 does not fit 'dcgan.28'" in err
    with pytest.raises(Exception, match="already holds a run"):
        main(["--debug", *args])


def test_the_cores_own_commands_come_through_the_plugin_hook(capsys) -> None:
    """data, encode, eval and bench are added by the core's built-in plugins (``ganzoo_add_commands``), like any
    plugin's commands: a host without the built-ins has only the commands of ``cli.py`` itself."""
    from ganzoo_core._plugins import PluginHost, get_host, use_host

    assert {"list", "info", "plugins", "train", "sample", "data", "encode", "eval", "bench"} <= set(_subcommands())
    hooks = {name: info.hooks for name, info in get_host().plugins.items()}
    assert all("ganzoo_add_commands" in hooks[p] for p in ("core.data", "core.metrics", "core.ops"))
    with use_host(PluginHost()):  # no built-in plugin loaded
        assert _subcommands() == ["demo", "export", "info", "list", "plugins", "sample", "train", "translate"]
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    order = [help_text.index(f"    {c} ") for c in ("list", "info", "plugins", "train", "sample", "translate", "export", "data",
                                                       "encode", "eval", "bench")]
    assert order == sorted(order)  # the order 'ganzoo --help' always had


def _all_parsers(parser: argparse.ArgumentParser, prefix: str = "ganzoo") -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(prefix, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _all_parsers(child, f"{prefix} {name}")
    return found


def test_every_help_shows_the_defaults_of_its_options() -> None:
    """``--help`` of every command (the core's and the plugins') names each option's default."""
    from ganzoo_core.cli import build_parser

    missing = []
    for prog, parser in _all_parsers(build_parser()):
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            default = action.default
            if not action.option_strings or default in (None, False, argparse.SUPPRESS) or default == []:
                continue
            if f"default: {default}" not in text:
                missing.append(f"{prog} {action.option_strings[-1]} (default {default!r})")
    assert not missing, missing


def test_sample_dir_writes_one_png_per_image_batch_by_batch(tmp_path: Path, capsys) -> None:
    """``--dir``: the same images as the grid, one file each (what folder-based FID tools read), and an existing
    file is refused before anything is drawn."""
    import numpy as np
    from PIL import Image

    import ganzoo_core as gz

    ckpt = gz.save(gz.create_objective("dcgan.28", generator_kwargs={"ngf": 4}, discriminator_kwargs={"ndf": 4}),
                   tmp_path / "c.safetensors")
    args = ["sample", str(ckpt), "--n", "10", "--batch-size", "4", "--seed", "3"]
    assert main([*args, "--dir", str(tmp_path / "imgs")]) == 0
    files = sorted((tmp_path / "imgs").iterdir())
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(10)]
    assert main([*args, "--out", str(tmp_path / "grid.png")]) == 0
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    for i, f in enumerate(files):  # the grid: 4 columns of 28 px cells with 2 px padding
        r, c = divmod(i, 4)
        cell = grid[2 + r * 30: 2 + r * 30 + 28, 2 + c * 30: 2 + c * 30 + 28]
        cell = cell[..., 0] if cell.ndim == 3 else cell
        assert np.abs(np.asarray(Image.open(f)).astype(int) - cell).max() <= 1, f.name
    capsys.readouterr()
    assert main([*args, "--dir", str(tmp_path / "imgs")]) == 2
    assert "000000.png" in capsys.readouterr().err
