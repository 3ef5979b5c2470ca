"""Run by tests/test_ddp.py under torchrun: train a tiny ViT with gloo, then report this rank's weights."""

import hashlib
import json
import sys
from pathlib import Path

import timm
import torch

from nascomp.data import load_data
from nascomp.engine import TrainConfig, fit

data_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
torch.manual_seed(0)
kwargs = dict(img_size=28, patch_size=7, in_chans=1, embed_dim=32, depth=2, num_heads=2, num_classes=10)
model = timm.create_model("vit_tiny_patch16_224", **kwargs)
data = load_data("fashion-mnist", data_dir, limit_train=256, limit_val=60, limit_test=60)
cfg = TrainConfig(epochs=2, batch_size=32, lr=3e-3, warmup_epochs=0.5, resolution=28, in_chans=1, augment=False)
metrics = fit(model, data, cfg, out, quiet=True, device="cpu")
digest = hashlib.sha256(b"".join(v.numpy().tobytes() for v in model.state_dict().values())).hexdigest()
rank = torch.distributed.get_rank()
(out / f"rank{rank}.json").write_text(json.dumps({"digest": digest, "val_top1": metrics["val"]["top1"], "world": metrics["world_size"]}))
torch.distributed.destroy_process_group()
