"""Shrink: the reordered model computes what the original does, its neighbourhood and supernet hold it exactly,
dry runs agree with `nascomp flops`, a tiny end-to-end run (shrink,int8) loads and is measured, and clear errors."""

from __future__ import annotations

import json
import random
import re

import pytest
import timm
import torch

from nascomp.cli import main
from nascomp.compression.registry import method_chain
from nascomp.compression.shrink.importance import measure_importance, reorder
from nascomp.compression.shrink.space import WIDTHS, load_supernet_from, neighbourhood, swin_arch
from nascomp.core.errors import NascompError
from nascomp.models import save_model, timm_spec
from nascomp.nas.supernet.extract import extract
from nascomp.spaces.arch import Arch

SWIN = "swin_tiny_patch4_window7_224"
TINY = dict(img_size=32, patch_size=4, window_size=4, embed_dim=16, depths=(2, 4), num_heads=(2, 4), in_chans=1, num_classes=10)


def _tiny(seed: int = 0):
    torch.manual_seed(seed)
    return timm.create_model(SWIN, **TINY).eval()


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    save_model(out, _tiny(), timm_spec(SWIN, **TINY))
    return out


def _run(argv, capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _scramble(model):
    """Random weights give near-uniform importances; scale units so the ordering is unambiguous and not the identity."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 1:
                p.mul_(torch.rand(p.shape[0], *([1] * (p.ndim - 1)), generator=g) * 2)
    return model


def test_reordered_model_computes_what_the_original_does(one_thread):
    model = _scramble(_tiny())
    x = torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = model(x)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    reorder(model, measure_importance(model, x))
    with torch.no_grad():
        after = model(x)
    moved = [k for k, v in model.state_dict().items() if not torch.equal(v, weights[k])]
    assert any("qkv" in k for k in moved) and any("fc1" in k for k in moved) and any("patch_embed" in k for k in moved)
    assert torch.allclose(before, after, atol=1e-5, rtol=1e-5)
    again = measure_importance(model, x)  # now the most important units lead every layer
    for scores in [*again.embed, *(h for s in again.heads for h in s), *(m for s in again.mlp for m in s)]:
        assert torch.all(scores[:-1] >= scores[1:] - 1e-6)


def test_neighbourhood_supernet_holds_the_model_and_subnets_extract_exactly(one_thread):
    model = _scramble(_tiny())
    arch = swin_arch(model)
    space = neighbourhood(arch, 32)
    assert space.largest() == arch and space.stages[1].heads == (2, 3, 4) and space.stages[0].depth == (1, 2)
    net = load_supernet_from(model, space, arch)
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(net(x), model(x), atol=1e-5)
        for seed in range(3):
            sub = space.sample(random.Random(seed))
            assert all(b.head_dim == d for (i, _, b), d in zip(sub.blocks(), [space.head_dims[i] for i, _, _ in sub.blocks()]))
            net.set_arch(sub)
            assert torch.allclose(net(x), extract(net, sub).eval()(x), atol=1e-5)
    wide_heads = arch.to_dict()
    wide_heads["stages"][1]["blocks"][0].update(heads=2, qkv_dim=32)  # two heads of width 16: not whole heads (width 8) of the model
    assert "heads of width" in space.violation(Arch.from_dict(wide_heads))


def test_dry_run_meets_the_budget_and_matches_nascomp_flops(teacher_dir, tmp_path, capsys):
    code, out, _ = _run(["compress", str(teacher_dir), "--method", "shrink", "--budget", "0.6mmacs", "--dry-run", "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["macs_after"] <= 0.6e6 < doc["macs_before"]
    assert doc["importance"].startswith("skipped")
    arch_file = tmp_path / "arch.json"
    arch_file.write_text(json.dumps(doc["arch"]))
    code, out, _ = _run(["flops", str(arch_file), "--resolution", "32", "--in-chans", "1", "--num-classes", "10", "--json"], capsys)
    flops = json.loads(out)
    assert code == 0 and (flops["params"], flops["macs"]) == (doc["params_after"], doc["macs_after"])


def test_shrink_int8_end_to_end_loads_and_is_measured(teacher_dir, fake_fmnist, tmp_path, one_thread):
    import nascomp

    out = tmp_path / "small"
    r = nascomp.compress(
        str(teacher_dir),
        "shrink,int8",
        "fashion-mnist",
        out,
        options={
            "budget": "0.6mmacs",
            "population": 4,
            "generations": 1,
            "score_images": 50,
            "calib_images": 16,
            "timer": "thread-cpu",
            "repeat": 10,
        },
        data_options={"data_dir": str(fake_fmnist), "limit_train": 256, "limit_test": 50},
        epochs=1,
        quiet=True,
        augment=False,
    )
    assert r.summary["macs_after"] <= 0.6e6 and r.summary["search"]["candidates"] >= 1
    assert nascomp.count_cost(str(out)).macs == r.summary["macs_after"]  # the directory loads as a model
    q = r.metrics["int8"]
    assert r.onnx == out / "model.int8.onnx" and r.onnx.is_file() and q["mode"] == "static" and q["test"]["n"] == 50
    assert q["latency"]["precision"] == "int8" and q["latency"]["protocol"]["target"] == "mobile-cpu"
    assert r.latency_ms == q["latency"]["latency_ms"]
    import onnx

    ops = {n.op_type for n in onnx.load(str(r.onnx)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--budget", "5gflops"], "already meets budget 5gflops"),
        (["--budget", "1kmacs"], "smallest reachable one"),
        (["--budget", "0.3"], "cannot parse budget"),
        ([], "shrink needs a budget"),
    ],
)
def test_clear_errors_leave_nothing_behind(teacher_dir, fake_fmnist, tmp_path, capsys, argv, message):
    out = tmp_path / "never"
    code, _, err = _run(
        ["compress", str(teacher_dir), "--method", "shrink", *argv, "--data-dir", str(fake_fmnist), "--out", str(out)], capsys
    )
    assert code == 2 and message in err and err.count("\n") == 1 and not out.exists()


@pytest.mark.parametrize("model", [["vit_tiny_patch16_224", "--img-size", "32"], ["resnet18"]])
def test_models_without_shrink_support_are_named(model, capsys):
    code, _, err = _run(["compress", *model, "--num-classes", "10", "--method", "shrink", "--budget", "1mmacs", "--dry-run"], capsys)
    assert code == 2 and "shrink works on timm Swin" in err and repr(model[0]) in err


def test_method_chains():
    assert method_chain("shrink,int8") == ["shrink", "int8"] and method_chain("int8") == ["int8"]
    for bad in ("int8,shrink", "shrink,minivit", "auto,int8", "shrink,int8,int8"):
        with pytest.raises(NascompError):
            method_chain(bad)
    with pytest.raises(NascompError, match="did you mean shrink"):
        method_chain("shrnk")


def test_torch_pruning_peer_meets_a_macs_budget(teacher_dir, one_thread):
    import nascomp

    r = nascomp.compress(str(teacher_dir), "torch-pruning", dry_run=True, options={"budget": "0.8mmacs"})
    assert r.summary["macs_after"] <= 0.8e6 and 0 < r.summary["pruning_ratio"] < 0.95
    assert r.summary["arch"]["stages"][1]["blocks"][0]["heads"] == 4  # heads are not pruned by the peer


@pytest.mark.slow
def test_swin_t_dry_run_under_2gflops_matches_nascomp_flops(tmp_path, capsys):
    code, out, _ = _run(["compress", SWIN, "--method", "shrink", "--budget", "2gflops", "--dry-run", "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["macs_after"] <= 2e9 < 4.4e9 < doc["macs_before"]
    arch_file = tmp_path / "arch.json"
    arch_file.write_text(json.dumps(doc["arch"]))
    code, out, _ = _run(["flops", str(arch_file), "--json"], capsys)
    flops = json.loads(out)
    assert (flops["params"], flops["macs"]) == (doc["params_after"], doc["macs_after"])


@pytest.mark.slow
def test_auto_under_a_latency_budget_writes_table_plot_and_best_onnx(teacher_dir, fake_fmnist, tmp_path):
    import nascomp
    from nascomp.compression.shrink.search import shrink_constraint
    from nascomp.nas.budget import parse_budget

    # The budget sits between this machine's latency for the model and for its smallest sub-network: a fixed number in ms
    # is met outright on a fast machine (the table is measured here, and reused by the run below).
    lut = tmp_path / "lut.json"
    model, _ = nascomp.load_model(str(teacher_dir))
    space = neighbourhood(swin_arch(model), 32, WIDTHS)
    table = shrink_constraint(parse_budget("1ms@mobile-cpu"), space, 1, 10, {"timer": "thread-cpu", "lut": str(lut)}, quiet=True)
    original, cheapest = table.cost(swin_arch(model)), table.cost(space.smallest())
    assert cheapest < original
    budget = f"{(original * cheapest) ** 0.5:.4f}ms@mobile-cpu"
    out = tmp_path / "auto"
    r = nascomp.compress(
        str(teacher_dir),
        "auto",
        "fashion-mnist",
        out,
        options={
            "budget": budget,
            "population": 4,
            "generations": 1,
            "score_images": 50,
            "calib_images": 16,
            "timer": "thread-cpu",
            "lut": str(lut),
        },
        data_options={"data_dir": str(fake_fmnist), "limit_train": 256},
        epochs=1,
        quiet=True,
    )
    names = [row["name"] for row in r.table]
    assert names[:2] == ["original", "int8"] and "shrink" in names and "shrink + int8" in names
    assert all((out / f).is_file() for f in ("table.json", "table.csv", "table.md", "pareto.png", "pareto.svg"))
    assert (r.onnx is None) == (r.summary["best"] is None) and (r.onnx is None or r.onnx.is_file())


def test_int8_alone_measures_the_file_it_ships(teacher_dir, fake_fmnist, tmp_path, one_thread):
    import nascomp
    from nascomp.compression.measure import onnx_accuracy

    out = tmp_path / "q"
    r = nascomp.compress(
        str(teacher_dir),
        "int8",
        "fashion-mnist",
        out,
        options={"int8": "dynamic", "timer": "thread-cpu", "repeat": 10},
        data_options={"data_dir": str(fake_fmnist), "limit_test": 50},
        quiet=True,
    )
    q = r.metrics["int8"]
    assert q["mode"] == "dynamic" and r.onnx.is_file() and q["latency"]["precision"] == "int8" and q["fp32_latency"]["precision"] == "fp32"
    bundle = nascomp.load_data("fashion-mnist", str(fake_fmnist), limit_test=50)
    fp32 = onnx_accuracy(out / "model.onnx", bundle.test, bundle.transform(32, 1, train=False))
    assert fp32["top1"] == pytest.approx(r.metrics["model_before_int8"]["test"]["top1"])  # ORT evaluation = torch evaluation
    assert json.loads((out / "metrics.json").read_text())["int8"]["test"] == q["test"]


def test_a_latency_budgeted_shrink_records_the_students_interval_and_its_measurement(
    teacher_dir, fake_fmnist, tmp_path, monkeypatch, capsys
):
    """Shrink under ms: the chosen student's prediction comes with its interval and its end-to-end measurement."""
    from test_predictor_transfer import Fake

    import nascomp
    from nascomp.compression.shrink.search import shrink_constraint
    from nascomp.nas.budget import parse_budget

    fake = Fake(monkeypatch, noise=0.03)
    model, _ = nascomp.load_model(str(teacher_dir))
    space = neighbourhood(swin_arch(model), 32, WIDTHS)
    lut = tmp_path / "lut.json"
    table = shrink_constraint(parse_budget("1ms@mobile-cpu"), space, 1, 10, {"timer": "thread-cpu", "lut": str(lut)}, quiet=True)
    budget = f"{(table.cost(swin_arch(model)) * table.cost(space.smallest())) ** 0.5:.4f}ms@mobile-cpu"
    before = fake.calls["archs"]
    code, out, err = _run(
        [
            "compress",
            str(teacher_dir),
            "--method",
            "shrink",
            "--budget",
            budget,
            "--population",
            "4",
            "--generations",
            "1",
            "--score-images",
            "32",
            "--calib-images",
            "16",
            "--timer",
            "thread-cpu",
            "--lut",
            str(lut),
            "--data",
            "fashion-mnist",
            "--data-dir",
            str(fake_fmnist),
            "--limit-train",
            "64",
            "--limit-test",
            "32",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "run"),
        ],
        capsys,
    )
    assert code == 0, err
    assert re.search(r"latency predicted [\d.]+ ms \(90% interval [\d.]+-[\d.]+\), measured [\d.]+ ms", out), out
    r = json.loads((tmp_path / "run" / "metrics.json").read_text())
    check = r["compress"]["predicted_vs_measured"]
    assert fake.calls["archs"] == before + 1 and check["unit"] == "ms" and check["low"] <= check["predicted"] <= check["high"]
    assert check["measured"] > 0 and check["error"] == pytest.approx(check["predicted"] / check["measured"] - 1, abs=1e-4)
    assert check["meets_measured"] == (check["measured"] <= float(budget.removesuffix("ms@mobile-cpu")))
