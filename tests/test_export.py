"""``ganzoo export``: every family's generator as an ONNX graph (run by ONNX Runtime) and a ``torch.export`` program
(run through ``torch.export.load``) gives what the eager network gives, within 1e-4, at batch sizes other than the
traced one; objectives export the networks a user generates with; the command refuses what it should in one line.

The parity tests take the smallest generator of each family the installed plugins register (by parameter count), so
a new family is covered without new test code. ONNX tests skip without the ``onnx`` extra."""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import HOST
from torch import Tensor, nn

import ganzoo_core as gz
from ganzoo_core import export as ex
from ganzoo_core._plugins import set_host
from ganzoo_core.cli import main

BATCHES = (1, 5)  # neither is the traced batch size (2): the batch dimension really is dynamic
TOL = 1e-4


@contextlib.contextmanager
def _test_host() -> Iterator[None]:
    """The tests' registry, also at collection time and in module-scoped fixtures (before the autouse fixture)."""
    previous = set_host(HOST)
    try:
        yield
    finally:
        set_host(previous)


def _on_meta(kind: str, name: str) -> nn.Module:
    """``name`` built on the meta device (no memory, no initialisation): enough to count or look at its networks."""
    with _test_host(), torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gz.create(kind, name)


def _parameters_on_meta(kind: str, name: str) -> int:
    return sum(p.numel() for p in _on_meta(kind, name).parameters())


def _smallest_per_family(kind: str) -> list[str]:
    best: dict[str, tuple[int, str]] = {}
    for name in HOST.registry.names(kind):
        family = name.split(".")[0]
        size = _parameters_on_meta(kind, name)
        if family not in best or size < best[family][0]:
            best[family] = (size, name)
    return sorted(name for _, name in best.values())


GENERATORS = _smallest_per_family("generator")


def _need_onnx() -> None:
    for name in ex.ONNX_PACKAGES:
        pytest.importorskip(name, reason=f"ONNX export needs {name}: pip install 'ganzoo-core[onnx]'")


def _network(name: str) -> nn.Module:
    torch.manual_seed(0)
    return gz.create_generator(name).eval()


