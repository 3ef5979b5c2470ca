"""Benchmark the command line's start-up: `nascomp --help` against a bare interpreter and against `import torch`, and
how fast a bad argument is refused (every line of tests/fixtures/bad-arguments.txt, which must fail before torch loads).

    python benchmarks/bench_cli.py [--repeats 15] [--baseline DIR] [--out benchmarks/results/bench_cli.json]

``--baseline DIR``: also time ``nascomp --help`` of another source tree (e.g. a ``git worktree`` of 0.1.0, whose
CLI imported torch and timm up front), run from inside DIR.

Each command runs as a fresh process; the commands are interleaved round by round (so a busy shared machine
slows all of them alike) and the ratios are taken between medians. CPU time (user + system of the child) is
reported beside wall time, because CPU time is what the start-up itself costs, whatever the machine's load.
Writes the JSON with date, machine and command, and a Markdown rendering beside it (.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    "nascomp --help": [sys.executable, "-m", "nascomp", "--help"],
    "nascomp search --help": [sys.executable, "-m", "nascomp", "search", "--help"],
    "python -c 'import nascomp'": [sys.executable, "-c", "import nascomp"],
}


BAD_ARGUMENTS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "bad-arguments.txt"


def bad_commands(scratch: str) -> dict[str, list[str]]:
    """The fixture's command lines as `python -m nascomp ...`, ``{tmp}`` replaced by ``scratch``."""
    lines = [line for line in BAD_ARGUMENTS.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return {f"nascomp {line}": [sys.executable, "-m", "nascomp", *shlex.split(line.replace("{tmp}", scratch))] for line in lines}


def _run(cmd: list[str], where: str | None = None, status_expected: int = 0) -> tuple[float, float]:
    """(wall seconds, child CPU seconds) of one run, started in the folder ``where`` (default: here)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=where)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != status_expected:
        raise SystemExit(f"{' '.join(cmd)} exited {os.waitstatus_to_exitcode(status)}, not {status_expected}")
    return wall, usage.ru_utime + usage.ru_stime


def _loads_torch(cmd: list[str], where: str | None = None) -> bool:
    err = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], capture_output=True, text=True, cwd=where).stderr
    return any(line.rsplit("|", 1)[-1].strip().split(".")[0] == "torch" for line in err.splitlines() if "|" in line)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--baseline", help="another source tree whose `nascomp --help` is timed beside this one")
    p.add_argument("--out", default="benchmarks/results/bench_cli.json")
    args = p.parse_args()
    commands = {name: (cmd, None, 0) for name, cmd in COMMANDS.items()}
    if args.baseline:  # `python -m` puts the working folder first on sys.path, so run there
        commands[f"nascomp --help ({Path(args.baseline).name})"] = (
            [sys.executable, "-m", "nascomp", "--help"],
            str(Path(args.baseline).resolve()),
            0,
        )
    scratch = tempfile.mkdtemp(prefix="bench-cli-")  # {tmp} of the fixture: stays empty, every command fails first
    bad = bad_commands(scratch)
    commands.update({name: (cmd, None, 2) for name, cmd in bad.items()})
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for cmd, where, status in commands.values():
        _run(cmd, where, status)  # warm the page cache
    for _ in range(args.repeats):
        for name, (cmd, where, status) in commands.items():
            samples[name].append(_run(cmd, where, status))
    rows = {}
    for name, runs in samples.items():
        rows[name] = {
            "wall_s": statistics.median(w for w, _ in runs),
            "cpu_s": statistics.median(c for _, c in runs),
            "loads_torch": _loads_torch(*commands[name][:2]),
        }
    os.rmdir(scratch)
    base, torch_row = rows["python -c pass"], rows["python -c 'import torch'"]
    for row in rows.values():
        row["wall_vs_python"] = row["wall_s"] / base["wall_s"]
        row["wall_vs_import_torch"] = row["wall_s"] / torch_row["wall_s"]
        row["cpu_vs_python"] = row["cpu_s"] / base["cpu_s"]
        row["cpu_vs_import_torch"] = row["cpu_s"] / torch_row["cpu_s"]
    doc = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs ({platform.platform()})",
        "python": platform.python_version(),
        "repeats": args.repeats,
        "command": " ".join(["python", *(Path(a).name if a == args.baseline else a for a in sys.argv)]),  # no machine paths
        "statistic": "median over interleaved rounds; CPU = the child's user + system time",
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    lines = [
        f"# CLI start-up ({doc['date']}, {doc['machine']})",
        "",
        f"`{doc['command']}`; {doc['statistic']}.",
        "",
        "| command | wall (s) | CPU (s) | wall / python | wall / import torch | CPU / import torch | loads torch |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        if name in bad:
            continue
        lines.append(
            f"| `{name}` | {r['wall_s']:.3f} | {r['cpu_s']:.3f} | {r['wall_vs_python']:.2f} | {r['wall_vs_import_torch']:.3f} | "
            f"{r['cpu_vs_import_torch']:.3f} | {'yes' if r['loads_torch'] else 'no'} |"
        )
    worst = max(bad, key=lambda n: rows[n]["cpu_s"])
    lines += [
        "",
        f"Bad arguments: the {len(bad)} command lines of tests/fixtures/bad-arguments.txt, each refused with one `error:` "
        f"line (exit 2). Median CPU per command: {statistics.median(rows[n]['cpu_s'] for n in bad):.3f} s; the slowest "
        f"`{worst}` {rows[worst]['cpu_s']:.3f} s CPU, {rows[worst]['wall_s']:.3f} s wall; "
        f"{sum(rows[n]['loads_torch'] for n in bad)} of them import torch.",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
