"""Run the usual third-party counters beside ours and explain each disagreement.

Tools and what they count:
- fvcore ``FlopCountAnalysis``: traces with ``torch.jit``; one FMA = one "flop" (so MACs); also counts
  norms; has no handle for ``scaled_dot_product_attention``.
- ptflops (``aten`` backend): ATen-level mm/bmm/addmm/convolution; MACs; no fused-attention kernels.
- thop: ``nn.Module`` hooks; MACs; functional matmuls (``q @ k``) and SDPA are invisible to it.
- torch ``FlopCounterMode``: dispatcher-level FLOPs (2 × MACs), SDPA included; halved here to MACs.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings

import torch
from torch import nn

from nascomp.cost.counter import CostReport

__all__ = ["cross_check", "explain_difference"]

EXACT = 0.0005  # relative gap below which two counts are the same count
TOLERANCE = 0.005  # relative gap an explanation may leave unexplained


def _fvcore(model: nn.Module, x: torch.Tensor) -> tuple[int, str]:
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, x)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    total = int(analysis.total())
    skipped = sorted(analysis.unsupported_ops())
    return total, ("skipped ops: " + ", ".join(skipped[:6])) if skipped else ""


def _ptflops(model: nn.Module, x: torch.Tensor) -> tuple[int, str]:
    from ptflops import get_model_complexity_info

    with contextlib.redirect_stdout(io.StringIO()):
        macs, _ = get_model_complexity_info(
            model, tuple(x.shape[1:]), as_strings=False, print_per_layer_stat=False, backend="aten", verbose=False
        )
    return int(macs), ""


def _thop(model: nn.Module, x: torch.Tensor) -> tuple[int, str]:
    import thop

    macs, _ = thop.profile(model, inputs=(x,), verbose=False)
    return int(macs), ""


def _torch_flop_counter(model: nn.Module, x: torch.Tensor) -> tuple[int, str]:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops() // 2), "FLOPs halved to MACs"


TOOLS = {"fvcore": _fvcore, "ptflops": _ptflops, "thop": _thop, "torch.FlopCounterMode": _torch_flop_counter}


def explain_difference(ours: CostReport, theirs: int) -> str:
    """Name the category of work that accounts for the gap between ``theirs`` and our count."""
    diff = theirs - ours.macs
    if abs(diff) <= EXACT * ours.macs:
        return "agrees"
    cats = ours.macs_by_category
    attention = cats.get("fused attention", 0) + cats.get("batched matmul", 0)
    candidates = {
        "misses the fused scaled_dot_product_attention kernels (Q·Kᵀ and A·V)": -cats.get("fused attention", 0),
        "misses functional batched matmuls (attention Q·Kᵀ and A·V written as q @ k)": -cats.get("batched matmul", 0),
        "misses all attention matmuls": -attention,
        "also counts normalisation layers (~5 ops per element)": 5 * ours.elementwise.get("norm", 0),
        "also counts normalisation layers (~4 ops per element)": 4 * ours.elementwise.get("norm", 0),
        "also counts normalisation layers (1 op per element)": ours.elementwise.get("norm", 0),
    }
    # combinations: missing attention and counting norms
    for miss in [k for k in candidates if k.startswith("misses")]:
        for extra in [k for k in candidates if k.startswith("also")]:
            candidates[f"{miss}; {extra}"] = candidates[miss] + candidates[extra]
    best, value = min(candidates.items(), key=lambda kv: abs(kv[1] - diff))
    if value and abs(value - diff) <= max(TOLERANCE * ours.macs, 0.02 * abs(diff)):
        return best
    gap = f"{diff / 1e6:+.1f} M MACs ({100 * diff / ours.macs:+.2f}%)"
    if abs(diff) <= TOLERANCE * ours.macs:
        return f"agrees within {100 * TOLERANCE:.1f}% ({gap}: small element-wise ops counted differently)"
    return f"differs by {gap}, not explained by attention or norm counting"


@torch.no_grad()
def cross_check(model: nn.Module, ours: CostReport) -> list[dict]:
    """Each tool's MAC count, its ratio to ours, and why it differs (or the error it raised)."""
    model = copy.deepcopy(model).eval()  # thop adds buffers to modules; keep the caller's model clean
    x = torch.randn(1, ours.in_chans, ours.resolution, ours.resolution)
    rows = []
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    for name, tool in TOOLS.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                macs, note = tool(copy.deepcopy(model), x)
            rows.append(
                {
                    "tool": name,
                    "macs": macs,
                    "ratio": macs / ours.macs if ours.macs else float("nan"),
                    "why": explain_difference(ours, macs),
                    "note": note,
                }
            )
        except Exception as e:  # a third-party counter failing is a finding, not our crash
            rows.append(
                {
                    "tool": name,
                    "macs": None,
                    "ratio": None,
                    "why": f"failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}",
                    "note": "",
                }
            )
    return rows
