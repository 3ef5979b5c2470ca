"""KAdaptation: parameter-efficient fine-tuning with a sum of Kronecker products (PEViT, AAAI'23).

For a frozen weight W (d_out × d_in) the update is

    ΔW = s · Σᵢ Aᵢ ⊗ Bᵢ,   i = 1..n,   Aᵢ ∈ ℝ^{n×n},   Bᵢ = uᵢ vᵢᵀ ∈ ℝ^{(d_out/n)×(d_in/n)} of rank r.

The *slow* weights Aᵢ are shared by every adapted layer (one set per target: q, v, ...) and may themselves
be rank-1 factorised (Aᵢ = aᵢ bᵢᵀ, the paper's setting); the *fast* weights uᵢ, vᵢ belong to one layer.
A learnable per-layer bias is added to every adapted output, as in the public code. Because Aᵢ is n×n
whatever the layer width, one slow set serves all Swin stages.

Initialisation. The public code zero-initialises both fast factors, so ΔW and every gradient that
reaches it stay zero for the whole run (research/compress.md B2.1). LoRA-style init (one factor zero)
fixes training but still leaves uᵢ and Aᵢ without gradient on the first step. The default here,
``init="paired"``, draws every tensor at random and makes term 2j+1 the mirror image of term 2j
(Aₒ = Aₑ, uₒ = −uₑ, vₒ = vₑ): the pair cancels exactly, so ΔW = 0 at the start, yet each tensor
receives a non-zero gradient immediately and the pair separates after one step.

Layout follows peft: `KAdaptationConfig` (what to adapt), `SlowWeights` and `KroneckerLinear` (the maths),
`apply_kadaptation` / `merge_kadaptation` (injection into and removal from a timm model).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nascomp.errors import NascompError

__all__ = [
    "KAdaptationConfig",
    "SlowWeights",
    "KroneckerLinear",
    "QKV_PARTS",
    "LINEAR_TARGETS",
    "INITS",
    "SLOW_WEIGHTS_ATTR",
    "apply_kadaptation",
    "merge_kadaptation",
    "kadaptation_layers",
    "find_targets",
]

QKV_PARTS = ("q", "k", "v")
# Module-name suffixes each non-qkv target adapts (timm ViT/DeiT/Swin naming).
LINEAR_TARGETS = {"proj": "attn.proj", "fc1": "mlp.fc1", "fc2": "mlp.fc2"}
SLOW_WEIGHTS_ATTR = "kadaptation_slow"  # where the shared slow weights live on the adapted model
INITS = ("paired", "lora", "zero")


@dataclass
class KAdaptationConfig:
    """What to adapt and how. Defaults are the paper's ViT-B/32 setting (n = 32, rank 1, Q and V)."""

    n: int = 32  # Kronecker terms; also the side of each slow weight Aᵢ
    rank: int = 1  # rank r of each fast weight Bᵢ = uᵢvᵢᵀ
    targets: tuple[str, ...] = ("q", "v")  # q, k, v (parts of a fused attn.qkv), proj, fc1, fc2
    slow_rank: int | None = 1  # Aᵢ = aᵢbᵢᵀ with this rank; None = full n×n Aᵢ
    scale: float = 160.0  # s; the public code's lora_attn_alpha / lora_attn_dim · 5
    bias: bool = True  # learnable per-layer bias added to every adapted output
    dropout: float = 0.0  # dropout on the ΔW matrix itself (the public code uses 0.5)
    init: str = "paired"  # paired | lora | zero (zero reproduces the public code: ΔW never trains)
    slow_init: float = 0.01  # slow factors ~ U(−slow_init, slow_init), as in the public code

    def __post_init__(self) -> None:
        self.targets = tuple(self.targets)
        unknown = [t for t in self.targets if t not in (*QKV_PARTS, *LINEAR_TARGETS)]
        if unknown or not self.targets:
            raise NascompError(f"KAdaptation targets {list(self.targets)}: choose from {', '.join((*QKV_PARTS, *LINEAR_TARGETS))}")
        if self.n < 1 or self.rank < 1 or (self.slow_rank is not None and self.slow_rank < 1):
            raise NascompError("KAdaptation n, rank and slow rank must be positive (slow rank 0 means full-rank slow weights)")
        if self.init not in INITS:
            raise NascompError(f"KAdaptation init {self.init!r}: choose from {', '.join(INITS)}")
        if self.init == "paired" and self.n % 2:
            raise NascompError(f"--kron-n {self.n} is odd; the paired init needs an even number of terms (or use --kron-init lora)")
        if not 0.0 <= self.dropout < 1.0:
            raise NascompError("KAdaptation dropout must be in [0, 1)")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["targets"] = list(self.targets)
        return d


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
        bias = weight.new_zeros(weight.shape[0]) if self.adapter_bias is not None else None
        for name, (start, stop) in self.parts.items():
            delta[start:stop] = self.delta_weight(name)
            if bias is not None:
                bias[start:stop] = self.adapter_bias
        return delta, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        delta, bias = self.full_delta()
        return self.base(x) + F.linear(x, self.delta_dropout(delta), bias)

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` computing base + ΔW (no dropout): the deployable layer."""
        delta, dbias = self.full_delta()
        base = self.base
        out = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None or dbias is not None,
                        device=base.weight.device, dtype=base.weight.dtype)
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


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def find_targets(model: nn.Module, targets: tuple[str, ...]) -> dict[str, dict[str, tuple[int, int]]]:
    """Module name → {target: (start, stop) output rows} for every Linear the targets select.

    q/k/v select thirds of fused ``qkv`` Linears (timm ViT/DeiT/Swin store [q; k; v] along the output);
    proj, fc1 and fc2 select ``attn.proj``, ``mlp.fc1`` and ``mlp.fc2`` whole.
    """
    found: dict[str, dict[str, tuple[int, int]]] = {}
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        if name.split(".")[-1] == "qkv":
            width = module.out_features // 3
            parts = {t: (i * width, (i + 1) * width) for i, t in enumerate(QKV_PARTS) if t in targets}
            if parts and module.out_features % 3 == 0:
                found[name] = parts
        for t, suffix in LINEAR_TARGETS.items():
            if t in targets and (name == suffix or name.endswith("." + suffix)):
                found[name] = {t: (0, module.out_features)}
    return found


def apply_kadaptation(model: nn.Module, config: KAdaptationConfig) -> nn.Module:
    """Replace the targeted Linears of ``model`` (in place) with `KroneckerLinear`s; returns the model.

    The shared slow weights are registered as ``model.kadaptation_slow`` (one `SlowWeights` per target).
    Parameters are not frozen here: the caller decides what trains.
    """
    if hasattr(model, SLOW_WEIGHTS_ATTR):
        raise NascompError("model already carries KAdaptation; merge it first")
    found = find_targets(model, config.targets)
    if not found:
        raise NascompError(
            f"no layer matches KAdaptation targets {list(config.targets)}: expected timm ViT/DeiT/Swin blocks with a fused "
            "attn.qkv Linear (targets q,k,v), attn.proj or mlp.fc1/fc2"
        )
    used = sorted({t for parts in found.values() for t in parts}, key=(*QKV_PARTS, *LINEAR_TARGETS).index)
    missing = [t for t in config.targets if t not in used]
    if missing:
        raise NascompError(f"KAdaptation targets {missing} match no layer of this model")
    ref = next(model.parameters())
    slow = nn.ModuleDict({t: SlowWeights(config.n, config.slow_rank, config.init, config.slow_init) for t in used}).to(ref.device)
    setattr(model, SLOW_WEIGHTS_ATTR, slow)
    for name, parts in found.items():
        layer = KroneckerLinear(model.get_submodule(name), parts, dict(slow.items()), config).to(ref.device)
        _replace(model, name, layer)
    return model


def kadaptation_layers(model: nn.Module) -> dict[str, KroneckerLinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, KroneckerLinear)}


@torch.no_grad()
def merge_kadaptation(model: nn.Module) -> list[str]:
    """Fold every ΔW (and adapter bias) into plain Linears and drop the slow weights, in place.

    Returns the names of Linears that had no bias before and gained one (their model spec must add it).
    """
    gained = []
    for name, layer in kadaptation_layers(model).items():
        if layer.base.bias is None and layer.adapter_bias is not None:
            gained.append(name)
        _replace(model, name, layer.merged())
    if hasattr(model, SLOW_WEIGHTS_ATTR):
        delattr(model, SLOW_WEIGHTS_ATTR)
    return gained
