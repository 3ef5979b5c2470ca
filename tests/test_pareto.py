"""Pareto: non-dominated sorting and hypervolume against brute force, tables, plots and `nascomp pareto`."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nascomp.cli import main
from nascomp.core.errors import NascompError
from nascomp.pareto import (
    Table,
    default_reference,
    dominates,
    front_indices,
    hypervolume,
    load_rows,
    non_dominated_sort,
    objective_sense,
)

points_2d = st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=25)
points_3d = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=12)


def _brute_front(values, senses):
    return sorted(i for i in range(len(values)) if not any(dominates(values[j], values[i], senses) for j in range(len(values))))


def _grid_hypervolume(values, reference):
    """Count unit cells dominated by integer minimisation points (exact for integer coordinates)."""
    values = np.asarray(values)
    ranges = [range(int(v), int(r)) for v, r in zip(values.min(axis=0), reference)]
    count = 0
    for cell in itertools.product(*ranges):
        if np.any(np.all(values <= np.array(cell), axis=1)):
            count += 1
    return count


def test_senses_from_column_names():
    assert [objective_sense(c) for c in ("top1", "val_acc", "latency_ms", "energy_mj", "macs", "params", "top1_err")] == [
        "max",
        "max",
        "min",
        "min",
        "min",
        "min",
        "min",
    ]


def test_known_2d_front_and_hypervolume():
    pts = np.array([[1, 3], [2, 2], [3, 1], [3, 3], [2.5, 2.5]])
    assert front_indices(pts, ["min", "min"]) == [0, 1, 2]
    fronts = non_dominated_sort(pts, ["min", "min"])
    assert fronts == [[0, 1, 2], [4], [3]]
    assert hypervolume(pts, ["min", "min"], [4, 4]) == pytest.approx(6.0)
    # latency (min) vs accuracy (max): flipping the sense of y flips which points are optimal
    assert front_indices(pts, ["min", "max"]) == [0]  # (3, 3) ties (1, 3) on y and is slower
    assert front_indices(np.vstack([pts, [[4, 5]]]), ["min", "max"]) == [0, 5]


@settings(max_examples=60, deadline=None)
@given(points_2d, st.sampled_from([("min", "min"), ("min", "max"), ("max", "max")]))
def test_non_dominated_sort_matches_brute_force(points, senses):
    values = np.array(points, dtype=float)
    fronts = non_dominated_sort(values, senses)
    assert sorted(i for f in fronts for i in f) == list(range(len(values)))  # a partition
    assert fronts[0] == _brute_front(values, senses)
    remaining = list(range(len(values)))
    for front in fronts:  # each later front is the front of what is left
        sub = values[remaining]
        assert front == sorted(remaining[i] for i in _brute_front(sub, senses))
        remaining = [i for i in remaining if i not in front]


@settings(max_examples=40, deadline=None)
@given(points_3d)
def test_hypervolume_3d_matches_cell_counting(points):
    values = np.array(points, dtype=float)
    reference = [7, 7, 7]
    assert hypervolume(values, ["min"] * 3, reference) == pytest.approx(_grid_hypervolume(values, reference))


@settings(max_examples=40, deadline=None)
@given(points_2d)
def test_hypervolume_properties(points):
    values = np.array(points, dtype=float)
    ref = [21.0, -1.0]  # min x, max y
    hv = hypervolume(values, ["min", "max"], ref)
    worse = values[0] + np.array([1.0, -1.0])  # dominated by point 0: adds nothing
    assert hypervolume(np.vstack([values, worse]), ["min", "max"], ref) == pytest.approx(hv)
    better = np.array([[-1.0, 21.0]])  # dominates everything: the full box
    assert hypervolume(np.vstack([values, better]), ["min", "max"], ref) == pytest.approx(22.0 * 22.0)
    assert hypervolume(values, ["min", "max"], ref) >= 0


def test_default_reference_is_worse_than_every_point():
    values = np.array([[10.0, 70.0], [30.0, 80.0]])
    ref = default_reference(values, ["min", "max"])
    assert ref[0] > 30 and ref[1] < 70
    assert hypervolume(values, ["min", "max"]) > 0


def test_load_rows_from_csv_jsonl_and_run_directory(tmp_path):
    (tmp_path / "a.csv").write_text("model,latency_ms,top1\nx,1.5,70\ny,,80\n")
    rows = load_rows(tmp_path / "a.csv")
    assert rows[0] == {"model": "x", "latency_ms": 1.5, "top1": 70.0} and rows[1]["latency_ms"] is None
    table = Table.from_rows(rows, ["latency_ms", "top1"])
    assert table.dropped == 1 and table.senses == ["min", "max"]
    run = tmp_path / "run"
    run.mkdir()
    (run / "candidates.jsonl").write_text(json.dumps({"arch": {"depth": 2}, "latency_ms": 3.0, "top1": 60}) + "\n")
    assert load_rows(run)[0]["arch.depth"] == 2
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "m.json").write_text(json.dumps({"model": "m", "latency_ms": 2.0, "protocol": {"threads": 1}}))
    assert load_rows(profiles)[0]["protocol.threads"] == 1
    with pytest.raises(NascompError, match="none of"):
        load_rows(tmp_path / "profiles" / "..")  # a folder with a CSV but no run files or profiles
    with pytest.raises(NascompError, match="not in the input"):
        Table.from_rows(rows, ["latency_ms", "accuracy"])


@pytest.fixture
def zoo_csv(tmp_path):
    rows = [
        ("deit_tiny", "DeiT", 30.0, 72.2),
        ("deit_small", "DeiT", 90.0, 79.8),
        ("swin_tiny", "Swin", 180.0, 81.4),
        ("slow_bad", "Swin", 200.0, 75.0),
        ("mobilevit_xs", "mobile", 25.0, 74.6),
        ("vit_small", "ViT", 95.0, 81.4),
    ]
    path = tmp_path / "zoo.csv"
    path.write_text(
        "model,family,latency_ms,top1,protocol\n" + "".join(f"{m},{f},{lat},{acc},mobile-cpu: ORT 1 thread\n" for m, f, lat, acc in rows)
    )
    return path


def test_nascomp_pareto_writes_png_and_svg_and_reports_the_front(zoo_csv, tmp_path, capsys):
    out = tmp_path / "plots" / "front.png"
    assert main(["pareto", str(zoo_csv), "--x", "latency_ms", "--y", "top1", "--group", "family", "--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in doc["front"]] == ["mobilevit_xs", "deit_small", "vit_small"]  # deit_tiny: slower, less accurate
    assert doc["hypervolume"] > 0 and doc["objectives"][1] == {"column": "top1", "sense": "max"}
    png, svg = out, out.with_suffix(".svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    text = svg.read_text()
    assert "<svg" in text and "mobilevit_xs" in text and "Latency (ms, median)" in text and "ORT 1 thread" in text


def test_nascomp_pareto_user_errors(zoo_csv, capsys):
    assert main(["pareto", str(zoo_csv), "--x", "latency_ms", "--y", "nope", "--no-plot"]) == 2
    assert "not in the input" in capsys.readouterr().err
    assert main(["pareto", str(zoo_csv), "--maximize", "top1", "--minimize", "top1", "--no-plot"]) == 2
    assert main(["pareto", str(zoo_csv) + ".missing", "--no-plot"]) == 2
    assert main(["pareto", str(zoo_csv), "--reference", "1", "--no-plot"]) == 2


def test_filter_and_senses_override(zoo_csv, capsys):
    assert main(["pareto", str(zoo_csv), "--filter", "family=DeiT", "--no-plot", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["points"] == 2
    assert main(["pareto", str(zoo_csv), "--minimize", "top1", "--no-plot", "--json"]) == 0  # now lower is better
    doc = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in doc["front"]] == ["mobilevit_xs", "deit_tiny"]


def test_search_run_directory_candidates_csv(tmp_path, capsys):
    """A search run directory: candidates.csv with a quoted arch-JSON column; ranks label the points."""
    (tmp_path / "candidates.csv").write_text(
        "rank,val_top1,gmacs,arch\n"
        '1,71.2,3.9,"{""patch_size"": 4, ""stages"": []}"\n'
        '2,70.1,3.1,"{""patch_size"": 4}"\n'
        '3,69.0,3.5,"{""patch_size"": 4}"\n'
    )
    assert main(["pareto", str(tmp_path), "--x", "gmacs", "--y", "val_top1", "--no-plot", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in doc["front"]] == ["2", "1"] and doc["objectives"][1]["sense"] == "max"
