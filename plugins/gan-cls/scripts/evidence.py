"""GAN vs GAN-CLS vs GAN-INT-CLS on the captioned shapes, same budget: colour / shape / both accuracy of samples for
held-out (test split) captions, judged by the core's shipped ``attrs.shapes`` classifier, with the untrained
generator as the baseline. The text encoder is the core's ``bow.hashed`` when registered, else this plugin's
``HashedBow`` fallback (the same idea: hashed words and bigrams, 512-d).

    OMP_NUM_THREADS=2 .venv/bin/python plugins/gan-cls/scripts/evidence.py --steps 1500 --out runs/gan_cls_evidence

Writes ``results.json`` and one caption-grid PNG per method under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from ganzoo_gan_cls.evaluate import caption_accuracy, shapes_data
from ganzoo_gan_cls.sampling import caption_grid, save_png

import ganzoo_core as gz
from ganzoo_core.training import TrainCfg, train

METHODS = {"GAN": "gan", "GAN-CLS": "cls", "GAN-INT-CLS": "int_cls"}


def run(method: str, args: argparse.Namespace, train_data, test_data) -> dict:  # type: ignore[no-untyped-def]
    name = f"gan_cls.{'port_' if args.port else ''}{METHODS[method]}_32"
    torch.manual_seed(args.seed)
    objective = gz.create_objective(name, generator_kwargs={"ngf": args.width}, discriminator_kwargs={"ndf": args.width})
    before = caption_accuracy(objective, test_data, n=args.n_eval, seed=123)
    t0 = time.time()
    train(objective, train_data, args.out / method, TrainCfg(steps=args.steps, batch_size=args.batch, seed=args.seed,
          log_every=max(1, args.steps // 10), sample_every=0, checkpoint_every=0, progress=False, tensorboard=False))
    after = caption_accuracy(objective, test_data, n=args.n_eval, seed=123)
    rows = torch.stack([test_data.embeddings[int(test_data.offsets[i])] for i in range(8)])
    save_png(caption_grid(objective, rows, n_noise=8, seed=0), args.out / f"{METHODS[method]}_grid.png", nrow=8)
    return {"objective": name, "untrained": before, "trained": after, "train_seconds": round(time.time() - t0, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--width", type=int, default=32, help="ngf = ndf of the 32×32 networks")
    p.add_argument("--n-images", type=int, default=5000, help="shapes.32 images (train 90%, test 10%)")
    p.add_argument("--n-eval", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--port", action="store_true", help="the aelnouby DCGAN-bodied networks instead of the official")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--out", type=Path, default=Path("runs/gan_cls_evidence"))
    args = p.parse_args()
    encoder = "bow.hashed"
    print(f"encoder: {encoder} ({'registered' if gz.is_encoder(encoder) else 'plugin fallback HashedBow'})")
    train_data = shapes_data("train", encoder, n=args.n_images, seed=args.seed)
    test_data = shapes_data("test", encoder, n=args.n_images, seed=args.seed + 1)
    results = {}
    for method in args.methods:
        results[method] = run(method, args, train_data, test_data)
        r = results[method]
        print(f"{method:<12} colour {r['trained']['colour']:.2f} shape {r['trained']['shape']:.2f} "
              f"both {r['trained']['both']:.2f}   (untrained {r['untrained']['colour']:.2f} / "
              f"{r['untrained']['shape']:.2f} / {r['untrained']['both']:.2f}; {r['train_seconds']} s)", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                       "encoder": encoder, "results": results}, indent=2))


if __name__ == "__main__":
    main()
