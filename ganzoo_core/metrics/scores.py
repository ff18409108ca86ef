"""Sample-quality scores computed from feature vectors or class probabilities (plain functions, no networks).

Every function takes 2-D tensors, rows are samples, and computes in float64 on the CPU. The formulas, in words:

- **FID** (Heusel et al. 2017): fit a Gaussian (mean μ, covariance Σ) to each feature set; the score is the
  Fréchet distance between the two Gaussians, ``‖μ₁ − μ₂‖² + Tr Σ₁ + Tr Σ₂ − 2 Tr (Σ₁ Σ₂)^½``.
- **KID** (Bińkowski et al. 2018): the unbiased estimate of the squared maximum mean discrepancy with the cubic
  polynomial kernel ``k(x, y) = (x·y / d + 1)³`` (``d`` the feature dimension), averaged over random subsets.
- **Inception Score** (Salimans et al. 2016): per split, the exponential of the mean over samples of
  ``KL(p(y|x) ‖ p(y))``, where ``p(y)`` is the split's mean class distribution; reported as mean and std over splits.
- **Precision / recall** (Kynkäänniemi et al. 2019): each point of a set gets a ball reaching its k-th nearest
  neighbour in its own set; the union of the balls estimates the set's manifold. Precision is the fraction of
  generated points inside the real manifold, recall the fraction of real points inside the generated manifold.
- **Conditional accuracy**: the fraction of samples a classifier assigns to the class (or attributes) the
  generator was asked for.
"""

from __future__ import annotations

from typing import Literal

import attrs
import torch
from torch import Tensor

from ganzoo_core.errors import GanzooError, ShapeError

# -- helpers -------------------------------------------------------------------------------------------------------


def _as_matrix(x: Tensor, what: str, min_rows: int = 1) -> Tensor:
    """``x`` as a float64 CPU matrix, after checking it is 2-D, finite and has at least ``min_rows`` rows."""
    if not isinstance(x, Tensor) or x.ndim != 2:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ShapeError(f"{what} must be a 2-D tensor (N, D), got {shape}; flatten the features first")
    if x.shape[0] < min_rows:
        raise GanzooError(f"{what} has {x.shape[0]} rows, need at least {min_rows}; use more samples")
    x = x.detach().to("cpu", torch.float64)
    if not torch.isfinite(x).all():
        raise GanzooError(f"{what} holds NaN or inf; check the images and the feature extractor")
    return x


def _same_dim(a: Tensor, b: Tensor) -> None:
    if a.shape[1] != b.shape[1]:
        raise ShapeError(f"feature sets differ in dimension ({a.shape[1]} vs {b.shape[1]}); use one extractor for both")


@attrs.frozen
class MeanStd:
    """A score averaged over subsets or splits, with its standard deviation across them."""

    mean: float
    std: float

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std}


# -- FID -----------------------------------------------------------------------------------------------------------


