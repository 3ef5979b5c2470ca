"""The page of a search run (``nascomp search``): the winner beside its baseline, the Pareto plot, every candidate,
the E-T error and decisions per evolution step, the search per generation, training curves and time.

File formats: `nascomp.nas.pipeline` (run.json, search/result.json, evolution/step-*/et.json, finalists/rank-*/result.json,
compare/result.json, timings.json) and `nascomp.nas.report` (best_arch.json, candidates.csv, evolution/history.json).
"""

from __future__ import annotations

import json
from typing import Any

from nascomp.report import fmt, svg
from nascomp.report.files import RunFiles
from nascomp.report.html import Column, Html, Section, cards, code, details, esc, figure, key_values, notes, table
from nascomp.report.sections import Content, tensorboard_curves, timing, training_curves

__all__ = ["build"]

# cost metric of the budget -> (candidates.csv column, unit divisor of the budget's limit, axis label)
_COST = {
    "macs": ("gmacs", 1e9, "MACs (G), what papers call FLOPs"),
    "params": ("params_m", 1e6, "parameters (M)"),
    "latency": ("latency_ms", 1.0, "predicted latency (ms)"),
    "energy": ("energy_mj", 1.0, "predicted energy (mJ)"),
}
_NUMERIC = ("rank", "generation", "val_top1", "val_top5", "val_loss", "gmacs", "gflops", "params_m", "latency_ms", "energy_mj", "pareto")


def _choices(values: list) -> str:
    return "{" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values) + "}"


def _arch_key(arch: dict | None) -> str | None:
    return None if arch is None else json.dumps({"patch_size": arch.get("patch_size"), "stages": arch.get("stages")}, sort_keys=True)


def _candidates(files: RunFiles, search: dict | None) -> list[dict]:
    """candidates.csv as numbers; a run without it falls back to search/result.json's candidates."""
    rows = files.csv("candidates.csv", "every candidate the search scored (table and Pareto plot)")
    if rows is None:
        if not search:
            return []
        return [
            {
                **r,
                "gmacs": r.get("macs", 0) / 1e9,
                "params_m": r.get("params", 0) / 1e6,
                "pareto": int(bool(r.get("pareto"))),
                "arch": json.dumps(r.get("arch")),
            }
            for r in search.get("candidates", [])
        ]
    for row in rows:
        for key in _NUMERIC:
            if row.get(key) not in (None, ""):
                row[key] = float(row[key]) if key not in ("rank", "generation", "pareto") else int(row[key])
    return rows


def _arch_summary(arch: dict) -> tuple[str, str]:
    stages = arch.get("stages", [])
    return "-".join(str(len(s.get("blocks", []))) for s in stages), "-".join(str(s.get("embed_dim")) for s in stages)


def _winner_rank(best: dict | None, finalists: list[dict], candidates: list[dict]) -> int | None:
    if not best:
        return None
    for f in finalists:
        if f.get("rank") == best.get("finalist_rank") and f.get("search_rank") is not None:
            return f["search_rank"]
    key = _arch_key(best.get("arch"))
    return next((r["rank"] for r in candidates if _arch_key(json.loads(r["arch"])) == key), None) if key else None


