"""Were the seed-0 / seed-1 ties of arch-02 and arch-09 in results.json duplicated runs? Re-run them with the recorded code.

results.json gives arch-02 and arch-09 the same full-validation top-1 for both training seeds (72.7167 and
73.5667 %, equal to 1/6000), while the other eight archs differ between seeds by 0.4-2.6 points. The
recorded runs were made with the code of commit d8f3bbf (`nascomp train` did not then seed the initial
weights from --seed; only data order and augmentation differed). This re-runs exactly the commands of
README.md / commands.log for both archs and both seeds *with that code* (extracted by ``git archive`` into a
scratch folder and driven through its command line, the interface those runs used), evaluates each model
on the full 6000-image validation split as run.py did, and compares with the recorded numbers:

- seed 0 reproducing its recorded number checks that the re-run is the recorded computation (CPU runs are
  deterministic);
- seed 1 then says what the second seed really gives. -> rerun_ties.json

Usage: OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python experiments/supernet-ranking/rerun_ties.py [--work /tmp/rerun-ties]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from record import portable  # noqa: E402  (records carry no machine paths)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
COMMIT = "d8f3bbf"
ARCHS = ("arch-02", "arch-09")
RECIPE = ["--img-size", "32", "--epochs", "5", "--batch-size", "64", "--lr", "2e-3", "--warmup-epochs", "1", "--model-kwargs",
          '{"drop_path_rate": 0.0}', "--limit-test", "1000", "--quiet", "--data", "fashion-mnist", "--limit-train", "2000", "--limit-val", "1000"]

# run under the recorded code: the archs exactly as its run.py picked them, and its full-validation evaluation
PICK = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("ranking", "experiments/supernet-ranking/run.py")
ranking = importlib.util.module_from_spec(spec); spec.loader.exec_module(ranking)
from nascomp.spaces import SearchSpace
for i, a in enumerate(ranking.pick_archs(SearchSpace.load("s3-vit-cpu"), 10)):
    open(f"{sys.argv[1]}/arch-{i:02d}.json", "w").write(a.to_json(indent=1))
"""
EVALUATE = """
import importlib.util, json, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("ranking", "experiments/supernet-ranking/run.py")
ranking = importlib.util.module_from_spec(spec); spec.loader.exec_module(ranking)
from nascomp.data import load_data
full_val = load_data("fashion-mnist", limit_train=1)
print(json.dumps(ranking.evaluate_standalone(Path(sys.argv[1]), full_val)))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/rerun-ties"))
    args = ap.parse_args()
    code = args.work / f"code-{COMMIT}"
    if not (code / "nascomp").is_dir():
        code.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", COMMIT], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(code)], input=archive, check=True)
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    archs = args.work / "archs"
    archs.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-c", PICK, str(archs)], cwd=code, env=env, check=True)
    recorded = {r["arch"]: r for r in json.loads((HERE / "results.json").read_text())["rows"]}
    rows = []
    for name in ARCHS:
        arch = json.loads((archs / f"{name}.json").read_text())
        depths = [len(s["blocks"]) for s in arch["stages"]]
        assert depths == list(recorded[name]["depths"]), f"{name}: picked {depths}, recorded {recorded[name]['depths']}"
        for seed in (0, 1):
            out = args.work / f"{name}-seed{seed}"
            argv = [sys.executable, "-m", "nascomp", "train", str(archs / f"{name}.json"), "--out", str(out), "--resume", "--seed", str(seed), *RECIPE]
            t0 = time.time()
            if not (out / "metrics.json").is_file():
                subprocess.run(argv, cwd=code, env=env, check=True)
            full = json.loads(subprocess.run([sys.executable, "-c", EVALUATE, str(out)], cwd=code, env=env, check=True,
                                             capture_output=True, text=True).stdout.strip().splitlines()[-1])
            rec = recorded[name][f"standalone_seed{seed}_val_top1"]
            rows.append({"arch": name, "seed": seed, "rerun_val_top1": full["top1"], "recorded_val_top1": rec,
                         "reproduces_record": abs(full["top1"] - rec) < 1e-9, "wall_s": round(time.time() - t0),
                         "command": " ".join(["nascomp", *argv[3:]])})
            print(json.dumps(rows[-1]), flush=True)
    doc = {"commit": COMMIT, "rows": rows, "machine": f"{platform.machine()} VM, {os.cpu_count()} cores, shared",
           "date": date.today().isoformat(), "command": " ".join(["python", *sys.argv])}
    (HERE / "rerun_ties.json").write_text(json.dumps(portable(doc), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
