"""Run config files: the options of a ``ganzoo train`` run, and of the ``ganzoo eval`` that scores it, in one TOML
file (``ganzoo train --config FILE``, ``ganzoo eval CKPT --config FILE``).

.. code-block:: toml

    objective = "mygan.28"        # the options of `ganzoo train`, by their argparse dest
    steps = 2000
    batch_size = 64
    lr_schedule = "linear"

    [set]                         # the objective's config (as --set KEY=VALUE), TOML-typed
    lr_d = 5e-5
    generator_kwargs = { ngf = 32 }

    [data_set]                    # the dataset's config (as --data-set KEY=VALUE)
    root = "data/animals"

    [eval]                        # the options of `ganzoo eval`, by dest
    reference = "animal_mnist.test"
    n = 5000

    [experiment]                  # free text for people and tools; the commands ignore it
    name = "a small GAN on animals"
    description = "..."
    results = "results.json"      # a relative path

Flags given on the command line win over the file (``--set k=v`` over the file's ``[set] k``; the file's other keys
stay). A file may not set ``out``, ``resume``, ``overwrite`` or ``accept_changes`` (nor eval's ``checkpoint``,
``out``, ``overwrite`` or ``cache_dir``): where a run is written and what may be replaced are always given on the
command line, so nothing read from a file makes ganzoo write to a path the user did not give. Relative paths in the
file (``[data_set] root``) are taken from the current directory, as the same flags would be.

``read_run_config(path)`` checks the file's keys and value types; ``validate_run_config(config)`` also checks it
against the registry (names registered, ``[set]`` and ``[data_set]`` keys and values fit the configs).
"""

from __future__ import annotations

import argparse
import difflib
import functools
import types
import typing
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import tomllib

from ganzoo_core.errors import ConfigError, GanzooError

SECTIONS = ("train", "eval")
"""The commands a run config holds options of: ``train`` at the top level, ``eval`` in the ``[eval]`` table."""
TABLES = ("set", "data_set", "eval", "experiment")
"""The tables of a run config (besides the ``train`` options at the top level)."""
REFUSED: Mapping[str, tuple[str, ...]] = types.MappingProxyType({
    "train": ("out", "resume", "overwrite", "accept_changes"),
    "eval": ("checkpoint", "out", "overwrite", "cache_dir"),
})
"""Options a run config may not set: where a command writes and what it may replace are the command line's."""
EXPERIMENT_KEYS = ("name", "description", "results")
"""The keys of the ``[experiment]`` table, all optional strings; ``results`` is a relative path."""
_NOT_OPTIONS = ("help", "config")


def _frozen_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return types.MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class RunConfig:
    """A run config file as read and checked by ``read_run_config``: values as the TOML file types them."""

    path: Path  # the file, for messages
    train: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)  # train options by dest
    set: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)  # the objective's config
    data_set: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)  # the dataset's config
    eval: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)  # eval options by dest
    experiment: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)  # name, description, results


# -- the options of each command, from the commands' own argument definitions -------------------------------------


@functools.cache
def _options(section: str) -> Mapping[str, argparse.Action]:
    """dest -> argparse action of every option a run config may give for ``section`` (refused ones included)."""
    parser = argparse.ArgumentParser(add_help=False)
    if section == "train":
        from ganzoo_core.train_cli import add_train_arguments

        add_train_arguments(parser)
    else:
        from ganzoo_core.metrics.cli import add_eval_arguments

        add_eval_arguments(parser)
    return types.MappingProxyType({a.dest: a for a in parser._actions if a.dest not in _NOT_OPTIONS})


def option_names(section: str) -> list[str]:
    """The keys a run config may give for ``section`` (``"train"``: the top level; ``"eval"``: ``[eval]``)."""
    if section not in SECTIONS:
        raise GanzooError(f"no run config section {section!r}; sections: {', '.join(SECTIONS)}")
    skip = {"set", "data_set"} | set(REFUSED[section])
    return [dest for dest in _options(section) if dest not in skip]


def _expected_type(action: argparse.Action) -> type:
    """The TOML type of an option's value: bool for a flag, else what its ``type=`` returns (str by default)."""
    if action.nargs == 0:  # store_true / store_false / store_const
        return bool
    kind = action.type
    if kind in (int, float):
        return kind  # type: ignore[return-value]
    if kind is None or isinstance(kind, type):  # str, Path
        return str
    try:
        returned = typing.get_type_hints(kind).get("return")
    except Exception:  # an annotation that does not resolve: treat the value as text
        returned = None
    return returned if returned in (int, float, str, bool) else str


