"""The registry: names, verbs, overrides, errors."""

from __future__ import annotations

import attrs
import pytest
import torch
from torch import nn

import ganzoo_core as gz
from ganzoo_core._plugins import PluginHost, get_host, use_host
from ganzoo_core._registry import Entry, Registry, register


@attrs.frozen(kw_only=True)
class ToyCfg:
    width: int = 4
    depth: int = 1
    betas: tuple[float, float] = attrs.field(default=(0.5, 0.9), converter=tuple)


class Toy(nn.Module):
    """A toy generator."""

    def __init__(self, cfg: ToyCfg = ToyCfg()) -> None:
        super().__init__()
        self.cfg = cfg
        self.lin = nn.Linear(cfg.width, cfg.width)


def _entry(name: str, factory=Toy, plugin: str = "p1", cfg=ToyCfg(), default: bool = False) -> Entry:
    return Entry(kind="generator", name=name, factory=factory, cfg=cfg, plugin=plugin, module="m", default=default)


def test_list_verbs_with_wildcards_and_filters() -> None:
    assert gz.list_generators("dcgan.*") == ["dcgan.28", "dcgan.32", "dcgan.64"]
    assert gz.list_generators(["dcgan.2*", "dcgan.6?"]) == ["dcgan.28", "dcgan.64"]
    assert gz.list_generators("dcgan.*", exclude="*.3*") == ["dcgan.28", "dcgan.64"]
    assert gz.list_generators(plugin="core.losses") == []
    assert gz.list_losses() == ["gan.bce", "gan.hinge", "gan.lsgan", "gan.wgan"]
    assert gz.list_blocks("dcgan.*", plugin="dcgan") == ["dcgan.down", "dcgan.up"]
    assert gz.list_names("objective", "dcgan.64") == ["dcgan.64"]


def test_is_get_and_default_variant() -> None:
    assert gz.is_generator("dcgan.64") and gz.is_generator("dcgan")  # a bare family resolves
    assert not gz.is_generator("dcgan.65") and not gz.is_discriminator("gan.bce")
    assert gz.get_generator("dcgan").__name__ == "DcganGenerator"
    assert gz.get_entry("generator", "dcgan").name == "dcgan.64"  # the declared default
    assert gz.get_generator_cfg("dcgan.28").image_size == 28
    assert gz.get_loss_cfg("gan.lsgan") is None
    assert gz.get_entry("loss", "gan").name == "gan.bce"


def test_create_applies_overrides_and_ignores_none() -> None:
    g = gz.create_generator("dcgan.32", ngf=8, nz=None)
    assert g.cfg.ngf == 8 and g.cfg.nz == 100 and g.cfg.image_size == 32
    assert g.ganzoo_spec == ("generator", "dcgan.32")
    assert gz.get_generator_cfg("dcgan.32").ngf == 64  # the registered variant is untouched


def test_unknown_override_names_valid_fields() -> None:
    with pytest.raises(gz.ConfigError) as err:
        gz.create_generator("dcgan.64", ngff=32)
    message = str(err.value)
    assert "ngff" in message and "ngf" in message and "nz" in message and "dcgan.64" in message


def test_bad_override_value_is_a_config_error() -> None:
    with pytest.raises(gz.ConfigError, match="image_size must be 4"):
        gz.create_generator("dcgan.64", image_size=48)


def test_options_on_optionless_entry() -> None:
    with pytest.raises(gz.ConfigError, match="takes no options"):
        gz.create_loss("gan.lsgan", margin=1.0)


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(gz.UnknownNameError) as err:
        gz.create_generator("dcgan.46")
    assert err.value.kind == "generator" and "dcgan.64" in err.value.suggestions
    assert isinstance(err.value, KeyError)
    assert "did you mean 'dcgan.64'" in str(err.value)


def test_unknown_name_of_first_party_family_says_which_distribution() -> None:
    with use_host(_core_only_host()):  # a family ganzoo-stackgan provides, even for a name it does not have
        with pytest.raises(gz.UnknownNameError, match="ganzoo-stackgan"):
            gz.create_generator("stackgan.stage1")


