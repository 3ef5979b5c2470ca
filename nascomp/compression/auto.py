"""``--method auto``: every method and chain that can meet a budget, run on one model and compared in one table.

Who is tried (the budget decides): ``drop-blocks`` with the deepest leading-block configuration that meets the
budget (priced by shrink's constraint, so for latency by the same lookup table), ``shrink``, and each followed by
``int8``; ``int8`` alone for latency and energy budgets (it changes no params or MACs); ``minivit`` for params
budgets (it cuts parameters, not compute). Each is measured the same way: validation and test top-1 (int8 in ONNX
Runtime), latency in ONNX Runtime on the budget's target (``mobile-cpu`` for params / MACs budgets), checkpoint size.
The table (``table.json``, ``table.csv``, ``table.md``), the Pareto plot of test top-1 vs latency with point area
proportional to checkpoint size (``pareto.png`` / ``.svg``) and the best result as ``best.onnx`` are written to
``out``; the best is the most accurate on the *validation* split among those that meet the budget.
"""

from __future__ import annotations

import copy
import csv
import io
import itertools
import shutil
from pathlib import Path
from typing import Any, Callable

from torch import nn

from nascomp.compression.base import CompressContext, CompressResult
from nascomp.core.errors import NascompError
from nascomp.core.io import atomic_write_json, atomic_write_text, load_state_dict_file
from nascomp.core.validate import output_dir, removed_on_failure
from nascomp.cost.counter import count_module
from nascomp.engine.api import data_bundle, split_recipe
from nascomp.engine.evaluate import evaluate
from nascomp.models.io import load_weights_into
from nascomp.models.resolve import as_model, model_input_size
from nascomp.nas.budget import parse_budget
from nascomp.spaces.arch import Arch, StageArch

__all__ = ["AutoMethod", "compare", "deepest_keep"]

COLUMNS = ("name", "method", "params", "gmacs", "size_mb", "latency_ms", "iqr_ms", "val_top1", "test_top1", "meets_budget")


class AutoMethod:
    """Marker for the registry: `nascomp.compress` hands ``auto`` to `compare`."""

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


def _row(name: str, method: str, model: nn.Module, resolution: int, in_chans: int, val: dict, test: dict, latency: dict, size: int,
         out: Path | None, meets: bool | None) -> dict:
    cost = count_module(model, resolution, in_chans)
    return {"name": name, "method": method, "params": cost.params, "gmacs": round(cost.macs / 1e9, 6), "size_mb": round(size / 2**20, 4),
            "latency_ms": latency["latency_ms"], "iqr_ms": latency["iqr_ms"], "val_top1": round(val["top1"], 3), "test_top1": round(test["top1"], 3),
            "meets_budget": meets, "out": str(out) if out else None, "latency_protocol": latency["note"]}


def _markdown(rows: list[dict], budget_text: str, target: str) -> str:
    head = ["method", "params (M)", "G MACs", "size (MB)", f"latency on {target} (ms)", "val top-1 (%)", "test top-1 (%)", f"meets {budget_text}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append(f"| {r['name']} | {r['params'] / 1e6:.3f} | {r['gmacs']:.4f} | {r['size_mb']:.2f} | {r['latency_ms']:.3f} ± {r['iqr_ms'] / 2:.3f} "
                     f"| {r['val_top1']:.2f} | {r['test_top1']:.2f} | {'-' if r['meets_budget'] is None else 'yes' if r['meets_budget'] else 'no'} |")
    return "\n".join(lines) + "\n"


