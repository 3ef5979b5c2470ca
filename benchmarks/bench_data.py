"""Data loading and 224 px training throughput: nascomp against timm, side by side in one run.

1. Loader: training images/s of nascomp's loader (what `nascomp.engine.fit` builds for an image folder:
   `EpochSampler` + `make_loader` + the timm recipe of `nascomp.data.recipe`) against timm's own
   `create_loader` on the same JPEG tree (Fashion-MNIST written as RGB JPEGs) with the same transforms
   (RandomResizedCrop 224 + flip, RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25 pixel mode, bicubic,
   ImageNet normalisation; no prefetcher: normalised float batches on the CPU), with 0, 1 and 2 workers.
   timm's transform gets nascomp's posterize clamp too: without it timm's loader stops with Pillow's
   "bits must be between or equal to 1 and 8" within the first thousand or so images.
   Each measurement is one full pass over the tree from a fresh loader (worker start-up included), the two
   loaders alternate which goes first, and every repeat measures both. ``loader_ratio_vs_timm`` is the
   median over all (workers, repeat) pairs of nascomp images/s / timm images/s (goal >= 0.95). Beside it,
   the CPU seconds each loader spent per image (training process and workers), which other jobs on a
   shared machine disturb far less than the wall clock.
2. Training step at 224 px: the supernet over s3-vit set to Swin-T (``set_arch(load_arch("swin-t"))``)
   against timm's stand-alone ``swin_tiny_patch4_window7_224`` (zero_grad + forward + cross-entropy +
   backward, the protocol of bench_supernet.py), one torch thread, interleaved; images/s from the median.

    PYTHONPATH=$PWD nice -n 10 .venv/bin/python benchmarks/bench_data.py

Results: benchmarks/results/bench_data.json; summary in benchmarks/results/bench_data.md.
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_supernet import _train_step, interleaved  # noqa: E402  (same step protocol as the 32 px overhead figures)
from record import run_header  # noqa: E402

from nascomp.core.io import atomic_write_json  # noqa: E402
from nascomp.data import EpochSampler, ImageFolderDataset, ImageRecipe, SampleTransform, make_loader, write_image_folder  # noqa: E402
from nascomp.data.datasets import STATS  # noqa: E402
from nascomp.data.recipe import RAND_AUGMENT, clamp_posterize, train_transform  # noqa: E402
from nascomp.profiling.host import load_average  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MEAN, STD = STATS["imagenet"]


def nascomp_loader(root: Path, batch: int, workers: int, resolution: int, device: str = "cpu"):
    """What `nascomp.engine.fit` builds for an image folder's training split."""
    samples, _ = ImageFolderDataset.scan(root)
    dataset = ImageFolderDataset(samples)
    sampler = EpochSampler(len(dataset), batch, seed=0, keyed=True)
    sampler.set_epoch(0)
    transform = SampleTransform(train_transform(resolution, MEAN, STD, ImageRecipe()), in_chans=3)
    return make_loader(dataset, transform, batch, sampler=sampler, workers=workers, device=device, drop_last=True)


def timm_loader(root: Path, batch: int, workers: int, resolution: int, device: str = "cpu"):
    """timm's own loader with the same transforms (pinned memory where nascomp pins: on CUDA)."""
    from timm.data import ImageDataset, create_loader

    loader = create_loader(
        ImageDataset(str(root)),
        input_size=(3, resolution, resolution),
        batch_size=batch,
        is_training=True,
        use_prefetcher=False,
        re_prob=0.25,
        re_mode="pixel",
        re_count=1,
        color_jitter=0.4,
        auto_augment=RAND_AUGMENT,
        interpolation="bicubic",
        mean=MEAN,
        std=STD,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device == "cuda",
        device=torch.device(device),
    )
    clamp_posterize(loader.dataset.transform)  # unpatched, timm's loader dies on Pillow's posterize error within ~1000 images
    return loader


def images_per_second(loader, device: str = "cpu") -> tuple[float, int]:
    """Images/s of one full pass, batches moved to ``device`` as training would."""
    start, n = time.perf_counter(), 0
    for images, _ in loader:
        images.to(device, non_blocking=True)
        n += len(images)
    if device == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - start), n


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the loader's workers, once shut down)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def measure(build, root: Path, args, workers: int) -> dict:
    """Images/s (wall) of one pass from a fresh loader, and the CPU seconds per image it cost (workers included)."""
    cpu0 = _cpu_seconds()
    loader = build(root, args.batch, workers, args.resolution)
    ips, n = images_per_second(loader)
    del loader  # joins the workers, so their CPU time is counted
    gc.collect()
    return {"ips": ips, "images": n, "cpu_ms_per_image": 1000 * (_cpu_seconds() - cpu0) / n}


