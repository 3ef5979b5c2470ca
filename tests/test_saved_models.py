"""Saved models by name: the registry, and run directories written by nascomp 0.1 (import-path specs) still load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nascomp import create_model
from nascomp.core.errors import NascompError
from nascomp.core.io import load_tensors
from nascomp.models import LEGACY_BUILDERS, MODELS, build_from_spec, load_model, register_model, save_model

LEGACY = Path(__file__).parent / "fixtures" / "saved-v0.1"


def _builders(spec) -> list[str]:
    """Every builder a spec names, nested specs (a MiniViT's or adapted model's base) included."""
    if isinstance(spec, dict):
        return ([spec["builder"]] if "builder" in spec else []) + [b for v in spec.values() for b in _builders(v)]
    return []


@pytest.mark.parametrize("kind", ["timm", "arch", "supernet", "minivit", "adapted"])
def test_models_saved_by_nascomp_0_1_load_and_compute_what_they_computed(kind, tmp_path):
    folder = LEGACY / kind
    assert all(":" in b for b in _builders(json.loads((folder / "model.json").read_text())["spec"]))  # the old import-path form
    model, meta = load_model(folder)
    expected = load_tensors(folder / "expected.safetensors")
    with torch.no_grad():
        logits = model.eval()(expected["input"])
    # same structure and weights -> same function (up to the summation order of the thread count in use)
    assert torch.allclose(logits, expected["logits"], rtol=1e-5, atol=1e-6)
    assert all(b in MODELS for b in _builders(meta["spec"]))  # normalised to names, nested specs included
    save_model(tmp_path / "again", model, meta["spec"])  # re-saving writes the named form, which loads back the same
    again, _ = load_model(tmp_path / "again")
    with torch.no_grad():
        assert torch.equal(again.eval()(expected["input"]), logits)


def test_every_legacy_builder_maps_to_a_registered_name():
    assert set(LEGACY_BUILDERS.values()) <= set(MODELS.names())
    for name in MODELS.names():
        assert callable(MODELS.get(name))


def test_user_builders_register_by_name_and_save_and_load(tmp_path):
    @register_model("test-tiny-mlp")
    def tiny_mlp(width: int = 4) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Linear(3, width), torch.nn.ReLU(), torch.nn.Linear(width, 2))

    spec = {"builder": "test-tiny-mlp", "kwargs": {"width": 5}}
    model = build_from_spec(spec)
    save_model(tmp_path / "m", model, spec)
    loaded, meta = load_model(tmp_path / "m")
    assert meta["spec"]["builder"] == "test-tiny-mlp"
    x = torch.randn(2, 3)
    assert torch.equal(loaded(x), model(x))


def test_unknown_or_foreign_builders_are_refused():
    with pytest.raises(NascompError, match="unknown model builder 'nope'"):
        build_from_spec({"builder": "nope", "kwargs": {}})
    with pytest.raises(NascompError, match="does not know"):
        build_from_spec({"builder": "os:system", "kwargs": {"command": "true"}})


def test_created_models_carry_a_named_spec_that_rebuilds_them():
    model = create_model("vit_tiny_patch16_224", img_size=16, patch_size=8, embed_dim=16, depth=1, num_heads=2, num_classes=3)
    assert model.nascomp_spec["builder"] == "timm"
    rebuilt = build_from_spec(model.nascomp_spec)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_a_loaded_model_carries_its_spec_so_the_api_takes_the_module_alone(tmp_path):
    import nascomp

    folder = LEGACY / "arch"
    model, meta = load_model(folder)
    assert nascomp.count_cost(model).macs == nascomp.count_cost(str(folder)).macs > 0  # the module alone is priced
    from nascomp.models.resolve import model_spec

    nascomp.save_model(tmp_path / "copy", model, model_spec(model))
    assert json.loads((tmp_path / "copy" / "model.json").read_text())["spec"] == meta["spec"]
