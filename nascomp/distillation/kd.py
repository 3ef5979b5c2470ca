"""Knowledge distillation from the teacher's prediction logits (MiniViT's prediction loss)."""

from __future__ import annotations

import torch
from torch import nn

from nascomp.core.errors import NascompError
from nascomp.distillation.base import Distiller
from nascomp.distillation.losses import soft_cross_entropy
from nascomp.distillation.registry import register_distiller

__all__ = ["LogitDistillation"]


@register_distiller("kd")
class LogitDistillation(Distiller):
    """``(1 - alpha) * soft_cross_entropy(z_s, z_t, T) + alpha * CE(z_s, y)`` (MiniViT's prediction loss;
    ``alpha = 0``, i.e. no ground truth, and ``T = 1`` are the released Mini-Swin settings)."""

    def __init__(self, student: nn.Module, teacher: nn.Module | None, alpha: float = 0.0, temperature: float = 1.0):
        super().__init__(student, teacher)
        if not 0.0 <= alpha <= 1.0 or temperature <= 0:
            raise NascompError(f"--alpha must be in [0, 1] and --temperature > 0 (got {alpha}, {temperature})")
        self.alpha, self.temperature = alpha, temperature

    def prediction_loss(self, student_logits, teacher_logits, targets, ctx) -> tuple[torch.Tensor, dict[str, float]]:
        soft = soft_cross_entropy(student_logits, teacher_logits, self.temperature)
        loss, parts = (1 - self.alpha) * soft, {"soft": soft.item()}
        if self.alpha > 0:
            truth = ctx.criterion(student_logits, targets)
            loss, parts["truth"] = loss + self.alpha * truth, truth.item()
        return loss, parts

    def forward(self, student, images, targets, ctx):
        return self.prediction_loss(student(images), self.teacher_forward(images), targets, ctx)

    def describe(self) -> dict:
        return {"method": self.name, "alpha": self.alpha, "temperature": self.temperature}
