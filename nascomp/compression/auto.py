"""``--method auto``: every method and chain that can meet a budget, run on one model, measured in each deployment runtime
asked for (``options["runtimes"]``: ``onnxruntime`` by default, ``executorch`` too), and compared in one table.

Who is tried (the budget decides): ``drop-blocks`` with the deepest leading-block configuration that meets the
budget (priced by shrink's constraint, so for latency by the same lookup table), ``shrink``, and each followed by
``int8``; ``int8`` alone for latency and energy budgets (it changes no params or MACs); ``minivit`` for params
budgets (it cuts parameters, not compute). Each student is trained once; every (method, precision, runtime) is a row,
measured the same way: validation and test top-1 (fp32: the trained PyTorch model, whose runtime files are checked
to reproduce it; int8: the int8 file in its own runtime), latency in that runtime on the budget's target (``mobile-cpu``
for params / MACs budgets), checkpoint size. Beside each row's MACs ratio to the original stands its measured speed-up
in the same runtime; a row that cuts MACs more than 1.1x its measured speed-up is flagged (``macs_outpace_latency``):
its MACs saving does not turn into time on that runtime.

The table (``table.json``, ``table.csv``, ``table.md``), the Pareto plot of test top-1 vs measured latency with point area
proportional to checkpoint size (``pareto.png`` / ``.svg``) and the best result as its runtime's file (``best.onnx`` or
``best.pte``) are written to ``out``; the best is the most accurate on the *validation* split among those that meet the
budget. A latency budget's lookup table (for shrink and drop-blocks) is measured in the first runtime listed.
"""

from __future__ import annotations

import copy
import csv
import io
import itertools
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from nascomp.compression.base import CompressContext, CompressResult, log_result
from nascomp.compression.measure import RUNTIMES
from nascomp.compression.run import run_method
from nascomp.core.checks import main_process
from nascomp.core.errors import NascompError
from nascomp.core.io import atomic_write_json, atomic_write_text, load_state_dict_file
from nascomp.core.outputs import claim_output, holds, output_lock
from nascomp.core.validate import removed_on_failure
from nascomp.cost.counter import count_module
from nascomp.data import data_bundle
from nascomp.engine.evaluate import evaluate
from nascomp.models.io import load_weights_into
from nascomp.models.resolve import as_model, model_input_size
from nascomp.nas.budget import parse_budget
from nascomp.spaces.arch import Arch, StageArch

__all__ = ["AutoMethod", "compare_methods", "deepest_keep", "auto_runtimes"]

COLUMNS = (
    "name",
    "method",
    "runtime",
    "precision",
    "params",
    "gmacs",
    "size_mb",
    "latency_ms",
    "iqr_ms",
    "macs_ratio",
    "speedup",
    "macs_outpace_latency",
    "val_top1",
    "test_top1",
    "meets_budget",
)
OUTPACE = 1.1  # a MACs cut this much larger than the measured speed-up is flagged


class AutoMethod:
    """Marker for the registry: `nascomp.compress` hands ``auto`` to `compare_methods`."""

    name = "auto"
    kind = "auto"


def deepest_keep(plan) -> list[int] | None:
    """drop-blocks' keep: the most leading blocks (then the highest cost) at full width that meets the plan's budget."""
    arch: Arch = plan.arch
    best = None
    for keep in itertools.product(*(range(1, s.depth + 1) for s in arch.stages)):
        cut = Arch(tuple(StageArch(s.embed_dim, s.blocks[:k]) for s, k in zip(arch.stages, keep)), arch.patch_size)
        cost = plan.constraint.cost(cut)
        if cost <= plan.budget.limit and (best is None or (sum(keep), cost) > best[0]):
            best = ((sum(keep), cost), list(keep))
    return best[1] if best else None


def _bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def auto_runtimes(options: dict) -> list[str]:
    """The runtimes ``auto`` measures in (``options["runtimes"]``, a list or comma-separated; default onnxruntime), checked."""
    given = options.get("runtimes") or options.get("runtime") or ["onnxruntime"]
    runtimes = [r.strip() for r in (given.split(",") if isinstance(given, str) else given) if r.strip()]
    for r in runtimes:
        if r not in RUNTIMES:
            raise NascompError(f"--runtime {r!r}: auto compares in {', '.join(RUNTIMES)}")
    if "executorch" in runtimes:
        from nascomp.deploy.et_runtime import require_executorch

        require_executorch()
    return list(dict.fromkeys(runtimes))


