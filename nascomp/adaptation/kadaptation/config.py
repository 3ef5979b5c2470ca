"""What KAdaptation adapts and how (`KAdaptationConfig`), and the names of the layers it can target."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import ClassVar

from nascomp.core.errors import NascompError

__all__ = ["KAdaptationConfig", "QKV_PARTS", "LINEAR_TARGETS", "SLOW_WEIGHTS_ATTR", "INITS"]

QKV_PARTS = ("q", "k", "v")
# Module-name suffixes each non-qkv target adapts (timm ViT/DeiT/Swin naming).
LINEAR_TARGETS = {"proj": "attn.proj", "fc1": "mlp.fc1", "fc2": "mlp.fc2"}
SLOW_WEIGHTS_ATTR = "kadaptation_slow"  # where the shared slow weights live on the adapted model
INITS = ("paired", "lora", "zero")


@dataclass
class KAdaptationConfig:
    """What to adapt and how. Defaults are the paper's ViT-B/32 setting (n = 32, rank 1, Q and V)."""

    method: ClassVar[str] = "kadaptation"  # what `nascomp.adapt` runs when given this config

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
        for name in ("scale", "slow_init"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise NascompError(f"KAdaptation {name} must be a positive finite number, got {value!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["targets"] = list(self.targets)
        return d
