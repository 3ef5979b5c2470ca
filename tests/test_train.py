import math

import pytest
import timm
import torch

from nascomp.data import load_data
from nascomp.core.errors import NascompError
from nascomp.core.io import load_tensors
from nascomp.models import load_model, timm_spec
from nascomp.engine import TrainConfig, default_step, evaluate, fit, lr_at
from tests.conftest import TINY_VIT


def _cfg(**kw):
    base = dict(epochs=3, batch_size=32, lr=3e-3, warmup_epochs=0.5, resolution=28, in_chans=1, seed=7, augment=False)
    return TrainConfig(**{**base, **kw})


def _data(fake_fmnist):
    return load_data("fashion-mnist", fake_fmnist, limit_train=320, limit_val=64, limit_test=64)


class _Killed(Exception):
    pass


def test_resume_is_bit_identical_to_uninterrupted(fake_fmnist, tmp_path):
    data = _data(fake_fmnist)
    spec = timm_spec("vit_tiny_patch16_224", **TINY_VIT)

    torch.manual_seed(0)
    full = timm.create_model("vit_tiny_patch16_224", drop_path_rate=0.1, **TINY_VIT)
    init = {k: v.clone() for k, v in full.state_dict().items()}
    fit(full, data, _cfg(), tmp_path / "full", spec=spec, quiet=True)

    def dies_in_epoch_3(model, images, targets, ctx):
        if ctx.epoch == 2 and ctx.step == 2:
            raise _Killed
        return default_step(model, images, targets, ctx)

    broken = timm.create_model("vit_tiny_patch16_224", drop_path_rate=0.1, **TINY_VIT)
    broken.load_state_dict(init)
    with pytest.raises(_Killed):
        fit(broken, data, _cfg(), tmp_path / "resumed", spec=spec, step_fn=dies_in_epoch_3, quiet=True)
    assert not (tmp_path / "resumed" / "metrics.json").exists()

    fresh = timm.create_model("vit_tiny_patch16_224", drop_path_rate=0.1, **TINY_VIT)  # a new process: new init
    metrics = fit(fresh, data, _cfg(), tmp_path / "resumed", spec=spec, resume=True, quiet=True)
    a = load_tensors(tmp_path / "full" / "model.safetensors")
    b = load_tensors(tmp_path / "resumed" / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len(metrics["history"]) == 3


def test_resume_with_other_settings_is_refused(fake_fmnist, tmp_path):
    data = _data(fake_fmnist)
    model = timm.create_model("vit_tiny_patch16_224", **TINY_VIT)
    fit(model, data, _cfg(epochs=1), tmp_path / "r", quiet=True)
    (tmp_path / "r" / "metrics.json").unlink()
    with pytest.raises(NascompError, match="different settings.*lr"):
        fit(model, data, _cfg(epochs=1, lr=1.0), tmp_path / "r", resume=True, quiet=True)


def test_training_learns_and_writes_a_loadable_model(fake_fmnist, tmp_path):
    data = _data(fake_fmnist)
    spec = timm_spec("vit_tiny_patch16_224", **TINY_VIT)
    model = timm.create_model("vit_tiny_patch16_224", **TINY_VIT)
    metrics = fit(model, data, _cfg(epochs=4), tmp_path / "run", spec=spec, quiet=True)
    assert metrics["val"]["top1"] > 80  # the fake classes are easy; chance is 10%
    assert metrics["history"][-1]["train_loss"] < metrics["history"][0]["train_loss"]
    loaded, meta = load_model(tmp_path / "run")
    assert meta["metrics"]["val_top1"] == metrics["val"]["top1"]
    tf = data.transform(28, 1, train=False)
    assert evaluate(loaded, data.val, tf)["top1"] == metrics["val"]["top1"]
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert ckpts == ["epoch-0002", "epoch-0003"]  # keeps the newest two


def test_lr_schedule_warmup_then_cosine():
    cfg = TrainConfig(epochs=10, lr=1e-3, warmup_lr=0.0, min_lr=1e-5, warmup_epochs=2)
    lrs = [lr_at(s, 10, cfg) for s in range(100)]
    assert lrs[0] == 0.0 and math.isclose(lrs[10], 5e-4) and math.isclose(lrs[20], 1e-3)
    assert all(a >= b for a, b in zip(lrs[20:], lrs[21:]))
    assert math.isclose(lr_at(100, 10, cfg), 1e-5)


def test_evaluate_top1_top5_against_fixed_logits():
    class Fixed(torch.nn.Module):
        def forward(self, x):
            logits = torch.arange(10.0).repeat(len(x), 1)  # always predicts 9, then 8, 7, 6, 5
            return logits

    labels = torch.tensor([9, 5, 0, 8])
    ds = [(torch.zeros(1, 2, 2, dtype=torch.uint8), int(y)) for y in labels]
    from nascomp.data import BatchTransform

    m = evaluate(Fixed(), ds, BatchTransform(2, 1, (0.0,), (1.0,)), batch_size=3)
    assert m["top1"] == 25.0 and m["top5"] == 75.0 and m["n"] == 4
