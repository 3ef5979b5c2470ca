"""Bad input, by class: every command fails the same way on it (one `error:` line, exit 2, nothing written),
because the Python API validates before any work starts and the CLI only calls the API.

Classes: an output path that cannot be a folder/file; a number out of range or an option value that is not
one; a corrupt input file (or one that would run code); a run that fails part-way (it must not leave its output folder
behind); an unknown name or missing data; bad arguments that must fail before torch loads.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import nascomp
from nascomp.cli import main
from nascomp.core.errors import NascompError
from nascomp.core.io import save_tensors
from tests.conftest import ONE_BLOCK_VIT_ARGS as VIT

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = ["--limit-train", "64", "--limit-val", "32", "--limit-test", "32", "--epochs", "1", "--batch-size", "32", "--quiet"]


def _fails_cleanly(capsys, argv: list[str], pattern: str, leftovers: list[Path] = ()) -> None:
    assert main(argv) == 2, argv
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert pattern in err, err
    for path in leftovers:
        assert not path.exists(), f"{path} was left behind"


@pytest.fixture
def blocked(tmp_path) -> Path:
    """A regular file: any output path below it is impossible."""
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


# --- class 1: an output path that cannot be written ------------------------------------------------------------

OUTPUT_COMMANDS = {
    "train": lambda d, out: ["train", *VIT, "--data-dir", str(d), *SMALL, "--out", str(out)],
    "compress": lambda d, out: ["compress", "deit_tiny_patch16_224", "--pretrained", "--data-dir", str(d), "--out", str(out)],
    "adapt": lambda d, out: ["adapt", *VIT, "--method", "lora", "--data", "fashion-mnist", "--data-dir", str(d), "--out", str(out)],
    "search": lambda d, out: [
        "search",
        "--space",
        "s3-vit",
        "--budget",
        "4gflops",
        "--preset",
        "smoke",
        "--data-dir",
        str(d),
        "--out",
        str(out),
    ],
    "supernet train": lambda d, out: [
        "supernet",
        "train",
        "--space",
        "s3-vit-cpu",
        "--preset",
        "smoke",
        "--data-dir",
        str(d),
        "--out",
        str(out),
    ],
    "supernet extract": lambda d, out: ["supernet", "extract", str(d / "no-such-run"), "--arch", "largest", "--out", str(out)],
    "export": lambda d, out: ["export", "resnet10t", "--out", str(out / "m.onnx")],
    "profile --build-lut": lambda d, out: [
        "profile",
        "--build-lut",
        "--space",
        "s3-vit-cpu",
        "--target",
        "mobile-cpu",
        "--lut",
        str(out / "t.json"),
    ],
    "profile": lambda d, out: ["profile", "resnet10t", "--out", str(out / "p.json")],
    "pareto": lambda d, out: [
        "pareto",
        str(Path(__file__).parent / "fixtures" / "pareto-rows.csv"),
        "--x",
        "latency_ms",
        "--out",
        str(out / "p.png"),
    ],
}


@pytest.mark.parametrize("command", sorted(OUTPUT_COMMANDS))
def test_an_output_below_a_regular_file_is_refused_before_any_work(command, capsys, blocked, fake_fmnist):
    _fails_cleanly(capsys, OUTPUT_COMMANDS[command](fake_fmnist, blocked / "run"), "is a file")
    assert blocked.read_text() == "not a folder"


def test_an_output_folder_that_is_a_file_is_refused(capsys, blocked, fake_fmnist):
    _fails_cleanly(capsys, ["train", *VIT, "--data-dir", str(fake_fmnist), *SMALL, "--out", str(blocked)], "is a file, not a folder")


def test_the_api_refuses_the_same_way(blocked, fake_fmnist):
    with pytest.raises(NascompError, match="is a file"):
        nascomp.train(nascomp.create_model("resnet10t", in_chans=1, num_classes=10), "fashion-mnist", blocked / "run")
    with pytest.raises(NascompError, match="is a file"):
        nascomp.search("s3-vit", "4gflops", preset="smoke", out=blocked / "run", data_dir=fake_fmnist)


# --- class 2: a number out of range ------------------------------------------------------------------------------

NUMBERS = [
    (["flops", "vit_tiny_patch16_224", "--resolution", "0"], "resolution must be positive"),
    (["flops", "vit_tiny_patch16_224", "--resolution", "-8"], "resolution must be positive"),
    (["flops", "vit_tiny_patch16_224", "--resolution", "-224"], "resolution must be positive"),
    (["flops", "vit_tiny_patch16_224", "--batch", "0"], "batch must be positive"),
    (["flops", "vit_tiny_patch16_224", "--img-size", "0"], "--img-size must be positive"),
    (["flops", "swin_tiny_patch4_window7_224", "--window-size", "-7"], "--window-size must be positive"),
    (["export", "resnet10t", "--resolution", "0", "--out", "{tmp}/m.onnx"], "--resolution must be positive"),
    (["profile", "resnet10t", "--threads", "0"], "--threads must be positive"),
    (["profile", "resnet10t", "--repeat", "0"], "--repeat must be positive"),
    (["profile", "resnet10t", "--warmup", "-1"], "--warmup must be 0 or more"),
    (["train", *VIT, *SMALL, "--epochs", "0", "--out", "{tmp}/run"], "--epochs must be positive"),
    (["train", *VIT, *SMALL, "--batch-size", "0", "--out", "{tmp}/run"], "--batch-size must be positive"),
    (["train", *VIT, *SMALL, "--lr", "-1", "--out", "{tmp}/run"], "--lr must be positive"),
    (["train", *VIT, *SMALL, "--workers", "-2", "--out", "{tmp}/run"], "--workers must be 0 or more"),
    (["train", *VIT, *SMALL, "--label-smoothing", "1.5", "--out", "{tmp}/run"], "--label-smoothing must lie in"),
    (["train", *VIT, "--val-fraction", "1.5", "--out", "{tmp}/run"], "--val-fraction must lie in (0, 1)"),
    (["train", *VIT, "--limit-train", "0", "--out", "{tmp}/run"], "--limit-train must be positive"),
    (["adapt", *VIT, "--method", "lora", "--rank", "0", "--dry-run"], "--rank must be an integer of at least 1"),
    (["adapt", *VIT, "--method", "lora", "--shots", "0", "--data", "fashion-mnist", "--out", "{tmp}/run"], "--shots must be positive"),
    (["search", "--space", "s3-vit", "--budget", "0gflops", "--out", "{tmp}/run"], "must be a positive, finite number"),
    (["search", "--space", "s3-vit", "--budget", "4gflops", "--population", "0", "--out", "{tmp}/run"], "population >= 1"),
    (["search", "--space", "s3-vit", "--budget", "4gflops", "--top", "0", "--out", "{tmp}/run"], "--top must be positive"),
    (["search", "--space", "s3-vit", "--budget", "4gflops", "--et-samples", "1", "--out", "{tmp}/run"], "--et-samples must be at least 2"),
    (["search", "--space", "s3-vit", "--budget", "4gflops", "--resolution", "-32", "--out", "{tmp}/run"], "--resolution must be positive"),
    (["search", "--space", "s3-vit", "--budget", "4gflops", "--lr", "0", "--out", "{tmp}/run"], "--lr must be positive"),
]


@pytest.mark.parametrize("argv, message", NUMBERS, ids=[" ".join(a[:1] + a[-4:]) for a, _ in NUMBERS])
def test_numbers_out_of_range_are_one_clear_error(argv, message, capsys, tmp_path, fake_fmnist, monkeypatch):
    monkeypatch.setenv("NASCOMP_DATA", str(fake_fmnist))
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    _fails_cleanly(capsys, argv, message, leftovers=[tmp_path / "run", tmp_path / "m.onnx"])


@pytest.mark.parametrize("call", ["train", "search"])
def test_the_api_takes_integer_options_only_as_integers(call, tmp_path, fake_fmnist):
    """``epochs=1.0`` passes a value check but fails deep inside ``range()``: refused up front, nothing written."""
    with pytest.raises(NascompError, match="epochs must be an integer, got 1.0"):
        if call == "train":
            nascomp.train(
                nascomp.create_model("resnet10t", in_chans=1, num_classes=10),
                "fashion-mnist",
                tmp_path / "run",
                epochs=1.0,
                data_options={"data_dir": fake_fmnist},
            )
        else:
            nascomp.search("s3-vit", "4gflops", preset="smoke", out=tmp_path / "run", data_dir=fake_fmnist, epochs=1.0)
    assert not (tmp_path / "run").exists()


def test_option_values_that_are_not_values_are_one_clear_error(capsys, tmp_path, fake_fmnist):
    base = ["train", *VIT, "--data-dir", str(fake_fmnist), "--out", str(tmp_path / "o")]
    for extra, pattern in (
        (["--checkpoint-every", "5x"], "--checkpoint-every must be a duration such as 90s, 30m or 2h"),
        (["--mixup", "0.8", "--batch-size", "33"], "--batch-size must be even with Mixup/CutMix"),
        (["--auto-augment", "rand-q3"], "--auto-augment 'rand-q3' is not a timm augmentation policy"),
        (["--opt", "adamz"], "--opt 'adamz' is not a timm optimiser"),
    ):
        _fails_cleanly(capsys, base + extra, pattern, leftovers=[tmp_path / "o"])
    search = ["search", "--space", "s3-vit", "--budget", "4gflops", "--preset", "smoke", "--out", str(tmp_path / "s")]
    _fails_cleanly(capsys, search + ["--checkpoint-every", "0s"], "--checkpoint-every must be positive, got '0s'")
    _fails_cleanly(capsys, search + ["--random-erasing", "2"], "--random-erasing must lie in [0, 1]", leftovers=[tmp_path / "s"])


# --- class 3: a corrupt input file -------------------------------------------------------------------------------


def _image_folder(root: Path, corrupt: bool) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in ("a", "b"):
            folder = root / split / c
            folder.mkdir(parents=True)
            for i in range(6):
                Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    if corrupt:
        (root / "train" / "a" / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    return root


def test_a_corrupt_image_names_the_file_and_leaves_no_output(capsys, tmp_path):
    data = _image_folder(tmp_path / "images", corrupt=True)
    out = tmp_path / "run"
    _fails_cleanly(
        capsys,
        [
            "train",
            "vit_tiny_patch16_224",
            "--img-size",
            "16",
            "--patch-size",
            "8",
            "--embed-dim",
            "16",
            "--depth",
            "1",
            "--num-heads",
            "2",
            "--data",
            f"imagefolder:{data}",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--val-fraction",
            "0.2",
            "--quiet",
            "--out",
            str(out),
        ],
        "3.png: not a readable image",
        leftovers=[out],
    )


CORRUPT_FILES = {
    "space YAML": (
        "space.yaml",
        "stages: [unclosed",
        lambda f, tmp: ["search", "--space", str(f), "--budget", "4gflops", "--out", f"{tmp}/run"],
        "not valid YAML",
    ),
    "arch JSON": ("arch.json", "{not json", lambda f, tmp: ["flops", str(f)], "not valid JSON"),
    "model.json": ("model/model.json", "[1, 2]", lambda f, tmp: ["flops", str(f.parent)], "not a nascomp model description"),
    "checkpoint": ("w.safetensors", "garbage", lambda f, tmp: ["flops", "resnet10t", "--checkpoint", str(f)], "corrupt or truncated"),
    "dataset": (
        "fmnist/train-images-idx3-ubyte.gz",
        "not gzip",
        lambda f, tmp: ["train", *VIT, "--data-dir", str(f.parent), "--out", f"{tmp}/run"],
        "unreadable IDX file",
    ),
}


@pytest.mark.parametrize("kind", sorted(CORRUPT_FILES))
def test_corrupt_input_files_are_one_clear_error(kind, capsys, tmp_path, fake_fmnist):
    name, content, argv, message = CORRUPT_FILES[kind]
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "dataset":
        for f in fake_fmnist.iterdir():
            (path.parent / f.name).write_bytes(f.read_bytes())
    path.write_text(content)
    _fails_cleanly(capsys, argv(path, tmp_path), message, leftovers=[tmp_path / "run"])


def test_a_truncated_checkpoint_is_one_clear_error(capsys, tmp_path):
    save_tensors(tmp_path / "w.safetensors", {"x": torch.zeros(1000)})
    (tmp_path / "w.safetensors").write_bytes((tmp_path / "w.safetensors").read_bytes()[:300])
    _fails_cleanly(capsys, ["flops", *VIT, "--checkpoint", str(tmp_path / "w.safetensors")], "corrupt or truncated")


class _Evil:
    """Unpickling this runs ``touch marker``: what a malicious .pth does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_code_running_pickle_is_never_executed(capsys, tmp_path):
    marker = tmp_path / "executed"
    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"state_dict": _Evil(marker)}, f)
    _fails_cleanly(capsys, ["flops", *VIT, "--checkpoint", str(tmp_path / "evil.pth")], "refusing to load", leftovers=[marker])