def _result(best: dict, compare: dict | None, timings: dict | None, warnings: list[str]) -> Html:
    sel, budget = best.get("selection") or {}, best.get("budget") or {}
    items: list[tuple[str, Any, Any]] = [
        ("best architecture", fmt.count(budget.get("cost")) + f" {budget.get('unit', '')}".rstrip(), budget.get("share", "")),
        ("parameters", fmt.count(best.get("params")), f"at {best.get('resolution', '?')} px"),
    ]
    gap = sel.get("test_minus_selected")
    if sel:
        where = "held-out" if sel.get("split") == "selection" else "search"
        interval = f", {fmt.ci(sel['ci95'][0], sel['ci95'][1], sign=False)}" if sel.get("ci95") else ""
        items.append(("selection top-1", fmt.pct(sel.get("top1")), f"{sel.get('images')} {where} validation images{interval}"))
    items.append(
        (
            "test top-1",
            fmt.pct(best.get("test_top1")),
            f"test − selected {fmt.signed(gap['points'])} ({fmt.ci(*gap['ci95'])})" if gap else "read only for the finalists",
        )
    )
    d = (compare or {}).get("test_difference")
    if d:
        verdict = "told apart" if d.get("separated") else "not told apart"
        items.append(
            (
                "found − hand-designed",
                f"{fmt.signed(d['difference'])} pts",
                (fmt.ci(*d["ci"]) + f": {verdict}") if d.get("ci") else "one seed each: no CI",
            )
        )
    if timings:
        items.append(("wall time", fmt.duration(sum(r.get("wall_s", 0.0) for r in timings.values())), f"{len(timings)} stages"))
    body = [cards(items)]
    intervals = []
    if gap:
        intervals.append(svg.Interval("test − selected (image sampling)", gap["points"], *gap["ci95"]))
    search_gap = sel.get("test_minus_search_score")
    if search_gap and sel.get("split") == "selection":
        intervals.append(svg.Interval("test − search score (winner's curse)", search_gap["points"], *search_gap["ci95"]))
    if d and d.get("ci"):
        intervals.append(svg.Interval("found − hand-designed (seeds)", d["difference"], *d["ci"]))
    if intervals:
        body.append(
            figure(
                svg.interval_chart(intervals, xlabel="difference in test top-1 (points), 95 % CI", label="result beside its baselines"),
                "Diamonds: the difference; bars: its 95 % interval; the dashed line is no difference.",
            )
        )
    if compare:
        body.append(_compare(compare, budget.get("unit", ""), warnings))
    body.append(Html(f'<p class="muted">{esc(best.get("accuracy_note", ""))}. {esc(best.get("cost_note", ""))}.</p>'))
    if sel.get("split") == "search":
        warnings.append(
            "the winner was picked on the search's own validation images (no held-out selection split): its validation score is optimistic"
        )
    if budget and budget.get("within") is False:
        warnings.append(f"the winner does not meet the budget: {budget.get('share')}")
    return Html("".join(body))


def _compare(compare: dict, unit: str, warnings: list[str]) -> Html:
    if "skipped" in compare:
        warnings.append(f"stand-alone check skipped: {compare['skipped']}")
        return Html("")
    recipe = compare.get("recipe", {})
    rows = []
    for role, a in compare.get("archs", {}).items():
        tests = [r["test_top1"] for r in a.get("runs", [])]
        rows.append(
            {
                "role": role,
                "name": a.get("name"),
                "cost": a.get("cost"),
                "params": a.get("params"),
                "seeds": ", ".join(f"{t:.2f}" for t in tests),
                "mean": sum(tests) / len(tests) if tests else None,
            }
        )
    columns = [
        Column("role", "arch"),
        Column("name", "name"),
        Column("cost", f"cost ({unit})", fmt.count, numeric=True),
        Column("params", "params", fmt.count, numeric=True),
        Column("seeds", "test top-1 per seed (%)"),
        Column("mean", "mean test top-1", fmt.pct, numeric=True),
    ]
    d = compare.get("test_difference", {})
    verdict = "the recipe tells them apart" if d.get("separated") else "the recipe cannot tell them apart: the interval holds 0"
    text = (
        f"<h3>Stand-alone check: the winner and a hand-designed arch of the same budget</h3><p>Both trained from scratch with one "
        f"recipe: {recipe.get('epochs')} epoch(s) on {recipe.get('train_images')} images at {recipe.get('resolution')} px, "
        f"{recipe.get('seeds')} seed(s) each.</p>"
    )
    tail = ""
    if d:
        ci = fmt.ci(*d["ci"]) if d.get("ci") else "no CI from one seed each"
        points = esc(fmt.signed(d["difference"]))
        tail = f'<p>Found − hand-designed: <span class="verdict">{points} test points</span> ({esc(ci)}): {esc(verdict)}.</p>'
    return Html(text + table(columns, rows, name="compare") + tail)


