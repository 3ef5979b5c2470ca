"""Energy: RAPL (fake powercap sysfs, wrap-around, root-only files), NVML (fake library), estimates, battery units."""

from __future__ import annotations

import pytest

from nascomp.core.errors import NascompError
from nascomp.profiling.energy import (
    EnergyUnavailable,
    NvmlCounter,
    RaplCounter,
    battery_power_w,
    default_power_model,
    estimate_energy,
    measure_energy,
    median_power_w,
    parse_power_override,
)


def _zone(root, name, label, energy_uj, max_uj=262143328850):
    d = root / name
    d.mkdir(parents=True)
    (d / "name").write_text(label + "\n")
    (d / "energy_uj").write_text(f"{energy_uj}\n")
    (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return d


@pytest.fixture
def powercap(tmp_path):
    root = tmp_path / "powercap"
    pkg = _zone(root, "intel-rapl:0", "package-0", 1_000_000, max_uj=10_000_000)
    _zone(root, "intel-rapl:0:0", "core", 500_000, max_uj=10_000_000)  # inside the package: must not be added again
    dram = _zone(root, "intel-rapl:0:1", "dram", 200_000, max_uj=10_000_000)
    (root / "intel-rapl-mmio:0").mkdir()  # another powercap type: ignored
    return root, pkg, dram


def test_rapl_sums_packages_and_dram_but_not_package_subzones(powercap):
    root, pkg, dram = powercap
    counter = RaplCounter(root)
    assert [z.name.split(" ")[0] for z in counter.zones] == ["intel-rapl:0", "intel-rapl:0:1"]
    start = counter.read_j()
    (pkg / "energy_uj").write_text("3000000\n")  # +2 J
    (dram / "energy_uj").write_text("700000\n")  # +0.5 J
    assert counter.read_j() - start == pytest.approx(2.5)


def test_rapl_handles_wrap_around(powercap):
    root, pkg, _ = powercap
    counter = RaplCounter(root)
    (pkg / "energy_uj").write_text("9500000\n")
    first = counter.read_j()  # +8.5 J so far
    (pkg / "energy_uj").write_text("400000\n")  # wrapped at 10 J: +0.5 to the top, +0.4 after
    assert counter.read_j() - first == pytest.approx(0.9)
    assert counter.read_j() - first == pytest.approx(0.9)  # reading again adds nothing


def test_rapl_root_only_file_gives_the_chmod_fix(powercap, monkeypatch):
    root, _, _ = powercap
    original = RaplCounter._read_text

    def deny(path):
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied")
        return original(path)

    monkeypatch.setattr(RaplCounter, "_read_text", staticmethod(deny))
    with pytest.raises(EnergyUnavailable, match="root only.*chmod a\\+r"):
        RaplCounter(root)


def test_rapl_missing_interface_is_reported(tmp_path):
    with pytest.raises(EnergyUnavailable, match="does not exist"):
        RaplCounter(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EnergyUnavailable, match="no intel-rapl"):
        RaplCounter(tmp_path / "empty")


class FakeNvml:
    """pynvml's surface: a board drawing a constant power, counter refreshed only every `period` seconds."""

    def __init__(self, clock, watts, period=0.1, supported=True):
        self.clock, self.watts, self.period, self.supported = clock, watts, period, supported

    def nvmlInit(self):
        pass

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetHandleByUUID(self, uuid):
        assert uuid.startswith("GPU-")
        return {"GPU-5f0e3c5a-0000-1111-2222-333344445555": 3}[uuid]

    def nvmlDeviceGetName(self, h):
        return b"NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        if not self.supported:
            raise RuntimeError("NVMLError_NotSupported")
        t = self.clock.now
        refreshed = t - (t % self.period)  # the counter only moves at refresh ticks
        return int(self.clock.energy_at(refreshed, self.watts) * 1000)  # mJ


class FakeClock:
    """Time advances when the 'GPU' works (inference) or the host sleeps; power is idle or busy accordingly."""

    def __init__(self, idle_w, busy_w):
        self.now, self.idle_w, self.busy_w, self.segments = 0.0, idle_w, busy_w, []

    def advance(self, seconds, busy):
        self.segments.append((self.now, self.now + seconds, self.busy_w if busy else self.idle_w))
        self.now += seconds

    def energy_at(self, t, _watts=None):
        return sum(w * (min(e, t) - s) for s, e, w in self.segments if s < t)


def test_nvml_window_is_long_enough_and_idle_is_subtracted():
    clock = FakeClock(idle_w=60.0, busy_w=300.0)
    nvml = FakeNvml(clock, watts=None, period=0.1)
    counter = NvmlCounter(0, nvml=nvml)
    assert counter.device_name.startswith("NVIDIA H100")
    latency_s = 0.002  # 2 ms inference: 50x shorter than the counter refresh
    report = measure_energy(
        counter,
        run=lambda: clock.advance(latency_s, busy=True),
        latency_ms=2.0,
        min_window_s=0.0,
        clock=lambda: clock.now,
        sleep=lambda s: clock.advance(s, busy=False),
    )
    assert report.kind == "measured" and report.source == "nvml"
    assert report.window_s >= 10 * 0.1 - 1e-9 and report.inferences >= 500
    # 300 W x 2 ms = 600 mJ, 60 W x 2 ms = 120 mJ idle. Windows aligned to counter refreshes leave only the
    # polling step as error (unaligned reads could be off by 2 refresh periods / window = 20 % here)
    assert report.idle_power_w == pytest.approx(60, rel=0.02)
    assert report.mj_per_inference == pytest.approx(480, rel=0.02)
    assert report.total_mj_per_inference > report.mj_per_inference  # the idle tail until the last refresh is in the total


def test_nvml_matches_torch_device_by_uuid():
    """Under CUDA_VISIBLE_DEVICES=3, torch's cuda:0 is NVML's GPU 3: the UUID finds it."""
    nvml = FakeNvml(FakeClock(1, 1), watts=None)
    assert NvmlCounter(0, nvml=nvml, uuid="5f0e3c5a-0000-1111-2222-333344445555").handle == 3
    assert NvmlCounter(0, nvml=nvml).handle == 0


def test_nvml_unsupported_gpu_falls_back_with_a_reason():
    nvml = FakeNvml(FakeClock(1, 1), watts=None, supported=False)
    with pytest.raises(EnergyUnavailable, match="NVML energy counter unavailable"):
        NvmlCounter(0, nvml=nvml)


def test_measure_energy_with_rapl_across_a_wrap(powercap):
    """A fake package at 20 W idle / 50 W busy whose counter wraps during the active window."""
    root, pkg, dram = powercap
    (dram / "energy_uj").write_text("0\n")
    (pkg / "energy_uj").write_text("9000000\n")  # 1 J below the wrap point
    state = {"t": 0.0, "uj": 9_000_000.0}

    def advance(seconds, watts):
        state["t"] += seconds
        state["uj"] = (state["uj"] + watts * seconds * 1e6) % 10_000_000
        (pkg / "energy_uj").write_text(f"{int(state['uj'])}\n")

    counter = RaplCounter(root)
    report = measure_energy(
        counter,
        run=lambda: advance(0.01, 50.0),
        latency_ms=10.0,
        min_window_s=0.5,
        idle_window_s=0.1,
        clock=lambda: state["t"],
        sleep=lambda s: advance(s, 20.0),
        poll_every_s=0.05,
    )
    assert report.idle_power_w == pytest.approx(20.0, rel=1e-3)
    assert report.active_power_w == pytest.approx(50.0, rel=1e-3)
    assert report.total_mj_per_inference == pytest.approx(500.0, rel=1e-3)  # 50 W x 10 ms
    assert report.mj_per_inference == pytest.approx(300.0, rel=1e-3)  # minus 20 W x 10 ms


def test_estimate_states_its_model_and_subtracts_idle():
    model = default_power_model("mobile-cpu", threads=1)
    report = estimate_energy(model, latency_ms=20.0, reason="no RAPL here")
    d = report.to_dict()
    assert d["kind"] == "estimated" and d["source"] == "power-model" and "per busy core" in d["power_model"]
    assert d["total_mj_per_inference"] == pytest.approx(model.active_w * 20.0)
    assert d["mj_per_inference"] == pytest.approx((model.active_w - model.idle_w) * 20.0)
    assert d["fallback_reason"] == "no RAPL here"
    assert default_power_model("cpu", 4).active_w == pytest.approx(4 * default_power_model("cpu", 1).active_w)
    assert "GPU" in default_power_model("cuda", None).description


def test_power_override_parsing():
    assert parse_power_override("12:3").idle_w == 3.0
    assert parse_power_override("8").active_w == 8.0
    with pytest.raises(NascompError):
        parse_power_override("lots")
    with pytest.raises(NascompError):
        parse_power_override("2:5")


def test_battery_units_and_sign():
    watts, units = battery_power_w(-450_000, 3_900_000)  # uA (negative while discharging on some phones), uV
    assert watts == pytest.approx(0.45 * 3.9) and units == {"current": "uA", "voltage": "uV"}
    watts, units = battery_power_w(450, 3900)  # vendors reporting mA and mV
    assert watts == pytest.approx(0.45 * 3.9) and units["current"].startswith("mA")
    power, _ = median_power_w([(400_000, 4_000_000), (500_000, 4_000_000), (9_000_000, 4_000_000)])  # a spike
    assert power == pytest.approx(2.0)
    with pytest.raises(EnergyUnavailable):
        median_power_w([])
