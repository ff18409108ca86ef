#!/usr/bin/env python
"""Check that ganzoo's distributions build, declare the right dependencies and work from wheels alone.

Run it with the dev virtualenv's python (it needs ``hatchling`` there, because wheels build without isolation)::

    .venv/bin/python scripts/check_packaging.py [--wheelhouse DIR] [--keep] [--verbose]

Steps:

1. build a wheel for every distribution (the root ``ganzoo-core`` and every ``plugins/*/pyproject.toml``) with
   ``python -m pip wheel --no-deps --no-build-isolation`` into the wheelhouse;
2. read the wheels: no ``Requires-Dist`` names the distribution ``ganzoo`` (an unrelated PyPI project), every plugin
   requires ``ganzoo-core`` and declares its package in the entry-point group ``ganzoo``, and the core wheel ships
   ``ganzoo_core/registry.toml`` (identical to the repository's) and ``ganzoo_core/py.typed``;
3. create a fresh virtualenv in a temporary folder;
4. install torch into it first, from the spec in ``GANZOO_PACKAGING_TORCH`` (default ``torch==2.13.0``; split like a
   shell command line, so pip options may follow). The default suits the machine this was written on, where pip's
   global find-links hold a CPU-only ``torch-2.13.0+cpu`` wheel. Elsewhere any spec that satisfies ganzoo-core's
   ``torch>=2.4`` works, e.g. ``GANZOO_PACKAGING_TORCH="torch==2.5.1 --index-url
   https://download.pytorch.org/whl/cpu"`` for a small CPU build;
5. ``pip install --find-links WHEELHOUSE ganzoo-dcgan==VERSION`` (only the plugin: ganzoo-core must arrive as its
   dependency, and pip's install report must show both came from the wheelhouse). The other dependencies (numpy,
   pluggy, attrs, safetensors, pillow) come from the package index, so ``--no-index`` is not used;
6. with ``GANZOO_LOAD_PLUGINS`` unset and ``HF_HUB_OFFLINE=1``, and from a folder outside the repository: run
   ``ganzoo list --json`` and ``ganzoo plugins --json`` and compare them with ``registry.toml``; check
   ``gz.list_generators('dcgan.*')``; and check that ``ganzoo info stackgan.s1_64`` (a first-party name whose plugin
   is not installed) exits with 2 and one line naming ``ganzoo-stackgan``.

Every step prints its wall time. Any failure ends the script with exit code 1 and a one-line reason on stderr
(after the tail of the failing command's output). ``--keep`` keeps the temporary folders and prints where they are.

Standard library only; Python 3.11+ (or 3.10 with ``tomli`` installed).
"""

from __future__ import annotations

import argparse
import ast
import email.parser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:
    import tomllib
except ImportError:  # pragma: no cover - python 3.10
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ImportError:
        sys.exit("check_packaging: FAIL: needs Python 3.11+ (tomllib) or the 'tomli' package")

REPO = Path(__file__).resolve().parent.parent
CORE_DIST = "ganzoo-core"
PLUGIN_DIST = "ganzoo-dcgan"  # the plugin installed into the fresh venv
PLUGIN_NAME = "dcgan"  # its entry-point name and its key in registry.toml
UNINSTALLED_NAME = "stackgan.s1_64"  # a first-party name whose plugin is not installed
UNINSTALLED_DIST = "ganzoo-stackgan"
FORBIDDEN_DIST = "ganzoo"  # an unrelated PyPI project; never a dependency of ours
WEIGHTS_DIST = "ganzoo-weights"  # installed beside the plugin: it must pull in no plugin
WEIGHTS_SAMPLE = ("dcgan.32", "fashion_mnist")  # a pretrained name of the installed plugin, sampled from the wheel
PLUGIN_KINDS = ("generator", "discriminator", "objective", "block")  # kinds only the plugin provides here
DEFAULT_TORCH = "torch==2.13.0"

BUILD_TIMEOUT = 300
INSTALL_TIMEOUT = 1800
RUN_TIMEOUT = 300


