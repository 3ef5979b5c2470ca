"""Latency (and battery energy) on an Android phone over adb, with the runtime's own benchmark binary built for the phone.

- ONNX Runtime: the user's ``onnxruntime_perf_test`` (ONNX Runtime's Android build, ``onnxruntime/test/perftest``).
  We push the model, run the binary with the chosen threads, and read two outputs: its printed summary (P50, min,
  max...) and its result file, which holds one line per timed run (``model,seconds,peak_bytes,cpu_pct,run_index``),
  so median and IQR are computed from every run rather than from the printed percentiles.
- ExecuTorch: the user's ``executor_runner`` (ExecuTorch's ``examples/portable/executor_runner``, built for Android
  with the XNNPACK backend). One invocation runs ``warmup + repeat`` executions and logs each one's time
  (``Iteration i of N: X ms``); the first ``warmup`` are dropped. A runner built with the event tracer
  (``-DEXECUTORCH_ENABLE_EVENT_TRACER=ON``) also writes an ETDump, pulled back for per-op times.

Times never cross the USB link: the binaries time themselves on the phone.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nascomp.core.errors import NascompError
from nascomp.profiling.energy import EnergyReport, EnergyUnavailable, energy_from_power, median_power_w
from nascomp.profiling.latency import LatencyStats

__all__ = [
    "Adb",
    "REMOTE_DIR",
    "parse_perf_test_stdout",
    "parse_perf_test_results",
    "perf_test_command",
    "device_facts",
    "AndroidRun",
    "run_perf_test",
    "parse_executor_runner",
    "executor_runner_command",
    "run_executor_runner",
    "measure_battery_energy",
]

REMOTE_DIR = "/data/local/tmp/nascomp"
BATTERY = "/sys/class/power_supply/battery"


class Adb:
    """Thin wrapper over the ``adb`` client found on PATH (a fake one in tests)."""

    def __init__(self, serial: str | None = None, exe: str | None = None, timeout_s: float = 600.0) -> None:
        found = exe or shutil.which("adb")
        if not found:
            raise NascompError("adb not found on PATH; install Android platform-tools and connect the phone with USB debugging on")
        self.exe: str = found
        self.timeout_s = timeout_s
        self.serial: str | None = None
        if serial:
            self.serial = serial
            self.check_serial()
        else:
            self.serial = self._only_device()

    def _base(self) -> list[str]:
        return [self.exe, *(["-s", self.serial] if self.serial else [])]

    def run(self, *args: str, check: bool = True) -> str:
        try:
            proc = subprocess.run([*self._base(), *args], capture_output=True, text=True, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            raise NascompError(f"adb {' '.join(args[:2])} did not finish within {self.timeout_s:.0f} s") from None
        if check and proc.returncode != 0:
            msg = (proc.stderr or proc.stdout).strip().splitlines()
            raise NascompError(f"adb {' '.join(args[:3])} failed: {msg[-1] if msg else f'exit {proc.returncode}'}")
        return proc.stdout

    def shell(self, command: str, check: bool = True) -> str:
        return self.run("shell", command, check=check)

    def popen_shell(self, command: str) -> subprocess.Popen:
        return subprocess.Popen([*self._base(), "shell", command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def push(self, local: str | os.PathLike, remote: str) -> None:
        self.run("push", str(local), remote)

    def _only_device(self) -> str:
        out = self.run("devices")
        devices = [line.split() for line in out.splitlines()[1:] if line.strip()]
        ready = [d[0] for d in devices if len(d) > 1 and d[1] == "device"]
        if not ready:
            states = ", ".join(f"{d[0]} ({d[1]})" for d in devices if len(d) > 1)
            raise NascompError(
                f"no Android device ready over adb{f': {states}' if states else ''}; "
                "connect one with USB debugging on and accept the authorisation prompt"
            )
        if len(ready) > 1:
            raise NascompError(f"several Android devices attached ({', '.join(ready)}); choose one with --target android:SERIAL")
        return ready[0]

    def check_serial(self) -> None:
        out = self.run("devices")
        for line in out.splitlines()[1:]:
            parts = line.split()
            if len(parts) > 1 and parts[0] == self.serial:
                if parts[1] != "device":
                    raise NascompError(f"Android device {self.serial} is {parts[1]}; unlock it and accept USB debugging")
                return
        raise NascompError(f"Android device {self.serial} is not attached (see `adb devices`)")


def device_facts(adb: Adb) -> dict:
    """Phone model, SoC, Android version, ABI and CPU governor, for the protocol."""

    def prop(name: str) -> str | None:
        return adb.shell(f"getprop {name}", check=False).strip() or None

    return {
        "serial": adb.serial,
        "manufacturer": prop("ro.product.manufacturer"),
        "model": prop("ro.product.model"),
        "soc": prop("ro.soc.model") or prop("ro.board.platform") or prop("ro.hardware"),
        "android": prop("ro.build.version.release"),
        "abi": prop("ro.product.cpu.abi"),
        "governor": adb.shell("cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", check=False).strip() or None,
    }


_STDOUT_KEYS = {
    "Session creation time cost": ("session_creation_s", 1.0),
    "First inference time cost": ("first_inference_ms", 1.0),
    "Total inference requests": ("requests", 1.0),
    "Average inference time cost": ("mean_ms", 1.0),
    "Average time cost": ("mean_ms", 1.0),  # perf_test before ORT 1.8
    "Total inference run time": ("run_time_s", 1.0),
    "Avg CPU usage": ("cpu_usage_pct", 1.0),
    "Peak working set size": ("peak_working_set_bytes", 1.0),
    "Min Latency": ("min_ms", 1000.0),
    "Max Latency": ("max_ms", 1000.0),
    "P50 Latency": ("p50_ms", 1000.0),
    "P90 Latency": ("p90_ms", 1000.0),
    "P95 Latency": ("p95_ms", 1000.0),
    "P99 Latency": ("p99_ms", 1000.0),
    "P999 Latency": ("p999_ms", 1000.0),
}
_LINE = re.compile(r"^\s*([A-Za-z0-9 ]+?)\s*(?::|\bis\b)\s*([-+0-9.eE]+)")


def parse_perf_test_stdout(text: str) -> dict[str, float]:
    """The summary ``onnxruntime_perf_test -s`` prints; latencies converted from seconds to ms."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m or m.group(1) not in _STDOUT_KEYS:
            continue
        key, scale = _STDOUT_KEYS[m.group(1)]
        out.setdefault(key, float(m.group(2)) * scale)
    if "p50_ms" not in out and "mean_ms" not in out:
        raise NascompError(
            "onnxruntime_perf_test printed no latency summary; run it by hand with -s to see what went wrong:\n"
            + "\n".join(text.strip().splitlines()[-5:])
        )
    return out