def test_unknown_name_of_released_plugin_not_installed_says_pip_install() -> None:
    with use_host(_core_only_host()):
        with pytest.raises(gz.UnknownNameError, match="pip install ganzoo-dcgan"):
            gz.create_generator("dcgan.64")


def _core_only_host() -> PluginHost:
    host = PluginHost()
    host.load_defaults()
    return host


def test_name_of_another_kind_is_pointed_out() -> None:
    with pytest.raises(gz.UnknownNameError, match="is a registered loss"):
        gz.create_generator("gan.bce")


def test_duplicate_name_names_both_plugins() -> None:
    reg = Registry()
    reg.add(_entry("toy.a", plugin="first"))

    class Other(Toy):
        pass

    with pytest.raises(gz.DuplicateNameError) as err:
        reg.add(_entry("toy.a", factory=Other, plugin="second"))
    assert "first" in str(err.value) and "second" in str(err.value)
    assert err.value.plugins[0].startswith("plugin 'first'")


def test_same_object_twice_is_a_no_op_and_a_plugin_claims_a_loose_one() -> None:
    reg = Registry()
    assert reg.add(_entry("toy.a", plugin="first"))
    version = reg.version
    assert not reg.add(_entry("toy.a", plugin="second"))  # the same factory and config again: nothing changes
    assert reg.get("generator", "toy.a").plugin == "first" and reg.version == version
    assert reg.add(_entry("toy.b", plugin="ganzoo_x"), loose=True)  # a plugin module imported by hand, before its load
    assert not reg.add(_entry("toy.b", plugin="script"), loose=True)
    assert reg.add(_entry("toy.b", plugin="x"))  # the plugin's load claims it
    assert reg.get("generator", "toy.b").plugin == "x"
    assert not reg.add(_entry("toy.b", plugin="y"))  # claimed once: another plugin cannot take it over
    assert reg.get("generator", "toy.b").plugin == "x" and reg.names("generator") == ["toy.a", "toy.b"]


def test_one_meaning_per_name_even_within_one_plugin() -> None:
    reg = Registry()
    reg.add(_entry("toy.a", plugin="p1"))

    class Other(Toy):
        pass

    with pytest.raises(gz.DuplicateNameError) as err:  # a second class under the name, from the same plugin
        reg.add(_entry("toy.a", factory=Other, plugin="p1"))
    assert "m.Toy" in str(err.value) and "m.test_one_meaning_per_name_even_within_one_plugin.<locals>.Other" in str(
        err.value
    )
    with pytest.raises(gz.DuplicateNameError, match="'toy.a' is registered twice"):  # the same class, another config
        reg.add(_entry("toy.a", cfg=ToyCfg(width=5), plugin="p1"))
    with pytest.raises(gz.DuplicateNameError):  # a loose registration does not replace a different one either
        reg.add(_entry("toy.a", factory=Other, plugin="script"), loose=True)
    assert reg.get("generator", "toy.a").factory is Toy and reg.get("generator", "toy.a").cfg == ToyCfg()


def test_transaction_rolls_back() -> None:
    reg = Registry()
    with pytest.raises(RuntimeError):
        with reg.transaction():
            reg.add(_entry("toy.a"))
            raise RuntimeError("plugin failed half way")
    assert reg.names("generator") == []


@pytest.mark.parametrize("bad", ["Toy.a", "toy", "toy.a.b", "toy a.b", ".a", "toy."])
def test_bad_names_are_refused(bad: str) -> None:
    with pytest.raises(gz.GanzooError, match="family.variant"):
        register("generator", bad, cfg=ToyCfg())


def test_unknown_kind() -> None:
    with pytest.raises(gz.UnknownNameError, match="did you mean 'generator'"):
        register("generatr", "toy.a")


def test_variants_register_one_name_each_with_default() -> None:
    with use_host(PluginHost()) as host:
        marked = register("generator", "toy", variants={"s": ToyCfg(width=2), "l": ToyCfg(width=8)}, default="l")(
            type("Marked", (Toy,), {"__module__": __name__})
        )
    reg = host.registry
    assert reg.names("generator") == ["toy.l", "toy.s"]
    assert reg.get("generator", "toy").name == "toy.l" and reg.get("generator", "toy").factory is marked
    assert reg.get("generator", "toy.s").cfg.width == 2
    assert reg.get("generator", "toy.s").plugin == __name__.split(".")[0]  # made outside a load: by its module


