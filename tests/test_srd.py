"""SRD: the loss, the connector per feature type, the penultimate tap, and `nascomp train --distill srd|kd`."""

from __future__ import annotations

import copy
import json

import pytest
import timm
import torch

from nascomp.cli import main
from nascomp.core.errors import NascompError
from nascomp.distillation.base import build_distiller, distillation_step
from nascomp.distillation.losses import srd_loss
from nascomp.distillation.srd import SemanticRepresentationDistillation
from nascomp.distillation.taps import PenultimateTap
from nascomp.engine import StepContext
from nascomp.models import resolve_model, save_model, timm_spec
from tests.conftest import TINY_VIT, TINY_VIT_ARGS

SWIN = dict(img_size=28, patch_size=2, window_size=7, embed_dim=16, depths=(2, 2), num_heads=(2, 4), in_chans=1, num_classes=10)
CNN = dict(in_chans=1, num_classes=10)
BUILDERS = {
    "vit": lambda: timm.create_model("vit_tiny_patch16_224", **TINY_VIT),
    "swin": lambda: timm.create_model("swin_tiny_patch4_window7_224", **SWIN),
    "cnn": lambda: timm.create_model("resnet10t", **CNN),
}


class Ctx:
    criterion = torch.nn.CrossEntropyLoss()


def test_srd_loss_by_hand():
    cross, teacher = torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    f_s, f_t = torch.tensor([[1.0, 1.0, 1.0]]), torch.tensor([[1.0, 1.0, 4.0]])
    # logit MSE = (1 + 4 + 0 + 4) / 4 = 2.25; feature MSE = 9 / 3 = 3
    assert srd_loss(cross, teacher, f_s, f_t, feature_weight=0.5).item() == pytest.approx(2.25 + 0.5 * 3.0)


@pytest.mark.parametrize("student", ["vit", "swin", "cnn"])
@pytest.mark.parametrize("teacher", ["vit", "swin", "cnn"])
def test_any_timm_pair_trains_student_and_connector_not_teacher(student, teacher):
    torch.manual_seed(0)
    s, t = BUILDERS[student](), BUILDERS[teacher]()
    distiller = build_distiller("srd", s, t)
    assert distiller.describe()["connector"] == ("conv1x1-bn-relu" if student == "cnn" else "linear")
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    loss, parts = distiller(s, x, y, Ctx())
    loss.backward()
    assert torch.isfinite(loss) and parts["srd"] > 0
    assert all(p.grad is not None and p.grad.abs().max() > 0 for p in distiller.connector.parameters())
    assert s.get_classifier().weight.grad.abs().max() > 0
    assert all(p.grad is None for p in t.parameters())
    assert not any(p is q for p in distiller.parameters() for q in t.parameters())  # the teacher is neither trained nor saved
    distiller.close()
    assert "forward_head" not in s.__dict__


def test_srd_is_zero_when_the_connector_maps_student_onto_teacher():
    """Cross logits really go through the teacher's classifier: an identical student with an identity connector scores 0."""
    torch.manual_seed(0)
    teacher = BUILDERS["vit"]().eval()
    student = copy.deepcopy(teacher)
    distiller = SemanticRepresentationDistillation(student, teacher, kd_weight=0.0, truth_weight=0.0)
    with torch.no_grad():
        distiller.connector.map.weight.copy_(torch.eye(32))
        distiller.connector.map.bias.zero_()
    loss, parts = distiller(student.eval(), torch.randn(3, 1, 28, 28), torch.tensor([0, 1, 2]), Ctx())
    assert parts["srd"] == pytest.approx(0.0, abs=1e-10)
    with torch.no_grad():
        distiller.connector.map.weight.mul_(1.1)
    assert distiller(student, torch.randn(3, 1, 28, 28), torch.tensor([0, 1, 2]), Ctx())[1]["srd"] > 1e-6


def test_kd_term_and_weights():
    torch.manual_seed(0)
    s, t = BUILDERS["vit"](), BUILDERS["cnn"]()
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    with_kd = build_distiller("srd", s, t, kd_weight=0.5, temperature=2.0)
    loss, parts = with_kd(s.eval(), x, y, Ctx())
    assert loss.item() == pytest.approx(parts["truth"] + parts["srd"] + 0.5 * parts["kd"], rel=1e-5)
    with pytest.raises(NascompError):
        build_distiller("srd", s, t, feature_weight=-1.0)
    with pytest.raises(NascompError, match="classes"):
        build_distiller("srd", s, timm.create_model("resnet10t", in_chans=1, num_classes=3))


