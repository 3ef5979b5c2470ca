"""Compression methods by name (``nascomp compress --method``) and how they chain; listing them imports no torch."""

from __future__ import annotations

from nascomp.core.errors import NascompError
from nascomp.core.registry import Registry

__all__ = ["COMPRESSORS", "DEPLOY_METHODS", "METHOD_OPTIONS", "method_chain"]

COMPRESSORS: Registry = Registry(
    "compression method",
    {
        "minivit": "nascomp.compression.minivit:MiniViTMethod",
        "drop-blocks": "nascomp.compression.drop_blocks:DropBlocksMethod",
        "shrink": "nascomp.compression.shrink.search:ShrinkMethod",
        "torch-pruning": "nascomp.compression.peers:TorchPruningMethod",
        "int8": "nascomp.compression.int8:Int8Method",
        "auto": "nascomp.compression.auto:AutoMethod",
    },
)
DEPLOY_METHODS = ("int8",)  # turn a trained model into a runtime file; they come last in a chain
# every method's option names (``options={...}``), so one given as a keyword of `nascomp.compress` is named as what it is
METHOD_OPTIONS = frozenset(
    {
        "budget",
        "widths",
        "population",
        "generations",
        "score_images",
        "calib_images",
        "lut",
        "probe",
        "runtime",
        "runtimes",
        "share",
        "head_transform",
        "mlp_transform",
        "transform_init",
        "keep",
        "int8",
        "calibration",
        "per_channel",
        "target",
        "timer",
        "threads",
        "warmup",
        "repeat",
    }
)


def method_chain(text: str) -> list[str]:
    """``"shrink,int8"`` -> ``["shrink", "int8"]``: at most one method that makes a student, then deployment methods;
    ``auto`` stands alone. Unknown names are a user error listing the choices."""
    steps = [s.strip() for s in str(text).split(",") if s.strip()]
    for s in steps:
        if s not in COMPRESSORS:
            COMPRESSORS.get(s)  # raises with the choices and a suggestion
    if not steps:
        raise NascompError(f"--method is empty; choose one of {', '.join(COMPRESSORS.names())} or a chain like shrink,int8")
    if "auto" in steps and len(steps) > 1:
        raise NascompError("--method auto compares every method and chain itself; use it alone")
    students = [s for s in steps if s not in DEPLOY_METHODS]
    if len(students) > 1 or (students and steps[0] != students[0]) or len(set(steps)) != len(steps):
        raise NascompError(
            f"--method {text!r}: a chain is one method that makes a smaller model, then int8 (e.g. shrink,int8 or minivit,int8)"
        )
    return steps
