"""The optimiser: timm's factory over weight-decay groups built with timm's rule.

`param_groups` asks `timm.optim.param_groups_weight_decay` which parameters skip weight decay (1-D tensors:
norms and biases; names a model lists in ``no_weight_decay()``; Swin's relative-position bias tables) for
each trained module (the model and, e.g., a distillation connector; a parameter shared between them counts
once) and returns two groups in a fixed order, decayed first. The order matters for reproducibility: the
clipped-gradient norm sums over parameters in group order, so it stays the order nascomp always used and
earlier runs reproduce bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import cast

import torch
from torch import nn

__all__ = ["NO_DECAY_PATTERNS", "param_groups", "make_optimizer"]

NO_DECAY_PATTERNS = ("*relative_position_bias_table*",)


def param_groups(modules: dict[str, nn.Module], weight_decay: float) -> list[dict]:
    """[decayed parameters, the rest] of every module, each trainable parameter once."""
    from timm.optim import param_groups_weight_decay

    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for module in modules.values():
        # torch types Module.__getattr__ as Tensor | Module; a model's no_weight_decay is a method returning parameter names
        named = cast("Callable[[], Iterable[str]]", module.no_weight_decay)() if hasattr(module, "no_weight_decay") else ()
        skip = [*named, *NO_DECAY_PATTERNS]
        # any non-zero value: with 0 timm returns a single group, which would reorder the parameters
        for group in param_groups_weight_decay(module, weight_decay or 1.0, no_weight_decay_list=skip):
            target = decay if group["weight_decay"] else no_decay
            for p in group["params"]:
                if id(p) not in seen:
                    seen.add(id(p))
                    target.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(modules: dict[str, nn.Module], name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """`timm.optim.create_optimizer_v2` over `param_groups` (``adamw`` is torch's AdamW with its default betas)."""
    from timm.optim import create_optimizer_v2

    return create_optimizer_v2(param_groups(modules, weight_decay), opt=name, lr=lr, weight_decay=weight_decay)
