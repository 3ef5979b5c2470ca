"""Latency lookup tables: coverage of a space, fitting, resuming, loading for search budgets, CLI."""

from __future__ import annotations

import itertools
import json

import pytest

from nascomp.cli import main
from nascomp.core.errors import NascompError
from nascomp.profiling import predictor as P
from nascomp.spaces import Arch, SearchSpace
from nascomp.spaces.arch import BlockArch, StageArch

TINY_SPACE = """
name: tiny-test
resolution: 32
patch_size: 4
stages:
  - {depth: [1, 2], embed_dim: [16, 24], heads: [1, 2], qkv_dim: [16], mlp_ratio: [2.0], window: [4, 8]}
  - {depth: [1], embed_dim: [32], heads: [2], qkv_dim: [32], mlp_ratio: [2.0, 3.0], window: [4]}
"""


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPACE)
    return SearchSpace.load(path)


def _all_archs(space: SearchSpace):
    """Every member of the tiny space, enumerated independently of space_layers."""
    s0, s1 = space.stages
    blocks0 = [BlockArch(h, q, m, w) for (h, q) in s0.attention_pairs for m in s0.mlp_ratio for w in s0.window]
    blocks1 = [BlockArch(h, q, m, w) for (h, q) in s1.attention_pairs for m in s1.mlp_ratio for w in s1.window]
    for e0, d0, e1 in itertools.product(s0.embed_dim, s0.depth, s1.embed_dim):
        for b0 in itertools.product(blocks0, repeat=d0):
            for b1 in blocks1:
                yield Arch((StageArch(e0, tuple(b0)), StageArch(e1, (b1,))), space.patch_size)


def test_space_layers_are_exactly_the_layers_members_use(space):
    used = {P.layer_key(cfg) for arch in _all_archs(space) for cfg in P.arch_layers(arch, 32)}
    assert set(P.space_layers(space)) == used
    # window 8 on the 8x8 stage-1 map is clamped to global attention without shift: no 's4' variant exists
    assert not any(":w8:s4" in k for k in used) and any(":w8:s0" in k for k in used)


def test_s3_vit_layers_cover_random_members():
    space = SearchSpace.load("s3-vit")
    keys = set(P.space_layers(space))
    for seed in range(30):
        arch = space.sample(seed)
        assert {P.layer_key(c) for c in P.arch_layers(arch, 224)} <= keys
    assert sum(k.startswith("block:r7:") for k in keys) == 3 * 7 * 3  # stage 4: 7x7 map, window 7 is global, never shifted


def _fake_cost(cfg) -> float:
    """A deterministic 'latency' per layer: proportional to its width and area."""
    area = getattr(cfg, "resolution", getattr(cfg, "img_size", 1)) ** 2
    width = getattr(cfg, "dim", getattr(cfg, "in_dim", 1)) * getattr(cfg, "mlp_ratio", 1.0)
    return 1e-4 * area * width + 0.05


@pytest.fixture
def fake_measurements(monkeypatch):
    """Layers cost `_fake_cost`; a whole network costs 1.08 x the sum + 0.7 ms (the fit must recover this)."""
    calls = {"layers": 0, "archs": 0}

    def layer(cfg, proto, workdir, probe=None):
        calls["layers"] += 1
        return {"ms": _fake_cost(cfg), "iqr_ms": 0.0}

    def arch(a, proto, energy=False, probe=None, workdir=None):
        calls["archs"] += 1
        total = sum(_fake_cost(c) for c in P.arch_layers(a, proto.resolution, proto.in_chans, proto.num_classes))
        return {"ms": 1.08 * total + 0.7, "iqr_ms": 0.0}

    monkeypatch.setattr(P, "measure_layer", layer)
    monkeypatch.setattr(P, "measure_arch", arch)
    return calls


def _proto(**kw):
    return P.LutProtocol(target="cpu", threads=1, timer="thread-cpu", resolution=32, **kw)


def test_build_fits_scale_and_offset_and_validates(space, tmp_path, fake_measurements):
    lut = tmp_path / "lut.json"
    table = P.build_lut(space, _proto(), lut, calibrate=8, fit="affine")
    assert fake_measurements["layers"] == len(P.space_layers(space)) and fake_measurements["archs"] == 8
    assert table["fit"]["method"] == "affine"
    assert table["fit"]["scale"] == pytest.approx(1.08) and table["fit"]["offset_ms"] == pytest.approx(0.7)
    offset_only = P.refit(json.loads(json.dumps(table)))["fit"]  # the default: sum + median residual
    residuals = [c["measured_ms"] - c["sum_ms"] for c in table["fit"]["calibration"]]
    assert offset_only["method"] == "offset" and offset_only["scale"] == 1.0
    assert offset_only["offset_ms"] == pytest.approx(sorted(residuals)[3:5][0] / 2 + sorted(residuals)[3:5][1] / 2)
    result = P.validate_lut(table, space, n=10, path=lut)
    assert result["within_tolerance"] == 1.0 and result["max_abs_error"] < 1e-9
    stored = json.loads(lut.read_text())
    assert stored["complete"] and stored["validation"]["subnets"] == 10 and stored["protocol"]["runtime"] == "torch"


