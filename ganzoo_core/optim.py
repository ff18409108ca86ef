"""``FusedAdam``: ``torch.optim.Adam(fused=True)`` that updates channels_last weights where they lie.

The fused CPU kernel takes contiguous tensors: it calls ``.contiguous()`` on every parameter, gradient and moment it
is given, so for a network converted to channels_last (``Policy(channels_last=True)``) each step copied every 4-d
weight, its gradient and both moments out and back (pix2pix's U-Net at batch 1: 64 ms of a 470 ms iteration).
Adam is elementwise, so the kernel may as well see each tensor through the permutation that makes it contiguous (for
a channels_last weight ``[O, I, kh, kw]``, the view ``[O, kh, kw, I]`` of the same memory): the same permutation
is applied to the parameter, its gradient and its moments, which share one layout, and the update lands in place.
A tensor whose companions lie otherwise is handed over as it is (the kernel copies it, as before).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def dense_order(t: Tensor) -> tuple[int, ...] | None:
    """The permutation of ``t``'s dimensions that makes it contiguous (dimensions by decreasing stride), or None when
    no permutation does (a tensor with gaps or overlaps) or it already is."""
    if t.is_contiguous():
        return None
    order = tuple(sorted(range(t.ndim), key=lambda d: (-t.stride(d), -t.shape[d])))
    return order if t.permute(order).is_contiguous() else None


class FusedAdam(torch.optim.Adam):
    """``torch.optim.Adam`` with ``fused=True`` (the other arguments as Adam's) whose fused step gets dense views
    of channels_last tensors instead of copies; the same update, to the bit (see the module docstring)."""

    def __init__(self, params: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fused", True)
        super().__init__(params, **kwargs)

    def _init_group(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor],
                    exp_avg_sqs: list[Tensor], max_exp_avg_sqs: list[Tensor], state_steps: list[Tensor]) -> bool:
        has_complex = super()._init_group(group, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps)
        if group["fused"]:
            lists = [params, grads, exp_avgs, exp_avg_sqs] + ([max_exp_avg_sqs] if group["amsgrad"] else [])
            for i, p in enumerate(params):
                order = dense_order(p)
                if order is None:
                    continue
                views = [lst[i].permute(order) for lst in lists]
                if all(v.is_contiguous() for v in views):  # one layout for all: the kernel copies none of them
                    for lst, v in zip(lists, views):
                        lst[i] = v
        return has_complex
