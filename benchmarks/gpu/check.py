"""The GPU check: every CUDA path nascomp has, measured in one run of under 8 minutes on one GPU.

Stages (each writes its section of ``OUT/gpu_check.json`` as soon as it finishes, so a timeout keeps the rest):

1. ``amp_train``: bf16-autocast training images/s at 224 px (forward, cross-entropy, backward, AdamW step) of
   the s3-vit supernet set to Swin-T against timm's stand-alone ``swin_tiny_patch4_window7_224``, interleaved;
2. ``loader``: training images/s of nascomp's loader and timm's ``create_loader`` (same transforms, pinned
   memory, batches moved to the GPU) with 16 workers on a generated JPEG tree (Fashion-MNIST if installed,
   else synthetic stripes, written at 256 px);
3. ``latency`` and ``energy``: `nascomp.profile` of Swin-T, S3-T and DeiT-S at batch 1 and 64 on ``cuda``
   (CUDA-event latency; NVML energy per inference with the idle draw subtracted);
4. ``search``: a ``nascomp search --preset full`` shrunk by its own options on s3-vit at 224 px over the JPEG
   tree, given two minutes; its stage timings and whether it finished.

``--dry-run`` (or ``NASCOMP_GPU_CHECK_DRY=1``) runs every stage at tiny sizes on the CPU (a tiny 224 px space
for the search), so CI catches rot; its numbers are CPU numbers of toy sizes and say so.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the stages reuse bench_data.py
sys.path.insert(1, str(ROOT))  # and the synthetic stripes of tests/synthetic.py

TINY_224 = {  # the dry run's search space: two stages at 224 px, seconds per epoch on a CPU
    "name": "tiny-224",
    "resolution": 224,
    "patch_size": 8,
    "stages": [
        {"depth": [1, 2], "embed_dim": [16, 24], "heads": [1, 2], "qkv_dim": [16], "mlp_ratio": [1.0, 2.0], "window": [7]},
        {"depth": [1, 2], "embed_dim": [24, 32], "heads": [1, 2], "qkv_dim": [16, 32], "mlp_ratio": [1.0, 2.0], "window": [7, 14]},
    ],
}
SIZES = {
    "full": {
        "train_batch": 64,
        "train_warmup": 5,
        "train_blocks": 6,
        "train_block_steps": 5,
        "images": 8192,
        "val_images": 1024,
        "loader_batch": 128,
        "workers": 16,
        "loader_repeats": 2,
        "profile_batches": [1, 64],
        "profile_warmup": 10,
        "profile_repeat": 50,
        "energy_window_s": 2.0,
        "count_cost": True,
        "search_seconds": 120,
        "search": [
            "--space",
            "s3-vit",
            "--budget",
            "4gflops",
            "--supernet-epochs",
            "1",
            "--evolve-steps",
            "1",
            "--evolve-epochs",
            "1",
            "--et-samples",
            "16",
            "--population",
            "8",
            "--generations",
            "1",
            "--parents",
            "4",
            "--mutations",
            "4",
            "--crossovers",
            "4",
            "--top",
            "1",
            "--retrain-epochs",
            "1",
            "--limit-train",
            "4096",
            "--limit-val",
            "512",
            "--limit-test",
            "512",
            "--batch-size",
            "64",
        ],
    },
    "dry": {
        "train_batch": 1,
        "train_warmup": 0,
        "train_blocks": 2,
        "train_block_steps": 1,
        "images": 48,
        "val_images": 16,
        "loader_batch": 8,
        "workers": 2,
        "loader_repeats": 1,
        "profile_batches": [1, 2],
        "profile_warmup": 0,
        "profile_repeat": 1,
        "energy_window_s": 0.2,
        "count_cost": False,
        "search_seconds": 600,
        "search": [
            "--budget",
            "13000000macs",
            "--supernet-epochs",
            "1",
            "--evolve-steps",
            "1",
            "--evolve-epochs",
            "1",
            "--et-samples",
            "4",
            "--population",
            "4",
            "--generations",
            "1",
            "--parents",
            "2",
            "--mutations",
            "2",
            "--crossovers",
            "2",
            "--top",
            "1",
            "--retrain-epochs",
            "1",
            "--limit-train",
            "32",
            "--limit-val",
            "8",
            "--limit-test",
            "8",
            "--batch-size",
            "8",
        ],
    },
}
PROFILED = {"swin-t": "swin_tiny_patch4_window7_224", "s3-t": "swin_s3_tiny_224", "deit-s": "deit_small_patch16_224"}


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def amp_train(size: dict, device: str, workdir: Path) -> dict:
    import timm
    import torch.nn.functional as F
    from timm.optim import create_optimizer_v2

    import nascomp
    from nascomp.nas.supernet import Supernet

    torch.manual_seed(0)
    supernet = Supernet(nascomp.load_space("s3-vit"), num_classes=1000, img_size=224).to(device)
    supernet.set_arch(nascomp.load_arch("swin-t"))
    models = {"supernet_as_swin_t": supernet, "timm_swin_t": timm.create_model("swin_tiny_patch4_window7_224").to(device)}
    batch = size["train_batch"]
    x = torch.randn(batch, 3, 224, 224, device=device)
    y = torch.randint(0, 1000, (batch,), device=device)
    amp = device == "cuda"  # bf16 autocast on the GPU; the dry run keeps fp32 on the CPU

    def step(model, opt):
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    opts = {name: create_optimizer_v2(m.train(), "adamw", lr=1e-4, weight_decay=0.05) for name, m in models.items()}
    for name, m in models.items():
        for _ in range(size["train_warmup"]):
            step(m, opts[name])
    rates = {name: [] for name in models}
    for block in range(size["train_blocks"]):
        for name in list(models) if block % 2 == 0 else list(models)[::-1]:
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(size["train_block_steps"]):
                step(models[name], opts[name])
            _sync(device)
            rates[name].append(batch * size["train_block_steps"] / (time.perf_counter() - t0))
    med = {name: statistics.median(r) for name, r in rates.items()}
    return {
        "images_per_s": med,
        "ratio_supernet_vs_timm": med["supernet_as_swin_t"] / med["timm_swin_t"],
        "samples": rates,
        "protocol": {
            "resolution": 224,
            "batch": batch,
            "precision": "bf16 autocast" if amp else "fp32 (dry run)",
            "step": "forward + cross-entropy + backward + AdamW step",
            "warmup_steps": size["train_warmup"],
            "blocks": size["train_blocks"],
            "steps_per_block": size["train_block_steps"],
            "statistic": "median over alternating blocks",
        },
    }


def _jpeg_tree(size: dict, workdir: Path) -> Path:
    from nascomp.core.errors import NascompError
    from nascomp.data.folders import write_image_folder
    from tests.synthetic import synthetic_tree

    root = workdir / "jpegs"
    if not root.is_dir():
        processes = max(1, min(16, os.cpu_count() or 1))
        try:
            write_image_folder("fashion-mnist", root, train=size["images"], val=size["val_images"], size=256, processes=processes)
        except NascompError:  # Fashion-MNIST is not installed on the GPU machine: synthetic stripes instead
            synthetic_tree(root, size["images"], size["val_images"], 256, processes=processes)
    return root


def loader(size: dict, device: str, workdir: Path) -> dict:
    from bench_data import images_per_second, nascomp_loader, timm_loader

    root = _jpeg_tree(size, workdir)
    rows = []
    for repeat in range(size["loader_repeats"]):
        order = [("nascomp", nascomp_loader), ("timm", timm_loader)]
        for name, build in order if repeat % 2 == 0 else order[::-1]:
            ips, n = images_per_second(build(root / "train", size["loader_batch"], size["workers"], 224, device), device)
            rows.append({"loader": name, "repeat": repeat, "images_per_s": ips, "images": n})
    med = {name: statistics.median(r["images_per_s"] for r in rows if r["loader"] == name) for name in ("nascomp", "timm")}
    return {
        "images_per_s": med,
        "ratio_nascomp_vs_timm": med["nascomp"] / med["timm"],
        "rows": rows,
        "protocol": {
            "workers": size["workers"],
            "batch": size["loader_batch"],
            "resolution": 224,
            "jpeg_side": 256,
            "images": size["images"],
            "pin_memory": device == "cuda",
            "transforms": "timm recipe (see bench_data.py)",
        },
    }


def profiles(size: dict, device: str, workdir: Path) -> dict:
    import nascomp

    latency, energy = {}, {}
    for label, name in PROFILED.items():
        for batch in size["profile_batches"]:
            report = nascomp.profile(
                name,
                device,
                runtimes=["torch"],
                batch=batch,
                warmup=size["profile_warmup"],
                repeat=size["profile_repeat"],
                energy=True,
                energy_window_s=size["energy_window_s"],
                count_cost=size["count_cost"],
            )
            doc = report.to_dict()
            key = f"{label}@{batch}"
            latency[key] = {
                "latency_ms": doc["latency_ms"],
                "iqr_ms": doc["iqr_ms"],
                "timer": doc["measurements"][0]["details"].get("timer"),
                "gmacs": doc.get("gmacs"),
                "params": doc.get("params"),
            }
            energy[key] = doc["measurements"][0].get("energy")
            protocol = doc["protocol"]
    return {"latency": latency, "energy": energy, "protocol": protocol}


def search(size: dict, device: str, workdir: Path) -> dict:
    root = _jpeg_tree(size, workdir)
    out = workdir / "search"
    args = list(size["search"])
    if "--space" not in args:
        import yaml

        (workdir / "tiny-224.yaml").write_text(yaml.safe_dump(TINY_224))
        args = ["--space", str(workdir / "tiny-224.yaml"), *args]
    cmd = [
        sys.executable,
        "-m",
        "nascomp",
        "search",
        *args,
        "--preset",
        "full",
        "--data",
        f"imagefolder:{root}",
        "--out",
        str(out),
        "--workers",
        str(size["workers"]),
        "--device",
        device,
        "--quiet",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=size["search_seconds"])
        finished, tail = proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]
        if proc.returncode != 0:
            raise RuntimeError(f"nascomp search exited {proc.returncode}: {tail}")
    except subprocess.TimeoutExpired:
        finished, tail = False, "stopped after the time limit"
    timings = json.loads((out / "timings.json").read_text()) if (out / "timings.json").is_file() else None
    best = json.loads((out / "best_arch.json").read_text()) if (out / "best_arch.json").is_file() else None
    return {
        "finished": finished,
        "wall_s": time.perf_counter() - t0,
        "limit_s": size["search_seconds"],
        "timings": timings,
        "best": {k: best[k] for k in ("gmacs", "params", "val_top1", "test_top1")} if best else None,
        "command": " ".join(shlex.quote(c) for c in cmd),
        "output_tail": tail,
    }


STAGES = {"amp_train": amp_train, "loader": loader, "latency": profiles, "search": search}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="every stage at tiny sizes on the CPU (CI)")
    parser.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "runs" / "gpu-check"), help="folder for gpu_check.json")
    parser.add_argument("--stages", nargs="+", choices=list(STAGES), default=list(STAGES))
    args = parser.parse_args()
    dry = args.dry_run or os.environ.get("NASCOMP_GPU_CHECK_DRY") == "1"
    if not dry and not torch.cuda.is_available():
        print("error: no CUDA device is visible to torch; run on the GPU machine, or use --dry-run", file=sys.stderr)
        return 2
    device = "cpu" if dry else "cuda"
    size = SIZES["dry" if dry else "full"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "dry_run": dry,
        "measured_on": (
            "CPU, dry run at toy sizes: these are not GPU numbers" if dry else f"{torch.cuda.get_device_name(0)} (GPU measurements)"
        ),
        "command": " ".join(shlex.quote(a) for a in sys.argv),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda},
        "cpu_count": os.cpu_count(),
        "sizes": size,
        "stages": {},
    }
    failed = []
    with tempfile.TemporaryDirectory(prefix="nascomp-gpu-check-") as tmp:
        for name in args.stages:
            t0 = time.perf_counter()
            print(f"[gpu-check] {name} ...", flush=True)
            try:
                result = STAGES[name](size, device, Path(tmp))
            except Exception as e:  # noqa: BLE001 - one broken stage must not cost the others their device time
                result = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-4000:]}
                failed.append(name)
            result["stage_seconds"] = time.perf_counter() - t0
            doc["stages"][name] = result
            (out / "gpu_check.json").write_text(json.dumps(doc, indent=2, default=str))
            print(
                f"[gpu-check] {name}: {'FAILED ' + result['error'] if name in failed else 'ok'} ({result['stage_seconds']:.0f}s)",
                flush=True,
            )
    print(f"[gpu-check] -> {out / 'gpu_check.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
