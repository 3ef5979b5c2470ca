"""How close does each MiniViT initialisation start to the teacher? Validation top-1 before any training.

teacher init: shared weights from the first block of each sharing group, every layer's own norms, transforms
as no-ops (head mixing = identity, depth-wise conv = 0); the variant without the MLP transform isolates what
the transform's LayerNorm-replaced residual costs at step 0. random init: the paper's from-scratch student.

    python experiments/minivit-swin/init_check.py experiments/minivit-swin/runs/teacher --out init.json
"""

from __future__ import annotations

import argparse
import copy
import json

import torch

from nascomp.compression.minivit import Multiplexing, default_share, multiplex
from nascomp.data import load_data
from nascomp.models import build_from_spec, load_model, model_input_size
from nascomp.engine import evaluate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("teacher", help="model directory saved by `nascomp train`")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args()
    torch.manual_seed(0)
    teacher, meta = load_model(args.teacher)
    in_chans, resolution = model_input_size(teacher)
    data = load_data("fashion-mnist")
    tf = data.transform(resolution, in_chans, train=False)
    share = default_share(teacher)
    variants = {
        "teacher": teacher,
        "teacher init": multiplex(copy.deepcopy(teacher), Multiplexing(share), "identity"),
        "teacher init, no MLP transform": multiplex(copy.deepcopy(teacher), Multiplexing(share, mlp_transform=False), "identity"),
        "teacher init, no sharing (share=1)": multiplex(copy.deepcopy(teacher), Multiplexing((1,) * len(share)), "identity"),
        "random init (paper)": multiplex(build_from_spec(meta["spec"]), Multiplexing(share), "random"),
    }
    results = {name: round(evaluate(m, data.val, tf)["top1"], 2) for name, m in variants.items()}
    for name, top1 in results.items():
        print(f"{name:<40} val top-1 {top1:6.2f}%")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"share": list(share), "val_top1_before_training": results}, f, indent=2)


if __name__ == "__main__":
    main()
