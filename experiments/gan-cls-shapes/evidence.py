"""GAN-CLS experiments on the captioned shapes: colour / shape / position / size accuracy of samples (eval mode) for
held-out (test split) captions, judged by the core's shipped ``attrs.shapes`` classifier, with the untrained
generator as the baseline; and an emoji run with a grid of held-out emoji names.

    HF_HUB_OFFLINE=1 .venv/bin/python experiments/gan-cls-shapes/evidence.py shapes \
        --config experiments/gan-cls-shapes/config.toml --eval-at 2000 4000 6000 --out runs/gan-cls-shapes
    HF_HUB_OFFLINE=1 .venv/bin/python experiments/gan-cls-shapes/evidence.py shapes \
        --config experiments/gan-cls-shapes/config.toml --objective gan_cls.int_cls_32 --eval-at 2000 4000
    HF_HUB_OFFLINE=1 .venv/bin/python experiments/gan-cls-shapes/evidence.py emoji \
        --config experiments/gan-cls-emoji/config.toml --out runs/gan-cls-emoji

The objective (name and ``[set]``), batch size, seed, EMA and schedule come from ``--config``, as ``ganzoo train
--config`` reads them; ``--objective``, ``--set``, ``--data-set`` and ``--seed`` override the file as the same flags
of ``ganzoo train`` do. ``shapes`` trains on the ``shapes.<size>`` train split (``[data_set]`` ``n`` images, captions
embedded by ``[data_set] encoder``; ``text_dim`` follows it) and judges ``--n-eval`` held-out captions at each
``--eval-at`` mark (default: the config's ``steps``); training runs in chunks up to each mark and resumes exactly,
so one run gives the accuracy curve (with ``ema`` in the config, the EMA generator's too). ``results.json`` under
``--out`` is rewritten after every measurement; a caption grid (8 held-out captions × 8 noise vectors) is written
beside it. ``emoji`` trains the config's objective on its dataset (``emoji.noto``: names and CLDR keywords as
captions) for the config's ``steps`` and writes a grid of held-out names: the real emoji, then 8 samples.
``--wrong-image nearest`` makes the dataset's wrong images another shape with the same colour, size and position
(for ``mismatch = "wrong_image"`` or ``"both"``). ``--expand-with`` (skip-thought encoders only) first expands the
encoder's vocabulary (models.md §7.3) to the train captions' words, with word vectors from another registered
encoder (each word embedded alone), since no word2vec table is installed here.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import attrs
import torch

import ganzoo_core as gz
from ganzoo_core.checkpoints import load
from ganzoo_core.metrics.attributes import JUDGES
from ganzoo_core.overrides import parse_overrides
from ganzoo_core.runconfig import RunConfig, read_run_config, train_cfg_of
from ganzoo_core.training import TrainCfg, train
from ganzoo_core.visual import save_grid

BLOCKS = ("colour", "shape", "pos", "size")


def caption_grid(objective: Any, text: torch.Tensor, path: Path, n_noise: int = 8, seed: int = 0,
                 first: torch.Tensor | None = None) -> Path:
    """One row per caption, one column per noise vector (the same z in every row), in eval mode; ``first``: an image
    per row shown before the samples (the real emoji of a held-out name)."""
    g = objective.networks["G"]
    device = next(g.parameters()).device
    z = torch.randn(n_noise, g.cfg.nz, generator=gz.seeded_rng(seed)).to(device)
    was = g.training
    g.eval()
    with torch.no_grad():
        images = g(z.repeat(len(text), 1), text.to(device).repeat_interleave(n_noise, dim=0)).float().cpu()
    g.train(was)
    if first is not None:  # (rows, 1 + n_noise) cells
        images = torch.cat([first[:, None], images.reshape(len(text), n_noise, *images.shape[1:])], 1).flatten(0, 1)
    return save_grid(images, path, nrow=n_noise + (first is not None))


def chunked_train(objective: Any, data: Any, out: Path, marks: list[int], base: TrainCfg,
                  measure: Any = None, on_mark: Any = None) -> list[dict[str, Any]]:
    """Train to each mark in turn (resume=True continues exactly) and call ``measure`` at each; ``on_mark(curve)``
    after each measurement (the caller saves the curve so far, so a stopped run keeps its marks)."""
    curve = []
    t0 = time.time()
    for mark in marks:
        cfg = attrs.evolve(base, steps=mark, log_every=250, sample_every=0, checkpoint_every=0, progress=False,
                           tensorboard=False, resume=True)
        result = train(objective, data, out, cfg)
        if result.interrupted:
            raise SystemExit(f"stopped before the {mark}-step mark; run the same command again to resume")
        row = {"step": mark, "train_seconds": round(time.time() - t0, 1)}
        if measure is not None:
            row |= measure(result.checkpoint)
        curve.append(row)
        if on_mark is not None:
            on_mark(curve)
        print(f"  step {mark}: " + "  ".join(f"{k} {v:.2f}" for k, v in row.items() if k in (*BLOCKS, "both")),
              flush=True)
        if "ema" in row:
            print("    EMA G: " + "  ".join(f"{b} {row['ema'][b]:.2f}" for b in (*BLOCKS, "both")), flush=True)
        for judge, scores in row.get("by_judge", {}).items():
            print(f"    {judge}: " + "  ".join(f"{b} {scores[b]:.2f}" for b in (*BLOCKS, "both")), flush=True)
    return curve


def expanded_skipthought(name: str, source: str, captions: list[str]) -> Any:
    """Skip-thought encoder ``name`` with its vocabulary expanded to the words of ``captions``: the linear map is
    fitted from ``source``'s one-word embeddings of its own words to its word tables."""
    encoder = gz.create_encoder(name)
    if not hasattr(encoder, "expanded"):
        raise SystemExit(f"--expand-with needs a skip-thought encoder, got {name!r} ({type(encoder).__name__})")
    result = encoder.expanded(captions, gz.create_encoder(source))
    print(f"expanded {name}: {result.added} new words, map fitted on {result.shared} shared words of {source}",
          flush=True)
    return result.encoder