class CheckFailed(Exception):
    """A failed step: ``str(err)`` is the one-line reason; ``detail`` is output worth showing above it."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.detail = detail


# -- helpers ------------------------------------------------------------------------------------------------------


def normalize(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")


def requirement_name(requirement: str) -> str:
    """The normalised distribution name at the start of a PEP 508 requirement string."""
    match = _REQ_NAME.match(requirement)
    if not match:
        raise CheckFailed(f"cannot parse the requirement {requirement!r}")
    return normalize(match.group(1))


def tail(text: str, lines: int = 40) -> str:
    rows = text.rstrip().splitlines()
    cut = rows[-lines:]
    head = [f"... ({len(rows) - lines} lines before)"] if len(rows) > lines else []
    return "\n".join("    " + row for row in head + cut)


def run(
    cmd: Sequence[str | Path],
    *,
    what: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = RUN_TIMEOUT,
    verbose: bool = False,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` capturing stdout and stderr; a non-zero exit (when ``check``) raises ``CheckFailed``."""
    argv = [str(c) for c in cmd]
    if verbose:
        print(f"    $ {shlex.join(argv)}", flush=True)
    try:
        proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        out = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        raise CheckFailed(f"{what}: timed out after {timeout:.0f} s: {shlex.join(argv)}", out) from err
    except OSError as err:
        raise CheckFailed(f"{what}: cannot run {argv[0]}: {err}") from err
    if verbose and (proc.stdout or proc.stderr):
        print(tail(proc.stdout + proc.stderr, 200), flush=True)
    if check and proc.returncode != 0:
        raise CheckFailed(
            f"{what} failed (exit {proc.returncode}): {shlex.join(argv)}", proc.stdout + proc.stderr
        )
    return proc


class Steps:
    """Numbered steps with wall times."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.times: list[tuple[str, float]] = []

    @contextmanager
    def step(self, title: str) -> Iterator[Callable[[str], None]]:
        self.done += 1
        print(f"[{self.done}/{self.total}] {title} ...", flush=True)
        start = time.perf_counter()

        def note(message: str) -> None:
            print(f"    {message}", flush=True)

        try:
            yield note
        except CheckFailed:
            print(f"[{self.done}/{self.total}] {title}: FAILED after {time.perf_counter() - start:.1f} s", flush=True)
            raise
        elapsed = time.perf_counter() - start
        self.times.append((title, elapsed))
        print(f"[{self.done}/{self.total}] {title}: ok ({elapsed:.1f} s)", flush=True)


# -- the distributions -------------------------------------------------------------------------------------------


def load_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise CheckFailed(f"cannot read {path}: {err}") from err


def find_projects() -> dict[str, Path]:
    """Distribution name (normalised) -> project folder, for the root and every plugin."""
    projects: dict[str, Path] = {}
    for pyproject in [REPO / "pyproject.toml", *sorted(REPO.glob("plugins/*/pyproject.toml"))]:
        name = load_toml(pyproject).get("project", {}).get("name")
        if not name:
            raise CheckFailed(f"{pyproject.relative_to(REPO)} has no [project] name")
        key = normalize(name)
        if key in projects:
            raise CheckFailed(f"two projects are both named {name!r}: {projects[key]} and {pyproject.parent}")
        projects[key] = pyproject.parent
    if CORE_DIST not in projects or PLUGIN_DIST not in projects:
        raise CheckFailed(f"expected the projects {CORE_DIST} and {PLUGIN_DIST}, found {sorted(projects)}")
    return projects


def build_wheels(
    projects: dict[str, Path], wheelhouse: Path, scratch: Path, verbose: bool, note: Callable
) -> dict[str, Path]:
    """Build each project's wheel into its own empty folder, then move it into ``wheelhouse``."""
    wheels: dict[str, Path] = {}
    for dist, folder in projects.items():
        out = scratch / f"build-{dist}"
        out.mkdir(parents=True)
        start = time.perf_counter()
        run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--disable-pip-version-check",
             "--wheel-dir", out, folder],
            what=f"building the wheel of {dist} ({folder.relative_to(REPO) if folder != REPO else '.'})",
            timeout=BUILD_TIMEOUT,
            verbose=verbose,
        )
        built = sorted(out.glob("*.whl"))
        if len(built) != 1:
            raise CheckFailed(f"building {dist} left {len(built)} wheels in {out}, expected one")
        target = wheelhouse / built[0].name
        target.unlink(missing_ok=True)  # a stale wheel of the same name from an earlier run
        shutil.move(built[0], target)
        wheels[dist] = target
        note(f"{target.name}  ({time.perf_counter() - start:.1f} s)")
    return wheels


