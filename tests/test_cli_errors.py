"""Bad input ends with one clear line on stderr, exit status 2, and nothing half-written."""

import os
import pickle

import torch

from nascomp.cli import main
from nascomp.core.io import save_tensors

TINY = ["vit_tiny_patch16_224", "--img-size", "28", "--patch-size", "7", "--in-chans", "1", "--embed-dim", "32", "--depth", "1", "--num-heads", "2"]


def _fails_cleanly(capsys, argv, pattern):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert pattern in err, err


def test_unknown_model(capsys):
    _fails_cleanly(capsys, ["flops", "swin_tiny_patch4_window7_2244"], "did you mean swin_tiny_patch4_window7_224")


def test_unknown_dataset(capsys, tmp_path):
    _fails_cleanly(capsys, ["train", *TINY, "--data", "mnist", "--out", str(tmp_path / "o")], "unknown dataset 'mnist'")
    assert not (tmp_path / "o").exists()


def test_missing_dataset_files_say_how_to_install(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("NASCOMP_DATA", str(tmp_path))
    _fails_cleanly(capsys, ["train", *TINY, "--out", str(tmp_path / "o")], "apt-get install -y dataset-fashion-mnist")
    assert not (tmp_path / "o").exists()


def test_corrupt_checkpoint(capsys, tmp_path):
    save_tensors(tmp_path / "w.safetensors", {"x": torch.zeros(1000)})
    (tmp_path / "w.safetensors").write_bytes((tmp_path / "w.safetensors").read_bytes()[:300])
    _fails_cleanly(capsys, ["flops", *TINY, "--checkpoint", str(tmp_path / "w.safetensors")], "corrupt or truncated")


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_code_running_pickle_is_never_executed(capsys, tmp_path):
    marker = tmp_path / "executed"
    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"state_dict": _Evil(marker)}, f)
    _fails_cleanly(capsys, ["flops", *TINY, "--checkpoint", str(tmp_path / "evil.pth")], "refusing to load")
    assert not marker.exists()


def test_unwritable_output_directory(capsys, tmp_path, fake_fmnist):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    _fails_cleanly(capsys, ["train", *TINY, "--data-dir", str(fake_fmnist), "--out", str(blocker / "run")], "is a file")


def test_resume_from_damaged_checkpoint_is_a_clear_error(capsys, tmp_path, fake_fmnist):
    argv = ["train", *TINY, "--data-dir", str(fake_fmnist), "--limit-train", "64", "--limit-val", "32", "--limit-test", "32",
            "--epochs", "1", "--batch-size", "32", "--quiet", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    (tmp_path / "run" / "metrics.json").unlink()
    ckpt = next((tmp_path / "run" / "checkpoints").iterdir())
    (ckpt / "weights.safetensors").write_bytes(b"garbage")
    _fails_cleanly(capsys, [*argv, "--resume"], "corrupt or truncated")


def test_bad_recipe_and_loader_options(capsys, tmp_path, fake_fmnist):
    base = ["train", *TINY, "--data-dir", str(fake_fmnist), "--out", str(tmp_path / "o")]
    for extra, pattern in ((["--checkpoint-every", "5x"], "--checkpoint-every must be a duration such as 90s, 30m or 2h"),
                           (["--workers", "-2"], "--workers must be 0 or more"),
                           (["--mixup", "0.8", "--batch-size", "33"], "--batch-size must be even with Mixup/CutMix"),
                           (["--auto-augment", "rand-q3"], "--auto-augment 'rand-q3' is not a timm augmentation policy"),
                           (["--opt", "adamz"], "--opt 'adamz' is not a timm optimiser")):
        _fails_cleanly(capsys, base + extra, pattern)
        assert not (tmp_path / "o").exists()
    search = ["search", "--space", "s3-vit", "--budget", "4gflops", "--preset", "smoke", "--out", str(tmp_path / "s")]
    _fails_cleanly(capsys, search + ["--checkpoint-every", "0s"], "--checkpoint-every must be positive, got '0s'")
    _fails_cleanly(capsys, search + ["--random-erasing", "2"], "--random-erasing must lie in [0, 1]")
    assert not (tmp_path / "s").exists()
