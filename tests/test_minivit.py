"""MiniViT weight multiplexing: the paper's parameter counts, sharing structure, transforms, saving, ONNX."""

from __future__ import annotations

import copy
import json

import pytest
import timm
import torch
import torch.nn.functional as F

from nascomp.compression.drop_blocks import drop_blocks
from nascomp.compression.minivit import (
    HeadMixing,
    MultiplexedSwinBlock,
    Multiplexing,
    build_minivit,
    default_share,
    minivit_spec,
    multiplex,
    parse_share,
    sharing_summary,
)
from nascomp.core.errors import NascompError
from nascomp.cost.counter import count_params
from nascomp.deploy.onnx import export_onnx
from nascomp.models import load_model, save_model, timm_spec
from nascomp.models.structure import transformer_blocks
from tests.conftest import TINY_SWIN

TINY_DEIT = dict(img_size=32, patch_size=8, embed_dim=24, depth=4, num_heads=3, in_chans=1, num_classes=10)
IRPE_KEY_TABLES = 12 * 49 * 64  # Mini-DeiT's iRPE: 49 buckets x head dim 64 per layer (not part of timm's ViT)


def _meta(name: str):
    with torch.device("meta"):
        return timm.create_model(name)


@pytest.mark.parametrize(
    "name, params_m, unique",
    [
        ("swin_tiny_patch4_window7_224", 12.00, 4),  # Mini-Swin-T: one weight set per stage
        ("swin_small_patch4_window7_224", 26.46, 12),  # Mini-Swin-S: pairs, 1-1-9-1
        ("swin_base_patch4_window7_224", 46.44, 12),  # Mini-Swin-B
    ],
)
def test_mini_swin_params_match_the_paper(name, params_m, unique):
    model = _meta(name)
    multiplex(model, Multiplexing(default_share(model)))
    assert count_params(model) / 1e6 == pytest.approx(params_m, abs=0.005)
    assert sharing_summary(model)["unique_blocks"] == unique


@pytest.mark.parametrize(
    "name, params_m", [("deit_tiny_patch16_224", 3.09), ("deit_small_patch16_224", 11.45), ("deit_base_patch16_224", 44.10)]
)
def test_mini_deit_params_match_the_paper_up_to_irpe(name, params_m):
    model = _meta(name)
    multiplex(model, Multiplexing(default_share(model)))
    assert default_share(model) == (2,)
    assert (count_params(model) + IRPE_KEY_TABLES) / 1e6 == pytest.approx(params_m, abs=0.005)


def _tiny(name="swin", seed=0):
    torch.manual_seed(seed)
    if name == "swin":
        return timm.create_model("swin_tiny_patch4_window7_224", **TINY_SWIN).eval()
    return timm.create_model("deit_tiny_patch16_224", **TINY_DEIT).eval()


def test_sharing_ties_heavy_weights_and_keeps_norms_per_layer():
    student = multiplex(_tiny(), Multiplexing((2, 2)))
    b = transformer_blocks(student)
    for first, second in ((b[0], b[1]), (b[2], b[3]), (b[4], b[5])):
        assert first.attn.qkv is second.attn.qkv and first.attn.proj is second.attn.proj
        assert first.mlp.fc1 is second.mlp.fc1 and first.mlp.fc2 is second.mlp.fc2
        assert first.attn.relative_position_bias_table is second.attn.relative_position_bias_table
        assert first.norm1 is not second.norm1 and first.attn.mix_pre is not second.attn.mix_pre
        assert any(first.shift_size) != any(second.shift_size) or first.shift_size == (0, 0)  # W-MSA then SW-MSA
    assert b[1].attn.qkv is not b[2].attn.qkv
    assert sharing_summary(student)["per_stage"] == [{"layers": 2, "unique": 1}, {"layers": 4, "unique": 2}]
    student.train()
    student(torch.randn(2, 1, 32, 32)).sum().backward()
    assert b[0].attn.qkv.weight.grad is not None


@pytest.mark.parametrize("family", ["swin", "vit"])
def test_identity_transforms_without_sharing_reproduce_the_teacher(family):
    """Head mixing starts as the identity, so only sharing (and Swin's LayerNorm-replaced residual) moves a
    teacher-initialised student away from its teacher."""
    teacher = _tiny(family)
    share = (1, 1) if family == "swin" else (1,)
    student = multiplex(copy.deepcopy(teacher), Multiplexing(share, mlp_transform=False))
    x = torch.randn(3, 1, 32, 32)
    assert torch.allclose(student(x), teacher(x), atol=1e-5)
    if family == "swin":
        assert any(any(b.shift_size) for b in transformer_blocks(student))  # the shift-mask path ran


def test_head_mixing_matches_loops():
    mix = HeadMixing(3, bias=True, init="random")
    with torch.no_grad():
        mix.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    a = torch.randn(2, 3, 4, 5)
    out = mix(a)
    for b in range(2):
        for g in range(3):
            for i in range(4):
                for j in range(5):
                    expected = sum(float(mix.weight[g, h].detach()) * float(a[b, h, i, j]) for h in range(3)) + float(mix.bias[g].detach())
                    assert float(out[b, g, i, j].detach()) == pytest.approx(expected, abs=1e-5)


