"""The horse/zebra judge: a small CNN that tells Animal-MNIST horses (0) from zebras (1) at 32×32, used to score
translations (``plugins/cyclegan/scripts/train_judge.py`` trains it once; the weights ship in ``weights/``)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from ganzoo_core.errors import GanzooError, ShapeError

WEIGHTS = Path(__file__).resolve().parent / "weights" / "horse_zebra_judge.safetensors"
CLASSES = ("horse", "zebra")


class HorseZebraJudge(nn.Module):
    """conv ▸ pool ▸ conv ▸ pool ▸ conv ▸ global mean ▸ linear: (B, 1 or 3, 32, 32) in [-1, 1] → 2 logits."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2),  # (B, w, 16, 16)
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2),  # (B, 2w, 8, 8)
            nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.BatchNorm2d(4 * w), nn.ReLU(),  # (B, 4w, 8, 8)
        )
        self.head = nn.Linear(4 * w, 2)

    def forward(self, images: Tensor) -> Tensor:
        if images.ndim != 4 or images.shape[1] not in (1, 3) or tuple(images.shape[-2:]) != (32, 32):
            raise ShapeError(f"the horse/zebra judge expects images (B, 1 or 3, 32, 32), got {tuple(images.shape)}")
        x = images.float().mean(1, keepdim=True)  # RGB → grey: the domains are grey silhouettes
        return self.head(self.body(x).mean((2, 3)))  # (B, 4w) → (B, 2)

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        """Class index per image: 0 horse, 1 zebra."""
        return self.forward(images).argmax(1)


def load_judge(path: str | Path = WEIGHTS, device: torch.device | str = "cpu") -> HorseZebraJudge:
    """The trained judge in eval mode, frozen."""
    path = Path(path)
    if not path.is_file():
        raise GanzooError(f"judge weights {str(path)!r} are missing; train them with "
                          "'.venv/bin/python plugins/cyclegan/scripts/train_judge.py'")
    judge = HorseZebraJudge()
    judge.load_state_dict(load_file(str(path)))
    return judge.to(device).eval().requires_grad_(False)
