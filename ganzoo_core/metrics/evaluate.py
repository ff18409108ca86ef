"""Evaluate a generator against a reference dataset: samples → extractor features → scores, with the full protocol.

A score is only meaningful next to the protocol that produced it (extractor, its weights, input resizing, sample
counts, reference split, seed), so ``evaluate`` returns and writes them together. Reference features are cached per
(dataset, extractor, weights, count) when a cache folder is given. ``real_vs_real`` gives the floor: the scores of two
disjoint halves of the reference, i.e. what a perfect generator would get at that sample size.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from ganzoo_core._api import SPEC_ATTR, create, get_entry
from ganzoo_core.checkpoints import atomic_path
from ganzoo_core.config import cfg_to_dict
from ganzoo_core.errors import GanzooError
from ganzoo_core.metrics import scores
from ganzoo_core.metrics.extractors import FeatureExtractor
from ganzoo_core.progress import progress as progress_bar

METRICS: tuple[str, ...] = ("fid", "kid", "is", "pr")
"""Names ``metrics=`` accepts: Fréchet Inception Distance, Kernel Inception Distance, Inception Score, and
precision/recall."""

Source = Any  # an objective (has .sample), a bare generator module, or a callable (n, seed) -> images


@attrs.frozen(kw_only=True)
class ScoreOptions:
    """Settings of the individual scores; written into the result."""

    kid_subsets: int = 100
    kid_subset_size: int = 1000
    is_splits: int = 10
    pr_k: int = 3
    seed: int = 0  # KID subset draws


@attrs.frozen
class FeatureSet:
    """Features (N, D) of a set of images, and class probabilities (N, C) when the extractor has a head."""

    features: Tensor
    probs: Tensor | None


# -- building blocks -----------------------------------------------------------------------------------------------


def build_extractor(name: str, kwargs: Mapping[str, Any] | None = None, device: str | torch.device = "cpu"
                    ) -> FeatureExtractor:
    net = create("encoder", name, device=device, **dict(kwargs or {}))
    if not isinstance(net, FeatureExtractor):
        raise GanzooError(f"encoder {name!r} is not an image feature extractor; use one of domain.*, timm.backbone, "
                          "fid.inception_v3")
    return net.eval()


def extract(net: FeatureExtractor, batches: Iterator[Tensor], device: str | torch.device) -> FeatureSet:
    """Run ``net`` over image batches; features and probabilities come back as float32 CPU tensors."""
    feats, probs = [], []
    with torch.no_grad():
        for images in batches:
            f, logits = net.features_and_logits(images.to(device))
            feats.append(f.float().cpu())
            if logits is not None:
                probs.append(logits.float().softmax(1).cpu())
    if not feats:
        raise GanzooError("no images to extract features from; give n >= 2")
    return FeatureSet(torch.cat(feats), torch.cat(probs) if probs else None)


def batch_seed(seed: int, index: int) -> int:
    """The seed of sample batch ``index``: one stream per (seed, batch), independent of the batch count."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _draw(source: Source, n: int, seed: int) -> Tensor:
    if hasattr(source, "sample"):
        return source.sample(n, seed=seed)
    if isinstance(source, nn.Module) and hasattr(source, "example_inputs"):  # a bare generator: seeded inputs
        generator: Any = source
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            inputs = generator.example_inputs(n)
        device = next(generator.parameters()).device
        return generator(*[x.to(device) if isinstance(x, Tensor) else x for x in inputs])
    if callable(source):
        return source(n, seed)
    raise GanzooError(f"cannot draw samples from a {type(source).__name__}; pass an objective, a generator or a "
                      "function (n, seed) -> images")


def sample_batches(source: Source, n: int, batch_size: int, seed: int) -> Iterator[Tensor]:
    """``n`` samples in batches, in eval mode (restored afterwards), batch ``i`` seeded with ``batch_seed(seed, i)``."""
    was_training = source.training if isinstance(source, nn.Module) else None
    if isinstance(source, nn.Module):
        source.eval()
    try:
        with torch.no_grad():
            for index, start in enumerate(range(0, n, batch_size)):
                images = _draw(source, min(batch_size, n - start), batch_seed(seed, index))
                yield images.detach()
    finally:
        if was_training is not None:
            source.train(was_training)


