"""Recorded results carry no machine paths: every tracked .json/.md/.csv under benchmarks/results and experiments names
files relative to the repository (or ``<tmp>`` for a scratch folder), never where one developer's checkout lived.

Scripts that write records pass them through ``benchmarks/record.py: portable``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ("benchmarks/results", "experiments")
# home, scratch and checkout folders of the machines these records were made on (system paths such as
# /usr/share/datasets/... in a how-to, or /proc/x as a deliberately bad argument, are not machine paths)
MACHINE_PATH = re.compile(
    r"(?<![\w.<>~/-])/(?:root|home|tmp|work|check|Users|mnt|scratch|private/var|var/folders)/[^\s\"'`,;)\]]*"
    r"|\b[A-Z]:\\\\?Users\\[^\s\"']*"
)


def _tracked_records() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z", "--", *RECORDS], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / name for name in out.split("\0") if name.endswith((".json", ".md", ".csv")) and (ROOT / name).is_file()]


def machine_paths(text: str) -> list[str]:
    found = MACHINE_PATH.findall(text)
    return found + ([str(ROOT)] if str(ROOT) in text and not found else [])


def test_the_pattern_finds_machine_paths_and_spares_the_rest():
    lut = "/work/wt-shrink/experiments/shrink-swin/runs/lut.json"
    assert machine_paths(f'"lut": "{lut}"') == [lut]
    assert machine_paths("--out /tmp/smoke and /home/ada/x and C:\\Users\\ada\\x") == ["/tmp/smoke", "/home/ada/x", "C:\\Users\\ada\\x"]
    for fine in (
        "--out <tmp>/smoke",
        "experiments/shrink-swin/runs/lut.json",
        "/usr/share/datasets/fashion-mnist/",
        "--out /proc/x",
        "https://example.org/home/page",
        "runs/tmp/x",
        "~/tmp/x",
    ):
        assert machine_paths(fine) == [], fine


def test_no_recorded_result_holds_a_machine_path():
    records = _tracked_records()
    assert len(records) > 20, "git ls-files found too few records: is this a git checkout?"
    offending = []
    for path in records:
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            offending += [f"{path.relative_to(ROOT)}:{number}: {hit}" for hit in machine_paths(line)]
    assert not offending, (
        "machine paths in recorded results (write them repository-relative or as <tmp>; benchmarks/record.py: "
        "portable):\n" + "\n".join(offending)
    )
