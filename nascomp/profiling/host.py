"""What machine a measurement ran on, and pinning the process to chosen CPU cores.

A latency number is only comparable with its protocol next to it (CPU model, governor, load,
affinity, runtime versions); this module gathers those facts from the host without root, and
`pinned_to` pins every thread of the process so the threads a runtime creates inherit the pinning.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
from collections.abc import Iterator
from pathlib import Path

from nascomp.core.errors import NascompError
from nascomp.core.version import __version__

__all__ = ["cpu_model", "allowed_cores", "load_average", "cpu_governor", "runtime_versions", "host_facts", "pinned_to", "parse_cores"]


def cpu_model(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str:
    """The CPU's marketing name ('AMD EPYC', 'Intel(R) Xeon(R) ...'); falls back to `platform.processor()`."""
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def allowed_cores() -> list[int]:
    """Cores this process may run on (respects cgroups/taskset), sorted."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def load_average() -> list[float] | None:
    """1/5/15-minute load averages: a loaded shared machine explains a slow or noisy number."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def cpu_governor(core: int = 0, sysfs: str | os.PathLike = "/sys/devices/system/cpu") -> str | None:
    """cpufreq scaling governor of ``core`` ('performance', 'powersave', ...); None where not exposed (VMs)."""
    try:
        return (Path(sysfs) / f"cpu{core}" / "cpufreq" / "scaling_governor").read_text().strip()
    except OSError:
        return None


def runtime_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"nascomp": __version__, "python": platform.python_version()}
    for name in ("torch", "onnxruntime", "onnx", "timm"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    return versions


def host_facts() -> dict:
    """Facts about this host that belong in every protocol record."""
    cores = allowed_cores()
    return {
        "hostname": platform.node(),
        "os": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "allowed_cores": cores,
        "governor": cpu_governor(cores[0] if cores else 0),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": runtime_versions(),
    }


def parse_cores(text: str) -> list[int]:
    """'1' -> [1], '0,2' -> [0, 2], '0-3' -> [0, 1, 2, 3] (taskset's list syntax)."""
    cores: set[int] = set()
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            lo, _, hi = part.partition("-")
            cores.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise NascompError(f"--cores {text!r}: expected a list like 1 or 0,2 or 0-3") from None
    if not cores:
        raise NascompError(f"--cores {text!r} names no core")
    return sorted(cores)


def _threads() -> list[int]:
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


@contextlib.contextmanager
def pinned_to(cores: list[int] | None) -> Iterator[list[int]]:
    """Pin every existing thread of this process to ``cores`` (threads created inside inherit it); restore on exit.

    Yields the cores actually in effect. ``None`` leaves the affinity alone and yields the allowed cores.
    """
    if not cores or not hasattr(os, "sched_setaffinity"):
        yield allowed_cores()
        return
    allowed = set(allowed_cores())
    bad = [c for c in cores if c not in allowed]
    if bad:
        raise NascompError(f"cannot pin to cores {bad}: this process may only use cores {sorted(allowed)}; choose from those with --cores")
    saved: dict[int, set[int]] = {}
    for tid in _threads():
        with contextlib.suppress(OSError):
            saved[tid] = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, set(cores))
    try:
        yield sorted(cores)
    finally:
        for tid in _threads():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, saved.get(tid, allowed))
