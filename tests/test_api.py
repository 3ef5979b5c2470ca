"""The public API: what `import nascomp` offers, that it documents itself, and that the CLI starts without torch."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import nascomp

FUNCTIONS = [
    "create_model",
    "load_space",
    "count_cost",
    "search",
    "train",
    "distill",
    "compress",
    "adapt",
    "profile",
    "pareto_front",
    "export",
    "train_supernet",
    "evaluate_supernet",
    "extract_subnet",
    "build_latency_table",
    "validate_latency_table",
]


def test_all_lists_exactly_the_lazy_names():
    assert set(nascomp.__all__) == set(nascomp._API) | {"__version__"}
    for name in nascomp.__all__:
        assert getattr(nascomp, name) is not None


@pytest.mark.parametrize("name", FUNCTIONS)
def test_public_functions_document_their_arguments_and_result(name):
    fn = getattr(nascomp, name)
    doc = inspect.getdoc(fn) or ""
    assert "Args:" in doc and "Returns:" in doc, f"nascomp.{name} needs Args/Returns"
    documented = doc.split("Args:", 1)[1].split("Returns:", 1)[0]
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        assert param.name in documented, f"nascomp.{name}: argument {param.name!r} is not documented"


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True).stderr


def test_import_nascomp_loads_no_torch():
    loaded = _run("import nascomp")
    assert " torch" not in loaded and " timm" not in loaded


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["search", "--help"],
        ["train", "--help"],
        ["compress", "--help"],
        ["profile", "--help"],
        ["supernet", "train", "--help"],
        ["adapt", "--help"],
    ],
)
def test_cli_help_loads_no_torch(argv):
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "nascomp", *argv], capture_output=True, text=True)
    assert proc.returncode == 0 and "usage: nascomp" in proc.stdout
    modules = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line]
    assert not [m for m in modules if m.split(".")[0] in ("torch", "timm", "numpy")], "help must not import heavy libraries"


def test_help_of_the_search_function_describes_the_call():
    text = subprocess.run(
        [sys.executable, "-c", "import nascomp; help(nascomp.search)"],
        capture_output=True,
        text=True,
        check=True,
        env={"PAGER": "cat", "PATH": "/usr/bin:/bin"},
    ).stdout
    assert "search(space" in text and "budget" in text and "SearchResult" in text
