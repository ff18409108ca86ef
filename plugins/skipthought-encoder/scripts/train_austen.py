"""Train the small uni-skip model on Jane Austen's novels with the ganzoo engine and ship its encoder.

    OMP_NUM_THREADS=2 .venv/bin/python plugins/skipthought-encoder/scripts/train_austen.py --steps 400

Writes ``ganzoo_skipthought_encoder/weights/austen_uni.safetensors`` (the encoder with its word list; loaded by
``gz.create_encoder("skipthought.austen")``) and prints held-out perplexity and next-sentence ranking of the trained
model next to the untrained one (same seed) and a bag-of-words baseline. Needs the corpus (scripts/fetch_austen.sh).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from ganzoo_skipthought_encoder.evaluate import heldout_report
from ganzoo_skipthought_encoder.model import WEIGHTS_DIR
from safetensors.torch import save_file

import ganzoo_core as gz
from ganzoo_core.training import TrainCfg, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR / "austen_uni.safetensors")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    objective = gz.create_objective("skipthought.uni_small", corpus="austen.novels", lr=args.lr)
    data, test = gz.create_dataset("skipthought.triples"), gz.create_dataset("skipthought.triples", split="test")
    before = heldout_report(objective, test)
    print("untrained:", json.dumps(before))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainCfg(steps=args.steps, batch_size=args.batch_size, seed=args.seed, log_every=100, sample_every=0,
                       checkpoint_every=0, n_samples=8, progress=False, tensorboard=False)
        train(objective, data, tmp, cfg, on_log=lambda row: print(
            f"step {int(row['step'])}  xent {row['loss_E']:.3f}  {row['it_per_s']:.2f} it/s", flush=True))
    after = heldout_report(objective, test)
    print("trained:  ", json.dumps(after), f"({time.perf_counter() - t0:.0f} s of training)")
    encoder = objective.encoder
    meta = {"steps": str(args.steps), "lr": str(args.lr), "batch_size": str(args.batch_size), "corpus": "austen.novels",
            "heldout": json.dumps({"untrained": before, "trained": after})}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}, str(args.out), meta)
    print("wrote", args.out, f"({args.out.stat().st_size / 1e6:.2f} MB)")
    for s, n in zip(["Emma was very happy.", "He did not answer."], objective.decode_next(
            ["Emma was very happy.", "He did not answer."])):
        print(f"{s!r} → {n!r}")


if __name__ == "__main__":
    main()