def bench_loaders(root: Path, args) -> dict:
    rows = []
    for repeat in range(args.repeats):
        for workers in args.workers:
            first_nascomp = (repeat + workers) % 2 == 0
            order = [("nascomp", nascomp_loader), ("timm", timm_loader)]
            m = {name: measure(build, root, args, workers) for name, build in (order if first_nascomp else order[::-1])}
            rows.append(
                {
                    "repeat": repeat,
                    "workers": workers,
                    "images": m["nascomp"]["images"],
                    "first": "nascomp" if first_nascomp else "timm",
                    "nascomp_ips": m["nascomp"]["ips"],
                    "timm_ips": m["timm"]["ips"],
                    "ratio": m["nascomp"]["ips"] / m["timm"]["ips"],
                    "nascomp_cpu_ms_per_image": m["nascomp"]["cpu_ms_per_image"],
                    "timm_cpu_ms_per_image": m["timm"]["cpu_ms_per_image"],
                    "cpu_ratio": m["timm"]["cpu_ms_per_image"] / m["nascomp"]["cpu_ms_per_image"],
                }
            )
            r = rows[-1]
            print(
                f"repeat {repeat} workers {workers}: nascomp {r['nascomp_ips']:.1f} img/s, timm {r['timm_ips']:.1f} img/s, ratio "
                f"{r['ratio']:.3f} "
                f"(CPU per image: ratio {r['cpu_ratio']:.3f})",
                flush=True,
            )
    per_workers = {}
    for workers in args.workers:
        mine = [r for r in rows if r["workers"] == workers]
        per_workers[str(workers)] = {
            key: statistics.median(r[key] for r in mine)
            for key in ("nascomp_ips", "timm_ips", "ratio", "nascomp_cpu_ms_per_image", "timm_cpu_ms_per_image", "cpu_ratio")
        }
    return {
        "rows": rows,
        "per_workers": per_workers,
        "loader_ratio_vs_timm": statistics.median(r["ratio"] for r in rows),
        "loader_cpu_ratio_vs_timm": statistics.median(r["cpu_ratio"] for r in rows),
    }


def bench_swin(args) -> dict:
    import timm

    import nascomp
    from nascomp.nas.supernet import Supernet

    torch.manual_seed(0)
    supernet = Supernet(nascomp.load_space("s3-vit"), num_classes=10, img_size=args.resolution, drop_path_rate=0.0)
    supernet.set_arch(nascomp.load_arch("swin-t"))
    swin = timm.create_model("swin_tiny_patch4_window7_224", num_classes=10)
    supernet.train(), swin.train()
    x = torch.randn(args.swin_batch, 3, args.resolution, args.resolution)
    y = torch.randint(0, 10, (args.swin_batch,))
    result = interleaved(_train_step(supernet, x, y), _train_step(swin, x, y), args.swin_repeats, args.swin_warmup)
    ips = {name: args.swin_batch / result[key]["wall"] for name, key in (("supernet", "supernet_s"), ("timm", "standalone_s"))}
    out = {
        **result,
        "supernet_ips": ips["supernet"],
        "timm_ips": ips["timm"],
        "throughput_ratio_wall": ips["supernet"] / ips["timm"],
        "throughput_ratio_cpu": result["standalone_s"]["cpu"] / result["supernet_s"]["cpu"],
    }
    print(
        f"224 px train step: supernet as Swin-T {ips['supernet']:.2f} img/s, timm Swin-T {ips['timm']:.2f} img/s "
        f"(throughput ratio {out['throughput_ratio_wall']:.3f} wall, {out['throughput_ratio_cpu']:.3f} CPU time)",
        flush=True,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2048, help="training JPEGs written from Fashion-MNIST")
    parser.add_argument("--jpeg-size", type=int, default=256, help="side of the written JPEGs")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--swin-batch", type=int, default=4)
    parser.add_argument("--swin-repeats", type=int, default=6)
    parser.add_argument("--swin-warmup", type=int, default=1)
    parser.add_argument("--skip-swin", action="store_true")
    parser.add_argument("--data-dir", help="Fashion-MNIST folder (default: $NASCOMP_DATA, then the Debian path)")
    parser.add_argument("--out", default=str(RESULTS / "bench_data.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    doc = {
        **run_header(),
        "torch_threads": torch.get_num_threads(),
        "protocol": {
            "loader": {
                "images": args.images,
                "jpeg_size": args.jpeg_size,
                "resolution": args.resolution,
                "batch": args.batch,
                "workers": args.workers,
                "repeats": args.repeats,
                "transforms": f"RandomResizedCrop {args.resolution} + hflip, RandAugment {RAND_AUGMENT}, random erasing 0.25 "
                "(pixel), bicubic, ImageNet normalisation, float batches on the CPU (no prefetcher)",
                "statistic": "images/s of one full pass from a fresh loader; ratio = nascomp / timm per (workers, repeat); "
                "loader_ratio_vs_timm = median over all pairs; cpu_ratio = timm / nascomp CPU seconds per image "
                "(training process + workers), a load-insensitive check of the same",
            },
            "swin": {
                "batch": args.swin_batch,
                "repeats": args.swin_repeats,
                "warmup": args.swin_warmup,
                "resolution": args.resolution,
                "step": "zero_grad + forward + cross-entropy + backward",
                "statistic": "median per model, interleaved",
            },
        },
    }
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        t0 = time.time()
        root = write_image_folder("fashion-mnist", tmp, train=args.images, val=0, size=args.jpeg_size, data_dir=args.data_dir) / "train"
        print(f"wrote {args.images} JPEGs at {args.jpeg_size} px in {time.time() - t0:.0f}s", flush=True)
        doc["loader"] = bench_loaders(root, args)
    doc["loader_ratio_vs_timm"] = doc["loader"]["loader_ratio_vs_timm"]
    print(
        f"loader_ratio_vs_timm {doc['loader_ratio_vs_timm']:.3f} (CPU time per image: {doc['loader']['loader_cpu_ratio_vs_timm']:.3f})",
        flush=True,
    )
    if not args.skip_swin:
        doc["swin_t_train_224"] = bench_swin(args)
    doc["load_average_end"] = load_average()
    atomic_write_json(args.out, doc)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
