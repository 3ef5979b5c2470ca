"""Typed settings of each adaptation method, peft's way: ``adapt(model, LoraConfig(rank=4), data)``.

`KAdaptationConfig` is the one `nascomp.adaptation.kadaptation` applies; `LoraConfig` and `LokrConfig` are the
settings nascomp passes to peft (`nascomp.adaptation.peft_adapters.PeftOptions`); the probes take none. Each checks
its values when it is made, and ``adapt(model, "lora", options={"rank": 4})`` is the same run. No torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from nascomp.adaptation.kadaptation.config import LINEAR_TARGETS, QKV_PARTS, KAdaptationConfig
from nascomp.core.errors import NascompError

__all__ = [
    "KAdaptationConfig",
    "LoraConfig",
    "LokrConfig",
    "LinearProbeConfig",
    "FullFineTuneConfig",
    "AdaptationConfig",
    "adapt_method",
    "check_peft_options",
]


def check_peft_options(rank: Any = 1, alpha: Any = None, targets: Any = ("q", "v"), dropout: Any = 0.0, decompose_factor: Any = -1) -> None:
    """The LoRA / LoKr settings nascomp passes to peft, checked before peft (or torch) loads."""
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise NascompError(f"--rank must be an integer of at least 1, got {rank!r}")
    targets = tuple(targets)
    unknown = [t for t in targets if t not in (*QKV_PARTS, *LINEAR_TARGETS)]
    if unknown or not targets:
        raise NascompError(f"--targets {','.join(targets) or '(none)'}: choose from {', '.join((*QKV_PARTS, *LINEAR_TARGETS))}")
    if alpha is not None and not (isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and math.isfinite(alpha) and alpha > 0):
        raise NascompError(f"--lora-alpha must be a positive finite number, got {alpha!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise NascompError(f"--lora-dropout must lie in [0, 1), got {dropout!r}")
    if isinstance(decompose_factor, bool) or not isinstance(decompose_factor, int) or (decompose_factor < 1 and decompose_factor != -1):
        raise NascompError(f"decompose_factor must be a positive integer or -1 (near the square root), got {decompose_factor!r}")


@dataclass(frozen=True, kw_only=True)
class _Peft:
    rank: int = 1
    alpha: float | None = None  # default: equal to rank (scaling 1)
    targets: tuple[str, ...] = ("q", "v")

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        check_peft_options(**self.to_options())

    def to_options(self) -> dict[str, Any]:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in dataclasses.fields(self)}


@dataclass(frozen=True, kw_only=True)
class LoraConfig(_Peft):
    """LoRA through peft on the targeted attention / MLP layers (fused Q/K/V split when q, k or v is targeted)."""

    method: ClassVar[str] = "lora"
    dropout: float = 0.0


@dataclass(frozen=True, kw_only=True)
class LokrConfig(_Peft):
    """LoKr (Kronecker-product adapter) through peft; ``decompose_factor``: size of the left factor (-1: near sqrt(d))."""

    method: ClassVar[str] = "lokr"
    decompose_factor: int = -1


@dataclass(frozen=True, kw_only=True)
class LinearProbeConfig:
    """Only the new head trains."""

    method: ClassVar[str] = "linear"

    def to_options(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, kw_only=True)
class FullFineTuneConfig(LinearProbeConfig):
    """Every weight trains."""

    method: ClassVar[str] = "full"


AdaptationConfig = KAdaptationConfig | LoraConfig | LokrConfig | LinearProbeConfig | FullFineTuneConfig


def adapt_method(method: Any, options: Any = None) -> tuple[str, dict[str, Any]]:
    """(method name, options) from a name and options, or from a config (then ``options`` must be empty)."""
    if isinstance(method, KAdaptationConfig):
        config_options = method.to_dict()
    elif isinstance(method, (_Peft, LinearProbeConfig)):
        config_options = method.to_options()
    else:
        return method, dict(options or {})
    if options:
        raise NascompError(f"give the options in {type(method).__name__}(...), not beside it as options=")
    return method.method, config_options
