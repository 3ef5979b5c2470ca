"""Few-shot transfer of a latency table to a new target, the end-to-end correction of tiny layers, old tables, the CLI.

Measurements are fakes (`measure_layer` / `measure_arch` monkeypatched) with a planted truth, so each test knows
what the predictor should find and can fail when it does not.
"""

from __future__ import annotations

import inspect
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

import nascomp
from nascomp.cli import main
from nascomp.core.errors import NascompError
from nascomp.profiling import predictor as P
from nascomp.profiling import transfer as T
from nascomp.spaces import SearchSpace
from nascomp.spaces.layout import BlockConfig

SPACE = """
name: tiny-transfer
resolution: 32
patch_size: 4
stages:
  - {depth: [1, 2, 3], embed_dim: [16, 24, 32], heads: [1, 2], qkv_dim: [16, 32], mlp_ratio: [2.0, 4.0], window: [4, 8]}
  - {depth: [1, 2, 3], embed_dim: [32, 48], heads: [2], qkv_dim: [32, 64], mlp_ratio: [2.0, 3.0], window: [4]}
"""
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(SPACE)
    return SearchSpace.load(path)


def _base(cfg) -> float:
    """The source target's latency of a layer alone: proportional to its width and area."""
    area = getattr(cfg, "resolution", getattr(cfg, "img_size", 1)) ** 2
    width = getattr(cfg, "dim", getattr(cfg, "in_dim", 1)) * getattr(cfg, "mlp_ratio", 1.0)
    return 2e-4 * area * width + 0.05


def _slowed(cfg) -> float:
    """The planted new target: stage-1 blocks 1.8x slower, stage-2 blocks 1.2x, the rest 1.5x."""
    if isinstance(cfg, BlockConfig):
        return _base(cfg) * (1.8 if cfg.stage == 0 else 1.2)
    return _base(cfg) * 1.5


class Fake:
    """Layers cost ``layer(cfg) + overhead`` alone; a network ``(sum of layer(cfg) + session) x noise``."""

    def __init__(self, monkeypatch, layer=_base, overhead=0.0, session=0.3, noise=0.0, seed=0):
        self.layer, self.overhead, self.session, self.noise = layer, overhead, session, noise
        self.rng = np.random.default_rng(seed)
        self.calls = {"layers": 0, "archs": 0}
        monkeypatch.setattr(P, "measure_layer", self.measure_layer)
        monkeypatch.setattr(P, "measure_arch", self.measure_arch)
        monkeypatch.setattr(P, "ReferenceProbe", lambda *a, **k: None)

    def truth(self, arch, proto) -> float:
        return sum(self.layer(c) for c in P.arch_layers(arch, proto.resolution, proto.in_chans, proto.num_classes)) + self.session

    def measure_layer(self, cfg, proto, workdir, probe=None):
        self.calls["layers"] += 1
        return {"ms": self.layer(cfg) + self.overhead, "iqr_ms": 0.0}

    def measure_arch(self, arch, proto, energy=False, probe=None, workdir=None):
        self.calls["archs"] += 1
        return {"ms": self.truth(arch, proto) * math.exp(self.rng.normal(0, self.noise)), "iqr_ms": 0.0}


def _proto(target="cpu", **kw):
    return P.LutProtocol(target=target, threads=1, timer="thread-cpu", resolution=32, **kw)


def _errors(predictor, space, fake, proto, n=60, seed=1000):
    rng = random.Random(seed)
    archs = [space.sample(rng) for _ in range(n)]
    return np.array([predictor.predict(a) / fake.truth(a, proto) - 1 for a in archs])


def test_a_transferred_table_beats_the_source_table_on_a_slowed_runtime(space, tmp_path, monkeypatch):
    """Source: a full table of one runtime. Target: a runtime slowed unevenly per stage. 10 shots with 2 % noise,
    5 draws of the shots: every transferred predictor is within 10 % of the target's truth where the source is not."""
    Fake(monkeypatch)
    source = P.build_lut(space, _proto(), tmp_path / "src.json", calibrate=12)
    target = _proto("mobile-cpu", runtime="onnxruntime")
    untransferred = _errors(P.LatencyPredictor(source), space, Fake(monkeypatch, layer=_slowed), target.resolved())
    assert np.mean(np.abs(untransferred) <= 0.10) < 0.2  # the planted difference is real: the source table is off by 30-50 %
    for seed in range(5):
        fake = Fake(monkeypatch, layer=_slowed, noise=0.02, seed=seed)
        table = T.transfer_lut(source, space, target, tmp_path / f"t{seed}.json", shots=10, seed=seed, source_path="src.json")
        assert fake.calls == {"layers": 0, "archs": 10}  # only the shots are measured
        errors = _errors(P.LatencyPredictor(table), space, fake, target.resolved())
        assert np.mean(np.abs(errors) <= 0.10) == 1.0 and np.mean(np.abs(errors)) < np.mean(np.abs(untransferred)) / 4
    assert table["kind"] == P.TRANSFERRED and table["target"] == "mobile-cpu" and table["transfer"]["source_target"] == "cpu"
    assert table["protocol"]["runtime"] == "onnxruntime" and len(table["fit"]["calibration"]) == 10


