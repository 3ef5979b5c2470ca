"""A supernet's subnet as a standalone timm ``SwinTransformer`` carrying the inherited weights."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from timm.models.swin_transformer import SwinTransformer

from nascomp.models.swin import build_from_arch
from nascomp.spaces.arch import Arch

__all__ = ["extract"]


@torch.no_grad()
def extract(supernet, arch: Arch | Mapping | None = None) -> SwinTransformer:
    """The standalone timm model of ``arch`` (default: the supernet's active arch) with inherited weights.

    Built at the supernet's ``img_size`` / ``in_chans`` / ``num_classes`` / ``drop_path_rate``; in float32 on
    the CPU, in training mode like a fresh model. Its outputs equal the supernet's for that arch.
    """
    arch = supernet.arch if arch is None else (arch if isinstance(arch, Arch) else Arch.from_dict(arch))
    model = build_from_arch(
        arch,
        num_classes=supernet.num_classes,
        in_chans=supernet.in_chans,
        img_size=supernet.img_size,
        drop_path_rate=supernet.drop_path_rate,
    )
    state = {k: v.detach().to("cpu", torch.float32).clone() for k, v in supernet.subnet_state_dict(arch).items()}
    model.load_state_dict(state, strict=True)
    return model
