"""Arch, SearchSpace and layout: membership, variation operators, validation, timm's window rule."""

from __future__ import annotations

import collections
import itertools
import json
import random

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from timm.models.swin_transformer import SwinTransformerBlock

from nascomp.core.errors import NascompError
from nascomp.cost.arch_cost import arch_cost
from nascomp.spaces import (
    DIMENSIONS,
    Arch,
    BlockArch,
    SearchSpace,
    StageArch,
    arch_layout,
    block_configs,
    clamp_window,
    list_archs,
    list_spaces,
    load_arch,
)

SPACES = {name: SearchSpace.load(name) for name in ("s3-vit", "s3-vit-cpu")}
seeds = st.integers(0, 2**32 - 1)

# A space small enough to enumerate every member by brute force.
TINY = {
    "name": "tiny",
    "resolution": 16,
    "patch_size": 2,
    "stages": [
        {"depth": [1, 2], "embed_dim": [8, 16], "heads": [1, 2], "qkv_dim": [8, 12], "mlp_ratio": [2.0], "window": [4, 8]},
        {"depth": [1], "embed_dim": [16], "heads": [2, 4], "qkv_dim": [8, 16], "mlp_ratio": [1.5, 2.0], "window": [4]},
    ],
}


pytestmark = pytest.mark.usefixtures("one_thread")


def _brute_force_members(space: SearchSpace) -> set[Arch]:
    per_stage = []
    for ch in space.stages:
        blocks = [BlockArch(h, q, m, w) for (h, q) in ch.attention_pairs for m in ch.mlp_ratio for w in ch.window]
        stage_options = []
        for depth in ch.depth:
            for embed in ch.embed_dim:
                for combo in itertools.product(blocks, repeat=depth):
                    stage_options.append((embed, combo))
        per_stage.append(stage_options)
    members = set()
    for choice in itertools.product(*per_stage):
        members.add(Arch(tuple(StageArch(e, b) for e, b in choice), space.patch_size))
    return members


def test_shipped_spaces_and_archs_are_listed_and_load():
    assert {"s3-vit", "s3-vit-cpu"} <= set(list_spaces())
    assert {"swin-t", "s3-t"} <= set(list_archs())
    with pytest.raises(NascompError, match="did you mean s3-vit"):
        SearchSpace.load("s3-vitt")


def test_s3_vit_contains_swin_t_and_s3_t_and_spans_the_4g_budget():
    space = SPACES["s3-vit"]
    swin_t, s3_t = load_arch("swin-t"), load_arch("s3-t")
    assert swin_t in space and s3_t in space
    # the shipped JSONs are the timm models' configurations
    assert swin_t == Arch.swin((2, 2, 6, 2), (96, 192, 384, 768), (3, 6, 12, 24), 7)
    assert s3_t == Arch.swin((2, 2, 6, 2), (96, 192, 384, 768), (3, 6, 12, 24), (7, 7, 14, 7))
    small, large = (arch_cost(a, 224).macs / 1e9 for a in (space.smallest(), space.largest()))
    assert small < 2.5 < 4.0 < 6.0 < large


def test_size_equals_brute_force_enumeration_and_sampling_reaches_every_member():
    space = SearchSpace.from_dict(TINY)
    members = _brute_force_members(space)
    assert space.size() == len(members)
    rng = random.Random(0)
    seen = {space.sample(rng) for _ in range(20 * len(members))}
    assert seen <= members
    assert len(seen) > 0.5 * len(members)


def test_sampling_is_uniform_per_dimension():
    space = SPACES["s3-vit-cpu"]
    rng = random.Random(1)
    depth3 = collections.Counter(space.sample(rng).stages[2].depth for _ in range(3000))
    assert set(depth3) == {2, 3, 4}
    assert all(abs(c / 3000 - 1 / 3) < 0.04 for c in depth3.values())


@settings(max_examples=40, deadline=None)
@given(seed=seeds, name=st.sampled_from(sorted(SPACES)))
def test_samples_mutants_and_children_are_members_and_round_trip(seed, name):
    space = SPACES[name]
    rng = random.Random(seed)
    a, b = space.sample(rng), space.sample(rng)
    child = space.crossover(a, b, rng)
    mutant = space.mutate(a, rng, prob=0.5, stage_prob=0.5)
    for arch in (a, b, child, mutant):
        assert space.contains(arch), space.violation(arch)
        again = Arch.from_dict(json.loads(arch.to_json()))
        assert again == arch and hash(again) == hash(arch)
    for i in range(space.num_stages):  # crossover genes come from a parent
        assert child.stages[i].depth in (a.stages[i].depth, b.stages[i].depth)
        assert child.stages[i].embed_dim in (a.stages[i].embed_dim, b.stages[i].embed_dim)


