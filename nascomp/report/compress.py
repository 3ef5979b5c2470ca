"""The page of a compression run (``nascomp compress``): the compressed model beside the original, and for
``--method auto`` every method in one table and one accuracy-latency plot.

File formats: `nascomp.compression.api` (metrics.json with its "compress" summary, "latency" for measured budgets,
"int8" / int8.json for int8) and `nascomp.compression.auto` (table.json, table.csv, one folder per method).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nascomp.report import fmt, svg
from nascomp.report.files import RunFiles
from nascomp.report.html import Column, Html, Section, cards, figure, key_values, table
from nascomp.report.sections import Content, tensorboard_curves, training_curves

__all__ = ["build", "is_compress_run"]


def is_compress_run(files: RunFiles, metrics: dict | None) -> bool:
    return files.exists("table.json") or bool(metrics and "compress" in metrics)


def _original_metrics(summary: dict, metrics: dict, files: RunFiles) -> dict | None:
    """The uncompressed model's accuracy: measured by int8-only runs, else its own metrics.json when the model was a run directory."""
    if metrics.get("model_before_int8"):
        return metrics["model_before_int8"]
    model = summary.get("model")
    given = Path(str(model))
    for folder in (given, files.root.parent / given):  # as given (absolute, or relative to here), or beside the run
        if (folder / "metrics.json").is_file():
            return RunFiles(folder).json("metrics.json", "the original model's accuracy")
    files.lack(f"{model}/metrics.json", "the original model's accuracy (compress records only the compressed model's)")
    return None


def _accuracy(split: dict | None) -> str | None:
    if not split or split.get("top1") is None:
        return None
    n = split.get("n")
    interval = f" ({fmt.ci(*fmt.wilson(split['top1'], n), sign=False)}, {n} images)" if n else ""
    return fmt.pct(split["top1"]) + interval


def _before_after(summary: dict, metrics: dict, original: dict | None, int8: dict | None) -> Html:
    after_val, after_test = metrics.get("val"), metrics.get("test")
    if int8:
        after_val, after_test = int8.get("val"), int8.get("test")
    before_val, before_test = (original or {}).get("val"), (original or {}).get("test")
    latency = (int8 or {}).get("latency") or metrics.get("latency")
    rows = [
        {
            "what": "parameters",
            "before": fmt.count(summary.get("params_before")),
            "after": fmt.count(summary.get("params_after")),
            "change": f"× {summary['params_after'] / summary['params_before']:.3f}" if summary.get("params_before") else None,
        },
        {
            "what": "MACs (papers' FLOPs)",
            "before": fmt.count(summary.get("macs_before")),
            "after": fmt.count(summary.get("macs_after")),
            "change": f"× {summary['macs_after'] / summary['macs_before']:.3f}" if summary.get("macs_before") else None,
        },
        {
            "what": "validation top-1",
            "before": _accuracy(before_val),
            "after": _accuracy(after_val),
            "change": _change(before_val, after_val),
        },
        {
            "what": "test top-1",
            "before": _accuracy(before_test),
            "after": _accuracy(after_test),
            "change": _change(before_test, after_test),
        },
    ]
    if latency:
        rows.append(
            {
                "what": f"latency on {latency.get('target')} ({latency.get('runtime')}, {latency.get('precision')})",
                "before": None,
                "after": f"{fmt.ms(latency.get('latency_ms'))} (IQR {fmt.ms(latency.get('iqr_ms'))})",
                "change": None,
            }
        )
    columns = [
        Column("what", "quantity", wrap=True),
        Column("before", "original", wrap=True),
        Column("after", "compressed", wrap=True),
        Column("change", "change", wrap=True),
    ]
    out = [table(columns, rows, name="before-after")]
    intervals = [
        svg.Interval(label, s["top1"], *fmt.wilson(s["top1"], s["n"]), f"{label}: {s['top1']:.2f} % on {s['n']} test images")
        for label, s in (("original, test", before_test), ("compressed, test", after_test))
        if s and s.get("n")
    ]
    if intervals:
        out.append(
            figure(
                svg.interval_chart(
                    intervals, xlabel="test top-1 (%), 95 % Wilson interval", label="test accuracy before and after", zero=False
                ),
                "Image-sampling intervals only: they say nothing about seed-to-seed variation of the training.",
            )
        )
    return Html("".join(out))


