"""Plugin discovery through real entry points: isolation of failures, API versions, GANZOO_LOAD_PLUGINS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ganzoo_core as gz
from ganzoo_core._plugins import PluginHost, check_api_version, parse_api_version

GOOD = """
    import attrs
    import torch
    from torch import nn
    import ganzoo_core as gz

    GANZOO_API_VERSION = "1.0"

    @attrs.frozen(kw_only=True)
    class Cfg:
        width: int = 4

    @gz.register_block("{family}.lin", cfg=Cfg())
    class Lin(nn.Module):
        '''A linear block.'''
        def __init__(self, cfg=Cfg()):
            super().__init__()
            self.cfg = cfg
            self.lin = nn.Linear(cfg.width, cfg.width)
        def forward(self, x):
            return self.lin(x)
        def example_inputs(self, batch_size=2):
            return (torch.randn(batch_size, self.cfg.width),)
        def output_shapes(self, batch_size=2):
            return (batch_size, self.cfg.width)
"""


def _host() -> PluginHost:
    host = PluginHost()
    host.load_defaults()
    host.load_entry_points(only={"good", "broken", "old", "unversioned", "zdup", "hookfail"})
    return host


def test_broken_plugins_are_reported_and_skipped(make_dist) -> None:
    make_dist("ganzoo-test-good", {"ganzoo_test_good/__init__.py": GOOD.format(family="tgood")}, entry="good")
    make_dist("ganzoo-test-broken", {"ganzoo_test_broken/__init__.py": "import not_a_module_anywhere\n"},
              entry="broken", version="2.3.4")
    make_dist("ganzoo-test-old", {"ganzoo_test_old/__init__.py": GOOD.format(family="told").replace('"1.0"', '"0.9"')},
              entry="old")
    unversioned = GOOD.format(family="tunv").replace('GANZOO_API_VERSION = "1.0"', "")
    make_dist("ganzoo-test-unversioned", {"ganzoo_test_unversioned/__init__.py": unversioned}, entry="unversioned")
    make_dist("ganzoo-test-dup", {"ganzoo_test_dup/__init__.py": GOOD.format(family="tgood")}, entry="zdup")
    host = _host()
    failures = {f.name: f for f in host.failures}
    core = {"core.losses", "core.datasets", "core.data", "core.metrics", "core.ops", "core.text"}
    assert set(host.plugins) == {*core, "good"}
    assert host.registry.names("block") == ["tgood.lin"]

    broken = failures["broken"]
    assert (broken.distribution, broken.version) == ("ganzoo-test-broken", "2.3.4")
    assert "ModuleNotFoundError" in broken.error and "not_a_module_anywhere" in broken.error
    assert "plugin API 0.9" in failures["old"].error and "implements 1.1" in failures["old"].error
    assert "declares no GANZOO_API_VERSION" in failures["unversioned"].error
    assert "registered twice" in failures["zdup"].error and "'good'" in failures["zdup"].error
    assert host.plugins["good"].distribution == "ganzoo-test-good"
    assert host.plugins["good"].entries == ("block tgood.lin",)


def test_a_failing_register_hook_rolls_back_the_whole_plugin(make_dist) -> None:
    source = GOOD.format(family="thook") + """
    @gz.hookimpl
    def ganzoo_register(register):
        raise RuntimeError("cannot compute my variants")
    """
    make_dist("ganzoo-test-hookfail", {"ganzoo_test_hookfail/__init__.py": source}, entry="hookfail")
    host = _host()
    assert "cannot compute my variants" in next(f.error for f in host.failures if f.name == "hookfail")
    assert host.registry.names("block") == []  # the marked block was rolled back with it
    assert all(p is not None for p in host.pm.get_plugins())
    assert "hookfail" not in {host.pm.get_name(p) for p in host.pm.get_plugins()}


def test_load_plugins_env_restricts(make_dist, monkeypatch) -> None:
    make_dist("ganzoo-test-good", {"ganzoo_test_good/__init__.py": GOOD.format(family="tgood")}, entry="good")
    make_dist("ganzoo-test-other", {"ganzoo_test_other/__init__.py": GOOD.format(family="tother")}, entry="other")
    from ganzoo_core._plugins import _plugin_filter

    monkeypatch.setenv("GANZOO_LOAD_PLUGINS", "ganzoo-test-other, missing")
    host = PluginHost()
    host.load_entry_points(_plugin_filter())
    assert set(host.plugins) == {"other"}  # a distribution name works as well as an entry point name
    assert [f.name for f in host.failures] == ["missing"]
    monkeypatch.setenv("GANZOO_LOAD_PLUGINS", "")
    host = PluginHost()
    host.load_entry_points(_plugin_filter())
    assert host.plugins == {} and host.failures == []


@pytest.mark.parametrize(
    ("declared", "ok"),
    [("1.0", True), ((1, 0), True), ("1.1", True), ("1.2", False), ("2.0", False), ("0.9", False)],
)
def test_api_version_compatibility(declared, ok) -> None:
    module = type(sys)("m")
    module.GANZOO_API_VERSION = declared
    if ok:
        check_api_version(module)
    else:
        with pytest.raises(gz.GanzooError, match="plugin API"):
            check_api_version(module)


def test_api_version_must_be_well_formed() -> None:
    with pytest.raises(ValueError, match="like '1.0'"):
        parse_api_version("one")


def _run_cli(args: list[str], site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    env.pop("GANZOO_LOAD_PLUGINS", None)
    return subprocess.run([sys.executable, "-m", "ganzoo_core.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_cli_keeps_working_with_a_broken_plugin_installed(make_dist) -> None:
    site = make_dist("ganzoo-test-broken",
                     {"ganzoo_test_broken/__init__.py": "raise RuntimeError('this plugin is broken')\n"},
                     entry="broken", version="0.4.2")
    listed = _run_cli(["list", "--kind", "generator"], site)
    assert listed.returncode == 0, listed.stderr
    assert "dcgan.64" in listed.stdout
    assert "Traceback" not in listed.stderr
    plugins = _run_cli(["plugins"], site)
    assert plugins.returncode == 0
    line = next(ln for ln in plugins.stdout.splitlines() if ln.startswith("FAILED"))
    assert "broken" in line and "ganzoo-test-broken 0.4.2" in line and "this plugin is broken" in line
    data = json.loads(_run_cli(["plugins", "--json"], site).stdout)
    expected = {"name": "broken", "distribution": "ganzoo-test-broken", "version": "0.4.2"}
    assert expected.items() <= data["failed"][0].items()


def test_list_plugins_reports_versions_hooks_and_entries() -> None:
    infos = {p.name: p for p in gz.list_plugins()}
    assert infos["core.losses"].distribution == "ganzoo-core"
    assert infos["dcgan"].hooks == ("ganzoo_bench_baselines", "ganzoo_convert_checkpoint")
    assert "generator dcgan.64" in infos["dcgan"].entries
    assert gz.list_plugin_failures() == []


def test_a_plugin_that_exits_or_raises_base_exceptions_is_isolated(make_dist) -> None:
    make_dist("ganzoo-test-exits", {"ganzoo_test_exits/__init__.py": "import sys\nsys.exit(3)\n"}, entry="exits")
    make_dist("ganzoo-test-good", {"ganzoo_test_good/__init__.py": GOOD.format(family="tgood")}, entry="good")
    host = PluginHost()
    host.load_entry_points(only={"exits", "good"})
    assert set(host.plugins) == {"good"}
    assert "SystemExit: 3" in next(f.error for f in host.failures if f.name == "exits")


def test_a_plugin_taking_a_first_party_name_is_the_one_rejected(make_dist, capsys) -> None:
    """A third-party plugin that loads first (alphabetically) and registers 'dcgan.28' must not knock out
    ganzoo-dcgan: the thief is rejected, whole, and 'ganzoo plugins' names both."""
    thief = GOOD.format(family="athief") + """
    @gz.register_generator("dcgan.28")
    class Fake(nn.Module):
        '''Not DCGAN.'''
    """
    make_dist("ganzoo-test-thief", {"ganzoo_test_thief/__init__.py": thief}, entry="athief")
    host = PluginHost()
    host.load_defaults()
    host.load_entry_points(only={"athief", "dcgan"})
    assert "dcgan" in host.plugins and "athief" not in host.plugins
    assert host.registry.get("generator", "dcgan.28").plugin == "dcgan"
    assert host.registry.names("block", "athief.*") == []  # rolled back as a whole
    error = next(f.error for f in host.failures if f.name == "athief")
    assert "'dcgan.28'" in error and "ganzoo-dcgan" in error
    from ganzoo_core._plugins import use_host
    from ganzoo_core.cli import main

    with use_host(host):
        assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "loaded  dcgan" in out and "FAILED  athief" in out and "ganzoo-dcgan" in out.split("FAILED  athief")[1]


def test_the_install_hint_knows_a_plugin_left_out_by_the_filter(monkeypatch) -> None:
    from ganzoo_core._plugins import _plugin_filter, use_host

    monkeypatch.setenv("GANZOO_LOAD_PLUGINS", "")
    host = PluginHost()
    host.load_defaults()
    host.load_entry_points(_plugin_filter())
    with use_host(host), pytest.raises(gz.UnknownNameError) as err:
        gz.create_generator("dcgan.28")
    assert "ganzoo-dcgan is installed but not loaded: GANZOO_LOAD_PLUGINS" in str(err.value)
    assert "pip install" not in str(err.value)


HAND_INIT = """
    from ganzoo_test_{tag}.model import Lin

    GANZOO_API_VERSION = "1.0"