def parse_perf_test_results(text: str) -> list[float]:
    """Per-run latencies (ms) from perf_test's result file (``name,seconds,peak,cpu,index`` per run)."""
    runs = []
    for line in text.splitlines():
        parts = line.strip().split(",")
        if len(parts) == 5:
            try:
                runs.append((int(parts[4]), float(parts[1]) * 1000.0))
            except ValueError:
                continue
    return [ms for _, ms in sorted(runs)]


def perf_test_command(
    binary: str,
    model: str,
    threads: int,
    repeat: int | None = None,
    duration_s: float | None = None,
    result_file: str | None = None,
    cores: list[int] | None = None,
) -> str:
    """The shell command run on the phone: CPU provider, all graph optimizations, random inputs (-I)."""
    mode = ["-m", "duration", "-t", str(max(1, round(duration_s or 1)))] if duration_s else ["-m", "times", "-r", str(repeat or 100)]
    args = [binary, "-e", "cpu", *mode, "-x", str(threads), "-y", "1", "-o", "99", "-I", "-s", model]
    if result_file:
        args.append(result_file)
    cmd = " ".join(shlex.quote(a) for a in args)
    directory = shlex.quote(str(Path(binary).parent))
    prefix = f"cd {shlex.quote(REMOTE_DIR)} && LD_LIBRARY_PATH={directory}:$LD_LIBRARY_PATH "
    if cores:
        mask = sum(1 << c for c in cores)
        cmd = f"taskset {mask:x} {cmd}"
    return prefix + cmd


