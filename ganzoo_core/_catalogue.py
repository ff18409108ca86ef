"""The catalogue of first-party plugins (``registry.toml``): who provides which names, for install hints."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import tomllib

from ganzoo_core.errors import GanzooError

_PACKAGED = Path(__file__).with_name("registry.toml")  # inside a built wheel
_SOURCE = Path(__file__).resolve().parent.parent / "registry.toml"  # in a source checkout / editable install


def catalogue_path() -> Path | None:
    return next((p for p in (_PACKAGED, _SOURCE) if p.is_file()), None)


@functools.cache
def load_catalogue() -> dict[str, Any]:
    """The parsed ``registry.toml``, or an empty catalogue when it is not shipped."""
    path = catalogue_path()
    if path is None:
        return {"plugins": {}}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise GanzooError(f"the plugin catalogue {path} is not valid TOML: {err}") from err


def released_packages() -> tuple[str, ...]:
    """Packages of the released first-party plugins and of the weights distribution that are importable here (for
    tests and benchmarks)."""
    import importlib.util

    catalogue = load_catalogue()
    plugins = catalogue.get("plugins", {}).values()
    packages = [p["package"] for p in plugins if p.get("status") == "released"]
    packages += [catalogue["weights"]["package"]] if "weights" in catalogue else []
    return tuple(p for p in packages if importlib.util.find_spec(p))


def provider_of(name: str) -> tuple[str, dict[str, Any]] | None:
    """The catalogue plugin whose families include ``name``'s family, as (plugin name, its table)."""
    family = name.split(".", 1)[0]
    for plugin, table in load_catalogue().get("plugins", {}).items():
        if family in table.get("families", ()):
            return plugin, table
    return None


def first_party_owner(kind: str, name: str) -> tuple[str, str] | None:
    """(distribution, package) of the first-party plugin (or the core) that the catalogue says provides ``name``."""
    catalogue = load_catalogue()
    core = catalogue.get("core", {})
    if name in core.get("provides", {}).get(kind, ()):
        return core.get("distribution", "ganzoo-core"), "ganzoo_core"
    for plugin, table in catalogue.get("plugins", {}).items():
        if name in table.get("provides", {}).get(kind, ()):
            return table.get("distribution", f"ganzoo-{plugin}"), table.get("package", "")
    return None


def install_hint(name: str, loaded_packages: set[str], failed: dict[str, str], filtered: bool = False) -> str:
    """Advice for an unknown ``name`` that a first-party plugin provides, or "" when there is none to give.

    ``filtered``: GANZOO_LOAD_PLUGINS is set, so an installed plugin may have been left out on purpose."""
    import importlib.util

    found = provider_of(name)
    if found is None:
        return ""
    plugin, table = found
    dist, package = table.get("distribution", f"ganzoo-{plugin}"), table.get("package", "")
    if package in failed:
        return f"{dist} is installed but failed to load: {failed[package]}; see 'ganzoo plugins'"
    if package in loaded_packages:
        return ""
    if filtered and package and importlib.util.find_spec(package) is not None:
        return (f"{dist} is installed but not loaded: GANZOO_LOAD_PLUGINS leaves it out; add {plugin!r} to it or "
                "unset it")
    if table.get("status") == "planned":
        return f"it belongs to {dist}, which is planned and not released yet"
    return f"it is provided by {dist}: pip install {dist}"
