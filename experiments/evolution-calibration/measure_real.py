"""Which validation images each real E-T subnet gets wrong: the noise the calibration study has to imitate.

Reads a ``nascomp search`` run directory (the cpu preset; only its step-0 supernet and E-T sample are
used), re-scores the step's 60 subnets image by image on the same 500 validation images, checks that every
row reproduces the recorded top-1, and writes real_step0.json: the archs, their errors and the 60 × 500
matrix of wrong answers (one '0'/'1' string per subnet).

Usage: OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python experiments/evolution-calibration/measure_real.py RUN_DIR
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from nascomp.data import load_data
from nascomp.nas import PRESETS
from nascomp.spaces import Arch
from nascomp.nas.supernet.model import load_supernet

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from record import portable  # noqa: E402  (records carry no machine paths)

HERE = Path(__file__).resolve().parent


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--out", type=Path, default=HERE / "real_step0.json")
    args = ap.parse_args(argv)
    step = json.loads((args.run_dir / "evolution" / "step-0" / "et.json").read_text())
    run = json.loads((args.run_dir / "run.json").read_text())
    preset = PRESETS["cpu"].supernet
    data = load_data("fashion-mnist", None, val_fraction=0.1, limit_train=preset.limit_train, limit_val=preset.limit_val)
    transform = data.transform(preset.resolution, 3, train=False)
    x, y = transform([data.val[i] for i in range(len(data.val))])
    net = load_supernet(args.run_dir / "supernet" / "step-0").eval()
    rows = []
    for s in step["samples"]:
        net.set_arch(Arch.from_dict(s["arch"]))
        wrong = torch.cat([net(x[i:i + 250]).argmax(1) != y[i:i + 250] for i in range(0, len(y), 250)])
        recorded = round((100.0 - s["val_top1"]) * len(y) / 100)
        if int(wrong.sum()) != recorded:
            raise SystemExit(f"re-scored {int(wrong.sum())} wrong answers, the search recorded {recorded}")
        rows.append("".join("1" if w else "0" for w in wrong.tolist()))
    out = {"source": {"command": " ".join(run["command"]), "step": 0, "et": {k: step["et"][k] for k in ("Q", "E", "T", "n", "k")}},
           "images": len(y), "samples": [{"arch": s["arch"], "val_top1": s["val_top1"]} for s in step["samples"]], "wrong": rows}
    args.out.write_text(json.dumps(portable(out)) + "\n")
    print(f"{len(rows)} subnets x {len(y)} images -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
