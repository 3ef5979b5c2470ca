import math

import pytest
import timm
import torch

from nascomp.core.errors import NascompError
from nascomp.core.io import load_tensors, read_json
from nascomp.data import load_data
from nascomp.engine import TrainConfig, default_step, evaluate, fit, lr_at
from nascomp.models import load_model, timm_spec
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


def _train_and_kill(model_fn, data, cfg, out, kill_at, **kw):
    """Run ``fit`` and raise out of the step ``kill_at`` = (epoch, step), as a kill would stop it."""

    def dies(model, images, targets, ctx):
        if (ctx.epoch, ctx.step) == kill_at:
            raise _Killed
        return default_step(model, images, targets, ctx)

    with pytest.raises(_Killed):
        fit(model_fn(), data, cfg, out, step_fn=dies, quiet=True, **kw)


def test_mid_epoch_checkpoints_resume_bit_identically(fake_fmnist, tmp_path):
    data = load_data("fashion-mnist", fake_fmnist, limit_train=192, limit_val=32, limit_test=32)
    spec = timm_spec("vit_tiny_patch16_224", **TINY_VIT)
    torch.manual_seed(0)
    init = timm.create_model("vit_tiny_patch16_224", drop_path_rate=0.1, **TINY_VIT).state_dict()

    def model():
        m = timm.create_model("vit_tiny_patch16_224", drop_path_rate=0.1, **TINY_VIT)
        m.load_state_dict(init)
        return m

    cfg = dict(epochs=2, augment=True, mixup=0.8, cutmix=1.0, ema_decay=0.9)
    fit(model(), data, _cfg(**cfg), tmp_path / "full", spec=spec, quiet=True)
    _train_and_kill(model, data, _cfg(**cfg, checkpoint_every=1e-6), tmp_path / "resumed", (1, 4), spec=spec)
    names = sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir())
    assert names == ["epoch-0001-step-000003", "epoch-0001-step-000004"]  # after every step, the newest two kept
    metrics = fit(model(), data, _cfg(**cfg, checkpoint_every="30m"), tmp_path / "resumed", spec=spec, resume=True, quiet=True)
    a = load_tensors(tmp_path / "full" / "model.safetensors")
    b = load_tensors(tmp_path / "resumed" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert metrics["weights"] == "ema" and metrics["config"]["checkpoint_every"] == 1800.0
    full = read_json(tmp_path / "full" / "metrics.json")
    assert [h["train_loss"] for h in metrics["history"]] == [h["train_loss"] for h in full["history"]]


def test_image_folder_with_workers_resumes_mid_epoch_bit_identically(jpeg_folder, tmp_path):
    data = load_data(f"imagefolder:{jpeg_folder}", val_fraction=0.25)
    kwargs = dict(img_size=24, patch_size=8, in_chans=3, embed_dim=16, depth=1, num_heads=2, num_classes=10)
    torch.manual_seed(0)
    init = timm.create_model("vit_tiny_patch16_224", **kwargs).state_dict()

    def model():
        m = timm.create_model("vit_tiny_patch16_224", **kwargs)
        m.load_state_dict(init)
        return m

    cfg = dict(epochs=2, batch_size=6, resolution=24, in_chans=3, mixup=0.8, cutmix=1.0, repeated_aug=2, ema_decay=0.5, eval_batch_size=12)
    fit(model(), data, _cfg(**cfg, num_workers=0), tmp_path / "full", quiet=True)
    _train_and_kill(model, data, _cfg(**cfg, num_workers=2, checkpoint_every=1e-6), tmp_path / "resumed", (1, 2))
    fit(model(), data, _cfg(**cfg, num_workers=2), tmp_path / "resumed", resume=True, quiet=True)
    a = load_tensors(next((tmp_path / "full" / "checkpoints").glob("epoch-0001")) / "weights.safetensors")
    b = load_tensors(next((tmp_path / "resumed" / "checkpoints").glob("epoch-0001")) / "weights.safetensors")
    assert a.keys() == b.keys() and {k.split(".")[0] for k in a} == {"model", "ema"}
    assert all(torch.equal(a[k], b[k]) for k in a)  # 0 workers uninterrupted == 2 workers killed and resumed


def test_recipe_options_reach_the_run_and_are_checked(fake_fmnist, tmp_path):
    data = load_data("fashion-mnist", fake_fmnist, limit_train=64, limit_val=16, limit_test=16)
    model = timm.create_model("vit_tiny_patch16_224", **TINY_VIT)
    metrics = fit(model, data, _cfg(epochs=1, lr=1e-3, lr_base_batch=64, opt="sgd", num_workers=3), tmp_path / "r", quiet=True)
    assert metrics["effective_lr"] == pytest.approx(1e-3 * 32 / 64) and metrics["global_batch"] == 32
    assert metrics["config"]["opt"] == "sgd" and metrics["config"]["num_workers"] == 3
    from nascomp.data.recipe import TIERS, auto_recipe

    tier, _ = auto_recipe(28, 64, 1)  # the recorded recipe is the one used: auto fields resolved for this run
    assert metrics["config"]["auto_augment"] == TIERS[tier]["auto_augment"] and metrics["weights"] == "trained"
    assert metrics["image_recipe"].startswith("grey in-memory data")
    for bad, match in (
        (dict(mixup=0.8, batch_size=33), "even"),
        (dict(opt="adamz"), "opt .adamz."),
        (dict(ema_decay=1.0), "ema_decay"),
        (dict(checkpoint_every="5x"), "checkpoint_every"),
        (dict(repeated_aug=0), "repeated_aug"),
        (dict(auto_augment="rand-z3"), "auto_augment"),
    ):
        with pytest.raises(NascompError, match=match):
            _cfg(**bad)
    assert _cfg(auto_augment="none").auto_augment is None


def test_checkpoints_of_older_versions_resume(fake_fmnist, tmp_path):
    from nascomp.engine.train import config_differences

    doc = {k: v for k, v in vars(_cfg()).items() if k not in ("mixup", "ema_decay", "opt")}  # written before those fields existed
    assert config_differences(doc, vars(_cfg(num_workers=4, checkpoint_every=60))) == {}  # workers, interval: free to change
    assert config_differences(doc, vars(_cfg(mixup=0.2))) == {"mixup": (0.0, 0.2)}


def test_weight_decay_groups_follow_the_rule_nascomp_always_used():
    from nascomp.engine.optim import param_groups
    from nascomp.nas.supernet import Supernet
    from nascomp.spaces import SearchSpace
    from tests.conftest import TINY_SPACE

    swin = timm.create_model("swin_tiny_patch4_window7_224", img_size=32, window_size=4, embed_dim=16, depths=(1, 1), num_heads=(1, 2))
    for model in (timm.create_model("vit_tiny_patch16_224", **TINY_VIT), swin, Supernet(SearchSpace.from_dict(TINY_SPACE), num_classes=10)):
        skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        no = [p for n, p in named if p.ndim <= 1 or n in skip or "relative_position_bias_table" in n]
        yes = [p for n, p in named if not (p.ndim <= 1 or n in skip or "relative_position_bias_table" in n)]
        for wd in (0.05, 0.0):
            decay, no_decay = param_groups({"model": model}, wd)
            assert [id(p) for p in decay["params"]] == [id(p) for p in yes] and decay["weight_decay"] == wd
            assert [id(p) for p in no_decay["params"]] == [id(p) for p in no] and no_decay["weight_decay"] == 0.0


def test_fit_shrinks_the_batch_to_the_data_on_its_own_copy_of_the_config(fake_fmnist, tmp_path):
    data = load_data("fashion-mnist", str(fake_fmnist), limit_train=24, limit_val=16, limit_test=16)
    cfg = _cfg(epochs=1, batch_size=512)
    model = timm.create_model("vit_tiny_patch16_224", **TINY_VIT)
    metrics = fit(model, data, cfg, tmp_path / "run", quiet=True)
    assert cfg.batch_size == 512  # the caller's config is as it was
    assert metrics["config"]["batch_size"] == len(data.train) < 512  # the run used one batch of every image


def test_stall_check_fires_on_a_loss_left_at_chance_and_not_on_one_that_falls():
    from nascomp.engine.train import StallCheck

    def run(losses, **kw):
        check = StallCheck(10, len(losses), **kw)
        for i, v in enumerate(losses):
            check.step(i, v)
        return check.check(len(losses), sum(losses[-10:]) / 10)

    flat = [math.log(10)] * 40
    assert "has not moved" in run(flat)
    assert run([math.log(10) * (1 - i / 60) for i in range(40)]) is None  # fell by a third
    assert run(flat, enabled=False) is None


def _soft_target_step(model, images, targets, ctx):
    """A distillation-like loss: soft targets, so it starts and stays near ln 10 while the student is fine."""
    with ctx.autocast():
        loss = -(torch.full((images.shape[0], 10), 0.1) * torch.log_softmax(model(images), -1)).sum(-1).mean()
    ctx.backward(loss)
    return loss.detach()


def test_a_distillation_loss_is_not_taken_for_a_stalled_run(fake_fmnist, tmp_path):
    data = _data(fake_fmnist)
    cfg = _cfg(epochs=2)
    runs = {}
    for checked in (True, False):
        model = timm.create_model("vit_tiny_patch16_224", **TINY_VIT)
        runs[checked] = fit(model, data, cfg, tmp_path / str(checked), step_fn=_soft_target_step, quiet=True, stall_check=checked)
    assert any("has not moved" in w for w in runs[True]["warnings"])  # the check would have fired on this loss...
    assert runs[False]["warnings"] == []  # ...and distillation turns it off
