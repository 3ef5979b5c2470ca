"""Equivalent formulations of the ops XNNPACK cannot take, so a ViT or Swin lowers to ExecuTorch with nothing left
on the slow portable kernels.

ExecuTorch's XNNPACK partitioner delegates an op only when a partitioner config claims it. Exported as they are,
timm's models leave a good share of their graph outside the delegate (measured with executorch 1.5.1 on timm
1.0.31): every LayerNorm (XNNPACK has no layer-norm op), the shifted-window ``torch.roll`` (exported as
``arange``/``fmod``/``index_select``), the relative-position-bias gather (``index.Tensor``), the no-op ``expand``
and ``squeeze`` copies that ``matmul`` and ``unbind`` decompose into, the Swin head's mean over the token axes, and
the NaN-safe softmax that ``scaled_dot_product_attention`` decomposes into (``any``/``eq``/``where``). Each
portable op also splits the delegate in two, with a copy at every boundary.

`delegable_program` rewrites an exported program op by op, before lowering, into formulations the partitioner
claims; each computes the same function:

- ``layer_norm``: mean and variance over the normalised axis as ``mean.dim`` over dims (2, 3) of a 4-D view (the
  only mean XNNPACK takes), then subtract, multiply by ``rsqrt``, scale and shift;
- ``roll`` (the window shift): two slices concatenated along the rolled axis;
- ``pad`` (windows and patch merging on sides not divisible): a no-op view for zero padding, otherwise a
  concatenation with constant zeros (a quantized ``constant_pad_nd`` makes XNNPACK's compiler fail);
- ``matmul`` and ``scaled_dot_product_attention``: 3-D ``bmm`` on reshaped operands, softmax on the last axis;
- ``unbind``, ``select``, ``squeeze``, ``unsqueeze``, ``alias`` and no-op ``expand``: slices and views;
- ``mean.dim`` over other axes: a permute and a 4-D view around the supported mean.

Then constants are folded (``executorch.exir.passes.constant_prop_pass``): the relative position bias, the
shifted-window attention mask and index tensors become constants of the program, computed once at export instead
of at every inference. Quantize and dequantize nodes are kept out of the folding, or XNNPACK would no longer
see the int8 patterns. Folded constants get canonical strides: a folded ``permute`` keeps strides that, for
dims of size 1, describe a different dim order, which makes the XNNPACK runtime reject the shape
(``xnn_status_invalid_parameter`` at the first inference).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["XNNPACK_FORMS", "delegable_program"]

aten = torch.ops.aten


def _dims(dim: Any, rank: int) -> list[int]:
    return sorted({d % rank for d in (dim if isinstance(dim, (list, tuple)) else [dim])})


def _mean_4d(x: torch.Tensor) -> torch.Tensor:
    """Mean of each row of a (rows, n) view as XNNPACK's global average pool: (1, rows, n, 1) over dims (2, 3)."""
    return aten.mean.dim(x.reshape(1, x.shape[0], x.shape[1], 1), [2, 3], True).reshape(x.shape[0], 1)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5, cudnn_enable=True):
    n = math.prod(normalized_shape)
    rows = x.reshape(-1, n)
    centred = rows - _mean_4d(rows)
    y = (centred * torch.rsqrt(_mean_4d(centred * centred) + eps)).reshape(x.shape)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def mean_dim(x, dim, keepdim=False, dtype=None):
    dims = _dims(dim, x.dim()) if dim else list(range(x.dim()))
    if dtype is not None or (x.dim() == 4 and dims == [2, 3] and keepdim):
        return NotImplemented  # already what XNNPACK takes (or a dtype cast it cannot encode): keep the op
    kept = [d for d in range(x.dim()) if d not in dims]
    moved = x.permute(kept + dims) if kept + dims != list(range(x.dim())) else x
    out = _mean_4d(moved.reshape(math.prod(x.shape[d] for d in kept), -1))
    shape = [1 if d in dims else x.shape[d] for d in range(x.dim())] if keepdim else [x.shape[d] for d in kept]
    return out.reshape(shape)


def roll(x, shifts, dims=()):
    shifts = [shifts] if isinstance(shifts, int) else list(shifts)
    dims = [dims] if isinstance(dims, int) else list(dims)
    if not dims:
        return NotImplemented  # a roll of the flattened tensor: no model here uses it
    for shift, d in zip(shifts, dims):
        n = x.shape[d]
        s = shift % n
        if s:
            x = torch.cat([x.narrow(d, n - s, s), x.narrow(d, 0, n - s)], dim=d)
    return x


