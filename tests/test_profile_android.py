"""The Android path against a fake `adb` on PATH that replays onnxruntime_perf_test output."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from nascomp.cli import main
from nascomp.core.errors import NascompError
from nascomp.profiling.android import (
    Adb,
    measure_battery_energy,
    parse_perf_test_results,
    parse_perf_test_stdout,
    perf_test_command,
    run_perf_test,
)
from nascomp.profiling.energy import EnergyUnavailable

FIXTURES = Path(__file__).parent / "fixtures" / "profiler"
ANDROID = FIXTURES / "android"
SERIAL = "R5CR10ABCDE"


class FakeAdb:
    """Installs fake_adb.py as `adb` on PATH and writes its rules; `calls` lists what was run."""

    def __init__(self, tmp_path: Path, monkeypatch) -> None:
        self.dir = tmp_path / "adb"
        bin_dir = self.dir / "bin"
        bin_dir.mkdir(parents=True)
        exe = bin_dir / "adb"
        exe.write_text(f"#!{sys.executable}\n" + (FIXTURES / "fake_adb.py").read_text())
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("FAKE_ADB_DIR", str(self.dir))
        self.rules: list[dict] = []

    def on(self, match: str, *replies: str | dict) -> FakeAdb:
        self.rules.append({"match": match, "replies": [r if isinstance(r, dict) else {"stdout": r} for r in replies]})
        (self.dir / "rules.json").write_text(json.dumps(self.rules))
        return self

    @property
    def calls(self) -> list[dict]:
        path = self.dir / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _phone(fake: FakeAdb, devices: str = f"List of devices attached\n{SERIAL}\tdevice\n\n") -> FakeAdb:
    return (
        fake.on(r"^devices", devices)
        .on(r"getprop ro.product.manufacturer", "samsung\n")
        .on(r"getprop ro.product.model", "SM-G991B\n")
        .on(r"getprop ro.soc.model", "SM8350\n")
        .on(r"getprop ro.build.version.release", "14\n")
        .on(r"getprop ro.product.cpu.abi", "arm64-v8a\n")
        .on(r"getprop", "\n")
        .on(r"scaling_governor", "schedutil\n")
        .on(r"^push", "1 file pushed, 0 skipped.\n")
        .on(r"^shell (mkdir|chmod|rm)", "")
        .on(r"-m times -r 100 .*result", f"@{ANDROID / 'perf_test_stdout.txt'}")
        .on(r"-m times -r \d+ ", f"@{ANDROID / 'perf_test_stdout.txt'}")  # the warm-up invocation
        .on(r"cat \S+results\.txt", f"@{ANDROID / 'perf_test_results.txt'}")
    )


@pytest.fixture
def fake(tmp_path, monkeypatch):
    return FakeAdb(tmp_path, monkeypatch)


def _expected_runs_ms() -> list[float]:
    lines = (ANDROID / "perf_test_results.txt").read_text().splitlines()
    return [float(line.split(",")[1]) * 1000 for line in lines if line.count(",") == 4]


def test_parse_perf_test_stdout_and_result_file():
    summary = parse_perf_test_stdout((ANDROID / "perf_test_stdout.txt").read_text())
    assert summary["requests"] == 100 and summary["p50_ms"] == pytest.approx(33.5765) and summary["min_ms"] == pytest.approx(32.9289)
    runs = parse_perf_test_results((ANDROID / "perf_test_results.txt").read_text())
    assert len(runs) == 100
    assert sorted(runs)[50] == pytest.approx(summary["p50_ms"], abs=1e-3)  # perf_test's P50 is sorted[int(n/2)]
    old = parse_perf_test_stdout("Total time cost:58.8053\nAverage time cost:58.8053 ms\nP50 Latency is 0.0587108sec\n")
    assert old["p50_ms"] == pytest.approx(58.7108) and old["mean_ms"] == pytest.approx(58.8053)
    with pytest.raises(NascompError, match="no latency summary"):
        parse_perf_test_stdout("Error: model file not found\n")


def test_perf_test_command_pins_with_taskset_and_passes_threads():
    cmd = perf_test_command(
        "/data/local/tmp/nascomp/onnxruntime_perf_test",
        "/data/local/tmp/nascomp/m.onnx",
        threads=2,
        repeat=100,
        result_file="/data/local/tmp/nascomp/r.txt",
        cores=[6, 7],
    )
    assert "taskset c0 " in cmd and "-x 2 -y 1" in cmd and "-m times -r 100" in cmd and cmd.endswith("/data/local/tmp/nascomp/r.txt")
    assert "-m duration -t 10" in perf_test_command("/x/onnxruntime_perf_test", "/x/m.onnx", 1, duration_s=10)


def test_run_perf_test_statistics_come_from_every_run(fake, tmp_path):
    _phone(fake)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"onnx")
    binary = tmp_path / "onnxruntime_perf_test"
    binary.write_bytes(b"\x7fELF")
    result = run_perf_test(Adb(SERIAL), model, str(binary), threads=1, warmup=5, repeat=100)
    runs = _expected_runs_ms()
    assert result.stats.median_ms == pytest.approx(np.median(runs))
    assert result.stats.iqr_ms == pytest.approx(np.percentile(runs, 75) - np.percentile(runs, 25))
    assert "result file" in result.protocol["statistic_source"]
    shells = [" ".join(c["args"]) for c in fake.calls]
    assert all(c["serial"] == SERIAL for c in fake.calls if c["args"][0] != "devices")
    assert any(s.startswith("push") and s.endswith("/data/local/tmp/nascomp/onnxruntime_perf_test") for s in shells)
    assert any("-m times -r 5 " in s for s in shells)  # warm-up invocation before the timed one


def test_missing_binary_on_phone_says_how_to_provide_it(fake, tmp_path):
    _phone(fake).rules.insert(0, {"match": r"\[ -x", "replies": [{"stdout": "no\n"}]})
    (fake.dir / "rules.json").write_text(json.dumps(fake.rules))
    model = tmp_path / "m.onnx"
    model.write_bytes(b"onnx")
    with pytest.raises(NascompError, match="perf_test=PATH"):
        run_perf_test(Adb(SERIAL), model, None, threads=1, warmup=0, repeat=100)


@pytest.mark.parametrize(
    "devices, serial, message",
    [
        ("List of devices attached\n\n", None, "no Android device ready"),
        (f"List of devices attached\n{SERIAL}\tunauthorized\n", None, "unauthorized"),
        (f"List of devices attached\n{SERIAL}\tdevice\nemulator-5554\tdevice\n", None, "android:SERIAL"),
        (f"List of devices attached\n{SERIAL}\tdevice\n", "OTHER", "not attached"),
    ],
)
def test_device_selection_errors(fake, devices, serial, message):
    fake.on(r"^devices", devices)
    with pytest.raises(NascompError, match=message):
        Adb(serial)


def test_no_adb_on_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NascompError, match="adb not found"):
        Adb()


def _battery(fake: FakeAdb, charging: bool = False) -> FakeAdb:
    status = (
        "AC powered: false\n  USB powered: true\n  status: 2\n" if charging else "AC powered: false\n  USB powered: false\n  status: 3\n"
    )
    idle = [{"stdout": "-300000\n3900000\n"}] * 20  # 1.17 W while idle (uA, negative when discharging)
    busy = {"stdout": "-800000\n3850000\n"}  # 3.08 W while the model runs
    fake.on(r"dumpsys battery", f"Current Battery Service state:\n  {status}  level: 81\n")
    fake.rules.append({"match": r"cat /sys/class/power_supply/battery/current_now", "replies": [*idle, busy]})
    fake.on(r"-m duration", f"@{ANDROID / 'perf_test_duration_stdout.txt'}")
    (fake.dir / "rules.json").write_text(json.dumps(fake.rules))
    return fake


def test_battery_energy_subtracts_idle_power(fake):
    _battery(_phone(fake))
    report = measure_battery_energy(
        Adb(SERIAL),
        lambda s: f"/data/local/tmp/nascomp/onnxruntime_perf_test -m duration -t {s:g} m.onnx",
        latency_ms=34.0,
        window_s=10,
        idle_s=5,
        sample_every_s=0.25,
        sleep=lambda s: None,
    )
    mean_ms = parse_perf_test_stdout((ANDROID / "perf_test_duration_stdout.txt").read_text())["mean_ms"]
    assert report.kind == "measured" and report.source == "android-battery"
    assert report.idle_power_w == pytest.approx(0.3 * 3.9) and report.active_power_w == pytest.approx(0.8 * 3.85)
    assert report.mj_per_inference == pytest.approx((0.8 * 3.85 - 0.3 * 3.9) * mean_ms)
    assert report.inferences == 300


def test_battery_energy_refuses_a_charging_phone(fake):
    _battery(_phone(fake), charging=True)
    with pytest.raises(EnergyUnavailable, match="charging"):
        measure_battery_energy(Adb(SERIAL), lambda s: "x -m duration", latency_ms=34.0, sleep=lambda s: None)


def test_nascomp_profile_android_end_to_end(fake, tmp_path, tiny_vit, capsys):
    """MODEL -> ONNX -> push -> perf_test (fake) -> JSON with the phone in the protocol; energy falls back when charging."""
    from nascomp.models import save_model, timm_spec
    from tests.conftest import TINY_VIT

    _battery(_phone(fake), charging=True)
    save_model(tmp_path / "tiny", tiny_vit, timm_spec("vit_tiny_patch16_224", **TINY_VIT))
    binary = tmp_path / "onnxruntime_perf_test"
    binary.write_bytes(b"\x7fELF")
    code = main(
        [
            "profile",
            str(tmp_path / "tiny"),
            "--target",
            f"android:{SERIAL}",
            "--perf-test",
            str(binary),
            "--precision",
            "fp32",
            "--repeat",
            "100",
            "--warmup",
            "3",
            "--cores",
            "7",
            "--energy",
            "--json",
            "--quiet",
        ]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["target"] == f"android:{SERIAL}" and doc["runtime"] == "onnxruntime"
    assert doc["latency_ms"] == pytest.approx(np.median(_expected_runs_ms()), abs=1e-3)
    assert doc["protocol"]["phone"]["model"] == "SM-G991B" and doc["protocol"]["phone"]["soc"] == "SM8350"
    assert doc["protocol"]["threads"] == 1 and doc["measurements"][0]["details"]["affinity"] == "taskset to cores [7]"
    energy = doc["measurements"][0]["energy"]
    assert energy["kind"] == "estimated" and "charging" in energy["fallback_reason"]
    shells = [" ".join(c["args"]) for c in fake.calls]
    assert any("taskset 80 " in s and "-x 1 " in s for s in shells)
    assert shutil.which("adb").startswith(str(fake.dir))


# --- ExecuTorch's executor_runner -----------------------------------------------------------------------------------
RUNNER_LOG = ANDROID / "executor_runner_stdout.txt"


def _runner_times() -> list[float]:
    import re

    return [float(m) for m in re.findall(r"Iteration \d+ of \d+: ([0-9.]+) ms", RUNNER_LOG.read_text())]


def test_parse_executor_runner_reads_every_iteration_and_falls_back_to_the_total():
    from nascomp.profiling.android import parse_executor_runner

    runs, summary = parse_executor_runner(RUNNER_LOG.read_text())
    assert runs == _runner_times() and len(runs) == 13 and summary["executions"] == 13
    old_runs, old = parse_executor_runner("I 00:00:01 executor_runner.cpp:1] Model executed successfully 4 time(s) in 50.0 ms.\n")
    assert old_runs == [] and old["mean_ms"] == pytest.approx(12.5)
    with pytest.raises(NascompError, match="printed no timing"):
        parse_executor_runner("E 00:00:00 executor_runner.cpp:1] Loading of method forward failed with status 0x12\n")


def test_executor_runner_command_pins_and_sets_threads():
    from nascomp.profiling.android import executor_runner_command

    cmd = executor_runner_command(
        "/data/local/tmp/nascomp/executor_runner", "/data/local/tmp/nascomp/m.pte", threads=2, executions=30, cores=[6, 7]
    )
    assert "taskset c0 " in cmd and "--cpu_threads=2" in cmd and "--num_executions=30" in cmd
    assert "--model_path=/data/local/tmp/nascomp/m.pte" in cmd


def test_run_executor_runner_drops_the_warmup_executions(fake, tmp_path):
    from nascomp.profiling.android import run_executor_runner

    _phone(fake).on(r"executor_runner --model_path", f"@{RUNNER_LOG}")
    pte = tmp_path / "m.pte"
    pte.write_bytes(b"pte")
    runner = tmp_path / "executor_runner"
    runner.write_bytes(b"\x7fELF")
    result = run_executor_runner(Adb(SERIAL), pte, str(runner), threads=1, warmup=3, repeat=10, cores=[7])
    assert result.stats.n == 10 and result.stats.median_ms == pytest.approx(np.median(_runner_times()[3:]))
    assert "per-execution" in result.protocol["statistic_source"]
    shells = [" ".join(c["args"]) for c in fake.calls]
    assert any(s.startswith("push") and s.endswith("/data/local/tmp/nascomp/executor_runner") for s in shells)
    assert any("--num_executions=13" in s and "taskset 80 " in s for s in shells)


def test_missing_runner_on_phone_says_how_to_build_it(fake, tmp_path):
    from nascomp.profiling.android import run_executor_runner

    _phone(fake).rules.insert(0, {"match": r"\[ -x", "replies": [{"stdout": "no\n"}]})
    (fake.dir / "rules.json").write_text(json.dumps(fake.rules))
    pte = tmp_path / "m.pte"
    pte.write_bytes(b"pte")
    with pytest.raises(NascompError, match=r"executor_runner not found.*runner=PATH"):
        run_executor_runner(Adb(SERIAL), pte, None, threads=1, warmup=0, repeat=5)


def test_nascomp_profile_android_executorch_end_to_end(fake, tmp_path, tiny_vit, capsys):
    """MODEL -> .pte (exported and checked on the host) -> push -> executor_runner (fake) -> median of the logged iterations."""
    pytest.importorskip("executorch")
    from nascomp.models import save_model, timm_spec
    from tests.conftest import TINY_VIT

    _phone(fake).on(r"executor_runner --model_path", f"@{RUNNER_LOG}")
    save_model(tmp_path / "tiny", tiny_vit, timm_spec("vit_tiny_patch16_224", **TINY_VIT))
    runner = tmp_path / "executor_runner"
    runner.write_bytes(b"\x7fELF")
    code = main(
        [
            "profile",
            str(tmp_path / "tiny"),
            "--target",
            f"android:{SERIAL}",
            "--runtime",
            "executorch",
            "--precision",
            "fp32",
            "--runner",
            str(runner),
            "--repeat",
            "10",
            "--warmup",
            "3",
            "--json",
            "--quiet",
        ]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["runtime"] == "executorch" and doc["latency_ms"] == pytest.approx(np.median(_runner_times()[3:]), abs=1e-4)
    details = doc["measurements"][0]["details"]
    assert details["runner"] == "/data/local/tmp/nascomp/executor_runner" and details["delegation"]["fully_delegated"]
    assert any(" ".join(c["args"]).startswith("push") and c["args"][-1].endswith("model_fp32.pte") for c in fake.calls)
