"""Do the experiments, rewritten on the Python API, compute what they computed through nascomp 0.1's CLI?

Every experiment's kind of call runs twice at a small size: once through the command line of nascomp 0.1 (a
checkout of commit c39c224, the version that produced the recorded numbers) and once through today's API, each
in its own process with one thread. The final weights and the metrics must be identical, bit for bit.

    git worktree add --detach /tmp/nascomp-0.1 c39c224
    nice -n 10 .venv/bin/python experiments/api-equivalence/run.py --old /tmp/nascomp-0.1 [--out runs/api-equivalence]

Writes results.json beside this file (one row per case: identical weights? identical metrics?).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DATA = ["--data", "fashion-mnist", "--limit-train", "256", "--limit-val", "128", "--limit-test", "128", "--quiet"]
DATA_OPTIONS = {"limit_train": 256, "limit_val": 128, "limit_test": 128}
ARCH = {"stages": [{"depth": 1, "embed_dim": 32, "heads": 1, "qkv_dim": 32, "mlp_ratio": 2.0, "window": 4},
                   {"depth": 1, "embed_dim": 64, "heads": 2, "qkv_dim": 64, "mlp_ratio": 2.0, "window": 4}], "patch_size": 4}
SWIN = ["swin_tiny_patch4_window7_224", "--img-size", "32", "--patch-size", "4", "--window-size", "4", "--embed-dim", "16",
        "--num-heads", "1,2,4,8", "--in-chans", "1"]
SWIN_KW = dict(img_size=32, patch_size=4, window_size=4, embed_dim=16, num_heads=(1, 2, 4, 8), in_chans=1)
VIT = ["vit_tiny_patch16_224", "--img-size", "28", "--patch-size", "4", "--embed-dim", "32", "--depth", "2", "--num-heads", "2",
       "--in-chans", "1"]
VIT_KW = dict(img_size=28, patch_size=4, embed_dim=32, depth=2, num_heads=2, in_chans=1)


def cases(out: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (0.1 CLI arguments writing OLD, API code writing NEW); OLD/NEW are replaced by each side's folder."""
    arch = out / "arch.json"
    teacher = out / "teacher-old"  # the teacher both sides distil from / compress: trained once, by the old CLI
    return {
        "train (s3-fashion-mnist / supernet-ranking retrain)": (
            ["train", str(arch), "--img-size", "32", "--epochs", "1", "--batch-size", "64", "--lr", "2e-3", "--warmup-epochs", "0.5",
             "--model-kwargs", '{"drop_path_rate": 0.0}', "--seed", "1", *DATA, "--out", "OLD"],
            f'nascomp.train("{arch}", "fashion-mnist", "NEW", model_kwargs={{"img_size": 32, "drop_path_rate": 0.0}}, data_options={DATA_OPTIONS},'
            ' quiet=True, seed=1, epochs=1, batch_size=64, lr=2e-3, warmup_epochs=0.5)'),
        "distill kd (srd-distill)": (
            ["train", *VIT, *DATA, "--epochs", "1", "--lr", "2e-3", "--seed", "2", "--distill", "kd", "--alpha", "0.5", "--temperature", "1",
             "--teacher", str(out / "vit-teacher-old"), "--out", "OLD"],
            f'nascomp.distill("vit_tiny_patch16_224", "{out / "vit-teacher-old"}", "fashion-mnist", "NEW", method="kd", options={{"alpha": 0.5,'
            f' "temperature": 1.0}}, model_kwargs={VIT_KW}, data_options={DATA_OPTIONS}, quiet=True, epochs=1, lr=2e-3, seed=2)'),
        "distill srd (srd-distill)": (
            ["train", *VIT, *DATA, "--epochs", "1", "--lr", "2e-3", "--seed", "3", "--distill", "srd", "--teacher", str(out / "vit-teacher-old"),
             "--out", "OLD"],
            f'nascomp.distill("vit_tiny_patch16_224", "{out / "vit-teacher-old"}", "fashion-mnist", "NEW", method="srd", model_kwargs={VIT_KW},'
            f' data_options={DATA_OPTIONS}, quiet=True, epochs=1, lr=2e-3, seed=3)'),
        "compress minivit (minivit-swin)": (
            ["compress", str(teacher), "--method", "minivit", "--epochs", "1", "--lr", "5e-4", "--warmup-epochs", "0.5", *DATA, "--out", "OLD"],
            f'nascomp.compress("{teacher}", "minivit", "fashion-mnist", "NEW", data_options={DATA_OPTIONS}, quiet=True, epochs=1, lr=5e-4,'
            ' warmup_epochs=0.5)'),
        "compress drop-blocks, random init (minivit-swin)": (
            ["compress", str(teacher), "--method", "drop-blocks", "--keep", "2,2,1,1", "--init", "random", "--distill", "none", "--epochs", "1",
             "--lr", "5e-4", *DATA, "--out", "OLD"],
            f'nascomp.compress("{teacher}", "drop-blocks", "fashion-mnist", "NEW", options={{"keep": [2, 2, 1, 1]}}, init="random",'
            f' distill="none", data_options={DATA_OPTIONS}, quiet=True, epochs=1, lr=5e-4)'),
        "adapt kadaptation few-shot (kadaptation-fewshot)": (
            ["adapt", str(out / "vit-teacher-old"), "--method", "kadaptation", "--kron-n", "8", "--rank", "1", "--data", "fashion-mnist",
             "--classes", "5,6,7,8,9", "--epochs", "2", "--batch-size", "16", "--min-epoch-size", "160", "--warmup-epochs", "1",
             "--limit-test", "200", "--limit-val", "100", "--no-merge", "--shots", "5", "--seed", "1", "--lr", "1e-2", "--quiet", "--out", "OLD"],
            f'nascomp.adapt("{out / "vit-teacher-old"}", "kadaptation", "fashion-mnist", "NEW", options={{"n": 8, "rank": 1}},'
            ' data_options={"classes": [5, 6, 7, 8, 9], "limit_test": 200, "limit_val": 100}, shots=5, min_epoch_size=160, merge=False,'
            ' seed=1, lr=1e-2, epochs=2, batch_size=16, warmup_epochs=1, quiet=True)'),
        "adapt lora merged (kadaptation-fewshot)": (
            ["adapt", str(out / "vit-teacher-old"), "--method", "lora", "--rank", "2", "--data", "fashion-mnist", "--classes", "5,6,7,8,9",
             "--epochs", "1", "--batch-size", "16", "--limit-test", "64", "--limit-val", "64", "--limit-train", "128", "--seed", "4",
             "--quiet", "--out", "OLD"],
            f'nascomp.adapt("{out / "vit-teacher-old"}", "lora", "fashion-mnist", "NEW", options={{"rank": 2}}, data_options={{"classes":'
            ' [5, 6, 7, 8, 9], "limit_test": 64, "limit_val": 64, "limit_train": 128}, seed=4, epochs=1, batch_size=16, quiet=True)'),
        "supernet train (supernet-ranking)": (
            ["supernet", "train", "--space", "s3-vit-cpu", "--preset", "cpu", "--num-random", "1", "--epochs", "1", "--distill", "--seed", "0",
             "--data", "fashion-mnist", "--limit-train", "256", "--limit-val", "128", "--quiet", "--out", "OLD"],
            'nascomp.train_supernet("s3-vit-cpu", nascomp.load_data("fashion-mnist", limit_train=256, limit_val=128), "NEW",'
            ' preset="cpu", num_random=1, epochs=1, distill=True, seed=0, quiet=True)'),
        "search, smoke preset (s3-fashion-mnist)": (
            ["search", "--space", "s3-vit", "--budget", "4gflops", "--preset", "smoke", "--seed", "0", "--quiet", "--out", "OLD"],
            'nascomp.search("s3-vit", "4gflops", preset="smoke", seed=0, quiet=True, out="NEW")'),
    }


