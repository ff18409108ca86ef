"""StarGAN with the mask vector on two datasets: train the ``alternate`` and the ``mixed`` config with the same images
per dataset, and score held-out translations of each dataset.

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 .venv/bin/python experiments/stargan-multi/evidence.py \
        --seeds 0 1 --fractions 0.25 0.5 0.75 1 --out runs/stargan-multi-tiny

``--configs`` defaults to this folder's ``config.toml`` (alternate) and ``config_mixed.toml``.

Each config is trained (as ``ganzoo train --config`` would: the objective and ``[set]``, ``data``, ``[data_set]``,
batch size) once per ``--seeds`` entry, and scored before training and at each ``--fractions`` of its ``steps``
(resuming exactly between marks; the same fractions are the same images per dataset in both configs).

- Dataset 1 (the held-out ``stargan.shapes`` test split, 1,000 images): each image is given a random other colour,
  with the cond ``[labels_1, zeros(c2_dim), mask (1, 0)]``; ``target`` is the share of translations that the shipped
  ``attrs.shapes`` judge reads in that colour, ``preserved`` the shares that keep shape, position and size, and
  ``rec_l1`` is mean |x - G(G(x, c_trg), c_org)| (``stargan.shapes_translation``, through ``OneDatasetG``).
- Dataset 2 (the held-out ``emoji.tones`` test split: 11 emoji, each in all 6 tones): every image is translated to
  each of the 5 other tones, with the cond ``[zeros(c_dim), tone one-hot, mask (0, 1)]``. The test split holds the
  true rendering of each target, so ``target_l1`` is mean |G(x, c_trg) - the emoji in the target tone|, and ``tone``
  is the share of translations nearest (mean L1) to the target tone among the 6 renderings of their own emoji
  (pixels that the 6 renderings share add the same to each distance, so the skin decides). ``rec_l1`` as above;
  ``identity_target_l1`` is the target L1 of an untouched input (a generator that does nothing).

Writes ``--results`` (default ``<out>/scores.json``) after every mark, and ``<out>/<config>/seed<k>/grid.png`` at the
end (4 held-out shapes and 4 held-out emoji, each followed by its translation to all 14 domains). A checkpoint already
under a run folder is resumed (``train_seconds`` then counts this invocation only). ``--positions CHECKPOINT ...``
trains nothing: it prints, per checkpoint, in which quadrant the judge reads each recoloured held-out shape.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import ganzoo_core as gz
from ganzoo_core.metrics.evaluate import write_result
from ganzoo_core.runconfig import RunConfig, read_run_config, train_cfg_of
from ganzoo_core.training import dataset_for, train


def colour_targets() -> Callable[[Tensor, int], Tensor]:
    """The target colours ``stargan.shapes_translation`` draws (the registry does not expose the function itself:
    it is taken from the module of that registered metric)."""
    return importlib.import_module(gz.get_entry("metric", "stargan.shapes_translation").module).colour_targets

HERE = Path(__file__).resolve().parent
CONFIGS = [HERE / "config.toml", HERE / "config_mixed.toml"]


def _shapes32_evidence() -> Any:
    """The single-dataset StarGAN script (experiments/stargan-shapes32/evidence.py), for its run helpers."""
    spec = importlib.util.spec_from_file_location("stargan_shapes32_evidence", HERE.parent / "stargan-shapes32" /
                                                  "evidence.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


S32 = _shapes32_evidence()


# -- conds of the multi layout ---------------------------------------------------------------------------------------


def multi_cond(cfg: Any, labels: Tensor, dataset: int) -> Tensor:
    """G's cond for images of one dataset: ``[labels_1, zeros(c2_dim), 1, 0]`` (dataset 0) or
    ``[zeros(c_dim), labels_2, 0, 1]`` (dataset 1)."""
    n = cfg.c2_dim if dataset else cfg.c_dim
    if labels.ndim != 2 or labels.shape[1] != n:
        raise ValueError(f"labels of dataset {dataset} must be (B, {n}), got {tuple(labels.shape)}")
    cond = torch.zeros(len(labels), cfg.cond_dim, device=labels.device)
    start = cfg.c_dim if dataset else 0
    cond[:, start:start + n] = labels.float()
    cond[:, cfg.c_dim + cfg.c2_dim + dataset] = 1.0
    return cond


class OneDatasetG(nn.Module):
    """A multi-dataset G seen as a single-dataset one: ``forward(x, labels)`` with one dataset's labels only."""

    def __init__(self, G: nn.Module, cfg: Any, dataset: int = 0) -> None:
        super().__init__()
        self.G, self.cfg, self.dataset = G, cfg, dataset

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        return self.G(x, multi_cond(self.cfg, labels.to(x.device), self.dataset))