def test_build_resumes_and_extends_instead_of_remeasuring(space, tmp_path, fake_measurements, monkeypatch):
    lut = tmp_path / "lut.json"
    real = P.measure_layer

    def flaky(cfg, proto, workdir, probe=None):
        if fake_measurements["layers"] >= 5:
            raise KeyboardInterrupt  # the user stops a long build
        return real(cfg, proto, workdir, probe)

    monkeypatch.setattr(P, "measure_layer", flaky)
    with pytest.raises(KeyboardInterrupt):
        P.build_lut(space, _proto(), lut, calibrate=2, checkpoint_every=2)
    partial = json.loads(lut.read_text())
    assert not partial["complete"] and len(partial["entries"]) == 4
    with pytest.raises(NascompError, match="unfinished"):
        P.load_predictor("cpu", lut=lut)
    monkeypatch.setattr(P, "measure_layer", real)
    fake_measurements["layers"] = 0
    P.build_lut(space, _proto(), lut, calibrate=2)
    assert fake_measurements["layers"] == len(P.space_layers(space)) - 4
    with pytest.raises(NascompError, match="another protocol"):
        P.build_lut(space, _proto(precision="fp32", exporter="dynamo"), lut, calibrate=0)


def test_load_predictor_for_budgets(space, tmp_path, fake_measurements, monkeypatch):
    monkeypatch.setenv("NASCOMP_LUT_DIR", str(tmp_path / "luts"))
    with pytest.raises(NascompError, match="nascomp profile --build-lut --space .* --target mobile-cpu"):
        P.load_predictor("mobile-cpu", space=space)
    path = P.lut_path(space.name, "cpu")
    assert path == tmp_path / "luts" / "tiny-test__cpu.json"
    P.build_lut(space, _proto(), path, calibrate=6, fit="affine")
    latency = P.budget_predictor("ms", "cpu", space)
    arch = space.sample(3)
    expected = 1.08 * sum(_fake_cost(c) for c in P.arch_layers(arch, 32)) + 0.7
    assert latency.unit == "ms" and latency.predict(arch) == pytest.approx(expected)
    assert set(latency.breakdown(arch)) == {"stem", "block", "merge", "head"}
    energy = P.budget_predictor("mJ", "cpu", space)
    assert energy.unit == "mJ" and energy.kind == "estimated"  # fake calibration has no counter readings
    assert energy.predict(arch) == pytest.approx(latency.predict(arch) * energy.watts)
    assert "estimated" in energy.describe() and "lookup table" in latency.describe()
    with pytest.raises(NascompError, match="use ms"):
        P.budget_predictor("gflops", "cpu", space)
    wider = SearchSpace.from_dict(
        {**space.to_dict(), "stages": [space.stages[0].to_dict(), {**space.stages[1].to_dict(), "embed_dim": [32, 40]}]}
    )
    with pytest.raises(NascompError, match="lacks .* layer configurations"):
        P.load_predictor("cpu", space=wider)
    with pytest.raises(NascompError, match="table for target cpu"):
        P.load_predictor("mobile-cpu", lut=path)


def test_energy_power_is_measured_when_calibration_was(space):
    proto = _proto().resolved()
    calib = [
        {"measured_ms": 10.0, "energy": {"kind": "measured", "mj": 30.0, "source": "rapl"}},
        {"measured_ms": 20.0, "energy": {"kind": "measured", "mj": 60.0, "source": "rapl"}},
    ]
    power = P._power(proto, calib)
    assert power["kind"] == "measured" and power["dynamic_w"] == pytest.approx(3.0)
    assert P._power(proto, calib[:1] + [{"measured_ms": 5.0}])["kind"] == "estimated"


