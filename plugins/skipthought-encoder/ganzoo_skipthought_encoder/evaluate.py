"""Held-out measures of a skip-thought objective: decoder perplexity and next-sentence ranking.

- ``perplexity``: exp of the mean cross-entropy per predicted token (words and <eos>) of both decoders on held-out
  (previous, current, next) triples: what the objective minimises, on sentences it never saw.
- ``next_rank1``: for each held-out current sentence, its true next sentence and ``k − 1`` other held-out sentences
  are scored by the next-sentence decoder's log-likelihood given the sentence vector; the fraction where the true
  next sentence scores best (chance: 1/k). Candidates are length-normalised (mean log-likelihood per token).
- ``bow_rank1``: the same ranking by a bag-of-words baseline, cosine similarity of word-count vectors of the current
  sentence and each candidate.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ganzoo_skipthought_encoder.model import PAD_ID, SentenceTriples, SkipThoughtObjective, lengths_of


def _rows(dataset: SentenceTriples, n: int) -> list[int]:
    step = max(1, len(dataset) // n)
    return list(range(0, len(dataset), step))[:n]


def _stack(dataset: SentenceTriples, rows: list[int], key: str) -> Tensor:
    return torch.stack([dataset[i][key] for i in rows])


@torch.no_grad()
def perplexity(objective: SkipThoughtObjective, dataset: SentenceTriples, n: int = 512, batch_size: int = 128) -> float:
    objective.eval()
    rows, total, count = _rows(dataset, n), 0.0, 0
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        batch = {k: _stack(dataset, chunk, k) for k in ("prev", "cur", "next")}
        context = objective._context(batch["cur"])
        for name, key in (("decoder_prev", "prev"), ("decoder_next", "next")):
            nll, tokens = objective.decoder_nll(name, batch[key], context)
            total, count = total + float(nll.sum()), count + int(tokens.sum())
    return math.exp(total / count)


@torch.no_grad()
def _next_scores(objective: SkipThoughtObjective, cur: Tensor, candidates: Tensor) -> Tensor:
    """How much more likely each candidate (B, K, T) is as the next sentence given cur (B, T) than given the
    average context of the batch: log p(c | ctx(cur)) − log p(c | mean ctx), per token, (B, K). The difference
    (a pointwise mutual information) removes what the decoder prefers anyway (short, frequent sentences), so only
    what the sentence vector tells about its neighbour ranks the candidates."""
    b, k, t = candidates.shape
    ctx = objective._context(cur)  # (B, ctx)
    flat = candidates.reshape(b * k, t)  # (B, K, T) → (B·K, T)
    nll, tokens = objective.decoder_nll("decoder_next", flat, ctx.repeat_interleave(k, dim=0))
    base, _ = objective.decoder_nll("decoder_next", flat, ctx.mean(0, keepdim=True).expand(b * k, -1))
    return ((base - nll) / tokens).view(b, k)


def _bow(ids: Tensor, vocab_size: int) -> Tensor:
    counts = torch.zeros(ids.shape[0], vocab_size)
    counts.scatter_add_(1, ids, torch.ones_like(ids, dtype=torch.float))
    counts[:, PAD_ID] = 0
    return torch.nn.functional.normalize(counts, dim=1)


def ranking(objective: SkipThoughtObjective, dataset: SentenceTriples, n: int = 200, k: int = 10,
            seed: int = 0) -> dict[str, float]:
    """Rank-1 accuracy of the true next sentence among ``k`` candidates: decoder vs bag-of-words vs chance."""
    objective.eval()
    rows = _rows(dataset, n)
    gen = torch.Generator().manual_seed(seed)
    cur, nxt = _stack(dataset, rows, "cur"), _stack(dataset, rows, "next")
    others = torch.randint(0, len(dataset), (len(rows), k - 1), generator=gen)
    distractors = torch.stack([torch.stack([dataset[int(j)]["next"] for j in row]) for row in others])
    candidates = torch.cat([nxt[:, None], distractors], dim=1)  # (n, k, T): the true next sentence first
    lengths_of(candidates.flatten(0, 1), "candidates")
    decoder = _next_scores(objective, cur, candidates)
    v = objective.encoder.cfg.vocab_size
    bow = torch.einsum("bd,bkd->bk", _bow(cur, v), _bow(candidates.flatten(0, 1), v).view(len(rows), k, v))
    return {"next_rank1": float((decoder.argmax(1) == 0).float().mean()),
            "bow_rank1": float((bow.argmax(1) == 0).float().mean()), "chance": 1.0 / k}


def heldout_report(objective: SkipThoughtObjective, dataset: SentenceTriples, **kwargs: Any) -> dict[str, float]:
    return {"perplexity": perplexity(objective, dataset), **ranking(objective, dataset, **kwargs)}
