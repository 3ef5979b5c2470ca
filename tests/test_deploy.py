"""nascomp.deploy on its own: ONNX export checked against eager PyTorch in ONNX Runtime, the ``auto`` exporter's fallback
from TorchScript to dynamo (forced), and export arguments refused with one NascompError before any work.

ExecuTorch (.pte) export is tested in tests/test_executorch.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import nascomp
from nascomp.core.errors import NascompError
from nascomp.deploy import onnx as deploy_onnx
from nascomp.deploy.onnx import export_onnx
from tests.conftest import TINY_VIT

pytestmark = pytest.mark.usefixtures("one_thread")


def _eager_vs_ort(model: torch.nn.Module, path: Path, batch: int = 1, seed: int = 7) -> float:
    """Largest |ONNX Runtime - eager| on a fresh random input (not the one the export was checked on)."""
    import onnxruntime as ort

    x = torch.randn(batch, TINY_VIT["in_chans"], TINY_VIT["img_size"], TINY_VIT["img_size"], generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected = model.eval()(x).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert got.shape == expected.shape == (batch, TINY_VIT["num_classes"])
    return float(np.abs(got - expected).max())


@pytest.fixture
def exporters_run(monkeypatch):
    """Records each exporter `export_onnx` tries; ``fail`` (a set of exporter names) makes those raise as a real failure would."""
    calls, fail, real = [], set(), deploy_onnx._export_once

    def export_once(model, x, path, exporter, opset):
        calls.append(exporter)
        if exporter in fail:
            raise RuntimeError(f"forced {exporter} failure")
        real(model, x, path, exporter, opset)

    monkeypatch.setattr(deploy_onnx, "_export_once", export_once)
    return calls, fail


def _only(folder: Path, *names: str) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(names), "temporary export files were left behind"


def test_onnx_export_computes_what_eager_pytorch_computes(tiny_vit, tmp_path, exporters_run):
    calls, _ = exporters_run
    result = nascomp.export(tiny_vit, tmp_path / "out" / "m.onnx", batch=2)
    assert calls == ["torchscript"]  # auto tries TorchScript first and keeps its file when ONNX Runtime agrees
    assert (result.path, result.exporter, result.opset, result.input_shape) == (
        tmp_path / "out" / "m.onnx",
        "torchscript",
        17,
        (2, 1, 28, 28),
    )
    assert result.max_abs_diff <= 1e-4 and result.size_bytes == result.path.stat().st_size
    assert _eager_vs_ort(tiny_vit, result.path, batch=2) < 1e-4
    _only(tmp_path / "out", "m.onnx")


def test_auto_falls_back_to_dynamo_when_torchscript_fails(tiny_vit, tmp_path, exporters_run):
    calls, fail = exporters_run
    fail.add("torchscript")
    result = export_onnx(tiny_vit, tmp_path / "m.onnx", resolution=28, in_chans=1)
    assert calls == ["torchscript", "dynamo"]
    assert result.exporter == "dynamo" and result.to_dict()["exporter"] == "dynamo"  # what made the file is recorded
    assert result.opset >= 18 and result.opset in range(18, 24)
    assert _eager_vs_ort(tiny_vit, result.path) < 1e-4
    _only(tmp_path, "m.onnx")


def test_auto_falls_back_when_the_torchscript_file_computes_something_else(tiny_vit, tmp_path, monkeypatch):
    """A file that exports but disagrees with PyTorch in ONNX Runtime is a failure too: the dynamo file is kept instead."""
    import timm

    other = timm.create_model("vit_tiny_patch16_224", **TINY_VIT).eval()
    real, calls = deploy_onnx._export_once, []

    def export_once(model, x, path, exporter, opset):
        calls.append(exporter)
        real(other if exporter == "torchscript" else model, x, path, exporter, opset)

    monkeypatch.setattr(deploy_onnx, "_export_once", export_once)
    result = export_onnx(tiny_vit, tmp_path / "m.onnx", resolution=28, in_chans=1)
    assert calls == ["torchscript", "dynamo"] and result.exporter == "dynamo"
    assert _eager_vs_ort(tiny_vit, result.path) < 1e-4
    _only(tmp_path, "m.onnx")


def test_when_every_exporter_fails_it_is_one_error_naming_each_and_nothing_is_written(tiny_vit, tmp_path, exporters_run):
    calls, fail = exporters_run
    fail.update({"torchscript", "dynamo"})
    with pytest.raises(NascompError) as e:
        export_onnx(tiny_vit, tmp_path / "new" / "m.onnx", resolution=28, in_chans=1)
    assert calls == ["torchscript", "dynamo"]
    assert str(e.value) == (
        "ONNX export failed: torchscript: RuntimeError: forced torchscript failure | dynamo: RuntimeError: forced dynamo failure"
    )
    _only(tmp_path)  # neither a temporary file nor the folder the export created is left


def test_a_chosen_exporter_or_an_opset_only_one_exporter_writes_is_not_a_fallback(tiny_vit, tmp_path, exporters_run):
    calls, fail = exporters_run
    fail.update({"torchscript", "dynamo"})
    with pytest.raises(NascompError, match="^ONNX export failed: torchscript: RuntimeError: forced torchscript failure$"):
        export_onnx(tiny_vit, tmp_path / "m.onnx", resolution=28, in_chans=1, exporter="torchscript")
    assert calls == ["torchscript"]
    calls.clear()
    with pytest.raises(NascompError, match="^ONNX export failed: dynamo: RuntimeError: forced dynamo failure$"):
        nascomp.export(tiny_vit, tmp_path / "m.onnx", opset=21)  # 21: past TorchScript's opsets, so auto goes straight to dynamo
    assert calls == ["dynamo"]
    _only(tmp_path)


def _folder_with_a_file(tmp: Path) -> Path:
    (tmp / "theirs").mkdir()
    (tmp / "theirs" / "notes.txt").write_text("not nascomp's")
    return tmp / "theirs"


def _a_file(tmp: Path) -> Path:
    (tmp / "a-file").write_text("not a folder")
    return tmp / "a-file"


# (call arguments beside the model, what the one-line error says); {tmp} is the test's folder
BAD_EXPORTS = {
    "unknown format": ({"format": "tflite"}, "format 'tflite': choose from onnx, pte"),
    "unknown exporter": ({"exporter": "tvm"}, "exporter 'tvm': choose from auto, torchscript, dynamo"),
    "opset no exporter writes": ({"opset": 5}, "the auto exporter writes opsets 7..23"),
    "opset the exporter does not write": ({"opset": 22, "exporter": "torchscript"}, "the torchscript exporter writes opsets 7..20"),
    "opset not an integer": ({"opset": 17.0}, "opset 17.0"),
    "resolution 0": ({"resolution": 0}, "resolution must be positive"),
    "batch 0": ({"batch": 0}, "batch must be positive"),
    "resolution the model cannot run at": ({"resolution": 32}, "cannot run on a (1, 1, 32, 32) input"),
    "missing checkpoint": ({"checkpoint": "{tmp}/no-such.safetensors"}, "no-such.safetensors"),
    "out is a folder": ({"out": "{tmp}"}, "is a folder; give a file path"),
    "out below a file": ({"out": "{file}/m.onnx"}, "is a file"),
    "no out for a module": ({"out": None}, "export needs out=PATH for a model given as an object"),
    "unknown precision": ({"format": "pte", "precision": "int4"}, "precision 'int4': choose from fp32, int8"),
    "unknown int8 quantization": ({"format": "pte", "precision": "int8", "quantization": "awq"}, "'awq': choose static"),
    "pte out holding other files": ({"format": "pte", "out": "{theirs}"}, "holds files nascomp did not write"),
}


@pytest.mark.parametrize("case", sorted(BAD_EXPORTS))
def test_bad_export_arguments_are_one_error_before_any_work(case, tiny_vit, tmp_path, exporters_run):
    kwargs, message = BAD_EXPORTS[case]
    places = {"{tmp}": tmp_path, "{file}": _a_file(tmp_path), "{theirs}": _folder_with_a_file(tmp_path)}

    def placed(value):
        for key, path in places.items():
            value = value.replace(key, str(path)) if isinstance(value, str) else value
        return value

    kwargs = {k: placed(v) for k, v in {"out": str(tmp_path / "new" / "m.onnx"), **kwargs}.items()}
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(NascompError) as e:
        nascomp.export(tiny_vit, **kwargs)
    assert message in str(e.value) and "\n" not in str(e.value), str(e.value)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before, "a refused export wrote something"
    calls, _ = exporters_run
    assert calls == [], "an exporter ran before the arguments were checked"


def test_an_unknown_model_name_is_refused_before_any_work(tmp_path):
    with pytest.raises(NascompError, match="did you mean vit_tiny_patch16_224"):
        nascomp.export("vit_tiny_patch16_2244", tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_export_onnx_needs_an_input_shape_or_an_example(tiny_vit, tmp_path):
    with pytest.raises(NascompError, match="export needs a positive resolution"):
        export_onnx(tiny_vit, tmp_path / "m.onnx")
    with pytest.raises(NascompError, match="exporter 'onnxscript': choose from auto, torchscript, dynamo"):
        export_onnx(tiny_vit, tmp_path / "m.onnx", resolution=28, in_chans=1, exporter="onnxscript")
    assert list(tmp_path.iterdir()) == []
