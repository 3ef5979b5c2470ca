"""`--logger` and report.html wired into the commands: a training run's curves continue across a kill and resume
with no (tag, step) twice; a search logs the supernet loss, the E-T error per evolution step and the best so far per
generation; search, compress and profile end with a report page that loads cleanly in headless Chromium."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import timm
import torch
import yaml

import nascomp
from nascomp.cli import main
from nascomp.core import runlog
from nascomp.core.runlog import read_scalars
from nascomp.cost.arch_cost import arch_cost
from nascomp.models import save_model, timm_spec
from nascomp.report import write_report
from nascomp.spaces import SearchSpace
from tests.conftest import TINY_SPACE, TINY_VIT
from tests.test_report_html import CHROMIUM, Browser, check_page

needs_tensorboard = pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is None, reason="the tensorboard package is not installed (pip install 'nascomp[tensorboard]')"
)
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"{CHROMIUM} is not installed (apt-get install chromium)")

SWIN = "swin_tiny_patch4_window7_224"
TINY_SWIN = dict(img_size=32, patch_size=4, window_size=4, embed_dim=16, depths=(2, 2), num_heads=(1, 2), in_chans=1, num_classes=10)


def scalar_events(folder: Path) -> list[tuple[str, int]]:
    """Every (tag, step) of the scalar events in ``folder/tb`` as written, duplicates kept."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    return [
        (v.tag, e.step)
        for path in sorted((folder / runlog.TB_DIR).glob("events.out.tfevents.*"))
        for e in EventFileLoader(str(path)).Load()
        for v in e.summary.value
        if v.metadata.plugin_data.plugin_name == "scalars"
    ]


def steps(scalars: dict, tag: str) -> list[int]:
    return [s for s, _ in scalars[tag]]


# --- training: curves, and a resume that continues them ------------------------------------------------------------


