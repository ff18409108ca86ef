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
import numpy as np
import torch

# Not yet reachable through the registry (the only plugin imports left here): the captioned-data wrapper of the
# gan-cls plugin (one random caption per access, embedded once, and its wrong images), and skip-thought's
# vocabulary expansion.
from ganzoo_gan_cls.text import CaptionEmbeddings

import ganzoo_core as gz
from ganzoo_core.checkpoints import load
from ganzoo_core.data.shapes import parse_caption
from ganzoo_core.metrics.attributes import JUDGES, caption_consistency
from ganzoo_core.overrides import parse_overrides
from ganzoo_core.runconfig import RunConfig, command_defaults, read_run_config, validate_run_config
from ganzoo_core.train_cli import add_train_arguments, train_cfg_from_args
from ganzoo_core.training import TrainCfg, train
from ganzoo_core.visual import save_grid

BLOCKS = ("colour", "shape", "pos", "size")


def run_setting(path: Path, overrides: list[str]) -> tuple[RunConfig, TrainCfg]:
    """The run config at ``path`` (checked against the registry) and the ``TrainCfg`` that ``ganzoo train --config``
    builds from it; ``overrides`` are ``ganzoo train`` flags that win over the file (``--seed 1``)."""
    config = read_run_config(path)
    validate_run_config(config, sections=("train",))
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    parser.set_defaults(**command_defaults(config, "train", parser))
    return config, train_cfg_from_args(parser.parse_args(overrides))


def caption_accuracy(objective: Any, data: Any, *, n: int, seed: int, judge: Any) -> dict[str, Any]:
    """Per-block accuracy of ``n`` samples, each conditioned on the first caption of a data item (the first ``n``
    items), and ``both``: every block right at once (position and size are learnt first, so in practice colour and
    shape both right); eval mode, noise fixed by ``seed``, read by the attribute ``judge``."""
    n = min(n, len(data))
    captions = [data.captions_of(i)[0] for i in range(n)]
    text = data.embeddings[torch.from_numpy(np.asarray(data.offsets[:n], np.int64))]  # (n, D): each first caption
    was = objective.training
    objective.eval()
    with torch.no_grad():
        images = objective.sample(n, text_emb=text, seed=seed)
    objective.train(was)
    judge = judge.to(images.device)
    result = caption_consistency(judge, images, captions)
    truths, pred = [parse_caption(c) for c in captions], judge.describe(images)
    both = float(np.mean([all(p[b] == t[b] for b in BLOCKS) for p, t in zip(pred, truths)]))
    return {"n": n, **{b: result["per_block"][b] for b in BLOCKS}, "both": both, "all_blocks": result["all_blocks"]}


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
    # Not yet reachable through the registry: skip-thought's vocabulary expansion and its tokeniser.
    from ganzoo_skipthought_encoder import expand_vocabulary, trained_words, word_tokenize, word_vectors

    encoder = gz.create_encoder(name)
    if not hasattr(encoder, "word_index"):
        raise SystemExit(f"--expand-with needs a skip-thought encoder, got {name!r} ({type(encoder).__name__})")
    index = encoder.word_index()
    own = trained_words(encoder)
    new = sorted({w for c in captions for w in word_tokenize(c) if w not in index})
    words = [*own, *new]
    result = expand_vocabulary(encoder, words, word_vectors(gz.create_encoder(source), words))
    print(f"expanded {name}: {result.added} new words ({', '.join(new[:12])}{', ...' if len(new) > 12 else ''}), "
          f"map fitted on {result.shared} shared words of {source}", flush=True)
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
    train_data = CaptionEmbeddings(gz.create_dataset(f"shapes.{size}", n=n_images, split="train"), encoder,
                                   wrong_image=True, wrong_pick=args.wrong_image, seed=base.seed)
    test_data = CaptionEmbeddings(gz.create_dataset(f"shapes.{size}", n=n_images, split="test"), encoder,
                                  wrong_image=True, seed=base.seed + 1)
    torch.manual_seed(base.seed)
    objective = gz.create_objective(name, text_dim=text_dim, encoder=encoder_name, **overrides)
    judges = {j: gz.create_encoder(j) for j in args.judges}

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
    train_data = CaptionEmbeddings(gz.create_dataset(source, split="train", image_size=size), encoder,
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
    config, base = run_setting(args.config, [] if args.seed is None else ["--seed", str(args.seed)])
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