def _row(
    name: str,
    method: str,
    runtime: str,
    precision: str,
    model: nn.Module,
    resolution: int,
    in_chans: int,
    val: dict,
    test: dict,
    latency: dict,
    size: int,
    out: Path | None,
    meets: bool | None,
    reference: tuple[int, float] | None,
) -> dict:
    """One table row; ``reference`` is the original's (MACs, latency in this runtime), for the MACs ratio and the speed-up."""
    cost = count_module(model, resolution, in_chans)
    macs_ratio = cost.macs / reference[0] if reference else 1.0
    speedup = reference[1] / latency["latency_ms"] if reference else 1.0
    return {
        "name": name,
        "method": method,
        "runtime": runtime,
        "precision": precision,
        "params": cost.params,
        "gmacs": round(cost.macs / 1e9, 6),
        "size_mb": round(size / 2**20, 4),
        "latency_ms": latency["latency_ms"],
        "iqr_ms": latency["iqr_ms"],
        "macs_ratio": round(macs_ratio, 4),
        "speedup": round(speedup, 4),
        "macs_outpace_latency": bool(macs_ratio > 0 and 1 / macs_ratio > OUTPACE * speedup),
        "val_top1": round(val["top1"], 3),
        "test_top1": round(test["top1"], 3),
        "meets_budget": meets,
        "out": str(out) if out else None,
        "latency_protocol": latency["note"],
    }