# --- class 4: a run that fails part-way leaves nothing behind ------------------------------------------------------


def test_a_diverged_run_removes_the_output_folder_it_created(capsys, tmp_path, fake_fmnist):
    out = tmp_path / "new" / "run"
    _fails_cleanly(
        capsys,
        [
            "train",
            *VIT,
            "--data-dir",
            str(fake_fmnist),
            *SMALL,
            "--lr",
            "1e30",
            "--warmup-epochs",
            "0",
            "--grad-clip",
            "0",
            "--no-augment",
            "--out",
            str(out),
        ],
        "diverged",
        leftovers=[tmp_path / "new"],
    )


def test_a_failed_resume_keeps_the_folder_it_found(capsys, tmp_path, fake_fmnist):
    out = tmp_path / "run"
    argv = ["train", *VIT, "--data-dir", str(fake_fmnist), *SMALL, "--out", str(out)]
    assert main(argv) == 0
    _fails_cleanly(capsys, [*argv, "--resume", "--lr", "0.5"], "cannot resume")
    assert (out / "model.safetensors").is_file()


def test_a_resume_from_a_damaged_checkpoint_is_one_clear_error(capsys, tmp_path, fake_fmnist):
    argv = ["train", *VIT, "--data-dir", str(fake_fmnist), *SMALL, "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    (tmp_path / "run" / "metrics.json").unlink()
    ckpt = next((tmp_path / "run" / "checkpoints").iterdir())
    (ckpt / "weights.safetensors").write_bytes(b"garbage")
    _fails_cleanly(capsys, [*argv, "--resume"], "corrupt or truncated")


# --- class 5: an unknown name or missing data --------------------------------------------------------------------


def test_an_unknown_model_name_suggests_the_nearest(capsys):
    _fails_cleanly(capsys, ["flops", "swin_tiny_patch4_window7_2244"], "did you mean swin_tiny_patch4_window7_224")


def test_an_unknown_dataset_is_one_clear_error(capsys, tmp_path):
    _fails_cleanly(
        capsys, ["train", *VIT, "--data", "mnist", "--out", str(tmp_path / "o")], "unknown dataset 'mnist'", leftovers=[tmp_path / "o"]
    )


def test_missing_dataset_files_say_how_to_install(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("NASCOMP_DATA", str(tmp_path))
    _fails_cleanly(
        capsys, ["train", *VIT, "--out", str(tmp_path / "o")], "apt-get install -y dataset-fashion-mnist", leftovers=[tmp_path / "o"]
    )


# --- class 6: bad arguments fail before the heavy imports ---------------------------------------------------------

_CHECK_EACH = """
import contextlib, io, json, shlex, sys
from nascomp.cli.main import main
rows = []
for line in sys.stdin.read().splitlines():
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            rc = main(shlex.split(line))
        except SystemExit as exit:
            rc = exit.code
    rows.append({"line": line, "rc": rc, "err": err.getvalue(), "heavy": sorted({"torch", "timm"} & set(sys.modules))})
print(json.dumps(rows))
"""


def test_bad_arguments_fail_before_torch_loads(tmp_path):
    """Every line of fixtures/bad-arguments.txt fails with one `error:` line before torch or timm is imported (the cost
    of that import, 3-7 s, is what made errors slow; benchmarks/bench_cli.py times these commands)."""
    import json
    import subprocess
    import sys

    lines = [
        line.replace("{tmp}", str(tmp_path))
        for line in (Path(__file__).parent / "fixtures" / "bad-arguments.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    proc = subprocess.run([sys.executable, "-c", _CHECK_EACH], input="\n".join(lines), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert len(rows) == len(lines) >= 20
    for row in rows:
        err = row["err"].strip()
        assert row["rc"] == 2 and err.startswith("error: ") and "\n" not in err, row
        assert not row["heavy"], f"{row['line']} imported {row['heavy']} before failing"
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "a failed command left files behind"
