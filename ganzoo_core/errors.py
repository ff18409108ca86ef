"""Exceptions raised by ganzoo. Every message names the bad value and says what to do next."""

from __future__ import annotations

from collections.abc import Sequence


class GanzooError(Exception):
    """Base class of every error ganzoo raises on purpose; the CLI prints these as one line."""


class UnknownNameError(GanzooError, KeyError):
    """A registry name that is not registered for its kind."""

    def __init__(self, name: str, kind: str, suggestions: Sequence[str] = (), hint: str = "") -> None:
        self.name, self.kind, self.suggestions, self.hint = name, kind, tuple(suggestions), hint
        msg = f"unknown {kind} {name!r}"
        if self.suggestions:
            msg += "; did you mean " + ", ".join(repr(s) for s in self.suggestions) + "?"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would otherwise print the message in quotes
        return str(self.args[0])


class RetiredNameError(UnknownNameError):
    """A registry name that was retired (``register_retired``): the message says where it went. Checkpoints saved
    under it still load, rebuilt by its replacement."""

    def __init__(self, name: str, kind: str, replacement: str, note: str) -> None:
        self.name, self.kind, self.replacement = name, kind, replacement
        self.suggestions, self.hint = (replacement,), note
        GanzooError.__init__(self, f"{kind} {name!r} was retired: {note}")


class UnknownPretrainedError(GanzooError, LookupError):
    """Pretrained weights (a ``family.variant.tag`` name or a tag) that no installed plugin ships; the message lists
    what is there or names the distribution to install."""


class DuplicateNameError(GanzooError, ValueError):
    """Two plugins (or two objects) registered the same name for the same kind."""

    def __init__(self, name: str, kind: str, first: str, second: str) -> None:
        self.name, self.kind, self.plugins = name, kind, (first, second)
        super().__init__(
            f"{kind} {name!r} is registered twice: by {first} and by {second}; "
            "rename one of them or restrict loading with GANZOO_LOAD_PLUGINS"
        )


class ConfigError(GanzooError, TypeError):
    """An override or a saved config that does not fit the component's config class."""


class PluginError(GanzooError):
    """A plugin could not be imported, is incompatible, or failed while registering."""

    def __init__(self, plugin: str, message: str) -> None:
        self.plugin = plugin
        super().__init__(f"plugin {plugin!r}: {message}")


class CheckpointError(GanzooError):
    """A checkpoint file that is truncated, corrupt, or does not match the network it is loaded into."""


class OutputPathError(GanzooError):
    """An output path ganzoo must not or cannot write: not a regular file, unwritable, or on a full disk."""


class OutputExistsError(OutputPathError):
    """An output file that already exists and was not given ``overwrite=True`` / ``--overwrite``."""


class RunFolderError(GanzooError):
    """A training run folder that holds another run, is in use by another process, or whose settings differ."""


class InputError(GanzooError, ValueError):
    """A value passed to a function that it cannot take (a blank caption, a NUL in a text, ...)."""


class ShapeError(GanzooError, ValueError):
    """A tensor with the wrong shape was passed to a network."""


class DatasetUnavailableError(GanzooError):
    """A built-in dataset whose source files are not installed on this machine."""


class NonFiniteLossError(GanzooError, FloatingPointError):
    """A loss became NaN or infinite during training."""

    def __init__(self, step: int, phase: str, name: str, value: float, checkpoint: str | None = "") -> None:
        """``checkpoint``: the last good checkpoint, None when the run has none yet, "" when unknown."""
        self.step, self.phase, self.loss_name, self.value = step, phase, name, value
        self.checkpoint = checkpoint
        if checkpoint:
            kept = f"the last good checkpoint {checkpoint} was kept"
        elif checkpoint is None:
            kept = "no checkpoint had been written yet"
        else:
            kept = "nothing was saved past the last checkpoint"
        super().__init__(
            f"loss {name!r} of phase {phase!r} is {value} at step {step}; training stopped and {kept}; lower the "
            "learning rate or check the data for NaNs"
        )
