"""Ranking fidelity of the S3 supernet: inherited vs stand-alone accuracy of archs spread over a space.

Steps (each skipped when its output exists, so the script resumes after an interruption):

1. train the supernet:   nascomp supernet train --space s3-vit-cpu --preset cpu ...
2. pick N archs spread over the space: 1000 uniform samples sorted by MACs, taken at evenly spaced ranks;
3. inherited accuracy:   nascomp supernet eval RUN --arch A.json ... (the fixed validation split);
4. stand-alone accuracy: nascomp train A.json ... (one short recipe, same training subset, random init);
5. Kendall's tau between the two accuracy lists -> results.json (README.md reports it).

Usage: nice -n 10 .venv/bin/python experiments/supernet-ranking/run.py [--out runs/supernet-ranking] [--archs 10]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from scipy.stats import kendalltau, spearmanr  # noqa: E402

from nascomp.cli import main as nascomp  # noqa: E402
from nascomp.io import atomic_write_json, read_json  # noqa: E402
from nascomp.profile.arch_cost import arch_cost  # noqa: E402
from nascomp.spaces import SearchSpace  # noqa: E402

HERE = Path(__file__).resolve().parent
SPACE = "s3-vit-cpu"
DATA = ["--data", "fashion-mnist", "--limit-train", "2000", "--limit-val", "1000"]
# One short stand-alone recipe for every arch: the supernet's data, resolution and optimiser settings.
STANDALONE = ["--img-size", "32", "--epochs", "5", "--batch-size", "64", "--lr", "2e-3", "--warmup-epochs", "1",
              "--model-kwargs", '{"drop_path_rate": 0.0}', "--limit-test", "1000", "--quiet"]


def run(argv: list[str], log) -> None:
    print("$ nascomp " + " ".join(argv), file=log, flush=True)
    t0 = time.time()
    rc = nascomp(argv)
    print(f"  -> exit {rc} in {time.time() - t0:.0f}s", file=log, flush=True)
    if rc:
        raise SystemExit(f"nascomp {' '.join(argv)} failed with exit status {rc}")


def pick_archs(space: SearchSpace, n: int, seed: int = 0) -> list:
    """n archs at evenly spaced MAC ranks of 1000 uniform samples: spread from small to large."""
    rng = random.Random(seed)
    pool = sorted((space.sample(rng) for _ in range(1000)), key=lambda a: arch_cost(a, space.resolution, num_classes=10).macs)
    return [pool[round(i * (len(pool) - 1) / (n - 1))] for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/supernet-ranking")
    parser.add_argument("--archs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "commands.log", "a")
    space = SearchSpace.load(SPACE)

    supernet_dir = out / "supernet"
    if not (supernet_dir / "metrics.json").is_file():
        run(["supernet", "train", "--space", SPACE, "--preset", "cpu", "--out", str(supernet_dir), "--quiet", "--resume",
             "--seed", str(args.seed), *DATA], log)

    archs = pick_archs(space, args.archs)
    paths = []
    for i, arch in enumerate(archs):
        path = out / "archs" / f"arch-{i:02d}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(arch.to_json(indent=1))
        paths.append(path)

    inherited_file = out / "inherited.json"
    if not inherited_file.is_file():
        buf = io.StringIO()
        print(f"$ nascomp supernet eval {supernet_dir} " + " ".join(f"--arch {p}" for p in paths) + " ... --json", file=log, flush=True)
        with contextlib.redirect_stdout(buf):
            rc = nascomp(["supernet", "eval", str(supernet_dir), *sum((["--arch", str(p)] for p in paths), []), "--json", *DATA])
        if rc:
            raise SystemExit("supernet eval failed")
        atomic_write_json(inherited_file, json.loads(buf.getvalue()))
    inherited = read_json(inherited_file)

    standalone = []
    for i, path in enumerate(paths):
        run_dir = out / "standalone" / path.stem
        if not (run_dir / "metrics.json").is_file():
            run(["train", str(path), "--out", str(run_dir), "--resume", "--seed", str(args.seed), *STANDALONE, *DATA], log)
        standalone.append(read_json(run_dir / "metrics.json"))

    rows = []
    for i, (arch, inh, alone) in enumerate(zip(archs, inherited, standalone)):
        cost = arch_cost(arch, space.resolution, num_classes=10)
        rows.append({"arch": f"arch-{i:02d}", "depths": arch.depths, "embed_dims": arch.embed_dims, "params": cost.params,
                     "mmacs": cost.macs / 1e6, "inherited_val_top1": inh["top1"], "standalone_val_top1": alone["val"]["top1"],
                     "standalone_test_top1": alone["test"]["top1"], "standalone_seconds": alone["train_seconds"]})
    x, y = [r["inherited_val_top1"] for r in rows], [r["standalone_val_top1"] for r in rows]
    tau, p_tau = kendalltau(x, y)
    rho, _ = spearmanr(x, y)
    macs = [r["mmacs"] for r in rows]
    tau_macs, _ = kendalltau(macs, y)
    supernet_metrics = read_json(supernet_dir / "metrics.json")
    result = {
        "space": SPACE, "n_archs": len(rows), "kendall_tau": tau, "kendall_p": p_tau, "spearman_rho": rho,
        "kendall_tau_macs_vs_standalone": tau_macs, "rows": rows,
        "supernet": {"train_seconds": supernet_metrics["train_seconds"], "val": supernet_metrics["val"],
                     "notes": supernet_metrics["supernet"]["notes"], "recipe": supernet_metrics["supernet"]["recipe"]},
        "standalone_recipe": STANDALONE, "data": DATA, "torch_threads": torch.get_num_threads(),
    }
    atomic_write_json(HERE / "results.json", result)
    print(json.dumps({k: result[k] for k in ("kendall_tau", "kendall_p", "spearman_rho", "kendall_tau_macs_vs_standalone")}, indent=1))
    for r in rows:
        print(f"{r['arch']}  {r['mmacs']:6.2f} MMACs  {r['params'] / 1e6:5.2f} M  inherited {r['inherited_val_top1']:6.2f}  "
              f"stand-alone {r['standalone_val_top1']:6.2f}")


if __name__ == "__main__":
    sys.exit(main())