def _markdown(rows: list[dict], budget_text: str, target: str) -> str:
    head = [
        "method",
        "runtime",
        "params (M)",
        "G MACs",
        "size (MB)",
        f"latency on {target} (ms)",
        "MACs cut",
        "measured speed-up",
        "val top-1 (%)",
        "test top-1 (%)",
        f"meets {budget_text}",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        flag = " †" if r["macs_outpace_latency"] else ""
        lines.append(
            f"| {r['name']} | {r['runtime']} {r['precision']} | {r['params'] / 1e6:.3f} | {r['gmacs']:.4f} | {r['size_mb']:.2f} "
            f"| {r['latency_ms']:.3f} ± {r['iqr_ms'] / 2:.3f} | {1 / r['macs_ratio']:.2f}x | {r['speedup']:.2f}x{flag} "
            f"| {r['val_top1']:.2f} | {r['test_top1']:.2f} | {'-' if r['meets_budget'] is None else 'yes' if r['meets_budget'] else 'no'} |"
        )
    if any(r["macs_outpace_latency"] for r in rows):
        lines.append(
            f"\n† cuts MACs more than {OUTPACE:g}x its measured speed-up in that runtime: the MACs saving does not become time there."
        )
    return "\n".join(lines) + "\n"


def compare_methods(
    model,
    data,
    out,
    options: dict,
    *,
    training: Mapping,
    overrides: Mapping,
    dry_run: bool = False,
    seed: int = 0,
    quiet: bool = False,
    device: str | None = None,
    checkpoint: str | None = None,
    pretrained: bool = False,
    data_options=None,
    resume: bool = False,
    overwrite: bool = False,
    logger=None,
    **named: Any,
) -> CompressResult:
    """Run and measure every method and chain that can meet ``options["budget"]`` (see the module docstring); each method runs
    in its own folder through `nascomp.compression.run.run_method`, with ``named`` (init, teacher, distill...) and ``training``."""
    from nascomp.compression.measure import latency_report, timing_options
    from nascomp.compression.shrink.search import ShrinkMethod

    if dry_run:
        raise NascompError("--method auto trains and measures several students; it has no dry run (try --method shrink --dry-run)")
    if options.get("budget") is None:
        raise NascompError("--method auto needs a budget (--budget, e.g. 15ms@mobile-cpu or 2gflops): the methods are compared under it")
    if out is None or data is None:
        raise NascompError("--method auto needs --out DIR and --data (it trains and measures each method)")
    claim = claim_output(out, resume=resume, overwrite=overwrite, inputs=[model, checkpoint])
    assert claim is not None  # claim_output returns None only for out=None, refused above
    out = claim.path
    budget = parse_budget(options["budget"])
    runtimes = auto_runtimes(options)
    if not (isinstance(model, nn.Module) or Path(model).is_dir() or checkpoint or pretrained):
        raise NascompError("compression starts from trained weights: pass --checkpoint PATH, --pretrained, or a saved model directory")
    base, _ = as_model(model, pretrained=pretrained, **overrides)
    if checkpoint:
        load_weights_into(base, load_state_dict_file(checkpoint), str(checkpoint))
    plan = ShrinkMethod().plan(base, {**options, "runtime": runtimes[0]}, CompressContext(quiet=quiet))
    target = budget.target if budget.measured else options.get("target") or "mobile-cpu"
    assert target is not None  # a measured budget names its target (parse_budget)
    in_chans, resolution = model_input_size(base)
    keep = deepest_keep(plan)
    students: list[tuple[str, dict]] = [("shrink", {})]
    skipped = {}
    if keep:
        students.insert(0, ("drop-blocks", {"keep": keep}))
    else:
        skipped["drop-blocks"] = "no leading-block configuration at full width meets the budget"
    if budget.metric == "params":
        students.append(("minivit", {}))
    else:
        skipped["minivit"] = "weight sharing cuts parameters, not compute: its MACs and latency exceed the original's"
    if not budget.measured:
        skipped["int8"] = f"int8 changes no {budget.unit}; it is tried after each method instead"
    timing = timing_options(options)
    common = {**named, "training": training, "seed": seed, "quiet": quiet, "device": device, "logger": logger}

    def again(folder: Path) -> bool:
        """A method's own folder resumes with the comparison (when it got that far)."""
        return resume and holds(folder) is not None

    several = len(runtimes) > 1
    rows: list[dict] = []
    results: dict[tuple[str, str], Any] = {}
    reference: dict[str, tuple[int, float]] = {}
    base_macs = count_module(base, resolution, in_chans).macs

    def label(name: str, runtime: str) -> str:
        return f"{name} ({runtime})" if several else name

    def meets(model_: nn.Module, latency: dict) -> bool | None:
        if budget.metric == "latency":
            return latency["latency_ms"] <= budget.limit
        if budget.metric == "energy":
            return None  # energy is predicted, not measured, here: not judged
        c = count_module(model_, resolution, in_chans)
        return (c.macs if budget.metric == "macs" else c.params) <= budget.limit

    def add_int8(name: str, source, method: str, runtime: str, student_meets: bool | None) -> None:
        folder = out / (method.replace(",", "+") + ("" if runtime == "onnxruntime" else f"-{runtime}"))
        r = run_method(
            source,
            ["int8"],
            bundle,
            folder,
            {**options, "runtime": runtime},
            budget=budget,
            seed=seed,
            quiet=quiet,
            device=device,
            resume=again(folder),
            logger=logger,
        )
        assert r.metrics is not None  # not a dry run
        m = r.metrics["int8"]
        row = _row(
            label(name, runtime),
            method,
            runtime,
            "int8",
            r.model,
            resolution,
            in_chans,
            m["val"],
            m["test"],
            m["latency"],
            m["bytes"],
            Path(m["file"]),
            None,
            reference[runtime],
        )
        row["meets_budget"] = m["latency"]["latency_ms"] <= budget.limit if budget.metric == "latency" else student_meets
        rows.append(row)
        results[method, runtime] = r

    with removed_on_failure(out), output_lock(claim, main_process()):
        bundle = data_bundle(data, **dict(data_options or {}))
        tf = bundle.transform(resolution, in_chans, train=False)
        base_val, base_test = evaluate(base, bundle.val, tf), evaluate(base, bundle.test, tf)
        for runtime in runtimes:
            latency = latency_report(base, target, **{**timing, "runtime": runtime})
            reference[runtime] = (base_macs, latency["latency_ms"])
            rows.append(
                _row(
                    label("original", runtime),
                    "none",
                    runtime,
                    "fp32",
                    base,
                    resolution,
                    in_chans,
                    base_val,
                    base_test,
                    latency,
                    _bytes(base),
                    None,
                    False,
                    reference[runtime],
                )
            )
        if budget.measured:
            for runtime in runtimes:
                add_int8("int8", base, "int8", runtime, None)
        for method, extra in students:
            sub = out / method
            r = run_method(
                base, [method], bundle, sub, {**options, **extra, "runtime": runtimes[0]}, budget=budget, resume=again(sub), **common
            )
            assert r.metrics is not None  # not a dry run
            for runtime in runtimes:
                latency = (r.metrics.get("latency") if runtime == runtimes[0] else None) or latency_report(
                    r.model, target, **{**timing, "runtime": runtime}
                )
                row = _row(
                    label(method, runtime),
                    method,
                    runtime,
                    "fp32",
                    r.model,
                    resolution,
                    in_chans,
                    r.metrics["val"],
                    r.metrics["test"],
                    latency,
                    (sub / "model.safetensors").stat().st_size,
                    sub,
                    None,
                    reference[runtime],
                )
                row["meets_budget"] = meets(r.model, latency)
                rows.append(row)
                results[method, runtime] = r
                if method != "minivit" or budget.measured:
                    add_int8(f"{method} + int8", sub, f"{method},int8", runtime, row["meets_budget"])
        eligible = [r for r in rows if r["meets_budget"] and r["method"] != "none"]
        best = max(eligible, key=lambda r: (r["val_top1"], -r["latency_ms"])) if eligible else None
        best_file = None
        if best is not None:
            chosen = results[best["method"], best["runtime"]]
            best_file = out / ("best.pte" if best["runtime"] == "executorch" else "best.onnx")
            ready = chosen.pte if best["runtime"] == "executorch" else chosen.onnx
            if ready is not None:
                shutil.copyfile(ready, best_file)
            else:
                _export_fp32(chosen.model, best_file, best["runtime"], bundle, resolution, in_chans)
        table = [{k: r[k] for k in (*COLUMNS, "out")} for r in rows]
        atomic_write_json(
            out / "table.json",
            {
                "budget": budget.to_dict(),
                "target": target,
                "runtimes": runtimes,
                "rows": table,
                "skipped": skipped,
                "best": best["name"] if best else None,
                "best_file": str(best_file) if best_file else None,
                "latency_protocol": rows[0]["latency_protocol"],
            },
        )
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=[*COLUMNS, "out"])
        writer.writeheader()
        writer.writerows(table)
        atomic_write_text(out / "table.csv", buf.getvalue())
        atomic_write_text(out / "table.md", _markdown(rows, budget.text, target))
        log_result(logger, out, table, 0)
        from nascomp.pareto.api import pareto_front

        where = " and ".join({"onnxruntime": "ONNX Runtime", "executorch": "ExecuTorch"}[r] for r in runtimes)
        pareto_front(
            table,
            x="latency_ms",
            y="test_top1",
            plot=out / "pareto.png",
            label="name",
            size="size_mb",
            title=f"{getattr(base, 'default_cfg', {}).get('architecture', 'model')}: methods under {budget.text}",
            xlabel=f"measured latency on {target} (ms, {where})",
            ylabel="test top-1 (%)",
            protocol=f"{rows[0]['latency_protocol']}; point area ~ checkpoint size",
        )
    summary = {
        "model": str(model) if not isinstance(model, nn.Module) else type(model).__name__,
        "method": "auto",
        "budget": budget.to_dict(),
        "target": target,
        "runtimes": runtimes,
        "best": best["name"] if best else None,
        "skipped": skipped,
        "table": table,
    }
    best_model = results[best["method"], best["runtime"]].model if best else copy.deepcopy(base)
    in_onnx = best_file if best_file is not None and best_file.suffix == ".onnx" else None
    in_pte = best_file if best_file is not None and best_file.suffix == ".pte" else None
    return CompressResult(summary, best_model, out, {"table": table, "skipped": skipped}, in_onnx, table, pte=in_pte)


def _export_fp32(model: nn.Module, path: Path, runtime: str, bundle, resolution: int, in_chans: int) -> None:
    """The best fp32 model as its runtime's file, checked like every export."""
    if runtime == "executorch":
        from nascomp.deploy.api import real_images
        from nascomp.deploy.pte import export_pte

        checked, _, source = real_images(bundle, None, resolution, in_chans, check=32)
        export_pte(model, path, resolution=resolution, in_chans=in_chans, check_images=checked, check_source=source)
    else:
        from nascomp.deploy.onnx import export_onnx

        export_onnx(model, path, resolution=resolution, in_chans=in_chans)
