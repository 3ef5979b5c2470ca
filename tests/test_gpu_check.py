"""benchmarks/gpu/check.sh in its dry mode: every stage of the GPU check at toy sizes on the CPU, so it cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_exercises_every_stage(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path), "NASCOMP_GPU_CHECK_DRY": "1", "OMP_NUM_THREADS": "2"}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu" / "check.sh")], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    doc = json.loads((tmp_path / "gpu_check.json").read_text())
    assert doc["dry_run"] and "not GPU numbers" in doc["measured_on"]
    stages = doc["stages"]
    assert set(stages) == {"amp_train", "loader", "latency", "search"} and not any("error" in s for s in stages.values())
    assert stages["amp_train"]["ratio_supernet_vs_timm"] > 0 and stages["loader"]["ratio_nascomp_vs_timm"] > 0
    assert set(stages["latency"]["latency"]) == {f"{m}@{b}" for m in ("swin-t", "s3-t", "deit-s") for b in (1, 2)}
    assert all(e["kind"] in ("measured", "estimated") for e in stages["latency"]["energy"].values())
    assert stages["search"]["finished"] and stages["search"]["best"] is not None


def test_gpu_check_refuses_to_run_without_a_gpu_outside_dry_mode(tmp_path):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OUT": str(tmp_path)}
    env.pop("NASCOMP_GPU_CHECK_DRY", None)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu" / "check.py")], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2 and "no CUDA device" in proc.stderr and not (tmp_path / "gpu_check.json").exists()
