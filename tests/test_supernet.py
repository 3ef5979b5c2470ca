"""Supernet: extraction equivalence, weight inheritance across spaces, sampling, training and resume."""

from __future__ import annotations

import json
import random

import pytest
import timm
import torch
from timm.models.swin_transformer import SwinTransformer

from nascomp.cli import main
from nascomp.core.errors import NascompError
from nascomp.core.io import load_tensors
from nascomp.data import load_data
from nascomp.engine import StepContext, evaluate
from nascomp.models import load_model, resolve_model, save_model
from nascomp.models.swin import arch_spec, build_from_arch
from nascomp.nas.supernet import Supernet, extract, load_supernet
from nascomp.nas.supernet.api import train_supernet
from nascomp.nas.supernet.evaluate import evaluate_archs
from nascomp.nas.supernet.train import make_step, sample_subnets
from nascomp.spaces import SearchSpace, StageArch, load_arch
from tests.conftest import TINY_SPACE

CPU_SPACE = SearchSpace.load("s3-vit-cpu")
TINY = SearchSpace.from_dict(TINY_SPACE)


pytestmark = pytest.mark.usefixtures("one_thread")


def _randomise(module: torch.nn.Module, seed: int = 0, std: float = 0.3) -> None:
    """Large random weights everywhere, so that any slicing mistake changes the outputs visibly."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)


@pytest.fixture(scope="module")
def cpu_supernet():
    net = Supernet(CPU_SPACE, num_classes=10, drop_path_rate=0.2)
    _randomise(net)
    return net


@pytest.mark.parametrize("seed", range(4))
def test_extracted_model_matches_the_supernet(cpu_supernet, seed):
    rng = random.Random(seed)
    arch = CPU_SPACE.sample(rng)
    cpu_supernet.set_arch(arch)
    model = extract(cpu_supernet)
    assert type(model) is SwinTransformer
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    cpu_supernet.eval(), model.eval()
    with torch.no_grad():
        expected, got = cpu_supernet(x), model(x)
    assert expected.std() > 0.3  # outputs are far from trivially small
    assert (expected - got).abs().max() <= 1e-5
    cpu_supernet.train(), model.train()  # with drop-path: same random draws in the same order
    torch.manual_seed(seed)
    expected = cpu_supernet(x)
    torch.manual_seed(seed)
    assert (expected - model(x)).abs().max() <= 1e-5


def test_extraction_matches_with_fused_attention(cpu_supernet):
    arch = CPU_SPACE.sample(random.Random(11))
    cpu_supernet.set_arch(arch).eval()
    model = extract(cpu_supernet).eval()
    for m in list(cpu_supernet.modules()) + list(model.modules()):
        if hasattr(m, "fused_attn"):
            m.fused_attn = True
    try:
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            assert (cpu_supernet(x) - model(x)).abs().max() <= 1e-5
    finally:
        for m in cpu_supernet.modules():
            if hasattr(m, "fused_attn"):
                m.fused_attn = False


@pytest.mark.slow
def test_s3_vit_supernet_extracts_s3_t_with_timms_layout():
    net = Supernet(SearchSpace.load("s3-vit"), num_classes=10, img_size=64)
    _randomise(net, std=0.05)
    arch = load_arch("s3-t")
    model = extract(net.set_arch(arch).eval()).eval()
    reference = timm.create_model("swin_s3_tiny_224", num_classes=10, img_size=64)
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (net(x) - model(x)).abs().max() <= 1e-5


def test_uniform_arch_is_literally_a_timm_swin():
    model = build_from_arch(load_arch("swin-t").to_dict(), num_classes=10, img_size=112)
    reference = timm.create_model("swin_tiny_patch4_window7_224", num_classes=10, img_size=112)
    assert type(model) is type(reference)
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}
    model.load_state_dict(reference.state_dict())
    x = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), reference.eval()(x))


def test_non_uniform_stages_use_individually_configured_timm_blocks():
    arch = CPU_SPACE.sample(random.Random(3))
    while all(s.uniform for s in arch.stages):
        arch = CPU_SPACE.mutate(arch, random.Random(4), prob=0.9)
    model = build_from_arch(arch, num_classes=10, img_size=32)
    for i, stage in enumerate(arch.stages):
        for j, block in enumerate(stage.blocks):
            timm_block = model.layers[i].blocks[j]
            assert timm_block.attn.num_heads == block.heads
            assert timm_block.attn.qkv.out_features == 3 * block.qkv_dim
            assert timm_block.mlp.fc1.out_features == int(stage.embed_dim * block.mlp_ratio)
    with pytest.raises(NascompError, match="cannot change it"):
        build_from_arch(arch, embed_dim=64)


def test_set_arch_switches_without_rebuilding_and_refuses_what_does_not_fit(cpu_supernet):
    params = [id(p) for p in cpu_supernet.parameters()]
    cpu_supernet.set_arch(CPU_SPACE.smallest())
    cpu_supernet.set_arch(CPU_SPACE.largest().to_dict())
    assert [id(p) for p in cpu_supernet.parameters()] == params
    largest = CPU_SPACE.largest()
    too_wide = largest.replace_stage(0, StageArch(40, largest.stages[0].blocks))
    with pytest.raises(NascompError, match=r"stages\[0\]\.embed_dim 40 > 16"):
        cpu_supernet.set_arch(too_wide)


def test_grown_and_shrunk_supernets_inherit_every_weight_they_can():
    base = Supernet(TINY, num_classes=4)
    _randomise(base, seed=1)
    grown_space = TINY.with_choices(
        {
            (0, "embed_dim"): [8, 16, 24],
            (0, "window"): [2, 4, 8],
            (1, "heads"): [2, 4, 8],
            (1, "qkv_dim"): [8, 16, 24],
            (1, "depth"): [1, 2, 3],
        }
    )
    shrunk_space = TINY.with_choices({(0, "window"): [4], (1, "mlp_ratio"): [1.0], (0, "qkv_dim"): [8]})
    x = torch.randn(2, 3, 16, 16)
    grown, shrunk = Supernet(grown_space, num_classes=4), Supernet(shrunk_space, num_classes=4)
    grown_report, shrunk_report = grown.inherit_from(base), shrunk.inherit_from(base)
    assert any(".blocks.2." in n for n in grown_report["new"])  # stage 2 got a third block
    assert "layers.1.blocks.0.attn.relative_position_bias_table" in grown_report["partial"]  # more heads
    assert not shrunk_report["new"]
    assert "layers.0.blocks.0.attn.relative_position_bias_table" in shrunk_report["partial"]  # window 8 -> 4: centre
    for net, space in ((grown, TINY), (shrunk, shrunk_space)):  # archs both supernets can run
        for seed in range(4):
            arch = space.sample(random.Random(seed))
            with torch.no_grad():
                assert torch.allclose(net.set_arch(arch).eval()(x), base.set_arch(arch).eval()(x), atol=1e-6)


def test_sandwich_and_uniform_sampling_are_a_function_of_the_step():
    ctx = StepContext(
        epoch=3,
        step=5,
        global_step=0,
        steps_per_epoch=10,
        seed=7,
        device=torch.device("cpu"),
        dist=None,
        amp_dtype=None,
        scaler=None,
        criterion=None,
    )
    first = sample_subnets(CPU_SPACE, ctx.rng(), "sandwich", 2)
    assert first == sample_subnets(CPU_SPACE, ctx.rng(), "sandwich", 2)  # every rank, and after resume
    assert first[0] == CPU_SPACE.smallest() and first[-1] == CPU_SPACE.largest() and len(first) == 4
    assert len(sample_subnets(CPU_SPACE, ctx.rng(), "uniform")) == 1
    with pytest.raises(NascompError, match="unknown sampler"):
        sample_subnets(CPU_SPACE, ctx.rng(), "greedy")
    with pytest.raises(NascompError, match="needs the sandwich sampler"):
        make_step(CPU_SPACE, "uniform", distill=True)


def _tiny_data(fake_fmnist):
    return load_data("fashion-mnist", fake_fmnist, limit_train=96, limit_val=48, limit_test=16)


def test_training_resumes_to_identical_weights_and_saves_a_loadable_supernet(fake_fmnist, tmp_path, monkeypatch):
    data = _tiny_data(fake_fmnist)
    recipe = dict(preset="smoke", resolution=16, epochs=2, batch_size=32, quiet=True, seed=3, drop_path_rate=0.1)
    result = train_supernet(TINY, data, tmp_path / "full", **recipe)
    assert set(result.metrics["val"]["subnets"]) == {"largest", "smallest"} and result.out == tmp_path / "full"

    import nascomp.nas.supernet.train as train_module

    real_make_step = train_module.make_step

    def dying_make_step(*args, **kwargs):
        step = real_make_step(*args, **kwargs)

        def dies(model, images, targets, ctx):
            if ctx.epoch == 1 and ctx.step == 1:
                raise KeyboardInterrupt
            return step(model, images, targets, ctx)

        return dies

    monkeypatch.setattr(train_module, "make_step", dying_make_step)
    with pytest.raises(KeyboardInterrupt):
        train_supernet(TINY, data, tmp_path / "resumed", **recipe)
    monkeypatch.setattr(train_module, "make_step", real_make_step)
    train_supernet(TINY, data, tmp_path / "resumed", resume=True, **recipe)
    a, b = (load_tensors(tmp_path / d / "model.safetensors") for d in ("full", "resumed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    net = load_supernet(tmp_path / "full")
    assert isinstance(net, Supernet) and net.img_size == 16 and net.space == TINY
    transform = data.transform(16, 3, train=False)
    archs = [TINY.largest(), TINY.smallest(), TINY.sample(random.Random(0))]
    fast = evaluate_archs(net, archs, data.val, transform, batch_size=16)
    for arch, result in zip(archs, fast):
        assert result == evaluate(net.set_arch(arch), data.val, transform, batch_size=16)


def test_extracted_model_saves_and_reloads_through_model_specs(tmp_path):
    net = Supernet(TINY, num_classes=4)
    _randomise(net, seed=2)
    arch = TINY.sample(random.Random(2))
    model = extract(net, arch).eval()
    save_model(tmp_path / "sub", model, arch_spec(arch, num_classes=4, img_size=16))
    reloaded, _ = load_model(tmp_path / "sub")
    (tmp_path / "arch.json").write_text(arch.to_json())
    rebuilt, spec = resolve_model(str(tmp_path / "arch.json"), num_classes=4, img_size=16)
    assert spec["kwargs"]["arch"] == arch.to_dict()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(reloaded.eval()(x), model(x))
        assert (net.set_arch(arch).eval()(x) - model(x)).abs().max() <= 1e-5
    assert rebuilt.state_dict().keys() == model.state_dict().keys()


def test_supernet_cli_train_eval_extract(fake_fmnist, tmp_path, capsys):
    space_file = tmp_path / "tiny.yaml"
    TINY.save(space_file)
    common = ["--data-dir", str(fake_fmnist), "--limit-val", "32"]
    assert (
        main(
            [
                "supernet",
                "train",
                "--space",
                str(space_file),
                "--preset",
                "smoke",
                "--resolution",
                "16",
                "--limit-train",
                "64",
                "--distill",
                "--out",
                str(tmp_path / "run"),
                "--quiet",
                "--json",
                *common,
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["val"]["subnets"]) == {"largest", "smallest"}
    assert main(["supernet", "eval", str(tmp_path / "run"), "--arch", "largest", "--arch", "smallest", "--json", *common]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["arch"] for r in rows] == ["largest", "smallest"] and rows[0]["n"] == 32
    assert main(["supernet", "extract", str(tmp_path / "run"), "--arch", "largest", "--out", str(tmp_path / "sub")]) == 0
    model, _ = load_model(tmp_path / "sub")
    assert isinstance(model, SwinTransformer)
    assert main(["supernet", "train", "--space", "no-such-space", "--out", str(tmp_path / "x")]) == 2