def _fits(value: Any, expected: type) -> bool:
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, str)


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _check_option(where: str, key: str, value: Any, action: argparse.Action, *, convert: bool) -> Any:
    """``value`` checked against ``action``'s type and choices; with ``convert``, through its ``type=`` function as
    the same flag would be (``device`` then checks this machine); without, only the pure range checks of numbers."""
    expected = _expected_type(action)
    if not _fits(value, expected):
        raise ConfigError(f"{where}: {key} = {value!r} ({type(value).__name__}) must be {_TYPE_WORDS[expected]}")
    if action.choices is not None and value not in action.choices:
        raise ConfigError(f"{where}: {key} = {value!r} must be one of {', '.join(map(repr, action.choices))}")
    if action.type is None or expected is bool or not (convert or expected in (int, float)):
        return value
    try:
        converted = action.type(str(value))  # type: ignore[misc]
    except (argparse.ArgumentTypeError, ValueError, TypeError) as err:
        raise ConfigError(f"{where}: {key} = {value!r}: {err}") from None
    return converted if convert else value


def _unknown(where: str, key: str, valid: Sequence[str]) -> ConfigError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"{where}: unknown key {key!r}{hint} (valid keys: {', '.join(valid)})")


def _refused(where: str, key: str) -> ConfigError:
    flag = "the CHECKPOINT argument" if key == "checkpoint" else "--" + key.replace("_", "-")
    return ConfigError(f"{where}: {key!r} cannot be set in a run config; give {flag} on the command line (where a "
                       "command reads its run from, writes to and what it may replace come from the command line only)")


def _check_section(path: Path, section: str, table: Mapping[str, Any]) -> dict[str, Any]:
    where = str(path) if section == "train" else f"{path} [{section}]"
    valid = option_names(section)
    actions = _options(section)
    out = {}
    for key, value in table.items():
        if key in REFUSED[section]:
            raise _refused(where, key)
        if key == "config":
            raise ConfigError(f"{where}: a run config cannot name another one ('config')")
        if key not in valid:
            raise _unknown(where, key, [*valid, *(TABLES if section == "train" else ())])
        out[key] = _check_option(where, key, value, actions[key], convert=False)
    return out