def _space_text(space: dict, settings: dict) -> str | None:
    initial = space.get("initial") or (settings.get("space") or {}).get("name")
    return f"{initial} → {space['final']} after {space.get('evolve_steps')} evolution step(s)" if space.get("final") else initial


def _budget_text(budget: dict, settings: dict) -> str | None:
    if not budget:
        return settings.get("budget")
    where = f" on {budget['target']}" if budget.get("target") else ""
    return f"{budget.get('text', settings.get('budget'))}: at most {fmt.count(budget.get('limit'))} {budget.get('unit', '')}{where}"


def _run_facts(run: dict | None, best: dict | None) -> Html:
    run, best = run or {}, best or {}
    settings = run.get("settings") or {}
    resolution = ((settings.get("resolved") or {}).get("supernet") or {}).get("resolution")
    facts = [
        ("space", _space_text(best.get("space") or {}, settings)),
        ("budget", _budget_text(best.get("budget") or {}, settings)),
        ("preset", settings.get("preset") or best.get("preset")),
        ("seed", settings.get("seed", best.get("seed"))),
        ("data", fmt.data(settings.get("data")) or best.get("data")),
        ("training resolution", f"{resolution} px (costs at {best.get('resolution', '?')} px)" if resolution else None),
        ("input channels", settings.get("in_chans")),
        ("latency table", settings.get("lut")),
        ("run directory", run.get("out") or best.get("run_dir")),
    ]
    command = run.get("command")
    out: list[str] = [code(" ".join(command))] if command else []
    out.append(key_values(facts))
    for key, title in (("versions", "versions"), ("machine", "machine")):
        if run.get(key):
            out.append(Html(f"<h3>{title}</h3>") + key_values(sorted(run[key].items())))
    return Html("".join(out))


def _pareto(candidates: list[dict], metric: str, limit: float | None, winner: int | None) -> Html:
    column, divisor, xlabel = _COST.get(metric, _COST["macs"])
    points = []
    for r in candidates:
        if r.get(column) in (None, "") or r.get("val_top1") in (None, ""):
            continue
        tip = (
            f"#{r['rank']} (generation {r['generation']}, {r['origin']}): val top-1 {r['val_top1']:.2f} %, "
            f"{r[column]:.4g} {xlabel.split(' (')[0]}, "
            f"{r['params_m']:.2f} M params; depths {r.get('depths')}, dims {r.get('embed_dims')}"
        )
        points.append(svg.Point(r[column], r["val_top1"], tip, front=bool(r.get("pareto")), chosen=r["rank"] == winner))
    if not points:
        return notes(["no candidate has both a cost and a score"], "missing")
    line = (limit / divisor, "budget") if limit else None
    chart = svg.scatter(
        points, xlabel=xlabel, ylabel="validation top-1 (%), inherited weights", label="candidates: accuracy vs cost", xline=line
    )
    front = sum(p.front for p in points)
    return figure(
        chart,
        f"{len(points)} candidates, {front} on the Pareto front (orange); the chosen architecture is ringed. "
        "Hover a point for its details.",
    )


