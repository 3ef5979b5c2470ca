"""A latency table for a new target in minutes: another target's table, corrected by a few subnets measured on the new one.

Why it works: a new device, runtime, precision or thread count changes how fast each kind of layer runs, but
the *relative* cost of two layer configurations of one kind changes much less (both are the same kernels on
bigger or smaller tensors). So the source table's per-stage layer sums remain good features of a subnet on
the new target, and only the mapping from them to milliseconds must be learnt:
`nascomp.profiling.correction` fits it on ``shots`` subnets measured end to end on the target (one overall
scale with few shots, per-stage scales, a per-layer overhead and an offset as shots allow). Measuring 20 subnets
takes minutes where measuring every layer of a space takes tens of minutes to an hour.

The result is an ordinary table file for the target (format 2, ``kind`` = transferred): the source's entries,
the target's protocol, the fitted correction and the shots as its calibration subnets, and ``transfer``, which
names the source. `load_predictor` and search budgets use it like a full table; its intervals come from the
shots' leave-one-out errors (jackknife+), or from validation subnets once `validate_lut` has measured some.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from nascomp.core.errors import NascompError
from nascomp.core.io import atomic_write_json, read_json
from nascomp.profiling.predictor import (
    LUT_FORMAT,
    MEASURED,
    READABLE_FORMATS,
    TRANSFERRED,
    LatencyPredictor,
    LutProtocol,
    ReferenceProbe,
    _power,
    _space_fingerprint,
    _sum_ms,
    measure_subnets,
    refit,
)
from nascomp.spaces import Arch, SearchSpace

__all__ = ["MIN_SHOTS", "check_source", "transfer_lut"]

MIN_SHOTS = 3  # leave-one-out needs three; intervals at 90 % need 9 for jackknife+ (fewer: a Student-t band)
_SHAPE = ("resolution", "in_chans", "num_classes", "batch")


def check_source(source: dict, space: SearchSpace, proto: LutProtocol, where: str = "the source table") -> None:
    """Raise `NascompError` unless ``source`` is a finished table covering ``space`` at the shapes ``proto`` measures."""
    if source.get("format") not in READABLE_FORMATS or "entries" not in source or "protocol" not in source:
        raise NascompError(f"{where} is not a nascomp latency lookup table; pass a file written by `nascomp profile --build-lut`")
    if not source.get("complete"):
        raise NascompError(f"{where} is an unfinished build; finish it first (`nascomp profile --build-lut --lut {where}`)")
    theirs = {k: source["protocol"].get(k) for k in _SHAPE}
    ours = {k: getattr(proto, k) for k in _SHAPE}
    if theirs != ours:
        raise NascompError(
            f"{where} was measured at {theirs}, the target at {ours}; transfer needs the same input and output shapes "
            "(pass --resolution / a source table of this space at them)"
        )
    missing = LatencyPredictor(source, where).missing(space)
    if missing:
        raise NascompError(
            f"{where} lacks {len(missing)} layer configurations of space {space.name!r} (e.g. {missing[0]}); "
            "extend it on its own target with `nascomp profile --build-lut` first"
        )


def transfer_lut(
    source: dict,
    space: SearchSpace,
    proto: LutProtocol,
    path: str | Path,
    shots: int = 20,
    seed: int = 0,
    energy: bool = False,
    source_path: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict:
    """Measure ``shots`` random subnets of ``space`` under ``proto`` and fit the source table's correction to them.

    Args:
        source: a complete table of another target (or day) covering ``space``. space: the space to predict.
        proto: the target's protocol (its probe reference is measured now when ``proto.probe``).
        path: where the transferred table is written; a full table already there is an error (never overwritten).
        shots: subnets measured end to end on the target (>= 3). seed: their draw.
        energy: also measure their energy (sets the table's power). source_path: recorded as the source's name.
        progress: ``progress(stage, done, total)``.

    Returns:
        The transferred table (also written to ``path``).
    """
    from nascomp.profiling.host import host_facts

    if isinstance(shots, bool) or not isinstance(shots, int) or shots < MIN_SHOTS:
        raise NascompError(f"--shots must be an integer >= {MIN_SHOTS} (20 is a good default), got {shots!r}")
    proto = proto.resolved()
    path = Path(path)
    where = source_path or "the source table"
    check_source(source, space, proto, where)
    if path.exists() and read_json(path).get("kind", MEASURED) != TRANSFERRED:
        raise NascompError(f"{path} holds a table measured layer by layer; pass another --lut for the transferred one")
    rng = random.Random(seed)
    archs = [space.sample(rng) for _ in range(shots)]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nascomp-transfer-") as tmp:
        probe = ReferenceProbe(proto, Path(tmp)) if proto.probe else None
        points = measure_subnets(archs, proto, probe, Path(tmp), energy, progress, "shots")
    for point in points:
        point["sum_ms"] = _sum_ms(source["entries"], Arch.from_dict(point["arch"]), source["protocol"])
    table = {
        "format": LUT_FORMAT,
        "kind": TRANSFERRED,
        "metric": "latency",
        "unit": "ms",
        "target": proto.target,
        "spaces": [f"{space.name}:{_space_fingerprint(space)}"],
        "protocol": proto.to_dict(),
        "statistic": "the source table's layer latencies; prediction = their correction fitted on shots measured on this target (fit)",
        "entries": source["entries"],
        "fit": {"calibration_seed": seed, "calibration": points},
        "probe": probe.to_dict() if probe else None,
        "power": _power(proto, points),
        "validation": None,
        "build_seconds": round(time.perf_counter() - start, 1),
        "complete": True,
        "host": host_facts(),
        "transfer": {
            "source_path": source_path,
            "source_target": source["target"],
            "source_protocol": source["protocol"],
            "source_spaces": source.get("spaces"),
            "source_measured": (source.get("host") or {}).get("date"),
            "shots": shots,
            "seed": seed,
        },
    }
    refit(table, "ridge")
    atomic_write_json(path, table)
    return table
