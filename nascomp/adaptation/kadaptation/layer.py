"""The maths of KAdaptation: shared slow weights Aᵢ and a Linear with ΔW = s · Σᵢ Aᵢ ⊗ Bᵢ added."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nascomp.adaptation.kadaptation.config import KAdaptationConfig
from nascomp.core.errors import NascompError

__all__ = ["SlowWeights", "KroneckerLinear"]


def _mirror_pairs(t: torch.Tensor, sign: float) -> None:
    """Make every odd term a (sign ·) copy of the even term before it, along dim 0."""
    with torch.no_grad():
        t[1::2].copy_(sign * t[0::2])


class SlowWeights(nn.Module):
    """The n slow weights Aᵢ (n×n) of one target, shared by all layers; rank-factorised if asked."""

    def __init__(self, n: int, rank: int | None, init: str, init_range: float):
        super().__init__()
        self.n, self.rank = n, rank
        if rank is None:
            self.weight = nn.Parameter(torch.empty(n, n, n).uniform_(-init_range, init_range))
            factors = [self.weight]
        else:
            self.left = nn.Parameter(torch.empty(n, n, rank).uniform_(-init_range, init_range))
            self.right = nn.Parameter(torch.empty(n, n, rank).uniform_(-init_range, init_range))
            factors = [self.left, self.right]
        if init == "paired":
            for f in factors:
                _mirror_pairs(f, 1.0)

    def forward(self) -> torch.Tensor:
        """All Aᵢ as one (n, n, n) tensor."""
        if self.rank is None:
            return self.weight
        return torch.einsum("iar,ibr->iab", self.left, self.right)


def _kron_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Σᵢ aᵢ ⊗ bᵢ for a: (m, n, n), b: (m, p, q) → (n·p, n·q)."""
    m, n, _ = a.shape
    _, p, q = b.shape
    return torch.einsum("iac,ibd->abcd", a, b).reshape(n * p, n * q)


class KroneckerLinear(nn.Module):
    """A frozen ``nn.Linear`` whose output row blocks ("parts", e.g. q and v of a fused qkv) get ΔW + bias.

    ``parts`` maps a target name to its (start, stop) output rows; ``slow`` maps a target name to the
    shared `SlowWeights`. The slow weights are *referenced*, not registered, so they are stored once,
    on the model root (see `apply_kadaptation`).
    """

    def __init__(self, base: nn.Linear, parts: dict[str, tuple[int, int]], slow: dict[str, SlowWeights], config: KAdaptationConfig):
        super().__init__()
        self.base = base
        self.parts = dict(parts)
        self.scale, self.init = config.scale, config.init
        self.delta_dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self._slow = {name: slow[name] for name in self.parts}  # a plain dict: not registered here
        n, r = config.n, config.rank
        d_in = base.in_features
        widths = {stop - start for start, stop in self.parts.values()}
        if len(widths) != 1:
            raise NascompError(f"KAdaptation parts {self.parts} must have equal widths")
        self.width = widths.pop()
        if self.width % n or d_in % n:
            raise NascompError(
                f"--kron-n {n} must divide the adapted layer's sizes ({self.width} out, {d_in} in); pick a divisor such as "
                f"{', '.join(str(k) for k in _divisors(math.gcd(self.width, d_in)) if 4 <= k <= 64) or '1'}"
            )
        self.fast_u = nn.ParameterDict()
        self.fast_v = nn.ParameterDict()
        for name in self.parts:
            self.fast_u[name] = nn.Parameter(torch.empty(n, self.width // n, r))
            self.fast_v[name] = nn.Parameter(torch.empty(n, d_in // n, r))
        self.adapter_bias = nn.Parameter(torch.zeros(self.width)) if config.bias else None
        self.reset_fast_weights()

    def reset_fast_weights(self) -> None:
        for name in self.parts:
            u, v = self.fast_u[name], self.fast_v[name]
            with torch.no_grad():
                if self.init == "zero":
                    u.zero_(), v.zero_()
                    continue
                for t in (u, v):  # glorot-uniform per factor, as the public code intends
                    bound = math.sqrt(6.0 / (t.shape[1] + t.shape[2]))
                    t.uniform_(-bound, bound)
                if self.init == "lora":
                    v.zero_()
                else:
                    _mirror_pairs(u, -1.0)
                    _mirror_pairs(v, 1.0)

    def delta_weight(self, name: str) -> torch.Tensor:
        """ΔW of one part, (width × d_in). Summed as even + odd terms so a mirrored init cancels exactly."""
        a = self._slow[name]()
        b = torch.einsum("ipr,iqr->ipq", self.fast_u[name], self.fast_v[name])
        return self.scale * (_kron_sum(a[0::2], b[0::2]) + _kron_sum(a[1::2], b[1::2]))

    def full_delta(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """ΔW and Δb over the whole output (zeros for parts that are not adapted)."""
        weight = self.base.weight
        delta = weight.new_zeros(weight.shape)
        adapter_bias = self.adapter_bias
        bias = weight.new_zeros(weight.shape[0]) if adapter_bias is not None else None
        for name, (start, stop) in self.parts.items():
            delta[start:stop] = self.delta_weight(name)
            if bias is not None and adapter_bias is not None:  # both or neither
                bias[start:stop] = adapter_bias
        return delta, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        delta, bias = self.full_delta()
        return self.base(x) + F.linear(x, self.delta_dropout(delta), bias)

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` computing base + ΔW (no dropout): the deployable layer."""
        delta, dbias = self.full_delta()
        base = self.base
        out = nn.Linear(
            base.in_features,
            base.out_features,
            bias=base.bias is not None or dbias is not None,
            device=base.weight.device,
            dtype=base.weight.dtype,
        )
        out.weight.copy_(base.weight + delta)
        if out.bias is not None:
            out.bias.copy_((base.bias if base.bias is not None else 0) + (dbias if dbias is not None else 0))
        out.weight.requires_grad_(base.weight.requires_grad)
        return out

    def extra_repr(self) -> str:
        n, _, r = next(iter(self.fast_u.values())).shape
        return f"parts={self.parts}, n={n}, rank={r}, scale={self.scale}, bias={self.adapter_bias is not None}"


def _divisors(k: int) -> list[int]:
    return [d for d in range(1, k + 1) if k % d == 0]
