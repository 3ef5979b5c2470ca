"""The README's "Python API" examples run as written (in a scratch folder), so the documented API cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _examples() -> list[str]:
    text = README.read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


EXAMPLES = _examples()


def test_the_readme_has_an_example_of_each_capability():
    code = "\n".join(EXAMPLES)
    for call in ("nascomp.search(", "nascomp.compress(", "nascomp.count_cost(", "nascomp.profile(", "nascomp.adapt(", "nascomp.train("):
        assert call in code, call


@pytest.mark.parametrize(
    "index", [pytest.param(i, marks=pytest.mark.slow) if "nascomp.search(" in code else i for i, code in enumerate(EXAMPLES)]
)
def test_readme_example_runs_as_written(index, tmp_path, monkeypatch, one_thread, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(EXAMPLES[index], f"README.md example {index + 1}", "exec"), {})
    printed = capsys.readouterr().out
    assert printed.strip(), "every example prints what it computed"
    if "pareto_front" in EXAMPLES[index]:
        assert "['a', 'b']" in printed
    if "count_cost(s3t)" in EXAMPLES[index]:
        assert "True" in printed


def test_no_file_points_to_notes_outside_the_repository():
    """Docs, code and records cite papers and this repository's own files, never the team's private design notes."""
    root = README.parent
    outside = [f"{'DESIGN'}.md", f"research{'/'}s3", f"research{'/'}compress", f"research{'/'}profiling", f"shared{'/'}research"]
    files = [
        p
        for d in ("nascomp", "tests", "benchmarks", "experiments", "docs", "scripts")
        for p in (root / d).rglob("*")
        if p.suffix in (".py", ".md", ".yaml", ".toml", ".sh", ".txt") and "runs" not in p.parts
    ]
    hits = [
        f"{p.relative_to(root)}: {needle}"
        for p in [*files, README, root / "DEVELOPING.md"]
        if p.is_file()
        for needle in outside
        if needle in p.read_text(errors="replace")
    ]
    assert len(files) > 100 and not hits, hits
