"""docs/writing-plugins.md does what it says.

The example plugin is not in this repository: its files are the doc's ```` ```lang file=PATH ```` blocks. They are
written to a temporary folder, built and installed with pip into a temporary ``--target`` folder (the dev
environment is never touched), and then used the way the doc uses them: the ``ganzoo`` command line and the
plugin's own conformance test run in fresh processes with ``PYTHONPATH`` pointing at that folder. The outputs the doc
shows for ``ganzoo`` commands are compared with what the commands really print. The hook examples
(```` append=PATH ```` blocks) are appended to a second copy of the plugin and exercised the same way.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "writing-plugins.md"
HOOKSPECS = REPO / "ganzoo_core" / "hookspecs.py"
LAYOUT = {"pyproject.toml", "ganzoo_tinygan/__init__.py", "ganzoo_tinygan/model.py", "tests/test_conformance.py"}
_GANZOO_SCRIPT = Path(sys.executable).with_name("ganzoo")
GANZOO = [str(_GANZOO_SCRIPT)] if _GANZOO_SCRIPT.is_file() else [sys.executable, "-m", "ganzoo_core.cli"]


# -- reading the doc ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    lang: str
    attrs: dict[str, str]
    text: str


def doc_blocks(text: str) -> list[Block]:
    """The fenced code blocks of a markdown text, with ``key=value`` words of the info string as attributes."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if not lines[i].startswith("```"):
            i += 1
            continue
        info = lines[i][3:].split()
        body, i = [], i + 1
        while i < len(lines) and lines[i].rstrip() != "```":
            body.append(lines[i])
            i += 1
        assert i < len(lines), f"unclosed code block {info} in {DOC.name}"
        i += 1
        attrs = dict(w.split("=", 1) for w in info[1:] if "=" in w)
        blocks.append(Block(lang=info[0] if info else "", attrs=attrs, text="\n".join(body) + "\n"))
    return blocks


def shown_outputs(blocks: list[Block], command: str) -> list[list[str]]:
    """For every ``$ command`` line in the doc's console blocks, the output lines shown under it."""
    found: list[list[str]] = []
    for block in (b for b in blocks if b.lang == "console"):
        current: list[str] | None = None
        for line in block.text.splitlines():
            if line.startswith("$ "):
                current = [] if line[2:].strip() == command else None
                if current is not None:
                    found.append(current)
            elif current is not None:
                current.append(line.rstrip())
    assert found, f"{DOC.name} shows no output of '$ {command}'"
    return found


