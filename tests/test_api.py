"""The public verbs: written out and typed, one set per kind, wired to their kind; the modules under them import in
one direction; ``seeded_rng`` and its deprecated old name."""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

import pytest
import torch

import ganzoo_core as gz
from ganzoo_core._registry import KINDS

CORE = Path(gz.__file__).resolve().parent
PREFIXES = ("list_", "is_", "get_", "create_")


def _plural(kind: str) -> str:
    return {"loss": "losses"}.get(kind, kind + "s")


def _verbs(kind: str) -> list[str]:
    return [f"list_{_plural(kind)}", f"is_{kind}", f"get_{kind}", f"get_{kind}_cfg", f"create_{kind}"]


PUBLIC_VERBS = sorted(n for n in gz.__all__ if n.startswith(PREFIXES) or n == "create")


def test_there_are_verbs_to_check() -> None:
    assert len(PUBLIC_VERBS) >= 7 * 5 + 4  # 35 registry verbs and the generic ones at least


@pytest.mark.parametrize("name", PUBLIC_VERBS)
def test_every_public_verb_is_a_typed_def(name: str) -> None:
    func = getattr(gz, name)
    assert inspect.isfunction(func), f"gz.{name} is a {type(func).__name__}, not a function"
    assert func.__name__ == name, f"gz.{name} is a function named {func.__name__!r}"
    assert f"def {name}(" in inspect.getsource(func), f"gz.{name} is not written as 'def {name}('"
    assert f"def {name}(" in inspect.getsource(sys.modules[func.__module__]), f"gz.{name} is not defined in its module"
    sig = inspect.signature(func)
    assert sig.return_annotation is not inspect.Signature.empty, f"gz.{name} has no return annotation"
    untyped = [p.name for p in sig.parameters.values() if p.annotation is inspect.Parameter.empty]
    assert not untyped, f"gz.{name}: parameters without annotations: {untyped}"
    assert (func.__doc__ or "").strip(), f"gz.{name} has no docstring"


def test_one_of_each_verb_per_kind_except_op() -> None:
    for kind in KINDS:
        if kind == "op":  # implementations of kernels have their own verbs in ganzoo_core.ops
            assert not [v for v in _verbs(kind) if v in gz.__all__ or hasattr(gz, v)]
            continue
        missing = [v for v in _verbs(kind) if v not in gz.__all__]
        assert not missing, f"no {missing} for kind {kind!r}"


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "op"])
def test_each_verb_works_on_its_own_kind(kind: str) -> None:
    list_, is_, get, get_cfg, create = (getattr(gz, v) for v in _verbs(kind))
    names = list_()
    assert names == gz.list_names(kind) and names, f"nothing registered of kind {kind!r}"
    name = names[0]
    entry = gz.get_entry(kind, name)
    assert is_(name) and not is_("no-such.name")
    assert get(name) is entry.factory and get_cfg(name) is entry.cfg
    others = [k for k in KINDS if k not in (kind, "op") and name not in gz.list_names(k)]
    if others:  # a name of this kind only: the verbs of another kind do not see it
        assert not getattr(gz, f"is_{others[0]}")(name)
    with pytest.raises(gz.UnknownNameError) as err:
        create("no-such.name")
    assert err.value.kind == kind


def test_create_dataset_takes_config_options_only() -> None:
    params = inspect.signature(gz.create_dataset).parameters
    assert list(params) == ["name", "overrides"]
    assert {"weights", "device"} <= set(inspect.signature(gz.create_generator).parameters)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside functions (relative imports resolved)."""
    package = "ganzoo_core" if path.parent == CORE else "ganzoo_core." + path.parent.name
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            out |= {base} | {f"{base}.{a.name}" for a in node.names}
    return out


@pytest.mark.parametrize(
    ("module", "below"),
    [
        ("checkpoints", ["_api", "_registry"]),
        ("_plugins", ["_api", "_registry", "checkpoints"]),
        ("_entries", ["_api", "_registry", "_plugins", "checkpoints"]),
    ],
)
def test_registry_modules_import_in_one_direction(module: str, below: list[str]) -> None:
    """``_api`` → ``checkpoints`` → ``_plugins`` → ``_entries`` (and ``_registry`` → ``_plugins``): no module
    imports one above it, not even inside a function."""
    imported = _imports(CORE / f"{module}.py")
    wrong = sorted(f"ganzoo_core.{m}" for m in below if f"ganzoo_core.{m}" in imported)
    assert not wrong, f"ganzoo_core/{module}.py imports {wrong}"
    assert "ganzoo_core.checkpoints" in _imports(CORE / "_api.py")  # the direction that remains


def test_spec_attr_and_load_weights_stay_where_they_were() -> None:
    from ganzoo_core import checkpoints
    from ganzoo_core._api import SPEC_ATTR

    assert SPEC_ATTR == "ganzoo_spec" and gz.load_weights is checkpoints.load_weights


def test_seeded_rng_is_a_seeded_torch_generator() -> None:
    rng = gz.seeded_rng(7)
    assert isinstance(rng, torch.Generator) and rng.device == torch.device("cpu")
    assert torch.equal(torch.randn(4, generator=rng), torch.randn(4, generator=gz.seeded_rng(7)))
    assert not torch.equal(torch.randn(4, generator=gz.seeded_rng(7)), torch.randn(4, generator=gz.seeded_rng(8)))


def test_make_generator_is_a_deprecated_alias_that_warns_on_every_call() -> None:
    for _ in range(2):
        with pytest.warns(DeprecationWarning, match="use ganzoo_core.seeded_rng") as caught:
            old = gz.make_generator(3)
        assert len(caught) == 1 and caught[0].filename == __file__  # points at the caller
        assert torch.equal(torch.rand(5, generator=old), torch.rand(5, generator=gz.seeded_rng(3)))
    assert "make_generator" in gz.__all__ and "seeded_rng" in gz.__all__
