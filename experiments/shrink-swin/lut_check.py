"""The latency table of the teacher's neighbourhood: its fit and its accuracy on held-out sub-networks.

    python experiments/shrink-swin/lut_check.py   # after run.py built runs/lut-mobile-cpu-probe.json

Validates the table on 20 random sub-networks measured end to end (same protocol as the table: mobile-cpu, ONNX Runtime,
thread-cpu timer, reference probe) and writes results/lut.json: the offset and affine corrections, fitted on the table's
12 calibration sub-networks, and the share of held-out sub-networks each predicts within +-10 %.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nascomp.compression.shrink.space import neighbourhood, swin_arch
from nascomp.core.io import read_json
from nascomp.models import load_model
from nascomp.profiling.predictor import validate_lut

HERE = Path(__file__).resolve().parent


def main() -> None:
    table = read_json(HERE / "runs/lut-mobile-cpu-probe.json")
    space = neighbourhood(swin_arch(load_model(HERE / "runs/teacher")[0]), 32)
    check = validate_lut(table, space, n=20)
    out = {"layers": len(table["entries"]), "build_seconds": table["build_seconds"], "protocol": table["protocol"], "fits": {}}
    calibration = table["fit"]["calibration"]
    cal_sum, cal_ms = np.array([c["sum_ms"] for c in calibration]), np.array([c["measured_ms"] for c in calibration])
    fit = table["fit"]  # the held-out predictions use it; undo it to get the layer sums
    sums = np.array([(r["predicted_ms"] - fit["offset_ms"]) / fit["scale"] for r in check["rows"]])
    measured = np.array([r["measured_ms"] for r in check["rows"]])
    for name, (scale, offset) in {"offset": (1.0, float(np.median(cal_ms - cal_sum))), "affine": tuple(np.polyfit(cal_sum, cal_ms, 1))}.items():
        err = np.abs((scale * sums + offset) / measured - 1)
        out["fits"][name] = {"scale": float(scale), "offset_ms": float(offset), "within_10pct": float(np.mean(err <= 0.1)),
                             "mean_abs_error": float(err.mean()), "max_abs_error": float(err.max())}
    out["held_out"] = [{"layer_sum_ms": round(float(a), 4), "measured_ms": float(b)} for a, b in zip(sums, measured)]
    (HERE / "results/lut.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out["fits"], indent=2))


if __name__ == "__main__":
    main()