def test_swin_mlp_transform_follows_the_released_order():
    """x <- x + Attn(LN1 x); x <- LN_loc(x); x <- x + DWConv(x); x <- x + MLP(LN2 x)."""
    student = multiplex(_tiny(), Multiplexing((2, 2)), transform_init="random")
    block = transformer_blocks(student)[1]
    assert isinstance(block, MultiplexedSwinBlock) and block.local_conv.kernel_size == (7, 7)
    x = torch.randn(2, 8, 8, 16)
    h = x + block._attn(block.norm1(x))
    h = F.layer_norm(h, (16,), block.local_norm.weight, block.local_norm.bias, block.local_norm.eps)
    h = h + F.conv2d(h.permute(0, 3, 1, 2), block.local_conv.weight, block.local_conv.bias, padding=3, groups=16).permute(0, 2, 3, 1)
    h = h + block.mlp(block.norm2(h))
    assert torch.allclose(block(x), h, atol=1e-5)


def test_clear_errors():
    with pytest.raises(NascompError, match="not supported"):
        multiplex(timm.create_model("resnet18"), Multiplexing((2,)))
    with pytest.raises(NascompError, match="does not divide stage 2's depth 4.*1, 2, 4"):
        parse_share("2,3", [2, 4])
    with pytest.raises(NascompError, match="lists 3 stages"):
        parse_share("2,2,2", [2, 4])
    assert parse_share("2", [2, 4]) == (2, 2)
    student = multiplex(_tiny(), Multiplexing((2, 2)))
    with pytest.raises(NascompError, match="already MiniViT"):
        multiplex(student, Multiplexing((2, 2)))


def test_saved_student_stores_shared_tensors_once_and_reloads(tmp_path):
    teacher = _tiny()
    config = Multiplexing((2, 4))
    student = multiplex(copy.deepcopy(teacher), config, transform_init="random")
    spec = minivit_spec(timm_spec("swin_tiny_patch4_window7_224", **TINY_SWIN), config)
    save_model(tmp_path / "student", student, spec)
    save_model(tmp_path / "teacher", teacher, timm_spec("swin_tiny_patch4_window7_224", **TINY_SWIN))
    raw = (tmp_path / "student" / "model.safetensors").read_bytes()
    tensor_bytes = len(raw) - 8 - int.from_bytes(raw[:8], "little")  # safetensors: u64 header length, header, data
    assert tensor_bytes == 4 * count_params(student)  # float32, each shared tensor stored once
    assert len(raw) < 0.6 * (tmp_path / "teacher" / "model.safetensors").stat().st_size
    aliases = json.loads((tmp_path / "student" / "model.json").read_text())["aliases"]
    assert aliases["layers.1.blocks.3.attn.qkv.weight"] == "layers.1.blocks.0.attn.qkv.weight"
    loaded, _ = load_model(tmp_path / "student")
    assert loaded.layers[1].blocks[3].attn.qkv is loaded.layers[1].blocks[0].attn.qkv
    x = torch.randn(2, 1, 32, 32)
    assert torch.equal(loaded.eval()(x), student.eval()(x))


@pytest.mark.parametrize("family", ["swin", "vit"])
def test_onnx_export_of_a_multiplexed_model_matches_pytorch(tmp_path, family):
    teacher = _tiny(family)
    share = (2, 2) if family == "swin" else (2,)
    student = multiplex(copy.deepcopy(teacher), Multiplexing(share), transform_init="random").eval()
    result = export_onnx(student, tmp_path / "student.onnx", resolution=32, in_chans=1, batch=2)
    assert result.max_abs_diff <= 1e-4
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "student.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 1, 32, 32)
    out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert abs(out - student(x).detach().numpy()).max() <= 1e-4


def test_build_minivit_rebuilds_the_structure():
    spec = minivit_spec(timm_spec("deit_tiny_patch16_224", **TINY_DEIT), Multiplexing((2,)))
    model = build_minivit(**spec["kwargs"])
    assert sharing_summary(model) == {"total_blocks": 4, "unique_blocks": 2, "per_stage": [{"layers": 4, "unique": 2}]}


def test_drop_blocks_equals_the_shallower_timm_model():
    teacher = _tiny()
    dropped = drop_blocks(copy.deepcopy(teacher), [1, 2])
    shallow = timm.create_model("swin_tiny_patch4_window7_224", **{**TINY_SWIN, "depths": (1, 2)}).eval()
    shallow.load_state_dict(dropped.state_dict())
    x = torch.randn(2, 1, 32, 32)
    assert torch.allclose(shallow(x), dropped(x), atol=1e-6)
    with pytest.raises(NascompError, match="between 1 and 2"):
        drop_blocks(copy.deepcopy(teacher), [3, 1])
