"""Energy per inference from hardware counters, or from a stated power model when there is none.

Every figure is labelled ``measured`` (a counter: NVML, RAPL, a phone's battery gauge) or
``estimated`` (a power model), and is reported three ways: total energy per inference, the idle
share (idle power x the time one inference takes), and the difference, the energy the inference
itself adds. Idle power is measured right before the active window with the same counter.

Counters and their traps:
- NVML ``nvmlDeviceGetTotalEnergyConsumption`` (Volta+): whole-board mJ, refreshed only every
  20-100 ms, so one ~1 ms inference cannot be seen; we repeat inferences until the window is at
  least 10 update periods (and `min_window_s`) long.
- RAPL via powercap ``energy_uj``: root-only on patched kernels (CVE-2020-8694), wraps at
  ``max_energy_range_uj``; machine-wide (every process on the package counts).
- Android ``/sys/class/power_supply/battery/{current_now,voltage_now}``: whole-phone power,
  sign and units vary by vendor, meaningless while the phone charges.
"""

from __future__ import annotations

import math
import os
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "EnergyUnavailable",
    "EnergyReport",
    "PowerModel",
    "NvmlCounter",
    "RaplCounter",
    "measure_energy",
    "estimate_energy",
    "default_power_model",
    "parse_power_override",
    "battery_power_w",
    "energy_from_power",
    "median_power_w",
]

POWERCAP_ROOT = "/sys/class/powercap"


class EnergyUnavailable(Exception):
    """No usable counter here; the message says why (it goes into the report as the fallback reason)."""


@dataclass
class EnergyReport:
    kind: str  # "measured" | "estimated"
    source: str  # "nvml" | "rapl" | "android-battery" | "power-model"
    total_mj_per_inference: float
    idle_mj_per_inference: float
    idle_power_w: float
    active_power_w: float
    batch: int = 1
    scope: str = ""
    window_s: float | None = None
    inferences: int | None = None
    idle_window_s: float | None = None
    counter_update_period_s: float | None = None
    power_model: str | None = None
    fallback_reason: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def mj_per_inference(self) -> float:
        """Energy the inference adds above idle: the headline figure."""
        return self.total_mj_per_inference - self.idle_mj_per_inference

    def to_dict(self) -> dict:
        d = asdict(self)
        d = {
            "kind": d.pop("kind"),
            "mj_per_inference": round(self.mj_per_inference, 4),
            "mj_per_image": round(self.mj_per_inference / max(self.batch, 1), 4),
            **d,
        }
        for key in ("total_mj_per_inference", "idle_mj_per_inference", "idle_power_w", "active_power_w", "window_s", "idle_window_s"):
            if d[key] is not None:
                d[key] = round(d[key], 4)
        d["definition"] = "mj_per_inference = total - idle (idle power x time per inference); one inference = one batch"
        return {k: v for k, v in d.items() if v not in (None, [])}


# ---------------------------------------------------------------------------------------------- counters


class NvmlCounter:
    """Board energy of one NVIDIA GPU from NVML's cumulative counter (mJ since driver load)."""

    source = "nvml"
    scope = "whole GPU board (all processes on this GPU)"

    def __init__(self, index: int = 0, nvml: Any = None, update_period_s: float = 0.1, uuid: str | None = None) -> None:
        if nvml is None:
            try:
                import pynvml
            except ImportError:
                raise EnergyUnavailable("pynvml (nvidia-ml-py) is not installed") from None
            nvml = pynvml
        self.nvml = nvml
        try:
            nvml.nvmlInit()
            # torch numbers the devices CUDA_VISIBLE_DEVICES leaves, NVML all of them: match by UUID when known
            if uuid:
                self.handle = nvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith("GPU-") else f"GPU-{uuid}")
            else:
                self.handle = nvml.nvmlDeviceGetHandleByIndex(index)
            name = nvml.nvmlDeviceGetName(self.handle)
            self.device_name = name.decode() if isinstance(name, bytes) else str(name)
            nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
        except Exception as e:  # NVMLError_LibraryNotFound, _NotSupported (pre-Volta), _NoPermission...
            raise EnergyUnavailable(f"NVML energy counter unavailable: {type(e).__name__}: {e}") from None
        # 100 ms is the slow end of the 20-100 ms refresh reported for recent GPUs: a safe window sizing.
        self.update_period_s = update_period_s

    def read_j(self) -> float:
        return self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) / 1000.0