def _counted(batches: Iterable[Tensor], *, total: int, desc: str, enabled: bool | None) -> Iterator[Tensor]:
    """``batches`` unchanged, with a progress bar on stderr (``ganzoo_core.progress``) that counts the images of
    each batch once the consumer asks for the next one (after it has, e.g., extracted the batch's features)."""
    with progress_bar(total=total, desc=desc, unit="img", enabled=enabled) as bar:
        for images in batches:
            yield images
            bar.update(len(images))


def describe_source(source: Source) -> dict[str, Any]:
    spec = getattr(source, SPEC_ATTR, None)
    if spec is None:
        return {"kind": "callable" if not isinstance(source, nn.Module) else "module", "name": type(source).__name__}
    return {"kind": spec[0], "name": spec[1], "config": cfg_to_dict(getattr(source, "cfg", None))}


# -- reference -----------------------------------------------------------------------------------------------------


def open_reference(reference: str | Any, kwargs: Mapping[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """The reference dataset and what to record about it (registered name, split, config)."""
    if isinstance(reference, str):
        entry = get_entry("dataset", reference)
        data = create("dataset", entry.name, **dict(kwargs or {}))
        cfg = getattr(data, "cfg", entry.cfg)
        split = getattr(cfg, "split", entry.variant)
        return data, {"dataset": entry.name, "split": split, "config": cfg_to_dict(cfg)}
    cfg = getattr(reference, "cfg", None)
    name = getattr(reference, "name", type(reference).__name__)
    return reference, {"dataset": name, "split": getattr(cfg, "split", None), "config": cfg_to_dict(cfg) if cfg else {}}


def reference_batches(data: Any, indices: Sequence[int], batch_size: int) -> Iterator[Tensor]:
    for start in range(0, len(indices), batch_size):
        yield torch.stack([data[i]["image"] for i in indices[start:start + batch_size]])


def state_fingerprint(module: nn.Module) -> str:
    """SHA-256 over the module's state dict (names, dtypes, shapes, bytes): identifies the exact weights."""
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _cache_path(cache_dir: Path, info: Mapping[str, Any], key: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in f"{info['dataset']}__{info['extractor']}")
    return Path(cache_dir) / f"{safe}__{key[:16]}.safetensors"


def _read_cache(path: Path, key: str) -> FeatureSet | None:
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            if (handle.metadata() or {}).get("key") != key:
                return None
            names = set(handle.keys())
            probs = handle.get_tensor("probs") if "probs" in names else None
            return FeatureSet(handle.get_tensor("features"), probs)
    except Exception:  # a damaged cache file is recomputed, never trusted
        return None


def _write_cache(path: Path, key: str, fs: FeatureSet) -> None:
    tensors = {"features": fs.features.contiguous()}
    if fs.probs is not None:
        tensors["probs"] = fs.probs.contiguous()
    with atomic_path(path, overwrite=True, what="feature cache") as tmp:
        save_file(tensors, str(tmp), metadata={"key": key})


def reference_features(net: FeatureExtractor, reference: str | Any, *, n: int | None = None,
                       reference_kwargs: Mapping[str, Any] | None = None, batch_size: int = 250,
                       device: str | torch.device = "cpu", cache_dir: str | Path | None = None,
                       fingerprint: str | None = None, progress: bool | None = None
                       ) -> tuple[FeatureSet, dict[str, Any]]:
    """Features of the first ``n`` reference images (all when None), from the cache when it holds them.
    ``progress``: a bar on stderr while extracting (None: when stderr is a terminal; False: never)."""
    data, info = open_reference(reference, reference_kwargs)
    count = len(data) if n is None else min(n, len(data))
    info.update(n=count, selection=f"the first {count} images of the split, in dataset order", cached=False)

    def batches() -> Iterator[Tensor]:
        return _counted(reference_batches(data, range(count), batch_size), total=count, desc="reference features",
                        enabled=progress)

    if cache_dir is None:
        return extract(net, batches(), device), info
    protocol = net.protocol()
    described = {"reference": {k: info[k] for k in ("dataset", "split", "config", "n")}, "extractor": protocol["name"],
                 "extractor_config": protocol["config"], "input": protocol["input"],
                 "weights": fingerprint or state_fingerprint(net)}
    key = hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()
    path = _cache_path(Path(cache_dir), {"dataset": info["dataset"], "extractor": protocol["name"]}, key)
    info["cache_file"] = str(path)
    cached = _read_cache(path, key)
    if cached is not None:
        info["cached"] = True
        return cached, info
    fs = extract(net, batches(), device)
    _write_cache(path, key, fs)
    return fs, info


# -- scores --------------------------------------------------------------------------------------------------------


def check_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    wanted = tuple(dict.fromkeys(m.strip().lower() for m in metrics if m.strip()))
    unknown = [m for m in wanted if m not in METRICS]
    if unknown or not wanted:
        raise GanzooError(f"unknown metric(s) {unknown or list(metrics)}; choose from {', '.join(METRICS)}")
    return wanted


def check_counts(*, batch_size: int, seed: int, n_reference: int | None) -> None:
    """``batch_size`` >= 1, ``seed`` >= 0 (numpy seed sequences), ``n_reference`` None or >= 2; else a GanzooError."""
    if batch_size < 1:
        raise GanzooError(f"batch_size must be at least 1, got {batch_size}")
    if seed < 0:
        raise GanzooError(f"seed must be 0 or more, got {seed}")
    if n_reference is not None and n_reference < 2:
        raise GanzooError(f"n_reference must be at least 2 (or None for all), got {n_reference}")


def compute_scores(real: FeatureSet, fake: FeatureSet, metrics: Sequence[str], opts: ScoreOptions
                   ) -> dict[str, Any]:
    """The requested scores of ``fake`` against ``real`` (IS uses ``fake``'s probabilities only)."""
    out: dict[str, Any] = {}
    if "fid" in metrics:
        out["fid"] = scores.fid(real.features, fake.features)
    if "kid" in metrics:
        out["kid"] = scores.kid(real.features, fake.features, subsets=opts.kid_subsets,
                                subset_size=opts.kid_subset_size, seed=opts.seed).as_dict()
    if "is" in metrics:
        if fake.probs is None:
            raise GanzooError("the Inception Score needs class probabilities; use an extractor with a classifier "
                              "head or leave 'is' out of metrics")
        out["is"] = scores.inception_score(fake.probs, splits=min(opts.is_splits, len(fake.probs))).as_dict()
    if "pr" in metrics:
        out["precision"], out["recall"] = scores.precision_recall(real.features, fake.features, k=opts.pr_k)
    return out


def split_halves(fs: FeatureSet, seed: int) -> tuple[FeatureSet, FeatureSet]:
    """Two disjoint halves of a feature set, by a seeded permutation."""
    order = torch.randperm(len(fs.features), generator=torch.Generator().manual_seed(seed))
    a, b = order[: len(order) // 2], order[len(order) // 2: 2 * (len(order) // 2)]
    pick = lambda idx: FeatureSet(fs.features[idx], None if fs.probs is None else fs.probs[idx])  # noqa: E731
    return pick(a), pick(b)


def _metric_protocol(metrics: Sequence[str], opts: ScoreOptions, n_fake: int, n_real: int) -> dict[str, Any]:
    described = {
        "fid": {"formula": "|mu1 - mu2|^2 + Tr S1 + Tr S2 - 2 Tr (S1 S2)^1/2, via eigh of S1^1/2 S2 S1^1/2"},
        "kid": {"kernel": "(x.y / d + 1)^3", "estimator": "unbiased MMD^2", "subsets": opts.kid_subsets,
                "subset_size": min(opts.kid_subset_size, n_fake, n_real), "seed": opts.seed},
        "is": {"splits": min(opts.is_splits, n_fake), "probs": "softmax of the extractor's logits"},
        "pr": {"k": opts.pr_k, "method": "Kynkaanniemi et al. 2019 k-NN manifolds"},
    }
    return {m: described[m] for m in metrics}


def _warnings(protocol: Mapping[str, Any], n_fake: int, reference: Mapping[str, Any], metrics: Sequence[str]
              ) -> list[str]:
    out = []
    weights, dim = protocol["weights"], protocol["embed_dim"]
    if weights.get("random"):
        out.append(f"{protocol['name']} has random weights: these scores say nothing about image quality and are "
                   "comparable with no published number")
    if "fid" in metrics and min(n_fake, reference["n"]) <= dim:
        out.append(f"fewer samples ({min(n_fake, reference['n'])}) than feature dimensions ({dim}): covariances are "
                   "singular and FID is strongly biased; compare only results with the same sample counts")
    domain = protocol["config"].get("domain")
    if domain and not str(reference["dataset"]).startswith(domain):
        out.append(f"the extractor was trained on {domain}, the reference is {reference['dataset']}")
    return out


def write_result(result: Mapping[str, Any], path: str | Path, *, overwrite: bool = True) -> Path:
    """Write a result as indented JSON, atomically (a crash leaves the previous file)."""
    with atomic_path(path, overwrite=overwrite, what="result file") as tmp:
        tmp.write_text(result_json(result) + "\n")
    return Path(path)


def result_json(result: Mapping[str, Any]) -> str:
    """A result as the indented JSON ``write_result`` writes (without the final newline)."""
    return json.dumps(result, indent=2, sort_keys=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, (Path, torch.device)):
        return str(value)
    return repr(value)


# -- entry points --------------------------------------------------------------------------------------------------


def _extractor_and_reference(
    extractor: str, extractor_kwargs: Mapping[str, Any] | None, reference: str | Any, n_reference: int | None,
    reference_kwargs: Mapping[str, Any] | None, batch_size: int, device: str | torch.device,
    cache_dir: str | Path | None, progress: bool | None,
) -> tuple[FeatureExtractor, str, FeatureSet, dict[str, Any]]:
    """The extractor, its weights' fingerprint, and the (cached) reference features it gives."""
    net = build_extractor(extractor, extractor_kwargs, device)
    fingerprint = state_fingerprint(net)
    real, ref_info = reference_features(net, reference, n=n_reference, reference_kwargs=reference_kwargs,
                                        batch_size=batch_size, device=device, cache_dir=cache_dir,
                                        fingerprint=fingerprint, progress=progress)
    return net, fingerprint, real, ref_info


def evaluate(
    source: Source,
    reference: str | Any,
    *,
    extractor: str = "domain.fashion_mnist",
    extractor_kwargs: Mapping[str, Any] | None = None,
    n_samples: int = 5000,
    n_reference: int | None = None,
    reference_kwargs: Mapping[str, Any] | None = None,
    batch_size: int = 250,
    seed: int = 0,
    metrics: Sequence[str] = METRICS,
    options: ScoreOptions = ScoreOptions(),
    device: str | torch.device = "cpu",
    cache_dir: str | Path | None = None,
    floor: bool = False,
    source_info: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Score ``n_samples`` samples of ``source`` against the reference dataset (a registered name such as
    ``"fashion_mnist.test"``, or a dataset object) with the extractor ``extractor``.

    Samples are drawn in eval mode with ``source.sample(b, seed=batch_seed(seed, i))`` per batch ``i`` (a bare
    generator gets seeded ``example_inputs``; a callable is called as ``f(b, seed)``). ``floor=True`` adds the
    scores of two disjoint reference halves. The result holds the scores, the protocol and warnings; with ``out`` it
    is also written there as JSON (atomically). ``progress``: bars on stderr while reference features are extracted
    and samples drawn (None: when stderr is a terminal; False: never; True: always).
    """
    started = time.perf_counter()
    wanted = check_metrics(metrics)
    if n_samples < 2:
        raise GanzooError(f"n_samples must be at least 2, got {n_samples}")
    check_counts(batch_size=batch_size, seed=seed, n_reference=n_reference)
    net, fingerprint, real, ref_info = _extractor_and_reference(
        extractor, extractor_kwargs, reference, n_reference, reference_kwargs, batch_size, device, cache_dir, progress)
    t_ref = time.perf_counter()
    fake = extract(net, _counted(sample_batches(source, n_samples, batch_size, seed), total=n_samples, desc="samples",
                                 enabled=progress), device)
    t_fake = time.perf_counter()
    result = _result(net, fingerprint, wanted, options, real, fake, ref_info, floor, seed)
    result["protocol"]["samples"] = {
        **describe_source(source), **dict(source_info or {}), "n": len(fake.features), "batch_size": batch_size,
        "seed": seed, "seeding": "batch i uses sample(b, seed=SeedSequence([seed, i]))", "mode": "eval",
    }
    result["protocol"]["device"] = str(device)
    result["seconds"] = {"reference": round(t_ref - started, 2), "samples": round(t_fake - t_ref, 2),
                         "total": round(time.perf_counter() - started, 2)}
    if out is not None:
        result["path"] = str(write_result(result, out))
    return result


def _result(net: FeatureExtractor, fingerprint: str, wanted: Sequence[str], options: ScoreOptions,
            real: FeatureSet, fake: FeatureSet, ref_info: dict[str, Any], floor: bool, seed: int) -> dict[str, Any]:
    from ganzoo_core._version import __version__

    protocol = {**net.protocol(), "fingerprint": fingerprint}
    result: dict[str, Any] = {
        "ganzoo_version": __version__, "torch_version": torch.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "scores": compute_scores(real, fake, wanted, options),
        "protocol": {"extractor": protocol, "reference": ref_info,
                     "metrics": _metric_protocol(wanted, options, len(fake.features), len(real.features))},
        "warnings": _warnings(protocol, len(fake.features), ref_info, wanted),
    }
    if "is" in wanted and real.probs is not None:  # shuffled: datasets are often sorted by class
        order = torch.randperm(len(real.probs), generator=torch.Generator().manual_seed(seed))
        result["reference_scores"] = {"is": scores.inception_score(
            real.probs[order], splits=min(options.is_splits, len(real.probs))).as_dict()}
    if floor:
        result["floor"] = _floor(real, wanted, options, seed)
    return result


def _floor(real: FeatureSet, wanted: Sequence[str], options: ScoreOptions, seed: int) -> dict[str, Any]:
    a, b = split_halves(real, seed)
    return {"scores": compute_scores(a, b, wanted, options), "n_each": len(a.features),
            "how": "scores of one half of the reference against the other (seeded permutation); what a perfect "
                   "generator would get with this many samples"}


def real_vs_real(
    reference: str | Any,
    *,
    extractor: str = "domain.fashion_mnist",
    extractor_kwargs: Mapping[str, Any] | None = None,
    n_reference: int | None = None,
    reference_kwargs: Mapping[str, Any] | None = None,
    batch_size: int = 250,
    seed: int = 0,
    metrics: Sequence[str] = METRICS,
    options: ScoreOptions = ScoreOptions(),
    device: str | torch.device = "cpu",
    cache_dir: str | Path | None = None,
    out: str | Path | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """The floor of every score: one seeded half of the reference scored against the other, disjoint half.
    ``progress``: a bar on stderr while reference features are extracted (None: when stderr is a terminal)."""
    wanted = check_metrics(metrics)
    check_counts(batch_size=batch_size, seed=seed, n_reference=n_reference)
    net, fingerprint, real, ref_info = _extractor_and_reference(
        extractor, extractor_kwargs, reference, n_reference, reference_kwargs, batch_size, device, cache_dir, progress)
    half_a, half_b = split_halves(real, seed)
    result = _result(net, fingerprint, wanted, options, half_a, half_b, ref_info, False, seed)
    result["protocol"]["samples"] = {"kind": "real_vs_real", "n": len(half_b.features), "seed": seed,
                                     "how": "seeded permutation of the reference, split into two disjoint halves"}
    result["warnings"] = _warnings(result["protocol"]["extractor"], len(half_b.features),
                                   {**ref_info, "n": len(half_a.features)}, wanted)
    if out is not None:
        result["path"] = str(write_result(result, out))
    return result


__all__ = [
    "METRICS", "FeatureSet", "ScoreOptions", "batch_seed", "build_extractor", "compute_scores", "evaluate",
    "extract", "real_vs_real", "reference_features", "result_json", "sample_batches", "split_halves", "state_fingerprint",
    "write_result",
]
