"""The run directory's outputs: best_arch.json, candidates.csv, pareto.png, evolution history and plot, report.md.

Everything here is derived from the stage results `nascomp.nas.pipeline` stored, so it is rewritten
identically by a resumed run. ``best_arch.json`` carries the arch under ``"arch"`` next to its costs and
accuracies; every command that takes an arch JSON accepts the file as it is (``nascomp train
best_arch.json``, ``nascomp flops best_arch.json``).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nascomp.core.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from nascomp.nas.budget import Budget
from nascomp.nas.presets import SearchPreset
from nascomp.pareto import Table, plot_front
from nascomp.spaces import DIMENSIONS, Arch, SearchSpace

__all__ = ["RunFacts", "write_outputs", "pick_winner", "plot_et_steps", "candidates_csv"]


@dataclass(frozen=True)
class RunFacts:
    """What the outputs say about a run; the pipeline fills it in, so this module never reads the pipeline's state."""

    out: Path
    space: SearchSpace  # the initial space (costs at its resolution)
    budget: Budget
    preset: SearchPreset
    preset_name: str
    seed: int
    in_chans: int
    data: dict  # DataBundle.describe(): dataset, train / val / test sizes, classes
    resolution: int  # the supernet's (proxy) training resolution
    collapsed: Sequence[dict] = ()  # Collapsed.to_dict() of each dimension the proxy fixed


_COST_COLUMN = {"macs": "gmacs", "params": "params_m", "latency": "latency_ms", "energy": "energy_mj"}
_X_LABEL = {
    "macs": "MACs at {res} px (G) — what papers call FLOPs",
    "params": "Parameters (M)",
    "latency": "Predicted latency on {target} (ms)",
    "energy": "Predicted energy per inference on {target} (mJ)",
}


def _compact(arch: dict) -> str:
    return json.dumps(arch, separators=(",", ":"))


def candidates_csv(rows: list[dict], metric: str) -> str:
    """One line per evaluated search candidate, best first (the arch itself as compact JSON in the last column)."""
    predicted = metric in ("latency", "energy")  # a predicted cost comes with its interval and whether it straddles the budget
    extra = [c := _COST_COLUMN[metric], f"{c}_low", f"{c}_high", "interval_level", "straddles_budget"] if predicted else []
    header = [
        "rank",
        "generation",
        "origin",
        "val_top1",
        "val_top5",
        "val_loss",
        "gmacs",
        "gflops",
        "params_m",
        *extra,
        "pareto",
        "depths",
        "embed_dims",
        "arch",
    ]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for r in sorted(rows, key=lambda r: r["rank"]):
        arch = Arch.from_dict(r["arch"])
        writer.writerow(
            [
                r["rank"],
                r["generation"],
                r["origin"],
                f"{r['val_top1']:.4f}",
                f"{r['val_top5']:.4f}",
                f"{r['val_loss']:.6f}",
                f"{r['macs'] / 1e9:.6f}",
                f"{r['flops'] / 1e9:.6f}",
                f"{r['params'] / 1e6:.6f}",
                *(_predicted_cells(r) if predicted else []),
                int(r["pareto"]),
                "-".join(map(str, arch.depths)),
                "-".join(map(str, arch.embed_dims)),
                _compact(r["arch"]),
            ]
        )
    return buf.getvalue()


def _predicted_cells(row: dict) -> list[str]:
    """Predicted cost, its interval (empty when the table gives none) and the straddle flag, as CSV cells."""
    low, high = row.get("cost_low"), row.get("cost_high")

    def fmt(v: float | None) -> str:
        return "" if v is None else f"{v:.6f}"

    return [
        f"{row['cost']:.6f}",
        fmt(low),
        fmt(high),
        "" if row.get("cost_level") is None else f"{row['cost_level']:g}",
        str(int(bool(row.get("straddles_budget")))),
    ]


