"""The MAC counter against published numbers and hand formulas."""

import pytest
import timm
import torch
from torch import nn

from nascomp.cost.counter import MacCounter, count_module, count_params
from nascomp.cost.crosscheck import cross_check


@pytest.mark.parametrize(
    "name,params,lo,hi",
    [
        ("swin_tiny_patch4_window7_224", 28_288_354, 4.49e9, 4.51e9),  # Swin paper: 4.5 G
        ("swin_s3_tiny_224", 28_328_674, 4.62e9, 4.65e9),  # S3 paper / timm: 4.6 G
        ("deit_tiny_patch16_224", 5_717_416, 1.25e9, 1.26e9),  # analytic 1.254 G incl. attention matmuls
    ],
)
def test_published_model_costs(name, params, lo, hi):
    report = count_module(timm.create_model(name), 224)
    assert report.params == params
    assert lo <= report.macs <= hi
    assert report.flops == 2 * report.macs


class _Attention(nn.Module):
    def __init__(self, d, fused):
        super().__init__()
        self.qkv, self.proj, self.fused = nn.Linear(d, 3 * d), nn.Linear(d, d), fused

    def forward(self, x):  # x: (B, N, d), one head
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        if self.fused:
            y = nn.functional.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)).squeeze(1)
        else:
            y = (q @ k.transpose(-2, -1)).softmax(-1) @ v
        return self.proj(y)


@pytest.mark.parametrize("fused", [False, True])
def test_attention_matmuls_are_counted(fused):
    n, d = 10, 8
    x = torch.randn(1, n, d)
    with torch.inference_mode(), MacCounter() as counter:
        _Attention(d, fused)(x)
    expected = n * d * 3 * d + n * d * d + 2 * n * n * d  # qkv + proj + QK^T + AV
    assert counter.total == expected


def test_convolution_formula_with_groups_and_stride():
    conv = nn.Conv2d(8, 16, kernel_size=3, stride=2, padding=1, groups=4)
    report = count_module(conv, resolution=10, in_chans=8)
    assert report.macs == 16 * 5 * 5 * (8 // 4) * 3 * 3


def test_tied_parameters_counted_once():
    a = nn.Linear(4, 4)
    model = nn.Sequential(a, a)
    assert count_params(model) == 20


def test_cross_check_explains_fvcore_missing_sdpa():
    model = timm.create_model("deit_tiny_patch16_224", img_size=64, patch_size=16)
    ours = count_module(model, 64)
    rows = {r["tool"]: r for r in cross_check(model, ours)}
    assert rows["torch.FlopCounterMode"]["why"] == "agrees"
    assert "scaled_dot_product_attention" in rows["fvcore"]["why"]
    assert rows["fvcore"]["macs"] < ours.macs