@dataclass
class _RaplZone:
    path: Path
    name: str
    max_range_uj: int
    last_uj: int
    total_uj: int = 0


class RaplCounter:
    """CPU package (and DRAM) energy from Linux powercap, accumulated across counter wrap-arounds.

    ``read_j`` must be called more often than a zone wraps (minutes at full load); the measuring
    loop calls it every ~0.5 s for that reason.
    """

    source = "rapl"
    scope = "CPU package(s) and DRAM, machine-wide (every process counts)"
    update_period_s = 0.001  # RAPL refreshes about every millisecond

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        root = Path(root or os.environ.get("NASCOMP_POWERCAP_ROOT", POWERCAP_ROOT))
        if not root.is_dir():
            raise EnergyUnavailable(f"no RAPL powercap interface ({root} does not exist; VMs and containers usually hide it)")
        zones = []
        for d in sorted(root.iterdir()):
            # top-level zones (intel-rapl:0) are packages; of the sub-zones only DRAM is outside the package
            parts = d.name.split(":")
            if parts[0] != "intel-rapl" or len(parts) not in (2, 3):
                continue
            name = self._read_text(d / "name")
            if len(parts) == 3 and name != "dram":
                continue
            try:
                energy = int(self._read_text(d / "energy_uj"))
            except PermissionError:
                raise EnergyUnavailable(
                    f"{d / 'energy_uj'} is readable by root only (kernel fix for CVE-2020-8694); run as root or "
                    f"`sudo chmod a+r {root}/intel-rapl:*/energy_uj {root}/intel-rapl:*/*/energy_uj`"
                ) from None
            zones.append(_RaplZone(d, f"{d.name} ({name})", int(self._read_text(d / "max_energy_range_uj")), energy))
        if not zones:
            raise EnergyUnavailable(f"{root} has no intel-rapl package zones")
        self.zones = zones

    @staticmethod
    def _read_text(path: Path) -> str:
        try:
            return path.read_text().strip()
        except PermissionError:
            raise
        except OSError as e:
            raise EnergyUnavailable(f"cannot read {path}: {e.strerror}") from None

    def read_j(self) -> float:
        for z in self.zones:
            now = int(self._read_text(z.path / "energy_uj"))
            delta = now - z.last_uj
            if delta < 0:  # wrapped once since the last read
                delta += z.max_range_uj
            z.total_uj += delta
            z.last_uj = now
        return sum(z.total_uj for z in self.zones) / 1e6


# ---------------------------------------------------------------------------------------------- measuring


def _aligned_read(counter: NvmlCounter | RaplCounter, clock: Callable[[], float], sleep: Callable[[float], None]) -> tuple[float, float]:
    """(energy J, time) taken just after the counter's next refresh, so a window starts and ends on an update.

    Without this, each end of a window can be stale by up to one refresh period (NVML: up to 100 ms),
    i.e. up to 2 periods / window of error; aligned, the error is the polling step.
    """
    first, t_start = counter.read_j(), clock()
    step = max(counter.update_period_s / 50, 0.0005)
    while clock() - t_start < 3 * counter.update_period_s:
        sleep(step)
        value = counter.read_j()
        if value != first:
            return value, clock()
    return first, t_start  # a counter that does not move (idle package with coarse units): use the plain reading


