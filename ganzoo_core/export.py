"""Networks as portable graphs: ``ganzoo export SOURCE --format onnx|pt2|hub --out PATH``.

A graph is one network (a generator, or a discriminator on request) in eval mode and fp32, traced with its own
``example_inputs`` and every op on its plain-PyTorch reference implementation, with a dynamic batch dimension
(``batch``). ONNX files run in ONNX Runtime or any ONNX runtime; ``.pt2`` files are ``torch.export`` programs
(``torch.export.load(path).module()(*inputs)``, no ganzoo needed). Before a file is published it is run once at
another batch size and compared with the eager network: a graph that differs by more than 1e-4 (absolute, plus
1e-4 relative) is refused and nothing is written.

Which networks: a generator or discriminator checkpoint exports itself. An objective exports what a user needs to
generate: its generators, i.e. the networks of ``objective.networks`` built as generators (``G``; ``G_A`` and
``G_B`` for two-domain translators) and generator submodules it keeps outside ``networks`` (a frozen earlier stage,
e.g. ``stage1``, whose output the next generator takes). ``networks=`` (``--networks``) names others, discriminators
included (``D``), or ``all``.

What each graph takes: the network's ``forward`` arguments, named as its ``forward`` names them, in that order
(positionally for ``.pt2``), each with the batch first:

- a latent generator: ``z`` (batch, nz) in N(0, 1);
- a text-to-image generator: ``z`` and ``cond``, the caption embedding (batch, text_dim) of the objective's text
  encoder;
- an image-to-image generator: the input image (batch, C, H, W) in [-1, 1]; a many-domain one also ``cond``, the
  target domain labels (batch, c_dim) as 0/1 floats;
- a generator whose ``forward`` draws noise when not given it (conditioning augmentation's ε) takes that noise as a
  further input under its ``forward`` name (``eps``, (batch, cond_dim) in N(0, 1)), so the graph is a function of its
  inputs and ``ganzoo`` can check it;
- a later stage takes the earlier stage's image as its ``x`` (run the earlier stage's graph first).

Outputs: ``image`` (batch, C, H, W) in [-1, 1] for a generator; a generator that returns more (the conditioning
augmentation's μ and log σ²) adds ``output_1``, ``output_2``, ... in its return order. A discriminator gives
``logits``, or its named outputs (``logits``, ``aux``). Networks with dropout or batch statistics at sampling time are
exported as in eval mode: dropout off, running statistics.

ONNX needs ``pip install 'ganzoo-core[onnx]'`` (onnx, onnxscript, onnxruntime); ``.pt2`` needs torch only.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import inspect
import json
import logging
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from ganzoo_core._atomic import atomic_path, check_destination
from ganzoo_core._entries import SPEC_ATTR
from ganzoo_core.errors import ConfigError, GanzooError, InputError
from ganzoo_core.ops._dispatch import use_impls

FORMATS = ("onnx", "pt2", "hub")
SUFFIXES = {"onnx": ".onnx", "pt2": ".pt2"}
ONNX_HINT = "pip install 'ganzoo-core[onnx]'"
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")
ATOL = RTOL = 1e-4  # what an exported graph may differ from the eager network by (|got - ref| <= ATOL + RTOL·|ref|)
SEED = 0  # example inputs and the check's inputs are drawn from this seed, so exports are reproducible


class ExportError(GanzooError):
    """A network that cannot be exported as a graph, or whose graph does not reproduce the network."""


# -- what is exported --------------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class GraphInput:
    name: str
    shape: tuple[int | str, ...]  # "batch" for the dynamic batch dimension
    kind: str  # "normal" (N(0, 1) noise, the example drawn so), "uniform" ([0, 1)), or "input" (anything else)


@attrs.frozen(kw_only=True)
class ExportResult:
    """One exported graph: which network, where, its inputs and outputs and how far it is from the eager network."""

    network: str  # the key in the objective (``G``, ``G_A``, ``stage1``) or the module's role for a bare network
    name: str  # its registry name ("" when it was not built by the registry)
    format: str
    path: Path
    inputs: tuple[GraphInput, ...]
    outputs: tuple[tuple[str, tuple[int | str, ...]], ...]
    max_abs_diff: float  # max |exported - eager| over all outputs at ``checked_batch``
    checked_batch: int

    def to_json(self) -> dict[str, Any]:
        return {"network": self.network, "name": self.name, "format": self.format, "path": str(self.path),
                "inputs": [{"name": i.name, "shape": list(i.shape), "kind": i.kind} for i in self.inputs],
                "outputs": [{"name": n, "shape": list(s)} for n, s in self.outputs],
                "max_abs_diff": self.max_abs_diff, "checked_batch": self.checked_batch}


def role_of(module: nn.Module) -> str | None:
    """``"generator"`` or ``"discriminator"`` for a network the registry built as one, else None."""
    spec = getattr(module, SPEC_ATTR, None)
    return spec[0] if spec and spec[0] in ("generator", "discriminator") else None


def _registry_name(module: nn.Module) -> str:
    spec = getattr(module, SPEC_ATTR, None)
    return spec[1] if spec else ""


def exportable_networks(module: nn.Module) -> dict[str, tuple[nn.Module, str]]:
    """Every network of ``module`` a graph can be made of, by key: ``(network, role)``.

    A generator or discriminator is itself (key ``G`` or ``D``); an objective gives the generator submodules it holds
    outside ``networks`` (a frozen earlier stage), under their attribute names, then the networks of its ``networks``
    that the registry built as generators or discriminators."""
    role = role_of(module)
    if role is not None:
        return {"G" if role == "generator" else "D": (module, role)}
    networks = getattr(module, "networks", None)
    found: dict[str, tuple[nn.Module, str]] = {}
    for key, child in module.named_children():  # an earlier stage first: its output feeds the generators after it
        if key != "networks" and role_of(child) == "generator":
            found[key] = (child, "generator")
    if isinstance(networks, nn.ModuleDict):
        for key, net in networks.items():
            net_role = role_of(net)
            if net_role is not None and key not in found:
                found[key] = (net, net_role)
    return found


def select_networks(module: nn.Module, names: Sequence[str] | None = None) -> dict[str, tuple[nn.Module, str]]:
    """The networks to export: ``names`` (keys of ``exportable_networks``, or ``"all"``), by default every
    generator. Raises ``ExportError`` (one line naming what there is) for an unknown key or nothing to export."""
    found = exportable_networks(module)
    what = _describe(module)
    if not found:
        raise ExportError(f"{what} holds no generator or discriminator to export (only networks the registry built "
                          "as generators or discriminators become graphs)")
    listing = ", ".join(f"{k} ({role})" for k, (_, role) in found.items())
    if not names:
        chosen = {k: v for k, v in found.items() if v[1] == "generator"}
        if not chosen:
            raise ExportError(f"{what} has no generator; choose networks with --networks: {listing}")
        return chosen
    if "all" in names:
        return found
    unknown = [n for n in names if n not in found]
    if unknown:
        raise ExportError(f"{what} has no network {unknown[0]!r}; it has {listing} (or 'all')")
    return {n: found[n] for n in dict.fromkeys(names)}


def _describe(module: nn.Module) -> str:
    spec = getattr(module, SPEC_ATTR, None)
    return f"{spec[0]} {spec[1]!r}" if spec else type(module).__name__


# -- tracing -----------------------------------------------------------------------------------------------------------

_NORMAL = {torch.randn, torch.randn_like, torch.normal, Tensor.normal_}
_UNIFORM = {torch.rand, torch.rand_like, Tensor.uniform_}
_OTHER_RANDOM = {torch.randint, torch.randint_like, torch.bernoulli, Tensor.bernoulli_, torch.multinomial,
                 Tensor.random_, Tensor.exponential_, torch.randperm}


class _NoiseProbe(TorchFunctionMode):
    """Records the random tensors a forward draws: (shape, "normal" | "uniform" | "other") in order."""

    def __init__(self) -> None:
        super().__init__()
        self.draws: list[tuple[tuple[int, ...], str]] = []

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        kind = "normal" if func in _NORMAL else "uniform" if func in _UNIFORM else "other" if func in _OTHER_RANDOM \
            else None
        if kind is not None and isinstance(out, Tensor):
            self.draws.append((tuple(out.shape), kind))
        return out


@attrs.frozen(kw_only=True)
class GraphSpec:
    """How one network becomes a graph: which ``forward`` slots are inputs (None: passed as None), which keyword
    arguments carry noise, and the names and shapes of inputs and outputs."""

    slots: tuple[str | None, ...]  # forward's leading positional arguments: an input name, or None (passed as None)
    noise: tuple[GraphInput, ...]  # keyword arguments given as inputs (noise the forward would otherwise draw)
    inputs: tuple[GraphInput, ...]  # every graph input, in order: the slots' then the noise
    outputs: tuple[str, ...]
    batch_size: int  # of the example the spec was made from

    def example(self, network: nn.Module, batch_size: int) -> tuple[Tensor, ...]:
        """Inputs at ``batch_size``: the network's ``example_inputs``, then noise of the recorded shapes."""
        given = [x for x in network.example_inputs(batch_size) if x is not None]
        noise = []
        for item in self.noise:
            shape = tuple(batch_size if d == "batch" else int(d) for d in item.shape)
            noise.append(torch.rand(shape) if item.kind == "uniform" else torch.randn(shape))
        return tuple(x.float() if x.is_floating_point() else x for x in given) + tuple(noise)