@dataclass
class AndroidRun:
    stats: LatencyStats
    summary: dict
    protocol: dict = field(default_factory=dict)


_BUILD_HINTS = {
    "onnxruntime_perf_test": "build it for Android (ONNX Runtime's onnxruntime/test/perftest) and pass the host file with --perf-test PATH",
    "executor_runner": "build ExecuTorch's examples/portable/executor_runner for Android with the XNNPACK backend "
    "(-DEXECUTORCH_BUILD_XNNPACK=ON) and pass the host file with --runner PATH",
}


def _install_binary(adb: Adb, given: str | None, name: str = "onnxruntime_perf_test") -> str:
    """Push a host binary, or use a path already on the phone (default: REMOTE_DIR/NAME)."""
    if given and Path(given).is_file():
        remote = f"{REMOTE_DIR}/{name}"
        adb.push(given, remote)
        adb.shell(f"chmod 755 {remote}")
        return remote
    remote = given or f"{REMOTE_DIR}/{name}"
    if "yes" not in adb.shell(f"[ -x {shlex.quote(remote)} ] && echo yes || echo no", check=False):
        raise NascompError(f"{name} not found on the phone at {remote}; {_BUILD_HINTS[name]}")
    return remote


def run_perf_test(
    adb: Adb,
    onnx_path: str | os.PathLike,
    perf_test: str | None,
    threads: int,
    warmup: int,
    repeat: int,
    cores: list[int] | None = None,
    tag: str = "model",
) -> AndroidRun:
    """Push the model, warm the phone up, run ``repeat`` timed runs, return per-run statistics."""
    adb.shell(f"mkdir -p {REMOTE_DIR}")
    binary = _install_binary(adb, perf_test)
    remote_model = f"{REMOTE_DIR}/{tag}.onnx"
    adb.push(onnx_path, remote_model)
    if warmup > 0:  # a separate invocation: ramps the CPU frequency up before the timed session
        adb.shell(perf_test_command(binary, remote_model, threads, repeat=warmup, cores=cores))
    result_file = f"{REMOTE_DIR}/{tag}.results.txt"
    adb.shell(f"rm -f {result_file}", check=False)
    stdout = adb.shell(perf_test_command(binary, remote_model, threads, repeat=repeat, result_file=result_file, cores=cores))
    summary = parse_perf_test_stdout(stdout)
    runs = parse_perf_test_results(adb.shell(f"cat {result_file}", check=False))
    protocol = {
        "perf_test": binary,
        "perf_test_args": f"-e cpu -m times -r {repeat} -x {threads} -y 1 -o 99 -I",
        "warmup": f"{warmup} runs in a separate invocation, then perf_test's own 1 untimed run",
        "affinity": f"taskset to cores {cores}" if cores else "not pinned (Android scheduler)",
    }
    if runs:
        stats = LatencyStats(runs)
        protocol["statistic_source"] = "per-run times from perf_test's result file"
    else:  # an old perf_test without a result file: only the printed percentiles exist
        stats = LatencyStats([summary["p50_ms"] if "p50_ms" in summary else summary["mean_ms"]])  # the parser raises without both
        protocol["statistic_source"] = "perf_test's printed P50 (no per-run file; IQR unavailable)"
    return AndroidRun(stats, summary, protocol)