def lines_of(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def shows_in_order(shown: list[str], actual: list[str]) -> bool:
    """Every shown line (but '...') occurs in ``actual``, in the same order."""
    pos = 0
    for line in shown:
        if line == "...":
            continue
        try:
            pos = actual.index(line, pos) + 1
        except ValueError:
            return False
    return True


# -- running what the doc says -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Installed:
    blocks: list[Block]
    plugin_dir: Path
    site: Path
    work: Path  # an empty working directory, so that the plugin's source folder is never importable by accident
    project: dict

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GANZOO_")}
        env.update(PYTHONPATH=str(self.site), HF_HUB_OFFLINE="1")
        return env

    def run(self, args: list[str], *, env: dict[str, str] | None = None, check: bool = True,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(args, cwd=self.work, env=env or self.env, capture_output=True, text=True, timeout=timeout)
        if check:
            assert proc.returncode == 0, f"{shlex.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        return proc

    def ganzoo(self, command: str, **kwargs: object) -> str:
        """Run a command written as in the doc (``ganzoo list 'tinygan.*'``) and return its stdout."""
        words = shlex.split(command)
        assert words[0] == "ganzoo", command
        return self.run([*GANZOO, *words[1:]], **kwargs).stdout  # type: ignore[arg-type]


def write_plugin(blocks: list[Block], folder: Path, *, with_appends: bool = False) -> Path:
    written = set()
    for block in blocks:
        rel = block.attrs.get("file")
        if rel is None:
            continue
        assert not Path(rel).is_absolute() and ".." not in Path(rel).parts, f"bad file= path {rel!r}"
        assert rel not in written, f"{DOC.name} has two blocks for {rel}"
        written.add(rel)
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.text, encoding="utf-8")
    assert LAYOUT <= written, f"{DOC.name} lacks the file blocks {sorted(LAYOUT - written)}"
    if with_appends:
        for block in blocks:
            if "append" in block.attrs:
                assert block.attrs["append"] in written, f"append= names a file with no block: {block.attrs}"
                with open(folder / block.attrs["append"], "a", encoding="utf-8") as handle:
                    handle.write("\n\n" + block.text)
    return folder


def install(tmp: Path, *, with_appends: bool = False) -> Installed:
    blocks = doc_blocks(DOC.read_text(encoding="utf-8"))
    plugin_dir = write_plugin(blocks, tmp / "ganzoo-tinygan", with_appends=with_appends)
    site, work = tmp / "site", tmp / "work"
    work.mkdir()
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
           "--disable-pip-version-check", "--quiet", "--target", str(site), str(plugin_dir)]
    proc = subprocess.run(pip, cwd=work, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"pip could not build and install the plugin:\n{proc.stdout}\n{proc.stderr}"
    project = tomllib.loads((plugin_dir / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    installed = Installed(blocks=blocks, plugin_dir=plugin_dir, site=site, work=work, project=project)
    origin = installed.run([sys.executable, "-c",
                            "import importlib.util; print(importlib.util.find_spec('ganzoo_tinygan').origin)"])
    assert Path(origin.stdout.strip()).is_relative_to(site), f"ganzoo_tinygan imported from {origin.stdout}"
    return installed


@pytest.fixture(scope="module")
def tinygan(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return install(tmp_path_factory.mktemp("tinygan"))


@pytest.fixture(scope="module")
def tinygan_with_hooks(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return install(tmp_path_factory.mktemp("tinygan_hooks"), with_appends=True)


def plugin_line(output: str, state: str = "loaded") -> str:
    lines = [line for line in lines_of(output) if re.match(rf"{state}\s+tinygan\s", line)]
    assert len(lines) == 1, f"no single '{state} tinygan' line in:\n{output}"
    return lines[0]


# -- the plugin as the doc builds it -----------------------------------------------------------------------------


def test_doc_plugin_installs_lists_and_passes_its_conformance_test(tinygan: Installed) -> None:
    entry_points = tinygan.project["entry-points"]["ganzoo"]
    assert entry_points == {"tinygan": "ganzoo_tinygan"}
    dist, version = tinygan.project["name"], tinygan.project["version"]

    listed = tinygan.ganzoo("ganzoo list 'tinygan.*'")
    names = {tuple(line.split()[:2]) for line in lines_of(listed)}
    assert names == {(k, f"tinygan.{v}") for k in ("generator", "discriminator", "objective") for v in ("28", "32")}
    assert [lines_of(listed)] == shown_outputs(tinygan.blocks, "ganzoo list 'tinygan.*'")

    plugins = tinygan.ganzoo("ganzoo plugins")
    line = plugin_line(plugins)
    assert re.match(rf"loaded\s+tinygan\s+{re.escape(dist)} {re.escape(version)}\s+\(6 names\)$", line), line
    assert not any(x.startswith("FAILED") for x in lines_of(plugins)), plugins
    assert any(line in shown for shown in shown_outputs(tinygan.blocks, "ganzoo plugins"))

    info = lines_of(tinygan.ganzoo("ganzoo info tinygan.32"))
    for shown in shown_outputs(tinygan.blocks, "ganzoo info tinygan.32"):
        assert shows_in_order(shown, info), "\n".join(info)
    assert [x for x in info if not x.startswith(" ")] == [
        "tinygan.32  (generator)", "tinygan.32  (discriminator)", "tinygan.32  (objective)"
    ]
    assert lines_of(tinygan.ganzoo("ganzoo info tinygan"))[0] == "tinygan.28  (generator)"  # the default variant

    conformance = tinygan.plugin_dir / "tests" / "test_conformance.py"
    result = tinygan.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(conformance)])
    assert re.search(r"\b2 passed\b", result.stdout), result.stdout


def test_doc_plugin_trains_and_samples_from_its_checkpoint(tinygan: Installed) -> None:
    for shown in shown_outputs(tinygan.blocks, "ganzoo train tinygan.28 --steps 2000 --out runs/tinygan"):
        assert shown == []
    tinygan.ganzoo("ganzoo train tinygan.28 --steps 2 --batch-size 8 --out runs/tinygan --sample-every 2 "
                   "--checkpoint-every 2 --log-every 1")
    checkpoint = tinygan.work / "runs" / "tinygan" / "checkpoint.safetensors"
    assert checkpoint.is_file()
    out = tinygan.ganzoo("ganzoo sample runs/tinygan/checkpoint.safetensors --n 4 --out samples.png")
    assert "wrote 4 samples" in out and (tinygan.work / "samples.png").is_file()


def test_load_plugins_filter_and_a_failing_plugin(tinygan: Installed, tmp_path: Path) -> None:
    only = tinygan.run([*GANZOO, "plugins", "--json"], env={**tinygan.env, "GANZOO_LOAD_PLUGINS": "tinygan"}).stdout
    assert "tinygan" in only and "dcgan" not in only and '"failed": []' in only

    broken = tmp_path / "site"
    shutil.copytree(tinygan.site, broken)
    init = broken / "ganzoo_tinygan" / "__init__.py"
    init.write_text(re.sub(r"(?m)^GANZOO_API_VERSION = .*$", "", init.read_text(encoding="utf-8")), encoding="utf-8")
    env = {**tinygan.env, "PYTHONPATH": str(broken)}
    plugins = tinygan.run([*GANZOO, "plugins"], env=env).stdout
    failed = plugin_line(plugins, "FAILED")
    assert any(failed in shown for shown in shown_outputs(tinygan.blocks, "ganzoo plugins")), failed
    assert "loaded  core.losses" in plugins  # the others keep working
    assert "gan.bce" in tinygan.run([*GANZOO, "list", "gan.*"], env=env).stdout


# -- the hook examples -------------------------------------------------------------------------------------------


def test_doc_hook_examples_work(tinygan_with_hooks: Installed) -> None:
    plugin = tinygan_with_hooks
    plugins = plugin.ganzoo("ganzoo plugins")
    line = plugin_line(plugins)
    assert line.endswith("hooks: ganzoo_add_commands, ganzoo_convert_checkpoint, ganzoo_register"), line
    assert any(line in shown for shown in shown_outputs(plugin.blocks, "ganzoo plugins"))

    params = lines_of(plugin.ganzoo("ganzoo tinygan-params"))
    assert [params] == shown_outputs(plugin.blocks, "ganzoo tinygan-params")
    listed = {tuple(p.split()[:2]) for p in params}
    assert {("generator", "tinygan.grey16"), ("discriminator", "tinygan.grey48")} <= listed  # from ganzoo_register

    script = """
import torch, ganzoo_core as gz
G = gz.create_generator("tinygan.28")
torch.save({"net." + k.removeprefix("main."): v for k, v in G.state_dict().items()}, "old_G.pt")
H = gz.create_generator("tinygan.28", weights="old_G.pt")
assert G.state_dict().keys() == H.state_dict().keys()
assert all(torch.equal(a, b) for a, b in zip(G.state_dict().values(), H.state_dict().values()))
print("converted")
"""
    assert "converted" in plugin.run([sys.executable, "-c", script]).stdout

    conformance = plugin.plugin_dir / "tests" / "test_conformance.py"  # now also checks the tinygan.grey* names
    result = plugin.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(conformance)])
    assert re.search(r"\b2 passed\b", result.stdout), result.stdout


# -- fast checks of the text -------------------------------------------------------------------------------------


def _hookspecs() -> list[tuple[str, list[str], str]]:
    """(name, argument names, the ``def ...:`` header with whitespace collapsed) of every hook in hookspecs.py."""
    source = HOOKSPECS.read_text(encoding="utf-8")
    lines = source.splitlines()
    hooks = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("ganzoo_"):
            args = [a.arg for a in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs)]
            header = " ".join(lines[node.lineno - 1 : node.body[0].lineno - 1])
            hooks.append((node.name, args, " ".join(header.split())))
    assert hooks, "no ganzoo_* hooks found in hookspecs.py"
    return hooks


def test_doc_covers_every_hook_with_its_exact_signature() -> None:
    text = DOC.read_text(encoding="utf-8")
    flat = " ".join(text.split())
    for name, args, header in _hookspecs():
        section = re.search(rf"^#+ `{name}`\n(.*?)(?=^#+ )", text, re.M | re.S)
        assert section, f"{DOC.name} has no section titled `{name}`"
        for arg in args:
            assert re.search(rf"\b{arg}\b", section.group(1)), f"section {name} never mentions argument {arg!r}"
        assert header in flat, f"{DOC.name} does not show the signature of {name} as in hookspecs.py: {header}"
        assert re.search(rf"@gz\.hookimpl\s+def {name}\(", section.group(1)), f"section {name} has no example"


def test_doc_code_blocks_parse_and_paths_are_relative() -> None:
    text = DOC.read_text(encoding="utf-8")
    for block in doc_blocks(text):
        if block.lang == "python":
            ast.parse(block.text, filename=block.attrs.get("file", block.attrs.get("append", "<doc block>")))
        elif block.lang == "toml":
            tomllib.loads(block.text)
    assert not re.search(r"(?<![\w.])/(work|tmp|root|home|Users)/", text), "the doc names a path of some machine"
