"""Train the horse/zebra judge once and write ganzoo_cyclegan/weights/horse_zebra_judge.safetensors.

    OMP_NUM_THREADS=2 .venv/bin/python plugins/cyclegan/scripts/train_judge.py

Animal-MNIST train horses and zebras at 32×32 (random shifts of up to 2 pixels and horizontal flips), Adam 1e-3,
batch 64, 400 steps; the test accuracy on the 200 held-out test images is printed and stored in the file's metadata.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from ganzoo_cyclegan.judge import WEIGHTS, HorseZebraJudge
from safetensors.torch import save_file

import ganzoo_core as gz


def domains(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    data = gz.create_dataset("cyclegan.horse2zebra", split=split, channels=1)
    a, b = data.domain("A"), data.domain("B")
    return torch.cat([a, b]), torch.cat([torch.zeros(len(a)), torch.ones(len(b))]).long()


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    flip = torch.rand(len(x), generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
    return torch.roll(F.pad(x, (2, 2, 2, 2), value=-1.0), (dy, dx), (2, 3))[..., 2:-2, 2:-2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_flush_denormal(True)  # near-zero losses give denormal gradients, very slow on CPUs
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    x, y = domains("train")
    x_test, y_test = domains("test")
    judge = HorseZebraJudge()
    opt = torch.optim.Adam(judge.parameters(), lr=1e-3)
    for step in range(args.steps):
        idx = torch.randint(len(x), (64,), generator=gen)
        loss = F.cross_entropy(judge(augment(x[idx], gen)), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            print(f"step {step} loss {loss.item():.4f}")
    judge.eval()
    accuracy = float((judge.predict(x_test) == y_test).float().mean())
    print(f"test accuracy {accuracy:.4f} on {len(y_test)} held-out images")
    WEIGHTS.parent.mkdir(exist_ok=True)
    save_file({k: v.contiguous() for k, v in judge.state_dict().items()}, str(WEIGHTS),
              metadata={"test_accuracy": f"{accuracy:.4f}", "steps": str(args.steps), "seed": str(args.seed)})
    print(f"wrote {WEIGHTS}")


if __name__ == "__main__":
    main()