def test_constrained_sampling_and_impossible_constraint():
    space = SPACES["s3-vit"]
    budget = 3.0e9
    arch = space.sample(0, constraint=lambda a: arch_cost(a, 224).macs <= budget)
    assert arch_cost(arch, 224).macs <= budget
    with pytest.raises(NascompError, match="constraint"):
        space.sample(0, constraint=lambda a: False, max_tries=50)


def test_membership_names_the_offending_key():
    space = SPACES["s3-vit"]
    s3_t = load_arch("s3-t")
    deeper = s3_t.replace_stage(2, StageArch(384, s3_t.stages[2].blocks * 2))
    assert "stages[2].depth 12" in space.violation(deeper)
    other_patch = Arch(s3_t.stages, patch_size=2)
    assert "patch_size" in space.violation(other_patch)
    with pytest.raises(NascompError, match="not in search space"):
        space.mutate(deeper, 0)


def test_choices_subspaces_and_with_choices():
    space = SPACES["s3-vit"]
    assert len(space.subspaces()) == space.num_stages * len(DIMENSIONS)
    assert space.choices(2, "window") == (7, 14)
    evolved = space.with_choices({(0, "window"): [7], (2, "depth"): [6, 7, 8, 9]}, name="s3-vit-step1")
    assert evolved.choices(0, "window") == (7,) and evolved.choices(2, "depth") == (6, 7, 8, 9)
    assert space.choices(0, "window") == (7, 14)  # the original is unchanged
    assert SearchSpace.from_dict(yaml.safe_load(evolved.to_yaml())) == evolved
    with pytest.raises(NascompError, match=r"stages\[3\]\.window: 14 is larger than stage 4's 7x7"):
        space.with_choices({(3, "window"): [7, 14]})
    with pytest.raises(NascompError, match=r"stages\[1\]\.heads: 9 heads divide none"):
        space.with_choices({(1, "heads"): [4, 9]})
    with pytest.raises(NascompError, match="unknown dimension"):
        space.choices(0, "width")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["stages"][0].update(windows=[4]), r"unknown dimension 'windows' \(did you mean 'window'\?\)"),
        (lambda d: d["stages"][0].pop("heads"), r"missing dimensions \['heads'\]"),
        (lambda d: d["stages"][0].update(window=[3]), r"stages\[0\]\.window: 3 does not tile"),
        (lambda d: d["stages"][0].update(depth=[0, 1]), r"stages\[0\]\.depth: choices must be positive integers"),
        (lambda d: d["stages"][1].update(qkv_dim=[6]), r"stages\[1\]\.heads: 4 heads divide none"),
        (lambda d: d.update(resolution=15), "not divisible by patch_size"),
        (lambda d: d.update(stage=[]), "unknown keys"),
    ],
)
def test_space_validation_errors_name_the_key(edit, message):
    doc = json.loads(json.dumps(TINY))
    edit(doc)
    with pytest.raises(NascompError, match=message):
        SearchSpace.from_dict(doc)


def test_arch_validation_and_compact_stage_form():
    compact = {"patch_size": 4, "stages": [{"embed_dim": 96, "depth": 2, "heads": 3, "qkv_dim": 96, "mlp_ratio": 4, "window": 7}]}
    arch = Arch.from_dict(compact)
    assert arch.depths == (2,) and arch.stages[0].uniform and arch.stages[0].blocks[0].head_dim == 32
    bad = json.loads(json.dumps(compact))
    bad["stages"][0]["qkv_dim"] = 100
    with pytest.raises(NascompError, match="qkv_dim 100 is not divisible by heads 3"):
        Arch.from_dict(bad)
    with pytest.raises(NascompError, match=r"stages\[0\]\.blocks\[0\]: unknown keys \['head'\]"):
        Arch.from_dict({"stages": [{"embed_dim": 8, "blocks": [{"head": 1, "heads": 1, "qkv_dim": 8, "mlp_ratio": 2, "window": 2}]}]})