def setting(args: argparse.Namespace, config: RunConfig) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(objective name, objective overrides, dataset options): the config's, with the command line's on top."""
    name = args.objective or config.train["objective"]
    return (name, {**config.set, **parse_overrides(args.set)},
            {**config.data_set, **parse_overrides(args.data_set, option="--data-set")})


def shapes(args: argparse.Namespace, config: RunConfig, base: TrainCfg, results: dict[str, Any], save: Any) -> None:
    name, overrides, data = setting(args, config)
    encoder_name = data.get("encoder") or "bow.hashed"
    text_dim = int(gz.create_encoder(encoder_name).embed_dim)
    probe = gz.create_objective(name, text_dim=text_dim, encoder=encoder_name, **overrides)
    size = probe.image_shape[-1]
    n_images = int(data.get("n", 6000))
    encoder: Any = gz.create_encoder(encoder_name)
    if args.expand_with:
        base_data = gz.create_dataset(f"shapes.{size}", n=n_images, split="train")
        encoder = expanded_skipthought(encoder_name, args.expand_with,
                                       [c for i in range(len(base_data)) for c in base_data.caption(i)])
    train_data = gz.create_dataset("gan_cls.captions", base=f"shapes.{size}",
                                   base_kwargs={"n": n_images, "split": "train"}, encoder=encoder, wrong_image=True,
                                   wrong_pick=args.wrong_image, seed=base.seed)
    test_data = gz.create_dataset("gan_cls.captions", base=f"shapes.{size}",
                                  base_kwargs={"n": n_images, "split": "test"}, encoder=encoder, wrong_image=True,
                                  seed=base.seed + 1)
    torch.manual_seed(base.seed)
    objective = gz.create_objective(name, text_dim=text_dim, encoder=encoder_name, **overrides)
    judges = {j: gz.create_encoder(j) for j in args.judges}
    accuracy = gz.create_metric("gan_cls.caption_accuracy")

    def caption_accuracy(objective: Any, data: Any, *, n: int, seed: int, judge: Any) -> dict[str, Any]:
        return accuracy(objective, data, n=n, seed=seed, blocks=BLOCKS, judge=judge)

    def measure(checkpoint: Path | None = None) -> dict[str, Any]:
        """The first judge's numbers at the top level, every judge's under ``by_judge``; with an EMA the EMA
        generator's (loaded from ``checkpoint``) under ``ema``, read by the first judge."""
        scores = {j: caption_accuracy(objective, test_data, n=args.n_eval, seed=123, judge=net)
                  for j, net in judges.items()}
        row = {**scores[args.judges[0]], "by_judge": scores}
        if base.ema and checkpoint is not None:
            row["ema"] = caption_accuracy(load(checkpoint, ema=True), test_data, n=args.n_eval, seed=123,
                                          judge=judges[args.judges[0]])
        return row

    untrained = measure()
    print(f"{name}: untrained " + "  ".join(f"{b} {untrained[b]:.2f}" for b in BLOCKS), flush=True)
    results.update({"objective": name, "overrides": overrides, "encoder": encoder_name, "text_dim": text_dim,
                    "expanded_with": args.expand_with, "n_images": n_images, "untrained": untrained})

    def on_mark(curve: list[dict[str, Any]]) -> None:
        results["curve"] = curve
        save()

    chunked_train(objective, train_data, args.out, args.eval_at or [base.steps], base, measure, on_mark)
    rows = torch.stack([test_data.embeddings[int(test_data.offsets[i])] for i in range(8)])
    results["grid"] = str(caption_grid(objective, rows, args.out / "grid.png"))
    results["grid_captions"] = [test_data.captions_of(i)[0] for i in range(8)]


