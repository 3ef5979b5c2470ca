"""Read activations out of a student or teacher during its own forward pass (hooks, no second pass).

`ActivationTap` records a timm Swin/ViT block's ``qkv`` projection and output (shared MiniViT modules
included); `PenultimateTap` records the features a timm model feeds its classifier.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import torch
from torch import nn

from nascomp.core.errors import NascompError
from nascomp.models.structure import transformer_blocks

__all__ = ["ActivationTap", "PenultimateTap", "check_timm_head"]


class ActivationTap:
    """Records, during one forward pass, the ``qkv`` projection output and the block output of chosen layers.

    A MiniViT student runs one shared ``qkv`` module in several layers, so a layer's call is identified by
    the module *and* its rank among that module's calls in the pass (layers execute in order).
    """

    def __init__(self, model: nn.Module, qkv_layers: Sequence[int] = (), hidden_layers: Sequence[int] = ()):
        blocks = transformer_blocks(model)
        for layer in (*qkv_layers, *hidden_layers):
            if not 0 <= layer < len(blocks):
                raise NascompError(f"layer {layer} does not exist: the model has layers 0..{len(blocks) - 1}")
        self.qkv: dict[int, torch.Tensor] = {}
        self.hidden: dict[int, torch.Tensor] = {}
        self._active = False
        self._calls: dict[int, int] = {}
        self._handles = []
        callers: dict[int, tuple[nn.Module, list[int]]] = {}
        for layer, block in enumerate(blocks):
            qkv: nn.Module = cast(Any, block).attn.qkv  # a timm ViT/Swin block (transformer_blocks)
            callers.setdefault(id(qkv), (qkv, []))[1].append(layer)
        wanted_qkv, self._wanted = set(qkv_layers), (set(qkv_layers), set(hidden_layers))
        for key, (module, layers) in callers.items():
            if wanted_qkv.intersection(layers):
                self._handles.append(module.register_forward_hook(self._qkv_hook(key, layers, wanted_qkv)))
        for layer in set(hidden_layers):
            self._handles.append(blocks[layer].register_forward_hook(self._hidden_hook(layer)))

    def _qkv_hook(self, key: int, layers: list[int], wanted: set[int]) -> Callable:
        def hook(module, inputs, output):
            if not self._active:
                return
            rank = self._calls.get(key, 0)
            self._calls[key] = rank + 1
            if rank < len(layers) and layers[rank] in wanted:
                self.qkv[layers[rank]] = output

        return hook

    def _hidden_hook(self, layer: int) -> Callable:
        def hook(module, inputs, output):
            if self._active:  # Swin blocks output NHWC; relations are over all tokens of the stage
                self.hidden[layer] = output.reshape(output.shape[0], -1, output.shape[-1])

        return hook

    @contextlib.contextmanager
    def record(self) -> Iterator[ActivationTap]:
        self.qkv, self.hidden, self._calls, self._active = {}, {}, {}, True
        try:
            yield self
        finally:
            self._active = False
        missing = (self._wanted[0] - set(self.qkv)) | (self._wanted[1] - set(self.hidden))
        if missing:
            raise RuntimeError(f"layers {sorted(missing)} did not run in the forward pass")

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles, self._wanted = [], (set(), set())


def check_timm_head(model: nn.Module, role: str) -> nn.Linear:
    """SRD relies on timm's split ``forward = forward_head(forward_features(x))`` and a Linear classifier."""
    if not all(hasattr(model, a) for a in ("forward_features", "forward_head", "get_classifier")):
        raise NascompError(
            f"SRD needs a timm-style {role} (forward_features, forward_head, get_classifier); {type(model).__name__} has not"
        )
    head = cast(Any, model).get_classifier()  # present: checked just above
    if not isinstance(head, nn.Linear):
        raise NascompError(
            f"SRD needs the {role}'s classifier to be a Linear layer, got {type(head).__name__} (a model built with num_classes=0?)"
        )
    return head


class PenultimateTap:
    """Records the input of a timm model's ``forward_head`` (its penultimate features) during forward.

    The model's own ``forward`` (possibly through DDP) stays the only forward pass: the tap shadows the
    bound ``forward_head`` with a recording wrapper on the instance, and `remove` restores it.
    """

    def __init__(self, model: nn.Module):
        check_timm_head(model, "student")
        self.model = cast(Any, model)  # timm-style (checked above): its forward_head is read and shadowed
        self.features, self._active = None, False
        original = self.model.forward_head

        def forward_head(x, *args, **kwargs):
            if self._active:
                self.features = x
            return original(x, *args, **kwargs)

        self._wrapper = forward_head
        self.model.forward_head = forward_head

    @contextlib.contextmanager
    def record(self) -> Iterator[PenultimateTap]:
        self.features, self._active = None, True
        try:
            yield self
        finally:
            self._active = False
        if self.features is None:
            raise RuntimeError("the student's forward_head did not run in the forward pass")

    def remove(self) -> None:
        if self.model.__dict__.get("forward_head") is self._wrapper:
            del self.model.forward_head
