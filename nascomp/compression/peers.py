"""The peer baseline: torch-pruning (DepGraph, Fang et al., CVPR 2023) pruning a trained timm Swin to a params / MACs budget.

Configured as torch-pruning's own ViT/Swin examples do, with its data-free group L2-magnitude importance: the
embedding channels of each stage (coupled across the residual stream and Swin's 2x2 patch merging, for which a
pruning function is registered here) and the MLP hidden units are pruned at one uniform ratio per layer; the
smallest ratio whose MACs (or params) meet the budget is found by bisection. Attention heads are not pruned:
torch-pruning cannot see the relative-position bias table's head axis through timm's index gather, and pruning
head widths would change the attention scale timm fixed at construction. The pruned model is rebuilt as the
equivalent nascomp arch model (checked to compute the same outputs), so it saves, loads and exports like any other.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn

from nascomp.compression.base import CompressContext, CompressionMethod, Student
from nascomp.compression.shrink.space import _ratio, swin_arch
from nascomp.core.errors import NascompError
from nascomp.cost.counter import count_module
from nascomp.models.resolve import model_input_size
from nascomp.models.swin import arch_spec, build_from_arch
from nascomp.nas.budget import parse_budget
from nascomp.spaces.arch import Arch, BlockArch, StageArch

__all__ = ["TorchPruningMethod", "prune_swin"]


def _patch_merging_pruner():
    import torch_pruning as tp

    class PatchMergingPruner(tp.pruner.function.BasePruningFunc):
        """Swin's merging reads 4 chunks of the previous stage's channels: an input channel is pruned in every chunk."""

        def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
            tp.prune_linear_out_channels(layer.reduction, idxs)
            return layer

        def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
            dim = cast(nn.LayerNorm, layer.norm).normalized_shape[0] // 4
            chunked = [i + k * dim for k in range(4) for i in idxs]
            tp.prune_layernorm_out_channels(layer.norm, chunked)
            tp.prune_linear_in_channels(layer.reduction, chunked)
            return layer

        def get_out_channels(self, layer: nn.Module) -> int:
            return cast(nn.Linear, layer.reduction).out_features

        def get_in_channels(self, layer: nn.Module) -> int:
            return cast(nn.LayerNorm, layer.norm).normalized_shape[0] // 4

    return PatchMergingPruner()


def _pruned_arch(model: nn.Module) -> Arch:
    """The arch of a pruned timm Swin, read from tensor shapes (torch-pruning leaves attributes like ``dim`` stale)."""
    swin = cast(Any, model)  # a timm SwinTransformer: its module tree is read by attribute
    stages = []
    for layer in swin.layers:
        blocks = []
        for b in layer.blocks:
            dim = b.norm1.weight.shape[0]
            blocks.append(BlockArch(b.attn.num_heads, b.attn.qkv.out_features // 3, _ratio(b.mlp.fc1.out_features, dim), b.window_size[0]))
        stages.append(StageArch(layer.blocks[0].norm1.weight.shape[0], tuple(blocks)))
    return Arch(tuple(stages), swin.patch_embed.proj.kernel_size[0])


def prune_swin(model: nn.Module, ratio: float) -> nn.Module:
    """A copy of ``model`` with ``ratio`` of each stage's embedding channels and each MLP's hidden units removed (L2 magnitude)."""
    import torch_pruning as tp
    from timm.models.swin_transformer import PatchMerging

    pruned = copy.deepcopy(model).eval()
    in_chans, resolution = model_input_size(model)
    example = torch.zeros(1, in_chans, resolution, resolution)
    swin = cast(Any, pruned)  # a timm SwinTransformer: its module tree is read by attribute
    ignored = [swin.head.fc] + [b.attn.qkv for layer in swin.layers for b in layer.blocks]
    pruner = tp.pruner.BasePruner(
        pruned,
        example,
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=ratio,
        ignored_layers=ignored,
        customized_pruners={PatchMerging: _patch_merging_pruner()},
        root_module_types=[nn.Conv2d, nn.Linear, PatchMerging],
        unwrapped_parameters=[(b.attn.relative_position_bias_table, 1) for layer in swin.layers for b in layer.blocks],
    )
    pruner.step()
    return pruned


class TorchPruningMethod(CompressionMethod):
    """Option ``budget``: a params or MACs budget (``2gflops``, ``1mparams``); torch-pruning prunes to it (see module docstring)."""

    name = "torch-pruning"

    def check(self, base: nn.Module, options: dict) -> None:
        try:
            import torch_pruning  # noqa: F401
        except ImportError:
            raise NascompError("--method torch-pruning needs the torch-pruning package: pip install torch-pruning") from None
        if options.get("budget") is None:
            raise NascompError("torch-pruning needs a budget (--budget, e.g. 2gflops or 10mparams)")
        budget = parse_budget(options["budget"])
        if budget.measured:
            raise NascompError(
                f"torch-pruning prunes to a params or MACs budget, not {budget.text}; give the MACs to reach (e.g. the "
                "MACs of the shrunk model, from its summary)"
            )
        swin_arch(base)

    def make_student(self, base: nn.Module, spec: dict, options: dict, context: CompressContext | None = None) -> Student:
        self.check(base, options)
        budget = parse_budget(options["budget"])
        in_chans, resolution = model_input_size(base)

        def cost(model: nn.Module) -> float:
            c = count_module(model, resolution, in_chans)
            return c.macs if budget.metric == "macs" else c.params

        original = cost(base)
        if original <= budget.limit:
            raise NascompError(f"the model already meets budget {budget.text}: it costs {budget.format(original)}; nothing to prune")
        low, high = 0.0, 0.95
        best = prune_swin(base, high)
        if cost(best) > budget.limit:
            raise NascompError(
                f"torch-pruning cannot reach {budget.text}: pruning {high:.0%} of the channels leaves {budget.format(cost(best))}"
            )
        for _ in range(8):  # bisection on the ratio: the least pruning that meets the budget
            mid = (low + high) / 2
            candidate = prune_swin(base, mid)
            if cost(candidate) <= budget.limit:
                high, best = mid, candidate
            else:
                low = mid
        arch = _pruned_arch(best)
        student = build_from_arch(arch, num_classes=base.num_classes, in_chans=in_chans, img_size=resolution)
        student.load_state_dict(best.state_dict(), strict=True)
        x = torch.randn(2, in_chans, resolution, resolution, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            if not torch.allclose(student.eval()(x), best(x), atol=1e-4, rtol=1e-4):
                raise NascompError("internal: the pruned model did not rebuild as an arch model with the same outputs")
        student.train()
        return Student(
            student,
            arch_spec(arch, cast(int, base.num_classes), in_chans, resolution),
            {
                "budget": budget.to_dict(),
                "arch": arch.to_dict(),
                "pruning_ratio": round(high, 4),
                "importance": "torch-pruning GroupMagnitudeImportance (L2), data-free; heads not pruned",
                "torch_pruning": __import__("torch_pruning").__version__,
            },
        )
