"""Reproduces experiments/minivit-swin/README.md through the Python API (CPU only; one thread; finished runs are skipped).

    nice -n 10 .venv/bin/python experiments/minivit-swin/run.py

1. the teacher: timm's SwinTransformer (Swin-T layout 2-2-6-2) sized for 32 px Fashion-MNIST, `nascomp.train`;
2. the students, one recipe for all (`nascomp.compress`: AdamW, 4 epochs, peak lr 5e-4, half an epoch of warm-up);
3. step-0 accuracy of each initialisation (init_check.py);
4. deployables and latency: `nascomp.export` (ONNX, checked with ONNX Runtime), then `nascomp.profile` with ONNX Runtime
   fp32, batch 1, one thread, all models back to back; the machine is shared, so both targets time the thread's CPU
   time (thread-cpu timer); `cpu` is unpinned, `mobile-cpu` pins core 1;
5. the table (table.py) and the small per-run records kept in git (results/; runs/ is ignored).

(dropblocks and minivit-random-init were stopped part-way and continued with resume; resume is bit-identical on CPU.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

import nascomp  # noqa: E402

HERE = Path(__file__).resolve().parent
RUNS = HERE / "runs"
SWIN = ("swin_tiny_patch4_window7_224", dict(img_size=32, patch_size=4, window_size=4, embed_dim=32, num_heads=(1, 2, 4, 8), in_chans=1))
STUDENT = dict(epochs=4, lr=5e-4, warmup_epochs=0.5)  # with the CLI's other defaults (batch 128, wd 0.05, ls 0.1, clip 5, seed 0)
STUDENTS = {  # run -> (method, options, distillation); weight distillation ("minivit") is the default
    "minivit": ("minivit", {}, "minivit"),
    "minivit-nodistill": ("minivit", {}, "none"),
    "minivit-random-init": ("minivit", {}, "minivit"),  # init="random" below
    "dropblocks": ("drop-blocks", {"keep": [2, 2, 1, 1]}, "minivit"),
    "dropblocks-nodistill": ("drop-blocks", {"keep": [2, 2, 1, 1]}, "none"),
    # control: the uncompressed teacher trained 4 more epochs with the student recipe (no sharing, no transforms, labels only)
    "teacher-plus4": ("minivit", {"share": 1, "head_transform": False, "mlp_transform": False}, "none"),
}
NAMES = ["teacher", *STUDENTS]


def main() -> None:
    torch.set_num_threads(1)
    RUNS.mkdir(exist_ok=True)
    teacher = RUNS / "teacher"
    if not (teacher / "metrics.json").is_file():
        nascomp.train(SWIN[0], "fashion-mnist", teacher, model_kwargs=SWIN[1], epochs=8, quiet=True)
    for name, (method, options, distill) in STUDENTS.items():
        out = RUNS / name
        if not (out / "metrics.json").is_file():
            nascomp.compress(teacher, method, "fashion-mnist", out, options=options, distill=distill,
                             init="random" if name == "minivit-random-init" else "teacher", resume=out.is_dir(), quiet=True, **STUDENT)
    if not (RUNS / "init.json").is_file():
        subprocess.run([sys.executable, str(HERE / "init_check.py"), str(teacher), "--out", str(RUNS / "init.json")], check=True)
    for name in NAMES:
        export = nascomp.export(RUNS / name, RUNS / name / "model.onnx")
        (RUNS / name / "export.json").write_text(json.dumps(export.to_dict(), indent=2) + "\n")
    load = [os.getloadavg()]
    for target in ("cpu", "mobile-cpu"):
        for name in NAMES:
            nascomp.profile(RUNS / name, target, runtimes=["onnxruntime"], precisions=["fp32"], threads=1, timer="thread-cpu", warmup=50,
                            repeat=500, out=RUNS / name / f"profile-{target}.json")
    load.append(os.getloadavg())
    (RUNS / "load.txt").write_text("".join(f"load average: {a:.2f}, {b:.2f}, {c:.2f}\n" for a, b, c in load))
    subprocess.run([sys.executable, str(HERE / "table.py"), str(RUNS), "--json", str(HERE / "results.json")], check=True)
    for name in NAMES:
        (HERE / "results" / name).mkdir(parents=True, exist_ok=True)
        for f in ("metrics.json", "export.json", "profile-cpu.json", "profile-mobile-cpu.json"):
            shutil.copy(RUNS / name / f, HERE / "results" / name / f)
    for f in ("init.json", "load.txt"):
        shutil.copy(RUNS / f, HERE / "results" / f)


if __name__ == "__main__":
    sys.exit(main())
