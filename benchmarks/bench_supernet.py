"""Supernet overhead: a step of the supernet with an arch set vs the extracted stand-alone timm model.

For each arch (the space's largest and smallest and random members), the same batch goes through

- train: zero_grad + forward + cross-entropy + backward (no optimiser step: it is the same AdamW on more
  parameters and not part of the network's cost);
- eval: forward in eval mode under ``torch.inference_mode``;

for the supernet (``set_arch(arch)``) and for ``extract(supernet, arch)``, interleaved in one process with
the order alternating every repetition, so load on a shared machine hits both alike. Each model gets the
median over repetitions; the overhead is supernet / stand-alone. Both the wall clock and the calling
thread's CPU time are recorded (with one torch thread all work runs on the calling thread, including the
backward pass on CPU, so thread CPU time excludes time the process spent descheduled by other jobs).
Goals (issue #3): train <= 1.10, eval <= 1.05.

``--nni`` also measures NNI 3.0's AutoFormer space the same way (its one-shot supernet from
``RandomOneShot().mutate_model`` with ``resample(arch)`` vs the frozen model of that arch). NNI's package
imports pytorch-lightning, which nascomp does not install; put it beside the venv without touching it:

    pip install --target /tmp/nni-extra --no-deps pytorch-lightning==2.6.6 lightning-utilities==0.15.3 torchmetrics==1.9.0
    PYTHONPATH=/tmp/nni-extra OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/bench_supernet.py --nni

Results: benchmarks/results/bench_supernet.json; summary with the command in benchmarks/bench_supernet.md.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from record import run_header

from nascomp.core.io import atomic_write_json
from nascomp.cost.arch_cost import arch_cost
from nascomp.nas.supernet import Supernet, extract
from nascomp.profiling.host import load_average
from nascomp.spaces import SearchSpace

RESULTS = Path(__file__).resolve().parent / "results"


def _clocks() -> tuple[float, float]:
    return time.perf_counter(), time.thread_time()


def _train_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    return step


def _eval_step(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        with torch.inference_mode():
            model(x)

    return step


def interleaved(a: Callable[[], None], b: Callable[[], None], repeats: int, warmup: int) -> dict:
    """Median wall / thread-CPU seconds of ``a`` and ``b``, run alternately (ABBA...) in one loop."""
    for _ in range(warmup):
        a(), b()
    times: dict[str, dict[str, list[float]]] = {"a": {"wall": [], "cpu": []}, "b": {"wall": [], "cpu": []}}
    for r in range(repeats):
        order = (("a", a), ("b", b)) if r % 2 == 0 else (("b", b), ("a", a))
        for name, fn in order:
            w0, c0 = _clocks()
            fn()
            w1, c1 = _clocks()
            times[name]["wall"].append(w1 - w0)
            times[name]["cpu"].append(c1 - c0)
    med = {n: {k: statistics.median(v) for k, v in t.items()} for n, t in times.items()}
    return {
        "supernet_s": med["a"],
        "standalone_s": med["b"],
        "ratio_cpu": med["a"]["cpu"] / med["b"]["cpu"],
        "ratio_wall": med["a"]["wall"] / med["b"]["wall"],
    }


def bench_ours(args) -> list[dict]:
    space = SearchSpace.load(args.space)
    resolution = args.resolution or space.resolution
    torch.manual_seed(0)
    supernet = Supernet(space, num_classes=10, img_size=resolution, drop_path_rate=0.0)
    rng = random.Random(args.seed)
    archs = [("largest", space.largest()), ("smallest", space.smallest())]
    archs += [(f"random-{i}", space.sample(rng)) for i in range(args.archs - 2)]
    x = torch.randn(args.batch, 3, resolution, resolution)
    y = torch.randint(0, 10, (args.batch,))
    rows = []
    for name, arch in archs:
        supernet.set_arch(arch)
        model = extract(supernet, arch)
        cost = arch_cost(arch, resolution, num_classes=10)
        supernet.train(), model.train()
        train = interleaved(_train_step(supernet, x, y), _train_step(model, x, y), args.repeats, args.warmup)
        supernet.eval(), model.eval()
        evals = interleaved(_eval_step(supernet, x), _eval_step(model, x), args.repeats, args.warmup)
        rows.append(
            {"arch": name, "mmacs": cost.macs / 1e6, "params": cost.params, "train": train, "eval": evals, "arch_json": arch.to_dict()}
        )
        print(
            f"{name:<10} {cost.macs / 1e6:8.2f} MMACs  train {train['ratio_cpu']:.3f} (wall {train['ratio_wall']:.3f})  "
            f"eval {evals['ratio_cpu']:.3f} (wall {evals['ratio_wall']:.3f})",
            flush=True,
        )
    return rows


def bench_nni(args) -> dict:
    """NNI AutoFormer's one-shot supernet vs its frozen subnets, at a config matched to ``bench_ours``."""
    try:
        warnings.filterwarnings("ignore")
        import logging

        logging.getLogger("nni").setLevel(logging.ERROR)
        from nni.mutable import frozen_context
        from nni.nas.hub.pytorch.autoformer import AutoFormer
        from nni.nas.oneshot.pytorch.strategy import RandomOneShot
        from nni.nas.oneshot.pytorch.supermodule.base import BaseSuperNetModule
    except Exception as e:  # noqa: BLE001 - any import failure is the answer we record
        return {"ran": False, "why": f"{type(e).__name__}: {e}"}
    # A plain-ViT AutoFormer space with about the per-image work of the s3-vit-cpu subnets at 32 px:
    # 64 tokens (patch 4), embed 48-64, 4-6 blocks, 1-2 heads of AutoFormer's fixed head dim 64.
    kwargs = dict(
        search_embed_dim=(48, 56, 64),
        search_mlp_ratio=(3.0, 3.5, 4.0),
        search_num_heads=(1, 2),
        search_depth=(4, 5, 6),
        img_size=32,
        patch_size=4,
        num_labels=10,
        drop_path_rate=0.0,
    )
    try:
        with frozen_context.bypass():
            space = AutoFormer(**kwargs)
        torch.manual_seed(0)
        supernet = RandomOneShot().mutate_model(space)
        labels = supernet.simplify()
        rng = random.Random(args.seed)
        largest = {k: max(v.values) for k, v in labels.items()}
        smallest = {k: min(v.values) for k, v in labels.items()}
        samples = [("largest", largest), ("smallest", smallest)]
        samples += [(f"random-{i}", {k: rng.choice(list(v.values)) for k, v in labels.items()}) for i in range(args.archs - 2)]
        x = torch.randn(args.batch, 3, 32, 32)
        y = torch.randint(0, 10, (args.batch,))
        rows = []
        for name, sample in samples:
            for m in supernet.modules():
                if isinstance(m, BaseSuperNetModule):
                    m.resample(sample)
            frozen = AutoFormer.frozen_factory(sample)(**kwargs)
            supernet.train(), frozen.train()
            train = interleaved(_train_step(supernet, x, y), _train_step(frozen, x, y), args.repeats, args.warmup)
            supernet.eval(), frozen.eval()
            evals = interleaved(_eval_step(supernet, x), _eval_step(frozen, x), args.repeats, args.warmup)
            rows.append({"arch": name, "sample": sample, "train": train, "eval": evals})
            print(
                f"nni {name:<10} train {train['ratio_cpu']:.3f} (wall {train['ratio_wall']:.3f})  "
                f"eval {evals['ratio_cpu']:.3f} (wall {evals['ratio_wall']:.3f})",
                flush=True,
            )
    except Exception as e:  # noqa: BLE001
        return {"ran": False, "why": f"{type(e).__name__}: {e}", "config": kwargs}
    import nni

    return {"ran": True, "nni_version": nni.__version__, "config": kwargs, "rows": rows}