class OneDatasetView(nn.Module):
    """The objective as single-dataset scorers read it (``networks["G"]``, ``eval()`` / ``train()``), for one
    dataset of a multi-dataset objective."""

    def __init__(self, objective: Any, dataset: int = 0) -> None:
        super().__init__()
        self.networks = nn.ModuleDict({"G": OneDatasetG(objective.networks["G"], objective.cfg, dataset)})
        self.train(objective.training)


# -- scores ----------------------------------------------------------------------------------------------------------


def shapes_scores(objective: Any, test: Any, judge: Any) -> dict[str, Any]:
    """``stargan.shapes_translation`` on dataset 1 through the multi cond."""
    return gz.create_metric("stargan.shapes_translation")(OneDatasetView(objective, 0), test, judge=judge)


@torch.no_grad()
def tone_scores(objective: Any, test: Any, batch_size: int = 110) -> dict[str, Any]:
    """Every held-out emoji to each of its other tones: tone accuracy (nearest rendering of the same emoji), L1 to the
    true target rendering, reconstruction L1, and the target L1 of the untouched input."""
    n_tones = objective.cfg.c2_dim
    images = torch.stack([test[i]["image"] for i in range(len(test))])
    tones = torch.stack([torch.as_tensor(test[i]["label"]) for i in range(len(test))]).long()
    if tones.tolist() != [i % n_tones for i in range(len(test))]:
        raise ValueError(f"the tone test split must hold each emoji in its {n_tones} tones in order, got labels "
                         f"{tones.tolist()[:12]}...")
    src = torch.arange(len(test)).repeat_interleave(n_tones - 1)  # each image ...
    shift = torch.arange(1, n_tones).repeat(len(test))
    target = (tones[src] + shift) % n_tones  # ... to each other tone
    first = src - tones[src]  # the index of the image's emoji in tone 0
    G = OneDatasetG(objective.networks["G"], objective.cfg, 1)
    device = next(G.parameters()).device
    was_training = objective.training
    objective.eval()
    fakes, rec = [], 0.0
    try:
        for s in range(0, len(src), batch_size):
            i, t = src[s:s + batch_size], target[s:s + batch_size]
            x = images[i].to(device)
            fake = G(x, F.one_hot(t, n_tones).to(device))
            rec += float((x - G(fake, F.one_hot(tones[i], n_tones).to(device))).abs().mean()) * len(x)
            fakes.append(fake.cpu())
    finally:
        objective.train(was_training)
    fake = torch.cat(fakes)
    renderings = images[first[:, None] + torch.arange(n_tones)]  # (M, n_tones, C, H, W): the emoji in every tone
    distance = (fake[:, None] - renderings).abs().mean(dim=(2, 3, 4))  # (M, n_tones)
    truth = images[first + target]
    return {"n": len(src), "tone": float((distance.argmin(1) == target).float().mean()),
            "target_l1": float((fake - truth).abs().mean()), "rec_l1": rec / len(src),
            "identity_target_l1": float((images[src] - truth).abs().mean())}