def read_wheel(path: Path) -> tuple[Any, list[str], str]:
    """(METADATA message, file names, entry_points.txt text) of a wheel."""
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        infos = [n for n in names if n.count("/") == 1 and n.split("/")[0].endswith(".dist-info")]
        meta = [n for n in infos if n.endswith("/METADATA")]
        if len(meta) != 1:
            raise CheckFailed(f"{path.name} has {len(meta)} METADATA files")
        message = email.parser.Parser().parsestr(zf.read(meta[0]).decode("utf-8"))
        eps = [n for n in infos if n.endswith("/entry_points.txt")]
        entry_points = zf.read(eps[0]).decode("utf-8") if eps else ""
    return message, names, entry_points


def entry_point_group(text: str, group: str) -> dict[str, str]:
    """``name -> value`` of one group of an entry_points.txt (an INI file; parsed by hand to keep keys' case)."""
    current, found = None, {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
        elif current == group and "=" in line:
            key, _, value = line.partition("=")
            found[key.strip()] = value.strip()
    return found


def check_wheels(wheels: dict[str, Path], note: Callable) -> None:
    problems: list[str] = []
    for dist, wheel in wheels.items():
        before = len(problems)
        message, names, entry_points = read_wheel(wheel)
        if normalize(message.get("Name", "")) != dist:
            problems.append(f"{wheel.name}: METADATA Name is {message.get('Name')!r}, expected {dist!r}")
        if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
            problems.append(f"{wheel.name} lacks its LICENSE file (.dist-info/licenses/LICENSE)")
        if message.get("License-Expression") != "MIT" or not message.get_all("Classifier") or not message.get("Author"):
            problems.append(f"{wheel.name}: METADATA needs License-Expression MIT, classifiers and an author")
        requires = message.get_all("Requires-Dist") or []
        req_names = {requirement_name(r) for r in requires}
        for req in requires:
            if requirement_name(req) == FORBIDDEN_DIST:
                problems.append(
                    f"{wheel.name}: Requires-Dist {req!r} names {FORBIDDEN_DIST!r}, an unrelated PyPI project"
                    f" (use {CORE_DIST!r})"
                )
        if dist == CORE_DIST:
            for member in ("ganzoo_core/registry.toml", "ganzoo_core/py.typed"):
                if member not in names:
                    problems.append(f"{wheel.name} lacks {member}")
            if "ganzoo_core/registry.toml" in names:
                with zipfile.ZipFile(wheel) as zf:
                    shipped = zf.read("ganzoo_core/registry.toml")
                if shipped != (REPO / "registry.toml").read_bytes():
                    problems.append(f"{wheel.name}: ganzoo_core/registry.toml differs from the repository's")
            scripts = entry_point_group(entry_points, "console_scripts")
            if scripts.get("ganzoo") != "ganzoo_core._launch:main":
                problems.append(f"{wheel.name}: console script 'ganzoo' is {scripts.get('ganzoo')!r}")
            if len(problems) == before:
                note(f"{wheel.name}: {len(requires)} Requires-Dist, ships registry.toml and py.typed")
            continue
        # a plugin
        if CORE_DIST not in req_names:
            problems.append(f"{wheel.name}: no Requires-Dist on {CORE_DIST} (has {sorted(req_names)})")
        plugins = entry_point_group(entry_points, "ganzoo")
        package = dist.replace("-", "_")
        if list(plugins.values()) != [package]:
            problems.append(
                f"{wheel.name}: entry points in group 'ganzoo' are {plugins}, expected one naming {package}"
            )
        if f"{package}/__init__.py" not in names:
            problems.append(f"{wheel.name} lacks {package}/__init__.py")
        if dist == WEIGHTS_DIST:
            shipped = sorted(n.split("/")[2] for n in names if n.startswith(f"{package}/weights/")
                             and n.endswith("/config.json"))
            provides = sorted(load_toml(REPO / "registry.toml").get("weights", {}).get("provides", []))
            if shipped != provides:
                problems.append(f"{wheel.name} ships model folders {shipped}; registry.toml [weights] provides {provides}")
            plugin_reqs = sorted(r for r in req_names if r.startswith("ganzoo-") and r != CORE_DIST)
            if plugin_reqs:
                problems.append(f"{wheel.name} depends on plugins {plugin_reqs}; it must install alone beside them")
        core_req = [r for r in requires if requirement_name(r) == CORE_DIST]
        if len(problems) == before:
            note(f"{wheel.name}: requires {', '.join(core_req)}; entry point {plugins}")
    if problems:
        raise CheckFailed(f"{len(problems)} problem(s) in the wheels: " + "; ".join(problems))


# -- the fresh virtualenv ----------------------------------------------------------------------------------------


def venv_bin(venv: Path, name: str) -> Path:
    if os.name == "nt":  # pragma: no cover
        return venv / "Scripts" / (name + (".exe" if name in ("python", "ganzoo") else ""))
    return venv / "bin" / name


def clean_env(venv: Path) -> dict[str, str]:
    """The environment of commands run in the fresh venv: nothing that points back at the repository."""
    env = dict(os.environ)
    for key in ("GANZOO_LOAD_PLUGINS", "GANZOO_TRACE_PLUGINS", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP",
                "PYTHONSAFEPATH", "PIP_REQUIRE_VIRTUALENV", "PIP_USER", "PIP_TARGET", "PIP_PREFIX"):
        env.pop(key, None)
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = os.pathsep.join([str(venv_bin(venv, "python").parent), env.get("PATH", "")])
    return env


def pip_report(path: Path) -> list[dict[str, Any]]:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("install", [])
    except (OSError, ValueError) as err:
        raise CheckFailed(f"cannot read pip's install report {path}: {err}") from err


def install_plugin(venv: Path, env: dict[str, str], wheelhouse: Path, wheels: dict[str, Path], work: Path,
                   verbose: bool, note: Callable) -> None:
    version = read_wheel(wheels[PLUGIN_DIST])[0]["Version"]
    report = work / "install-report.json"
    run(
        [venv_bin(venv, "python"), "-m", "pip", "install", "--find-links", wheelhouse, "--report", report,
         f"{PLUGIN_DIST}=={version}"],
        what=f"installing {PLUGIN_DIST}", env=env, cwd=work, timeout=INSTALL_TIMEOUT, verbose=verbose,
    )
    installed = {normalize(item["metadata"]["name"]): item for item in pip_report(report)}
    problems = []
    for dist in (PLUGIN_DIST, CORE_DIST):
        item = installed.get(dist)
        if item is None:
            problems.append(f"pip did not install {dist}")
            continue
        url = item.get("download_info", {}).get("url", "")
        expected = wheels[dist].resolve().as_uri()
        if url != expected:
            problems.append(f"{dist} came from {url}, not from the wheelhouse ({expected})")
    if installed.get(CORE_DIST, {}).get("requested"):
        problems.append(f"{CORE_DIST} was requested rather than installed as {PLUGIN_DIST}'s dependency")
    if "torch" in installed:
        problems.append(f"installing {PLUGIN_DIST} replaced torch with {installed['torch']['metadata']['version']}")
    if problems:
        raise CheckFailed("; ".join(problems))
    others = sorted(
        f"{n}=={i['metadata']['version']}" for n, i in installed.items() if n not in (PLUGIN_DIST, CORE_DIST)
    )
    note(f"{PLUGIN_DIST}=={version} and {CORE_DIST}=={installed[CORE_DIST]['metadata']['version']} from the wheelhouse")
    note(f"from the index: {', '.join(others) or 'nothing'}")


def json_output(proc: subprocess.CompletedProcess[str], what: str) -> Any:
    try:
        return json.loads(proc.stdout)
    except ValueError as err:
        raise CheckFailed(f"{what} printed no valid JSON: {err}", proc.stdout + proc.stderr) from err


def check_installed(venv: Path, env: dict[str, str], work: Path, verbose: bool, note: Callable) -> None:
    catalogue = load_toml(REPO / "registry.toml")
    provides: dict[str, list[str]] = catalogue["plugins"][PLUGIN_NAME]["provides"]
    core_provides: dict[str, list[str]] = catalogue.get("core", {}).get("provides", {})
    ganzoo, python = venv_bin(venv, "ganzoo"), venv_bin(venv, "python")
    if not ganzoo.exists():
        raise CheckFailed(f"the console script {ganzoo} was not installed")

    def ganzoo_run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([ganzoo, *args], what=f"ganzoo {' '.join(args)}", env=env, cwd=work, verbose=verbose, check=check)

    # where things were imported from: the venv's site-packages, with the catalogue shipped in the wheel
    proc = run(
        [python, "-c", "import json, ganzoo_core, ganzoo_dcgan; from ganzoo_core._catalogue import catalogue_path; "
         "print(json.dumps([ganzoo_core.__file__, ganzoo_dcgan.__file__, str(catalogue_path())]))"],
        what="importing ganzoo_core and ganzoo_dcgan", env=env, cwd=work, verbose=verbose,
    )
    core_file, plugin_file, catalogue_file = json_output(proc, "the import check")
    venv_root = venv.resolve()
    for label, file in (("ganzoo_core", core_file), ("ganzoo_dcgan", plugin_file)):
        if venv_root not in Path(file).resolve().parents:
            raise CheckFailed(f"{label} was imported from {file}, not from the fresh venv {venv}")
    if Path(catalogue_file).resolve() != Path(core_file).resolve().with_name("registry.toml"):
        raise CheckFailed(f"ganzoo_core reads its catalogue from {catalogue_file}, not from the installed package")

    # ganzoo list --json
    listed = json_output(ganzoo_run("list", "--json"), "ganzoo list --json")
    by_kind: dict[str, list[str]] = {}
    for row in listed:
        by_kind.setdefault(row["kind"], []).append(row["name"])
    problems = []
    for kind in PLUGIN_KINDS:
        stray = [n for n in by_kind.get(kind, []) if not n.startswith(f"{PLUGIN_NAME}.")]
        if stray:
            problems.append(f"{kind} names not from {PLUGIN_NAME}: {stray}")
    for kind, names in by_kind.items():
        mine = sorted(n for n in names if n.startswith(f"{PLUGIN_NAME}."))
        if mine and kind not in provides:
            problems.append(f"{kind} {mine} listed but registry.toml's [plugins.{PLUGIN_NAME}.provides] has no {kind}")
    for kind, names in provides.items():
        mine = sorted(n for n in by_kind.get(kind, []) if n.startswith(f"{PLUGIN_NAME}."))
        if mine != sorted(names):
            problems.append(f"{kind}: listed {mine}, registry.toml provides {sorted(names)}")
    for kind, names in core_provides.items():
        listed_names = sorted(by_kind.get(kind, []))
        if listed_names != sorted(names):
            problems.append(f"{kind}: listed {listed_names}, registry.toml [core.provides] {sorted(names)}")
    if problems:
        raise CheckFailed("ganzoo list --json: " + "; ".join(problems))
    note("ganzoo list --json: " + ", ".join(f"{len(v)} {k}" for k, v in sorted(by_kind.items())))

    # ganzoo plugins --json
    plugins = json_output(ganzoo_run("plugins", "--json"), "ganzoo plugins --json")
    loaded = {p["name"]: p for p in plugins.get("loaded", [])}
    if plugins.get("failed"):
        raise CheckFailed(f"ganzoo plugins --json reports failures: {plugins['failed']}")
    unexpected = sorted(n for n in loaded if not (n.startswith("core.") or n == PLUGIN_NAME))
    if unexpected or PLUGIN_NAME not in loaded:
        raise CheckFailed(f"loaded plugins are {sorted(loaded)}; expected only core.* and {PLUGIN_NAME}")
    plugin = loaded[PLUGIN_NAME]
    if normalize(plugin["distribution"]) != PLUGIN_DIST:
        raise CheckFailed(f"plugin {PLUGIN_NAME} came from distribution {plugin['distribution']}, not {PLUGIN_DIST}")
    entries = sorted(plugin["entries"])
    expected = sorted(f"{kind} {name}" for kind, names in provides.items() for name in names)
    if entries != expected:
        raise CheckFailed(f"plugin {PLUGIN_NAME} registered {entries}; registry.toml provides {expected}")
    note(f"ganzoo plugins --json: loaded {', '.join(sorted(loaded))}; no failures")

    # the Python API
    proc = run([python, "-c", "import ganzoo_core as gz; print(gz.list_generators('dcgan.*'))"],
               what="gz.list_generators('dcgan.*')", env=env, cwd=work, verbose=verbose)
    try:
        generators = ast.literal_eval(proc.stdout.strip())
    except (ValueError, SyntaxError) as err:
        raise CheckFailed(f"gz.list_generators('dcgan.*') printed {proc.stdout.strip()!r}") from err
    if sorted(generators) != sorted(provides["generator"]) or len(generators) != 3:
        raise CheckFailed(f"gz.list_generators('dcgan.*') is {generators}, expected {sorted(provides['generator'])}")
    note(f"gz.list_generators('dcgan.*') = {generators}")

    # an uninstalled first-party name
    proc = ganzoo_run("info", UNINSTALLED_NAME, check=False)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    if proc.returncode != 2 or len(lines) != 1 or UNINSTALLED_DIST not in lines[0]:
        raise CheckFailed(
            f"ganzoo info {UNINSTALLED_NAME} exited {proc.returncode} with {len(lines)} line(s); expected exit 2 and"
            f" one line naming {UNINSTALLED_DIST}",
            proc.stdout + proc.stderr,
        )
    note(f"ganzoo info {UNINSTALLED_NAME} -> exit 2: {lines[0]}")


def check_weights(venv: Path, env: dict[str, str], wheelhouse: Path, wheels: dict[str, Path], work: Path,
                  verbose: bool, note: Callable) -> None:
    """ganzoo-weights installs beside the plugin without pulling in any other plugin; its pretrained names list
    (all of them, whichever plugins are installed), the installed plugin's samples, and another family's name says
    which plugin it needs."""
    if WEIGHTS_DIST not in wheels:
        raise CheckFailed(f"no {WEIGHTS_DIST} wheel was built")
    version = read_wheel(wheels[WEIGHTS_DIST])[0]["Version"]
    report = work / "weights-report.json"
    run([venv_bin(venv, "python"), "-m", "pip", "install", "--find-links", wheelhouse, "--report", report,
         f"{WEIGHTS_DIST}=={version}"], what=f"installing {WEIGHTS_DIST}", env=env, cwd=work,
        timeout=INSTALL_TIMEOUT, verbose=verbose)
    added = sorted(normalize(i["metadata"]["name"]) for i in pip_report(report))
    if added != [WEIGHTS_DIST]:
        raise CheckFailed(f"installing {WEIGHTS_DIST} installed {added}; it must add itself only")
    ganzoo = venv_bin(venv, "ganzoo")
    listed = json_output(run([ganzoo, "list", "--pretrained", "--json"], what="ganzoo list --pretrained --json",
                             env=env, cwd=work, verbose=verbose), "ganzoo list --pretrained --json")
    provides = sorted(load_toml(REPO / "registry.toml")["weights"]["provides"])
    if sorted(r["name"] for r in listed) != provides:
        raise CheckFailed(f"ganzoo list --pretrained lists {sorted(r['name'] for r in listed)}; expected {provides}")
    name, tag = WEIGHTS_SAMPLE
    run([ganzoo, "sample", name, "--pretrained", tag, "--n", "4", "--out", "pretrained.png"],
        what=f"ganzoo sample {name} --pretrained {tag}", env=env, cwd=work, verbose=verbose)
    if not (work / "pretrained.png").is_file():
        raise CheckFailed(f"ganzoo sample {name} --pretrained {tag} wrote no grid")
    other = next(n for n in provides if not n.startswith(f"{PLUGIN_NAME}."))
    proc = run([ganzoo, "sample", other, "--n", "4", "--out", "other.png"], what=f"ganzoo sample {other}", env=env,
               cwd=work, verbose=verbose, check=False)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    family = other.split(".")[0].replace("_", "-")
    if proc.returncode != 2 or len(lines) != 1 or "pip install ganzoo-" not in lines[0] or family not in lines[0]:
        raise CheckFailed(f"ganzoo sample {other} without its plugin exited {proc.returncode}: {lines[-1:]}; expected "
                          "one line naming the plugin to install", proc.stdout + proc.stderr)
    note(f"{WEIGHTS_DIST}=={version} alone: {len(listed)} pretrained names listed; sampled {name}.{tag}; "
         f"{other} -> {lines[0]}")


# -- main --------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheelhouse", type=Path, help="folder for the built wheels (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders (venv, wheels) for debugging")
    parser.add_argument("-v", "--verbose", action="store_true", help="show every command and its output")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="ganzoo-packaging-"))
    wheelhouse = (args.wheelhouse or tmp / "wheelhouse").resolve()
    venv, work = tmp / "venv", tmp / "work"
    torch_spec = os.environ.get("GANZOO_PACKAGING_TORCH", "").strip() or DEFAULT_TORCH
    steps = Steps(7)
    print(f"check_packaging: repo {REPO}", f"python {sys.executable}", f"temp {tmp}", f"wheelhouse {wheelhouse}",
          sep="\n  ", flush=True)
    try:
        wheelhouse.mkdir(parents=True, exist_ok=True)
        work.mkdir()
        projects = find_projects()
        with steps.step(f"build {len(projects)} wheels") as note:
            wheels = build_wheels(projects, wheelhouse, tmp, args.verbose, note)
        with steps.step("check wheel metadata and contents") as note:
            check_wheels(wheels, note)
            run([sys.executable, "-m", "twine", "check", "--strict", *wheels.values()],
                what="twine check (each README renders on a package index)", verbose=args.verbose)
            note(f"twine check --strict: {len(wheels)} wheels pass")
        with steps.step("create a fresh venv") as note:
            run([sys.executable, "-m", "venv", venv], what="python -m venv", cwd=work, verbose=args.verbose)
            env = clean_env(venv)
            note(str(venv))
        with steps.step(f"install torch ({torch_spec})") as note:
            run([venv_bin(venv, "python"), "-m", "pip", "install", *shlex.split(torch_spec)],
                what=f"installing {torch_spec}", env=env, cwd=work, timeout=INSTALL_TIMEOUT, verbose=args.verbose)
            proc = run([venv_bin(venv, "python"), "-c", "import torch; print(torch.__version__)"],
                       what="import torch", env=env, cwd=work, verbose=args.verbose)
            note(f"torch {proc.stdout.strip()}")
        with steps.step(f"install {PLUGIN_DIST} from the wheelhouse") as note:
            install_plugin(venv, env, wheelhouse, wheels, work, args.verbose, note)
        with steps.step("check the installed CLI and API") as note:
            check_installed(venv, env, work, args.verbose, note)
        with steps.step(f"install {WEIGHTS_DIST} beside it") as note:
            check_weights(venv, env, wheelhouse, wheels, work, args.verbose, note)
    except CheckFailed as err:
        if err.detail.strip():
            print(tail(err.detail), file=sys.stderr)
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        print(f"check_packaging: FAIL: {err}", file=sys.stderr, flush=True)
        return 1
    finally:
        if not args.keep:
            start = time.perf_counter()
            shutil.rmtree(tmp, ignore_errors=True)
            steps.times.append(("remove the temporary folders", time.perf_counter() - start))
    print("timings: " + ", ".join(f"{title} {secs:.1f} s" for title, secs in steps.times))
    if args.keep:
        print(f"kept {tmp}")
    print(f"check_packaging: OK ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
