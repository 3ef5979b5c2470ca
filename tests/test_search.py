"""`nascomp search` end to end: outputs, resume, user errors; slow: the smoke preset on s3-vit and a real kill."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from nascomp import search
from nascomp.cli import main
from nascomp.core.errors import NascompError
from nascomp.core.io import read_json
from nascomp.cost.arch_cost import arch_cost
from nascomp.nas import PRESETS, default_out_dir
from nascomp.nas.supernet import load_supernet
from nascomp.spaces import Arch, SearchSpace
from tests.conftest import TINY_SPACE

ROOT = Path(__file__).resolve().parents[1]
TINY = {**TINY_SPACE, "name": "tiny-search"}
RESULT_FILES = ("best_arch.json", "candidates.csv", "pareto.json", "evolution/history.json", "search/result.json", "compare/result.json")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def tiny_space(tmp_path) -> Path:
    path = tmp_path / "tiny-search.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def _budget(space_path: Path) -> str:
    space = SearchSpace.load(space_path)
    lo, hi = (arch_cost(a, 16, in_chans=1, num_classes=10).macs for a in (space.smallest(), space.largest()))
    return f"{(lo + hi) / 2:.0f}macs"


def _search(space_path: Path, data_dir: Path, out: Path, resume: bool = False, **overrides) -> dict:
    """The smoke preset on the tiny space at 16 px, through the public API; returns best_arch.json's summary."""
    result = search(
        str(space_path),
        _budget(space_path),
        preset="smoke",
        data="fashion-mnist",
        data_dir=str(data_dir),
        in_chans=1,
        out=out,
        resume=resume,
        quiet=True,
        **{"resolution": 16, "limit_test": 50, **overrides},
    )
    assert result.run_dir == out and result.best_arch == Arch.from_dict(result.summary["arch"])
    return result.summary