@pytest.mark.parametrize(
    "resolution, window, index", [(r, w, i) for r in (1, 2, 4, 7, 8, 14, 16, 28) for w in (2, 4, 7, 8, 14) for i in (0, 1)]
)
def test_clamp_window_is_timms_rule(resolution, window, index):
    block = SwinTransformerBlock(
        dim=8,
        input_resolution=(resolution, resolution),
        num_heads=1,
        window_size=window,
        shift_size=window // 2 if index % 2 else 0,
        device="meta",
    )
    assert clamp_window(resolution, window, index) == (block.window_size[0], block.shift_size[0])


def test_layout_resolves_windows_per_block_at_the_resolution():
    s3_t = load_arch("s3-t")
    layout = arch_layout(s3_t, 224)
    assert layout.resolutions == (56, 28, 14, 7)
    stage3 = layout.stage_blocks(2)
    assert all(b.window == 14 and b.shift == 0 for b in stage3)  # S3-T stage 3: global, never shifted
    assert [b.shift for b in layout.stage_blocks(0)] == [0, 3]
    assert len(list(block_configs(s3_t, 224))) == sum(s3_t.depths)
    proxy = arch_layout(s3_t, 32)
    assert proxy.resolutions == (8, 4, 2, 1)
    assert [b.window for b in proxy.blocks] == [7, 7] + [4] * 2 + [2] * 6 + [1] * 2


def test_degenerate_windows_are_reported_at_a_proxy_resolution():
    notes = " ".join(SPACES["s3-vit"].degenerate_windows(32))
    assert "stage 2: window choices [7, 14] become [4]" in notes
    assert "become" not in " ".join(SPACES["s3-vit"].degenerate_windows(224))


def test_collapsed_dimensions_of_s3_vit_at_the_32_px_proxy():
    """Maps 8/4/2/1: stage 2-3 windows clamp alike, stage 4 is one token; at 224 px (56/28/14/7) nothing collapses."""
    space = SPACES["s3-vit"]
    collapsed = {(c.stage, c.dimension): c.fixed for c in space.collapsed(32)}
    assert collapsed == {(1, "window"): 7, (2, "window"): 7, (3, "qkv_dim"): 768, (3, "heads"): 24}
    assert space.collapsed(224) == [] and SPACES["s3-vit-cpu"].collapsed(32) == []
    assert [(c.stage, c.dimension) for c in space.collapsed(112)] == [(2, "window")]  # a 7x7 stage-3 map: 7 and 14 both global
    pinned = space.pinned(32)
    assert pinned.stages[3].heads == (24,) and pinned.stages[3].qkv_dim == (768,) and pinned.stages[1].window == (7,)
    assert pinned.stages[0] == space.stages[0] and pinned.stages[2].heads == space.stages[2].heads  # 2x2 attention still varies
    assert pinned.collapsed(32) == []


def test_collapsed_choices_compute_the_same_function_and_live_ones_do_not():
    """The definition checked on the supernet itself: swapping a collapsed choice leaves the logits unchanged."""
    import torch

    from nascomp.nas.supernet import Supernet
    from nascomp.spaces import BlockArch

    space = SPACES["s3-vit"]
    torch.manual_seed(0)
    net = Supernet(space, num_classes=10, img_size=32, drop_path_rate=0.0).eval()
    x = torch.randn(2, 3, 32, 32)
    base = Arch.swin([1, 1, 4, 1], [80, 160, 320, 640], [2, 4, 8, 16], 7, mlp_ratio=3.0)

    def with_blocks(arch, stage, **change):
        s = arch.stages[stage]
        return arch.replace_stage(stage, StageArch(s.embed_dim, tuple(BlockArch(**{**b.to_dict(), **change}) for b in s.blocks)))

    def logits(arch):
        with torch.no_grad():
            return net.set_arch(arch)(x)

    ref = logits(base)
    for stage, change in ((1, {"window": 14}), (2, {"window": 14}), (3, {"heads": 32}), (3, {"heads": 20})):
        assert torch.allclose(logits(with_blocks(base, stage, **change)), ref, atol=1e-5), (stage, change)
    for stage, change in ((0, {"window": 14}), (2, {"heads": 16}), (3, {"mlp_ratio": 4.0}), (3, {"qkv_dim": 768, "heads": 16})):
        assert not torch.allclose(logits(with_blocks(base, stage, **change)), ref, atol=1e-3), (stage, change)