def test_tap_reads_the_features_of_the_normal_forward():
    model = BUILDERS["swin"]().eval()
    tap = PenultimateTap(model)
    x = torch.randn(2, 1, 28, 28)
    with tap.record():
        logits = model(x)
    torch.testing.assert_close(tap.features, model.forward_features(x))
    torch.testing.assert_close(logits, model.forward_head(tap.features))
    tap.remove()
    with pytest.raises(NascompError, match="timm-style"):
        PenultimateTap(torch.nn.Linear(3, 3))


def test_distillation_step_updates_connector_through_fit_step():
    torch.manual_seed(0)
    s, t = BUILDERS["cnn"](), BUILDERS["vit"]()
    distiller = build_distiller("srd", s, t)
    params = list(s.parameters()) + list(distiller.parameters())
    opt = torch.optim.SGD(params, lr=0.1)
    before = [p.detach().clone() for p in distiller.connector.parameters()]
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    ctx = StepContext(0, 0, 0, 1, 0, torch.device("cpu"), None, None, scaler, torch.nn.CrossEntropyLoss())
    distillation_step(distiller)(s, torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3]), ctx)
    opt.step()
    assert all(not torch.equal(a, b) for a, b in zip(before, distiller.connector.parameters()))


def _train(tmp_path, fake_fmnist, name, *extra):
    args = [
        "train",
        *TINY_VIT_ARGS,
        "--data",
        "fashion-mnist",
        "--data-dir",
        str(fake_fmnist),
        "--limit-train",
        "64",
        "--limit-val",
        "32",
        "--limit-test",
        "32",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--quiet",
        "--json",
        "--out",
        str(tmp_path / name),
        *extra,
    ]
    return main(args)


def test_train_with_distill_srd_and_kd(tmp_path, fake_fmnist, capsys):
    torch.manual_seed(0)
    teacher = BUILDERS["swin"]()
    save_model(tmp_path / "teacher", teacher, timm_spec("swin_tiny_patch4_window7_224", **SWIN))
    for method in ("srd", "kd"):
        assert _train(tmp_path, fake_fmnist, method, "--distill", method, "--teacher", str(tmp_path / "teacher")) == 0
        capsys.readouterr()
        metrics = json.loads((tmp_path / method / "metrics.json").read_text())
        assert metrics["distill"]["method"] == method and metrics["distill"]["teacher"] == str(tmp_path / "teacher")
    student, _ = resolve_model(str(tmp_path / "srd"))  # the student saves as a plain timm model (no connector, no hooks)
    assert "forward_head" not in student.__dict__ and student(torch.randn(1, 1, 28, 28)).shape == (1, 10)
    assert _train(tmp_path, fake_fmnist, "x", "--distill", "srd") == 2
    assert "--teacher" in capsys.readouterr().err


def _ddp_worker(rank: int, world: int, port: int, out):
    import torch.distributed as dist

    from nascomp.engine.train import _average_gradients

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    connector = torch.nn.Linear(2, 2)
    connector.weight.grad = torch.full((2, 2), float(rank + 1))  # rank-dependent gradients; the bias has none
    _average_gradients([connector], world)
    out[rank] = (connector.weight.grad.clone(), connector.bias.grad.clone())
    dist.destroy_process_group()


@pytest.mark.slow
def test_extra_module_gradients_are_averaged_across_ranks():
    """fit wraps only the student in DDP; an SRD connector's gradients must be all-reduced by hand."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = mp.Manager().dict()
    mp.spawn(_ddp_worker, args=(2, port, out), nprocs=2)
    for rank in range(2):
        weight, bias = out[rank]
        assert torch.equal(weight, torch.full((2, 2), 1.5)) and torch.equal(bias, torch.zeros(2))


def test_compress_with_distill_srd(tmp_path, fake_fmnist, capsys):
    """`nascomp compress --distill srd`: the MiniViT student learns from its uncompressed teacher through SRD."""
    torch.manual_seed(0)
    kw = {**TINY_VIT, "depth": 4}
    save_model(tmp_path / "base", timm.create_model("vit_tiny_patch16_224", **kw), timm_spec("vit_tiny_patch16_224", **kw))
    code = main(
        [
            "compress",
            str(tmp_path / "base"),
            "--distill",
            "srd",
            "--feature-weight",
            "2",
            "--data",
            "fashion-mnist",
            "--data-dir",
            str(fake_fmnist),
            "--limit-train",
            "64",
            "--limit-val",
            "32",
            "--limit-test",
            "32",
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--quiet",
            "--json",
            "--out",
            str(tmp_path / "mini"),
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["distill"]["method"] == "srd" and result["distill"]["feature_weight"] == 2.0
    weights = json.loads((tmp_path / "mini" / "metrics.json").read_text())
    assert weights["compress"]["distill"]["connector"] == "linear"
