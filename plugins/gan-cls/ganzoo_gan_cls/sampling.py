"""Sampling grids of a trained text-to-image objective: captions × noise, and the paper's text interpolation.

All functions run the generator in eval mode (and restore the previous mode), under ``torch.no_grad``, and return
images in [-1, 1] as ``(rows · columns, C, H, W)`` in row-major order; ``save_png`` writes such a grid.

- ``caption_grid(objective, text_emb, n_noise, seed)``: one row per caption, one column per noise vector; column j
  uses the same z in every row, so a column shows what the text changes with the "style" held fixed.
- ``interpolation_grid(objective, text_a, text_b, steps, n_noise, seed)``: one row per noise vector, columns
  walking from caption a to caption b, t = (1 − α)·t_a + α·t_b with α = 0 … 1 (Reed et al., Figure 8).
- ``sample_from_text(objective, captions, encoder_name, n_per_caption, seed)``: encode captions with a registered
  encoder (the CLI's ``--text``) and return their caption grid.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor, nn

import ganzoo_core as gz
from ganzoo_core.errors import GanzooError, ShapeError
from ganzoo_core.visual import save_grid


@contextmanager
def _eval(module: nn.Module) -> Iterator[None]:
    was = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was)


def _generator(objective: nn.Module) -> tuple[nn.Module, int, int, torch.device]:
    g = objective.networks["G"]
    return g, int(g.cfg.nz), int(g.cfg.text_dim), next(g.parameters()).device


def _check_texts(text: Tensor, text_dim: int, what: str) -> Tensor:
    if text.ndim == 1:
        text = text[None]
    if text.ndim != 2 or text.shape[1] != text_dim or len(text) == 0:
        raise ShapeError(f"{what} must be (N, {text_dim}) text embeddings (the generator's text_dim), "
                         f"got {tuple(text.shape)}")
    return text


def caption_grid(objective: nn.Module, text_emb: Tensor, n_noise: int = 8, seed: int = 0) -> Tensor:
    """(captions · n_noise, C, H, W): row i is caption i, column j the j-th noise vector (shared across rows)."""
    g, nz, text_dim, device = _generator(objective)
    text = _check_texts(text_emb, text_dim, "text_emb").to(device)
    if n_noise < 1:
        raise GanzooError(f"n_noise must be at least 1, got {n_noise}")
    z = torch.randn(n_noise, nz, generator=gz.seeded_rng(seed)).to(device)  # (n_noise, nz)
    rows = len(text)
    with _eval(g):
        return g(z.repeat(rows, 1), text.repeat_interleave(n_noise, dim=0))  # (rows · n_noise, C, H, W)


def interpolation_grid(objective: nn.Module, text_a: Tensor, text_b: Tensor, steps: int = 8, n_noise: int = 4,
                       seed: int = 0) -> Tensor:
    """(n_noise · steps, C, H, W): row i keeps noise z_i; column k conditions on (1 − α_k)·t_a + α_k·t_b."""
    g, nz, text_dim, device = _generator(objective)
    a = _check_texts(text_a, text_dim, "text_a")[:1].to(device)
    b = _check_texts(text_b, text_dim, "text_b")[:1].to(device)
    if steps < 2:
        raise GanzooError(f"an interpolation needs at least 2 steps (its two ends), got {steps}")
    alpha = torch.linspace(0, 1, steps, device=device)[:, None]  # (steps, 1)
    texts = (1 - alpha) * a + alpha * b  # (steps, text_dim)
    z = torch.randn(n_noise, nz, generator=gz.seeded_rng(seed)).to(device)
    with _eval(g):
        return g(z.repeat_interleave(steps, dim=0), texts.repeat(n_noise, 1))  # (n_noise · steps, C, H, W)


def sample_from_text(objective: nn.Module, captions: Sequence[str], encoder_name: str | None = None,
                     n_per_caption: int = 8, seed: int = 0, *, encoder_weights: str | Path | None = None) -> Tensor:
    """Encode ``captions`` with the text encoder the objective records (``cfg.encoder`` and ``cfg.encoder_kwargs``),
    or ``encoder_name`` instead, with ``encoder_weights`` loaded into it (needed when its weights are a file, such as
    a released char-CNN-RNN), and return their caption grid, ``(len(captions) · n_per_caption, C, H, W)``. The
    encoder's size must be the generator's (``ganzoo_core.text.text_encoder_for``)."""
    from ganzoo_core.text import text_encoder_for

    if isinstance(captions, str) or not captions:
        raise GanzooError("captions must be a non-empty list of strings")
    encoder = text_encoder_for(objective, encoder_name, weights=encoder_weights)
    text_dim = _generator(objective)[2]
    if encoder.embed_dim != text_dim:
        raise ShapeError(f"encoder {encoder_name or objective.cfg.encoder!r} gives {encoder.embed_dim}-d embeddings "
                         f"but the generator takes {text_dim}-d; use the encoder the model was trained with")
    return caption_grid(objective, encoder.encode(list(captions)).float(), n_per_caption, seed)


def save_png(images: Tensor, path: str | Path, nrow: int) -> Path:
    """Write a grid with ``nrow`` images per row (``n_noise`` or ``steps`` of the functions above)."""
    return save_grid(images.detach().float().cpu(), path, nrow=nrow)


__all__ = ["caption_grid", "interpolation_grid", "sample_from_text", "save_png"]