def _table(path: Path, data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: {name} = {value!r} must be a table ([{name}])")
    return value


def read_run_config(path: str | Path) -> RunConfig:
    """Read and check the run config at ``path`` (TOML; see the module docstring).

    Checks that every key is known (an unknown one is named with the valid keys and the closest match), that no
    refused key is set, and that each option's value has its option's type and range (``steps = 0`` is refused as
    ``--steps 0`` is). Machine-dependent checks (``device``) and the registry (``validate_run_config``) are not
    consulted here. Raises ``ConfigError`` (one line naming the file) or ``OSError`` when the file cannot be read.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not a valid TOML file: {err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a text file ({err.reason})") from None
    train = _check_section(path, "train", {k: v for k, v in data.items() if k not in TABLES})
    evals = _check_section(path, "eval", _table(path, data, "eval"))
    experiment = dict(_table(path, data, "experiment"))
    for key, value in experiment.items():
        if key not in EXPERIMENT_KEYS:
            raise _unknown(f"{path} [experiment]", key, EXPERIMENT_KEYS)
        if not isinstance(value, str):
            raise ConfigError(f"{path} [experiment]: {key} = {value!r} ({type(value).__name__}) must be a string")
    results = experiment.get("results")
    if results is not None and (Path(results).is_absolute() or ".." in Path(results).parts or not results.strip()):
        raise ConfigError(f"{path} [experiment]: results = {results!r} must be a relative path inside the "
                          "experiment's folder (no leading '/', no '..')")
    return RunConfig(path=path, train=train, set=_table(path, data, "set"), data_set=_table(path, data, "data_set"),
                     eval=evals, experiment=experiment)


def validate_run_config(config: RunConfig, *, objective: str | None = None, data: str | None = None,
                        sections: Collection[str] = SECTIONS) -> None:
    """Check ``config`` against the registry: the objective, dataset, eval reference and extractor are registered
    names, ``[set]`` holds options (and values) of the objective's config, ``[data_set]`` of the dataset's.

    ``objective`` and ``data`` are names given on the command line, which win over the file's. The dataset is
    ``data`` (or the file's), else the objective's ``cfg.dataset`` (after ``[set]``). ``sections`` limits the check to
    ``"train"`` (top level, ``[set]``, ``[data_set]``) or ``"eval"`` (``[eval]``). Raises ``ConfigError``, one line
    naming the file.
    """
    from ganzoo_core._api import get_entry
    from ganzoo_core.config import apply_overrides

    path = config.path
    try:
        if "train" in sections:
            name = objective or config.train.get("objective")
            entry = get_entry("objective", name) if name else None
            if entry is None and config.set:
                raise ConfigError("[set] needs an objective to check against; add objective = \"NAME\"")
            cfg = apply_overrides(entry.cfg, config.set, what=f"[set] of objective {entry.name!r}") if entry else None
            dataset = data or config.train.get("data") or getattr(cfg, "dataset", None)  # [set] dataset = ... too
            data_entry = get_entry("dataset", dataset) if dataset else None
            if data_entry is None and config.data_set:
                raise ConfigError("[data_set] needs a dataset to check against; add data = \"NAME\"")
            if data_entry is not None:
                apply_overrides(data_entry.cfg, config.data_set, what=f"[data_set] of dataset {data_entry.name!r}")
        if "eval" in sections:
            if "reference" in config.eval:
                get_entry("dataset", config.eval["reference"])
            if "extractor" in config.eval:
                get_entry("encoder", config.eval["extractor"])
    except GanzooError as err:
        if str(err).startswith(str(path)):
            raise
        raise ConfigError(f"{path}: {err}") from err


# -- the command line ----------------------------------------------------------------------------------------------


def _command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[command]


def command_defaults(config: RunConfig, section: str, command: argparse.ArgumentParser) -> dict[str, Any]:
    """The parsed values (through each option's ``type=``, as flags) that ``config`` gives ``command``'s options:
    the defaults the file sets, for ``command.set_defaults`` (``train`` also gets the ``[set]`` and ``[data_set]``
    tables as ``config_set`` / ``config_data_set``)."""
    actions = {a.dest: a for a in command._actions}
    table = config.train if section == "train" else config.eval
    where = str(config.path) if section == "train" else f"{config.path} [{section}]"
    values = {key: _check_option(where, key, value, actions[key], convert=True) for key, value in table.items()}
    if section == "train":
        values |= {"config_set": dict(config.set), "config_data_set": dict(config.data_set)}
    return values


def parse_args_with_config(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """``parser.parse_args(argv)``; when the command has ``--config FILE`` (``train``, ``eval``), the file's options
    become the command's defaults and ``argv`` is parsed again, so the flags given win over the file."""
    args = parser.parse_args(argv)
    path = getattr(args, "config", None)
    if path is None or args.command not in SECTIONS:
        return args
    config = read_run_config(path)
    command = _command_parser(parser, args.command)
    command.set_defaults(**command_defaults(config, args.command, command))
    args = parser.parse_args(argv)
    if args.command == "train":
        validate_run_config(config, objective=args.objective, data=args.data, sections=("train",))
    return args


def train_cfg_of(config: RunConfig, **changes: Any) -> Any:
    """The ``TrainCfg`` that ``ganzoo train --config`` builds from ``config`` (checked against the registry first,
    as that command does), with ``changes`` (``TrainCfg`` fields, e.g. ``seed=1``) on top."""
    from ganzoo_core.train_cli import add_train_arguments, train_cfg_from_args

    validate_run_config(config, sections=("train",))
    parser = argparse.ArgumentParser(add_help=False)
    add_train_arguments(parser)
    parser.set_defaults(**command_defaults(config, "train", parser))
    base = train_cfg_from_args(parser.parse_args([]))
    unknown = sorted(set(changes) - {f.name for f in attrs.fields(type(base))})
    if unknown:
        raise ConfigError(f"{config.path}: {', '.join(map(repr, unknown))} are not TrainCfg fields; valid: "
                          f"{', '.join(f.name for f in attrs.fields(type(base)))}")
    return attrs.evolve(base, **changes)


__all__ = [
    "EXPERIMENT_KEYS", "REFUSED", "SECTIONS", "TABLES", "RunConfig", "command_defaults", "option_names",
    "parse_args_with_config", "read_run_config", "train_cfg_of", "validate_run_config",
]