_ITERATION = re.compile(r"Iteration\s+(\d+)\s+of\s+(\d+):\s*([0-9.eE+-]+)\s*ms")
_TOTAL = re.compile(r"Model executed successfully\s+(\d+)\s+time\(s\)\s+in\s+([0-9.eE+-]+)\s*ms")


def parse_executor_runner(text: str) -> tuple[list[float], dict]:
    """(per-execution ms in order, summary) from executor_runner's log; a runner too old to log each iteration gives only
    its total, so the one "run" is the mean."""
    runs = {int(m.group(1)): float(m.group(3)) for m in _ITERATION.finditer(text)}
    total = _TOTAL.search(text)
    summary: dict[str, float] = {}
    if total:
        summary = {
            "executions": int(total.group(1)),
            "total_ms": float(total.group(2)),
            "mean_ms": float(total.group(2)) / max(1, int(total.group(1))),
        }
    if not runs and not total:
        raise NascompError(
            "executor_runner printed no timing; run it by hand to see what went wrong:\n" + "\n".join(text.strip().splitlines()[-5:])
        )
    return [runs[i] for i in sorted(runs)], summary


def executor_runner_command(
    binary: str, model: str, threads: int, executions: int, cores: list[int] | None = None, etdump: str | None = None
) -> str:
    """The shell command run on the phone: ``executions`` runs of the program's forward on its default (all-ones) input."""
    args = [binary, f"--model_path={model}", f"--num_executions={executions}", f"--cpu_threads={threads}", "--print_output=none"]
    if etdump:
        args.append(f"--etdump_path={etdump}")
    cmd = " ".join(shlex.quote(a) for a in args)
    if cores:
        cmd = f"taskset {sum(1 << c for c in cores):x} {cmd}"
    return f"cd {shlex.quote(REMOTE_DIR)} && {cmd} 2>&1"


def run_executor_runner(
    adb: Adb,
    pte_path: str | os.PathLike,
    runner: str | None,
    threads: int,
    warmup: int,
    repeat: int,
    cores: list[int] | None = None,
    tag: str = "model",
    etdump_to: str | os.PathLike | None = None,
) -> AndroidRun:
    """Push the program, run ``warmup + repeat`` executions in one process, return the statistics of the last ``repeat``.
    With ``etdump_to`` the runner writes an ETDump that is pulled to that host path (a runner built without the event
    tracer rejects the flag: one error saying so)."""
    adb.shell(f"mkdir -p {REMOTE_DIR}")
    binary = _install_binary(adb, runner, "executor_runner")
    remote_model = f"{REMOTE_DIR}/{tag}.pte"
    adb.push(pte_path, remote_model)
    remote_dump = f"{REMOTE_DIR}/{tag}.etdump" if etdump_to else None
    stdout = adb.shell(executor_runner_command(binary, remote_model, threads, warmup + repeat, cores, remote_dump), check=False)
    if remote_dump and "etdump_path" in stdout and ("unknown" in stdout.lower() or "ERROR" in stdout):
        raise NascompError(
            f"{binary} was built without the event tracer, so it cannot write per-op times; rebuild it with "
            "-DEXECUTORCH_BUILD_DEVTOOLS=ON -DEXECUTORCH_ENABLE_EVENT_TRACER=ON, or drop --op-profile"
        )
    runs, summary = parse_executor_runner(stdout)
    protocol = {
        "runner": binary,
        "runner_args": f"--num_executions={warmup + repeat} --cpu_threads={threads} --print_output=none",
        "warmup": f"the first {warmup} of {warmup + repeat} executions in the same process, dropped",
        "affinity": f"taskset to cores {cores}" if cores else "not pinned (Android scheduler)",
        "input": "executor_runner's default input (all ones)",
    }
    if len(runs) > warmup:
        stats = LatencyStats(runs[warmup:])
        protocol["statistic_source"] = "per-execution times the runner logged on the phone"
    else:
        stats = LatencyStats([summary["mean_ms"]])
        protocol["statistic_source"] = "the runner's total / executions (this runner logs no per-execution times; IQR unavailable)"
    if remote_dump:
        adb.run("pull", remote_dump, str(etdump_to))
    return AndroidRun(stats, summary, protocol)


