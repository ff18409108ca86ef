"""Run config files (``ganzoo train --config FILE``, ``ganzoo eval CKPT --config FILE``): what the reader accepts,
what it refuses (one line naming the file and the key), the checks against the registry, and that flags given on
the command line win over the file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
from test_datasets import write_animal

import ganzoo_core.metrics.cli as eval_cli
from ganzoo_core import training
from ganzoo_core.cli import main
from ganzoo_core.errors import ConfigError, GanzooError
from ganzoo_core.runconfig import (
    EXPERIMENT_KEYS,
    REFUSED,
    RunConfig,
    option_names,
    read_run_config,
    train_cfg_of,
    validate_run_config,
)

FULL = """
objective = "dcgan.28"
steps = 3
batch_size = 8
seed = 7
precision = "bf16"
channels_last = true
lr_schedule = "linear"
ema = 0.9
max_minutes = 2
no_progress = true

[set]
lr_d = 5e-5
generator_kwargs = { ngf = 8 }
discriminator_kwargs = { ndf = 8 }

[data_set]
limit = 40

[eval]
reference = "animal_mnist.test"
n = 300
metrics = "fid,kid"
floor = true

[experiment]
name = "tiny DCGAN"
description = "a run config as the tests write it"
results = "results/eval.json"
"""


def write(tmp_path: Path, text: str, name: str = "run.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_full_file_is_read_with_its_toml_types(tmp_path: Path) -> None:
    config = read_run_config(write(tmp_path, FULL))
    assert isinstance(config, RunConfig) and config.path == tmp_path / "run.toml"
    assert dict(config.train) == {"objective": "dcgan.28", "steps": 3, "batch_size": 8, "seed": 7, "precision": "bf16",
                                  "channels_last": True, "lr_schedule": "linear", "ema": 0.9, "max_minutes": 2,
                                  "no_progress": True}
    assert dict(config.set) == {"lr_d": 5e-5, "generator_kwargs": {"ngf": 8}, "discriminator_kwargs": {"ndf": 8}}
    assert dict(config.data_set) == {"limit": 40}
    assert dict(config.eval) == {"reference": "animal_mnist.test", "n": 300, "metrics": "fid,kid", "floor": True}
    assert dict(config.experiment) == {"name": "tiny DCGAN", "description": "a run config as the tests write it",
                                       "results": "results/eval.json"}
    with pytest.raises(TypeError):
        config.set["lr_d"] = 1.0  # type: ignore[index]  # read-only
    validate_run_config(config)  # registered names, [set] and [data_set] fit their configs


def test_the_valid_keys_are_the_commands_options_less_the_refused_ones() -> None:
    train = option_names("train")
    assert {"objective", "data", "steps", "batch_size", "seed", "precision", "ema", "lr_schedule",
            "channels_last", "max_minutes"} <= set(train)
    assert not set(train) & {"out", "resume", "overwrite", "accept_changes", "config", "set", "data_set", "help"}
    assert {"reference", "n", "metrics", "extractor", "seed"} <= set(option_names("eval"))
    assert not set(option_names("eval")) & set(REFUSED["eval"])
    assert EXPERIMENT_KEYS == ("name", "description", "results")


@pytest.mark.parametrize(("text", "says"), [
    ('stpes = 3\n', "unknown key 'stpes'; did you mean 'steps'? (valid keys: objective, data, steps,"),
    ('batch-size = 3\n', "unknown key 'batch-size'; did you mean 'batch_size'?"),
    ('[eval]\nrefrence = "x"\n', "[eval]: unknown key 'refrence'; did you mean 'reference'?"),
    ('[experiment]\ntitle = "x"\n', "[experiment]: unknown key 'title'"),
    ('out = "runs/x"\n', "'out' cannot be set in a run config; give --out on the command line"),
    ('resume = true\n', "'resume' cannot be set in a run config; give --resume"),
    ('overwrite = true\n', "'overwrite' cannot be set in a run config; give --overwrite"),
    ('accept_changes = "lr"\n', "'accept_changes' cannot be set in a run config; give --accept-changes"),
    ('[eval]\nout = "r.json"\n', "[eval]: 'out' cannot be set in a run config"),
    ('[eval]\noverwrite = true\n', "[eval]: 'overwrite' cannot be set"),
    ('[eval]\ncache_dir = "c"\n', "[eval]: 'cache_dir' cannot be set"),
    ('[eval]\ncheckpoint = "c.safetensors"\n', "[eval]: 'checkpoint' cannot be set in a run config; give the "
                                               "CHECKPOINT argument"),
    ('config = "other.toml"\n', "a run config cannot name another one"),
    ('steps = "100"\n', "steps = '100' (str) must be an integer"),
    ('steps = 1.5\n', "steps = 1.5 (float) must be an integer"),
    ('steps = true\n', "steps = True (bool) must be an integer"),
    ('steps = 0\n', "steps = 0: expected an integer >= 1, got '0'"),
    ('seed = -1\n', "seed = -1: expected an integer from 0 to 2147483647"),
    ('max_minutes = -2.0\n', "max_minutes = -2.0: expected a positive number"),
    ('gamma = "half"\n', "gamma = 'half' (str) must be a number"),
    ('channels_last = 1\n', "channels_last = 1 (int) must be true or false"),
    ('precision = "fp8"\n', "precision = 'fp8' must be one of 'fp32', 'bf16', 'fp16'"),
    ('objective = 28\n', "objective = 28 (int) must be a string"),
    ('set = 3\n', "set = 3 must be a table ([set])"),
    ('eval = "x"\n', "eval = 'x' must be a table ([eval])"),
    ('[eval]\nn = 1\n', "[eval]: n = 1: expected an integer >= 2"),
    ('[eval]\nfloor = "yes"\n', "[eval]: floor = 'yes' (str) must be true or false"),
    ('[experiment]\nname = 3\n', "[experiment]: name = 3 (int) must be a string"),
    ('[experiment]\nresults = "/abs/results.json"\n', "results = '/abs/results.json' must be a relative path"),
    ('[experiment]\nresults = "../results.json"\n', "results = '../results.json' must be a relative path"),
    ('steps = \n', "not a valid TOML file"),
], ids=lambda v: v.strip().replace("\n", " ")[:40] if isinstance(v, str) and "=" in v else "")
def test_every_refusal_is_one_line_naming_the_file(text: str, says: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        read_run_config(path)
    message = str(err.value)
    assert says in message and message.startswith(str(path)) and "\n" not in message, message
    out = tmp_path / "run"
    assert main(["train", "dcgan.28", "--config", str(path), "--out", str(out)]) == 2  # the CLI: same line
    err_text = capsys.readouterr().err
    assert err_text.count("\n") == 1 and says in err_text and "Traceback" not in err_text
    assert not out.exists()  # refused before anything was built or written


@pytest.mark.parametrize(("text", "says"), [
    ('objective = "dcgan.2b"\n', "unknown objective 'dcgan.2b'"),
    ('objective = "dcgan.28"\ndata = "animal_mnistt.train"\n', "'animal_mnistt.train'"),
    ('objective = "dcgan.28"\n[set]\nngff = 3\n', "[set] of objective 'dcgan.28' has no option(s) ['ngff']"),
    ('objective = "dcgan.28"\n[set]\nlr_d = "fast"\n', "option 'lr_d' must be float"),
    ('objective = "dcgan.28"\n[data_set]\nroots = "x"\n', "[data_set] of dataset 'animal_mnist.train' has no "
                                                         "option(s) ['roots']"),
    ('objective = "dcgan.28"\n[data_set]\nchannels = 2\n', "[data_set] of dataset 'animal_mnist.train'"),
    ('[set]\nlr = 1e-3\n', "[set] needs an objective to check against"),
    ('objective = "dcgan.28"\n[eval]\nreference = "fashion_mnistt.test"\n', "'fashion_mnistt.test'"),
    ('objective = "dcgan.28"\n[eval]\nextractor = "domain.nothing"\n', "'domain.nothing'"),
], ids=lambda v: v.strip().replace("\n", " ")[:48] if "\n" in v else "")
def test_validate_checks_the_file_against_the_registry(text: str, says: str, tmp_path: Path) -> None:
    path = write(tmp_path, text)
    config = read_run_config(path)  # well-formed: only the registry can tell
    with pytest.raises(ConfigError) as err:
        validate_run_config(config)
    message = str(err.value)
    assert says in message and message.startswith(str(path)) and "\n" not in message, message


def test_validate_takes_the_command_lines_names_over_the_files(tmp_path: Path) -> None:
    config = read_run_config(write(tmp_path, 'objective = "dcgan.2b"\n[set]\nlr_d = 1e-4\n'))
    validate_run_config(config, objective="dcgan.28")  # the command line's objective is the one checked
    with pytest.raises(ConfigError, match="unknown objective 'dcgan.2b'"):
        validate_run_config(config)
    validate_run_config(config, sections=("eval",))  # only [eval]: nothing to check there
    via_set = read_run_config(write(tmp_path, 'objective = "dcgan.28"\n[set]\ndataset = "fashion_mnist.test"\n'
                                              '[data_set]\nclasses = [1, 2]\n', "s.toml"))
    validate_run_config(via_set)  # the dataset the [set] names is the one [data_set] is checked against
    with pytest.raises(ConfigError, match=r"\[data_set\] of dataset 'h5.file'"):
        validate_run_config(via_set, data="h5.file")
    data_only = read_run_config(write(tmp_path, '[data_set]\nlimit = 3\n', "d.toml"))
    validate_run_config(data_only, data="animal_mnist.test")
    with pytest.raises(ConfigError, match="needs a dataset to check against"):
        validate_run_config(data_only)


def test_a_missing_file_and_a_missing_objective_are_one_line(tmp_path: Path, capsys) -> None:
    assert main(["train", "--config", str(tmp_path / "none.toml"), "--out", str(tmp_path / "run")]) == 2
    assert "No such file or directory" in capsys.readouterr().err
    assert main(["train", "--config", str(write(tmp_path, "steps = 3\n")), "--out", str(tmp_path / "run")]) == 2
    assert "train needs an objective" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "run")]) == 2
    assert "train needs an objective" in capsys.readouterr().err


def test_the_machine_is_checked_when_the_command_runs_not_when_the_file_is_read(tmp_path: Path, capsys) -> None:
    path = write(tmp_path, 'objective = "dcgan.28"\ndevice = "cuda:99"\n')
    assert read_run_config(path).train["device"] == "cuda:99"  # a file for another machine reads here
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ganzoo: error: {path}: device = 'cuda:99'") and "cuda:99" in err


@pytest.fixture
def trained(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """``ganzoo train`` up to the engine: what it would train, on what, where and how."""
    calls: list[tuple[Any, ...]] = []

    def fake_train(objective: Any, dataset: Any, out_dir: Any, cfg: Any) -> Any:
        calls.append((objective, dataset, out_dir, cfg))
        return training.TrainResult(out_dir=Path(out_dir), checkpoint=Path(out_dir) / "checkpoint.safetensors",
                                    samples=(), history=(), step=cfg.steps)

    monkeypatch.setattr(training, "train", fake_train)
    return calls


def test_train_flags_win_over_the_file_and_the_files_other_keys_stay(tmp_path: Path, trained: list,
                                                                    capsys) -> None:
    root = write_animal(tmp_path)
    text = FULL.replace("[data_set]\nlimit = 40\n", f"[data_set]\nlimit = 40\nroot = {str(root)!r}\n")
    path = write(tmp_path, text, "base.toml")
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run")]) == 0
    objective, dataset, out, cfg = trained[-1]
    assert (cfg.steps, cfg.batch_size, cfg.seed, cfg.policy.name, cfg.ema, cfg.max_minutes, cfg.progress) == (
        3, 8, 7, "bf16+channels_last", 0.9, 2.0, False)
    assert cfg.schedule.kind == "linear" and out == tmp_path / "run"
    assert objective.cfg.lr_d == 5e-5 and objective.networks["G"].cfg.ngf == 8 and objective.networks["D"].cfg.ndf == 8
    assert len(dataset) == 40 and tuple(dataset[0]["image"].shape) == (1, 28, 28)  # [data_set], fitted

    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run2"), "--steps", "5", "--precision",
                 "fp32", "--set", "lr_d=1e-4", "--set", "generator_kwargs={'ngf': 4}", "--data-set", "limit=20"]) == 0
    objective, dataset, out, cfg = trained[-1]
    assert (cfg.steps, cfg.batch_size, cfg.seed, cfg.policy.precision) == (5, 8, 7, "fp32")  # flags win, rest stays
    assert objective.cfg.lr_d == 1e-4 and objective.networks["G"].cfg.ngf == 4  # --set k over the file's [set] k
    assert objective.networks["D"].cfg.ndf == 8 and len(dataset) == 20  # the file's other [set] key stays

    assert main(["train", "dcgan.32", "--config", str(path), "--out", str(tmp_path / "run3")]) == 0
    objective, dataset, _, _ = trained[-1]
    assert objective.image_shape == (3, 32, 32) and tuple(dataset[0]["image"].shape) == (3, 32, 32)
    assert "training dcgan.32 on animal_mnist.train (40 images) for 3 steps" in capsys.readouterr().out


def test_train_cfg_of_is_what_ganzoo_train_builds_from_the_file(tmp_path: Path, trained: list) -> None:
    root = write_animal(tmp_path)
    text = FULL.replace("[data_set]\nlimit = 40\n", f"[data_set]\nlimit = 40\nroot = {str(root)!r}\n")
    path = write(tmp_path, text, "base.toml")
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run")]) == 0
    built = trained[-1][3]
    config = read_run_config(path)
    assert train_cfg_of(config) == built and built.seed == 7 and built.policy.name == "bf16+channels_last"
    changed = train_cfg_of(config, seed=1, steps=9)
    assert (changed.seed, changed.steps, changed.batch_size) == (1, 9, built.batch_size)
    with pytest.raises(ConfigError, match="'stepz' are not TrainCfg fields"):
        train_cfg_of(config, stepz=9)
    bad = write(tmp_path, 'objective = "no_such.objective"\n', "bad.toml")
    with pytest.raises(ConfigError, match="no_such.objective"):  # checked against the registry, as the command is
        train_cfg_of(read_run_config(bad))


def test_eval_reads_its_table_and_its_flags_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[argparse.Namespace] = []
    monkeypatch.setattr(eval_cli, "cmd_eval", lambda args: seen.append(args) or 0)
    path = write(tmp_path, FULL)
    ckpt = tmp_path / "checkpoint.safetensors"
    assert main(["eval", str(ckpt), "--config", str(path)]) == 0
    args = seen[-1]
    assert (args.reference, args.n, args.metrics, args.floor, args.seed) == ("animal_mnist.test", 300, "fid,kid",
                                                                              True, 0)
    assert args.checkpoint == ckpt and args.out is None  # the file's [eval] only; the rest are the defaults
    assert main(["eval", str(ckpt), "--config", str(path), "--n", "50", "--reference", "fashion_mnist.test"]) == 0
    args = seen[-1]
    assert (args.reference, args.n, args.metrics, args.floor) == ("fashion_mnist.test", 50, "fid,kid", True)


def test_eval_without_a_reference_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["eval", str(tmp_path / "c.safetensors")]) == 2
    assert "eval needs a reference dataset" in capsys.readouterr().err


def test_the_refused_keys_are_exactly_where_a_command_writes_or_what_it_replaces() -> None:
    assert REFUSED == {"train": ("out", "resume", "overwrite", "accept_changes"),
                       "eval": ("checkpoint", "out", "overwrite", "cache_dir")}
    with pytest.raises(GanzooError, match="no run config section 'sample'"):
        option_names("sample")


@pytest.mark.parametrize("item", ["a={[1]: 2}", "a={{1}: 2}"])
def test_overrides_that_python_cannot_build_are_one_line(item: str) -> None:
    from ganzoo_core.errors import GanzooError
    from ganzoo_core.overrides import parse_overrides

    with pytest.raises(GanzooError) as err:
        parse_overrides([item], option="--data-set")
    assert "\n" not in str(err.value) and str(err.value).startswith("--data-set a=")