def test_search_writes_every_output_and_resumes_to_the_same_result(tiny_space, fake_fmnist, tmp_path):
    out = tmp_path / "run"
    summary = _search(tiny_space, fake_fmnist, out, evolve_lr=3e-4)
    for name in (
        *RESULT_FILES,
        "pareto.png",
        "report.md",
        "run.json",
        "timings.json",
        "evolution/et_steps.png",
        "evolution/step-0/space.yaml",
        "evolution/step-1/space.yaml",
        "evolution/step-1/et.json",
        "finalists/rank-1/model/model.safetensors",
        "finalists/rank-2/result.json",
    ):
        assert (out / name).is_file(), name
    best = read_json(out / "best_arch.json")
    assert best == summary
    arch = Arch.from_dict(best)  # best_arch.json is accepted wherever an arch JSON is
    assert best["macs"] == arch_cost(arch, 16, in_chans=1, num_classes=10).macs <= best["budget"]["limit"]
    assert best["budget"]["metric"] == "macs" and best["budget"]["within"]
    # one truth for costs: the file records the model it priced, so counting it again needs no options and agrees
    assert (best["num_classes"], best["in_chans"], best["resolution"]) == (10, 1, 16)
    assert main(["flops", str(out / "best_arch.json"), "--json"]) == 0
    import nascomp

    assert (nascomp.count_cost(str(out / "best_arch.json")).params, nascomp.count_cost(arch).macs) == (best["params"], best["macs"])
    assert SearchSpace.load(out / "evolution" / "step-1" / "space.yaml").contains(arch)
    assert 0 <= best["test_top1"] <= 100
    # the winner is the best finalist on the selection images, which no candidate was scored on during the search
    finals = [read_json(out / "finalists" / f"rank-{k}" / "result.json") for k in (1, 2)]
    candidates = read_json(out / "search/result.json")["candidates"]
    assert best["val_top1"] == max(f["val"]["top1"] for f in finals) and best["selection"]["split"] == "selection"
    assert 0 < best["selection"]["images"] == finals[0]["val"]["n"] <= PRESETS["smoke"].select_val  # the fake data has fewer
    assert [f["search_val_top1"] for f in finals] == sorted((r["val_top1"] for r in candidates), reverse=True)[:2]
    gap = best["selection"]["test_minus_selected"]
    assert gap["points"] == pytest.approx(best["test_top1"] - best["val_top1"]) and gap["ci95"][0] < gap["points"] < gap["ci95"][1]
    compare = best["compare"]  # the winner and a hand-designed arch of the budget, stand-alone, smoke's seeds
    assert set(compare["archs"]) == {"found", "hand-designed"} and compare["archs"]["hand-designed"]["cost"] <= best["budget"]["limit"]
    assert all(len(a["runs"]) == PRESETS["smoke"].compare_seeds for a in compare["archs"].values())
    assert "## Stand-alone check" in (out / "report.md").read_text()
    history = read_json(out / "evolution" / "history.json")["steps"]
    assert len(history) == 2 and len(history[0]["decisions"]) == 12 and history[1]["decisions"] == []
    legs = [read_json(out / "supernet" / f"step-{t}" / "metrics.json")["config"]["lr"] for t in (0, 1)]
    assert legs == [PRESETS["smoke"].supernet.train.lr, 3e-4]  # evolution steps train at --evolve-lr
    assert (out / "candidates.csv").read_text().count("\n") == len(read_json(out / "search/result.json")["candidates"]) + 1
    # weights nothing downstream reads are gone, their metrics stay; the final supernet and the finalists are kept
    assert not list((out / "supernet" / "step-0").glob("model.*")) and (out / "supernet" / "step-0" / "metrics.json").is_file()
    assert load_supernet(out / "supernet" / "step-1").space.to_dict() == read_json(out / "evolution" / "step-1" / "et.json")["space"]
    runs = [out / "compare" / f"{name}-seed{s}" for name in ("found", "hand-designed") for s in range(PRESETS["smoke"].compare_seeds)]
    assert all((r / "metrics.json").is_file() and not list(r.glob("model.*")) for r in runs)

    before = {name: (out / name).read_bytes() for name in RESULT_FILES}
    for name in ("search", "finalists", "best_arch.json", "candidates.csv", "evolution/step-1/et.json"):
        path = out / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert _search(tiny_space, fake_fmnist, out, resume=True, evolve_lr=3e-4) == summary
    assert {name: (out / name).read_bytes() for name in RESULT_FILES} == before

    with pytest.raises(
        NascompError, match="already holds a search run; choose a new folder, add resume=True to continue it, or overwrite=True"
    ):
        _search(tiny_space, fake_fmnist, out, evolve_lr=3e-4)
    with pytest.raises(NascompError, match="other settings"):
        _search(tiny_space, fake_fmnist, out, resume=True, evolve_lr=3e-4, et_samples=9)
    assert (out / "best_arch.json").is_file()  # a refused resume leaves the run as it was
    (out / "evolution" / "step-0" / "et.json").unlink()  # step 0's table cannot be re-made: its supernet's weights are gone
    with pytest.raises(NascompError, match="step 0's supernet weights were deleted once step 1's were saved"):
        _search(tiny_space, fake_fmnist, out, resume=True, evolve_lr=3e-4)


def test_pareto_objective_and_retraining(tiny_space, fake_fmnist, tmp_path):
    summary = _search(
        tiny_space, fake_fmnist, tmp_path / "run", evolve_steps=0, objective="pareto", retrain_epochs=1, retrain_from="scratch", top=1
    )
    front = read_json(tmp_path / "run" / "pareto.json")["front"]
    finalists = sorted((tmp_path / "run" / "finalists").iterdir())
    assert len(finalists) == len(front) >= 1  # pareto mode finishes the whole front (up to 10)
    metrics = read_json(finalists[0] / "model" / "metrics.json")
    assert metrics["epochs"] == 1 and "test" in metrics
    assert summary["accuracy_note"].startswith("retrained 1 epoch(s) from scratch")


