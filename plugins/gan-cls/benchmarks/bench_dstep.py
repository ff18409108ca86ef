"""D-step time with the real-image trunk shared between the matching and mismatching terms, against computed twice.

The D step of GAN-CLS scores (real, right text), (real, wrong text) and (fake, right text). With the paper's
pairing the first two share the trunk of the real images: one trunk pass and two text heads
(``share_trunk=True``, the default); ``share_trunk=False`` runs the full D on both. Both variants run side by side
in one process, alternating, on the same weights and batch; the fake batch is made once beforehand (the engine
reuses it for the G step, so it is not part of the D step's own cost). A D step is forward, backward and an Adam
step. Prints the median time of each and their ratio (target: at least 1.3×)::

    OMP_NUM_THREADS=2 .venv/bin/python plugins/gan-cls/benchmarks/bench_dstep.py --objective gan_cls.cls --batch 64
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import ganzoo_core as gz


def make(name: str, share: bool, device: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return gz.create_objective(name, share_trunk=share).to(device).train()


def d_step(objective: torch.nn.Module, opt: torch.optim.Optimizer, batch: dict, fake: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss, _ = objective.discriminator_loss(batch, fake)
    loss.backward()
    opt.step()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--objective", default="gan_cls.cls")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    shared, twice = make(args.objective, True, args.device), make(args.objective, False, args.device)
    batch = {k: v.to(args.device) for k, v in shared.example_batch(args.batch).items()}
    with torch.no_grad():
        fake = shared.networks["G"](torch.randn(args.batch, shared.nz, device=args.device), batch["text_emb"])
    opts = {id(o): torch.optim.Adam(o.networks["D"].parameters(), lr=2e-4, betas=(0.5, 0.999)) for o in (shared, twice)}
    times: dict[str, list[float]] = {"shared": [], "twice": []}
    for i in range(args.repeats + 2):
        for label, obj in (("shared", shared), ("twice", twice)):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            d_step(obj, opts[id(obj)], batch, fake)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            if i >= 2:  # two warm-up rounds
                times[label].append(time.perf_counter() - t0)
    a, b = statistics.median(times["shared"]), statistics.median(times["twice"])
    print(f"{args.objective} batch {args.batch} on {args.device}: D step shared trunk {a * 1e3:.1f} ms, "
          f"trunk twice {b * 1e3:.1f} ms, ratio {b / a:.2f}x")


if __name__ == "__main__":
    main()