def _candidate_table(candidates: list[dict], metric: str, winner: int | None) -> Html:
    extra = [Column(_COST[metric][0], _COST[metric][2], lambda v: f"{v:.3f}", numeric=True)] if metric in ("latency", "energy") else []
    columns = [
        Column("rank", "rank", numeric=True),
        Column("generation", "gen.", numeric=True),
        Column("origin", "origin"),
        Column("val_top1", "val top-1 (%)", lambda v: f"{v:.2f}", numeric=True),
        Column("val_top5", "val top-5 (%)", lambda v: f"{v:.2f}", numeric=True),
        Column("val_loss", "val loss", lambda v: f"{v:.4f}", numeric=True),
        Column("gmacs", "G MACs", lambda v: f"{v:.3f}", numeric=True),
        Column("params_m", "M params", lambda v: f"{v:.2f}", numeric=True),
        *extra,
        Column("pareto", "front", lambda v: "yes" if v else "", numeric=True),
        Column("depths", "depths"),
        Column("embed_dims", "embed dims"),
    ]
    rows = [
        {
            **r,
            "depths": r.get("depths") or _arch_summary(json.loads(r["arch"]))[0],
            "embed_dims": r.get("embed_dims") or _arch_summary(json.loads(r["arch"]))[1],
        }
        for r in candidates
    ]
    return table(
        columns,
        rows,
        highlight=lambda r: r.get("rank") == winner,
        scroll=len(rows) > 15,
        name="candidates",
        caption="Every architecture the evolutionary search scored; the chosen one is highlighted. Click a header to sort.",
    )


def _finalists(finalists: list[dict], best: dict | None) -> Html:
    chosen = (best or {}).get("finalist_rank")
    rows = [
        {
            "rank": f.get("rank"),
            "search_rank": f.get("search_rank"),
            "gmacs": (f.get("macs") or 0) / 1e9,
            "params": f.get("params"),
            "search_val": f.get("search_val_top1"),
            "val": (f.get("val") or {}).get("top1"),
            "val_n": (f.get("val") or {}).get("n"),
            "test": (f.get("test") or {}).get("top1"),
            "test_n": (f.get("test") or {}).get("n"),
            "source": f.get("source"),
        }
        for f in finalists
    ]
    sources = {r["source"] for r in rows}
    val_n, test_n = {r["val_n"] for r in rows}, {r["test_n"] for r in rows}
    columns = [
        Column("rank", "finalist", numeric=True),
        Column("search_rank", "search rank", numeric=True),
        Column("gmacs", "G MACs", lambda v: f"{v:.3f}", numeric=True),
        Column("params", "params", fmt.count, numeric=True),
        Column("search_val", "search val top-1", fmt.pct, numeric=True),
        Column("val", "selection val top-1", fmt.pct, numeric=True),
        *([] if len(val_n) == 1 else [Column("val_n", "images", numeric=True)]),
        Column("test", "test top-1", fmt.pct, numeric=True),
        *([] if len(test_n) == 1 else [Column("test_n", "test images", numeric=True)]),
        *([] if len(sources) == 1 else [Column("source", "weights", wrap=True)]),
    ]
    shared = [
        f"{val_n.pop()} selection images" if len(val_n) == 1 else "",
        f"{test_n.pop()} test images" if len(test_n) == 1 else "",
        f"weights: {sources.pop()}" if len(sources) == 1 else "",
    ]
    return table(
        columns,
        rows,
        highlight=lambda r: r["rank"] == chosen,
        name="finalists",
        caption="The top architectures as standalone models, re-scored on validation images the search never saw; the test set is read "
        "only here. " + "; ".join(x for x in shared if x) + ".",
    )