@torch.no_grad()
def position_reads(objective: Any, test: Any, judge: Any, seed: int = 0) -> dict[str, Any]:
    """Where the judge reads the recoloured shape (the targets of ``stargan.shapes_translation``): counts of
    (source quadrant, quadrant read on the translation), rows and columns in ``judge.blocks["pos"]`` order."""
    items = [test[i] for i in range(len(test))]
    images, labels = torch.stack([it["image"] for it in items]), torch.stack([it["attrs"] for it in items])
    blocks = judge.blocks["pos"]
    names = judge.attribute_names
    source = torch.stack([it["attrs_all"] for it in items])[:, [names.index(f"pos={b}") for b in blocks]].argmax(1)
    G = OneDatasetG(objective.networks["G"], objective.cfg, 0)
    was_training = objective.training
    objective.eval()
    try:
        fake = G(images, colour_targets()(labels, seed)).cpu()
    finally:
        objective.train(was_training)
    read = judge.predict(fake)["pos"]
    counts = torch.zeros(len(blocks), len(blocks), dtype=torch.long)
    counts.index_put_((source, read), torch.ones_like(source), accumulate=True)
    return {"quadrants": list(blocks), "counts": counts.tolist(), "kept": float((read == source).float().mean())}


# -- runs ------------------------------------------------------------------------------------------------------------


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or platform.machine()


def held_out(config: RunConfig, image_size: int) -> tuple[Any, Any]:
    """The test splits of the config's two datasets: ``a`` at its default size (stargan.shapes: the 1,000 test images
    of 10,000, none among the first 806 that training draws from) and ``b``."""
    ds = config.data_set
    a_kwargs = {k: v for k, v in dict(ds.get("a_kwargs", {})).items() if k not in ("n", "split")}
    b_kwargs = {**dict(ds.get("b_kwargs", {})), "split": "test"}
    return (gz.create_dataset(ds["a"], **a_kwargs, split="test", image_size=image_size),
            gz.create_dataset(ds["b"], **b_kwargs, image_size=image_size))


def grid_batch(shapes: Any, emoji: Any, n: int = 4, n_tones: int = 6) -> dict[str, Tensor]:
    """The first ``n`` held-out shapes and ``n`` held-out emoji (emoji 0, 2, 4, ... in tones 0, 1, 2, ...) as one
    batch with the joined dataset's keys."""
    a = [shapes[i] for i in range(n)]
    b = [emoji[2 * i * n_tones + i % n_tones] for i in range(n)]
    return {"image": torch.stack([it["image"] for it in a + b]),
            "attrs": torch.stack([it["attrs"] for it in a] + [torch.zeros_like(a[0]["attrs"])] * n),
            "label_b": torch.tensor([0] * n + [int(it["label"]) for it in b]),
            "dataset": torch.tensor([0] * n + [1] * n)}


def run_one(config: RunConfig, seed: int, args: argparse.Namespace, judge: Any, record: dict[str, Any],
            save: Callable[[], None]) -> None:
    """Train ``config`` with ``seed``; scores go into ``record`` before training and at each mark (then ``save``)."""
    base = train_cfg_of(config, seed=seed)
    objective = S32.build(config, base, args.device)
    out = args.out / config.path.stem / f"seed{seed}"
    data = dataset_for(objective, config.train.get("data"), **config.data_set)  # batches: the objective's multi
    tests = held_out(config, objective.image_shape[-1])

    def score() -> dict[str, Any]:
        return {"shapes": shapes_scores(objective, tests[0], judge), "emoji": tone_scores(objective, tests[1])}

    record.update({"config": config.path.name, "multi": objective.cfg.multi, "seed": seed, "steps": base.steps,
                   "batch_size": base.batch_size, "images_per_dataset": base.steps * base.batch_size // 2,
                   "untrained": score(), "curve": []})
    seconds = 0.0
    for fraction in args.fractions:
        mark = round(base.steps * fraction)
        t0 = time.perf_counter()
        if train(objective, data, out, S32._cfg(base, mark, args.device)).interrupted:
            raise SystemExit(f"stopped before the {mark}-step mark; run the same command again to resume")
        seconds += time.perf_counter() - t0
        got = score()
        record["curve"].append({"step": mark, "fraction": fraction, "train_seconds": seconds, **got})
        sh, em = got["shapes"], got["emoji"]
        print(f"{config.path.name} seed {seed} step {mark} ({seconds:.0f} s): shapes target {sh['target']:.3f} "
              f"preserved {sh['preserved']} rec {sh['rec_l1']:.3f} | emoji tone {em['tone']:.3f} target L1 "
              f"{em['target_l1']:.3f} rec {em['rec_l1']:.3f}", flush=True)
        save()  # after every mark: an interrupted run keeps the marks it reached
    batch = {k: v.to(args.device) for k, v in grid_batch(*tests, n_tones=objective.cfg.c2_dim).items()}
    S32.translation_grid(objective, out / "grid.png", batch=batch, n_inputs=len(batch["image"]))