def test_real_build_on_cpu_is_consistent(space, tmp_path, capsys):
    """A real (tiny, noisy) build through the CLI: every layer measured, the fit and accuracy reported."""
    lut = tmp_path / "real.json"
    code = main(
        [
            "profile",
            "--build-lut",
            "--space",
            str(tmp_path / "tiny.yaml"),
            "--target",
            "cpu",
            "--threads",
            "1",
            "--timer",
            "thread-cpu",
            "--lut",
            str(lut),
            "--calibrate",
            "3",
            "--validate",
            "3",
            "--warmup",
            "1",
            "--repeat",
            "3",
            "--json",
            "--quiet",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["entries"] == len(P.space_layers(space)) and summary["protocol"]["timer"] == "thread-cpu"
    assert summary["validation"]["subnets"] == 3 and summary["validation"]["mean_abs_error"] < 1.0
    assert all(v["ms"] > 0 for v in json.loads(lut.read_text())["entries"].values())


def test_cli_lut_errors(tmp_path, capsys):
    assert main(["profile", "--build-lut"]) == 2
    assert "--space" in capsys.readouterr().err
    assert main(["profile", "--build-lut", "--space", "s3-vit", "--target", "android"]) == 2
    assert "host targets" in capsys.readouterr().err
    assert main(["profile", "--validate", "3", "--space", "s3-vit", "--lut", str(tmp_path / "none.json")]) == 2


def test_reference_probe_cancels_a_drifting_machine(monkeypatch):
    """The machine slows down 3x while measuring; probe-normalised latency stays at its reference speed."""
    import nascomp.profiling.profiler as profiler

    class ReturnTimer:  # 'times' a call as whatever the call returns: the simulated duration
        name = "simulated"

        def time(self, fn):
            return fn()

    monkeypatch.setattr(profiler, "make_timer", lambda *a: ReturnTimer())
    speed = {"factor": 1.0}

    def drifting(ms):
        def run():
            speed["factor"] *= 1.02  # every call the machine gets 2 % slower
            return ms * speed["factor"]

        return run

    probe = type("Probe", (), {"run": staticmethod(drifting(10.0)), "reference_ms": 10.0})()
    proto = _proto().resolved()
    plain = P._timed(drifting(25.0), proto, None)["ms"]
    normalised = P._timed(drifting(25.0), proto, probe)["ms"]
    assert plain > 30  # the drift leaks into the plain median
    assert normalised == pytest.approx(25.0 * 1.02, rel=1e-3)  # the run follows its probe by one 2 % step


@pytest.mark.slow
def test_real_probe_build_and_validation(space, tmp_path):
    lut = tmp_path / "probe.json"
    table = P.build_lut(space, _proto(probe=True, warmup=1, repeat=3), lut, calibrate=2)
    assert table["probe"]["reference_ms"] > 0 and table["probe"]["layer"] == P.layer_key(P.PROBE_LAYER)
    result = P.validate_lut(table, space, n=2, path=lut)
    assert result["subnets"] == 2 and all(r["measured_ms"] > 0 for r in result["rows"])
    P.build_lut(space, _proto(probe=True, warmup=1, repeat=3), lut, calibrate=1)  # resumes with the stored reference
    assert json.loads(lut.read_text())["probe"]["reference_ms"] == table["probe"]["reference_ms"]


def test_energy_budget_on_cuda_plugs_in(space, tmp_path, fake_measurements, monkeypatch):
    """'50mj@cuda': a cuda table (here with fake measurements; no GPU on this machine) gives mJ predictions."""
    monkeypatch.setenv("NASCOMP_LUT_DIR", str(tmp_path))
    P.build_lut(space, P.LutProtocol(target="cuda", resolution=32), P.lut_path(space.name, "cuda"), calibrate=3)
    energy = P.budget_predictor("mj", "cuda", space)
    arch = space.sample(5)
    assert energy.latency.protocol["runtime"] == "torch" and energy.kind == "estimated"
    assert energy.predict(arch) == pytest.approx(energy.latency.predict(arch) * (250.0 - 60.0))  # stated GPU power model


def test_nascomp_search_ms_budget_goes_through_the_lookup_table(tmp_path, fake_measurements, monkeypatch, capsys):
    """`nascomp search --space s3-vit --budget 25ms@mobile-cpu` from the command line: no table is a user error
    naming the build command; with a (fake-measured) table the budget is priced by its predictor."""
    import re

    monkeypatch.setenv("NASCOMP_LUT_DIR", str(tmp_path / "luts"))
    out = tmp_path / "run"
    assert main(["search", "--space", "s3-vit", "--budget", "25ms@mobile-cpu", "--out", str(out)]) == 2
    assert "nascomp profile --build-lut --space s3-vit --target mobile-cpu" in capsys.readouterr().err
    assert not out.exists()

    s3 = SearchSpace.load("s3-vit")
    P.build_lut(s3, P.LutProtocol(target="mobile-cpu", resolution=224), P.lut_path("s3-vit", "mobile-cpu"), calibrate=3)
    cheapest = P.budget_predictor("ms", "mobile-cpu", s3).predict(s3.smallest())
    below = f"{cheapest * 0.9:.1f}ms@mobile-cpu"  # just under the smallest member's predicted latency
    assert main(["search", "--space", "s3-vit", "--budget", below, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert re.search(rf"below the cheapest member of search space 's3-vit'.*{cheapest:.2f} ms on mobile-cpu", err), err
    assert not out.exists()
