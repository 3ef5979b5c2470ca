"""What a distillation method is (`Distiller`), how one is chosen by name, and how it plugs into `fit`."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import nn

from nascomp.core.errors import NascompError
from nascomp.distillation.registry import DISTILLERS, register_distiller

__all__ = ["Distiller", "NoDistillation", "build_distiller", "distillation_step"]


class Distiller(nn.Module):
    """The loss of one training step of a student, given a frozen teacher.

    An `nn.Module`, so trainable helpers (e.g. feature connectors) are optimised and checkpointed with
    the student: pass the distiller to `nascomp.engine.fit` in ``extra_modules``. The teacher is kept out of
    the module tree on purpose: it is neither optimised nor saved. Subclasses implement `forward`.
    """

    name = "base"
    needs_teacher = True
    teacher: nn.Module | None  # set in __init__ through __dict__, outside the module tree

    def __init__(self, student: nn.Module, teacher: nn.Module | None):
        super().__init__()
        if self.needs_teacher and teacher is None:
            raise NascompError(f"distillation {self.name!r} needs a teacher model")
        if teacher is not None:
            teacher.eval().requires_grad_(False)
        self.__dict__["teacher"] = teacher

    def forward(self, student: nn.Module, images: torch.Tensor, targets: torch.Tensor, ctx) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    @torch.no_grad()
    def teacher_forward(self, images: torch.Tensor) -> torch.Tensor:
        teacher = self.teacher
        assert teacher is not None, f"distillation {self.name!r} has no teacher"
        if next(teacher.parameters()).device != images.device:
            teacher.to(images.device)
        return teacher.eval()(images)

    def describe(self) -> dict:
        """The settings, for the run's metrics.json."""
        return {"method": self.name}

    def close(self) -> None:
        """Remove hooks from the student (before exporting or reusing it)."""


def build_distiller(name: str, student: nn.Module, teacher: nn.Module | None, **options) -> Distiller:
    """Instantiate ``DISTILLERS[name]`` with the options its constructor accepts (others are ignored, so one
    CLI can carry every method's flags); ``None`` values mean "the method's default"."""
    cls = DISTILLERS.get(name)
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in options.items() if k in accepted and v is not None}
    return cls(student, teacher, **kwargs)


@register_distiller("none")
class NoDistillation(Distiller):
    """Ground-truth loss only (the training criterion, label smoothing included): the no-teacher control."""

    needs_teacher = False

    def forward(self, student, images, targets, ctx):
        loss = ctx.criterion(student(images), targets)
        return loss, {"truth": loss.item()}


def distillation_step(distiller: Distiller) -> Callable:
    """A `nascomp.engine.fit` ``step_fn`` that trains with ``distiller``'s loss."""

    def step(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, ctx) -> torch.Tensor:
        with ctx.autocast():
            loss, _ = distiller(model, images, targets, ctx)
        ctx.backward(loss)
        return loss.detach()

    return step