@needs_tensorboard
def test_a_killed_and_resumed_train_continues_its_curves_with_no_step_twice(fake_fmnist, tmp_path, monkeypatch, one_thread):
    data = nascomp.load_data("fashion-mnist", str(fake_fmnist), limit_train=96, limit_val=32, limit_test=32)
    out, epochs, per_epoch = tmp_path / "run", 3, 3  # 96 images / batch 32
    kill_at = 2 * per_epoch + 2  # in epoch 3, after its first two steps were logged; the last checkpoint is epoch 2's
    real_clip, calls = torch.nn.utils.clip_grad_norm_, []

    def dies(*args, **kwargs):
        calls.append(1)
        if len(calls) == kill_at + 1:
            raise KeyboardInterrupt
        return real_clip(*args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", dies)
    recipe = dict(epochs=epochs, batch_size=32, augment=False, quiet=True, logger="tensorboard")
    with pytest.raises(KeyboardInterrupt):
        nascomp.train(nascomp.create_model("vit_tiny_patch16_224", **TINY_VIT), data, out, **recipe)
    first = scalar_events(out)
    assert ("train/loss", kill_at - 1) in first and ("train/loss", kill_at) not in first  # the session logged into epoch 3
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", real_clip)
    nascomp.train(nascomp.create_model("vit_tiny_patch16_224", **TINY_VIT), data, out, resume=True, **recipe)

    events = scalar_events(out)
    assert [key for key, n in Counter(events).items() if n > 1] == []  # steps 6 and 7 were dropped, then logged again
    scalars = read_scalars(out)
    for tag in ("train/loss", "train/lr", "train/images_per_s"):
        assert steps(scalars, tag) == list(range(epochs * per_epoch)), tag  # continuous
    assert all(v > 0 for _, v in scalars["train/images_per_s"])
    ends = [(e + 1) * per_epoch - 1 for e in range(epochs)]
    assert steps(scalars, "val/top1") == steps(scalars, "train/epoch_loss") == ends
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert [v for _, v in scalars["val/top1"]] == pytest.approx([h["val_top1"] for h in history])
    assert len(list((out / runlog.TB_DIR).glob("events.out.tfevents.*"))) == 2  # one file per session


def test_logger_none_writes_nothing_and_the_log_line_has_an_eta(fake_fmnist, tmp_path, capsys, one_thread):
    data = nascomp.load_data("fashion-mnist", str(fake_fmnist), limit_train=64, limit_val=32, limit_test=32)
    nascomp.train(
        nascomp.create_model("vit_tiny_patch16_224", **TINY_VIT),
        data,
        tmp_path / "run",
        epochs=2,
        batch_size=32,
        augment=False,
        logger="none",
    )
    assert not (tmp_path / "run" / runlog.TB_DIR).exists()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2 and "ETA " in lines[0] and lines[-1].endswith("ETA 0s)")


# --- bad --logger values: one line, before any work ---------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "vit_tiny_patch16_224", "--logger", "tensorbord"],
        ["search", "--space", "s3-vit", "--budget", "4gflops", "--logger", "tensorboard,nope"],
        ["supernet", "train", "--space", "s3-vit-cpu", "--logger", "tb"],
        ["compress", SWIN, "--method", "shrink", "--budget", "2gflops", "--logger", "wandbb"],
        ["adapt", "vit_tiny_patch16_224", "--method", "lora", "--logger", "mlflw"],
    ],
)
def test_an_unknown_logger_is_one_line_naming_the_valid_ones(argv, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown logger") and "choose from tensorboard, wandb, mlflow, none" in err and "\n" not in err
    assert not (tmp_path / "x").exists()


def test_a_missing_backend_names_its_pip_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runlog, "_installed", lambda module: module != "mlflow")
    assert main(["train", "vit_tiny_patch16_224", "--logger", "tensorboard,mlflow", "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.strip() == ("error: the mlflow logger needs the mlflow package: pip install 'nascomp[mlflow]'")
    with pytest.raises(nascomp.NascompError, match=r"pip install 'nascomp\[mlflow\]'"):
        nascomp.search("s3-vit", "4gflops", preset="smoke", out=tmp_path / "y", logger="mlflow")


def test_a_bad_logger_fails_before_torch_loads(tmp_path):
    code = (
        "import sys; from nascomp.cli import main; rc = main(['search', '--space', 's3-vit', '--budget', '4gflops', '--logger', 'x', "
        f"'--out', {str(tmp_path / 'x')!r}]); print(rc, 'torch' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["2", "False"] and run.stderr.startswith("error: unknown logger 'x'")


# --- a real (tiny) search: the must-show run ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def search_run(fake_fmnist, tmp_path_factory) -> Path:
    """``nascomp search --preset smoke --logger tensorboard`` on the tiny space at 16 px (the fast form of the s3-vit smoke run)."""
    root = tmp_path_factory.mktemp("search")
    space = root / "tiny-search.yaml"
    space.write_text(yaml.safe_dump({**TINY_SPACE, "name": "tiny-search"}))
    s = SearchSpace.load(space)
    lo, hi = (arch_cost(a, 16, in_chans=1, num_classes=10).macs for a in (s.smallest(), s.largest()))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = main(
            [
                "search",
                "--space",
                str(space),
                "--budget",
                f"{(lo + hi) / 2:.0f}macs",
                "--preset",
                "smoke",
                "--data-dir",
                str(fake_fmnist),
                "--in-chans",
                "1",
                "--resolution",
                "16",
                "--limit-test",
                "50",
                "--compare-epochs",
                "0",
                "--logger",
                "tensorboard",
                "--quiet",
                "--out",
                str(root / "R"),
            ]
        )
    finally:
        torch.set_num_threads(before)
    assert code == 0
    return root / "R"


@needs_tensorboard
def test_search_logs_supernet_loss_et_error_per_step_and_best_so_far_per_generation(search_run):
    run = json.loads((search_run / "run.json").read_text())["settings"]["resolved"]
    evolve_steps, generations = run["evolve_steps"], run["evolution"]["generations"]
    supernet = read_scalars(search_run / "supernet" / "step-0")
    assert {"train/loss", "train/lr", "train/images_per_s", "supernet/sampled_macs", "val/top1"} <= set(supernet)
    assert all(v > 0 for _, v in supernet["supernet/sampled_macs"])
    evolution = read_scalars(search_run / "evolution")
    history = json.loads((search_run / "evolution" / "history.json").read_text())["steps"]
    assert steps(evolution, "evolution/Q") == list(range(evolve_steps + 1))
    assert [v for _, v in evolution["evolution/Q"]] == pytest.approx([h["Q"] for h in history])
    assert any(tag.startswith("evolution/slope/stage") for tag in evolution)
    assert any(tag.startswith("evolution/p/stage") for tag in evolution)
    search = read_scalars(search_run / "search")
    assert steps(search, "search/best_top1") == steps(search, "search/hypervolume") == list(range(generations + 1))
    best = [v for _, v in search["search/best_top1"]]
    assert best == sorted(best) and best[-1] == pytest.approx(max(float(r["val_top1"]) for r in _candidates(search_run)))
    hv = [v for _, v in search["search/hypervolume"]]
    assert hv == sorted(hv) and hv[0] > 0
    for folder in (search_run / "supernet" / "step-0", search_run / "evolution", search_run / "search"):
        assert [k for k, n in Counter(scalar_events(folder)).items() if n > 1] == [], folder
    assert (search_run / "report.html").is_file()


@pytest.mark.slow
@needs_tensorboard
def test_the_s3_vit_smoke_search_logs_and_reports(fake_fmnist, tmp_path):
    """The issue's command itself: ``nascomp search --space s3-vit --budget 4gflops --preset smoke --logger tensorboard``."""
    out = tmp_path / "R"
    assert (
        main(
            [
                "search",
                "--space",
                "s3-vit",
                "--budget",
                "4gflops",
                "--preset",
                "smoke",
                "--data-dir",
                str(fake_fmnist),
                "--logger",
                "tensorboard",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    test_search_logs_supernet_loss_et_error_per_step_and_best_so_far_per_generation(out)


def _candidates(run: Path) -> list[dict]:
    return json.loads((run / "search" / "result.json").read_text())["candidates"]


# --- a real (tiny) compress run, and a profile ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def compress_run(fake_fmnist, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("compress")
    torch.manual_seed(0)
    save_model(root / "teacher", timm.create_model(SWIN, **TINY_SWIN), timm_spec(SWIN, **TINY_SWIN))
    code = main(
        [
            "compress",
            str(root / "teacher"),
            "--method",
            "minivit",
            "--data",
            "fashion-mnist",
            "--data-dir",
            str(fake_fmnist),
            "--epochs",
            "2",
            "--batch-size",
            "32",
            "--limit-train",
            "64",
            "--limit-val",
            "32",
            "--limit-test",
            "32",
            "--logger",
            "tensorboard",
            "--quiet",
            "--out",
            str(root / "mini"),
        ]
    )
    assert code == 0
    return root / "mini"


@needs_tensorboard
def test_compress_logs_its_training_and_its_result_row_and_writes_a_report(compress_run):
    scalars = read_scalars(compress_run)
    metrics = json.loads((compress_run / "metrics.json").read_text())
    last = metrics["optimizer_steps"]
    assert steps(scalars, "train/loss") == list(range(last))
    assert scalars["compress/test_top1"] == [(last, pytest.approx(metrics["test"]["top1"]))]
    assert scalars["compress/params_after"] == [(last, metrics["compress"]["params_after"])]
    assert (compress_run / "report.html").is_file()


def test_profile_out_writes_the_html_beside_the_json(tmp_path):
    save_model(tmp_path / "tiny", timm.create_model("vit_tiny_patch16_224", **TINY_VIT), timm_spec("vit_tiny_patch16_224", **TINY_VIT))
    out = tmp_path / "profile.json"
    assert (
        main(
            [
                "profile",
                str(tmp_path / "tiny"),
                "--target",
                "cpu",
                "--runtime",
                "torch",
                "--warmup",
                "1",
                "--repeat",
                "3",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    html = (tmp_path / "profile.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and json.loads(out.read_text())["model"] in html


def test_a_report_that_fails_is_a_warning_not_a_failed_run(tmp_path, capsys):
    (tmp_path / "best_arch.json").write_text("{damaged")
    assert write_report(tmp_path) is None
    err = capsys.readouterr().err
    assert "warning: no report.html" in err and f"nascomp report {tmp_path}" in err


@needs_chromium
def test_real_search_and_compress_reports_work_in_chromium(search_run, compress_run):
    browser = Browser()
    try:
        for run, charts in ((search_run, 5), (compress_run, 2)):
            report = check_page(browser, run / "report.html")
            assert report["problems"] == [], run
            assert report["charts"] >= charts and report["tables"] >= 1 and report["sorted"] >= 3, (run, report)
    finally:
        browser.close()