def _eager(g: nn.Module, names: list[str], inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """The eager generator as a user calls it: its own inputs positionally, the graph's noise inputs by keyword."""
    own = len([x for x in g.example_inputs(1) if x is not None])
    with torch.no_grad():
        out = g(*inputs[:own], **dict(zip(names[own:], inputs[own:])))
    return (out,) if isinstance(out, Tensor) else tuple(out)


def _max_diff(got: Any, ref: tuple[Tensor, ...]) -> float:
    got = tuple(torch.as_tensor(g).detach() for g in got)
    assert [tuple(g.shape) for g in got] == [tuple(r.shape) for r in ref]
    return max(float((g - r).abs().max()) for g, r in zip(got, ref))


@pytest.mark.parametrize("name", GENERATORS)
def test_onnx_graph_in_onnxruntime_equals_pytorch(name: str, tmp_path: Path) -> None:
    _need_onnx()
    import onnxruntime as ort

    g = _network(name)
    result = ex.export_graph(g, tmp_path / "g.onnx", format="onnx")
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert names == [i.name for i in result.inputs] and session.get_outputs()[0].name == "image"
    assert all(i.shape[0] == "batch" for i in session.get_inputs())  # dynamic batch, named
    for batch in BATCHES:
        inputs = ex.graph_inputs(g, batch, seed=batch)
        got = session.run(None, {n: x.numpy() for n, x in zip(names, inputs)})
        diff = _max_diff(got, _eager(g, names, inputs))
        assert diff <= TOL, (name, batch, diff)
    assert 0 <= result.max_abs_diff <= TOL


@pytest.mark.parametrize("name", GENERATORS)
def test_pt2_program_through_torch_export_load_equals_pytorch(name: str, tmp_path: Path) -> None:
    g = _network(name)
    result = ex.export_graph(g, tmp_path / "g.pt2", format="pt2")
    program = torch.export.load(str(result.path))
    names = list(program.graph_signature.user_inputs)
    assert names == [i.name for i in result.inputs]
    module = program.module()
    for batch in BATCHES:
        inputs = ex.graph_inputs(g, batch, seed=batch)
        diff = _max_diff(module(*inputs), _eager(g, names, inputs))
        assert diff <= TOL, (name, batch, diff)


def test_noise_a_generator_draws_becomes_an_input_of_its_graph(tmp_path: Path) -> None:
    """A forward that draws noise when not given it (conditioning augmentation's ε): the graph takes that noise, so
    the same inputs give the same images, and other noise gives other images."""
    noisy = [n for n in GENERATORS if len(ex.graph_spec(_network(n), "generator").noise)]
    if not noisy:
        pytest.skip("no installed generator draws noise inside its forward")
    g = _network(noisy[0])
    result = ex.export_graph(g, tmp_path / "g.pt2", format="pt2")
    noise = [i for i in result.inputs if i.kind != "input"]
    assert noise and all(i.shape[0] == "batch" for i in noise)
    module = torch.export.load(str(result.path)).module()
    inputs = ex.graph_inputs(g, 3)
    first, again = module(*inputs)[0], module(*inputs)[0]
    other = module(*inputs[:-1], torch.randn_like(inputs[-1]))[0]
    assert torch.equal(first, again) and not torch.allclose(first, other)


def test_a_stage_ii_objective_exports_both_stages_and_the_chain_reproduces_its_samples(tmp_path: Path) -> None:
    """What a user needs to generate from a two-stage objective: the frozen earlier stage and G. Run one after the
    other in ONNX Runtime with the objective's own noise, they give the objective's samples."""
    _need_onnx()
    two_stage = [n for n in HOST.registry.names("objective") if n.startswith("stackgan.s2")]
    if not two_stage:
        pytest.skip("no two-stage objective installed")
    name = min(two_stage, key=lambda n: _parameters_on_meta("objective", n))
    torch.manual_seed(0)
    objective = gz.create_objective(name).eval()
    assert list(ex.select_networks(objective)) == ["stage1", "G"]  # in the order they run
    results = {r.network: r for r in ex.export_networks(objective, tmp_path / "s.onnx", format="onnx")}
    assert {k: r.path.name for k, r in results.items()} == {"stage1": "s.stage1.onnx", "G": "s.G.onnx"}
    s1, s2 = objective.stage1, objective.networks["G"]
    n = 3
    text = torch.randn(n, s2.cfg.text_dim)
    gen = gz.seeded_rng(7)  # the order the objective draws its noise in: z, Stage-I's ε, Stage-II's ε
    z, eps1, eps2 = (torch.randn(n, d, generator=gen) for d in (s1.cfg.nz, s1.cfg.cond_dim, s2.cfg.cond_dim))
    want, want_low = objective.sample_stages(n, {"text_emb": text}, seed=7)
    low = ex.run_onnx(ex.ort_session(results["stage1"].path), [z, text, eps1])[0]
    image = ex.run_onnx(ex.ort_session(results["G"].path), [low, text, eps2])[0]
    assert float((low - want_low).abs().max()) <= TOL and float((image - want).abs().max()) <= TOL


def test_a_graph_that_does_not_reproduce_the_network_is_not_written(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    g = _network(GENERATORS[0])
    real = ex._max_diff
    monkeypatch.setattr(ex, "_max_diff", lambda got, ref: (real(got, ref)[0] + 1.0, False))
    with pytest.raises(ex.ExportError, match="differs from the eager network by up to .*nothing was written"):
        ex.export_pt2(g, tmp_path / "g.pt2")
    assert not list(tmp_path.iterdir())  # neither the file nor a temporary one


def test_export_leaves_the_callers_module_and_random_state_alone(tmp_path: Path) -> None:
    g = _network(GENERATORS[0]).train()
    before = {k: v.clone() for k, v in g.state_dict().items()}
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    assert ex.export_pt2(g, tmp_path / "g.pt2") == tmp_path / "g.pt2"
    assert torch.equal(torch.rand(3), expected) and g.training
    assert all(torch.equal(before[k], v) for k, v in g.state_dict().items())


def test_a_dynamic_batch_is_not_traced_from_one_sample(tmp_path: Path) -> None:
    with pytest.raises(gz.ConfigError, match="batch_size 1 cannot trace a dynamic batch"):
        ex.export_pt2(_network(GENERATORS[0]), tmp_path / "g.pt2", batch_size=1)
    result = ex.export_graph(_network(GENERATORS[0]), tmp_path / "g.pt2", format="pt2", batch_size=1,
                             dynamic_batch=False)
    assert all(i.shape[0] == 1 for i in result.inputs) and result.checked_batch == 1


# -- the command -------------------------------------------------------------------------------------------------------


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


def _two_generator_objective() -> str | None:
    """The smallest objective with two generators (a two-domain translator), if one is installed."""
    found = []
    for name in HOST.registry.names("objective"):
        objective = _on_meta("objective", name)
        if not ex.exportable_networks(objective):  # no generator or discriminator (a text-encoder objective)
            continue
        if len(ex.select_networks(objective)) == 2 and "stage1" not in ex.exportable_networks(objective):
            found.append((sum(p.numel() for p in objective.parameters()), name))
    return min(found)[1] if found else None


@pytest.fixture(scope="module")
def translator_ckpt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module]:
    name = _two_generator_objective()
    if name is None:
        pytest.skip("no objective with two generators installed")
    with _test_host():
        torch.manual_seed(0)
        objective = gz.create_objective(name).eval()
        path = gz.save(objective, tmp_path_factory.mktemp("ckpt") / "model.safetensors")
    return path, objective


def test_export_command_writes_each_generator_of_an_objective_checked_in_onnxruntime(
        translator_ckpt: tuple[Path, nn.Module], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _need_onnx()
    ckpt, objective = translator_ckpt
    keys = list(ex.select_networks(objective))
    rc = main(["export", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "t.onnx"), "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert [g["network"] for g in report["graphs"]] == keys
    for graph in report["graphs"]:
        path = Path(graph["path"])
        assert path == tmp_path / f"t.{graph['network']}.onnx" and graph["max_abs_diff"] <= TOL
        net = objective.networks[graph["network"]]
        inputs = ex.graph_inputs(net, 3, seed=11)
        got = ex.run_onnx(ex.ort_session(path), inputs)
        assert _max_diff(got, _eager(net, [i["name"] for i in graph["inputs"]], inputs)) <= TOL
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"t.{k}.onnx" for k in keys)


def test_export_command_refuses_existing_files_and_bad_choices_in_one_line(
        translator_ckpt: tuple[Path, nn.Module], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt, objective = translator_ckpt
    keys = list(ex.select_networks(objective))
    out = tmp_path / "g.pt2"
    assert main(["export", str(ckpt), "--format", "pt2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert all(f"wrote {k} " in printed for k in keys) and "max |torch.export.load - PyTorch|" in printed
    written = {p: p.read_bytes() for p in tmp_path.iterdir()}
    assert main(["export", str(ckpt), "--format", "pt2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "already exists; pass --overwrite" in err and len(err.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == written  # nothing replaced
    assert main(["export", str(ckpt), "--format", "pt2", "--out", str(out), "--overwrite"]) == 0
    capsys.readouterr()

    assert _exit_code(["export", str(ckpt), "--format", "tflite", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "argument --format: invalid choice: 'tflite'" in err and "Traceback" not in err
    assert main(["export", str(ckpt), "--format", "pt2", "--networks", "G_Z", "--out", str(tmp_path / "x.pt2")]) == 2
    err = capsys.readouterr().err.strip()
    assert "has no network 'G_Z'; it has " in err and all(k in err for k in keys) and len(err.splitlines()) == 1
    assert _exit_code(["export", str(ckpt), "--format", "pt2", "--networks", ",", "--out", str(tmp_path / "x")]) == 2
    assert "argument --networks: expected network names" in capsys.readouterr().err
    assert main(["export", str(ckpt), "--format", "pt2", "--ema", "--out", str(tmp_path / "x.pt2")]) == 2
    assert "holds no EMA weights" in capsys.readouterr().err
    assert main(["export", str(ckpt), "--format", "hub", "--networks", "D", "--out", str(tmp_path / "x")]) == 2
    assert "--networks, --opset and --static-batch apply to --format onnx and pt2" in capsys.readouterr().err
    assert not (tmp_path / "x.pt2").exists() and not (tmp_path / "x").exists()


def test_export_command_exports_a_discriminator_on_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--networks D``: the discriminator's graph gives its logits (its named outputs for a second head)."""
    name = min(HOST.registry.names("discriminator"), key=lambda n: _parameters_on_meta("discriminator", n))
    torch.manual_seed(0)
    d = gz.create_discriminator(name).eval()
    ckpt = gz.save(d, tmp_path / "d.safetensors")
    assert main(["export", str(ckpt), "--format", "pt2", "--networks", "D", "--out", str(tmp_path / "d.pt2"),
                 "--json"]) == 0
    (graph,) = json.loads(capsys.readouterr().out)["graphs"]
    assert graph["network"] == "D" and graph["name"] == name and graph["outputs"][0]["name"] == "logits"
    module = torch.export.load(graph["path"]).module()
    inputs = ex.graph_inputs(d, 4, seed=3)
    with torch.no_grad():
        ref = d(*inputs)  # the graph's inputs are D's forward arguments, in order
    ref = (ref,) if isinstance(ref, Tensor) else tuple(ref)
    assert _max_diff(module(*inputs), ref) <= TOL


def test_export_command_writes_a_model_folder(translator_ckpt: tuple[Path, nn.Module], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    ckpt, objective = translator_ckpt
    assert main(["export", str(ckpt), "--format", "hub", "--out", str(tmp_path / "folder"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"format": "hub", "path": str(tmp_path / "folder")}
    loaded = gz.load(tmp_path / "folder" / "model.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), objective.state_dict().values()))


def test_without_the_onnx_extra_the_command_says_what_to_install(translator_ckpt: tuple[Path, nn.Module],
                                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else find_spec(name, *a))
    ckpt, _ = translator_ckpt
    assert main(["export", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "g.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("ganzoo: error: ONNX export needs onnxruntime, which is not installed: "
                   "pip install 'ganzoo-core[onnx]'")
    assert not list(tmp_path.iterdir())


class _Noisy(nn.Module):
    """A network that draws noise inside forward: by a sampling function, or by functional dropout left on."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how, self.lin = how, nn.Linear(4, 4)

    def forward(self, x: Tensor) -> Tensor:
        h = self.lin(x)
        return h + torch.randn_like(h) if self.how == "randn" else nn.functional.dropout(h, 0.5, training=True)

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor]:
        return (torch.randn(batch_size, 4),)


@pytest.mark.parametrize(("how", "says"), [
    ("randn", "draws 1 random tensor(s) inside forward that it does not take as arguments"),
    ("dropout", "gives other outputs for the same inputs in eval mode"),
])
def test_a_network_that_draws_noise_it_does_not_take_is_refused(how: str, says: str, tmp_path: Path) -> None:
    with pytest.raises(ex.ExportError, match=says.replace("(", r"\(").replace(")", r"\)")):
        ex.export_pt2(_Noisy(how), tmp_path / "g.pt2")
    assert not list(tmp_path.iterdir())
