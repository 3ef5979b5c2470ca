"""Scoring passes over a 224 px JPEG validation split: decoded every pass (before) vs decoded once (`DecodedEvalSet`).

Search runs every candidate subnet over the same validation images. Before, a split too large for the
2 GiB float cache (the ``full`` preset's 25,000 images at 224 px are 15 GB as float) was decoded, resized
and cropped again for every candidate. `DecodedEvalSet` keeps the uint8 crops (a quarter of the bytes;
always on a GPU) and each later pass only converts and normalises, or the float input where a CPU has room.
This measures the data side of one pass, three ways, side by side in one run (interleaved, median of
repeats), with 0 and 2 loader workers, on Fashion-MNIST written as RGB JPEGs. The forward pass is left out:
it is the same in all three and, on a CPU, far slower than any.

    PYTHONPATH=$PWD nice -n 10 .venv/bin/python benchmarks/bench_eval_set.py

Results: benchmarks/results/bench_eval_set.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from record import run_header  # noqa: E402

from nascomp.core.io import atomic_write_json  # noqa: E402
from nascomp.data import DecodedEvalSet, load_data, write_image_folder  # noqa: E402
from nascomp.profiling.host import load_average  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def one_pass(images: DecodedEvalSet) -> float:
    t0 = time.perf_counter()
    for x, _ in images.batches():
        x.sum()  # touch the batch as a model would
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--jpeg-size", type=int, default=256)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", help="Fashion-MNIST folder (default: $NASCOMP_DATA, then the Debian path)")
    parser.add_argument("--out", default=str(RESULTS / "bench_eval_set.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    doc = {
        **run_header(),
        "torch_threads": torch.get_num_threads(),
        "protocol": {
            "images": args.images,
            "jpeg_size": args.jpeg_size,
            "resolution": args.resolution,
            "batch": args.batch,
            "transform": "timm eval: resize 256 bilinear, centre crop 224, to-tensor, ImageNet normalisation",
            "statistic": "seconds of one pass over the split (data only), median of repeats; streamed and kept interleaved",
        },
        "runs": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-eval-set-") as tmp:
        root = write_image_folder("fashion-mnist", tmp, train=10, val=args.images, size=args.jpeg_size, data_dir=args.data_dir)
        bundle = load_data(f"imagefolder:{root}")
        split, tf = bundle.test, bundle.transform(args.resolution, 3, train=False)
        for workers in args.workers:
            uint8_bytes = len(split) * 3 * args.resolution**2
            ways = {
                "streamed": DecodedEvalSet(split, tf, batch_size=args.batch, workers=workers, max_bytes=0),
                "kept_uint8": DecodedEvalSet(split, tf, batch_size=args.batch, workers=workers, max_bytes=uint8_bytes),
                "kept_float": DecodedEvalSet(split, tf, batch_size=args.batch, workers=workers, max_bytes=4 * uint8_bytes),
            }
            first = {k: one_pass(ways[k]) for k in ("kept_uint8", "kept_float")}  # decode and keep
            times = {k: [] for k in ways}
            for _ in range(args.repeats):
                for k, images in ways.items():
                    times[k].append(one_pass(images))
            med = {k: statistics.median(v) for k, v in times.items()}
            run = {
                "first_pass_s": first,
                "pass_s": med,
                "all_s": times,
                "pass_speedup_vs_streamed": {k: med["streamed"] / med[k] for k in ("kept_uint8", "kept_float")},
                "kept_bytes": {k: ways[k].nbytes for k in ("kept_uint8", "kept_float")},
                "decodes": {k: v.decodes for k, v in ways.items()},
            }
            doc["runs"][f"workers={workers}"] = run
            print(
                f"workers={workers}: s/pass streamed {med['streamed']:.2f}, kept uint8 {med['kept_uint8']:.3f}, "
                f"kept float {med['kept_float']:.3f}; first (keeping) pass {first['kept_uint8']:.2f} s; "
                f"kept {ways['kept_uint8'].nbytes / 2**20:.0f} MiB as uint8, {ways['kept_float'].nbytes / 2**20:.0f} MiB as float",
                flush=True,
            )
    doc["load_average_end"] = load_average()
    atomic_write_json(args.out, doc)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