def _geomean(values: list[float]) -> float:
    return float(torch.tensor(values).log().mean().exp())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="s3-vit-cpu")
    parser.add_argument("--resolution", type=int)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--archs", type=int, default=4, help="largest, smallest and N-2 random members")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nni", action="store_true", help="also measure NNI AutoFormer's supernet (see module docstring)")
    parser.add_argument("--out", default=str(RESULTS / "bench_supernet.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    doc = {
        **run_header(),
        "torch_threads": torch.get_num_threads(),
        "protocol": {
            "space": args.space,
            "batch": args.batch,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "statistic": "median per model; ratio = supernet / stand-alone",
            "timers": "thread CPU time and wall",
        },
    }
    rows = bench_ours(args)
    doc["ours"] = {
        "rows": rows,
        "geomean_train_ratio_cpu": _geomean([r["train"]["ratio_cpu"] for r in rows]),
        "geomean_eval_ratio_cpu": _geomean([r["eval"]["ratio_cpu"] for r in rows]),
        "geomean_train_ratio_wall": _geomean([r["train"]["ratio_wall"] for r in rows]),
        "geomean_eval_ratio_wall": _geomean([r["eval"]["ratio_wall"] for r in rows]),
    }
    print({k: round(v, 3) for k, v in doc["ours"].items() if k.startswith("geomean")})
    if args.nni:
        doc["nni_autoformer"] = bench_nni(args)
        if doc["nni_autoformer"].get("ran"):
            nrows = doc["nni_autoformer"]["rows"]
            doc["nni_autoformer"]["geomean_train_ratio_cpu"] = _geomean([r["train"]["ratio_cpu"] for r in nrows])
            doc["nni_autoformer"]["geomean_eval_ratio_cpu"] = _geomean([r["eval"]["ratio_cpu"] for r in nrows])
            print({k: round(v, 3) for k, v in doc["nni_autoformer"].items() if k.startswith("geomean")})
        else:
            print("nni:", doc["nni_autoformer"]["why"])
    doc["load_average_end"] = load_average()
    atomic_write_json(args.out, doc)


if __name__ == "__main__":
    main()
