"""Run logging: each backend writes what it is given and it reads back; resume leaves no duplicated step in TensorBoard."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path

import pytest

from nascomp.core import runlog
from nascomp.core.errors import NascompError
from nascomp.core.runlog import MultiLogger, NullLogger, RunLogger, TensorBoardLogger, logger_names, make_logger, read_scalars

needs_tensorboard = pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is None, reason="the tensorboard package is not installed (pip install 'nascomp[tensorboard]')"
)
needs_wandb = pytest.mark.skipif(
    importlib.util.find_spec("wandb") is None, reason="the wandb package is not installed (pip install 'nascomp[wandb]')"
)
needs_mlflow = pytest.mark.skipif(
    importlib.util.find_spec("mlflow") is None, reason="the mlflow package is not installed (pip install 'nascomp[mlflow]')"
)

CONFIG = {"recipe": {"lr": 0.001, "epochs": 3}, "model": "swin_tiny_patch4_window7_224"}


def raw_scalar_events(run_dir: Path) -> list[tuple[str, int, float]]:
    """Every scalar event in the event files as written (no de-duplication), in file order."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util.tensor_util import make_ndarray

    events = []
    for path in sorted((run_dir / runlog.TB_DIR).glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for v in event.summary.value:
                if v.metadata.plugin_data.plugin_name == "scalars":
                    events.append((v.tag, event.step, float(make_ndarray(v.tensor))))
    return events


def accumulated(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    """What TensorBoard itself shows for ``tag``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / runlog.TB_DIR), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def duplicated(events) -> list[tuple[str, int]]:
    return [key for key, n in Counter((tag, step) for tag, step, _ in events).items() if n > 1]


def train_session(logger: RunLogger, steps: range, session: int) -> None:
    """What a training loop logs: loss and throughput at global optimiser steps."""
    for step in steps:
        logger.scalars({"train/loss": 10.0 * session + step / 100, "train/images_per_s": 500.0 + step}, step)


# --- the factory ------------------------------------------------------------------------------------


def test_spec_parsing_and_errors(monkeypatch):
    monkeypatch.setattr(runlog, "_installed", lambda module: True)
    assert logger_names("tensorboard, WANDB,tensorboard") == ["tensorboard", "wandb"]
    assert logger_names(["mlflow", "none,tensorboard"]) == ["mlflow", "tensorboard"]
    assert logger_names("none") == [] and logger_names(["none"]) == []
    with pytest.raises(NascompError, match=r"unknown logger 'tensorbord'; choose from tensorboard, wandb, mlflow, none or auto"):
        logger_names("tensorbord")
    monkeypatch.setattr(runlog, "_installed", lambda module: module != "wandb")
    with pytest.raises(NascompError, match=r"the wandb logger needs the wandb package: pip install 'nascomp\[wandb\]'"):
        make_logger("tensorboard,wandb", "unused", run_name="x")
    monkeypatch.setattr(runlog, "_installed", lambda module: False)
    assert logger_names(None) == logger_names("auto") == []  # auto without tensorboard: no logging, no error
    assert isinstance(make_logger(None, "unused", run_name="x"), NullLogger)
    with pytest.raises(NascompError, match=r"pip install 'nascomp\[mlflow\]'"):
        make_logger("mlflow", "unused", run_name="x", rank=1)  # every rank checks, so all fail alike


@needs_tensorboard
def test_auto_is_tensorboard_and_other_ranks_log_nothing(tmp_path):
    assert logger_names(None) == ["tensorboard"]
    quiet = make_logger("tensorboard", tmp_path / "rank1", run_name="x", config=CONFIG, rank=1)
    assert type(quiet) is NullLogger
    with quiet:
        train_session(quiet, range(3), 1)
    assert not (tmp_path / "rank1").exists()
    with make_logger("auto", tmp_path / "rank0", run_name="x", config=CONFIG) as logger:
        assert isinstance(logger, TensorBoardLogger)
        train_session(logger, range(3), 1)
    assert [s for s, _ in read_scalars(tmp_path / "rank0")["train/loss"]] == [0, 1, 2]


def test_importing_the_logger_loads_no_backend():
    import subprocess
    import sys

    code = "import sys, nascomp.core.runlog; print(sorted(m for m in ('torch', 'tensorboard', 'wandb', 'mlflow') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_bad_steps_are_programming_errors(tmp_path):
    with pytest.raises(ValueError, match="non-negative integer"):
        make_logger("none", tmp_path, run_name="x", resume=True, resume_step=-1)
    if importlib.util.find_spec("tensorboard") is not None:
        with make_logger("tensorboard", tmp_path, run_name="x") as logger:
            for step in (1.5, -1, True):
                with pytest.raises(ValueError, match="non-negative integer"):
                    logger.scalar("train/loss", 1.0, step)


def test_multi_logger_fans_out_and_closes_all():
    calls = []

    class Recorder(RunLogger):
        def __init__(self, name, fail=False):
            self.name, self.fail = name, fail

        def scalars(self, values, step):
            calls.append((self.name, "scalars", dict(values), step))

        def text(self, tag, text, step):
            calls.append((self.name, "text", tag, step))

        def table(self, tag, rows, step):
            calls.append((self.name, "table", tag, len(rows)))

        def close(self):
            calls.append((self.name, "close"))
            if self.fail:
                raise OSError("disk full")

    multi = MultiLogger([Recorder("a", fail=True), Recorder("b")])
    assert make_logger(multi, "unused", run_name="x") is multi and isinstance(
        make_logger(multi, "unused", run_name="x", rank=2), NullLogger
    )
    multi.scalar("search/best_top1", 71.5, 4)
    multi.text("decisions", "stage 1 depth moved", 1)
    multi.table("et", [{"stage": 1, "Q": 22.1}], 1)
    with pytest.raises(OSError, match="disk full"):
        multi.close()
    assert calls == [
        ("a", "scalars", {"search/best_top1": 71.5}, 4),
        ("b", "scalars", {"search/best_top1": 71.5}, 4),
        ("a", "text", "decisions", 1),
        ("b", "text", "decisions", 1),
        ("a", "table", "et", 1),
        ("b", "table", "et", 1),
        ("a", "close"),
        ("b", "close"),
    ]


# --- TensorBoard ------------------------------------------------------------------------------------


@needs_tensorboard
def test_tensorboard_writes_and_reads_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with make_logger("tensorboard", tmp_path, run_name="x", config=CONFIG) as logger:
        train_session(logger, range(0, 40, 4), 1)
        logger.text("evolution/decisions", "stage 2 **depth** {2, 4} -> {4, 6}", 1)
        logger.table("evolution/et", [{"stage": 1, "dimension": "depth", "Q": 22.5}, {"stage": 2, "dimension": "heads|x", "Q": None}], 1)
    scalars = read_scalars(tmp_path)
    assert sorted(scalars) == ["train/images_per_s", "train/loss"]
    assert scalars["train/images_per_s"] == [(s, 500.0 + s) for s in range(0, 40, 4)]
    assert all(isinstance(step, int) for step, _ in scalars["train/loss"])
    assert read_scalars(tmp_path / runlog.TB_DIR) == scalars
    acc = EventAccumulator(str(tmp_path / runlog.TB_DIR))
    acc.Reload()
    texts = {tag: [t.tensor_proto.string_val[0].decode() for t in acc.Tensors(tag)] for tag in acc.Tags()["tensors"]}
    assert '"lr": 0.001' in texts["config/text_summary"][0]
    assert texts["evolution/decisions/text_summary"] == ["stage 2 **depth** {2, 4} -> {4, 6}"]
    assert texts["evolution/et/text_summary"][0].splitlines() == [
        "| stage | dimension | Q |",
        "|---|---|---|",
        "| 1 | depth | 22.5 |",
        "| 2 | heads\\|x |  |",
    ]


def test_read_scalars_of_a_run_without_event_files(tmp_path):
    assert read_scalars(tmp_path) == {}


@needs_tensorboard
def test_resume_leaves_no_duplicated_step_and_a_continuous_curve(tmp_path):
    # session 1 logs steps 0..29, then dies; its last checkpoint was written after step 19
    with make_logger("tensorboard", tmp_path, run_name="x", config=CONFIG) as logger:
        train_session(logger, range(30), 1)
    # session 2 resumes from that checkpoint and logs 20..49 again
    with make_logger("tensorboard", tmp_path, run_name="x", config=CONFIG, resume=True, resume_step=20) as logger:
        train_session(logger, range(20, 50), 2)
    # session 3: a pipeline that skips finished stages appends new steps only
    with make_logger("tensorboard", tmp_path, run_name="x", config=CONFIG, resume=True) as logger:
        logger.scalar("train/loss", 99.0, 50)
    events = raw_scalar_events(tmp_path)
    assert len(list((tmp_path / runlog.TB_DIR).glob("events.out.tfevents.*"))) == 3
    assert duplicated(events) == []
    expected = [(s, 10.0 + s / 100) for s in range(20)] + [(s, 20.0 + s / 100) for s in range(20, 50)] + [(50, 99.0)]
    for curve in (read_scalars(tmp_path)["train/loss"], accumulated(tmp_path, "train/loss")):
        assert [s for s, _ in curve] == list(range(51))  # continuous: every step once, in order
        assert [v for _, v in curve] == pytest.approx([v for _, v in expected])
    assert [s for s, _ in read_scalars(tmp_path)["train/images_per_s"]] == list(range(50))
    # the config was recorded once, by the first session
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / runlog.TB_DIR))
    acc.Reload()
    assert len(acc.Tensors("config/text_summary")) == 1


@needs_tensorboard
def test_the_duplicate_check_catches_a_resume_without_resume_step(tmp_path):
    """The property above can fail: appending the re-run steps (no resume_step) duplicates them."""
    with make_logger("tensorboard", tmp_path, run_name="x") as logger:
        train_session(logger, range(30), 1)
    with make_logger("tensorboard", tmp_path, run_name="x", resume=True) as logger:
        train_session(logger, range(20, 50), 2)
    assert sorted(duplicated(raw_scalar_events(tmp_path))) == sorted(
        (t, s) for t in ("train/images_per_s", "train/loss") for s in range(20, 30)
    )
    assert [s for s, _ in read_scalars(tmp_path)["train/loss"]] == list(range(50))  # the reader keeps the last value


@needs_tensorboard
def test_fresh_run_replaces_old_event_files(tmp_path):
    with make_logger("tensorboard", tmp_path, run_name="x") as logger:
        train_session(logger, range(10), 1)
    with make_logger("tensorboard", tmp_path, run_name="x") as logger:
        train_session(logger, range(3), 2)
    curve = read_scalars(tmp_path)["train/loss"]
    assert [s for s, _ in curve] == [0, 1, 2] and [v for _, v in curve] == pytest.approx([20.0, 20.01, 20.02])


# --- Weights & Biases (offline) -------------------------------------------------------------------------


def wandb_records(path: Path) -> list:
    """The records of a ``.wandb`` file: a 7-byte header, then LevelDB-log chunks (crc32, length, type) in 32 KiB blocks."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pending, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a chunk header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        if kind == 0:
            break
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last chunk of one
            records.append(wandb_internal_pb2.Record.FromString(pending))
            pending = b""
    return records


def finished_records(path: Path, timeout: float = 30.0) -> list:
    """The records of a run's file once its ``exit`` record is there: ``run.finish()`` returns before W&B's service
    process has written the file to the end, so reading it at once sometimes finds only the first records."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        records = wandb_records(path)
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.1)


def wandb_history(run_dir: Path) -> list[dict]:
    rows = []
    for path in sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb")):
        for record in finished_records(path):
            if record.WhichOneof("record_type") == "history":
                rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item})
    return rows


@needs_wandb
def test_wandb_offline_writes_under_the_run_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    with make_logger("wandb", tmp_path, run_name="smoke", config=CONFIG) as logger:
        train_session(logger, range(3), 1)
        logger.scalars({"search/best_top1": 71.5}, 1)  # another x axis (generations) in the same run
        logger.table("evolution/et", [{"stage": 1, "Q": 22.5}, {"stage": 2, "Q": "n/a"}], 0)
        logger.text("notes", "fixed: stage 4 heads", 0)
    history = wandb_history(tmp_path)
    loss = [(row["step"], row["train/loss"]) for row in history if "train/loss" in row]
    assert loss == [(0, 10.0), (1, 10.01), (2, 10.02)]
    assert [(row["step"], row["search/best_top1"]) for row in history if "search/best_top1" in row] == [(1, 71.5)]
    tables = {key.removesuffix("/path"): value for row in history for key, value in row.items() if key.endswith("/path")}
    files = next((tmp_path / "wandb").glob("offline-run-*/files"))
    assert json.loads((files / tables["evolution/et"]).read_text())["data"] == [[1, 22.5], [2, "n/a"]]
    assert json.loads((files / tables["notes"]).read_text())["data"] == [["fixed: stage 4 heads"]]
    run_id = json.loads((tmp_path / "loggers.json").read_text())["wandb"]
    assert len(list((tmp_path / "wandb").glob(f"offline-run-*-{run_id}"))) == 1
    config = [
        r for r in wandb_records(next((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))) if r.WhichOneof("record_type") == "run"
    ]
    assert json.loads({i.key: i.value_json for i in config[0].run.config.update}["recipe"])["lr"] == 0.001
    # a resumed run continues the same W&B run id
    with make_logger("wandb", tmp_path, run_name="smoke", config=CONFIG, resume=True) as logger:
        logger.scalar("train/loss", 5.0, 3)
    assert json.loads((tmp_path / "loggers.json").read_text())["wandb"] == run_id
    assert (3, 5.0) in [(row["step"], row["train/loss"]) for row in wandb_history(tmp_path) if "train/loss" in row]


# --- MLflow (local file store) ------------------------------------------------------------------------


@needs_mlflow
def test_mlflow_file_store_under_the_run_dir(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")  # the logger sets it itself; restored after the test
    with make_logger("mlflow", tmp_path, run_name="smoke", config=CONFIG) as logger:
        train_session(logger, range(3), 1)
        logger.scalar("E-T Q (%)", 22.5, 0)
        logger.table("evolution/et", [{"stage": 1, "Q": 22.5}], 0)
        logger.text("notes", "fixed: stage 4 heads", 0)
    run_id = json.loads((tmp_path / "loggers.json").read_text())["mlflow"]
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").resolve().as_uri())
    run = client.get_run(run_id)
    assert run.info.run_name == "smoke" and run.info.status == "FINISHED"
    assert run.data.params["recipe.lr"] == "0.001" and run.data.params["model"] == "swin_tiny_patch4_window7_224"
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "train/images_per_s")] == [(0, 500.0), (1, 501.0), (2, 502.0)]
    assert [m.value for m in client.get_metric_history(run_id, "E-T Q ___")] == [22.5]
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    assert json.loads((artifacts / "tables/evolution/et/step-0.json").read_text()) == {"step": 0, "rows": [{"stage": 1, "Q": 22.5}]}
    assert (artifacts / "text/notes/step-0.md").read_text() == "fixed: stage 4 heads"
    with make_logger("mlflow", tmp_path, run_name="smoke", config=CONFIG, resume=True) as logger:
        logger.scalar("train/loss", 5.0, 3)
    assert [m.step for m in client.get_metric_history(run_id, "train/loss")] == [0, 1, 2, 3]


@needs_tensorboard
@needs_mlflow
def test_composite_of_two_backends(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    with make_logger("tensorboard,mlflow", tmp_path, run_name="both", config=CONFIG) as logger:
        assert isinstance(logger, MultiLogger) and len(logger.loggers) == 2
        train_session(logger, range(5), 1)
    assert [s for s, _ in read_scalars(tmp_path)["train/loss"]] == list(range(5))
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").resolve().as_uri())
    run_id = json.loads((tmp_path / "loggers.json").read_text())["mlflow"]
    assert [m.step for m in client.get_metric_history(run_id, "train/loss")] == list(range(5))
