"""The page of a profile report (``nascomp profile ... --out FILE.json``, `nascomp.profiling.profiler.ProfileReport.to_dict`):
every measurement with its spread, the protocol it was taken under, and the measurements that were skipped."""

from __future__ import annotations

from nascomp.report import fmt, svg
from nascomp.report.html import Column, Html, Section, cards, figure, key_values, table
from nascomp.report.sections import Content

__all__ = ["build", "is_profile"]

_PROTOCOL = (
    "target",
    "device",
    "hostname",
    "os",
    "cpu_model",
    "cpu_count",
    "allowed_cores",
    "governor",
    "threads",
    "affinity",
    "batch",
    "resolution",
    "in_chans",
    "warmup",
    "repetitions",
    "statistic",
    "input",
    "date",
)
_STEAL_WARNING_PCT = 5.0


def is_profile(doc: object) -> bool:
    return isinstance(doc, dict) and "measurements" in doc and "protocol" in doc


def _measurements(doc: dict, warnings: list[str]) -> Html:
    measured = [m for m in doc["measurements"] if not m.get("skipped")]
    for m in doc["measurements"]:
        if m.get("skipped"):
            warnings.append(f"not measured: {m['runtime']} {m['precision']}: {m['skipped']}")
        steal = (m.get("details") or {}).get("cpu_steal_pct")
        if steal is not None and steal > _STEAL_WARNING_PCT:
            warnings.append(
                f"{m['runtime']} {m['precision']}: the hypervisor took {steal:.1f} % of the CPU while timing; the numbers are noisy"
            )
    out: list[str] = []
    if measured:
        rows = [
            svg.Interval(
                f"{m['runtime']} {m['precision']}",
                m["latency_ms"],
                m.get("p25_ms", m["latency_ms"]),
                m.get("p75_ms", m["latency_ms"]),
                f"{m['runtime']} {m['precision']}: median {m['latency_ms']:.3f} ms, "
                f"p25 {m.get('p25_ms', 0):.3f}, p75 {m.get('p75_ms', 0):.3f} ({m.get('runs')} runs)",
            )
            for m in measured
        ]
        out.append(
            figure(
                svg.interval_chart(
                    rows, xlabel="latency (ms): median and interquartile range", label="latency per runtime and precision", zero=False
                ),
                doc["protocol"].get("statistic", ""),
            )
        )
    three = lambda v: f"{v:.3f}"  # noqa: E731
    columns = [
        Column("runtime", "runtime"),
        Column("precision", "precision"),
        Column("latency_ms", "median (ms)", three, numeric=True),
        Column("iqr_ms", "IQR (ms)", three, numeric=True),
        Column("p25_ms", "p25", three, numeric=True),
        Column("p75_ms", "p75", three, numeric=True),
        Column("p90_ms", "p90", three, numeric=True),
        Column("min_ms", "min", three, numeric=True),
        Column("max_ms", "max", three, numeric=True),
        Column("runs", "runs", numeric=True),
        Column("energy_mj", "energy (mJ)", lambda v: f"{v:.3f}", numeric=True),
        Column("skipped", "skipped because", wrap=True),
    ]
    out.append(table(columns, doc["measurements"], name="measurements"))
    detail_rows = [
        {
            "what": f"{m['runtime']} {m['precision']}",
            **{k: v for k, v in (m.get("details") or {}).items() if not isinstance(v, (dict, list))},
            "load": " / ".join(map(str, (m.get("details") or {}).get("load_average_before", []))),
        }
        for m in measured
    ]
    if detail_rows:
        keys = list(dict.fromkeys(k for r in detail_rows for k in r))
        out.append(
            Html("<h3>How each was timed</h3>")
            + table([Column(k, k.replace("_", " "), wrap=True) for k in keys], detail_rows, name="details")
        )
    return Html("".join(out))


def build(doc: dict, source: str) -> Content:
    content = Content(f"Profile: {doc.get('model')} on {doc.get('target')}", source)
    items = [("latency", fmt.ms(doc.get("latency_ms")), f"{doc.get('runtime')} {doc.get('precision')}, IQR {fmt.ms(doc.get('iqr_ms'))}")]
    if doc.get("params") is not None:
        items.append(("cost", f"{fmt.count(doc.get('params'))} params", f"{fmt.count(doc.get('macs'))} MACs"))
    if doc.get("energy_mj") is not None:
        items.append(("energy", f"{doc['energy_mj']:.3f} mJ", doc.get("energy_kind") or ""))
    content.sections.append(Section("result", "Result", Html(cards(items) + f'<p class="muted">{doc.get("note", "")}</p>')))
    content.sections.append(Section("measurements", "Measurements", _measurements(doc, content.warnings)))
    protocol = doc["protocol"]
    body: str = key_values([(k.replace("_", " "), protocol.get(k)) for k in _PROTOCOL])
    if protocol.get("versions"):
        body += Html("<h3>versions</h3>") + key_values(sorted(protocol["versions"].items()))
    content.sections.append(Section("protocol", "Protocol", Html(body)))
    return content