def compare(compress: Callable[..., CompressResult], model, data, out, *, options: dict, dry_run: bool = False, seed: int = 0, quiet: bool = False, device: str | None = None,
            checkpoint: str | None = None, pretrained: bool = False, data_options=None, resume: bool = False, **kwargs: Any):
    """Run and measure every method and chain that can meet ``options["budget"]`` (see the module docstring).

    ``compress`` is `nascomp.compression.api.compress`, passed in because it is also what calls this.
    """
    from nascomp.compression.measure import latency_report, timing_options
    from nascomp.compression.shrink.search import ShrinkMethod

    if dry_run:
        raise NascompError("--method auto trains and measures several students; it has no dry run (try --method shrink --dry-run)")
    if options.get("budget") is None:
        raise NascompError("--method auto needs a budget (--budget, e.g. 15ms@mobile-cpu or 2gflops): the methods are compared under it")
    if out is None or data is None:
        raise NascompError("--method auto needs --out DIR and --data (it trains and measures each method)")
    out = output_dir(out)
    budget = parse_budget(options["budget"])
    named = ("recipe", "init", "teacher", "teacher_checkpoint", "teacher_kwargs", "distill", "distill_options")
    _, size_kwargs = split_recipe({k: v for k, v in kwargs.items() if k not in named})
    if not (isinstance(model, nn.Module) or Path(model).is_dir() or checkpoint or pretrained):
        raise NascompError("compression starts from trained weights: pass --checkpoint PATH, --pretrained, or a saved model directory")
    base, _ = as_model(model, pretrained=pretrained, **size_kwargs)
    if checkpoint:
        load_weights_into(base, load_state_dict_file(checkpoint), str(checkpoint))
    plan = ShrinkMethod().plan(base, options, CompressContext(quiet=quiet))
    target = budget.target if budget.measured else options.get("target") or "mobile-cpu"
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
    common = {**{k: v for k, v in kwargs.items() if k not in size_kwargs}, "seed": seed, "quiet": quiet, "device": device, "resume": resume}
    rows: list[dict] = []
    results: dict[str, Any] = {}

    def meets(model_: nn.Module, latency: dict) -> bool | None:
        if budget.metric == "latency":
            return latency["latency_ms"] <= budget.limit
        if budget.metric == "energy":
            return None  # energy is predicted, not measured, here: not judged
        c = count_module(model_, resolution, in_chans)
        return (c.macs if budget.metric == "macs" else c.params) <= budget.limit

    def add_int8(name: str, source, method: str) -> None:
        r = compress(source, "int8", bundle, out / method.replace(",", "+"), options=options, seed=seed, quiet=quiet, device=device)
        m = r.metrics["int8"]
        row = _row(name, method, r.model, resolution, in_chans, m["val"], m["test"], m["latency"], m["onnx_bytes"], r.onnx, None)
        row["meets_budget"] = m["latency"]["latency_ms"] <= budget.limit if budget.metric == "latency" else \
            rows_by_method[method.split(",")[0]]["meets_budget"] if "," in method else None
        rows.append(row)
        results[method] = r

    with removed_on_failure(out):
        bundle = data_bundle(data, **dict(data_options or {}))
        tf = bundle.transform(resolution, in_chans, train=False)
        latency = latency_report(base, target, **timing)
        rows.append(_row("original", "none", base, resolution, in_chans, evaluate(base, bundle.val, tf), evaluate(base, bundle.test, tf),
                         latency, _bytes(base), None, False))
        rows_by_method: dict[str, dict] = {}
        if budget.measured:
            add_int8("int8", base, "int8")
        for method, extra in students:
            sub = out / method
            r = compress(base, method, bundle, sub, options={**options, **extra}, checkpoint=None, **common)
            latency = r.metrics.get("latency") or latency_report(r.model, target, **timing)
            row = _row(method, method, r.model, resolution, in_chans, r.metrics["val"], r.metrics["test"], latency,
                       (sub / "model.safetensors").stat().st_size, sub, None)
            row["meets_budget"] = meets(r.model, latency)
            rows.append(row)
            rows_by_method[method] = row
            results[method] = r
            if method != "minivit" or budget.measured:
                add_int8(f"{method} + int8", sub, f"{method},int8")
        eligible = [r for r in rows if r["meets_budget"] and r["method"] != "none"]
        best = max(eligible, key=lambda r: (r["val_top1"], -r["latency_ms"])) if eligible else None
        onnx = None
        if best is not None:
            chosen = results[best["method"]]
            onnx = out / "best.onnx"
            if chosen.onnx is not None:
                shutil.copyfile(chosen.onnx, onnx)
            else:
                from nascomp.deploy.onnx import export_onnx

                export_onnx(chosen.model, onnx, resolution=resolution, in_chans=in_chans)
        table = [{k: r[k] for k in (*COLUMNS, "out")} for r in rows]
        atomic_write_json(out / "table.json", {"budget": budget.to_dict(), "target": target, "rows": table, "skipped": skipped,
                                               "best": best["name"] if best else None, "latency_protocol": rows[0]["latency_protocol"]})
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=[*COLUMNS, "out"])
        writer.writeheader()
        writer.writerows(table)
        atomic_write_text(out / "table.csv", buf.getvalue())
        atomic_write_text(out / "table.md", _markdown(rows, budget.text, target))
        from nascomp.pareto.api import pareto_front

        pareto_front(table, x="latency_ms", y="test_top1", plot=out / "pareto.png", label="name", size="size_mb",
                     title=f"{getattr(base, 'default_cfg', {}).get('architecture', 'model')}: methods under {budget.text}",
                     xlabel=f"latency on {target} (ms, ONNX Runtime)", ylabel="test top-1 (%)",
                     protocol=f"{rows[0]['latency_protocol']}; point area ~ checkpoint size")
    summary = {"model": str(model) if not isinstance(model, nn.Module) else type(model).__name__, "method": "auto",
               "budget": budget.to_dict(), "target": target, "best": best["name"] if best else None, "skipped": skipped, "table": table}
    best_model = results[best["method"]].model if best else copy.deepcopy(base)
    return CompressResult(summary, best_model, out, {"table": table, "skipped": skipped}, onnx, table)
