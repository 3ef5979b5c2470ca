"""Does the 1.0 reshaping of the public surface change what nascomp computes? The same commands before and after.

Issue 20 reshaped `compress`, `fit`, the auto comparison and the search pipeline (typed configs, one-way stages,
split steps). Behaviour must not change: each case below runs through the command line (which did not change) of two
source trees, each in its own process with one thread, and every file the runs write is compared. A file is
*byte-identical*, or identical once what records time is dropped (JSON fields of seconds and dates; dates, durations and
matplotlib's random clip ids in SVG and HTML; TensorBoard event files are compared by their scalars, speed tags aside,
since their names and wall times differ by construction; the output lock is skipped), or it differs.

    git worktree add --detach /tmp/nascomp-before <commit before the change>
    OMP_NUM_THREADS=1 .venv/bin/python experiments/api-1.0/run.py run --tree /tmp/nascomp-before --out runs/api-1.0/before
    OMP_NUM_THREADS=1 .venv/bin/python experiments/api-1.0/run.py run --tree . --out runs/api-1.0/after
    .venv/bin/python experiments/api-1.0/run.py compare runs/api-1.0/before runs/api-1.0/after   # writes results.json here
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = ["--data", "fashion-mnist", "--limit-train", "256", "--limit-val", "128", "--limit-test", "128", "--quiet"]
CASES = {
    "smoke search": ["search", "--space", "s3-vit", "--budget", "4gflops", "--preset", "smoke", "--quiet", "--out", "OUT"],
    "shrink dry run": ["compress", "swin_tiny_patch4_window7_224", "--method", "shrink", "--budget", "2gflops", "--dry-run", "--json"],
    "minivit dry run": ["compress", "swin_tiny_patch4_window7_224", "--method", "minivit", "--dry-run", "--json"],
    "small train": ["train", "vit_tiny_patch16_224", "--img-size", "28", "--patch-size", "7", "--in-chans", "1", "--embed-dim", "32", "--depth", "2",
                    "--num-heads", "2", "--epochs", "1", "--batch-size", "64", *DATA, "--out", "OUT"],
}
TIME_KEYS = {"seconds", "date", "elapsed_s", "wall_s", "duration_s", "started", "finished", "timestamp", "build_seconds", "time_s", "hours",
             "minutes", "stage_seconds", "images_per_s", "throughput", "cpu_s"}
LOCK = ".nascomp.lock"  # the writer's pid and start time
TIMED_TAGS = ("images_per_s",)  # TensorBoard scalars that measure speed, not results


def _scalars(folder: Path) -> dict:
    """A TensorBoard folder's scalars without the speed tags (event file names and wall times differ by construction)."""
    from nascomp.core.runlog import read_scalars

    return {tag: rows for tag, rows in read_scalars(folder).items() if not any(t in tag for t in TIMED_TAGS)}


def _text_without_times(text: str) -> str:
    """An SVG, HTML or Markdown page without what changes from run to run: dates, durations, the bars of the stage-time chart,
    matplotlib's random element ids."""
    text = re.sub(r"<dc:date>[^<]*</dc:date>", "", text)
    text = re.sub(r"\b[mp][0-9a-f]{10}\b", "ID", text)
    text = re.sub(r"<rect[^>]*><title>[^<]*wall[^<]*</title></rect>", "BAR", text)
    text = re.sub(r"\d{4}-\d{2}-\d{2}[T ][\d:.+]+", "DATE", text)
    text = re.sub(r'data-sort="[\d.]+">TIME<', 'data-sort="T">TIME<', re.sub(r"\d+(\.\d+)?\s?(s|ms|min|h)\b", "TIME", text))
    return text


SCRATCH = Path("/tmp/nascomp-api-1.0")  # every run writes here, so paths recorded in its files are the same before and after


def run(tree: Path, out: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    out.mkdir(parents=True, exist_ok=True)
    for i, (name, argv) in enumerate(CASES.items()):
        folder = out / f"case{i}"
        if folder.exists():
            continue
        shutil.rmtree(SCRATCH, ignore_errors=True)
        SCRATCH.mkdir(parents=True)
        argv = [str(SCRATCH / "run") if a == "OUT" else a for a in argv]
        proc = subprocess.run([sys.executable, "-m", "nascomp", *argv], env=env, capture_output=True, text=True, cwd=SCRATCH)
        (SCRATCH / "stdout.txt").write_text(proc.stdout)
        print(f"{name}: exit {proc.returncode}", flush=True)
        if proc.returncode:
            raise SystemExit(proc.stderr[-2000:])
        shutil.copytree(SCRATCH, folder)


def _timeless(value):
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if k not in TIME_KEYS and not k.endswith("_seconds")}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


def compare(a: Path, b: Path) -> dict:
    rows = []
    for i, name in enumerate(CASES):
        def listing(root: Path) -> list[Path]:
            return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and p.name != LOCK and ".tfevents." not in p.name)

        files, other = listing(a / f"case{i}"), listing(b / f"case{i}")
        same, timeless, differ = [], [], []
        for tb in sorted({p.parent.relative_to(a / f"case{i}") for p in (a / f"case{i}").rglob("*.tfevents.*")}):
            scalars = _scalars(a / f"case{i}" / tb)
            (timeless if scalars and scalars == _scalars(b / f"case{i}" / tb) else differ).append(f"{tb} (TensorBoard scalars)")
        for rel in files:
            x, y = a / f"case{i}" / rel, b / f"case{i}" / rel
            if not y.is_file():
                differ.append(f"{rel} (only before)")
            elif x.read_bytes() == y.read_bytes():
                same.append(str(rel))
            elif rel.suffix == ".json" and _timeless(json.loads(x.read_text())) == _timeless(json.loads(y.read_text())):
                timeless.append(str(rel))
            elif rel.suffix in (".svg", ".html", ".md") and _text_without_times(x.read_text()) == _text_without_times(y.read_text()):
                timeless.append(str(rel))
            else:
                differ.append(str(rel))
        differ += [f"{rel} (only after)" for rel in other if rel not in files]
        rows.append({"case": name, "files": len(files), "byte_identical": len(same), "identical_but_times": timeless, "differ": differ})
        print(f"{name:<18} {len(files):>4} files: {len(same)} byte-identical, {len(timeless)} identical but for times, {len(differ)} differ "
              f"{differ[:6]}")
    return {"date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, 1 thread per run",
            "command": "python experiments/api-1.0/run.py compare BEFORE AFTER", "cases": {n: " ".join(a) for n, a in CASES.items()}, "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--tree", required=True, help="the nascomp source tree to run")
    r.add_argument("--out", required=True)
    c = sub.add_parser("compare")
    c.add_argument("before")
    c.add_argument("after")
    args = p.parse_args()
    if args.cmd == "run":
        run(Path(args.tree).resolve(), Path(args.out).resolve())
    else:
        doc = compare(Path(args.before), Path(args.after))
        (HERE / "results.json").write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