def gaussian_stats(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean (D) and unbiased covariance (D, D) of ``features`` (N, D), in float64."""
    x = _as_matrix(features, "features", min_rows=2)
    mu = x.mean(0)
    centred = x - mu
    return mu, centred.T @ centred / (x.shape[0] - 1)


def _psd_sqrt(sigma: Tensor) -> Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix (negative round-off clipped to 0)."""
    values, vectors = torch.linalg.eigh((sigma + sigma.T) / 2)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def trace_sqrt_product(sigma1: Tensor, sigma2: Tensor) -> float:
    """``Tr (Σ₁ Σ₂)^½`` for covariances Σ₁, Σ₂, through a symmetric eigenproblem.

    ``Σ₁ Σ₂ = A B`` with ``A = Σ₁^½`` and ``B = Σ₁^½ Σ₂``, and ``AB`` has the same eigenvalues as
    ``BA = Σ₁^½ Σ₂ Σ₁^½``, which is symmetric positive semi-definite; the trace of the square root is the sum of the
    square roots of those eigenvalues. This holds for singular covariances too (fewer samples than dimensions, dead
    features), where a general matrix square root of ``Σ₁ Σ₂`` is ill-conditioned or complex.
    """
    root1 = _psd_sqrt(sigma1.to(torch.float64))
    middle = root1 @ sigma2.to(torch.float64) @ root1
    values = torch.linalg.eigvalsh((middle + middle.T) / 2)
    return float(values.clamp_min(0).sqrt().sum())


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂): ``‖μ₁ − μ₂‖² + Tr Σ₁ + Tr Σ₂ − 2 Tr (Σ₁ Σ₂)^½``."""
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.numel(), mu1.numel()):
        raise ShapeError(
            f"Gaussian statistics do not match: means {tuple(mu1.shape)} / {tuple(mu2.shape)}, covariances "
            f"{tuple(sigma1.shape)} / {tuple(sigma2.shape)}; compute both with the same extractor"
        )
    mu1, mu2 = mu1.to(torch.float64), mu2.to(torch.float64)
    diff = float((mu1 - mu2).square().sum())
    traces = float(torch.trace(sigma1.to(torch.float64)) + torch.trace(sigma2.to(torch.float64)))
    return max(diff + traces - 2 * trace_sqrt_product(sigma1, sigma2), 0.0)


def fid(real: Tensor, fake: Tensor) -> float:
    """FID between two feature sets (N₁, D) and (N₂, D): the Fréchet distance of Gaussians fitted to each."""
    _same_dim(_as_matrix(real, "real features"), _as_matrix(fake, "fake features"))
    return frechet_distance(*gaussian_stats(real), *gaussian_stats(fake))


# -- KID -----------------------------------------------------------------------------------------------------------


def polynomial_kernel(x: Tensor, y: Tensor) -> Tensor:
    """The KID kernel ``k(x, y) = (x·y / d + 1)³`` between all rows of ``x`` and ``y`` (d = feature dimension)."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def mmd2_unbiased(x: Tensor, y: Tensor) -> float:
    """Unbiased squared MMD with the cubic polynomial kernel between sets ``x`` (m, D) and ``y`` (n, D).

    The mean of k over distinct pairs within ``x``, plus the same within ``y``, minus twice the mean of k over all
    pairs across the sets (the diagonal terms k(xᵢ, xᵢ) are left out, which removes the bias).
    """
    x, y = _as_matrix(x, "real features", 2), _as_matrix(y, "fake features", 2)
    _same_dim(x, y)
    m, n = x.shape[0], y.shape[0]
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within_x = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    within_y = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(within_x + within_y - 2 * kxy.mean())


