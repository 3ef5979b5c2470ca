"""SRD (semantic representational distillation): student features through the teacher's classifier."""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from nascomp.core.errors import NascompError
from nascomp.distillation.base import Distiller
from nascomp.distillation.losses import srd_loss
from nascomp.distillation.registry import register_distiller
from nascomp.distillation.taps import PenultimateTap, check_timm_head

__all__ = ["SRDConnector", "SemanticRepresentationDistillation"]


class SRDConnector(nn.Module):
    """Maps student features to the teacher's feature width: a Linear on pooled token features, or SRD's
    1x1 conv (no bias, He fan-out init) + BN + ReLU on a CNN feature map followed by global average pooling."""

    def __init__(self, in_features: int, out_features: int, feature_map: bool):
        super().__init__()
        self.feature_map = feature_map
        self.map: nn.Module
        if feature_map:
            conv = nn.Conv2d(in_features, out_features, kernel_size=1, bias=False)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            self.map = nn.Sequential(conv, nn.BatchNorm2d(out_features), nn.ReLU(inplace=True))
        else:
            self.map = nn.Linear(in_features, out_features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C_s, H, W) map or (B, C_s) pooled features -> (B, C_t) pooled features."""
        out = self.map(features)
        return out.mean(dim=(2, 3)) if self.feature_map else out


@register_distiller("srd")
class SemanticRepresentationDistillation(Distiller):
    """SRD: the student's penultimate features, through a trainable connector and the frozen teacher classifier,
    give cross-network logits z_{t<-s} that must match the teacher's logits z_t.

    ``loss = truth_weight * CE(z_s, y) + srd_weight * srd_loss + kd_weight * T^2 KL(z_t/T || z_s/T)``; the
    defaults (1, 1, 0; T = 4) are SRD's released CIFAR settings. Works for any timm student/teacher pair:
    student features come from a `PenultimateTap`; CNN students (NCHW feature maps) get the conv connector,
    ViT/Swin students a Linear on their pooled pre-logit features. The teacher's "features" are its pre-logits.
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module | None,
        srd_weight: float = 1.0,
        feature_weight: float = 1.0,
        truth_weight: float = 1.0,
        kd_weight: float = 0.0,
        temperature: float = 4.0,
    ):
        super().__init__(student, teacher)
        if min(srd_weight, feature_weight, truth_weight, kd_weight) < 0 or temperature <= 0:
            raise NascompError("SRD weights must be >= 0 and --temperature > 0")
        self.srd_weight, self.feature_weight = srd_weight, feature_weight
        self.truth_weight, self.kd_weight, self.temperature = truth_weight, kd_weight, temperature
        assert self.teacher is not None  # Distiller.__init__ refuses a missing teacher (needs_teacher)
        teacher_head = check_timm_head(self.teacher, "teacher")
        if getattr(student, "num_classes", teacher_head.out_features) != teacher_head.out_features:
            raise NascompError(
                f"student predicts {student.num_classes} classes but the teacher {teacher_head.out_features}; they must agree"
            )
        check_timm_head(student, "student")  # before the probe forward, which calls forward_features / forward_head
        feature_map, student_width = self._student_features(student)
        self.connector = SRDConnector(student_width, teacher_head.in_features, feature_map)
        self._tap = PenultimateTap(student)

    @staticmethod
    @torch.no_grad()
    def _student_features(student: nn.Module) -> tuple[bool, int]:
        """(is a CNN feature map, channels the connector takes), from one probe forward at the model's input size."""
        from nascomp.models import model_input_size

        timm_student = cast(Any, student)  # timm-style: forward_features / forward_head (SRD's precondition)
        _, resolution = model_input_size(student)
        first = next((m for m in student.modules() if isinstance(m, (nn.Conv2d, nn.Linear))), None)
        in_chans = first.in_channels if isinstance(first, nn.Conv2d) else model_input_size(student)[0]
        ref = next(student.parameters())
        was_training = student.training
        student.eval()
        try:
            features = timm_student.forward_features(torch.zeros(1, in_chans, resolution, resolution, device=ref.device, dtype=ref.dtype))
            feature_map = features.ndim == 4 and getattr(student, "output_fmt", "NCHW") == "NCHW"
            width = features.shape[1] if feature_map else timm_student.forward_head(features, pre_logits=True).shape[-1]
        finally:
            student.train(was_training)
        return feature_map, int(width)

    @torch.no_grad()
    def teacher_outputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, pre-logit features) of the frozen teacher."""
        teacher = cast(Any, self.teacher)  # checked by check_timm_head in __init__
        if next(teacher.parameters()).device != images.device:
            teacher.to(images.device)
        teacher.eval()
        features = teacher.forward_head(teacher.forward_features(images), pre_logits=True)
        return teacher.get_classifier()(features), features

    def forward(self, student, images, targets, ctx):
        teacher_logits, teacher_features = self.teacher_outputs(images)
        with self._tap.record() as tap:
            student_logits = student(images)
        features = tap.features if self.connector.feature_map else self._tap.model.forward_head(tap.features, pre_logits=True)
        mapped = self.connector(features)
        cross_logits = cast(Any, self.teacher).get_classifier()(mapped)  # frozen, but gradients pass through to the connector
        srd = srd_loss(cross_logits, teacher_logits, mapped, teacher_features, self.feature_weight)
        truth = ctx.criterion(student_logits, targets)
        loss = self.truth_weight * truth + self.srd_weight * srd
        parts = {"truth": truth.item(), "srd": srd.item()}
        if self.kd_weight > 0:
            t = self.temperature
            kl = (
                F.kl_div(F.log_softmax(student_logits.float() / t, -1), F.softmax(teacher_logits.float() / t, -1), reduction="batchmean")
                * t
                * t
            )
            loss, parts["kd"] = loss + self.kd_weight * kl, kl.item()
        return loss, parts

    def describe(self) -> dict:
        return {
            "method": self.name,
            "srd_weight": self.srd_weight,
            "feature_weight": self.feature_weight,
            "truth_weight": self.truth_weight,
            "kd_weight": self.kd_weight,
            "temperature": self.temperature,
            "connector": "conv1x1-bn-relu" if self.connector.feature_map else "linear",
        }

    def close(self) -> None:
        self._tap.remove()