def _change(before: dict | None, after: dict | None) -> str | None:
    if not (before and after and before.get("n") and after.get("n")):
        return None
    d, lo, hi = fmt.difference_ci(after["top1"], after["n"], before["top1"], before["n"])
    return f"{fmt.signed(d)} points ({fmt.ci(lo, hi)})"


def _cards(summary: dict, metrics: dict, int8: dict | None, original: dict | None) -> Html:
    test = (int8 or metrics).get("test") or {}
    before = (original or {}).get("test") or {}
    latency = (int8 or {}).get("latency") or metrics.get("latency")
    items: list[tuple[str, Any, Any]] = [
        (
            "parameters",
            f"{fmt.count(summary.get('params_before'))} → {fmt.count(summary.get('params_after'))}",
            f"× {summary['params_after'] / summary['params_before']:.3f}" if summary.get("params_before") else "",
        ),
        ("MACs", f"{fmt.count(summary.get('macs_before'))} → {fmt.count(summary.get('macs_after'))}", f"at {summary.get('resolution')} px"),
        (
            "test top-1",
            fmt.pct(test.get("top1")),
            f"original {fmt.pct(before['top1'])}, {test.get('n')} test images"
            if before.get("top1") is not None
            else f"{test.get('n')} test images"
            if test.get("n")
            else "",
        ),
    ]
    if latency:
        items.append(
            ("latency", fmt.ms(latency.get("latency_ms")), f"median on {latency.get('target')}, IQR {fmt.ms(latency.get('iqr_ms'))}")
        )
    return cards(items)


def _facts(summary: dict, metrics: dict) -> Html:
    budget = summary.get("budget") or {}
    cfg = metrics.get("config") or {}
    data = metrics.get("data") or {}
    distill = summary.get("distill") or {}
    cost = summary.get("cost_in_budget_unit") or {}
    facts = [
        ("model", summary.get("model")),
        ("method", summary.get("method")),
        ("family", summary.get("family")),
        ("budget", cost.get("how") or budget.get("text")),
        ("student init", summary.get("init")),
        ("teacher", summary.get("teacher")),
        ("distillation", ", ".join(f"{k} {v}" for k, v in distill.items() if k != "layer_pairs") or None),
        ("data", fmt.data(data)),
        (
            "recipe",
            f"{cfg.get('epochs')} epoch(s), batch {cfg.get('batch_size')}, lr {cfg.get('lr')}, {cfg.get('opt')}, seed {cfg.get('seed')}"
            if cfg
            else None,
        ),
        ("device", f"{metrics.get('device')} × {metrics.get('world_size')}" if metrics.get("device") else None),
        ("training time", fmt.duration(metrics.get("train_seconds")) if metrics.get("train_seconds") is not None else None),
    ]
    return key_values(facts)


def _shrink(summary: dict) -> Html | None:
    search, arch = summary.get("search"), summary.get("arch")
    if not (search or arch):
        return None
    facts: list[tuple[str, Any]] = []
    if arch:
        stages = arch.get("stages", [])
        facts += [
            ("depths", "-".join(str(len(s.get("blocks", []))) for s in stages)),
            ("embed dims", "-".join(str(s.get("embed_dim")) for s in stages)),
        ]
    if search:
        facts += [
            ("sub-networks scored", search.get("candidates")),
            ("population × generations", f"{search.get('population')} × {search.get('generations')}"),
            ("score", search.get("score")),
            ("best score", fmt.pct(search.get("best_score"))),
        ]
    facts.append(("channel importance", summary.get("importance")))
    return key_values(facts)


