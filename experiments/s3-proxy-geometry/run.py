"""What a proxy that keeps s3-vit's geometry costs on this machine, against the default 32 px proxy.

s3-vit's window choices need stage maps at least as large as the windows: 56/28/14/7 tokens, i.e. the
space's own 224 px with patch 4 (112 px with patch 2 has the same token maps and, but for the 4x cheaper
patch embedding, the same cost). The default `cpu` preset trains at 32 px (maps 8/4/2/1). This times, at
both resolutions and with the cpu preset's recipe (sandwich: smallest + 1 random + largest subnet per step,
but batch ``--batch`` to stay within memory at 224 px; costs are per image):

- supernet training: `nascomp.train_supernet` for a few steps (``--steps``), seconds per step;
- scoring: `nascomp.evaluate_supernet` of ``--archs`` budget-meeting subnets, seconds per subnet per image;

and extrapolates the cpu preset's default run (8 supernet epochs on 4000 images, 3 x 120 E-T subnets and
the ~200 search candidates on 500 images) to each resolution. -> results.json

Usage: OMP_NUM_THREADS=1 nice -n 10 python experiments/s3-proxy-geometry/run.py [--steps 2] [--archs 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

import nascomp  # noqa: E402
from nascomp.nas import PRESETS, make_constraint, parse_budget, sample_candidates  # noqa: E402
from nascomp.spaces import SearchSpace  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from record import portable  # noqa: E402  (records carry no machine paths)

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--archs", type=int, default=4)
    ap.add_argument("--images", type=int, default=64, help="validation images per timed subnet")
    ap.add_argument("--out", type=Path, default=Path("runs/s3-proxy-geometry"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    preset = PRESETS["cpu"]
    recipe = preset.supernet
    space = SearchSpace.load("s3-vit")
    constraint = make_constraint(parse_budget("4gflops"), space, in_chans=3, num_classes=10)
    archs = sample_candidates(space, args.archs, constraint, random.Random("proxy-geometry"))
    rows = {}
    for resolution in (recipe.resolution, space.resolution):
        data = nascomp.load_data("fashion-mnist", limit_train=args.batch * args.steps, limit_val=args.images)
        out = args.out / f"supernet-{resolution}"
        t0, c0 = time.time(), time.process_time()
        run = nascomp.train_supernet(space, data, out, preset=recipe, resolution=resolution, epochs=1, warmup_epochs=0.0,
                                     batch_size=args.batch,
                                     quiet=True, resume=True, eval_archs={"smallest": space.smallest()})
        train_wall = time.time() - t0
        t0, c0s = time.time(), time.process_time()
        nascomp.evaluate_supernet(run.model, archs, data)
        score_wall, score_cpu = time.time() - t0, time.process_time() - c0s
        per_image = run.metrics["train_seconds"] / (args.steps * args.batch)
        per_subnet_image = score_cpu / (args.archs * args.images)
        images = (recipe.epochs + preset.evolve_steps * preset.evolve_epochs) * recipe.limit_train
        scored = (preset.evolve_steps + 1) * preset.et_samples + preset.evolution.population * (preset.evolution.generations + 1)
        rows[str(resolution)] = {
            "maps": [resolution // space.patch_size // 2 ** i for i in range(space.num_stages)],
            "collapsed": [c.describe() for c in space.collapsed(resolution)],
            "train_seconds_per_image": per_image, "train_cpu_s_incl_eval": time.process_time() - c0 - score_cpu, "train_wall_s": train_wall,
            "score_cpu_s_per_subnet_image": per_subnet_image, "score_wall_s": score_wall,
            "extrapolated_default_run_h": {"supernet": images * per_image / 3600,
                                           "scoring": scored * recipe.limit_val * per_subnet_image / 3600},
        }
        print(resolution, json.dumps(rows[str(resolution)]), flush=True)
    doc = {"space": "s3-vit", "recipe": {"sampler": recipe.sampler, "num_random": recipe.num_random, "batch_size": args.batch,
                                         "steps_timed": args.steps, "archs_timed": args.archs, "images_per_arch": args.images},
           "by_resolution": rows, "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg(),
           "machine": f"{platform.machine()} VM, {os.cpu_count()} cores, shared", "date": date.today().isoformat(),
           "command": " ".join(["python", *sys.argv])}
    (HERE / "results.json").write_text(json.dumps(portable(doc), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
