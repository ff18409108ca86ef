"""Retired names: not listed, not built, one line saying where they went; their checkpoints load through the
replacement, from their own saved config."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
import torch
from torch import nn

import ganzoo_core as gz
from ganzoo_core._entries import Entry, Registry, Retired
from ganzoo_core._plugins import PluginHost, make_host, use_host

NOTE = "it is the experiment config experiments/tiny-tuned/config.toml; or create_objective('tiny.base', width=5)"


@attrs.frozen(kw_only=True)
class TinyCfg:
    width: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    depth: int = attrs.field(default=1, validator=attrs.validators.ge(1))


class Tiny(nn.Module):
    """A tiny objective."""

    def __init__(self, cfg: TinyCfg) -> None:
        super().__init__()
        self.cfg = cfg
        self.lin = nn.Linear(cfg.width, cfg.width * cfg.depth)


def _retired_host() -> PluginHost:
    """``tiny.base`` registered and ``tiny.tuned`` retired in favour of it, as a script would (outside any plugin)."""
    host = PluginHost()
    with use_host(host):
        gz.register_objective("tiny.base", cfg=TinyCfg())(Tiny)
        gz.register_retired("objective", "tiny.tuned", replacement="tiny.base", note=NOTE)
    return host


def test_a_retired_name_is_not_listed_and_says_where_it_went() -> None:
    with use_host(_retired_host()):
        assert gz.list_objectives() == ["tiny.base"] and gz.list_names("objective", "tiny.*") == ["tiny.base"]
        assert not gz.is_objective("tiny.tuned") and not gz.is_name("objective", "tiny.tuned")
        assert gz.is_objective("tiny")  # the family still resolves, to what is registered
        calls = [
            lambda: gz.create_objective("tiny.tuned"), lambda: gz.get_objective("tiny.tuned"),
            lambda: gz.get_objective_cfg("tiny.tuned"), lambda: gz.get_entry("objective", "tiny.tuned"),
            lambda: gz.create("objective", "tiny.tuned", width=5),
        ]
        for call in calls:
            with pytest.raises(gz.RetiredNameError) as err:
                call()
            assert str(err.value) == f"objective 'tiny.tuned' was retired: {NOTE}"
            assert "\n" not in str(err.value)
            assert isinstance(err.value, gz.GanzooError) and isinstance(err.value, gz.UnknownNameError)
            assert err.value.suggestions == ("tiny.base",)
        with pytest.raises(gz.UnknownNameError, match="'tiny.tuned' is a retired objective: it is the experiment"):
            gz.create_generator("tiny.tuned")  # another kind: the unknown-name error points at the retirement


def _registered_then_retired(tmp_path: Path) -> tuple[nn.Module, Path, PluginHost]:
    """A checkpoint of ``tiny.tuned`` saved while it was registered, and a registry where it has been retired."""
    before = PluginHost()
    with use_host(before):
        gz.register_objective("tiny.tuned", cfg=TinyCfg(width=5))(Tiny)
        module = gz.create_objective("tiny.tuned", depth=2)
        path = gz.save(module, tmp_path / "tuned.safetensors")
    assert gz.read_info(path).name == "tiny.tuned"  # the name is in the file
    return module, path, _retired_host()


def test_a_checkpoint_saved_under_a_retired_name_loads_through_its_replacement(tmp_path: Path) -> None:
    module, path, after = _registered_then_retired(tmp_path)
    with use_host(after):
        info = gz.read_info(path)
        assert (info.name, info.saved_name, info.config) == ("tiny.base", "tiny.tuned", {"width": 5, "depth": 2})
        loaded = gz.load(path)
        assert type(loaded) is Tiny and loaded.cfg == TinyCfg(width=5, depth=2)  # the saved config, not the default
        assert loaded.ganzoo_spec == ("objective", "tiny.base")
        for key, value in module.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value)
        again = gz.save(loaded, tmp_path / "again.safetensors")  # saved again: under the name that lives on
        assert gz.read_info(again).name == "tiny.base" and gz.read_info(again).saved_name == ""
        target = gz.create_objective("tiny.base", width=5, depth=2, weights=path)
        assert torch.equal(target.lin.weight, module.lin.weight)
        fresh = gz.load_weights(gz.create_objective("tiny.base", width=5, depth=2), path)
        assert torch.equal(fresh.lin.bias, module.lin.bias)


def test_retirements_chain_and_a_missing_replacement_is_named(tmp_path: Path) -> None:
    _, path, _ = _registered_then_retired(tmp_path)
    with use_host(PluginHost()):
        gz.register_retired("objective", "tiny.tuned", replacement="tiny.mid", note="renamed 'tiny.mid'")
        gz.register_retired("objective", "tiny.mid", replacement="tiny.final", note="renamed 'tiny.final'")
        assert gz.read_info(path).name == "tiny.final"
        with pytest.raises(gz.UnknownNameError, match="unknown objective 'tiny.final'"):
            gz.load(path)
        gz.register_objective("tiny.final", cfg=TinyCfg())(Tiny)
        assert gz.load(path).ganzoo_spec == ("objective", "tiny.final")
    with use_host(PluginHost()):
        gz.register_retired("objective", "tiny.tuned", replacement="tiny.mid", note="renamed 'tiny.mid'")
        gz.register_retired("objective", "tiny.mid", replacement="tiny.tuned", note="renamed 'tiny.tuned'")
        with pytest.raises(gz.GanzooError, match="'tiny.tuned' -> 'tiny.mid' -> 'tiny.tuned' retire into each other"):
            gz.load(path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "tiny.x", "replacement": "tiny.x", "note": "n"}, "in favour of itself"),
        ({"name": "tiny.x", "replacement": "tiny.y", "note": "two\nlines"}, "one non-empty line"),
        ({"name": "tiny.x", "replacement": "tiny.y", "note": "  "}, "one non-empty line"),
        ({"name": "Tiny", "replacement": "tiny.y", "note": "n"}, "family.variant"),
        ({"name": "tiny.x", "replacement": "y", "note": "n"}, "family.variant"),
    ],
)
def test_register_retired_checks_its_arguments(kwargs: dict[str, str], message: str) -> None:
    with use_host(PluginHost()) as host, pytest.raises(gz.GanzooError, match=message):
        gz.register_retired("objective", **kwargs)
    assert host.registry.retired() == []


def test_a_retired_name_has_one_meaning() -> None:
    reg = Registry()
    retired = Retired(kind="objective", name="tiny.tuned", replacement="tiny.base", note=NOTE, module="m", plugin="p")
    assert reg.add(retired) and not reg.add(attrs.evolve(retired, plugin="q"))  # the same retirement again: no-op
    with pytest.raises(gz.DuplicateNameError, match="'tiny.tuned' is registered twice"):
        reg.add(attrs.evolve(retired, replacement="tiny.other"))
    with pytest.raises(gz.DuplicateNameError) as err:  # a retired name cannot be registered again
        reg.add(Entry(kind="objective", name="tiny.tuned", factory=Tiny, cfg=TinyCfg(), module="m", plugin="p"))
    assert "retired in favour of 'tiny.base'" in str(err.value) and "m.Tiny" in str(err.value)
    reg.add(Entry(kind="objective", name="tiny.base", factory=Tiny, cfg=TinyCfg(), module="m", plugin="p"))
    with pytest.raises(gz.DuplicateNameError):  # nor a registered name retired
        reg.add(attrs.evolve(retired, name="tiny.base", replacement="tiny.tuned"))
    reg.remove_plugin("p")
    assert reg.retired() == [] and reg.entries() == []


PLUGIN = """
    import attrs
    from torch import nn
    import ganzoo_core as gz

    GANZOO_API_VERSION = "1.0"

    @attrs.frozen(kw_only=True)
    class Cfg:
        width: int = attrs.field(default=4, validator=attrs.validators.ge(1))

    @gz.register_block("tret.new", cfg=Cfg())
    class New(nn.Module):
        '''The block that replaces tret.old.'''
        def __init__(self, cfg=Cfg()):
            super().__init__()
            self.cfg = cfg
            self.lin = nn.Linear(cfg.width, cfg.width)

    gz.register_retired("block", "tret.old", replacement="tret.new", note="renamed 'tret.new'")
