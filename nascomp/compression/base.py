"""What a compression method is: it turns a trained model into a smaller student, which is then distilled."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

__all__ = ["Student", "CompressionMethod"]


@dataclass
class Student:
    """The compressed structure before training: the module, the spec that rebuilds it, and what was done."""

    model: nn.Module
    spec: dict
    structure: dict = field(default_factory=dict)


class CompressionMethod:
    """One compression method. ``make_student`` changes ``base`` (a copy of the trained model, or a freshly
    initialised one) in place into the student; ``spec`` is the trained model's spec."""

    name = "base"

    def make_student(self, base: nn.Module, spec: dict, options: dict) -> Student:
        raise NotImplementedError