def test_with_enough_shots_the_fit_learns_each_stages_scale(space, tmp_path, monkeypatch):
    """40 noise-free shots: the ridge fit recovers the planted per-stage factors, which one scale cannot."""
    Fake(monkeypatch)
    source = P.build_lut(space, _proto(), tmp_path / "src.json", calibrate=3)
    fake = Fake(monkeypatch, layer=_slowed, session=0.0)
    table = T.transfer_lut(source, space, _proto("mobile-cpu"), tmp_path / "t.json", shots=40)
    weights = dict(zip(table["fit"]["names"], table["fit"]["weights"]))
    assert weights["stage1"] == pytest.approx(1.8, rel=0.02) and weights["stage2"] == pytest.approx(1.2, rel=0.02)
    assert np.max(np.abs(_errors(P.LatencyPredictor(table), space, fake, _proto("mobile-cpu").resolved()))) < 0.01
    one_scale = P.refit(json.loads(json.dumps(table)), "affine")
    assert np.max(np.abs(_errors(P.LatencyPredictor(one_scale), space, fake, _proto("mobile-cpu").resolved()))) > 0.03


def test_tiny_layers_per_run_overhead_is_corrected(space, tmp_path, monkeypatch):
    """Every layer timed alone pays 0.3 ms of session overhead (as small models do): the layer sum overshoots ~2x; the
    default correction learns the per-layer term from 12 calibration subnets, a constant offset cannot."""
    fake = Fake(monkeypatch, layer=lambda cfg: 0.1 * _base(cfg), overhead=0.3, session=0.1)
    table = P.build_lut(space, _proto(), tmp_path / "lut.json", calibrate=12)
    proto = _proto().resolved()
    archs = [space.sample(random.Random(1000)) for _ in range(1)]
    assert P.LatencyPredictor(table).layer_sum(archs[0]) > 1.5 * fake.truth(archs[0], proto)
    assert table["fit"]["method"] == "ridge" and table["fit"]["per_layer_ms"] == pytest.approx(-0.3, abs=0.01)
    assert np.max(np.abs(_errors(P.LatencyPredictor(table), space, fake, proto))) < 0.01
    offset = P.refit(json.loads(json.dumps(table)), "offset")
    assert np.max(np.abs(_errors(P.LatencyPredictor(offset), space, fake, proto))) > 0.10


def test_format_1_tables_on_disk_still_load_and_predict_with_an_interval_from_their_validation():
    table = json.loads((REPO / "benchmarks/results/lut_s3-vit_mobile-cpu_probe.json").read_text())
    assert table["format"] == 1
    predictor = P.LatencyPredictor(table, "lut_s3-vit_mobile-cpu_probe.json")
    s3 = SearchSpace.load("s3-vit")
    arch = s3.sample(random.Random(1000))  # the first validation subnet of the table
    row = table["validation"]["rows"][0]
    assert list(arch.depths) == row["depths"] and predictor.predict(arch) == pytest.approx(row["predicted_ms"], abs=1e-3)
    p = predictor.predict_interval(arch)
    assert p.level == 0.9 and "split-conformal on 50 validation subnets" in p.method and p.low < p.value < p.high
    assert "split-conformal" in predictor.describe()
    no_rows = {**table, "validation": None}
    bare = P.LatencyPredictor(no_rows).predict_interval(arch)
    assert bare.low is None and not bare.has_interval and "format-1" in P.LatencyPredictor(no_rows).describe()


