import os
import pickle

import pytest
import timm
import torch

from nascomp.core.errors import NascompError
from nascomp.core.io import atomic_directory, atomic_write_text, load_state_dict_file, load_tensors, save_tensors
from nascomp.models import build_from_spec, load_model, resolve_model, save_model, timm_spec
from tests.conftest import TINY_VIT


class _RunsCode:
    """Unpickling this calls os.system: the classic malicious checkpoint."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"weight": _RunsCode(marker)}, f)
    with pytest.raises(NascompError, match="refusing to load"):
        load_state_dict_file(path)
    assert not marker.exists()


def test_plain_pth_state_dict_loads(tmp_path):
    torch.save({"state_dict": {"module.w": torch.ones(2)}}, tmp_path / "ok.pth")
    assert torch.equal(load_state_dict_file(tmp_path / "ok.pth")["w"], torch.ones(2))


def test_truncated_checkpoints_are_clear_errors(tmp_path):
    save_tensors(tmp_path / "w.safetensors", {"a": torch.randn(100)})
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "t.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(NascompError, match="corrupt or truncated"):
        load_tensors(tmp_path / "t.safetensors")
    torch.save({"a": torch.randn(1000)}, tmp_path / "w.pth")
    (tmp_path / "t.pth").write_bytes((tmp_path / "w.pth").read_bytes()[:500])
    with pytest.raises(NascompError, match="corrupt or truncated"):
        load_state_dict_file(tmp_path / "t.pth")


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_directory_is_all_or_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_directory(tmp_path / "d") as d:
            (d / "a").write_text("x")
            raise RuntimeError
    assert not (tmp_path / "d").exists() and list(tmp_path.iterdir()) == []
    with atomic_directory(tmp_path / "d") as d:
        (d / "a").write_text("x")
    assert (tmp_path / "d" / "a").read_text() == "x"


def test_unknown_model_suggests_names():
    with pytest.raises(NascompError, match="did you mean.*deit_tiny_patch16_224"):
        resolve_model("deit_tiny_patch16_22")


def test_bad_size_override_is_a_clear_error():
    with pytest.raises(NascompError, match="does not accept"):
        resolve_model("resnet18", window_size=7)


def test_spec_cannot_import_foreign_code():
    with pytest.raises(NascompError, match="does not know"):
        build_from_spec({"builder": "os:system", "kwargs": {"command": "true"}})


def test_save_load_round_trip_stores_tied_weights_once(tmp_path):
    spec = timm_spec("vit_tiny_patch16_224", **TINY_VIT)
    model = build_from_spec(spec)
    blocks = model.blocks
    blocks[1].mlp.fc1.weight = blocks[0].mlp.fc1.weight  # tie two tensors
    save_model(tmp_path / "m", model, spec)
    stored = load_tensors(tmp_path / "m" / "model.safetensors")
    assert "blocks.1.mlp.fc1.weight" not in stored and "blocks.0.mlp.fc1.weight" in stored
    loaded, meta = load_model(tmp_path / "m")
    assert meta["aliases"] == {"blocks.1.mlp.fc1.weight": "blocks.0.mlp.fc1.weight"}
    x = torch.randn(2, 1, 28, 28)
    model.eval(), loaded.eval()
    loaded.blocks[1].mlp.fc1.weight = loaded.blocks[0].mlp.fc1.weight  # tying itself is the builder's job
    assert torch.equal(model(x), loaded(x))


def test_checkpoint_not_matching_model(tmp_path):
    torch.save(timm.create_model("vit_tiny_patch16_224", **{**TINY_VIT, "embed_dim": 64}).state_dict(), tmp_path / "other.pth")
    with pytest.raises(NascompError, match="does not match the model.*shape mismatches"):
        resolve_model("vit_tiny_patch16_224", checkpoint=str(tmp_path / "other.pth"), **TINY_VIT)


def _register_tiny_mlp():
    from nascomp.models import MODELS, register_model

    if "test-registered-mlp" not in MODELS:

        @register_model("test-registered-mlp")
        def tiny_mlp(width: int = 8, num_classes: int = 3) -> torch.nn.Module:
            return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, width), torch.nn.ReLU(), torch.nn.Linear(width, num_classes))


def test_create_model_resolves_a_registered_name_before_timm_and_a_spec_as_a_spec(tmp_path):
    import nascomp

    _register_tiny_mlp()
    model = nascomp.create_model("test-registered-mlp", width=5)
    assert isinstance(model, torch.nn.Sequential) and model[1].out_features == 5  # not sent to timm
    spec = model.nascomp_spec
    assert spec == {"builder": "test-registered-mlp", "kwargs": {"width": 5}}
    save_model(tmp_path / "m", model, spec)
    loaded, meta = load_model(tmp_path / "m")  # round trip through model.json: the same builder, structure and weights
    assert meta["spec"] == spec and all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    rebuilt = nascomp.create_model(spec, num_classes=7)  # a spec dict is a spec (overrides merged), not an arch
    assert (
        rebuilt[3].out_features == 7 and rebuilt[1].out_features == 5 and rebuilt.nascomp_spec["kwargs"] == {"width": 5, "num_classes": 7}
    )
    with pytest.raises(NascompError, match="cannot be called with"):
        nascomp.create_model("test-registered-mlp", depth=3)
    with pytest.raises(NascompError, match="known builders|choose one of"):
        nascomp.create_model({"builder": "no-such-builder", "kwargs": {}})
    assert type(nascomp.create_model("vit_tiny_patch16_224", **{k: v for k, v in TINY_VIT.items()})).__name__ == "VisionTransformer"
