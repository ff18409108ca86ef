"""Files are data, never code: a lint over every shipped Python file for the calls that can run code from a file.

Refused: ``allow_pickle=True``; ``pickle.load(s)``, ``marshal.load(s)``, ``shelve``, ``dill``, ``joblib.load`` and
``yaml.load`` / ``yaml.unsafe_load``; ``torch.load`` without ``weights_only=True``; ``pickle.Unpickler`` used
directly (a subclass that overrides ``find_class`` is the one allowed form: a restricted unpickler); ``eval`` /
``exec`` of anything. Test code is exempt (it writes hostile files on purpose).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(
    p for base in ("ganzoo_core", "plugins", "scripts", "benchmarks", "experiments") for p in (ROOT / base).rglob("*.py")
    if "tests" not in p.relative_to(ROOT).parts
)
FORBIDDEN_CALLS = {
    ("pickle", "load"), ("pickle", "loads"), ("marshal", "load"), ("marshal", "loads"), ("shelve", "open"),
    ("dill", "load"), ("dill", "loads"), ("joblib", "load"), ("yaml", "unsafe_load"), ("yaml", "load"),
    ("pickle", "Unpickler"), ("cPickle", "load"), ("cloudpickle", "load"), ("cloudpickle", "loads"),
}


def problems(source: str) -> list[str]:
    """What in ``source`` can run code read from a file, as 'line: what' strings."""
    tree = ast.parse(source)
    found = []
    restricted = {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
                  and any(isinstance(b, ast.Attribute) and b.attr == "Unpickler" for b in node.bases)
                  and any(isinstance(f, ast.FunctionDef) and f.name == "find_class" for f in node.body)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name not in restricted and any(
                isinstance(b, ast.Attribute) and b.attr == "Unpickler" for b in node.bases):
            found.append(f"{node.lineno}: Unpickler subclass {node.name} without find_class")
        if not isinstance(node, ast.Call):
            continue
        for kw in node.keywords:
            if kw.arg == "allow_pickle" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                found.append(f"{node.lineno}: allow_pickle={ast.unparse(kw.value)}")
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("eval", "exec"):
            found.append(f"{node.lineno}: {func.id}()")
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            pair = (func.value.id, func.attr)
            if pair in FORBIDDEN_CALLS:
                found.append(f"{node.lineno}: {pair[0]}.{pair[1]}()")
            if pair == ("torch", "load") and not any(
                    kw.arg == "weights_only" and isinstance(kw.value, ast.Constant) and kw.value.value is True
                    for kw in node.keywords):
                found.append(f"{node.lineno}: torch.load() without weights_only=True")
    return found


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_shipped_file_can_run_code_from_a_file(path: Path) -> None:
    assert problems(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(("source", "expected"), [
    ("import numpy as np\nnp.load(f, allow_pickle=True)", "allow_pickle=True"),
    ("import torch\ntorch.load(f)", "without weights_only"),
    ("import torch\ntorch.load(f, weights_only=False)", "without weights_only"),
    ("import pickle\npickle.loads(b)", "pickle.loads"),
    ("import pickle\npickle.Unpickler(f).load()", "pickle.Unpickler"),
    ("import pickle\nclass U(pickle.Unpickler):\n    pass", "without find_class"),
    ("eval(text)", "eval()"),
    ("import yaml\nyaml.load(s)", "yaml.load"),
])
def test_the_lint_catches_each_form(source: str, expected: str) -> None:
    assert any(expected in p for p in problems(source))


def test_the_lint_allows_the_safe_forms() -> None:
    safe = """
import pickle, torch, numpy as np
class Restricted(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(name)
Restricted(f).load()
torch.load(f, weights_only=True)
np.load(f)
np.load(f, allow_pickle=False)
"""
    assert problems(safe) == []
