"""`nascomp adapt` and the method-agnostic adapter layer (peft LoRA/LoKr through the split qkv, few-shot sampling)."""

from __future__ import annotations

import json

import pytest
import timm
import torch

from nascomp.adaptation.fewshot import few_shot_subset
from nascomp.adaptation.methods import adapter_parameter_names, apply_method, count_parameters, mark_trainable, merge_method
from nascomp.adaptation.qkv import SplitQKV, split_fused_qkv
from nascomp.cli import main
from nascomp.core.errors import NascompError
from nascomp.data import load_data
from nascomp.models import resolve_model, save_model, timm_spec
from tests.conftest import TINY_VIT_ARGS

VIT = dict(img_size=28, patch_size=7, in_chans=1, embed_dim=32, depth=2, num_heads=2, num_classes=5)


def vit(**kw):
    return timm.create_model("vit_tiny_patch16_224", **{**VIT, **kw})


def dry_run(capsys, *args) -> dict:
    assert main(["adapt", *args, "--dry-run", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_paper_configuration_has_50176_adapter_params(capsys):
    report = dry_run(capsys, "vit_base_patch32_224", "--method", "kadaptation", "--kron-n", "32", "--rank", "1", "--targets", "q,v")
    assert report["adapter_params"] == 50_176
    assert report["trainable_params"] == 50_176 + report["head_params"]


@pytest.mark.parametrize(
    "method, options, expected",
    [
        ("lora", {"rank": 4}, 147_456),  # brief B3: 12 layers x 2 (Q, V) x 4 x (768 + 768)
        ("lokr", {"rank": 1, "decompose_factor": 32}, 24 * 1_072),  # brief B5: 1,072 per 768x768 module
    ],
)
def test_peft_counts_match_the_paper_baselines(method, options, expected):
    model = timm.create_model("vit_base_patch32_224", num_classes=10, device="meta")  # shapes only: instant
    apply_method(model, method, options)
    mark_trainable(model, method)
    counts = count_parameters(model)
    assert (counts.adapter, counts.head) == (expected, 768 * 10 + 10)


def test_split_qkv_is_the_same_function():
    torch.manual_seed(0)
    fused = torch.nn.Linear(16, 48)
    split = SplitQKV(fused)
    x = torch.randn(3, 5, 16)
    torch.testing.assert_close(split(x), fused(x))
    torch.testing.assert_close(split.fused().weight, fused.weight)
    model = vit()
    assert split_fused_qkv(model) == ["blocks.0.attn.qkv", "blocks.1.attn.qkv"]


@pytest.mark.parametrize(
    "method, options", [("lora", {"rank": 2}), ("lokr", {"rank": 1, "decompose_factor": 4}), ("kadaptation", {"n": 8})]
)
def test_adapter_trains_only_adapter_and_head_and_merges_back_to_timm(method, options):
    torch.manual_seed(0)
    model = vit()
    reference_keys = set(model.state_dict())
    apply_method(model, method, options)
    mark_trainable(model, method)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == adapter_parameter_names(model, method) | {"head.weight", "head.bias"}
    assert adapter_parameter_names(model, method)
    with torch.no_grad():  # give the adapter a non-zero update so merging is tested for real
        params = dict(model.named_parameters())
        for n in adapter_parameter_names(model, method):
            params[n].add_(0.05 * torch.randn_like(params[n]))
    model.eval()
    x = torch.randn(2, 1, 28, 28)
    adapted = model(x)
    assert merge_method(model, method) == []
    assert set(model.state_dict()) == reference_keys  # the plain timm architecture again
    torch.testing.assert_close(model(x), adapted, atol=1e-5, rtol=1e-4)


def test_linear_probe_and_full_counts():
    model = vit()
    mark_trainable(model, "linear")
    assert count_parameters(model).trainable == 32 * 5 + 5
    mark_trainable(model, "full")
    counts = count_parameters(model)
    assert counts.trainable == counts.total == sum(p.numel() for p in model.parameters())


def test_few_shot_subset_is_balanced_and_deterministic(fake_fmnist):
    data = load_data("fashion-mnist", fake_fmnist, classes=[5, 6, 7, 8, 9])
    subset = few_shot_subset(data.train, 3, seed=1)
    labels = [data.train[i][1] for i in subset.indices]
    assert sorted(labels) == sorted([c for c in range(5) for _ in range(3)])
    assert subset.indices == few_shot_subset(data.train, 3, seed=1).indices
    assert subset.indices != few_shot_subset(data.train, 3, seed=2).indices
    repeated = few_shot_subset(data.train, 3, seed=1, min_size=40)
    assert len(repeated) == 45 and repeated.indices[:15] == subset.indices
    with pytest.raises(NascompError, match="lower shots"):
        few_shot_subset(data.train, 10_000, seed=0)


def test_adapt_end_to_end_saved_models_load_everywhere(tmp_path, fake_fmnist, capsys):
    """Backbone on classes 0-4 -> KAdaptation few-shot on 5-9; the run and its merged export load as MODEL."""
    torch.manual_seed(0)
    backbone = vit()
    spec = timm_spec("vit_tiny_patch16_224", **VIT)
    save_model(tmp_path / "backbone", backbone, spec)
    out = tmp_path / "adapted"
    code = main(
        [
            "adapt",
            str(tmp_path / "backbone"),
            "--method",
            "kadaptation",
            "--kron-n",
            "8",
            "--data",
            "fashion-mnist",
            "--data-dir",
            str(fake_fmnist),
            "--classes",
            "5,6,7,8,9",
            "--shots",
            "4",
            "--min-epoch-size",
            "40",
            "--epochs",
            "2",
            "--limit-val",
            "40",
            "--limit-test",
            "40",
            "--out",
            str(out),
            "--quiet",
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["shots"] == 4 and result["adapter_params"] == count_parameters_of_kadaptation(n=8)
    assert result["merged"]["max_abs_logit_diff"] < 1e-4
    adapted, _ = resolve_model(str(out))
    merged, merged_spec = resolve_model(str(out / "merged"))
    assert merged_spec["kwargs"]["merged"] and type(merged.blocks[0].attn.qkv) is torch.nn.Linear
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(merged.eval()(x), adapted.eval()(x), atol=1e-5, rtol=1e-4)
    # the backbone's frozen weights are untouched in the adapted model
    torch.testing.assert_close(adapted.blocks[1].mlp.fc1.weight, backbone.blocks[1].mlp.fc1.weight)


def count_parameters_of_kadaptation(n: int) -> int:
    """Per layer 2 parts x (u + v) + bias, plus 2 shared rank-1 slow sets: independent of the implementation."""
    dim, depth = VIT["embed_dim"], VIT["depth"]
    return depth * (2 * (dim + dim) + dim) + 2 * (2 * n * n)


def test_checkpoint_into_timm_name_ignores_the_old_head(tmp_path, capsys):
    from safetensors.torch import save_file

    model = vit(num_classes=3)
    save_file(model.state_dict(), tmp_path / "w.safetensors")
    args = [
        *TINY_VIT_ARGS,
        "--checkpoint",
        str(tmp_path / "w.safetensors"),
        "--method",
        "linear",
        "--num-classes",
        "7",
    ]
    assert dry_run(capsys, *args)["head_params"] == 32 * 7 + 7


def test_adapt_user_errors(capsys):
    assert main(["adapt", "vit_base_patch32_224", "--method", "kadaptation"]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["adapt", "vit_base_patch32_224", "--method", "kadaptation", "--kron-n", "7", "--dry-run"]) == 2
    assert main(["adapt", "resnet18", "--method", "lora", "--dry-run"]) == 2
    assert "qkv" in capsys.readouterr().err


@pytest.mark.parametrize(
    "method, options", [("lora", {"rank": 2}), ("lokr", {"rank": 1, "decompose_factor": 4}), ("kadaptation", {"n": 4})]
)
def test_adapted_and_merged_specs_rebuild_the_same_network(tmp_path, method, options):
    from nascomp.adaptation.model import adapted_spec
    from nascomp.models import load_model

    torch.manual_seed(0)
    base = timm_spec("vit_tiny_patch16_224", **VIT)
    model = vit()
    model.reset_classifier(3)
    apply_method(model, method, options)
    mark_trainable(model, method)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in adapter_parameter_names(model, method):
                p.add_(0.05 * torch.randn_like(p))
    x = torch.randn(2, 1, 28, 28)
    expected = model.eval()(x)
    save_model(tmp_path / "adapted", model, adapted_spec(base, method, 3, options))
    loaded, _ = load_model(tmp_path / "adapted")
    torch.testing.assert_close(loaded.eval()(x), expected)
    biased = merge_method(model, method)
    save_model(tmp_path / "merged", model, adapted_spec(base, method, 3, options, merged=True, biased=biased))
    merged, _ = load_model(tmp_path / "merged")
    torch.testing.assert_close(merged.eval()(x), expected, atol=1e-5, rtol=1e-4)