def test_transfer_api_and_cli(space, tmp_path, monkeypatch, capsys):
    fake = Fake(monkeypatch)
    P.build_lut(space, _proto(), tmp_path / "src.json", calibrate=4)
    fake = Fake(monkeypatch, layer=_slowed, noise=0.01)
    result = nascomp.transfer_latency_table(space, "mobile-cpu", source=tmp_path / "src.json", shots=12, lut=tmp_path / "t.json")
    assert isinstance(result, nascomp.profiling.api.TransferredTable) and result.shots == 12 and result.loo_within_10pct == 1.0
    assert "jackknife+ on 12 shots" in result.interval_method and fake.calls["archs"] == 12
    predictor = P.load_predictor("mobile-cpu", space=space, lut=tmp_path / "t.json")
    assert "transferred from the cpu table" in predictor.describe() and "jackknife+" in predictor.describe()
    doc = inspect.getdoc(nascomp.transfer_latency_table)
    for name in inspect.signature(nascomp.transfer_latency_table).parameters:
        assert name in doc.split("Returns:")[0], name
    monkeypatch.setenv("NASCOMP_LUT_DIR", str(tmp_path / "luts"))
    code = main(
        [
            "profile",
            "--build-lut",
            "--space",
            str(tmp_path / "tiny.yaml"),
            "--target",
            "mobile-cpu",
            "--from",
            str(tmp_path / "src.json"),
            "--shots",
            "6",
            "--validate",
            "20",
            "--json",
            "--quiet",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["lut"] == str(P.lut_path(space.name, "mobile-cpu")) and summary["transfer"]["shots"] == 6
    assert summary["validation"]["subnets"] == 20 and summary["validation"]["interval"]["coverage"] is not None
    assert "Student-t" in summary["interval_method"]  # 6 shots are too few for a conformal interval at 90 %


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--shots", "5"], "--shots needs --from"),
        (["--from", "MISSING"], "no such table file"),
        (["--from", "SRC", "--shots", "2"], "--shots must be an integer >= 3"),
        (["--from", "SRC", "--resolution", "64"], "transfer needs the same input and output shapes"),
        (["--from", "WIDE"], "lacks .* layer configurations"),
        (["--from", "SRC", "--lut", "SRC"], "holds a table measured layer by layer"),
    ],
)
def test_transfer_refuses_bad_input_before_measuring(space, tmp_path, monkeypatch, capsys, argv, message):
    import re

    fake = Fake(monkeypatch)
    P.build_lut(space, _proto(), tmp_path / "src.json", calibrate=3)
    stages = [space.stages[0].to_dict(), {**space.stages[1].to_dict(), "embed_dim": [32]}]
    narrow = SearchSpace.from_dict({**space.to_dict(), "stages": stages})
    P.build_lut(narrow, _proto(), tmp_path / "wide.json", calibrate=3)
    fake.calls["archs"] = 0
    subs = {"SRC": str(tmp_path / "src.json"), "MISSING": str(tmp_path / "none.json"), "WIDE": str(tmp_path / "wide.json")}
    argv = [subs.get(a, a) for a in argv]
    assert main(["profile", "--build-lut", "--space", str(tmp_path / "tiny.yaml"), "--target", "mobile-cpu", "--quiet", *argv]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert fake.calls["archs"] == 0


def test_a_full_build_never_extends_a_transferred_table(space, tmp_path, monkeypatch):
    Fake(monkeypatch)
    source = P.build_lut(space, _proto(), tmp_path / "src.json", calibrate=3)
    T.transfer_lut(source, space, _proto("mobile-cpu"), tmp_path / "t.json", shots=3)
    with pytest.raises(NascompError, match="transferred from another target"):
        P.build_lut(space, _proto("mobile-cpu"), tmp_path / "t.json")


@pytest.mark.slow
def test_real_transfer_from_a_torch_table_to_onnxruntime(tmp_path, one_thread):
    """Real measurements: a tiny torch table transferred to ONNX Runtime with 4 shots, then validated on 3 subnets."""
    (tmp_path / "s.yaml").write_text(SPACE)
    source = nascomp.build_latency_table(
        str(tmp_path / "s.yaml"), "cpu", lut=tmp_path / "torch.json", threads=1, timer="thread-cpu", warmup=1, repeat=3, calibrate=3
    )
    result = nascomp.transfer_latency_table(
        str(tmp_path / "s.yaml"),
        "mobile-cpu",
        source=tmp_path / "torch.json",
        shots=4,
        lut=tmp_path / "ort.json",
        timer="thread-cpu",
        warmup=1,
        repeat=3,
    )
    assert result.table["protocol"]["runtime"] == "onnxruntime" and result.table["transfer"]["source_target"] == "cpu"
    assert isinstance(source, nascomp.profiling.api.LatencyTable) and source.entries == len(source.table["entries"])
    assert result.table["entries"] == source.table["entries"] and result.seconds > 0
    check = nascomp.validate_latency_table(str(tmp_path / "s.yaml"), "mobile-cpu", lut=tmp_path / "ort.json", n=3)
    assert check.subnets == 3 and all(r["measured_ms"] > 0 and r["low_ms"] is not None for r in check.rows)
    assert check.to_dict() == json.loads((tmp_path / "ort.json").read_text())["validation"]  # the report stored in the table