def emoji(args: argparse.Namespace, config: RunConfig, base: TrainCfg, results: dict[str, Any], save: Any) -> None:
    """The config's objective on its captioned dataset (emoji.noto); a grid of held-out (test split) names."""
    name, overrides, data = setting(args, config)
    encoder_name = data.get("encoder") or overrides.get("encoder") or "bow.hashed"
    encoder = gz.create_encoder(encoder_name)
    source = config.train.get("data") or "emoji.noto"
    size = int(data.get("image_size", 32))
    train_data = gz.create_dataset("gan_cls.captions", base=source,
                                   base_kwargs={"split": "train", "image_size": size}, encoder=encoder,
                                   seed=base.seed)
    test_base = gz.create_dataset(source, split="test", image_size=size)
    torch.manual_seed(base.seed)
    objective = gz.create_objective(name, **{"text_dim": int(encoder.embed_dim), "encoder": encoder_name,
                                             **overrides})
    chunked_train(objective, train_data, args.out, [base.steps], base)
    names = [test_base.caption(i)[0] for i in args.items]
    truth = torch.stack([test_base[i]["image"] for i in args.items])  # (k, 3, H, W)
    grid = caption_grid(objective, encoder.encode(names), args.out / "grid.png", first=truth)
    print(f"emoji grid for {names} -> {grid}", flush=True)
    results.update({"objective": name, "overrides": overrides, "encoder": encoder_name, "steps": base.steps,
                    "names": names, "grid": str(grid)})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("task", choices=("shapes", "emoji"))
    p.add_argument("--config", type=Path, required=True, help="the experiment's run config (config.toml)")
    p.add_argument("--objective", help="train this objective instead of the config's (its [set] still applies)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="objective config override, over the config's [set]")
    p.add_argument("--data-set", action="append", default=[], metavar="KEY=VALUE",
                   help="shapes: n (images per split) or encoder (any registered text encoder), over [data_set]")
    p.add_argument("--seed", type=int, help="the run's seed (default: the config's)")
    p.add_argument("--eval-at", type=int, nargs="+", help="shapes: steps at which to measure (ascending)")
    p.add_argument("--n-eval", type=int, default=300, help="shapes: held-out captions judged")
    p.add_argument("--judges", nargs="+", default=list(JUDGES),
                   help="shapes: attribute classifiers that read the samples (the first one's numbers are the "
                        "headline)")
    p.add_argument("--wrong-image", default="random",
                   help="shapes: random (official: any image of another shape) or nearest (another shape, the same "
                        "colour, size and position)")
    p.add_argument("--expand-with", metavar="ENCODER",
                   help="shapes: expand a skip-thought encoder's vocabulary to the train captions' words, word "
                        "vectors from this registered encoder")
    p.add_argument("--items", type=int, nargs="+", default=[0, 40, 80, 120, 160, 200, 240, 280],
                   help="emoji: test-split emoji shown in the grid")
    p.add_argument("--out", type=Path, help="run folder (default: runs/<the config's folder name>)")
    args = p.parse_args()
    if args.eval_at and args.eval_at != sorted(args.eval_at):
        p.error(f"--eval-at must be ascending, got {args.eval_at}")
    config = read_run_config(args.config)
    base = train_cfg_of(config) if args.seed is None else train_cfg_of(config, seed=args.seed)
    if base.schedule.kind != "constant" and len(args.eval_at or [base.steps]) > 1:
        p.error("a decaying schedule spans the whole run: give one --eval-at mark with it")
    args.out = args.out or Path("runs") / args.config.resolve().parent.name
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"config": str(args.config), "command": {k: str(v) for k, v in vars(args).items()},
                               "seed": base.seed, "batch_size": base.batch_size, "ema": base.ema}

    def save() -> None:
        (args.out / "results.json").write_text(json.dumps(results, indent=2))

    (shapes if args.task == "shapes" else emoji)(args, config, base, results, save)
    save()


if __name__ == "__main__":
    main()