HEADLINE = {"shapes_target": ("shapes", "target"), "shapes_preserved_min": ("shapes", "preserved_min"),
            "shapes_rec_l1": ("shapes", "rec_l1"), "emoji_tone": ("emoji", "tone"),
            "emoji_target_l1": ("emoji", "target_l1"), "emoji_rec_l1": ("emoji", "rec_l1")}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per config and step: the per-seed values of the headline numbers (in ``--seeds`` order) and their mean."""
    out: dict[str, Any] = {}
    for run in runs:
        for point in [{"step": 0, "train_seconds": 0.0, **run["untrained"]}, *run["curve"]]:
            entry = out.setdefault(run["config"], {}).setdefault(str(point["step"]), {})
            entry.setdefault("train_seconds", []).append(round(point["train_seconds"], 1))
            for name, (part, key) in HEADLINE.items():
                entry.setdefault(name, []).append(point[part][key])
    for steps in out.values():
        for entry in steps.values():
            entry["mean"] = {k: sum(v) / len(v) for k, v in entry.items()}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", type=Path, nargs="+", default=CONFIGS, help="run configs to train and compare")
    p.add_argument("--seeds", type=int, nargs="+", help="training seeds (default: each config's seed)")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.5, 1.0],
                   help="score at these fractions of each config's steps (ascending, in (0, 1])")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=Path("runs/stargan-multi"), help="run folder")
    p.add_argument("--results", type=Path, help="results JSON (default: <out>/scores.json)")
    p.add_argument("--positions", type=Path, nargs="+", metavar="CHECKPOINT",
                   help="instead of training: print where attrs.shapes reads the recoloured held-out shapes of these "
                        "checkpoints (source quadrant by quadrant read)")
    args = p.parse_args()
    if args.positions:
        judge, test = gz.create_encoder("attrs.shapes"), gz.create_dataset("stargan.shapes", split="test")
        print(json.dumps({str(c): position_reads(gz.load(c), test, judge) for c in args.positions}))
        return
    if args.fractions != sorted(args.fractions) or not all(0 < f <= 1 for f in args.fractions):
        p.error(f"--fractions must be ascending in (0, 1], got {args.fractions}")
    args.out.mkdir(parents=True, exist_ok=True)
    args.results = args.results or args.out / "scores.json"
    configs = [read_run_config(path) for path in args.configs]
    judge = gz.create_encoder("attrs.shapes")
    report: dict[str, Any] = {
        "protocol": {
            "shapes": "held-out stargan.shapes test split (1,000), a random other colour per image, cond [labels_1, "
                      "zeros(c2_dim), 1, 0], read by attrs.shapes (stargan.shapes_translation)",
            "emoji": "held-out emoji.tones test split (11 emoji x 6 tones), each image to each of its 5 other tones, "
                     "cond [zeros(c_dim), tone, 0, 1]; tone: the nearest (L1) of the emoji's 6 renderings is the "
                     "target; target_l1: against the true rendering in the target tone",
            "mode": "eval; train_seconds: training only, scoring excluded"},
        "cpu": cpu_name(), "torch": torch.__version__, "threads": torch.get_num_threads(), "runs": []}

    def save() -> None:
        report["summary"] = summary([r for r in report["runs"] if r.get("curve")])
        write_result(report, args.results)

    for seed in args.seeds or [None]:  # seed by seed: both modes of the first seed come first
        for config in configs:
            report["runs"].append({})
            run_one(config, int(config.train.get("seed", 0)) if seed is None else seed, args, judge,
                    report["runs"][-1], save)
    save()
    print(json.dumps(report["summary"], indent=2))


if __name__ == "__main__":
    main()
