"""`nascomp search --preset full`, shrunk by its own overrides, end to end on a 224 px JPEG image folder.

The full preset's recipe (timm augmentation decoded in DataLoader workers, Mixup/CutMix, repeated augmentation,
batch-scaled learning rate, DeiT retraining of the finalists) runs unchanged; only sizes shrink: one epoch per
leg, a few dozen images, a handful of subnets and candidates. The space is a two-stage 224 px space small
enough for 2 CPU cores (s3-vit itself is Swin-T sized: minutes per step at 224 px on this machine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nascomp.cli import main
from nascomp.core.io import read_json
from nascomp.cost.arch_cost import arch_cost
from nascomp.nas import PRESETS
from nascomp.spaces import SearchSpace
from tests.synthetic import synthetic_tree

ROOT = Path(__file__).resolve().parents[1]
SPACE_224 = {
    "name": "tiny-224",
    "resolution": 224,
    "patch_size": 8,
    "stages": [
        {"depth": [1, 2], "embed_dim": [16, 24], "heads": [1, 2], "qkv_dim": [16], "mlp_ratio": [1.0, 2.0], "window": [7]},
        {"depth": [1, 2], "embed_dim": [24, 32], "heads": [1, 2], "qkv_dim": [16, 32], "mlp_ratio": [1.0, 2.0], "window": [7, 14]},
    ],
}
SHRINK = [
    "--supernet-epochs",
    "1",
    "--evolve-epochs",
    "1",
    "--batch-size",
    "8",
    "--et-samples",
    "6",
    "--population",
    "4",
    "--generations",
    "1",
    "--parents",
    "2",
    "--mutations",
    "2",
    "--crossovers",
    "2",
    "--top",
    "2",
    "--retrain-epochs",
    "1",
    "--limit-train",
    "48",
    "--limit-val",
    "16",
    "--limit-test",
    "16",
]


@pytest.fixture(scope="module")
def images_224(tmp_path_factory) -> Path:
    return synthetic_tree(tmp_path_factory.mktemp("jpeg224"), 60, 16, 224)


def _command(tmp_path: Path, images: Path, out: Path, workers: int) -> list[str]:
    space = tmp_path / "tiny-224.yaml"
    space.write_text(yaml.safe_dump(SPACE_224))
    s = SearchSpace.load(space)
    lo, hi = (arch_cost(a, 224, num_classes=10).macs for a in (s.smallest(), s.largest()))
    return [
        "search",
        "--space",
        str(space),
        "--budget",
        f"{(lo + hi) // 2}macs",
        "--preset",
        "full",
        "--data",
        f"imagefolder:{images}",
        "--out",
        str(out),
        "--workers",
        str(workers),
        "--quiet",
        *SHRINK,
    ]


def _check_run(out: Path, world: int) -> None:
    best = read_json(out / "best_arch.json")
    assert best["budget"]["within"] and best["resolution"] == 224
    full = PRESETS["full"]
    for step in range(full.evolve_steps + 1):
        m = read_json(out / "supernet" / f"step-{step}" / "metrics.json")
        cfg = m["config"]
        assert m["world_size"] == world and m["data"]["dataset"].startswith("imagefolder:")
        assert (cfg["mixup"], cfg["cutmix"], cfg["repeated_aug"], cfg["random_erasing"]) == (0.8, 1.0, 3, 0.25)
        assert cfg["auto_augment"] == "rand-m9-mstd0.5-inc1" and cfg["grad_clip"] is None and cfg["interpolation"] == "bicubic"
        assert m["effective_lr"] == pytest.approx(cfg["lr"] * 8 * world / 512)  # lr per 512 images, scaled to the global batch
    for rank in (1, 2):
        finalist = read_json(out / "finalists" / f"rank-{rank}" / "result.json")
        assert finalist["source"] == "retrained 1 epoch(s) from scratch weights" and 0 <= finalist["test"]["top1"] <= 100
        m = read_json(out / "finalists" / f"rank-{rank}" / "model" / "metrics.json")
        assert (m["config"]["lr"], m["config"]["warmup_epochs"], m["config"]["mixup"]) == (full.retrain_lr, full.retrain_warmup_epochs, 0.8)
        assert (out / "finalists" / f"rank-{rank}" / "model" / "model.safetensors").is_file()


@pytest.mark.slow
def test_full_preset_search_shrunk_on_a_224px_image_folder(images_224, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_command(tmp_path, images_224, out, workers=2)) == 0
    _check_run(out, world=1)


@pytest.mark.slow
def test_full_preset_search_shrunk_under_torchrun_with_two_gloo_processes(images_224, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "nascomp",
        *_command(tmp_path, images_224, out, workers=1),
        "--checkpoint-every",
        "0.001s",
    ]  # also every mid-epoch checkpoint path
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check_run(out, world=2)
    memo = (out / "evolution" / "step-2" / "scores.jsonl").read_text().splitlines()
    n_val = read_json(out / "supernet" / "step-0" / "metrics.json")["data"]["val"]
    assert len(memo) == len(set(memo)) and all(json.loads(line)["score"]["n"] == n_val for line in memo)  # rank 0 wrote each score once
