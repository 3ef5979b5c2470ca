"""The API reference site (mkdocs.yml, docs/): every public name has an entry, and the site builds without warnings."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import nascomp

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
DIRECTIVE = re.compile(r"^:::\s*([\w.]+)\s*$", re.M)  # a mkdocstrings entry: "::: nascomp.nas.api.search"


def _entries() -> dict[str, list[str]]:
    """Public name -> the dotted paths of the docs/ entries that render it."""
    found: dict[str, list[str]] = {}
    for page in sorted(DOCS.rglob("*.md")):
        for path in DIRECTIVE.findall(page.read_text(encoding="utf-8")):
            found.setdefault(path.rsplit(".", 1)[-1], []).append(path)
    return found


def _resolve(path: str):
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def test_every_public_name_has_a_reference_entry():
    entries = _entries()
    public = [n for n in nascomp.__all__ if not n.startswith("__")]  # __version__ is stated on the reference index
    missing = [n for n in public if n not in entries]
    assert not missing, f"no `::: module.NAME` entry in docs/ for {missing}; add one to the right docs/reference/ page"
    for name in public:
        objects = {id(_resolve(p)) for p in entries[name]}
        assert objects == {id(getattr(nascomp, name))}, f"docs/ entries {entries[name]} do not all document nascomp.{name}"


def test_every_reference_entry_resolves():
    for paths in _entries().values():
        for path in paths:
            _resolve(path)  # an entry for a name that moved or was removed fails here, not only in mkdocs


def test_reference_pages_are_in_the_nav():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in sorted((DOCS / "reference").glob("*.md")):
        assert f"reference/{page.name}" in config, f"{page} is not in mkdocs.yml's nav"


def test_site_builds_strict(tmp_path):  # about 4 s: part of the fast suite
    mkdocs = Path(sys.executable).with_name("mkdocs")
    if not mkdocs.exists() and shutil.which("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    exe = str(mkdocs) if mkdocs.exists() else shutil.which("mkdocs")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # mkdocs-material's end-of-life banner, not a build warning
    proc = subprocess.run(
        [exe, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert not re.search(r"^(WARNING|ERROR)\b", proc.stderr, re.M), proc.stderr[-4000:]
    assert (tmp_path / "site" / "reference" / "search" / "index.html").is_file()
