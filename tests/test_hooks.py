"""One test per hook in ganzoo_core/hookspecs.py (test_every_hook_has_a_test keeps it that way)."""

from __future__ import annotations

import inspect
from pathlib import Path

import attrs
import numpy as np
import pytest
import torch
from torch import nn

import ganzoo_core as gz
from ganzoo_core import hookspecs
from ganzoo_core._plugins import PluginHost, use_host
from ganzoo_core.cli import main

HOOKS = sorted(name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("ganzoo_"))


def test_every_hook_has_a_test() -> None:
    missing = [h for h in HOOKS if f"test_hook_{h}" not in globals()]
    assert not missing, f"add a test_hook_<name> for {missing}"


def _host_with(module: object, name: str) -> PluginHost:
    host = PluginHost()
    host.load_defaults()
    sys_module = type(inspect)(name)
    sys_module.__dict__.update(vars(module))
    sys_module.GANZOO_API_VERSION = "1.1"
    import sys

    sys.modules[name] = sys_module
    try:
        assert host.load_module(name), host.failures
    finally:
        del sys.modules[name]
    return host


@attrs.frozen(kw_only=True)
class WidthCfg:
    width: int = 2


class Computed(nn.Module):
    def __init__(self, cfg: WidthCfg) -> None:
        super().__init__()
        self.cfg = cfg
        self.lin = nn.Linear(cfg.width, cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor]:
        return (torch.randn(batch_size, self.cfg.width),)

    def output_shapes(self, batch_size: int = 2) -> tuple[int, int]:
        return (batch_size, self.cfg.width)


def test_hook_ganzoo_register() -> None:
    class Plugin:
        @staticmethod
        @gz.hookimpl
        def ganzoo_register(register):
            for w in (2, 4):  # names computed at load time
                register("block", f"computed.w{w}", Computed, cfg=WidthCfg(width=w), default=w == 4)

    host = _host_with(Plugin, "ganzoo_test_register")
    with use_host(host):
        assert gz.list_blocks("computed.*") == ["computed.w2", "computed.w4"]
        assert gz.create_block("computed").cfg.width == 4
        assert gz.get_entry("block", "computed.w2").plugin == "ganzoo_test_register"
    assert host.plugins["ganzoo_test_register"].entries == ("block computed.w2", "block computed.w4")


def test_hook_ganzoo_convert_checkpoint(tmp_path: Path) -> None:
    calls = []

    class Plugin:
        @staticmethod
        @gz.hookimpl
        def ganzoo_convert_checkpoint(kind, name, path):
            calls.append((kind, name, path.name))
            if not name.startswith("computed."):
                return None
            if path.suffix == ".npz":  # a format ganzoo cannot read at all
                raw = {k: torch.from_numpy(v) for k, v in np.load(path).items()}
            else:
                raw = torch.load(path, weights_only=True)
            return {"lin.weight": raw["W"].t(), "lin.bias": raw["b"]}  # a foreign layout: transposed, renamed

    class Register:
        @staticmethod
        @gz.hookimpl
        def ganzoo_register(register):
            register("block", "computed.w3", Computed, cfg=WidthCfg(width=3))

    merged = type("P", (), {**vars(Plugin), **vars(Register)})
    host = _host_with(merged, "ganzoo_test_convert")
    weight, bias = torch.randn(3, 3), torch.randn(3)
    torch.save({"W": weight, "b": bias}, tmp_path / "foreign.pth")
    with use_host(host):
        block = gz.create_block("computed.w3", weights=tmp_path / "foreign.pth")
    assert torch.equal(block.lin.weight, weight.t()) and torch.equal(block.lin.bias, bias)
    assert calls == [("block", "computed.w3", "foreign.pth")]
    np.savez(tmp_path / "foreign.npz", W=weight.numpy(), b=bias.numpy())
    with use_host(host):
        block = gz.create_block("computed.w3", weights=tmp_path / "foreign.npz")
        assert torch.equal(block.lin.weight, weight.t())
        (tmp_path / "junk.npz").write_bytes(b"junk")
        calls.clear()
        with pytest.raises(gz.CheckpointError, match="junk.npz"):  # the hook gave up too: the reader's error
            gz.create_block("computed.w3", weights=tmp_path / "junk.npz")


def test_hook_ganzoo_add_commands(capsys: pytest.CaptureFixture[str]) -> None:
    class Plugin:
        @staticmethod
        @gz.hookimpl
        def ganzoo_add_commands(subparsers, context):
            parser = subparsers.add_parser("hello", help="say hello")
            parser.add_argument("who")
            parser.set_defaults(func=lambda args: print(f"hello {args.who} from {context['prog']}") or 0)

    host = _host_with(Plugin, "ganzoo_test_commands")
    with use_host(host):
        assert main(["hello", "world"]) == 0
    assert capsys.readouterr().out.strip() == "hello world from ganzoo"