def kid(real: Tensor, fake: Tensor, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> MeanStd:
    """KID: ``mmd2_unbiased`` on ``subsets`` random subsets of ``min(subset_size, N₁, N₂)`` rows of each set
    (drawn without replacement, seeded), as mean and standard deviation over the subsets."""
    real, fake = _as_matrix(real, "real features", 2), _as_matrix(fake, "fake features", 2)
    _same_dim(real, fake)
    if subsets < 1:
        raise GanzooError(f"KID needs at least one subset, got subsets={subsets}")
    size = min(subset_size, real.shape[0], fake.shape[0])
    if size < 2:
        raise GanzooError(f"KID subsets need at least 2 rows, got subset_size={subset_size}")
    gen = torch.Generator().manual_seed(seed)
    values = torch.tensor([
        mmd2_unbiased(real[torch.randperm(real.shape[0], generator=gen)[:size]],
                      fake[torch.randperm(fake.shape[0], generator=gen)[:size]])
        for _ in range(subsets)
    ], dtype=torch.float64)
    return MeanStd(float(values.mean()), float(values.std(unbiased=False)))


# -- Inception Score -----------------------------------------------------------------------------------------------


def _check_probs(probs: Tensor) -> Tensor:
    p = _as_matrix(probs, "class probabilities")
    if (p < -1e-6).any() or not torch.allclose(p.sum(1), torch.ones(p.shape[0], dtype=p.dtype), atol=1e-3):
        raise GanzooError("class probabilities must be non-negative rows summing to 1; apply softmax to logits first")
    return p.clamp_min(0)


def inception_score(probs: Tensor, *, splits: int = 10) -> MeanStd:
    """Inception Score of class probabilities ``probs`` (N, C): per split, ``exp(mean_x KL(p(y|x) ‖ p(y)))`` with
    ``p(y)`` the split's mean prediction; mean and std over ``splits`` equal consecutive splits."""
    p = _check_probs(probs)
    if not 1 <= splits <= p.shape[0]:
        raise GanzooError(f"cannot split {p.shape[0]} samples into {splits} splits; use 1 to {p.shape[0]} splits")
    scores = []
    for part in torch.tensor_split(p, splits):
        marginal = part.mean(0, keepdim=True)
        kl = torch.special.xlogy(part, part) - torch.special.xlogy(part, marginal)  # 0·log 0 = 0
        scores.append(torch.exp(kl.sum(1).mean()))
    values = torch.stack(scores)
    return MeanStd(float(values.mean()), float(values.std(unbiased=False)))


# -- precision / recall --------------------------------------------------------------------------------------------


def knn_radii(features: Tensor, k: int = 3, chunk: int = 2048) -> Tensor:
    """Distance from every row to its k-th nearest other row of the same set (itself excluded)."""
    x = _as_matrix(features, "features", min_rows=k + 1)
    radii = [torch.cdist(part, x).kthvalue(k + 1, dim=1).values for part in x.split(chunk)]  # +1: the point itself
    return torch.cat(radii)


def manifold_coverage(points: Tensor, support: Tensor, radii: Tensor, chunk: int = 2048) -> float:
    """Fraction of ``points`` within ``radii[j]`` of some row ``j`` of ``support``."""
    inside = [(torch.cdist(part, support) <= radii).any(1) for part in points.split(chunk)]
    return float(torch.cat(inside).double().mean())


def precision_recall(real: Tensor, fake: Tensor, *, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-th-nearest-neighbour balls (k = 3)."""
    real, fake = _as_matrix(real, "real features", k + 1), _as_matrix(fake, "fake features", k + 1)
    _same_dim(real, fake)
    precision = manifold_coverage(fake, real, knn_radii(real, k))
    recall = manifold_coverage(real, fake, knn_radii(fake, k))
    return precision, recall


# -- conditional accuracy ------------------------------------------------------------------------------------------


def conditional_accuracy(scores: Tensor, targets: Tensor, *, threshold: float = 0.5,
                         reduce: Literal["all", "mean"] = "all") -> float:
    """The fraction of samples a classifier puts in the class (or attributes) they were generated for.

    - Classes: ``scores`` (N, C) probabilities or logits and ``targets`` (N,) class indices; a sample counts when
      its arg-max class is its target.
    - Attributes: ``scores`` (N, A) per-attribute probabilities and ``targets`` (N, A) of 0/1; an attribute is
      predicted on when its score exceeds ``threshold``. ``reduce="all"`` counts a sample only when every attribute
      is right; ``"mean"`` is the mean per-attribute accuracy.
    """
    if scores.ndim != 2 or targets.shape[0] != scores.shape[0]:
        raise ShapeError(f"scores (N, C) and targets (N,) or (N, A) must agree, got {tuple(scores.shape)} and "
                         f"{tuple(targets.shape)}")
    scores, targets = scores.detach().cpu(), targets.detach().cpu()
    if targets.ndim == 1:
        return float((scores.argmax(1) == targets.long()).double().mean())
    if targets.shape != scores.shape:
        raise ShapeError(f"attribute targets {tuple(targets.shape)} must match scores {tuple(scores.shape)}")
    right = (scores > threshold) == targets.bool()
    if reduce not in ("all", "mean"):
        raise GanzooError(f"reduce must be 'all' or 'mean', got {reduce!r}")
    return float((right.all(1) if reduce == "all" else right).double().mean())


__all__ = [
    "MeanStd", "conditional_accuracy", "fid", "frechet_distance", "gaussian_stats", "inception_score", "kid",
    "knn_radii", "manifold_coverage", "mmd2_unbiased", "polynomial_kernel", "precision_recall",
    "trace_sqrt_product",
]
