"""Typed settings of each distillation method: ``distill(student, teacher, data, method=SRDConfig(kd_weight=0.5))``.

A config names its method and checks its values when it is made; fields left at ``None`` take the method's
defaults, so ``method="kd", options={"alpha": 0.5}`` and ``KDConfig(alpha=0.5)`` are the same run. No torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from nascomp.core.errors import NascompError

__all__ = [
    "DistillationConfig",
    "NoDistillationConfig",
    "KDConfig",
    "WeightDistillationConfig",
    "SRDConfig",
    "DISTILL_CONFIGS",
    "distill_method",
]


def _non_negative(name: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0):
        raise NascompError(f"{name} must be a finite number >= 0, got {value!r}")


def _temperature(value: Any) -> None:
    _non_negative("temperature", value)
    if value is not None and value <= 0:
        raise NascompError(f"temperature must be > 0, got {value!r}")


def _alpha(value: Any) -> None:
    _non_negative("alpha", value)
    if value is not None and value > 1:
        raise NascompError(f"alpha (the weight of the teacher's logits) must be in [0, 1], got {value!r}")


@dataclass(frozen=True, kw_only=True)
class DistillationConfig:
    """A distillation method's name (``DISTILLERS``) and its options."""

    method: ClassVar[str]

    def to_options(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True, kw_only=True)
class NoDistillationConfig(DistillationConfig):
    """Ground-truth loss only: the no-teacher control."""

    method: ClassVar[str] = "none"


@dataclass(frozen=True, kw_only=True)
class KDConfig(DistillationConfig):
    """Logit distillation (Hinton et al., 2015): ``alpha`` x teacher KL at ``temperature`` + (1 - alpha) x labels."""

    method: ClassVar[str] = "kd"
    alpha: float | None = None
    temperature: float | None = None

    def __post_init__(self) -> None:
        _alpha(self.alpha)
        _temperature(self.temperature)


@dataclass(frozen=True, kw_only=True)
class WeightDistillationConfig(KDConfig):
    """MiniViT's weight distillation (Zhang et al., CVPR 2022): logits plus attention (Q-K-V relations) and hidden-state
    relations between matched teacher and student layers."""

    method: ClassVar[str] = "minivit"
    qkv_weight: float | None = None
    hidden_weight: float | None = None
    relation_heads: int | None = None
    hidden_scale: float | None = None
    layer_pairs: str | Sequence[tuple[int, int]] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("qkv_weight", "hidden_weight", "hidden_scale"):
            _non_negative(name, getattr(self, name))
        if self.relation_heads is not None and (not isinstance(self.relation_heads, int) or self.relation_heads < 1):
            raise NascompError(f"relation_heads must be a positive integer, got {self.relation_heads!r}")


@dataclass(frozen=True, kw_only=True)
class SRDConfig(DistillationConfig):
    """SRD: the student's features, through a connector and the frozen teacher's classifier, must give the teacher's logits."""

    method: ClassVar[str] = "srd"
    srd_weight: float | None = None
    feature_weight: float | None = None
    truth_weight: float | None = None
    kd_weight: float | None = None
    temperature: float | None = None

    def __post_init__(self) -> None:
        for name in ("srd_weight", "feature_weight", "truth_weight", "kd_weight"):
            _non_negative(name, getattr(self, name))
        _temperature(self.temperature)


DISTILL_CONFIGS: dict[str, type[DistillationConfig]] = {
    c.method: c for c in (NoDistillationConfig, KDConfig, WeightDistillationConfig, SRDConfig)
}


def distill_method(method: str | DistillationConfig, options: Any = None) -> tuple[str, dict[str, Any]]:
    """(method name, options) from a name and options, or from a config (then ``options`` must be empty)."""
    if isinstance(method, DistillationConfig):
        if options:
            raise NascompError(f"give the options in {type(method).__name__}(...), not beside it as options / distill_options")
        return method.method, method.to_options()
    return method, dict(options or {})