def _env(path: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(path), "OMP_NUM_THREADS": "1"}


def _old(old: Path, argv: list[str]) -> None:
    subprocess.run([sys.executable, "-m", "nascomp", *argv], env=_env(old), check=True, stdout=subprocess.DEVNULL)


def _new(code: str) -> None:
    script = "import torch, nascomp\ntorch.set_num_threads(1)\n" + code
    subprocess.run([sys.executable, "-c", script], env=_env(ROOT), check=True, stdout=subprocess.DEVNULL)


COMPARE = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from safetensors.torch import load_file
    a, b = Path(sys.argv[1]), Path(sys.argv[2])
    weights = sorted(p.relative_to(a) for p in a.rglob("model.safetensors"))
    same_weights = bool(weights) and all(
        (lambda x, y: x.keys() == y.keys() and all(bool((x[k] == y[k]).all()) for k in x))(load_file(a / w), load_file(b / w)) for w in weights)
    def scores(folder):
        out = {}
        for f in sorted(folder.rglob("*.json")):
            if f.name in ("metrics.json", "best_arch.json", "result.json"):
                doc = json.loads(f.read_text())
                out[str(f.relative_to(folder))] = {k: doc.get(k) for k in ("val", "test", "val_top1", "test_top1", "macs", "arch")}
        return out
    sa, sb = scores(a), scores(b)
    print(json.dumps({"weights_files": len(weights), "identical_weights": same_weights, "identical_scores": sa == sb, "scores": sa}))
""")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old", required=True, help="a checkout of nascomp 0.1 (commit c39c224)")
    p.add_argument("--out", default="runs/api-equivalence")
    args = p.parse_args()
    out, old = Path(args.out).resolve(), Path(args.old).resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "arch.json").write_text(json.dumps(ARCH))
    if not (out / "teacher-old" / "metrics.json").is_file():
        _old(old, ["train", *SWIN, "--epochs", "1", *DATA, "--out", str(out / "teacher-old")])
    if not (out / "vit-teacher-old" / "metrics.json").is_file():
        _old(old, ["train", *VIT, "--epochs", "1", *DATA, "--out", str(out / "vit-teacher-old")])
    rows = []
    for i, (name, (argv, code)) in enumerate(cases(out).items()):
        a, b = out / f"case{i}-old", out / f"case{i}-new"
        if not a.exists():
            _old(old, [str(a) if x == "OLD" else x for x in argv])
        if not b.exists():
            _new(code.replace("NEW", str(b)))
        check = json.loads(subprocess.run([sys.executable, "-c", COMPARE, str(a), str(b)], capture_output=True, text=True, check=True).stdout)
        rows.append({"case": name, **{k: v for k, v in check.items() if k != "scores"}, "scores_old": check["scores"]})
        print(f"{name:<52} weights identical: {check['identical_weights']} ({check['weights_files']} files)  "
              f"scores identical: {check['identical_scores']}", flush=True)
    doc = {"date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, 1 thread per run",
           "command": "python experiments/api-equivalence/run.py --old <nascomp 0.1 checkout>", "old": "nascomp 0.1 (c39c224), CLI",
           "new": "this version, Python API", "rows": rows}
    (HERE / "results.json").write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