def measure_energy(
    counter: NvmlCounter | RaplCounter,
    run: Callable[[], Any],
    latency_ms: float,
    batch: int = 1,
    min_window_s: float = 2.0,
    idle_window_s: float | None = None,
    sync: Callable[[], Any] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
    poll_every_s: float = 0.5,
) -> EnergyReport:
    """Idle power over ``idle_window_s``, then back-to-back inferences for a window >= 10 counter periods.

    ``latency_ms`` (from the latency measurement) only sizes the first guess of the number of runs;
    inferences continue until the window is long enough. ``sync`` waits for queued GPU work.
    """
    window = max(min_window_s, 10 * counter.update_period_s)
    idle_window = idle_window_s if idle_window_s is not None else window
    notes = []

    e0, t0 = _aligned_read(counter, clock, sleep)
    slept = 0.0
    while slept < idle_window:  # sleep in slices so the counter is polled often enough not to miss a wrap
        step = min(poll_every_s, idle_window - slept)
        sleep(step)
        slept += step
        counter.read_j()
    e1, t1 = _aligned_read(counter, clock, sleep)
    idle_duration = t1 - t0
    idle_w = (e1 - e0) / max(idle_duration, 1e-9)

    n = 0
    e0, t0 = _aligned_read(counter, clock, sleep)
    last_poll = t0
    planned = max(1, math.ceil(window * 1000.0 / max(latency_ms, 1e-6)))
    while True:
        run()
        n += 1
        now = clock()
        if now - last_poll >= poll_every_s:
            counter.read_j()
            last_poll = now
        if n >= planned or now - t0 >= window:
            if sync is not None:
                sync()
            if clock() - t0 >= window:
                break
    e1, t1 = _aligned_read(counter, clock, sleep)  # the idle tail until the refresh is removed with the idle power
    duration = t1 - t0
    total_j = e1 - e0
    if total_j <= 0:
        notes.append("the counter did not advance during the window; the figure is not meaningful")
    total_mj = total_j * 1000.0 / n
    idle_mj = idle_w * duration * 1000.0 / n
    if total_mj - idle_mj < 0:
        notes.append("active energy is below the idle baseline: the inference is lost in the counter's noise (other load?)")
    return EnergyReport(
        kind="measured",
        source=counter.source,
        total_mj_per_inference=total_mj,
        idle_mj_per_inference=idle_mj,
        idle_power_w=idle_w,
        active_power_w=total_j / max(duration, 1e-9),
        batch=batch,
        scope=counter.scope,
        window_s=duration,
        inferences=n,
        idle_window_s=idle_duration,
        counter_update_period_s=counter.update_period_s,
        notes=notes,
    )


def energy_from_power(
    active_w: float, idle_w: float, latency_ms: float, batch: int, source: str, scope: str, kind: str = "measured", **extra: Any
) -> EnergyReport:
    """Energy per inference from average powers (W) and the latency of one inference."""
    return EnergyReport(
        kind=kind,
        source=source,
        total_mj_per_inference=active_w * latency_ms,
        idle_mj_per_inference=idle_w * latency_ms,
        idle_power_w=idle_w,
        active_power_w=active_w,
        batch=batch,
        scope=scope,
        **extra,
    )


# ---------------------------------------------------------------------------------------------- estimates


@dataclass(frozen=True)
class PowerModel:
    """Average power while the model runs and while idle, for the resources the measurement used."""

    active_w: float
    idle_w: float
    description: str


# Stated assumptions (not measurements). A busy x86 server/desktop core draws roughly its share of the
# package TDP: EPYC 9654 360 W / 96 cores = 3.75 W, Xeon 8380 270 W / 40 = 6.75 W, i7-12700 65 W / 12 = 5.4 W.
HOST_CORE_ACTIVE_W = 5.0
HOST_CORE_IDLE_W = 0.5
# A big Cortex-A7x/X-class phone core at its top frequency: about 1-2 W; the rest of the phone idles near 0.5 W.
PHONE_CORE_ACTIVE_W = 1.5
PHONE_IDLE_W = 0.5
# A data-centre GPU busy with small-batch inference rarely reaches its power limit; idle boards draw 50-70 W.
GPU_ACTIVE_W = 250.0
GPU_IDLE_W = 60.0