def _int8(int8: dict) -> Html:
    executorch = int8.get("runtime") == "executorch"
    kind, runtime = (".pte", "ExecuTorch") if executorch else ("ONNX", "ONNX Runtime")
    facts = [
        ("mode", int8.get("mode")),
        ("quantization", int8.get("quantization")),
        # runs from before the ExecuTorch runtime named the sizes onnx_bytes / fp32_onnx_bytes
        (
            f"{kind} size",
            f"{fmt.megabytes(int8.get('fp32_bytes', int8.get('fp32_onnx_bytes')))} fp32 → "
            f"{fmt.megabytes(int8.get('bytes', int8.get('onnx_bytes')))} int8",
        ),
        (
            "fp32 export check",
            f"max |{kind} − PyTorch| {int8['fp32_check_max_abs_diff']:.2g}" if int8.get("fp32_check_max_abs_diff") is not None else None,
        ),
        (
            f"accuracy in {runtime}",
            f"val {fmt.pct((int8.get('val') or {}).get('top1'))}, test {fmt.pct((int8.get('test') or {}).get('top1'))}",
        ),
    ]
    return key_values(facts)


def _protocol(latency: dict | None) -> Html | None:
    protocol = (latency or {}).get("protocol")
    if not protocol:
        return None
    keys = (
        "target",
        "device",
        "cpu_model",
        "cpu_count",
        "threads",
        "affinity",
        "batch",
        "resolution",
        "warmup",
        "repetitions",
        "statistic",
        "date",
    )
    return Html(
        key_values([(k, protocol.get(k)) for k in keys])
        + Html("<h3>versions</h3>")
        + key_values(sorted((protocol.get("versions") or {}).items()))
    )


def _single(files: RunFiles, metrics: dict, content: Content) -> None:
    summary = metrics["compress"]
    int8 = metrics.get("int8") or (files.json("int8.json", "the int8 model's accuracy and latency") if "int8" in summary else None)
    original = _original_metrics(summary, metrics, files)
    add = content.sections.append
    add(Section("result", "Result", Html(_cards(summary, metrics, int8, original) + _before_after(summary, metrics, original, int8))))
    add(Section("run", "What was run", _facts(summary, metrics)))
    files.lack("command line", "compress records none yet")
    shrink = _shrink(summary)
    if shrink:
        add(Section("shrink", "Chosen sub-network", shrink))
    if int8:
        add(Section("int8", "INT8", _int8(int8)))
    curves = training_curves([("student", metrics.get("history"))] + ([("original", original.get("history"))] if original else []))
    board = tensorboard_curves(files.root, content.warnings)
    if curves or board:
        add(Section("training", "Training", Html((curves or "") + (board or ""))))
    latency = (int8 or {}).get("latency") or metrics.get("latency")
    protocol = _protocol(latency)
    if not protocol:
        files.lack("versions and machine", "recorded only with a latency measurement (a latency budget or int8)")
    else:
        add(Section("protocol", "Measurement protocol", protocol))
        assert latency is not None  # a protocol comes only from a latency record
        if latency.get("note"):
            content.warnings.append(f"latency: {latency['note']}")
    cost = summary.get("cost_in_budget_unit") or {}
    budget = summary.get("budget") or {}
    if budget.get("limit") is not None and cost.get("after") is not None and cost["after"] > budget["limit"]:
        content.warnings.append(f"the compressed model misses the budget {budget.get('text')}: {cost['after']:g} > {budget['limit']:g}")


def _front(rows: list[dict]) -> set[int]:
    """Rows not dominated in (lower latency, higher test top-1)."""

    def dominated(r, s):
        return (
            s["latency_ms"] <= r["latency_ms"]
            and s["test_top1"] >= r["test_top1"]
            and (s["latency_ms"], s["test_top1"]) != (r["latency_ms"], r["test_top1"])
        )

    return {i for i, r in enumerate(rows) if not any(dominated(r, s) for s in rows)}