def test_loose_marks_outside_plugins_register_in_active_host() -> None:
    """A class decorated in a script or notebook is usable at once."""

    @gz.register_generator("scratch.one", cfg=ToyCfg(width=3))
    class Scratch(Toy):
        pass

    try:
        g = gz.create_generator("scratch.one", depth=2)
        assert isinstance(g, Scratch) and g.cfg == ToyCfg(width=3, depth=2)
        assert gz.get_entry("generator", "scratch.one").plugin == __name__.split(".")[0]
    finally:  # keep the shared host clean for other tests
        get_host().registry.remove_plugin(__name__.split(".")[0])


def test_create_with_weights_and_device(tmp_path) -> None:
    g = gz.create_generator("dcgan.28", ngf=8)
    path = gz.save(g, tmp_path / "g.safetensors")
    again = gz.create_generator("dcgan.28", ngf=8, weights=path, device="cpu")
    for a, b in zip(g.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(TypeError, match="not a network"):
        gz.create_loss("gan.bce", weights=path)


def test_plugin_imported_by_hand_before_loading_keeps_its_plugin_name() -> None:
    import subprocess
    import sys

    script = (
        "import ganzoo_dcgan, ganzoo_core as gz\n"
        "e = gz.get_entry('generator', 'dcgan.64')\n"
        "print(e.plugin, [p.name for p in gz.list_plugins()][-1])\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "GANZOO_LOAD_PLUGINS": "dcgan"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["dcgan", "dcgan"]


def test_a_host_built_after_the_plugins_were_imported_still_gets_their_names(monkeypatch) -> None:
    """Plugin modules run their decorators once per process; a host built later (here the process-wide one, built
    again) still files their names under their plugins, from what each module registered."""
    import ganzoo_dcgan

    from ganzoo_core._plugins import set_host

    monkeypatch.setenv("GANZOO_LOAD_PLUGINS", "dcgan")
    previous = set_host(None)
    try:
        rebuilt = get_host()
        assert rebuilt is not previous and get_host() is rebuilt
        entry = rebuilt.registry.get("generator", "dcgan.64")
        assert entry.factory is ganzoo_dcgan.DcganGenerator and entry.plugin == "dcgan"
        assert rebuilt.plugins["dcgan"].entries == previous.plugins["dcgan"].entries
        assert gz.list_losses() == ["gan.bce", "gan.hinge", "gan.lsgan", "gan.wgan"]  # the built-ins too
    finally:
        set_host(previous)


def test_a_default_that_is_not_a_variant_is_refused() -> None:
    with pytest.raises(gz.GanzooError, match=r"default='6' for 'tdef' is not one of its variants \['64', '32'\]"):
        gz.register_block("tdef", variants={"64": None, "32": None}, default="6")


def _every_entry() -> list[Entry]:
    from conftest import HOST

    return HOST.registry.entries()


@pytest.mark.parametrize("entry", _every_entry(), ids=lambda e: f"{e.kind}:{e.name}")
def test_summaries_are_whole_plain_sentences(entry: Entry) -> None:
    """``ganzoo list`` shows each entry's summary: the whole first sentence of its docstring, without RST markup."""
    import inspect
    import re

    text = entry.summary
    assert text and "`" not in text and not re.search(r":\w+:", text), text
    assert text.count("(") == text.count(")") and text.count("[") == text.count("]"), text
    doc = " ".join(inspect.cleandoc(entry.factory.__doc__ or "").split("\n\n", 1)[0].split())
    plain = re.sub(r":[\w:]+:`([^`]*)`", r"\1", doc).replace("`", "")
    if plain.startswith(text):  # taken from the docstring (a summary= given at registration is its own sentence)
        rest = plain[len(text):]
        assert rest == "" or rest.startswith("."), f"{entry.name}: the summary stops mid-sentence: {text!r} / {rest[:40]!r}"