def test_hook_ganzoo_pretrained_folders(tmp_path: Path) -> None:
    class Plugin:
        @staticmethod
        @gz.hookimpl
        def ganzoo_register(register):
            register("block", "computed.w3", Computed, cfg=WidthCfg(width=3))

        @staticmethod
        @gz.hookimpl
        def ganzoo_pretrained_folders():
            return [tmp_path / "w3-ones"]

    host = _host_with(Plugin, "ganzoo_test_pretrained")
    with use_host(host):
        block = gz.create_block("computed.w3")
        nn.init.ones_(block.lin.weight)
        gz.write_hub_folder(block, tmp_path / "w3-ones", tag="ones", summary="All ones.")
        assert gz.list_pretrained() == ["computed.w3.ones"]
        loaded = gz.create("block", "computed.w3", pretrained=True)
        assert torch.equal(loaded.lin.weight, torch.ones(3, 3)) and torch.equal(loaded.lin.bias, block.lin.bias)
        assert gz.get_pretrained("computed.w3.ones").summary == "All ones."


def test_hook_ganzoo_bench_baselines() -> None:
    from ganzoo_core import bench

    built: list[int] = []

    def train_step(batch_size: int, device: str, seed: int):
        built.append(batch_size)
        net = nn.Linear(2, 2)
        return lambda: net(torch.ones(batch_size, 2))

    class Plugin:
        @staticmethod
        @gz.hookimpl
        def ganzoo_bench_baselines():
            return [gz.Baseline(name="computed.official", objective="dcgan.28", source="someone/computed@abc train.py",
                                batch_size=3, train_step=train_step)]

    host = _host_with(Plugin, "ganzoo_test_baselines")
    with use_host(host):
        (found,) = bench.list_baselines()
        assert found.name == "computed.official" and bench.find_baseline("computed") == found
        assert not built  # listing builds nothing
        assert found.train_step(found.batch_size, "cpu", 0)().shape == (3, 2)
    assert host.plugins["ganzoo_test_baselines"].hooks == ("ganzoo_bench_baselines",)

    class Broken:
        @staticmethod
        @gz.hookimpl
        def ganzoo_bench_baselines():
            return [{"name": "computed.official"}]  # not a gz.Baseline

    with use_host(_host_with(Broken, "ganzoo_test_bad_baselines")), pytest.raises(
            gz.GanzooError, match=r"plugin 'ganzoo_test_bad_baselines': ganzoo_bench_baselines returned a dict"):
        bench.list_baselines()


def test_register_hook_checks_names_and_fills_summaries() -> None:
    class Bad:
        @staticmethod
        @gz.hookimpl
        def ganzoo_register(register):
            register("block", "nodot", Computed, cfg=WidthCfg())

    host = PluginHost()
    import sys

    module = type(sys)("ganzoo_test_badname")
    module.__dict__.update(vars(Bad))
    module.GANZOO_API_VERSION = "1.0"
    sys.modules["ganzoo_test_badname"] = module
    try:
        with pytest.warns(RuntimeWarning, match="family.variant"):
            assert not host.load_module("ganzoo_test_badname")
    finally:
        del sys.modules["ganzoo_test_badname"]

    class Good:
        @staticmethod
        @gz.hookimpl
        def ganzoo_register(register):
            register("block", "computed.doc", Computed, cfg=WidthCfg())

    Computed.__doc__ = "A computed block."
    host = _host_with(Good, "ganzoo_test_summary")
    assert host.registry.get("block", "computed.doc").summary == "A computed block"


def test_a_failing_add_commands_hook_is_reported_and_the_cli_still_works(capsys) -> None:
    class Clash:
        @staticmethod
        @gz.hookimpl
        def ganzoo_add_commands(subparsers, context):
            subparsers.add_parser("mine")
            subparsers.add_parser("list")  # taken by the core: argparse refuses

    host = _host_with(Clash, "ganzoo_test_clash")
    with use_host(host):
        assert main(["plugins"]) == 0
        out = capsys.readouterr().out
        assert "FAILED  ganzoo_test_clash" in out and "ganzoo_add_commands" in out and "list" in out
        with pytest.raises(SystemExit):
            main(["mine"])  # rolled back with the failure
        assert "invalid choice: 'mine'" in capsys.readouterr().err
        with pytest.raises(SystemExit):
            main(["--help"])
        assert "mine" not in capsys.readouterr().out


def test_unknown_name_mentions_failed_plugins() -> None:
    host = PluginHost()
    host.load_module("ganzoo_test_not_there")
    with pytest.raises(gz.UnknownNameError, match=r"1 plugin\(s\) failed to load \(ganzoo_test_not_there\)"):
        host.registry.get("generator", "mine.small")
