"""Analytic cost of an Arch equals the dispatcher count of the model built from it."""

from __future__ import annotations

import json
import random
import timeit

import pytest
import timm
import torch

from nascomp.cli import main
from nascomp.cost.arch_cost import arch_cost, arch_cost_report, block_cost, head_cost, merge_cost, stem_cost
from nascomp.cost.counter import count_module
from nascomp.models.swin import build_block, build_from_arch, build_head, build_merging, build_stem
from nascomp.spaces import SearchSpace, arch_layout, load_arch

# timm's parameter counts (S3-T 28.33 M, Swin-T 28.29 M / 4.49 G MACs)
S3_T_PARAMS = 28_328_674
SWIN_T_PARAMS = 28_288_354


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def counted_s3_t():
    return count_module(timm.create_model("swin_s3_tiny_224"), 224)


def test_s3_t_and_swin_t_match_timm(counted_s3_t):
    s3_t = arch_cost(load_arch("s3-t"), 224)
    assert s3_t.params == S3_T_PARAMS == counted_s3_t.params
    assert abs(s3_t.macs / counted_s3_t.macs - 1) < 0.005
    swin_t = arch_cost(load_arch("swin-t"), 224)
    assert swin_t.params == SWIN_T_PARAMS
    assert abs(swin_t.macs / 4.49e9 - 1) < 0.005


def test_flops_command_uses_the_analytic_cost(counted_s3_t, capsys):
    assert main(["flops", "search_spaces/archs/s3-t.json", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["params"] == S3_T_PARAMS
    assert abs(doc["macs"] / counted_s3_t.macs - 1) < 0.005
    assert sum(doc["macs_by_category"].values()) == doc["macs"]
    assert main(["flops", "search_spaces/archs/s3-t.json", "--embed-dim", "64"]) == 2


@pytest.mark.parametrize(
    "name, resolution, seed",
    [
        ("s3-vit-cpu", 32, 0),
        ("s3-vit-cpu", 32, 1),
        ("s3-vit-cpu", 48, 2),  # 48 px: 24/12/6/3 maps, padded windows
        ("s3-vit", 64, 3),
    ],
)
def test_analytic_cost_equals_counted_cost_of_the_built_model(name, resolution, seed):
    space = SearchSpace.load(name)
    arch = space.sample(random.Random(seed))
    model = build_from_arch(arch, num_classes=10, img_size=resolution)
    counted = count_module(model, resolution)
    analytic = arch_cost(arch, resolution, num_classes=10)
    assert analytic.params == counted.params
    assert analytic.macs == counted.macs
    assert arch_cost_report(arch, resolution, num_classes=10).macs_by_category == {k: v for k, v in counted.macs_by_category.items() if v}


def test_per_layer_modules_cost_what_the_per_layer_formulas_say():
    """The standalone stem / merging / block / head modules (for latency tables) are the model's layers."""
    arch = SearchSpace.load("s3-vit-cpu").sample(random.Random(5))
    layout = arch_layout(arch, 32, 3, 10)

    def counted(module, shape):
        with torch.inference_mode():
            from nascomp.cost.counter import MacCounter, count_params

            counter = MacCounter()
            with counter:
                out = module.eval()(torch.randn(shape))
        return count_params(module), counter.total, out

    params = macs = 0
    for cfg, module, formula in (
        [(layout.stem, build_stem(layout.stem), stem_cost(layout.stem))]
        + [(m, build_merging(m), merge_cost(m)) for m in layout.merges]
        + [(b, build_block(b), block_cost(b)) for b in layout.blocks]
        + [(layout.head, build_head(layout.head), head_cost(layout.head.dim, 10))]
    ):
        p, m, out = counted(module, cfg.input_shape(2))
        assert (p, m // 2) == tuple(formula), cfg
        params, macs = params + p, macs + m // 2
    assert out.shape == (2, 10)
    assert (params, macs) == tuple(arch_cost(arch, 32, num_classes=10))


def test_arch_cost_takes_well_under_a_millisecond():
    space = SearchSpace.load("s3-vit")
    archs = [space.sample(random.Random(i)) for i in range(200)]
    seconds = min(timeit.repeat(lambda: [arch_cost(a, 224) for a in archs], number=1, repeat=3)) / len(archs)
    assert seconds < 2e-4
