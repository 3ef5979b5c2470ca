"""DistributedDataParallel on CPU: two gloo processes under torchrun stay in lock-step."""

import json
import os
import subprocess
import sys
from pathlib import Path


def test_two_process_gloo_training_keeps_replicas_identical(fake_fmnist, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(Path(__file__).with_name("ddp_worker.py")),
        str(fake_fmnist),
        str(out),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["digest"] == ranks[1]["digest"]  # gradients were all-reduced every step
    assert ranks[0]["world"] == 2 and ranks[0]["val_top1"] == ranks[1]["val_top1"]  # evaluation all-reduced too
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    # 256 training images over 2 ranks at batch 32: 4 steps per epoch per rank
    assert metrics["config"]["batch_size"] == 32 and len(metrics["history"]) == 2
