"""GAN vs GAN-CLS vs GAN-INT-CLS on the captioned shapes, same budget and seed: colour / shape / position / size
accuracy of samples (eval mode) for held-out (test split) captions, judged by the core's shipped ``attrs.shapes``
classifier, with the untrained generator as the baseline; optionally an emoji run with held-out emoji names.

    HF_HUB_OFFLINE=1 .venv/bin/python plugins/gan-cls/scripts/evidence.py --eval-at 2000 4000 --out runs/gan_cls
    HF_HUB_OFFLINE=1 .venv/bin/python plugins/gan-cls/scripts/evidence.py --methods GAN-CLS --encoder minilm.l6_v2
    HF_HUB_OFFLINE=1 .venv/bin/python plugins/gan-cls/scripts/evidence.py --methods --emoji-steps 3000
    HF_HUB_OFFLINE=1 .venv/bin/python plugins/gan-cls/scripts/evidence.py --methods GAN-CLS \
        --encoder skipthought.austen --expand-with minilm.l6_v2

Each method trains ``gan_cls.<method>_32`` (official layout at 32×32) on ``shapes.32`` train captions embedded by
``--encoder`` (``text_dim`` follows it); ``--image-size 64`` trains ``gan_cls.<method>`` (the official 64×64 networks,
``--ngf`` / ``--ndf`` to narrow them) on ``shapes.64``. Training runs in chunks up to each ``--eval-at`` mark and
resumes exactly, so one run gives the accuracy curve (``--ema``: the EMA generator's too). ``results.json`` under
``--out`` is rewritten after every measurement; one caption grid per method (8 held-out captions × 8 noise vectors)
is written beside it. ``--emoji-steps`` trains GAN-INT-CLS on ``emoji.noto`` (32 px, names and CLDR keywords as
captions) and writes a grid of held-out names.
``--mismatch wrong_image`` uses the official code's mismatch pair (an image of another shape with the right caption);
``--wrong-text nearest`` the nearest caption of another shape in the batch as the wrong text; ``--wrong-image nearest``
(with ``--mismatch wrong_image``) a wrong image of another shape with the same colour, size and position;
``--mismatch both`` averages the paper's and the code's mismatch pairs.
``--ms 0.02`` adds the mode-seeking term to G's loss (the setting of ``gan_cls.cls_32_ms``, the one that holds 70%);
``--refine`` / ``--upsample nearest`` change G's output stages, ``--d-head projection`` D's text head, ``--r1`` adds
an R1 penalty on real pairs.
``--expand-with`` (skip-thought encoders only) first expands the encoder's vocabulary (models.md §7.3) to the
train captions' words, with word vectors from another registered encoder (each word embedded alone), since no
word2vec table is installed here.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from ganzoo_gan_cls.evaluate import caption_accuracy, shapes_data
from ganzoo_gan_cls.model import D_HEADS, MISMATCH, UPSAMPLE, WRONG_TEXT
from ganzoo_gan_cls.sampling import caption_grid, save_png
from ganzoo_gan_cls.text import WRONG_PICKS, CaptionEmbeddings, get_text_encoder

import ganzoo_core as gz
from ganzoo_core.checkpoints import load
from ganzoo_core.metrics.attributes import JUDGES
from ganzoo_core.schedules import ScheduleCfg
from ganzoo_core.training import TrainCfg, train

METHODS = {"GAN": "gan", "GAN-CLS": "cls", "GAN-INT": "int", "GAN-INT-CLS": "int_cls"}
BLOCKS = ("colour", "shape", "pos", "size")


def chunked_train(objective: Any, data: Any, out: Path, marks: list[int], args: argparse.Namespace,
                  measure: Any = None, on_mark: Any = None) -> list[dict[str, Any]]:
    """Train to each mark in turn (resume=True continues exactly) and call ``measure`` at each; ``on_mark(curve)``
    after each measurement (the caller saves the curve so far, so a stopped run keeps its marks)."""
    curve = []
    t0 = time.time()
    for mark in marks:
        result = train(objective, data, out, TrainCfg(steps=mark, batch_size=args.batch, seed=args.seed,
                                                      log_every=250, sample_every=0, checkpoint_every=0,
                                                      progress=False, tensorboard=False, resume=True,
                                                      schedule=args.schedule, ema=args.ema))
        if result.interrupted:
            raise SystemExit(f"stopped before the {mark}-step mark; run the same command again to resume")
        row = {"step": mark, "train_seconds": round(time.time() - t0, 1)}
        if measure is not None:
            row |= measure(result.checkpoint)
        curve.append(row)
        if on_mark is not None:
            on_mark(curve)
        print(f"  step {mark}: " + "  ".join(f"{k} {v:.2f}" for k, v in row.items() if k in BLOCKS + ("both",)),
              flush=True)
        if "ema" in row:
            print("    EMA G: " + "  ".join(f"{b} {row['ema'][b]:.2f}" for b in BLOCKS + ("both",)), flush=True)
        for judge, scores in row.get("by_judge", {}).items():
            print(f"    {judge}: " + "  ".join(f"{b} {scores[b]:.2f}" for b in BLOCKS + ("both",)), flush=True)
    return curve


def shapes_run(method: str, args: argparse.Namespace, train_data: Any, test_data: Any, text_dim: int,
               on_mark: Any = None) -> dict:
    suffix = "_32" if args.image_size == 32 else ""  # the 64×64 variants are the official sizes
    name = f"gan_cls.{'port_' if args.port else ''}{METHODS[method]}{suffix}"
    torch.manual_seed(args.seed)
    g_kwargs = {k: v for k, v in (("ngf", args.ngf), ("upsample", args.upsample), ("refine", args.refine)) if v}
    overrides: dict[str, Any] = {"generator_kwargs": g_kwargs} if g_kwargs else {}
    d_kwargs = {k: v for k, v in (("ndf", args.ndf), ("head", args.d_head)) if v}
    if d_kwargs:
        overrides["discriminator_kwargs"] = d_kwargs
    if args.real_label != 1.0:
        overrides["loss_kwargs"] = {"real_label": args.real_label}
    if args.r1:
        overrides["r1_gamma"] = args.r1
    if args.ms:
        overrides["ms_weight"] = args.ms
    objective = gz.create_objective(name, text_dim=text_dim, encoder=args.encoder, mismatch=args.mismatch,
                                    wrong_text=args.wrong_text, **overrides)
    judges = {j: gz.create_encoder(j) for j in args.judges}

    def measure(checkpoint: Path | None = None) -> dict[str, Any]:
        """The first judge's numbers at the top level, every judge's under ``by_judge``; with ``--ema`` the EMA
        generator's (loaded from ``checkpoint``) under ``ema``, read by the first judge."""
        scores = {j: caption_accuracy(objective, test_data, n=args.n_eval, seed=123, blocks=BLOCKS, judge=net)
                  for j, net in judges.items()}
        row = {**scores[args.judges[0]], "by_judge": scores}
        if args.ema and checkpoint is not None:
            averaged = load(checkpoint, ema=True)
            row["ema"] = caption_accuracy(averaged, test_data, n=args.n_eval, seed=123, blocks=BLOCKS,
                                          judge=judges[args.judges[0]])
        return row

    untrained = measure()
    print(f"{method} ({name}): untrained " + "  ".join(f"{b} {untrained[b]:.2f}" for b in BLOCKS), flush=True)

    def report(curve: list[dict[str, Any]]) -> dict[str, Any]:
        return {"objective": name, "overrides": overrides, "untrained": untrained, "curve": curve}

    curve = chunked_train(objective, train_data, args.out / method, args.eval_at, args, measure,
                          on_mark=None if on_mark is None else (lambda c: on_mark(report(c))))
    rows = torch.stack([test_data.embeddings[int(test_data.offsets[i])] for i in range(8)])
    save_png(caption_grid(objective, rows, n_noise=8, seed=0), args.out / f"{METHODS[method]}_grid.png", nrow=8)
    return {**report(curve), "grid_captions": [test_data.captions_of(i)[0] for i in range(8)]}