def _auto(files: RunFiles, doc: dict, content: Content) -> None:
    rows = [r for r in doc.get("rows", []) if r.get("latency_ms") is not None and r.get("test_top1") is not None]
    budget, target, best = doc.get("budget") or {}, doc.get("target"), doc.get("best")
    front = _front(rows)
    points = [
        svg.Point(
            r["latency_ms"],
            r["test_top1"],
            f"{r['name']}: test top-1 {r['test_top1']:.2f} %, {r['latency_ms']:.3f} ms, "
            f"{fmt.count(r.get('params'))} params, {r.get('size_mb')} MB",
            front=i in front,
            chosen=r["name"] == best,
            label=r["name"],
        )
        for i, r in enumerate(rows)
    ]
    line = (budget["limit"], "budget") if budget.get("metric") == "latency" else None
    items = [
        ("methods compared", len(doc.get("rows", [])), f"under {budget.get('text')}"),
        ("best", best or "none meets the budget", "most accurate on validation among those that meet it"),
    ]
    best_row = next((r for r in rows if r["name"] == best), None)
    if best_row:
        items += [
            ("best: test top-1", fmt.pct(best_row["test_top1"]), f"validation {fmt.pct(best_row.get('val_top1'))}"),
            ("best: latency", fmt.ms(best_row["latency_ms"]), f"on {target}, IQR {fmt.ms(best_row.get('iqr_ms'))}"),
        ]
    columns = [
        Column("name", "method", wrap=True),
        Column("params", "params", fmt.count, numeric=True),
        Column("gmacs", "G MACs", lambda v: f"{v:.4g}", numeric=True),
        Column("size_mb", "size (MB)", lambda v: f"{v:.2f}", numeric=True),
        Column("latency_ms", f"latency on {target} (ms)", lambda v: f"{v:.3f}", numeric=True),
        Column("iqr_ms", "IQR (ms)", lambda v: f"{v:.3f}", numeric=True),
        Column("val_top1", "val top-1 (%)", lambda v: f"{v:.2f}", numeric=True),
        Column("test_top1", "test top-1 (%)", lambda v: f"{v:.2f}", numeric=True),
        Column("meets_budget", "meets budget", lambda v: "yes" if v else "no", tip=f"meets {budget.get('text')}"),
    ]
    body: str = cards(items)
    if points:
        body += figure(
            svg.scatter(
                points,
                xlabel=f"latency on {target} (ms, ONNX Runtime)",
                ylabel="test top-1 (%)",
                label="methods: accuracy vs latency",
                xline=line,
                names=("method", "not beaten", "best"),
            ),
            "Orange: not beaten on both latency and accuracy by another method; ringed: the pick.",
        )
    body += table(
        columns,
        doc.get("rows", []),
        highlight=lambda r: r.get("name") == best,
        name="methods",
        caption="One row per method and chain, measured the same way. Click a header to sort.",
    )
    content.sections.append(Section("result", "Methods compared", Html(body)))
    content.sections.append(
        Section(
            "run",
            "What was run",
            key_values([("budget", budget.get("text")), ("target", target), ("latency protocol", doc.get("latency_protocol"))]),
        )
    )
    files.lack("command line", "compress records none yet")
    histories = []
    for r in doc.get("rows", []):
        if r.get("method") not in (None, "none"):
            sub = files.root / r["method"].replace(",", "+") / "metrics.json"
            if sub.is_file():
                histories.append((r["name"], (RunFiles(sub.parent).json("metrics.json", "") or {}).get("history")))
    curves = training_curves(histories)
    if curves:
        content.sections.append(Section("training", "Training", curves))
    for method, why in (doc.get("skipped") or {}).items():
        content.warnings.append(f"not tried: {method}: {why}")
    if doc.get("latency_protocol"):
        content.warnings.append(f"latency: {doc['latency_protocol']}")


def build(files: RunFiles, metrics: dict | None) -> Content:
    if files.exists("table.json"):
        doc = files.json("table.json", "") or {}  # it exists: json() returns None only for a missing file
        budget = (doc.get("budget") or {}).get("text", "?")
        content = Content(f"Compression: every method under {budget}", str(files.root))
        _auto(files, doc, content)
        return content
    assert metrics is not None  # is_compress_run: no table.json, so metrics.json has a compress summary
    summary = metrics["compress"]
    budget = (summary.get("budget") or {}).get("text")
    content = Content(
        f"Compression: {summary.get('method')} of {Path(str(summary.get('model'))).name}" + (f" under {budget}" if budget else ""),
        str(files.root),
    )
    _single(files, metrics, content)
    return content