def pad(x, pad, mode="constant", value=None):
    if mode != "constant" or any(p < 0 for p in pad):
        return NotImplemented
    if not any(pad):
        return x.view(x.shape)
    for i in range(len(pad) // 2):
        d = x.dim() - 1 - i
        parts = []
        for size in (pad[2 * i], None, pad[2 * i + 1]):
            if size is None:
                parts.append(x)
            elif size:
                shape = list(x.shape)
                shape[d] = size
                parts.append(torch.full(shape, value or 0.0, dtype=x.dtype, device=x.device))
        if len(parts) > 1:
            x = torch.cat(parts, dim=d)
    return x


def matmul(a, b):
    if a.dim() < 2 or b.dim() < 2:
        return NotImplemented
    if a.dim() == 2 and b.dim() == 2:
        return torch.mm(a, b)
    lead = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a = a if tuple(a.shape[:-2]) == tuple(lead) else a.expand(*lead, *a.shape[-2:])
    b = b if tuple(b.shape[:-2]) == tuple(lead) else b.expand(*lead, *b.shape[-2:])
    out = torch.bmm(a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:]))
    return out.reshape(*lead, a.shape[-2], b.shape[-1])


def scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    if is_causal or enable_gqa or (attn_mask is not None and attn_mask.dtype == torch.bool):
        return NotImplemented  # ViT and Swin pass an additive float mask or none
    attn = matmul(q * (scale if scale is not None else q.shape[-1] ** -0.5), k.transpose(-2, -1))
    if attn_mask is not None:
        attn = attn + attn_mask
    return matmul(torch.softmax(attn, -1), v)


def _without(shape: list[int], drop: list[int]) -> list[int]:
    return [s for i, s in enumerate(shape) if i not in drop]


def squeeze(x, dim=None):
    dims = range(x.dim()) if dim is None else _dims(dim, x.dim())
    return x.reshape(_without(list(x.shape), [d for d in dims if x.shape[d] == 1]))


def unsqueeze(x, dim):
    shape = list(x.shape)
    shape.insert(dim % (x.dim() + 1), 1)
    return x.reshape(shape)


def unbind(x, dim=0):
    d = dim % x.dim()
    rest = _without(list(x.shape), [d])
    return [x.narrow(d, i, 1).reshape(rest) for i in range(x.shape[d])]


def select(x, dim, index):
    d = dim % x.dim()
    return x.narrow(d, index % x.shape[d], 1).reshape(_without(list(x.shape), [d]))


def expand(x, size, implicit=False):
    full = [x.shape[i - (len(size) - x.dim())] if s == -1 else s for i, s in enumerate(size)]
    return x.reshape(full) if list(full) == list(x.shape) else NotImplemented  # a real broadcast stays an expand


def alias(x):
    return x.view(x.shape)


XNNPACK_FORMS: dict[Any, Callable] = {
    aten.layer_norm.default: layer_norm,
    aten.mean.dim: mean_dim,
    aten.roll.default: roll,
    aten.pad.default: pad,
    aten.matmul.default: matmul,
    aten.scaled_dot_product_attention.default: scaled_dot_product_attention,
    aten.squeeze.dim: squeeze,
    aten.squeeze.dims: squeeze,
    aten.squeeze.default: squeeze,
    aten.unsqueeze.default: unsqueeze,
    aten.unbind.int: unbind,
    aten.select.int: select,
    aten.expand.default: expand,
    aten.alias.default: alias,
}


def _quantization_ops() -> set:
    qd = torch.ops.quantized_decomposed
    return {
        qd.quantize_per_tensor.default,
        qd.quantize_per_tensor.tensor,
        qd.dequantize_per_tensor.default,
        qd.dequantize_per_tensor.tensor,
        qd.quantize_per_channel.default,
        qd.dequantize_per_channel.default,
        qd.choose_qparams.tensor,
    }


def _canonical_strides(program) -> None:
    for store in (program.constants, program.state_dict):
        for name, value in list(store.items()):
            if isinstance(value, torch.Tensor):
                copy = torch.empty(value.shape, dtype=value.dtype)
                copy.copy_(value)
                store[name] = torch.nn.Parameter(copy, requires_grad=False) if isinstance(value, torch.nn.Parameter) else copy


def delegable_program(program):
    """``program`` (a `torch.export.ExportedProgram`, fp32 or PT2E-quantized) rewritten into `XNNPACK_FORMS`, with its
    constant subgraphs folded (see the module docstring). The result computes what the original does."""
    from nascomp.deploy.et_runtime import require_executorch

    require_executorch()
    import executorch.kernels.quantized  # noqa: F401  registers the quantized_decomposed ops a PT2E program uses
    from executorch.exir.passes.constant_prop_pass import constant_prop_pass

    program = program.run_decompositions(XNNPACK_FORMS)
    program = constant_prop_pass(program, custom_skip_targets=_quantization_ops())
    _canonical_strides(program)
    return program