class _Graph(nn.Module):
    """The network as a function of its graph inputs only, returning a flat tuple of tensors."""

    def __init__(self, network: nn.Module, spec: GraphSpec) -> None:
        super().__init__()
        self.network = network
        self.slots = spec.slots
        self.noise = tuple(item.name for item in spec.noise)

    def forward(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        given = iter(tensors)
        args = [None if slot is None else next(given) for slot in self.slots]
        kwargs = {name: next(given) for name in self.noise}
        return _flat_outputs(self.network(*args, **kwargs))


def _flat_outputs(out: Any) -> tuple[Tensor, ...]:
    if isinstance(out, Tensor):
        return (out,)
    if isinstance(out, (tuple, list)) and all(isinstance(o, Tensor) for o in out):
        return tuple(out)
    raise ExportError(f"the network returned {type(out).__name__}; a graph needs a tensor or a tuple of tensors")


def _named_graph(network: nn.Module, spec: GraphSpec) -> _Graph:
    """A ``_Graph`` whose ``forward`` signature names its inputs (``torch.export`` names a program's inputs by it)."""
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [inspect.Parameter(i.name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for i in spec.inputs]

    def forward(self: _Graph, *tensors: Tensor) -> tuple[Tensor, ...]:
        return _Graph.forward(self, *tensors)

    forward.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    cls = type(f"{type(network).__name__}Graph", (_Graph,), {"forward": forward})
    return cls(network, spec)


def _output_names(out: Any, role: str, taken: set[str]) -> tuple[str, ...]:
    first = "image" if role == "generator" else "logits"
    if isinstance(out, Tensor):
        names: list[str] = [first]
    elif hasattr(out, "_fields"):  # a NamedTuple (DiscOutput): its own names
        names = list(out._fields)
    else:
        names = [first] + [f"output_{i}" for i in range(1, len(out))]
    return tuple(f"{n}_out" if n in taken else n for n in names)


def _forward_names(network: nn.Module, count: int) -> tuple[list[str], list[inspect.Parameter]]:
    """The names of ``forward``'s first ``count`` positional parameters, and the optional ones after them."""
    params = list(inspect.signature(network.forward).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.VAR_POSITIONAL for p in params) or len(positional) < count:
        return [f"input_{i}" for i in range(count)], []
    rest = [p for p in params[count:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is None]
    return [p.name for p in positional[:count]], rest


@contextlib.contextmanager
def _graph_mode(seed: int = SEED) -> Iterator[None]:
    """Reference ops, no autograd, and a forked RNG seeded with ``seed`` (the caller's random state is kept)."""
    with torch.random.fork_rng(devices=[]), use_impls("ref"), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' advice about dynamic axis names, deprecations, ...
        torch.manual_seed(seed)
        yield


def graph_spec(network: nn.Module, role: str, batch_size: int = 2) -> GraphSpec:
    """The ``GraphSpec`` of ``network`` (eval mode, fp32) from its ``example_inputs(batch_size)``; noise its forward
    draws becomes inputs named as its optional ``forward`` arguments (one each, in order), else ``ExportError``."""
    if not callable(getattr(network, "example_inputs", None)):
        raise ExportError(f"{_describe(network)} has no example_inputs, so ganzoo cannot tell what its graph takes")
    with _graph_mode():
        example = tuple(network.example_inputs(batch_size))
        bad = [type(x).__name__ for x in example if x is not None and not isinstance(x, Tensor)]
        if bad:
            raise ExportError(f"{_describe(network)} takes {bad[0]} inputs; a graph takes tensors only")
        names, optional = _forward_names(network, len(example))
        slots = tuple(None if x is None else n for n, x in zip(names, example))
        inputs = [GraphInput(name=n, shape=_dims(x.shape, batch_size), kind="input")
                  for n, x in zip(names, example) if x is not None]
        with _NoiseProbe() as probe:
            out = network(*example)
        noise = []
        if probe.draws:
            if len(probe.draws) != len(optional) or any(kind == "other" for _, kind in probe.draws):
                raise ExportError(f"{_describe(network)} draws {len(probe.draws)} random tensor(s) inside forward "
                                  f"that it does not take as arguments ({len(optional)} optional argument(s)); its "
                                  "graph would not be a function of its inputs")
            noise = [GraphInput(name=p.name, shape=_dims(shape, batch_size), kind=kind)
                     for p, (shape, kind) in zip(optional, probe.draws)]
        outputs = _output_names(out, role, {i.name for i in inputs + noise})
    spec = GraphSpec(slots=slots, noise=tuple(noise), inputs=tuple(inputs + noise), outputs=outputs,
                     batch_size=batch_size)
    _check_deterministic(network, spec)
    return spec


def _check_deterministic(network: nn.Module, spec: GraphSpec) -> None:
    """The same graph inputs under two random states give the same outputs, else ``ExportError``: a graph must be a
    function of its inputs (noise drawn some other way would be frozen into it, or drawn anew by the runtime)."""
    graph = _Graph(network, spec)
    with _graph_mode():
        inputs = spec.example(network, spec.batch_size)
        first = graph(*inputs)
    with _graph_mode(SEED + 1):
        second = graph(*inputs)
    if any(not torch.equal(a, b) for a, b in zip(first, second)):
        raise ExportError(f"{_describe(network)} gives other outputs for the same inputs in eval mode (it draws "
                          "noise it does not take as an argument); its graph would not be a function of its inputs")


def _dims(shape: Sequence[int], batch_size: int) -> tuple[int | str, ...]:
    return tuple("batch" if i == 0 and d == batch_size else int(d) for i, d in enumerate(shape))


def _prepare(module: nn.Module) -> nn.Module:
    """A CPU, fp32, eval-mode copy of ``module`` (the caller's module is left as it was)."""
    return copy.deepcopy(module).cpu().float().eval().requires_grad_(False)


def _traced(module: nn.Module, role: str | None, batch_size: int, dynamic_batch: bool
            ) -> tuple[nn.Module, GraphSpec, _Graph, tuple[Tensor, ...], Any]:
    """Everything an exporter needs: the prepared network, its spec, the graph module, example inputs and
    ``torch.export`` dynamic shapes."""
    if dynamic_batch and batch_size < 2:
        raise ConfigError(f"batch_size {batch_size} cannot trace a dynamic batch (torch.export fixes a size-1 "
                          "dimension); use batch_size >= 2, or dynamic_batch=False")
    role = role or role_of(module) or "generator"
    network = _prepare(module)
    spec = graph_spec(network, role, batch_size)
    graph = _named_graph(network, spec).eval()
    with _graph_mode():
        example = spec.example(network, batch_size)
    dynamic = None
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1)
        dynamic = {i.name: ({0: batch} if i.shape and i.shape[0] == "batch" else None) for i in spec.inputs}
    return network, spec, graph, example, dynamic


# -- formats -----------------------------------------------------------------------------------------------------------


def onnx_missing() -> str | None:
    """Why ONNX export or ONNX Runtime cannot run here (a one-line hint), or None when they can."""
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        return f"ONNX export needs {', '.join(missing)}, which {verb} not installed: {ONNX_HINT}"
    if not {"dynamo", "dynamic_shapes", "external_data"} <= set(inspect.signature(torch.onnx.export).parameters):
        return (f"ONNX export needs the torch.export-based exporter of a newer PyTorch (this is torch "
                f"{torch.__version__}): upgrade torch, or export --format pt2")
    return None


def _require_onnx() -> None:
    why = onnx_missing()
    if why is not None:
        raise ExportError(why)


def ort_session(path: str | Path, *, level: str = "all", threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session of ``path``: graph optimisations ``level`` ("basic", "extended" or "all", ONNX
    Runtime's default), ``threads`` intra-op threads (None: torch's thread count)."""
    _require_onnx()
    import onnxruntime as ort

    levels = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    if level not in levels:
        raise ConfigError(f"ONNX Runtime optimisation level {level!r} is not one of {', '.join(levels)}")
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[level]
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def run_onnx(session: Any, inputs: Sequence[Tensor]) -> tuple[Tensor, ...]:
    """``session`` (``ort_session``) on ``inputs`` in graph order, outputs as tensors."""
    feed = {i.name: x.detach().cpu().numpy() for i, x in zip(session.get_inputs(), inputs)}
    return tuple(torch.from_numpy(o) for o in session.run(None, feed))


def _max_diff(got: Sequence[Tensor], ref: Sequence[Tensor]) -> tuple[float, bool]:
    """Max |got - ref| over all outputs, and whether every element is within ATOL + RTOL·|ref|."""
    if len(got) != len(ref) or any(g.shape != r.shape for g, r in zip(got, ref)):
        return float("inf"), False
    diffs = [(g.float() - r.float()).abs() for g, r in zip(got, ref)]
    worst = max(float(d.max()) if d.numel() else 0.0 for d in diffs)
    ok = all(bool((d <= ATOL + RTOL * r.float().abs()).all()) for d, r in zip(diffs, ref))
    return worst, ok


def _check(run: Callable[[Sequence[Tensor]], Sequence[Tensor]], network: nn.Module, spec: GraphSpec, graph: _Graph,
           batch: int, what: str) -> float:
    """Run the exported file (``run``) and the eager graph on fresh inputs of ``batch``; refuse a mismatch."""
    with _graph_mode(SEED + 1):
        inputs = spec.example(network, batch)
        ref = graph(*inputs)
    got = run(inputs)
    worst, ok = _max_diff(got, ref)
    if not ok:
        raise ExportError(f"the exported {what} differs from the eager network by up to {worst:.3g} at batch size "
                          f"{batch} (allowed {ATOL:g} + {RTOL:g}·|value|); nothing was written")
    return worst


def _checked_batch(batch_size: int, dynamic_batch: bool) -> int:
    return batch_size + 1 if dynamic_batch else batch_size  # another size than traced: the batch really is dynamic


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The ONNX exporter's optimiser logs every pass at INFO (which the ``ganzoo`` command shows): warnings only."""
    loggers = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir", "torch.onnx")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export_onnx(module: nn.Module, path: str | Path, *, batch_size: int = 2, dynamic_batch: bool = True,
                opset: int | None = None, overwrite: bool = False) -> Path:
    """Write ``module`` (a generator or discriminator) as an ONNX file at ``path`` (atomically; an existing file only
    with ``overwrite``), checked in ONNX Runtime against the eager network first; returns ``path``. ``opset``: the
    ONNX opset (None: the exporter's default). See the module docstring for the inputs and outputs;
    ``export_graph`` also returns them and the measured difference."""
    return export_graph(module, path, format="onnx", batch_size=batch_size, dynamic_batch=dynamic_batch, opset=opset,
                        overwrite=overwrite).path


def export_pt2(module: nn.Module, path: str | Path, *, batch_size: int = 2, dynamic_batch: bool = True,
               overwrite: bool = False) -> Path:
    """Write ``module`` as a ``torch.export`` program (``.pt2``) at ``path`` (atomically; an existing file only with
    ``overwrite``), checked through ``torch.export.load`` against the eager network first; returns ``path``. Load it
    with ``torch.export.load(path).module()`` and call it with the inputs positionally; it returns a tuple."""
    return export_graph(module, path, format="pt2", batch_size=batch_size, dynamic_batch=dynamic_batch,
                        overwrite=overwrite).path


def export_graph(module: nn.Module, path: str | Path, *, format: str, batch_size: int = 2, dynamic_batch: bool = True,
                 opset: int | None = None, overwrite: bool = False, role: str | None = None,
                 network_key: str | None = None) -> ExportResult:
    """``export_onnx`` (``format="onnx"``) or ``export_pt2`` (``"pt2"``), returning what was written: the graph's
    inputs and outputs and its measured difference from the eager network. ``role`` ("generator" or
    "discriminator") and ``network_key`` (its key in the objective) name it where the registry does not."""
    if format == "onnx":
        return _export_onnx(module, path, batch_size=batch_size, dynamic_batch=dynamic_batch, opset=opset,
                            overwrite=overwrite, role=role, network_key=network_key)
    if format == "pt2":
        if opset is not None:
            raise ConfigError("opset applies to the onnx format")
        return _export_pt2(module, path, batch_size=batch_size, dynamic_batch=dynamic_batch, overwrite=overwrite,
                           role=role, network_key=network_key)
    raise ConfigError(f"export format {format!r} is not one of {', '.join(SUFFIXES)}")


def _export_onnx(module: nn.Module, path: str | Path, *, batch_size: int, dynamic_batch: bool, opset: int | None,
                 overwrite: bool, role: str | None, network_key: str | None) -> ExportResult:
    # torch.onnx.export(dynamo=True): the torch.export-based exporter, PyTorch's recommended one (the TorchScript
    # exporter, dynamo=False, is deprecated). It traces the same program as the .pt2 format, so both formats share
    # one trace's semantics; measured on every family's generators, it matches eager PyTorch to 1e-5 or better, as
    # the TorchScript exporter does. It needs onnxscript.
    _require_onnx()
    path = check_destination(path, overwrite=overwrite, what="ONNX file")
    network, spec, graph, example, dynamic = _traced(module, role, batch_size, dynamic_batch)
    with atomic_path(path, overwrite=overwrite, what="ONNX file") as tmp, _graph_mode(), _quiet_exporter():
        program = torch.onnx.export(graph, example, dynamo=True, verbose=False, opset_version=opset,
                                    input_names=[i.name for i in spec.inputs], output_names=list(spec.outputs),
                                    dynamic_shapes=dynamic, external_data=False)
        if program is None:  # pragma: no cover - dynamo=True always returns a program
            raise ExportError("torch.onnx.export returned no program")
        _stamp(program, module, spec)
        program.save(str(tmp), external_data=False)
        session = ort_session(tmp)
        batch = _checked_batch(batch_size, dynamic_batch)
        diff = _check(lambda xs: run_onnx(session, xs), network, spec, graph, batch, "ONNX graph")
        outputs = tuple((o.name, tuple(_dim(d) for d in o.shape)) for o in session.get_outputs())
    return _result(module, network_key, role, "onnx", path, spec, outputs, diff, batch, dynamic_batch)


def _dim(d: Any) -> int | str:
    return d if isinstance(d, int) else "batch"


def _stamp(program: Any, module: nn.Module, spec: GraphSpec) -> None:
    """Record what the graph is in the ONNX model's metadata (``ganzoo.kind``, ``ganzoo.name``, ``ganzoo.inputs``)."""
    props = program.model.metadata_props
    spec_attr = getattr(module, SPEC_ATTR, None)
    if spec_attr:
        props["ganzoo.kind"], props["ganzoo.name"] = spec_attr[0], spec_attr[1]
    props["ganzoo.inputs"] = json.dumps([{"name": i.name, "shape": list(i.shape), "kind": i.kind}
                                         for i in spec.inputs])


def _export_pt2(module: nn.Module, path: str | Path, *, batch_size: int, dynamic_batch: bool, overwrite: bool,
                role: str | None, network_key: str | None) -> ExportResult:
    path = check_destination(path, overwrite=overwrite, what="torch.export program")
    network, spec, graph, example, dynamic = _traced(module, role, batch_size, dynamic_batch)
    with atomic_path(path, overwrite=overwrite, what="torch.export program") as tmp, _graph_mode():
        program = torch.export.export(graph, example, dynamic_shapes=dynamic)
        with open(tmp, "wb") as handle:  # a file object: the temporary name does not end in .pt2
            torch.export.save(program, handle)
        with open(tmp, "rb") as handle:
            loaded = torch.export.load(handle).module()
        batch = _checked_batch(batch_size, dynamic_batch)
        diff = _check(lambda xs: loaded(*xs), network, spec, graph, batch, "torch.export program")
        with _graph_mode():
            shapes = [tuple(o.shape) for o in graph(*example)]
    outputs = tuple((name, _dims(shape, batch_size) if dynamic_batch else shape)
                    for name, shape in zip(spec.outputs, shapes))
    return _result(module, network_key, role, "pt2", path, spec, outputs, diff, batch, dynamic_batch)


def _result(module: nn.Module, key: str | None, role: str | None, fmt: str, path: Path, spec: GraphSpec,
            outputs: tuple[tuple[str, tuple[int | str, ...]], ...], diff: float, batch: int, dynamic: bool
            ) -> ExportResult:
    role = role or role_of(module) or "generator"
    inputs = spec.inputs
    if not dynamic:  # a fixed batch: the size it was traced with
        inputs = tuple(attrs.evolve(i, shape=tuple(spec.batch_size if d == "batch" else d for d in i.shape))
                       for i in inputs)
    return ExportResult(network=key or ("G" if role == "generator" else "D"), name=_registry_name(module),
                        format=fmt, path=path, inputs=inputs, outputs=outputs, max_abs_diff=diff,
                        checked_batch=batch)


def output_paths(out: str | Path, keys: Sequence[str]) -> dict[str, Path]:
    """Where each network goes: ``out`` itself for one network; for several, ``out``'s stem, ``.KEY``, its suffix
    (``g.onnx`` → ``g.G_A.onnx``, ``g.G_B.onnx``)."""
    out = Path(out)
    if len(keys) == 1:
        return {keys[0]: out}
    return {k: out.with_name(f"{out.stem}.{k}{out.suffix}") for k in keys}


def export_networks(module: nn.Module, out: str | Path, *, format: str, networks: Sequence[str] | None = None,
                    batch_size: int = 2, dynamic_batch: bool = True, opset: int | None = None,
                    overwrite: bool = False) -> list[ExportResult]:
    """Export the chosen networks of ``module`` (``select_networks``) as ``format`` ("onnx" or "pt2") to
    ``output_paths(out, keys)``; every destination is checked before anything is written."""
    if format not in SUFFIXES:
        raise ConfigError(f"export format {format!r} is not one of {', '.join(SUFFIXES)}")
    if format == "onnx":
        _require_onnx()
    chosen = select_networks(module, networks)
    paths = output_paths(out, list(chosen))
    for path in paths.values():
        check_destination(path, overwrite=overwrite, what="exported graph")
    return [export_graph(net, paths[key], format=format, batch_size=batch_size, dynamic_batch=dynamic_batch,
                         opset=opset, overwrite=overwrite, role=role, network_key=key)
            for key, (net, role) in chosen.items()]


# -- the command -------------------------------------------------------------------------------------------------------


def _network_list(text: str) -> tuple[str, ...]:
    """An argparse ``type=``: comma-separated network keys (``G``, ``G_A,G_B``, ``D``, ``all``)."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected network names such as G or G_A,G_B or all, got {text!r}")
    return names


def add_export_command(subparsers: Any) -> None:
    """``ganzoo export SOURCE --format {onnx,pt2,hub} --out PATH [--networks ...] [--ema] [--overwrite]``."""
    from ganzoo_core.argtypes import int_at_least

    p = subparsers.add_parser(
        "export", help="export a checkpoint's generators as ONNX or torch.export graphs, or as a model folder",
        description="Write the networks of a checkpoint (by default its generators) as ONNX files (run them with "
                    "ONNX Runtime) or torch.export programs (.pt2), in eval mode and fp32 with a dynamic batch "
                    "dimension; each file is checked against PyTorch before it is written. --format hub writes a "
                    "model folder (weights, config.json, card) instead.")
    p.add_argument("source", help="a ganzoo checkpoint, a model folder, hf-hub:ORG/NAME or a pretrained name")
    p.add_argument("--format", required=True, choices=FORMATS, help="onnx, pt2 (torch.export) or hub (model folder)")
    p.add_argument("--out", type=Path, required=True,
                   help="the file (onnx, pt2; with several networks, OUT's stem.KEY.suffix each) or the folder (hub)")
    p.add_argument("--networks", type=_network_list, metavar="KEYS",
                   help="comma-separated networks to export, e.g. G_A,G_B or D or all (default: the generators)")
    p.add_argument("--batch-size", type=int_at_least(1), default=2, help="the batch size the graph is traced with")
    p.add_argument("--static-batch", action="store_true", help="fix the batch size instead of a dynamic one")
    p.add_argument("--opset", type=int_at_least(7), help="onnx: the ONNX opset (default: the exporter's)")
    p.add_argument("--ema", action="store_true", help="export the EMA weights the run kept (trained with --ema)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--no-verify", action="store_true", help="skip the check of the checkpoint's tensor hash")
    p.add_argument("--json", action="store_true", help="print what was written as JSON on stdout, nothing else")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from ganzoo_core.hub import load, write_hub_folder

    verify = not args.no_verify
    if args.format == "hub":
        if args.networks or args.opset is not None or args.static_batch:
            raise InputError("--networks, --opset and --static-batch apply to --format onnx and pt2; a model folder "
                             "holds the whole checkpoint")
        folder = write_hub_folder(args.source, args.out, ema=args.ema, dtype=None, overwrite=args.overwrite,
                                  verify=verify)
        print(json.dumps({"format": "hub", "path": str(folder)}, indent=2) if args.json
              else f"wrote model folder {folder}")
        return 0
    if args.format == "onnx":
        _require_onnx()  # before loading anything
    if args.opset is not None and args.format != "onnx":
        raise InputError("--opset applies to --format onnx")
    module = load(args.source, ema=args.ema, verify=verify)  # on the CPU
    results = export_networks(module, args.out, format=args.format, networks=args.networks,
                              batch_size=args.batch_size, dynamic_batch=not args.static_batch, opset=args.opset,
                              overwrite=args.overwrite)
    if args.json:
        print(json.dumps({"format": args.format, "graphs": [r.to_json() for r in results]}, indent=2))
        return 0
    for r in results:
        ins = ", ".join(f"{i.name} {_shape_text(i.shape)}" for i in r.inputs)
        outs = ", ".join(f"{n} {_shape_text(s)}" for n, s in r.outputs)
        runtime = "ONNX Runtime" if r.format == "onnx" else "torch.export.load"
        print(f"wrote {r.network} ({r.name or 'unregistered'}) to {r.path}: inputs {ins}; outputs {outs}; "
              f"max |{runtime} - PyTorch| {r.max_abs_diff:.2g} at batch {r.checked_batch}", file=sys.stdout)
    return 0


def _shape_text(shape: Sequence[int | str]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def graph_inputs(network: nn.Module, batch_size: int, *, seed: int = SEED + 1,
                 given: Sequence[Tensor] | None = None) -> tuple[Tensor, ...]:
    """Inputs of ``network``'s graph at ``batch_size``: its example inputs (or ``given``, the tensors its forward
    takes), then the noise its graph takes as inputs, drawn from ``seed`` (the default: what the export check uses)."""
    prepared = _prepare(network)
    spec = graph_spec(prepared, role_of(network) or "generator", 2)
    with _graph_mode(seed):
        example = spec.example(prepared, batch_size)
    if given is None:
        return example
    given = tuple(given)
    if len(given) != len(spec.inputs) - len(spec.noise):
        raise InputError(f"{_describe(network)} takes {len(spec.inputs) - len(spec.noise)} input tensor(s) "
                         f"({', '.join(i.name for i in spec.inputs[:len(spec.inputs) - len(spec.noise)])}), "
                         f"got {len(given)}")
    return given + example[len(given):]


def eager_outputs(network: nn.Module, inputs: Sequence[Tensor]) -> tuple[Tensor, ...]:
    """What the eager network (eval mode, fp32, reference ops) gives for its graph's ``inputs``, as a flat tuple."""
    prepared = _prepare(network)
    graph = _named_graph(prepared, graph_spec(prepared, role_of(network) or "generator", 2)).eval()
    with _graph_mode():
        return tuple(graph(*inputs))