def expanded_skipthought(name: str, source: str, captions: list[str]) -> Any:
    """Skip-thought encoder ``name`` with its vocabulary expanded to the words of ``captions``: the linear map is
    fitted from ``source``'s one-word embeddings of its own words to its word tables."""
    from ganzoo_skipthought_encoder import expand_vocabulary, trained_words, word_tokenize, word_vectors

    encoder = gz.create_encoder(name)
    if not hasattr(encoder, "word_index"):
        raise SystemExit(f"--expand-with needs a skip-thought --encoder, got {name!r} ({type(encoder).__name__})")
    index = encoder.word_index()
    own = trained_words(encoder)
    new = sorted({w for c in captions for w in word_tokenize(c) if w not in index})
    words = [*own, *new]
    result = expand_vocabulary(encoder, words, word_vectors(gz.create_encoder(source), words))
    print(f"expanded {name}: {result.added} new words ({', '.join(new[:12])}{', ...' if len(new) > 12 else ''}), "
          f"map fitted on {result.shared} shared words of {source}", flush=True)
    return result.encoder


def emoji_run(args: argparse.Namespace, text_dim: int) -> dict:
    """GAN-INT-CLS on emoji.noto at 32 px; a grid of held-out (test split) emoji names, 8 noise vectors each."""
    encoder = get_text_encoder(args.encoder)
    train_data = CaptionEmbeddings(gz.create_dataset("emoji.noto", split="train", image_size=32), encoder,
                                   seed=args.seed)
    test_base = gz.create_dataset("emoji.noto", split="test", image_size=32)
    torch.manual_seed(args.seed)
    objective = gz.create_objective("gan_cls.int_cls_32", text_dim=text_dim, encoder=args.encoder)
    chunked_train(objective, train_data, args.out / "emoji", [args.emoji_steps], args)
    names = [test_base.caption(i)[0] for i in args.emoji_items]
    grid = caption_grid(objective, encoder.encode(names), n_noise=8, seed=0).detach()  # (k · 8, 3, 32, 32)
    truth = torch.stack([test_base[i]["image"] for i in args.emoji_items])  # (k, 3, 32, 32)
    # one row per name: the real held-out emoji, then 8 samples
    rows = torch.cat([truth[:, None], grid.reshape(len(names), 8, *grid.shape[1:])], dim=1).flatten(0, 1)
    path = args.out / "emoji_grid.png"
    save_png(rows, path, nrow=9)
    print(f"emoji grid for {names} -> {path}", flush=True)
    return {"steps": args.emoji_steps, "names": names, "grid": str(path)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--eval-at", type=int, nargs="+", default=[4000], help="steps at which to measure (ascending)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--encoder", default="bow.hashed", help="any registered text encoder (text_dim follows it)")
    p.add_argument("--expand-with", metavar="ENCODER",
                   help="expand a skip-thought --encoder's vocabulary to the train captions' words, word vectors "
                        "from this registered encoder")
    p.add_argument("--n-images", type=int, default=6000, help="shapes.32 images per split")
    p.add_argument("--n-eval", type=int, default=300, help="held-out captions judged")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, choices=(32, 64), default=32,
                   help="64: the 64×64 variants on shapes.64 (the judge reads them resized to 32)")
    p.add_argument("--port", action="store_true", help="the DCGAN-bodied port networks instead of the official")
    p.add_argument("--ngf", type=int, help="generator width (default: the variant's)")
    p.add_argument("--ndf", type=int, help="discriminator width (default: the variant's)")
    p.add_argument("--upsample", choices=UPSAMPLE, help="G's ×2 stages (default: the variant's, deconv)")
    p.add_argument("--refine", action="store_true", help="G with a hidden full-resolution stage before the image")
    p.add_argument("--d-head", choices=D_HEADS, help="D's text head (default: the variant's, concat)")
    p.add_argument("--r1", type=float, default=0.0, metavar="GAMMA", help="R1 penalty on real pairs (e.g. 1)")
    p.add_argument("--ms", type=float, default=0.0, metavar="LAMBDA",
                   help="mode-seeking weight in G's loss (0.02 as in gan_cls.cls_32_ms; 1 is too strong here)")
    p.add_argument("--judges", nargs="+", default=list(JUDGES),
                   help="attribute classifiers that read the samples (the first one's numbers are the headline)")
    p.add_argument("--methods", nargs="*", default=["GAN", "GAN-CLS", "GAN-INT-CLS"], choices=list(METHODS))
    p.add_argument("--emoji-steps", type=int, default=0, help="also train on emoji.noto and grid held-out names")
    p.add_argument("--emoji-items", type=int, nargs="+", default=[0, 40, 80, 120, 160, 200, 240, 280],
                   help="test-split emoji shown in the grid")
    p.add_argument("--mismatch", choices=MISMATCH, default="wrong_text",
                   help="GAN-CLS's mismatch pair: wrong_text (paper: real image, another caption), wrong_image "
                        "(official code: an image of another class, here another shape, with the right caption) or "
                        "both (averaged)")
    p.add_argument("--wrong-text", choices=WRONG_TEXT, default="roll",
                   help="wrong_text's caption: roll (paper: the batch shifted by one) or nearest (each image's most "
                        "similar caption of another class, here another shape)")
    p.add_argument("--wrong-image", choices=WRONG_PICKS, default="random",
                   help="with --mismatch wrong_image or both: random (official: any image of another shape) or nearest (another "
                        "shape, the same colour, size and position)")
    p.add_argument("--real-label", type=float, default=1.0,
                   help="D's target for real images (gan.bce real_label; 0.9: one-sided label smoothing)")
    p.add_argument("--ema", type=float, help="keep an EMA of G with this decay (e.g. 0.999) and judge it too")
    p.add_argument("--out", type=Path, default=Path("runs/gan_cls_evidence"))
    p.add_argument("--lr-schedule", choices=("constant", "linear"), default="constant",
                   help="linear: decay both learning rates to 0 from --decay-start to the last --eval-at mark")
    p.add_argument("--decay-start", type=int, help="linear: first step of the decay (default: half way)")
    args = p.parse_args()
    if args.eval_at != sorted(args.eval_at):
        p.error(f"--eval-at must be ascending, got {args.eval_at}")
    if args.lr_schedule != "constant" and len(args.eval_at) > 1:
        p.error("a decaying schedule spans the whole run: give one --eval-at mark with --lr-schedule linear")
    if args.wrong_image != "random" and args.mismatch == "wrong_text":
        p.error("--wrong-image picks the wrong image of --mismatch wrong_image (or both); give that too")
    args.schedule = ScheduleCfg(kind=args.lr_schedule, decay_start=args.decay_start)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.expand_with and args.emoji_steps:
        p.error("--expand-with covers the shapes runs; give --emoji-steps 0")
    encoder: Any = args.encoder
    if args.expand_with:
        base = gz.create_dataset(f"shapes.{args.image_size}", n=args.n_images, split="train")
        captions = [c for i in range(len(base)) for c in base.caption(i)]
        encoder = expanded_skipthought(args.encoder, args.expand_with, captions)
    text_dim = int(get_text_encoder(args.encoder).embed_dim)
    print(f"encoder: {args.encoder} ({text_dim}-d)", flush=True)
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "encoder": args.encoder,
                               "expanded_with": args.expand_with,
                               "text_dim": text_dim, "methods": {}}

    def save() -> None:
        (args.out / "results.json").write_text(json.dumps(results, indent=2))

    if args.methods:
        train_data = shapes_data("train", encoder, n=args.n_images, image_size=args.image_size, seed=args.seed,
                                 wrong_pick=args.wrong_image)
        test_data = shapes_data("test", encoder, n=args.n_images, image_size=args.image_size, seed=args.seed + 1)
        for method in args.methods:
            def save_run(run: dict[str, Any], method: str = method) -> None:
                results["methods"][method] = run
                save()

            results["methods"][method] = shapes_run(method, args, train_data, test_data, text_dim, on_mark=save_run)
            save()
    if args.emoji_steps:
        results["emoji"] = emoji_run(args, text_dim)
    save()


if __name__ == "__main__":
    main()