"""


def _hand_plugin(make_dist, tag: str) -> None:
    """A plugin ``test-<tag>`` whose package registers block ``t<tag>.lin`` from its submodule ``model``."""
    make_dist(f"ganzoo-test-{tag}", {f"ganzoo_test_{tag}/__init__.py": HAND_INIT.format(tag=tag),
                                     f"ganzoo_test_{tag}/model.py": GOOD.format(family=f"t{tag}")}, entry=tag)


def test_a_plugin_imported_by_hand_is_filed_under_its_plugin_in_every_host(make_dist) -> None:
    """A package imported by hand (a script, a test) runs its decorators once; every host that loads the plugin
    afterwards still gets its names, attributed to the plugin, once."""
    import importlib

    from ganzoo_core._plugins import make_host, use_host

    _hand_plugin(make_dist, "hand")
    with use_host(PluginHost()) as bare:
        model = importlib.import_module("ganzoo_test_hand.model")  # by hand: the plugin is loaded nowhere yet
    assert bare.registry.get("block", "thand.lin").plugin == "ganzoo_test_hand"  # by module, until its plugin loads
    first, second = make_host(("ganzoo_test_hand",)), make_host(("ganzoo_test_hand",))
    for host in (first, second):
        entry = host.registry.get("block", "thand.lin")
        assert entry.factory is model.Lin and entry.plugin == "test-hand" and entry.module == "ganzoo_test_hand.model"
        assert host.plugins["test-hand"].entries == ("block thand.lin",)
        assert not host.failures
    assert bare.load_module("ganzoo_test_hand", name="test-hand")  # loaded where it was filed by module: claimed
    assert bare.registry.get("block", "thand.lin").plugin == "test-hand"
    assert bare.plugins["test-hand"].entries == ("block thand.lin",) and bare.registry.names("block") == ["thand.lin"]
    with use_host(first):
        assert gz.list_blocks(plugin="test-hand") == ["thand.lin"]


def test_registrations_made_before_any_host_wait_for_the_first_one(make_dist) -> None:
    import importlib

    from ganzoo_core import _plugins
    from ganzoo_core._plugins import get_host, make_host, set_host

    _hand_plugin(make_dist, "early")
    previous = set_host(None)
    try:
        model = importlib.import_module("ganzoo_test_early")  # no host exists: its names wait

        @gz.register_block("tscript.lin", cfg=model.model.Cfg())
        class ScriptLin(model.Lin):
            """A block a script defines."""

        assert [e.name for e in _plugins._PENDING][-2:] == ["tearly.lin", "tscript.lin"]
        loaded = make_host(("ganzoo_test_early",))  # a host built now gets the plugin's names from its load
        assert loaded.registry.get("block", "tearly.lin").plugin == "test-early"
        assert not loaded.registry.has("block", "tscript.lin")  # a script's names go to the active host only
        set_host(loaded)
        assert get_host() is loaded and not _plugins._PENDING
        assert loaded.registry.get("block", "tearly.lin").plugin == "test-early"  # the queued copy changed nothing
        assert loaded.registry.get("block", "tscript.lin").factory is ScriptLin
        assert loaded.registry.get("block", "tscript.lin").plugin == __name__.split(".")[0]
        assert loaded.plugins["test-early"].entries == ("block tearly.lin",)
    finally:
        _plugins._PENDING.clear()
        set_host(previous)


def test_a_plugin_giving_one_name_two_meanings_fails_naming_both(make_dist) -> None:
    twice = GOOD.format(family="ttwice") + """
    @gz.register_block("ttwice.lin", cfg=Cfg(width=8))
    class Wider(Lin):
        '''The same name again, another class.'''
    """
    make_dist("ganzoo-test-twice", {"ganzoo_test_twice/__init__.py": twice}, entry="twice")
    host = PluginHost()
    host.load_entry_points(only={"twice"})
    error = next(f.error for f in host.failures if f.name == "twice")
    assert "'ttwice.lin' is registered twice" in error
    assert "ganzoo_test_twice.Lin" in error and "ganzoo_test_twice.Wider" in error
    assert host.registry.names("block") == [] and "twice" not in host.plugins


def test_a_plugin_can_register_a_class_defined_elsewhere(make_dist) -> None:
    """Registrations belong to the module that makes them, not to the module that defines the factory."""
    from ganzoo_core._plugins import make_host

    source = GOOD.format(family="tforeign") + """
    gz.register_block("tforeign.identity")(nn.Identity)
    """
    make_dist("ganzoo-test-foreign", {"ganzoo_test_foreign/__init__.py": source}, entry="foreign")
    for host in (make_host(("ganzoo_test_foreign",)), make_host(("ganzoo_test_foreign",))):
        entry = host.registry.get("block", "tforeign.identity")
        assert entry.factory is torch.nn.Identity and entry.plugin == "test-foreign"
        assert entry.module == "ganzoo_test_foreign"
        assert host.plugins["test-foreign"].entries == ("block tforeign.lin", "block tforeign.identity")


def test_registrations_of_other_modules_and_inside_the_hook_reach_the_first_host(make_dist) -> None:
    """While plugin B loads, a submodule of plugin A that B imports (not imported by A itself) and a decorator run
    inside B's ganzoo_register hook both register: the first host files them, as every later host does."""
    from ganzoo_core._plugins import make_host

    make_dist("ganzoo-test-pa", {
        "ganzoo_test_pa/__init__.py": """
        import ganzoo_core as gz
        GANZOO_API_VERSION = "1.0"
        @gz.register_loss("tpa.main")
        def main(): return None
        """,
        "ganzoo_test_pa/extra.py": """
        import ganzoo_core as gz
        @gz.register_loss("tpa.extra")
        def extra(): return None
        """}, entry="pa")
    make_dist("ganzoo-test-pb", {"ganzoo_test_pb/__init__.py": """
        import ganzoo_core as gz
        import ganzoo_test_pa.extra
        GANZOO_API_VERSION = "1.0"
        @gz.hookimpl
        def ganzoo_register(register):
            @gz.register_loss("tpb.inhook")
            def inhook(): return None
        """}, entry="pb")
    for host in (make_host(("ganzoo_test_pa", "ganzoo_test_pb")), make_host(("ganzoo_test_pa", "ganzoo_test_pb"))):
        assert host.registry.names("loss", "tp*") == ["tpa.extra", "tpa.main", "tpb.inhook"]
        assert host.registry.get("loss", "tpa.extra").plugin == "test-pa"
        assert host.registry.get("loss", "tpb.inhook").plugin == "test-pb"