def test_default_out_dir_numbers_new_runs_and_resumes_the_newest(tmp_path):
    """Naming the run directory needs only the space, budget, preset and seed (no data)."""
    base = tmp_path / "s3-vit-4gflops-cpu-seed0"
    assert default_out_dir("s3-vit", "4gflops", "cpu", 0, False, tmp_path) == base
    base.mkdir()
    assert default_out_dir("s3-vit", "4gflops", "cpu", 0, False, tmp_path) == tmp_path / "s3-vit-4gflops-cpu-seed0-2"
    assert default_out_dir("s3-vit", "4gflops", "cpu", 0, True, tmp_path) == base
    (tmp_path / "s3-vit-4gflops-cpu-seed0-2").mkdir()
    assert default_out_dir("s3-vit", "4gflops", "cpu", 0, True, tmp_path) == tmp_path / "s3-vit-4gflops-cpu-seed0-2"
    assert default_out_dir("s3-vit", "25ms@mobile-cpu", "cpu", 0, False, tmp_path).name == "s3-vit-25ms-at-mobile-cpu-cpu-seed0"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--space", "s3-vit", "--budget", "1gflops"], r"below the cheapest member of search space 's3-vit'.*1\.60"),
        (["--space", "no-such-space", "--budget", "4gflops"], r"unknown search space 'no-such-space'.*available: s3-vit, s3-vit-cpu"),
        (["--space", "s3-vit", "--budget", "4 gigaflops"], r"cannot parse budget.*4gflops.*4e9macs.*25mparams.*25ms@mobile-cpu"),
        (["--space", "s3-vit", "--budget", "4gflops", "--preset", "huge"], r"unknown preset 'huge'"),
        (["--space", "s3-vit", "--budget", "4gflops", "--alpha", "0"], r"--alpha must lie in \(0, 1\]"),
    ],
)
def test_user_errors_exit_2_with_one_line_and_no_output(argv, message, tmp_path, capsys):
    import re

    out = tmp_path / "run"
    assert main(["search", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and re.search(message, err), err
    assert not out.exists()


# --- slow: the real command on s3-vit ----------------------------------------------------------------------------


def _nascomp(*args: str) -> list[str]:
    return [sys.executable, "-m", "nascomp", "search", "--space", "s3-vit", "--budget", "4gflops", "--preset", "smoke", *args]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("smoke") / "run"
    proc = subprocess.run(_nascomp("--out", str(out), "--quiet"), env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "of the 4 G budget (4gflops; papers' FLOPs = MACs)" in proc.stdout
    return out


@pytest.mark.slow
def test_smoke_preset_meets_the_budget_at_224(smoke_run):
    best = read_json(smoke_run / "best_arch.json")
    assert best["resolution"] == 224 and best["budget"]["unit"] == "MACs"
    assert best["macs"] <= 4e9
    assert best["macs"] == arch_cost(Arch.from_dict(best), 224, in_chans=3, num_classes=10).macs
    assert (smoke_run / "pareto.png").stat().st_size > 10_000
    assert SearchSpace.load("s3-vit").name in (smoke_run / "report.md").read_text()


@pytest.mark.slow
def test_best_arch_json_is_an_arch_for_other_commands(smoke_run, capsys):
    best = read_json(smoke_run / "best_arch.json")
    capsys.readouterr()
    assert main(["flops", str(smoke_run / "best_arch.json"), "--json"]) == 0  # classes and channels come from the file
    report = json.loads(capsys.readouterr().out)
    assert (report["macs"], report["params"], report["resolution"]) == (best["macs"], best["params"], 224)


@pytest.mark.slow
def test_killed_search_resumes_to_the_uninterrupted_result(smoke_run, tmp_path):
    """SIGKILL while the evolved space's supernet trains; --resume must reproduce the uninterrupted run exactly."""
    out = tmp_path / "run"
    proc = subprocess.Popen(_nascomp("--out", str(out), "--quiet"), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    marker = out / "evolution" / "step-1" / "space.yaml"  # written when step 0 is done, before step 1 trains
    deadline = time.time() + 300
    while not marker.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    time.sleep(2.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "best_arch.json").exists()
    resumed = subprocess.run(_nascomp("--out", str(out), "--quiet", "--resume"), env=_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    for name in RESULT_FILES:
        a, b = (smoke_run / name).read_text(), (out / name).read_text()
        assert a.replace(str(smoke_run), "RUN") == b.replace(str(out), "RUN"), name


@pytest.mark.slow
def test_default_search_moves_no_dimension_its_proxy_collapses(fake_fmnist, tmp_path):
    """The cpu preset (32 px proxy) on s3-vit, shrunk in size only, with a rule that moves every slope it gets."""
    space = SearchSpace.load("s3-vit")
    collapsed = space.collapsed(PRESETS["cpu"].supernet.resolution)
    assert {(c.stage, c.dimension) for c in collapsed} == {(1, "window"), (2, "window"), (3, "heads"), (3, "qkv_dim")}
    result = search(
        "s3-vit",
        "4gflops",
        data="fashion-mnist",
        data_dir=str(fake_fmnist),
        out=tmp_path / "run",
        quiet=True,
        epochs=1,
        evolve_epochs=1,
        limit_train=64,
        limit_val=32,
        select_val=16,
        limit_test=32,
        et_samples=12,
        tau=0.0,
        alpha=1.0,
        permutations=99,
        population=6,
        generations=1,
        parents=2,
        mutations=3,
        crossovers=3,
        top=2,
        compare_epochs=0,
    )
    out = result.run_dir
    # users read stages from 1 in every file, as in every printed line
    assert [(c["stage"], c["dimension"], c["fixed"]) for c in result.collapsed] == [(c.stage + 1, c.dimension, c.fixed) for c in collapsed]
    steps = read_json(out / "evolution" / "history.json")["steps"]
    moved = [(d["stage"] - 1, d["dimension"]) for s in steps for d in s["decisions"] if d["action"] != "keep"]
    assert moved  # the rule did move live dimensions
    archs = [
        Arch.from_dict(r["arch"]) for s in range(len(steps)) for r in read_json(out / "evolution" / f"step-{s}" / "et.json")["samples"]
    ]
    archs += [Arch.from_dict(r["arch"]) for r in read_json(out / "search" / "result.json")["candidates"]] + [result.best_arch]
    for c in collapsed:
        assert (c.stage, c.dimension) not in moved
        assert all(SearchSpace.from_dict(s["space"]).choices(c.stage, c.dimension) == (c.fixed,) for s in steps)
        assert {getattr(b, c.dimension) for a in archs for b in a.stages[c.stage].blocks} == {c.fixed}
        record = next(d for d in steps[0]["decisions"] if (d["stage"], d["dimension"]) == (c.stage + 1, c.dimension))
        assert record["collapsed"] and f"fixed to {c.fixed}" in record["reason"]
    # collapse re-derived on every evolved space: no step's space merges choices at the proxy that the pinned start did not
    start = {(st, d): g for st, d, g, _ in space.pinned(32).indistinct(32)}
    for step in steps:
        assert all(start.get((st, d)) == g for st, d, g, _ in SearchSpace.from_dict(step["space"]).indistinct(32))
    assert "## Not searched: dimensions the proxy collapses" in (out / "report.md").read_text()


def test_a_data_bundle_is_cut_to_the_preset_like_a_dataset_name(tiny_space, fake_fmnist, tmp_path):
    """Issue 19: a DataBundle ignored the preset (the smoke search used all 1,212 training images and took 947 s)."""
    import nascomp

    bundle = nascomp.load_data("fashion-mnist", str(fake_fmnist))
    smoke = PRESETS["smoke"]
    assert len(bundle.train) > smoke.supernet.limit_train
    result = search(
        str(tiny_space),
        _budget(tiny_space),
        preset="smoke",
        data=bundle,
        in_chans=1,
        out=tmp_path / "run",
        quiet=True,
        resolution=16,
        limit_test=50,
    )
    used = read_json(tmp_path / "run" / "run.json")["settings"]["data"]
    assert used["train"] == smoke.supernet.limit_train and used["val"] == min(len(bundle.val), smoke.supernet.limit_val + smoke.select_val)
    assert used["test"] == 50 and result.summary["selection"]["images"] <= smoke.select_val