def default_power_model(target: str, threads: int | None) -> PowerModel:
    cores = max(threads or 1, 1)
    if target == "cuda":
        return PowerModel(GPU_ACTIVE_W, GPU_IDLE_W, f"assumed GPU board power {GPU_ACTIVE_W:g} W busy, {GPU_IDLE_W:g} W idle")
    if target == "android":
        active = PHONE_IDLE_W + PHONE_CORE_ACTIVE_W * cores
        return PowerModel(
            active, PHONE_IDLE_W, f"assumed phone: {PHONE_IDLE_W:g} W idle + {PHONE_CORE_ACTIVE_W:g} W per busy big core x {cores}"
        )
    active = (HOST_CORE_ACTIVE_W + HOST_CORE_IDLE_W) * cores
    return PowerModel(
        active,
        HOST_CORE_IDLE_W * cores,
        f"assumed host CPU: {HOST_CORE_ACTIVE_W:g} W dynamic + {HOST_CORE_IDLE_W:g} W idle per busy core x {cores} "
        "(about TDP / cores for current x86 parts)",
    )


def parse_power_override(text: str) -> PowerModel:
    """'--power-w 12' (active, idle 0) or '--power-w 12:3' (active:idle) -> a user-stated model."""
    from nascomp.core.errors import NascompError

    m = re.fullmatch(r"\s*([0-9.]+)\s*(?::\s*([0-9.]+))?\s*", text)
    if not m:
        raise NascompError(f"--power-w {text!r}: expected ACTIVE or ACTIVE:IDLE in watts, e.g. 12 or 12:3")
    active, idle = float(m.group(1)), float(m.group(2) or 0.0)
    if idle > active:
        raise NascompError(f"--power-w {text!r}: idle power exceeds active power")
    return PowerModel(active, idle, f"user-stated power: {active:g} W active, {idle:g} W idle")


def estimate_energy(model: PowerModel, latency_ms: float, batch: int = 1, reason: str | None = None) -> EnergyReport:
    return energy_from_power(
        model.active_w,
        model.idle_w,
        latency_ms,
        batch,
        source="power-model",
        scope="the resources the measurement used",
        kind="estimated",
        power_model=model.description,
        fallback_reason=reason,
    )


# ---------------------------------------------------------------------------------------------- android battery


def battery_power_w(current_now: float, voltage_now: float) -> tuple[float, dict]:
    """Battery power (W) from sysfs ``current_now`` and ``voltage_now``; returns (watts, units assumed).

    The kernel ABI says µA and µV, but some vendors report mA/mV and the sign of the current differs
    (discharge positive on some phones, negative on others): magnitudes are used, and values too
    small to be µA/µV for a running phone (|I| < 10 000, V < 10 000) are read as mA/mV.
    """
    current, voltage = abs(float(current_now)), abs(float(voltage_now))
    units = {"current": "uA", "voltage": "uV"}
    if current < 10_000:
        current *= 1000.0
        units["current"] = "mA (value too small for uA)"
    if voltage < 10_000:
        voltage *= 1000.0
        units["voltage"] = "mV (value too small for uV)"
    return current * 1e-6 * voltage * 1e-6, units


def median_power_w(samples: list[tuple[float, float]]) -> tuple[float, dict]:
    """Median power of (current_now, voltage_now) samples: robust to the gauge's occasional spikes."""
    if not samples:
        raise EnergyUnavailable("no battery samples were read")
    powers: list[float] = []
    units: dict[str, int] = {}
    for current, voltage in samples:
        watts, units = battery_power_w(current, voltage)
        powers.append(watts)
    return statistics.median(powers), units