def executor_runner_summary(text: str) -> dict:
    """The energy window's summary in perf_test's terms (mean ms, requests, seconds) from an executor_runner log."""
    runs, summary = parse_executor_runner(text)
    n = len(runs) or int(summary.get("executions", 0))
    total = sum(runs) if runs else summary.get("total_ms", 0.0)
    return {"mean_ms": total / max(1, n), "requests": n, "run_time_s": total / 1000.0}


def _read_battery(adb: Adb) -> tuple[float, float] | None:
    out = adb.shell(f"cat {BATTERY}/current_now {BATTERY}/voltage_now", check=False).split()
    try:
        return float(out[0]), float(out[1])
    except (IndexError, ValueError):
        return None


def _charging(adb: Adb) -> bool:
    text = adb.shell("dumpsys battery", check=False)
    powered = re.findall(r"(AC|USB|Wireless|Dock) powered:\s*true", text)
    status = re.search(r"status:\s*(\d+)", text)
    return bool(powered) or (status is not None and status.group(1) == "2")  # BATTERY_STATUS_CHARGING


def measure_battery_energy(
    adb: Adb,
    binary_cmd: Callable[[float], str],
    latency_ms: float,
    batch: int = 1,
    window_s: float = 10.0,
    idle_s: float = 5.0,
    sample_every_s: float = 0.25,
    sleep: Callable[[float], None] = time.sleep,
    summarize: Callable[[str], dict] = parse_perf_test_stdout,
) -> EnergyReport:
    """Whole-phone power from the battery gauge: idle samples, then samples while the benchmark binary runs for ``window_s``
    (``summarize`` reads its log: mean ms per run, requests, seconds).

    Raises EnergyUnavailable while the phone charges (the gauge then reads the charger, not the load)
    or when the gauge cannot be read.
    """
    if _charging(adb):
        raise EnergyUnavailable(
            "the phone is charging (USB/AC powered), so the battery gauge does not see the load; "
            "disconnect power and use `adb tcpip` / wireless debugging to measure energy"
        )
    idle, active = [], []
    for _ in range(max(1, round(idle_s / sample_every_s))):
        sample = _read_battery(adb)
        if sample is None:
            raise EnergyUnavailable(f"cannot read {BATTERY}/current_now and voltage_now on this phone")
        idle.append(sample)
        sleep(sample_every_s)
    proc = adb.popen_shell(binary_cmd(window_s))
    stdout: list[str] = []
    assert proc.stdout is not None  # popen_shell opens it as a pipe
    pipe = proc.stdout
    reader = threading.Thread(target=lambda: stdout.append(pipe.read()), daemon=True)
    reader.start()
    while proc.poll() is None:
        sample = _read_battery(adb)
        if sample is not None:
            active.append(sample)
        sleep(sample_every_s)
    reader.join(timeout=5)
    if proc.returncode != 0:
        raise EnergyUnavailable(f"the benchmark run for the energy window failed (exit {proc.returncode})")
    summary = summarize("".join(stdout))
    idle_w, units = median_power_w(idle)
    active_w, _ = median_power_w(active[1:] or active)  # the first sample may predate the load
    per_run_ms = summary.get("mean_ms", latency_ms)
    report = energy_from_power(
        active_w,
        idle_w,
        per_run_ms,
        batch,
        source="android-battery",
        scope="whole phone (battery gauge)",
        window_s=summary.get("run_time_s", window_s),
        inferences=int(summary.get("requests", 0)) or None,
        idle_window_s=idle_s,
    )
    report.notes.append(
        f"battery units read as current {units.get('current')}, voltage {units.get('voltage')}; "
        f"{len(idle)} idle and {len(active)} active samples, median power"
    )
    return report
