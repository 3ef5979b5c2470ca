"""Typed method configs: each checks itself when made, is the same run as the string-and-options form, and fails fast."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import nascomp
from nascomp.compression.configs import CONFIGS, chain_options, config_from_options, method_options
from nascomp.core.errors import NascompError
from nascomp.nas.presets import override_routes

ROOT = Path(__file__).resolve().parents[1]
SWIN = "swin_tiny_patch4_window7_224"
TINY = dict(img_size=32, patch_size=4, window_size=4, embed_dim=16, depths=(2, 2), num_heads=(2, 4), in_chans=1, num_classes=10)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: nascomp.ShrinkConfig(), "shrink needs a budget"),
        (lambda: nascomp.ShrinkConfig(budget="2gfloops"), "cannot parse budget"),
        (lambda: nascomp.ShrinkConfig(budget="2gflops", population=0), "population must be positive"),
        (lambda: nascomp.ShrinkConfig(budget="2gflops", widths=(0.5, 1.5)), "widths are kept fractions"),
        (lambda: nascomp.ShrinkConfig(budget="2gflops", timer="cpu"), "timer='cpu'"),
        (lambda: nascomp.Int8Config(mode="int4"), "mode='int4'"),
        (lambda: nascomp.Int8Config(runtime="tensorrt"), "int8 files are made for onnxruntime or executorch"),
        (lambda: nascomp.DropBlocksConfig(), "needs keep"),
        (lambda: nascomp.DropBlocksConfig(keep=(2, 0)), "keep must be positive"),
        (lambda: nascomp.MiniViTConfig(transform_init="zeros"), "transform_init='zeros'"),
        (lambda: nascomp.AutoConfig(budget="15ms@mobile-cpu", runtimes=("onnxruntime", "tflite")), "runtimes='tflite'"),
        (lambda: nascomp.LoraConfig(rank=0), "rank must be an integer"),
        (lambda: nascomp.LokrConfig(targets=("qkv",)), "choose from q, k, v"),
        (lambda: nascomp.KAdaptationConfig(n=31), "odd"),
        (lambda: nascomp.KDConfig(alpha=1.5), "alpha"),
        (lambda: nascomp.SRDConfig(temperature=0.0), "temperature must be > 0"),
        (lambda: nascomp.WeightDistillationConfig(relation_heads=0), "relation_heads"),
    ],
)
def test_a_config_checks_its_values_when_it_is_made(make, message):
    with pytest.raises(NascompError, match=message):
        make()


def test_a_misspelt_field_is_a_type_error_at_once_and_configs_are_frozen():
    with pytest.raises(TypeError, match="budgte"):
        nascomp.ShrinkConfig(budgte="2gflops")
    with pytest.raises(dataclasses.FrozenInstanceError):
        nascomp.ShrinkConfig(budget="2gflops").budget = "1gflops"


@pytest.mark.parametrize("method", sorted(CONFIGS))
def test_options_and_configs_convert_both_ways_for_every_method(method):
    options = (
        {"budget": "2gflops"} if method in ("shrink", "torch-pruning", "auto") else {"keep": [1, 1]} if method == "drop-blocks" else {}
    )
    options.update({"int8": "dynamic"} if method in ("int8", "auto") else {"share": 2} if method == "minivit" else {})
    config = config_from_options(method, options)
    assert type(config).method == method and config.to_options() == options
    assert config_from_options(method, config.to_options()) == config


def test_the_string_form_is_checked_like_a_config_and_names_the_valid_options():
    with pytest.raises(NascompError, match=r"shrink does not take option\(s\) 'budgte'; the options of shrink are .*budget"):
        method_options("shrink", {"budgte": "2gflops"})
    with pytest.raises(NascompError, match="minivit does not take option"):
        method_options("minivit", {"budget": "2gflops"})  # a budget means nothing to weight sharing
    with pytest.raises(NascompError, match="population must be positive"):
        method_options("shrink,int8", {"budget": "2gflops", "population": -1})
    assert method_options("shrink,int8", {"budget": "2gflops", "int8": "dynamic", "timer": "thread-cpu"}) == (
        ["shrink", "int8"],
        {"budget": "2gflops", "int8": "dynamic", "timer": "thread-cpu"},
    )
    with pytest.raises(NascompError, match="not beside them"):
        method_options(nascomp.ShrinkConfig(budget="2gflops"), {"budget": "1gflops"})


def test_a_chain_of_configs_is_the_chain_of_names_and_refuses_two_values_for_one_option():
    assert chain_options([nascomp.ShrinkConfig(budget="10mparams"), nascomp.Int8Config(mode="dynamic")]) == (
        "shrink,int8",
        {"budget": "10mparams", "int8": "dynamic"},
    )
    with pytest.raises(NascompError, match="'timer' is set to 'wall' and 'thread-cpu'"):
        chain_options([nascomp.ShrinkConfig(budget="10mparams", timer="wall"), nascomp.Int8Config(timer="thread-cpu")])
    with pytest.raises(NascompError, match="a chain is one method"):
        method_options([nascomp.Int8Config(), nascomp.ShrinkConfig(budget="10mparams")], None)


def test_compress_with_a_config_is_the_same_run_as_with_a_name_and_options():
    by_name = nascomp.compress(SWIN, "shrink", options={"budget": "0.6mmacs", "population": 4, "generations": 1}, dry_run=True, **TINY)
    by_config = nascomp.compress(SWIN, nascomp.ShrinkConfig(budget="0.6mmacs", population=4, generations=1), dry_run=True, **TINY)
    assert json.dumps(by_config.summary, sort_keys=True) == json.dumps(by_name.summary, sort_keys=True)
    assert by_config.summary["macs_after"] <= 0.6e6 < by_config.summary["macs_before"]


def test_the_readme_form_shrinks_swin_t_to_its_budget():
    """The issue's example: Swin-T under 2 GFLOPs (papers' FLOPs = MACs) as a typed config, a dry run."""
    r = nascomp.compress(SWIN, nascomp.ShrinkConfig(budget="2gflops"), dry_run=True)
    assert r.summary["macs_after"] <= 2e9 < 4.4e9 < r.summary["macs_before"]


def test_adapt_and_distill_take_configs_too():
    kw = dict(img_size=28, patch_size=7, in_chans=1, embed_dim=32, depth=2, num_heads=2)
    a = nascomp.adapt("vit_tiny_patch16_224", nascomp.LoraConfig(rank=2, targets=("q", "v")), num_classes=10, dry_run=True, **kw)
    b = nascomp.adapt("vit_tiny_patch16_224", "lora", options={"rank": 2, "targets": ["q", "v"]}, num_classes=10, dry_run=True, **kw)
    assert a.report == b.report and a.report["method"] == "lora"
    k = nascomp.adapt("vit_tiny_patch16_224", nascomp.KAdaptationConfig(n=4, rank=1), num_classes=10, dry_run=True, **kw)
    assert k.report["method"] == "kadaptation" and k.report["options"]["n"] == 4
    with pytest.raises(NascompError, match="not beside it"):
        nascomp.adapt("vit_tiny_patch16_224", nascomp.LoraConfig(), options={"rank": 3}, dry_run=True, **kw)
    with pytest.raises(NascompError, match="not beside it"):
        nascomp.distill("vit_tiny_patch16_224", "vit_tiny_patch16_224", out="x", method=nascomp.KDConfig(alpha=0.5), options={"alpha": 0.1})


def test_a_bad_config_value_fails_before_torch_loads(tmp_path):
    code = (
        "import sys, nascomp\n"
        "try:\n    nascomp.compress('swin_tiny_patch4_window7_224', 'shrink',\n"
        "                     options={'budget': '2gflops', 'populaton': 8}, dry_run=True)\n"
        "except nascomp.NascompError as e:\n    print(e)\nprint('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path
    ).stdout.splitlines()
    assert "does not take option(s) 'populaton'" in out[0] and out[-1] == "False"


def test_preset_overrides_route_to_exactly_one_dataclass():
    routes = override_routes()
    assert routes["epochs"] == "SupernetPreset" and routes["population"] == "EvolutionConfig" and routes["tau"] == "EvolutionRule"
    assert routes["top"] == "SearchPreset" and len(routes) == len(set(routes))


def test_a_supernet_recipe_composes_a_train_config_and_records_the_flat_layout_runs_resume_with():
    from nascomp.engine import TrainConfig
    from nascomp.nas.presets import PRESETS, resolve_preset
    from nascomp.nas.supernet.recipe import SUPERNET_PRESETS, resolve_recipe, run_options

    recipe = SUPERNET_PRESETS["cpu"].with_overrides({"epochs": 3, "drop_path_rate": 0.2, "opt": "sgd", "lr": None})
    assert isinstance(recipe.train, TrainConfig) and (recipe.train.epochs, recipe.train.opt, recipe.drop_path_rate) == (3, "sgd", 0.2)
    assert recipe.train.lr == SUPERNET_PRESETS["cpu"].train.lr  # None keeps the recipe's
    record = recipe.to_dict()
    # 0.x's layout (what run.json of older runs holds): flat, this order, no nested training config; a newer field only when set
    assert list(record)[:4] == ["resolution", "epochs", "batch_size", "lr"] and "train" not in record and record["opt"] == "sgd"
    assert "opt" not in SUPERNET_PRESETS["cpu"].to_dict() and "seed" not in record and "num_workers" not in record
    assert PRESETS["cpu"].to_dict()["supernet"] == PRESETS["cpu"].supernet.to_dict()
    with pytest.raises(NascompError, match=r"unknown supernet training options \['epoch'\]"):
        SUPERNET_PRESETS["cpu"].with_overrides({"epoch": 3})
    with pytest.raises(NascompError, match="unknown sampler 'sandwitch'"):
        resolve_recipe("smoke", {"sampler": "sandwitch"})
    # run settings travel beside the recipe, not in it
    assert resolve_recipe("smoke", {"num_workers": 0, "epochs": 2}).train.num_workers is None
    assert run_options({"num_workers": 0, "epochs": 2, "amp": None}) == {"num_workers": 0}
    assert resolve_preset("smoke", {"epochs": 5, "population": 4}).supernet.train.epochs == 5
