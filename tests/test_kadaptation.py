"""KAdaptation: parameter counts from the paper, ΔW = 0 at init with live gradients, merge equivalence."""

from __future__ import annotations

import pytest
import timm
import torch

from nascomp.adaptation.kadaptation.config import SLOW_WEIGHTS_ATTR, KAdaptationConfig
from nascomp.adaptation.kadaptation.layer import KroneckerLinear
from nascomp.adaptation.kadaptation.model import apply_kadaptation, find_targets, kadaptation_layers, merge_kadaptation
from nascomp.core.errors import NascompError

VIT = dict(img_size=28, patch_size=7, in_chans=1, embed_dim=32, depth=2, num_heads=2, num_classes=5)
SWIN = dict(img_size=28, patch_size=2, window_size=7, embed_dim=16, depths=(2, 2), num_heads=(2, 4), in_chans=1, num_classes=5)


def vit(**kw):
    return timm.create_model("vit_tiny_patch16_224", **{**VIT, **kw})


def swin(**kw):
    return timm.create_model("swin_tiny_patch4_window7_224", **{**SWIN, **kw})


def adapter_params(model):
    return {n: p for n, p in model.named_parameters() if n.startswith(SLOW_WEIGHTS_ATTR) or ".fast_" in n or n.endswith("adapter_bias")}


def test_paper_parameter_count_vit_b32():
    """KAdaptation (He et al., AAAI 2023): n = 32, rank 1, Q and V, shared rank-1 slow weights, per-layer bias -> 50,176."""
    model = timm.create_model("vit_base_patch32_224", num_classes=0, device="meta")  # shapes only: instant
    apply_kadaptation(model, KAdaptationConfig(n=32, rank=1, targets=("q", "v"), slow_rank=1, bias=True))
    params = adapter_params(model)
    slow = sum(p.numel() for n, p in params.items() if n.startswith(SLOW_WEIGHTS_ATTR))
    per_layer = sum(p.numel() for n, p in params.items() if n.startswith("blocks.0."))
    assert (slow, per_layer, len(kadaptation_layers(model))) == (4 * 32 * 32, 4 * 768 + 768, 12)
    assert sum(p.numel() for p in params.values()) == 50_176


def test_slow_weights_are_shared_and_full_rank_option():
    model = vit()
    apply_kadaptation(model, KAdaptationConfig(n=8, slow_rank=None))
    layers = list(kadaptation_layers(model).values())
    assert layers[0]._slow["q"] is layers[1]._slow["q"] is getattr(model, SLOW_WEIGHTS_ATTR)["q"]
    assert layers[0]._slow["q"] is not layers[0]._slow["v"]
    assert getattr(model, SLOW_WEIGHTS_ATTR)["q"].weight.shape == (8, 8, 8)
    # stored once, on the model root; the layers only reference them
    assert [n for n, _ in model.named_parameters() if n.startswith(SLOW_WEIGHTS_ATTR)] == [
        f"{SLOW_WEIGHTS_ATTR}.q.weight",
        f"{SLOW_WEIGHTS_ATTR}.v.weight",
    ]
    assert not any("slow" in n for n, _ in layers[0].named_parameters())


@pytest.mark.parametrize("build", [vit, swin], ids=["vit", "swin"])
def test_zero_delta_at_init(build):
    torch.manual_seed(0)
    model = build().eval()
    x = torch.randn(3, 1, 28, 28)
    before = model(x)
    apply_kadaptation(model, KAdaptationConfig(n=8))
    for layer in kadaptation_layers(model).values():
        delta, bias = layer.full_delta()
        assert delta.abs().max().item() == 0.0 and bias.abs().max().item() == 0.0
        assert all(p.abs().max() > 0 for p in (*layer.fast_u.values(), *layer.fast_v.values()))  # yet nothing is zero
    assert torch.equal(model(x), before)