def plot_et_steps(steps: list[dict], path: Path) -> None:
    """Per (stage, dimension): the E-T error of each choice at every evolution step (S3 Fig. 2 style)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = len(steps[0]["space"]["stages"])
    cmap = plt.get_cmap("viridis")
    with plt.rc_context({"font.size": 7, "axes.titlesize": 7.5, "axes.spines.top": False, "axes.spines.right": False}):
        fig, axes = plt.subplots(stages, len(DIMENSIONS), figsize=(2.0 * len(DIMENSIONS), 1.55 * stages + 0.6), squeeze=False)
        for t, step in enumerate(steps):
            colour = cmap(t / max(1, len(steps) - 1) * 0.85)
            for s in range(stages):
                for d, dim in enumerate(DIMENSIONS):
                    pts = sorted(
                        (r["value"], r["Q"])
                        for r in step["et"]["choices"]
                        if r["stage"] == s + 1 and r["dimension"] == dim and r["Q"] is not None
                    )
                    if pts:
                        axes[s][d].plot(*zip(*pts), marker="o", ms=3, lw=1, color=colour, label=f"step {t}")
        for s in range(stages):
            for d, dim in enumerate(DIMENSIONS):
                ax = axes[s][d]
                ax.set_title(f"stage {s + 1} {dim}")
                ax.grid(True, color="#e6e6e6", lw=0.5)
                if d == 0:
                    ax.set_ylabel("E-T error Q (%)")
        qs = ", ".join(f"step {t}: {st['et']['Q']:.2f}" for t, st in enumerate(steps))
        fig.suptitle(f"E-T error per choice across space-evolution steps (whole space Q: {qs})", fontsize=8.5)
        handles, labels = axes[0][0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="lower center", ncol=len(steps), fontsize=7, frameon=False)
        fig.subplots_adjust(left=0.05, right=0.99, bottom=0.09, top=0.92, wspace=0.32, hspace=0.55)  # tight_layout: slow
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=120)
        plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _history(steps: list[dict]) -> dict:
    return {
        "steps": [
            {
                "step": s["step"],
                "space": s["space"],
                "E": s["et"]["E"],
                "T": s["et"]["T"],
                "Q": s["et"]["Q"],
                "n": s["et"]["n"],
                "k": s["et"]["k"],
                "supernet_val": s["supernet"],
                "et_table": s["et"]["choices"],
                "slopes": s["slopes"],
                "decisions": s.get("decisions", []),
            }
            for s in steps
        ]
    }


def pick_winner(finalists: list[dict]) -> dict:
    """The finalist with the best validation score (on the selection images when there are any); ties: the cheaper."""
    return max(finalists, key=lambda f: (f["val"]["top1"], -f["cost"]))


def _wilson(top1: float, n: int) -> list[float]:
    """95 % Wilson interval of an accuracy (%) measured on ``n`` images."""
    z, p = 1.959964, top1 / 100
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [100 * (centre - half), 100 * (centre + half)]


def _gap(val: dict, test: dict) -> dict:
    """Test minus validation top-1 with a 95 % normal interval from the two image samples (not from training seeds)."""
    se = 100 * math.sqrt(sum(s["top1"] / 100 * (1 - s["top1"] / 100) / s["n"] for s in (val, test)))
    gap = test["top1"] - val["top1"]
    return {"points": gap, "ci95": [gap - 1.96 * se, gap + 1.96 * se]}


def write_outputs(
    run: RunFacts, steps: list[dict], search: dict, finalists: list[dict], cheapest: float, compare: dict | None = None
) -> dict:
    out, budget, preset = run.out, run.budget, run.preset
    metric = budget.metric
    rows = search["candidates"]
    atomic_write_text(out / "candidates.csv", candidates_csv(rows, metric))
    atomic_write_json(out / "evolution" / "history.json", _history(steps))
    plot_et_steps(steps, out / "evolution" / "et_steps.png")

    xcol = _COST_COLUMN[metric]
    plot_rows = [
        {**r, xcol: r["cost"] / (1e9 if metric == "macs" else 1e6 if metric == "params" else 1), "name": f"#{r['rank']}"} for r in rows
    ]
    table = Table.from_rows(plot_rows, [xcol, "val_top1"], ["min", "max"])
    protocol = (
        f"{len(rows)} candidates of {search['space']['name']} under {budget.text} ({budget.format(budget.limit)}); "
        f"validation top-1 with inherited supernet weights, {run.data['dataset']} at {run.resolution} px, "
        f"{run.data['val']} validation images; cost at {run.space.resolution} px; seed {run.seed}"
    )
    plot_front(
        table,
        out / "pareto.png",
        label="name",
        title=f"S3 search: {run.space.name} under {budget.text}",
        protocol=protocol,
        xlabel=_X_LABEL[metric].format(res=run.space.resolution, target=budget.target),
        ylabel=f"Validation top-1 (%), inherited weights, {run.resolution} px",
        label_dominated=False,
    )
    front = sorted((r for r in rows if r["pareto"]), key=lambda r: r["cost"])
    atomic_write_json(out / "pareto.json", {"objectives": {"val_top1": "max", xcol: "min"}, "front": front})

    best = pick_winner(finalists)
    arch = Arch.from_dict(best["arch"])
    arch = Arch(
        arch.stages,
        arch.patch_size,
        name=f"{run.space.name}-{budget.text}-seed{run.seed}",
        num_classes=run.data["classes"],
        in_chans=run.in_chans,
        resolution=run.space.resolution,
    )
    summary = {
        "arch": arch.to_dict(),
        "params": best["params"],
        "macs": best["macs"],
        "flops": best["flops"],
        "gmacs": best["macs"] / 1e9,
        "resolution": run.space.resolution,
        "in_chans": run.in_chans,
        "num_classes": run.data["classes"],
        "cost_note": (
            f"params and MACs of the standalone model at {run.space.resolution} px, {run.in_chans} input channels, "
            f"{run.data['classes']} classes; budgets in gflops count MACs, as papers' FLOPs do (budget.share says "
            f"it in the budget's unit); the 'flops' field counts every multiply and add (2 x MACs)"
        ),
        "budget": {
            **budget.to_dict(),
            "cost": best["cost"],
            "within": best["cost"] <= budget.limit,
            "cheapest_in_space": cheapest,
            "share": budget.share(best["cost"]),
        },
        "val_top1": best["val"]["top1"],
        "test_top1": best["test"]["top1"],
        "val_top5": best["val"]["top5"],
        "test_top5": best["test"]["top5"],
        "selection": {
            "split": best.get("val_split", "search"),
            "images": best["val"].get("n"),
            "top1": best["val"]["top1"],
            "ci95": _wilson(best["val"]["top1"], best["val"]["n"]),
            "search_val_top1": best["search_val_top1"],
            "search_images": best.get("search_val_n"),
            "finalists": len(finalists),
            "test_minus_selected": _gap(best["val"], best["test"]),
            "test_minus_search_score": _gap(
                {"top1": best["search_val_top1"], "n": best.get("search_val_n") or best["val"]["n"]}, best["test"]
            ),
        },
        "accuracy_note": (
            f"{best['source']}; {run.data['dataset']} at {run.resolution} px (selected among {len(finalists)} finalist(s) on "
            f"{best['val']['n']} {best.get('val_split', 'search')} validation images; {best['test']['n']} test images); "
            f"the test set was read only for the finalists"
        ),
        "collapsed": list(run.collapsed),
        "compare": compare,
        "finalist_rank": best["rank"],
        "model_dir": best["model_dir"],
        "predicted_vs_measured": [{"rank": f["rank"], **f["prediction_check"]} for f in finalists if "prediction_check" in f] or None,
        "space": {
            "initial": run.space.name,
            "final": search["space"]["name"],
            "evolve_steps": preset.evolve_steps,
            "final_space_file": f"evolution/step-{preset.evolve_steps}/space.yaml",
        },
        "et_error": [{"step": s["step"], "Q": s["et"]["Q"], "E": s["et"]["E"], "T": s["et"]["T"]} for s in steps],
        "preset": run.preset_name,
        "seed": run.seed,
        "data": run.data["dataset"],
        "run_dir": str(out),
    }
    atomic_write_json(out / "best_arch.json", summary)
    atomic_write_text(out / "report.md", _report_md(run, steps, search, finalists, summary))
    return summary


def _selection_line(summary: dict) -> str:
    sel = summary["selection"]
    gap = sel["test_minus_selected"]["points"]
    lo, hi = sel["test_minus_selected"]["ci95"]
    where = (
        "validation images the search never scored"
        if sel["split"] == "selection"
        else "the search's own validation images (no separate selection split)"
    )
    line = (
        f"Picked among {sel['finalists']} finalist(s) on {sel['images']} {where}: top-1 {sel['top1']:.2f}% "
        f"(95 % CI {sel['ci95'][0]:.2f}–{sel['ci95'][1]:.2f}); test top-1 {summary['test_top1']:.2f}%; "
        f"test − selected {gap:+.2f} points (95 % CI {lo:+.2f} to {hi:+.2f}, image sampling only)."
    )
    if sel["split"] == "selection":
        g = sel["test_minus_search_score"]["points"]
        line += f" Its score on the search's {sel['search_images']} images was {sel['search_val_top1']:.2f}% (test − that: {g:+.2f})."
    return line


def _compare_md(compare: dict | None, budget: Budget) -> list[str]:
    if not compare:
        return []
    if "skipped" in compare:
        return ["## Stand-alone check", "", f"Skipped: {compare['skipped']}.", ""]
    r, d = compare["recipe"], compare["test_difference"]
    lines = [
        "## Stand-alone check: the winner vs a hand-designed arch of the same budget",
        "",
        f"Both trained from scratch with one recipe: {r['epochs']} epoch(s) on {r['train_images']} training images at "
        f"{r['resolution']} px, AdamW lr {r['lr']:g}, batch {r['batch_size']}, seeds 0–{r['seeds'] - 1}; test top-1 on the test set.",
        "",
        "| arch | cost | test top-1 per seed | mean |",
        "|---|---|---|---|",
    ]
    for name, a in compare["archs"].items():
        tests = [x["test_top1"] for x in a["runs"]]
        lines.append(
            f"| {name}: {a['name']} | {budget.share(a['cost'])} | {', '.join(f'{t:.2f}' for t in tests)} | {sum(tests) / len(tests):.2f} |"
        )
    ci = f"95 % CI {d['ci'][0]:+.2f} to {d['ci'][1]:+.2f}, pooled t over seeds" if d["ci"] else "no CI from one seed each"
    verdict = "the recipe tells them apart" if d["separated"] else "the recipe cannot tell them apart: the interval holds 0"
    lines += ["", f"Found − hand-designed: **{d['difference']:+.2f} test points** ({ci}): {verdict}.", ""]
    return lines


def _collapsed_md(run: RunFacts) -> list[str]:
    if not run.collapsed:
        return []
    return [
        "## Not searched: dimensions the proxy collapses",
        "",
        f"At the {run.resolution} px training resolution these dimensions' choices compute one function, so the run fixed "
        "each to the value shown for every candidate: no supernet training, E-T score, evolution step or search varied them.",
        "",
        *[f"- stage {c['stage']} {c['dimension']} {_fmt_choices(c['choices'])} → {c['fixed']}: {c['reason']}" for c in run.collapsed],
        "",
    ]


def _fmt_choices(values: list) -> str:
    return "{" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values) + "}"


def _report_md(run: RunFacts, steps: list[dict], search: dict, finalists: list[dict], summary: dict) -> str:
    from nascomp.core.io import read_json

    budget, preset, out = run.budget, run.preset, run.out
    timings = read_json(out / "timings.json")["stages"] if (out / "timings.json").is_file() else {}
    run_doc = read_json(out / "run.json")
    lines = [
        f"# S3 search: {run.space.name} under {budget.text}",
        "",
        f"Command: `{' '.join(run_doc.get('command', []))}`  ",
        f"Preset `{run.preset_name}`, seed {run.seed}, data {run.data['dataset']} "
        f"({run.data['train']} training / {run.data['val']} validation / "
        f"{run.data['test']} test images) at a {run.resolution} px training resolution; costs at {run.space.resolution} px.",
        "",
        "## Result",
        "",
        f"Best architecture (`best_arch.json`): **{budget.share(summary['budget']['cost'])}**, {summary['params'] / 1e6:.2f} M params "
        f"at {run.space.resolution} px"
        + (f" (in FLOPs counted as 2 × MACs: {2 * summary['gmacs']:.2f} G)" if budget.metric == "macs" else "")
        + ".  ",
        _selection_line(summary) + "  ",
        f"Weights: {finalists[0]['source']}. Depths {Arch.from_dict(summary['arch']).depths}, "
        f"embed dims {Arch.from_dict(summary['arch']).embed_dims}.",
        "",
        *_compare_md(summary.get("compare"), budget),
        *_collapsed_md(run),
        "## Space evolution (E-T error)",
        "",
        f"Each step trains the supernet, samples {preset.et_samples} budget-meeting subnets, scores them with inherited weights "
        f"on the validation split and computes E (mean error), T (mean of the best k) and Q = (E + T) / 2. "
        f"Shift rule: slope beyond τ = {preset.rule.tau} E-T points per step"
        + (
            f" and Holm-adjusted permutation p ≤ α = {preset.rule.alpha} ({preset.rule.permutations} permutations)"
            if preset.rule.alpha < 1
            else ""
        )
        + ".",
        "",
        "| step | space | supernet epochs | Q (%) | E (%) | T (%) | n | k |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in steps:
        epochs = preset.supernet.train.epochs if s["step"] == 0 else preset.evolve_epochs
        lines.append(
            f"| {s['step']} | {s['space']['name']} | {epochs} | {s['et']['Q']:.2f} | {s['et']['E']:.2f} | {s['et']['T']:.2f} | "
            f"{s['et']['n']} | {s['et']['k']} |"
        )
    lines.append("")
    for s in steps:
        moved = [d for d in s.get("decisions", []) if d["action"] != "keep"]
        if "decisions" in s:
            lines.append(
                f"Step {s['step']} → {s['step'] + 1}: "
                + (
                    "; ".join(
                        f"stage {d['stage']} {d['dimension']} {_fmt_choices(d['choices'])} → {_fmt_choices(d['new_choices'])} "
                        f"(slope {d['slope']:+.2f}/step)"
                        for d in moved
                    )
                    if moved
                    else "no choice moved"
                )
                + "."
            )
    lines += [
        "",
        "Per-choice E-T errors, slopes and every decision: `evolution/history.json`; plot: `evolution/et_steps.png`.",
        "",
        "## Evolutionary search",
        "",
    ]
    cfg = search["config"]
    hist = search["history"]
    lines += [
        f"Population {cfg['population']}, {cfg['generations']} generations, top-{cfg['parents']} parents, "
        f"{cfg['mutations']} mutations + {cfg['crossovers']} crossovers per generation (m_prob {cfg['mutation_prob']}, "
        f"s_prob {cfg['stage_prob']}), objective {cfg['objective']}; {len(search['candidates'])} distinct candidates evaluated, "
        f"best validation top-1 {hist[0]['best_top1']:.2f}% after generation 0 → {hist[-1]['best_top1']:.2f}% after "
        f"generation {hist[-1]['generation']}. All candidates: `candidates.csv`; front: `pareto.json`, `pareto.png`.",
        "",
        "## Finalists (test set read only here)",
        "",
        "| rank | G MACs | M params | search val top-1 | selection val top-1 (images) | test top-1 | weights |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in finalists:
        lines.append(
            f"| {f['rank']} | {f['macs'] / 1e9:.3f} | {f['params'] / 1e6:.2f} | {f['search_val_top1']:.2f} | "
            f"{f['val']['top1']:.2f} ({f['val']['n']}) | {f['test']['top1']:.2f} | {f['source']} |"
        )
    checks = summary.get("predicted_vs_measured")
    if checks:
        unit = budget.unit
        lines += [
            "",
            f"### Predicted vs measured {budget.metric} (each finalist measured end to end on the table's protocol)",
            "",
            f"| rank | predicted ({unit}) | interval | measured ({unit}) | error | straddles {budget.text} |",
            "|---|---|---|---|---|---|",
        ]
        for c in checks:
            interval = f"{c['low']:.2f}–{c['high']:.2f} ({c['level']:.0%})" if c["low"] is not None else "none"
            lines.append(
                f"| {c['rank']} | {c['predicted']:.2f} | {interval} | {c['measured']:.2f} | {c['error']:+.1%} | "
                f"{'yes' if c['straddles_limit'] else 'no'} |"
            )
    lines += ["", "## Time", ""]
    if timings:
        total_w = sum(v["wall_s"] for v in timings.values())
        total_c = sum(v["cpu_s"] for v in timings.values())
        lines.append(
            f"Stages took {total_w / 60:.1f} min wall, {total_c / 60:.1f} min CPU (process time, all threads) "
            "in the sessions that finished them (`timings.json`)."
        )
    lines += [
        "",
        "## Notes",
        "",
        f"- Accuracies come from a supernet trained at {run.resolution} px on {run.data['dataset']}; budgets and costs refer to the "
        f"space's {run.space.resolution} px deployment resolution.",
        *[f"- Final space: {n}" for n in SearchSpace.from_dict(search["space"]).degenerate_windows(run.resolution)],
        "- Standalone models of the finalists: `finalists/rank-*/model` (timm SwinTransformer; "
        "`nascomp train best_arch.json --img-size 224` builds the arch at its deployment resolution).",
        "",
    ]
    return "\n".join(lines)