def _evolution(steps: list[dict], files: RunFiles) -> Html:
    series = [
        svg.Series(
            name,
            [(s["step"], s[key]) for s in steps if s.get(key) is not None],
            [f"step {s['step']}: {name} {s[key]:.2f} %" for s in steps if s.get(key) is not None],
        )
        for key, name in (("Q", "Q = (E + T) / 2"), ("E", "E (mean error)"), ("T", "T (mean of the best k)"))
    ]
    chart = svg.line_chart(
        [s for s in series if s.points], xlabel="evolution step", ylabel="E-T error (%)", label="E-T error per evolution step", height=280
    )
    rows = [
        {
            "step": s["step"],
            "space": (s.get("space") or {}).get("name"),
            "Q": s.get("Q"),
            "E": s.get("E"),
            "T": s.get("T"),
            "n": s.get("n"),
            "k": s.get("k"),
            "supernet": (s.get("supernet_val") or {}).get("top1"),
        }
        for s in steps
    ]
    two = lambda v: f"{v:.2f}"  # noqa: E731
    columns = [
        Column("step", "step", numeric=True),
        Column("space", "space"),
        Column("Q", "Q (%)", two, numeric=True),
        Column("E", "E (%)", two, numeric=True),
        Column("T", "T (%)", two, numeric=True),
        Column("n", "subnets", numeric=True),
        Column("k", "top k", numeric=True),
        Column("supernet", "supernet val top-1", fmt.pct, numeric=True),
    ]
    out = [
        figure(chart, "Lower is better: the space's subnets err less on average (E) and at their best (T)."),
        table(columns, rows, name="et"),
    ]
    decided = [s for s in steps if s.get("decisions")]
    if decided:
        rows = [
            {
                "step": f"{s['step']} → {s['step'] + 1}",
                "stage": d["stage"] + 1,
                "dimension": d["dimension"],
                "action": d.get("action"),
                "choices": _choices(d["choices"]),
                "new": _choices(d.get("new_choices", d["choices"])),
                "slope": d.get("slope"),
                "p": d.get("p"),
                "p_adj": d.get("p_adjusted"),
                "reason": d.get("reason"),
            }
            for s in decided
            for d in s["decisions"]
        ]
        columns = [
            Column("step", "step"),
            Column("stage", "stage", numeric=True),
            Column("dimension", "dimension"),
            Column("action", "action"),
            Column("choices", "choices"),
            Column("new", "new choices"),
            Column("slope", "slope (points/step)", lambda v: fmt.signed(v, 3), numeric=True),
            Column("p", "p", lambda v: f"{v:.3f}", numeric=True),
            Column("p_adj", "Holm p", lambda v: f"{v:.3f}", numeric=True),
        ]
        moved = [r for r in rows if r["action"] != "keep"]
        counts = "; ".join(
            f"step {s['step']} → {s['step'] + 1}: {sum(d.get('action') != 'keep' for d in s['decisions'])} of "
            f"{len(s['decisions'])} (stage, dimension) choices moved"
            for s in decided
        )
        out.append(Html(f"<h3>Decisions per step</h3><p>{esc(counts)}.</p>"))
        if moved:
            out.append(table(columns, moved, name="moved", caption="What moved (a shift by the slope of its E-T error per step)."))
        out.append(
            details(
                f"all {len(rows)} decisions, with the rule's reasons",
                table([*columns, Column("reason", "reason", wrap=True)], rows, scroll=True, name="decisions"),
            )
        )
    elif len(steps) > 1:
        files.lack("evolution/history.json decisions", "what each evolution step changed")
    return Html("".join(out))


def _steps(files: RunFiles) -> list[dict]:
    history = files.json("evolution/history.json", "the E-T error and decisions per evolution step")
    if history is not None:
        return history.get("steps", [])
    records = files.each_json("evolution/step-*/et.json", "the E-T error per evolution step")
    return [
        {
            "step": r["step"],
            "space": r.get("space"),
            **{k: r["et"].get(k) for k in ("E", "T", "Q", "n", "k")},
            "supernet_val": r.get("supernet"),
            "decisions": r.get("decisions", []),
        }
        for r in records
    ]


