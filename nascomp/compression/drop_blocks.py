"""Drop-blocks: keep the first blocks of each stage, the naive depth-reduction baseline of compression."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, cast

from torch import nn

from nascomp.compression.base import CompressionMethod, Student
from nascomp.core.errors import NascompError
from nascomp.models.structure import model_family, stage_depths, transformer_stages

__all__ = ["drop_blocks", "DropBlocksMethod"]


def drop_blocks(model: nn.Module, keep: Sequence[int]) -> nn.Module:
    """Keep the first ``keep[i]`` blocks of stage i (in place): the naive depth-reduction baseline.

    Keeping a prefix keeps timm's alternation of plain and shifted windows, so the result is exactly the
    timm model built with ``depths=keep`` (``depth`` for ViT) and saves/loads as an ordinary timm spec.
    """
    stages = transformer_stages(model)
    if len(keep) != len(stages):
        raise NascompError(f"--keep lists {len(keep)} stages but the model has {len(stages)} ({stage_depths(model)} blocks)")
    for i, (blocks, k) in enumerate(zip(stages, keep)):
        if not 1 <= k <= len(blocks):
            raise NascompError(f"stage {i + 1} has {len(blocks)} blocks; --keep must be between 1 and {len(blocks)}, got {k}")
        if model_family(model) == "swin":
            stage = cast(Any, model).layers[i]  # a timm SwinTransformerStage
            stage.blocks = nn.Sequential(*blocks[:k])
            stage.depth = k
        else:
            model.blocks = nn.Sequential(*blocks[:k])
    return model


class DropBlocksMethod(CompressionMethod):
    """``keep``: blocks kept per stage (one number for every stage, or one per stage); timm models only."""

    name = "drop-blocks"

    def make_student(self, base: nn.Module, spec: dict, options: dict, context=None) -> Student:
        keep = options.get("keep")
        if keep is None:
            raise NascompError(
                "drop-blocks needs keep=N or one number per stage (--keep N[,N...]): how many leading blocks of each stage to keep"
            )
        if spec.get("builder") != "timm":
            raise NascompError("drop-blocks works on timm models (a timm name or a directory saved from one)")
        stages = len(stage_depths(base))
        keep = [int(keep)] * stages if isinstance(keep, int) else [int(k) for k in keep]
        drop_blocks(base, keep)
        student_spec = copy.deepcopy(spec)
        if model_family(base) == "swin":
            student_spec["kwargs"]["depths"] = keep
        else:
            student_spec["kwargs"]["depth"] = keep[0]
        return Student(base, student_spec, {"keep": keep})