@pytest.mark.parametrize("build", [vit, swin], ids=["vit", "swin"])
def test_every_adapter_tensor_gets_gradient_and_moves_after_one_step(build):
    """The public code's zero-initialised fast weights never train (brief B2.1); the paired init does, from step one."""
    torch.manual_seed(0)
    model = build()
    apply_kadaptation(model, KAdaptationConfig(n=8))
    params = adapter_params(model)
    model.requires_grad_(False)
    for p in params.values():
        p.requires_grad_(True)
    before = {n: p.detach().clone() for n, p in params.items()}
    # Adam without weight decay (as nascomp.engine.fit, minus decay): a parameter moves only if its gradient is non-zero
    opt = torch.optim.Adam(params.values(), lr=1e-3)
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    torch.nn.functional.cross_entropy(model(x), y).backward()
    dead = [n for n, p in params.items() if p.grad is None or p.grad.abs().max() == 0]
    assert not dead, f"no gradient reaches {dead}"
    opt.step()
    still = [n for n, p in params.items() if torch.equal(p, before[n])]
    assert not still, f"unchanged after one step: {still}"
    assert any(layer.full_delta()[0].abs().max() > 0 for layer in kadaptation_layers(model).values())


def test_public_code_init_leaves_delta_untrainable():
    """init='zero' reproduces the public code: both fast factors and the slow weights get no gradient."""
    torch.manual_seed(0)
    model = vit()
    apply_kadaptation(model, KAdaptationConfig(n=8, init="zero"))
    model(torch.randn(2, 1, 28, 28)).sum().backward()
    params = adapter_params(model)
    assert all(p.grad.abs().max() == 0 for n, p in params.items() if "fast_" in n or n.startswith(SLOW_WEIGHTS_ATTR))
    assert all(p.grad.abs().max() > 0 for n, p in params.items() if n.endswith("adapter_bias"))


@pytest.mark.parametrize(
    "build, config",
    [
        (vit, KAdaptationConfig(n=8)),
        (vit, KAdaptationConfig(n=4, rank=2, targets=("q", "k", "v", "proj", "fc1", "fc2"), slow_rank=None)),
        (lambda: vit(qkv_bias=False), KAdaptationConfig(n=8)),
        (swin, KAdaptationConfig(n=8, init="lora")),
    ],
    ids=["vit-qv", "vit-all-targets", "vit-no-qkv-bias", "swin"],
)
def test_merge_matches_unmerged(build, config):
    torch.manual_seed(0)
    model = build()
    apply_kadaptation(model, config)
    with torch.no_grad():  # move away from the zero-ΔW start so the merge has something to fold in
        for p in adapter_params(model).values():
            p.add_(0.05 * torch.randn_like(p))
    model.eval()
    x = torch.randn(3, 1, 28, 28)
    adapted = model(x)
    merge_kadaptation(model)
    assert not kadaptation_layers(model) and not hasattr(model, SLOW_WEIGHTS_ATTR)
    assert all(type(m) is torch.nn.Linear for n, m in model.named_modules() if n.endswith(("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")))
    torch.testing.assert_close(model(x), adapted, atol=1e-5, rtol=1e-4)


def test_merge_reports_layers_that_gained_a_bias():
    model = vit(qkv_bias=False)
    apply_kadaptation(model, KAdaptationConfig(n=8))
    assert merge_kadaptation(model) == ["blocks.0.attn.qkv", "blocks.1.attn.qkv"]
    assert model.blocks[0].attn.qkv.bias is not None


def test_targets_select_the_right_rows():
    model = vit()
    found = find_targets(model, ("q", "v", "fc2"))
    assert found["blocks.0.attn.qkv"] == {"q": (0, 32), "v": (64, 96)}
    assert found["blocks.1.mlp.fc2"] == {"fc2": (0, 32)}
    apply_kadaptation(model, KAdaptationConfig(n=8, targets=("v",)))
    layer = model.blocks[0].attn.qkv
    assert isinstance(layer, KroneckerLinear)
    with torch.no_grad():
        for p in adapter_params(model).values():
            p.add_(0.1)
    delta, bias = layer.full_delta()
    assert delta[:64].abs().max() == 0 and delta[64:].abs().max() > 0  # q and k rows untouched
    assert bias[:64].abs().max() == 0 and torch.all(bias[64:] != 0)


def test_user_errors():
    with pytest.raises(NascompError, match="must divide"):
        apply_kadaptation(vit(), KAdaptationConfig(n=6))
    with pytest.raises(NascompError, match="odd"):
        KAdaptationConfig(n=7)
    with pytest.raises(NascompError, match="choose from"):
        KAdaptationConfig(targets=("query",))
    with pytest.raises(NascompError, match="no layer matches"):
        apply_kadaptation(timm.create_model("resnet10t", num_classes=2), KAdaptationConfig(n=8))
    model = vit()
    apply_kadaptation(model, KAdaptationConfig(n=8))
    with pytest.raises(NascompError, match="already"):
        apply_kadaptation(model, KAdaptationConfig(n=8))