def _generations(search: dict) -> Html:
    history = search.get("history", [])
    cfg = search.get("config", {})
    series = [
        svg.Series("best", [(h["generation"], h["best_top1"]) for h in history]),
        svg.Series("population mean", [(h["generation"], h["population_mean_top1"]) for h in history if "population_mean_top1" in h]),
    ]
    chart = svg.line_chart(
        [s for s in series if s.points],
        xlabel="generation",
        ylabel="validation top-1 (%)",
        label="evolutionary search per generation",
        height=260,
    )
    columns = [
        Column("generation", "generation", numeric=True),
        Column("evaluated", "new", numeric=True),
        Column("total", "scored so far", numeric=True),
        Column("best_top1", "best val top-1", fmt.pct, numeric=True),
        Column("population_mean_top1", "population mean", fmt.pct, numeric=True),
        Column("front_size", "front size", numeric=True),
        Column("origins", "origins", lambda o: ", ".join(f"{k} {v}" for k, v in o.items() if v), wrap=True),
    ]
    text = (
        f"<p>Population {cfg.get('population')}, {cfg.get('generations')} generation(s), top-{cfg.get('parents')} parents, "
        f"{cfg.get('mutations')} mutations + {cfg.get('crossovers')} crossovers per generation, objective {cfg.get('objective')}.</p>"
    )
    return Html(text + figure(chart) + table(columns, history, name="generations"))


def _comparison(files: RunFiles, best: dict | None) -> dict | None:
    """compare/result.json, else what best_arch.json quotes of it (None there: the check was turned off)."""
    if files.exists("compare/result.json") or not best or "compare" not in best:
        return files.json("compare/result.json", "the winner trained stand-alone beside a hand-designed arch")
    if best["compare"] is None:
        files.lack("compare/result.json", "the stand-alone check (not run: --compare-epochs 0)")
    return best["compare"]


def _collapsed(best: dict | None, warnings: list[str]) -> None:
    for c in (best or {}).get("collapsed") or []:
        warnings.append(
            f"not searched (collapsed at the training resolution): stage {c['stage'] + 1} {c['dimension']} "
            f"{_choices(c['choices'])} fixed to {c['fixed']}: {c['reason']}"
        )


def build(files: RunFiles) -> Content:
    run = files.json("run.json", "the command line and the run's settings")
    best = files.json("best_arch.json", "the winning architecture, its accuracy and cost")
    search = files.json("search/result.json", "the evolutionary search per generation")
    candidates = _candidates(files, search)
    finalists = files.each_json("finalists/rank-*/result.json", "the finalists re-scored and tested")
    compare = _comparison(files, best)
    timings = files.json("timings.json", "how long each stage took")
    steps = _steps(files)

    space = ((best or {}).get("space") or {}).get("initial") or (((run or {}).get("settings") or {}).get("space") or {}).get("name", "?")
    budget_doc = (best or {}).get("budget") or {}
    budget = budget_doc.get("text") or ((run or {}).get("settings") or {}).get("budget", "?")
    content = Content(f"S3 search: {space} under {budget}", str(files.root))
    warnings = content.warnings
    add = content.sections.append
    if best:
        add(Section("result", "Result", _result(best, compare, (timings or {}).get("stages"), warnings)))
    add(Section("run", "What was run", _run_facts(run, best)))
    if run is not None and not run.get("versions"):
        files.lack("run.json versions", "the nascomp, torch and timm versions and the machine (this nascomp records none for a search)")
    winner = _winner_rank(best, finalists, candidates)
    if candidates:
        metric = budget_doc.get("metric", "macs")
        add(
            Section(
                "candidates",
                "Candidates",
                Html(_pareto(candidates, metric, budget_doc.get("limit"), winner) + _candidate_table(candidates, metric, winner)),
            )
        )
    if finalists:
        add(Section("finalists", "Finalists", _finalists(finalists, best)))
    if steps:
        add(Section("evolution", "Space evolution", _evolution(steps, files)))
    if search and search.get("history"):
        add(Section("search", "Search", _generations(search)))
    histories = [
        (f"step {i}", (files.json(f"supernet/step-{i}/metrics.json", f"supernet step {i}'s training curve") or {}).get("history"))
        for i in range(len(steps))
    ]
    curves = training_curves(histories)
    board = tensorboard_curves(files.root, warnings)
    if curves or board:
        add(Section("training", "Training", Html((curves or "") + (board or ""))))
    if timings and timings.get("stages"):
        add(Section("time", "Time", timing(timings["stages"], warnings)))
    _collapsed(best, warnings)
    return content
