"""Prediction intervals: they cover at their stated level on simulations, and travel with predictions, checks and energy."""

from __future__ import annotations

import json
import math
import random
import re

import numpy as np
import pytest
from test_predictor_transfer import SPACE, Fake, _proto, _slowed  # noqa: F401  (the shared fakes)

from nascomp.core.errors import NascompError
from nascomp.profiling import check as C
from nascomp.profiling import intervals as I
from nascomp.profiling import predictor as P
from nascomp.profiling.correction import feature_names, fit_correction

NAMES = feature_names(4)
# per-stage scales of plain and shifted-window blocks, the rest, per-layer overhead, offset
TRUE_W = np.array([1.6, 1.1, 0.9, 1.3, 1.9, 1.2, 1.0, 1.3, 1.0, -0.05, 0.4])


def _simulated(rng: np.random.Generator, n: int, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Arch features (stage sums of plain and shifted blocks in ms, the rest, layer count, 1) and latencies =
    features . TRUE_W x lognormal noise."""
    depths = rng.integers(1, 4, size=(n, 4))
    shifted = depths // 2
    per_block = rng.uniform([2.0, 1.0, 3.0, 1.0], [4.0, 2.0, 6.0, 2.0], size=(n, 4))
    X = np.column_stack(
        [(depths - shifted) * per_block, shifted * per_block * 1.1, rng.uniform(0.5, 1.0, n), depths.sum(1) + 5, np.ones(n)]
    )
    return X, X @ TRUE_W * np.exp(rng.normal(0, sigma, n))


def _coverage(make_interval, shots: int, reps: int, sigma: float = 0.04, seed: int = 0) -> tuple[float, float]:
    """Mean coverage and mean relative width of intervals from ``shots`` calibration points, over ``reps`` draws."""
    rng = np.random.default_rng(seed)
    covered, widths = [], []
    for _ in range(reps):
        X, y = _simulated(rng, shots, sigma)
        Xt, yt = _simulated(rng, 50, sigma)
        correction = fit_correction(X, y, NAMES)
        for x, truth in zip(Xt, yt):
            p = make_interval(correction, x)
            covered.append(p.covers(truth))
            widths.append((p.high - p.low) / p.value)
    return float(np.mean(covered)), float(np.mean(widths))


def test_jackknife_plus_intervals_cover_at_their_level_on_a_simulation():
    """20 shots with 4 % lognormal noise, 60 draws x 50 new archs: coverage of the 90 % interval within 3.5 points of 90 %,
    and not by being wide (mean width < 8 x sigma); residuals of points the fit has seen would be too small."""

    def jackknife(correction, x):
        return I.jackknife_plus(correction.predict(x), correction.loo_predict(x), correction.loo_errors, 0.9, "shots")

    coverage, width = _coverage(jackknife, shots=20, reps=60)
    assert abs(coverage - 0.9) <= 0.035 and width < 8 * 0.04

    # a fit on the same 20 points as its residuals, with 7 parameters: those residuals are too small
    rng = np.random.default_rng(3)
    X, y = _simulated(rng, 20, 0.04)
    fitted = fit_correction(X, y, NAMES, "ridge")
    q_in = float(np.quantile(np.abs(np.log(y / (X @ fitted.weights))), 0.9))
    q_loo = float(np.sort(fitted.loo_errors)[I.conformal_rank(20, 0.9) - 1])
    assert q_in < q_loo


def test_split_conformal_covers_at_its_finite_sample_level():
    """50 held-out scores: the expected coverage is ceil(0.9 x 51) / 51 = 0.902 exactly; 3000 draws land within 1.5 points."""
    rng = np.random.default_rng(0)
    hits = []
    for _ in range(3000):
        scores = np.abs(rng.standard_t(4, 50)) * 0.05
        p = I.split_conformal(10.0, scores, 0.9, "validation subnets")
        hits.append(p.covers(10.0 * math.exp(rng.standard_t(4) * 0.05 * rng.choice([-1, 1]))))
    assert abs(np.mean(hits) - 46 / 51) < 0.015


def test_few_shots_fall_back_to_a_stated_student_t_band():
    assert I.conformal_rank(8, 0.9) is None and I.conformal_rank(9, 0.9) == 9 and I.conformal_rank(19, 0.95) == 19
    assert I.jackknife_plus(1.0, [1.0] * 5, [0.1] * 5, 0.9, "shots") is None

    def band(correction, x):
        return I.t_band(correction.predict(x), correction.loo_errors, 0.9, "shots")

    coverage, _ = _coverage(band, shots=5, reps=100, sigma=0.03)
    assert 0.85 <= coverage <= 0.99  # approximate (it assumes normal errors); conformal needs >= 9 points at 90 %
    p = band(fit_correction(*_simulated(np.random.default_rng(0), 5, 0.03), NAMES), _simulated(np.random.default_rng(1), 1, 0.03)[0][0])
    assert "Student-t" in p.method and "too few for a conformal interval at 90%" in p.method


def test_prediction_flags_a_straddled_budget_and_scales_to_energy():
    p = I.Prediction(24.0, 22.0, 26.5, 0.9, "jackknife+ on 20 shots")
    assert p.straddles(25.0) and not p.straddles(21.0) and not p.straddles(27.0)
    assert p.text() == "24.00 ms [22.00, 26.50] (90%)"
    e = p.scaled(3.0, "mJ")
    assert (e.value, e.low, e.high, e.unit) == (72.0, 66.0, 79.5, "mJ")
    assert p.columns("latency_ms", 25.0) == {
        "latency_ms": 24.0,
        "latency_ms_low": 22.0,
        "latency_ms_high": 26.5,
        "interval_level": 0.9,
        "straddles_budget": 1,
    }
    bare = I.Prediction(24.0, None, None, None, "no interval")
    assert not bare.straddles(24.0) and bare.covers(1.0) is None and bare.text() == "24.00 ms"
    with pytest.raises(NascompError, match="between 0 and 1"):
        I.check_level(90)


@pytest.fixture
def space(tmp_path):
    from nascomp.spaces import SearchSpace

    (tmp_path / "tiny.yaml").write_text(SPACE)
    return SearchSpace.load(tmp_path / "tiny.yaml")


def test_validation_becomes_the_interval_evidence_of_the_fit_it_checked(space, tmp_path, monkeypatch):
    Fake(monkeypatch, noise=0.03)
    lut = tmp_path / "lut.json"
    table = P.build_lut(space, _proto(), lut, calibrate=12)
    arch = space.sample(7)
    before = P.LatencyPredictor(table).predict_interval(arch)
    assert "jackknife+ on 12 calibration subnets" in before.method
    result = P.validate_lut(table, space, n=30, path=lut)
    assert result["interval"]["coverage"] is not None and result["interval"]["level"] == 0.9 and 0 < result["within_5pct"] <= 1
    assert result["spearman"] > 0.9 and all("arch" in r and r["low_ms"] <= r["high_ms"] for r in result["rows"])
    stored = json.loads(lut.read_text())
    after = P.LatencyPredictor(stored).predict_interval(arch)
    assert "split-conformal on 30 validation subnets" in after.method and after.value == pytest.approx(before.value)
    refitted = P.refit(stored, "offset")  # a new fit: the old validation rows no longer speak for it
    assert "jackknife+" in P.LatencyPredictor(refitted).predict_interval(arch).method


def test_checking_finalists_sets_measurements_beside_intervals(space, tmp_path, monkeypatch):
    fake = Fake(monkeypatch, noise=0.03)
    table = P.build_lut(space, _proto(), tmp_path / "lut.json", calibrate=12)
    predictor = P.LatencyPredictor(table, "lut.json")
    archs = [space.sample(random.Random(i)) for i in range(4)]
    limit = predictor.predict(archs[0])  # the first finalist sits right on the budget: its interval straddles it
    report = C.check_predictions(predictor, archs, names=["a", "b", "c", "d"], limit=limit)
    assert fake.calls["archs"] == 12 + 4 and [c.name for c in report.checks] == ["a", "b", "c", "d"]
    first = report.checks[0]
    assert first.straddles and first.prediction.level == 0.9 and first.measured > 0
    row = first.to_row()
    assert row["straddles_limit"] and row["low"] <= row["predicted"] <= row["high"] and row["unit"] == "ms"
    assert "a: predicted" in first.line() and "measured" in first.line() and "straddles the budget" in first.line()
    doc = report.to_dict()
    assert doc["interval_method"].startswith("jackknife+") and 0 <= doc["within_10pct"] <= 1 and len(doc["rows"]) == 4
    energy = P.EnergyPredictor(predictor)
    e = C.check_predictions(energy, archs[:1])
    assert e.checks[0].prediction.unit == "mJ" and "W" in e.notes[0]
    p = energy.predict_interval(archs[0])
    assert p.value == pytest.approx(energy.predict(archs[0]))
    assert p.low == pytest.approx(predictor.predict_interval(archs[0]).low * energy.watts)


def test_a_latency_budgeted_search_measures_its_finalists_beside_their_intervals(tmp_path, monkeypatch, fake_fmnist, one_thread, capsys):
    """What `nascomp search --budget 25ms@mobile-cpu` shows: every candidate's interval in candidates.csv, each finalist's
    prediction and interval beside its end-to-end measurement, printed and recorded in best_arch.json and report.md."""
    import csv

    import yaml

    import nascomp
    from nascomp.spaces import SearchSpace
    from tests.conftest import TINY_SPACE

    fake = Fake(monkeypatch, noise=0.03)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump({**TINY_SPACE, "name": "tiny-latency"}))
    space = SearchSpace.load(tmp_path / "tiny.yaml")
    lut = tmp_path / "lut.json"
    P.build_lut(
        space, P.LutProtocol(target="cpu", threads=1, timer="thread-cpu", resolution=16, in_chans=1, num_classes=10), lut, calibrate=12
    )
    predictor = P.LatencyPredictor(json.loads(lut.read_text()), str(lut))
    limit = float(np.median([predictor.predict(space.sample(random.Random(i))) for i in range(40)]))
    measured_before = fake.calls["archs"]
    result = nascomp.search(
        str(tmp_path / "tiny.yaml"),
        f"{limit:.4f}ms@cpu",
        preset="smoke",
        data="fashion-mnist",
        data_dir=str(fake_fmnist),
        in_chans=1,
        lut=str(lut),
        out=tmp_path / "run",
        resolution=16,
        limit_test=50,
        evolve_steps=0,
        top=2,
    )
    printed = capsys.readouterr()
    checks = result.summary["predicted_vs_measured"]
    assert re.search(r"finalist 1: predicted [\d.]+ ms \(90% interval [\d.]+-[\d.]+\), measured [\d.]+ ms", printed.out + printed.err)
    assert [c["rank"] for c in checks] == [1, 2] and fake.calls["archs"] == measured_before + 2  # the finalists, measured once each
    for c in checks:
        assert c["low"] < c["predicted"] < c["high"] and c["level"] == 0.9 and c["measured"] > 0
        assert c["error"] == pytest.approx(c["predicted"] / c["measured"] - 1, abs=1e-4)
        assert c["straddles_limit"] == (c["low"] <= float(f"{limit:.4f}") <= c["high"])
    rows = list(csv.DictReader((tmp_path / "run" / "candidates.csv").open()))
    assert rows and all(float(r["latency_ms_low"]) < float(r["latency_ms"]) < float(r["latency_ms_high"]) for r in rows)
    assert {r["straddles_budget"] for r in rows} <= {"0", "1"}
    assert "Predicted vs measured latency" in (tmp_path / "run" / "report.md").read_text()
    # a resumed run reads the recorded check instead of measuring again
    nascomp.search(
        str(tmp_path / "tiny.yaml"),
        f"{limit:.4f}ms@cpu",
        preset="smoke",
        data="fashion-mnist",
        data_dir=str(fake_fmnist),
        in_chans=1,
        lut=str(lut),
        out=tmp_path / "run",
        resolution=16,
        limit_test=50,
        evolve_steps=0,
        top=2,
        resume=True,
    )
    assert fake.calls["archs"] == measured_before + 2
