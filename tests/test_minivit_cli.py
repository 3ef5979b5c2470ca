"""`nascomp compress`: dry-run structure, a tiny end-to-end run whose output loads everywhere, clear errors."""

from __future__ import annotations

import json

import pytest
import timm
import torch

from nascomp.cli import main
from nascomp.core.io import save_tensors
from nascomp.models import save_model, timm_spec
from tests.conftest import TINY_SWIN, TINY_SWIN_FLAGS

SWIN = "swin_tiny_patch4_window7_224"


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("teacher")
    save_model(out, timm.create_model(SWIN, **TINY_SWIN), timm_spec(SWIN, **TINY_SWIN))
    return out


def _run(argv, capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_dry_run_reports_structure_and_cost(teacher_dir, capsys):
    code, out, _ = _run(["compress", str(teacher_dir), "--method", "minivit", "--dry-run", "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["share"] == [2, 4]
    assert doc["blocks_before"]["unique"] == 6 and doc["blocks_after"] == {
        "total": 6,
        "unique": 2,
        "per_stage": [{"layers": 2, "unique": 1}, {"layers": 4, "unique": 1}],
    }
    assert doc["params_after"] < 0.6 * doc["params_before"] and doc["macs_after"] > doc["macs_before"]
    assert doc["distill"]["layer_pairs"] == [[1, 1], [3, 3], [5, 5]]
    code, out, _ = _run(["compress", str(teacher_dir), "--method", "drop-blocks", "--keep", "1,1", "--dry-run", "--json"], capsys)
    assert json.loads(out)["blocks_after"]["total"] == 2


def test_compress_trains_and_the_output_loads_everywhere(teacher_dir, fake_fmnist, tmp_path, capsys):
    out_dir = tmp_path / "mini"
    code, out, err = _run(
        [
            "compress",
            str(teacher_dir),
            "--method",
            "minivit",
            "--data",
            "fashion-mnist",
            "--data-dir",
            str(fake_fmnist),
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--limit-train",
            "64",
            "--limit-val",
            "32",
            "--limit-test",
            "32",
            "--out",
            str(out_dir),
            "--quiet",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    result = json.loads(out)
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["compress"]["params_after"] == result["params_after"] == metrics["params"]
    assert json.loads((out_dir / "model.json").read_text())["spec"]["builder"] == "minivit"
    code, out, _ = _run(["flops", str(out_dir), "--json"], capsys)
    assert code == 0 and json.loads(out)["params"] == result["params_after"]


def test_clear_errors(teacher_dir, fake_fmnist, tmp_path, capsys):
    code, _, err = _run(["compress", "resnet18", "--dry-run"], capsys)
    assert code == 2 and "not supported" in err and "swin_tiny" in err
    code, _, err = _run(["compress", str(teacher_dir), "--share", "3", "--dry-run"], capsys)
    assert code == 2 and "does not divide stage 1's depth 2" in err
    wrong = tmp_path / "wrong.safetensors"
    save_tensors(wrong, timm.create_model(SWIN, **{**TINY_SWIN, "embed_dim": 8}).state_dict())
    code, _, err = _run(["compress", SWIN, *TINY_SWIN_FLAGS, "--checkpoint", str(wrong), "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and "does not match the model" in err and "--embed-dim" in err
    code, _, err = _run(["compress", SWIN, *TINY_SWIN_FLAGS, "--out", str(tmp_path / "y")], capsys)
    assert code == 2 and "--checkpoint PATH" in err
    code, _, err = _run(
        [
            "compress",
            str(teacher_dir),
            "--data",
            "fashion-mnist",
            "--data-dir",
            str(fake_fmnist),
            "--classes",
            "0,1",
            "--out",
            str(tmp_path / "z"),
        ],
        capsys,
    )
    assert code == 2 and "predicts 10 classes" in err
    other = tmp_path / "five-class-teacher"
    save_model(other, timm.create_model(SWIN, **{**TINY_SWIN, "num_classes": 5}), timm_spec(SWIN, **{**TINY_SWIN, "num_classes": 5}))
    code, _, err = _run(["compress", str(teacher_dir), "--teacher", str(other), "--dry-run"], capsys)
    assert code == 2 and "they must agree" in err


@pytest.mark.slow
def test_mini_swin_t_dry_run_matches_the_paper(capsys):
    """The issue's acceptance command: Mini-Swin-T has 12.00 M params and about 4.60 G MACs at 224 px."""
    code, out, _ = _run(["compress", SWIN, "--method", "minivit", "--dry-run", "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["share"] == [2, 2, 6, 2]
    assert doc["params_after"] / 1e6 == pytest.approx(12.00, abs=0.02)
    assert doc["gmacs_after"] == pytest.approx(4.60, abs=0.02) and doc["gmacs_before"] == pytest.approx(4.49, abs=0.02)
    assert doc["blocks_after"]["unique"] == 4 and doc["blocks_after"]["total"] == 12


@pytest.mark.slow
def test_export_of_a_compressed_directory_matches_pytorch(teacher_dir, fake_fmnist, tmp_path, capsys):
    out_dir = tmp_path / "mini"
    assert (
        main(
            [
                "compress",
                str(teacher_dir),
                "--data",
                "fashion-mnist",
                "--data-dir",
                str(fake_fmnist),
                "--epochs",
                "1",
                "--batch-size",
                "32",
                "--limit-train",
                "64",
                "--limit-val",
                "32",
                "--limit-test",
                "32",
                "--out",
                str(out_dir),
                "--quiet",
            ]
        )
        == 0
    )
    code, out, _ = _run(["export", str(out_dir), "--format", "onnx", "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["max_abs_diff"] <= 1e-4 and (out_dir / "model.onnx").is_file()
