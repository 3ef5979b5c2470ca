"""Count parameters and multiply-accumulates (MACs) of any PyTorch model by running it once.

The counter sits at the ATen dispatcher (a ``TorchDispatchMode``), below every Python-level
abstraction, so it sees what actually executes: matrix products from ``nn.Linear`` *and* from
functional ``q @ k.transpose()``, convolutions, and fused ``scaled_dot_product_attention`` kernels
(CPU flash, CUDA flash/efficient/cuDNN), which module-hook counters and fvcore miss.

Convention (the field's): one multiply-add = one MAC; FLOPs = 2 × MACs.
Element-wise work (norms, softmax, activations) is not in ``macs``; it is reported separately as
``elementwise`` element counts so cross-checks with tools that include it can be explained.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["CostReport", "MacCounter", "count_params", "count_module"]

aten = torch.ops.aten


def _prod(shape) -> int:
    return math.prod(int(s) for s in shape)


def _mm(args, out) -> int:  # (m, k) @ (k, n)
    a = args[0]
    return _prod(out.shape) * int(a.shape[-1])


def _addmm(args, out) -> int:  # bias + (m, k) @ (k, n)
    return _prod(out.shape) * int(args[1].shape[-1])


def _bmm(args, out) -> int:  # (b, m, k) @ (b, k, n)
    return _prod(out.shape) * int(args[0].shape[-1])


def _baddbmm(args, out) -> int:
    return _prod(out.shape) * int(args[1].shape[-1])


def _conv(args, out) -> int:
    weight, transposed = args[1], bool(args[6])  # weight.shape[1] is already per group
    kernel = _prod(weight.shape[2:])
    if transposed:  # each input element is scattered through C_out/groups * kernel weights
        return _prod(args[0].shape) * int(weight.shape[1]) * kernel
    return _prod(out.shape) * int(weight.shape[1]) * kernel


def _sdpa(args, out) -> int:
    q, k, v = args[0], args[1], args[2]  # (..., L, E), (..., S, E), (..., S, Ev)
    batch = _prod(q.shape[:-2])
    lq, e, s, ev = int(q.shape[-2]), int(q.shape[-1]), int(k.shape[-2]), int(v.shape[-1])
    return batch * lq * s * (e + ev)  # Q·Kᵀ and A·V


_MAC_RULES = {
    aten.mm.default: ("linear/matmul", _mm),
    aten.addmm.default: ("linear/matmul", _addmm),
    aten.bmm.default: ("batched matmul", _bmm),
    aten.baddbmm.default: ("batched matmul", _baddbmm),
    aten.convolution.default: ("convolution", _conv),
    aten._scaled_dot_product_flash_attention_for_cpu.default: ("fused attention", _sdpa),
    aten._scaled_dot_product_flash_attention.default: ("fused attention", _sdpa),
    aten._scaled_dot_product_efficient_attention.default: ("fused attention", _sdpa),
    aten._scaled_dot_product_cudnn_attention.default: ("fused attention", _sdpa),
}
for _name in ("_scaled_dot_product_fused_attention_overrideable",):
    if hasattr(aten, _name):
        _MAC_RULES[getattr(aten, _name).default] = ("fused attention", _sdpa)

_ELEMENTWISE = {
    "native_layer_norm": "norm",
    "native_batch_norm": "norm",
    "_native_batch_norm_legit_no_training": "norm",
    "native_group_norm": "norm",
    "_softmax": "softmax",
    "gelu": "activation",
    "relu": "activation",
    "silu": "activation",
    "hardswish": "activation",
    "sigmoid": "activation",
}


class MacCounter(TorchDispatchMode):
    """Accumulates MACs per category (and element counts of norm/softmax/activation ops) while active."""

    def __init__(self) -> None:
        super().__init__()
        self.macs: Counter[str] = Counter()
        self.elementwise: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        rule = _MAC_RULES.get(func)
        if rule is None and func.__name__.split(".")[0] not in _ELEMENTWISE:
            # Composite ops (linear, conv2d, matmul, einsum, SDPA front-end...) may reach us undecomposed
            # (inference mode); expand them so their parts come back through this mode and get counted.
            with self:
                out = func.decompose(*args, **kwargs)
            if out is not NotImplemented:
                return out
        out = func(*args, **kwargs)
        if rule is not None:
            category, formula = rule
            first = out[0] if isinstance(out, (tuple, list)) else out
            self.macs[category] += formula(args, first)
        else:
            kind = _ELEMENTWISE.get(func.__name__.split(".")[0])
            if kind is not None and isinstance(args[0], torch.Tensor):
                self.elementwise[kind] += args[0].numel()
        return out

    @property
    def total(self) -> int:
        return int(sum(self.macs.values()))


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Unique parameters (tied weights counted once)."""
    unique = {id(p): p for p in model.parameters() if p.requires_grad or not trainable_only}
    return int(sum(p.numel() for p in unique.values()))


@dataclass
class CostReport:
    params: int
    macs: int
    resolution: int
    in_chans: int
    batch: int = 1
    macs_by_category: dict = field(default_factory=dict)
    elementwise: dict = field(default_factory=dict)
    cross_check: list | None = None  # other counters' results (`nascomp.cost.crosscheck`), when asked for

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def to_dict(self) -> dict:
        return {
            "params": self.params,
            "macs": self.macs,
            "flops": self.flops,
            "gmacs": round(self.macs / 1e9, 4),
            "resolution": self.resolution,
            "in_chans": self.in_chans,
            "batch": self.batch,
            "convention": "MACs = multiply-accumulates (what papers call FLOPs); flops = 2 x MACs",
            "macs_by_category": dict(self.macs_by_category),
            "elementwise_elements": dict(self.elementwise),
            **({"cross_check": self.cross_check} if self.cross_check is not None else {}),
        }


@torch.inference_mode()
def count_module(model: nn.Module, resolution: int, in_chans: int = 3, batch: int = 1, device: str | torch.device = "cpu") -> CostReport:
    """Params and per-image MACs of one forward pass at ``resolution`` (eval mode, batch ``batch``)."""
    was_training = model.training
    model.eval()
    x = torch.randn(batch, in_chans, resolution, resolution, device=device)
    counter = MacCounter()
    try:
        with counter:
            model(x)
    finally:
        model.train(was_training)
    per_image = {k: v // batch for k, v in counter.macs.items()}
    return CostReport(
        params=count_params(model),
        macs=int(sum(per_image.values())),
        resolution=resolution,
        in_chans=in_chans,
        batch=batch,
        macs_by_category=per_image,
        elementwise={k: v // batch for k, v in counter.elementwise.items()},
    )