"""


def test_a_plugin_retires_names_through_the_same_path_as_its_entries(make_dist) -> None:
    make_dist("ganzoo-test-ret", {"ganzoo_test_ret/__init__.py": PLUGIN}, entry="ret")
    failing = PLUGIN.replace("tret", "tretfail") + """
    @gz.hookimpl
    def ganzoo_register(register):
        raise RuntimeError("cannot finish loading")
    """
    make_dist("ganzoo-test-retfail", {"ganzoo_test_retfail/__init__.py": failing}, entry="retfail")
    first, second = make_host(("ganzoo_test_ret", "ganzoo_test_retfail")), make_host(("ganzoo_test_ret",))
    for host in (first, second):  # the module ran once; each host gets its retirement, attributed to the plugin
        (retired,) = host.registry.retired()
        assert (retired.name, retired.plugin, retired.module) == ("tret.old", "test-ret", "ganzoo_test_ret")
        assert host.plugins["test-ret"].entries == ("block tret.new",)  # retired names are not entries
        with use_host(host), pytest.raises(gz.RetiredNameError, match="block 'tret.old' was retired: renamed"):
            gz.create_block("tret.old")
    assert "cannot finish loading" in next(f.error for f in first.failures if f.name == "test-retfail")
    assert first.registry.names("block", "tretfail.*") == []  # rolled back with the failing plugin ...
    assert first.registry.retired("block") == [first.registry.retired("block")[0]]  # ... its retirement too
    with use_host(first), pytest.raises(gz.UnknownNameError) as err:
        gz.create_block("tretfail.old")
    assert not isinstance(err.value, gz.RetiredNameError)
