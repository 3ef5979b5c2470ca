"""MiniViT's weight distillation: prediction logits plus Q/K/V self-attention and hidden-state relations
between paired student and teacher layers."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from nascomp.core.errors import NascompError
from nascomp.distillation.kd import LogitDistillation
from nascomp.distillation.losses import hidden_relation_loss, qkv_relation_loss
from nascomp.distillation.registry import register_distiller
from nascomp.distillation.taps import ActivationTap
from nascomp.models.structure import transformer_stages

__all__ = ["WeightDistillation", "default_layer_pairs", "parse_layer_pairs"]


def _shifted(block: nn.Module) -> bool:
    return any(getattr(block, "shift_size", (0,)))


def default_layer_pairs(student: nn.Module, teacher: nn.Module) -> list[tuple[int, int]]:
    """(student layer, teacher layer) pairs: every second student layer of each stage (the shifted-window
    layers of Swin; a one-block stage's only layer), each with the teacher layer of the same stage that
    ends at the same relative depth and has the same window shift. For Mini-Swin-T <- Swin-B this gives
    MiniViT's lists: student 1,3,5,7,9,11 with teacher 1,3,9,15,21,23."""
    s_stages, t_stages = transformer_stages(student), transformer_stages(teacher)
    if len(s_stages) != len(t_stages):
        raise NascompError(f"student has {len(s_stages)} stages and teacher {len(t_stages)}; pass --layer-pairs S:T,...")
    pairs, s_offset, t_offset = [], 0, 0
    for s_blocks, t_blocks in zip(s_stages, t_stages):
        ds, dt = len(s_blocks), len(t_blocks)
        for p in range(1, ds, 2) if ds > 1 else [0]:
            q = min(dt - 1, max(0, round((p + 1) * dt / ds) - 1))
            candidates = [c for c in (q, q - 1, q + 1) if 0 <= c < dt and _shifted(t_blocks[c]) == _shifted(s_blocks[p])]
            if candidates:
                pairs.append((s_offset + p, t_offset + candidates[0]))
        s_offset, t_offset = s_offset + ds, t_offset + dt
    return pairs


def parse_layer_pairs(text: str) -> list[tuple[int, int]]:
    """'1:1,3:3' -> [(1, 1), (3, 3)] (student:teacher global layer indices)."""
    try:
        pairs = [tuple(int(x) for x in item.split(":")) for item in text.split(",") if item.strip()]
    except ValueError:
        pairs = []
    if not pairs or any(len(p) != 2 for p in pairs):
        raise NascompError(f"--layer-pairs {text!r}: expected STUDENT:TEACHER layer indices, e.g. 1:1,3:3,11:23")
    return pairs  # type: ignore[return-value]  # every tuple has two ints: checked just above


@register_distiller("minivit")
class WeightDistillation(LogitDistillation):
    """MiniViT's weight distillation: ``prediction + qkv_weight * L_attn + hidden_weight * L_hddn``.

    Defaults are the released Mini-Swin commands: alpha 0, T 1, qkv_weight 1, hidden_weight 0.1, one
    relation head, hidden relations scaled by 49; layer pairs from `default_layer_pairs`.
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module | None,
        alpha: float = 0.0,
        temperature: float = 1.0,
        qkv_weight: float = 1.0,
        hidden_weight: float = 0.1,
        relation_heads: int = 1,
        hidden_scale: float = 49.0,
        layer_pairs: Sequence[tuple[int, int]] | str | None = None,
    ):
        super().__init__(student, teacher, alpha, temperature)
        assert teacher is not None  # Distiller.__init__ refuses a missing teacher (needs_teacher)
        self.qkv_weight, self.hidden_weight = qkv_weight, hidden_weight
        self.relation_heads, self.hidden_scale = relation_heads, hidden_scale
        if isinstance(layer_pairs, str):
            layer_pairs = parse_layer_pairs(layer_pairs)
        self.layer_pairs = [tuple(p) for p in (layer_pairs or default_layer_pairs(student, teacher))]
        if not self.layer_pairs:
            raise NascompError("no layer pairs to distill; pass --layer-pairs S:T,...")
        s_layers, t_layers = [s for s, _ in self.layer_pairs], [t for _, t in self.layer_pairs]
        use_qkv, use_hidden = qkv_weight > 0, hidden_weight > 0
        self._student_tap = ActivationTap(student, s_layers if use_qkv else (), s_layers if use_hidden else ())
        self._teacher_tap = ActivationTap(teacher, t_layers if use_qkv else (), t_layers if use_hidden else ())

    def forward(self, student, images, targets, ctx):
        with self._teacher_tap.record() as t_tap:
            teacher_logits = self.teacher_forward(images)
        with self._student_tap.record() as s_tap:
            student_logits = student(images)
        loss, parts = self.prediction_loss(student_logits, teacher_logits, targets, ctx)
        if self.qkv_weight > 0:
            attn = qkv_relation_loss(
                [s_tap.qkv[s] for s, _ in self.layer_pairs], [t_tap.qkv[t] for _, t in self.layer_pairs], self.relation_heads
            )
            loss, parts["qkv_relation"] = loss + self.qkv_weight * attn, attn.item()
        if self.hidden_weight > 0:
            hidden = hidden_relation_loss(
                [s_tap.hidden[s] for s, _ in self.layer_pairs], [t_tap.hidden[t] for _, t in self.layer_pairs], self.hidden_scale
            )
            loss, parts["hidden_relation"] = loss + self.hidden_weight * hidden, hidden.item()
        return loss, parts

    def describe(self) -> dict:
        return {
            **super().describe(),
            "qkv_weight": self.qkv_weight,
            "hidden_weight": self.hidden_weight,
            "relation_heads": self.relation_heads,
            "hidden_scale": self.hidden_scale,
            "layer_pairs": [list(p) for p in self.layer_pairs],
        }

    def close(self) -> None:
        self._student_tap.remove()
        self._teacher_tap.remove()
