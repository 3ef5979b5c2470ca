"""Run logging: the scalars, notes and tables of a long run, sent to TensorBoard, Weights & Biases and/or MLflow.

The training loop, the search pipeline and compression call one `RunLogger` (``logger.scalars({...}, step)``)
and never care which backends listen. Steps are integers the caller chooses (global optimiser step, epoch,
evolution step, generation). `make_logger` turns a spec (``"tensorboard,wandb"``) into a logger and checks,
before any work, that each backend's package is installed; under DDP only rank 0 logs.

Resume: a run that restarts from step S calls ``make_logger(..., resume=True, resume_step=S)``. The TensorBoard
backend then rewrites the run's event files without the summaries logged at step S or later, so the files never
hold one (tag, step) twice and the curve continues where the checkpoint left it. W&B and MLflow keep appending to
the same run (its id is remembered in ``loggers.json``); their stores have no way to delete history, so a step
logged again after a resume appears there twice.

Backend packages are imported only when a logger is made; importing this module (and `read_scalars`'s caller,
``nascomp report``) loads neither torch nor any backend.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nascomp.core.errors import NascompError

__all__ = [
    "RunLogger",
    "NullLogger",
    "MultiLogger",
    "TensorBoardLogger",
    "WandbLogger",
    "MlflowLogger",
    "BACKENDS",
    "TB_DIR",
    "logger_names",
    "check_logger",
    "LOGGER_HELP",
    "make_logger",
    "read_scalars",
]

TB_DIR = "tb"  # TensorBoard event files live in RUN_DIR/tb
_IDS_FILE = "loggers.json"  # the W&B / MLflow run ids of a run directory, so a resumed run continues the same record


@dataclass(frozen=True)
class Backend:
    module: str  # the package that must be importable
    extra: str  # nascomp's pip extra that installs it


BACKENDS = {"tensorboard": Backend("tensorboard", "tensorboard"), "wandb": Backend("wandb", "wandb"), "mlflow": Backend("mlflow", "mlflow")}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


class RunLogger:
    """What a run logs. This base logs nothing; backends override `scalars`, `text`, `table` and `close`."""

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars({tag: value}, step)

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        """Several scalars at one step, e.g. ``{"train/loss": 0.41, "train/images_per_s": 812.0}``."""

    def text(self, tag: str, text: str, step: int) -> None:
        """A note (markdown), e.g. the decisions of a space-evolution step."""

    def table(self, tag: str, rows: Sequence[Mapping[str, Any]], step: int) -> None:
        """Rows of one table (dicts with the same keys), e.g. the E-T error per choice."""

    def close(self) -> None:
        """Flush and release the backend; the logger must not be used afterwards."""

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class NullLogger(RunLogger):
    """The ``none`` backend, and what every DDP rank but 0 gets."""


class MultiLogger(RunLogger):
    """Fans every call out to several loggers."""

    def __init__(self, loggers: Sequence[RunLogger]):
        self.loggers = list(loggers)

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        for logger in self.loggers:
            logger.scalars(values, step)

    def text(self, tag: str, text: str, step: int) -> None:
        for logger in self.loggers:
            logger.text(tag, text, step)

    def table(self, tag: str, rows: Sequence[Mapping[str, Any]], step: int) -> None:
        for logger in self.loggers:
            logger.table(tag, rows, step)

    def close(self) -> None:
        """Close every logger, even when one fails (the first failure is raised afterwards)."""
        failure = None
        for logger in self.loggers:
            try:
                logger.close()
            except Exception as e:  # noqa: BLE001 - re-raised below, after the others are closed
                failure = failure or e
        if failure is not None:
            raise failure


def _check_step(step: int) -> int:
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"a log step must be a non-negative integer, got {step!r}")
    return step


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every key of the rows, in first-seen order."""
    return list(dict.fromkeys(k for row in rows for k in row))


def _cell(value: Any) -> str:
    text = f"{value:.6g}" if isinstance(value, float) else "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    columns = _columns(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


# --- TensorBoard ------------------------------------------------------------------------------------


def _event_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("events.out.tfevents.*"))


def _drop_steps_from(folder: Path, first: int) -> None:
    """Rewrite each event file without the summaries logged at step ``first`` or later (other events stay)."""
    import io

    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    from nascomp.core.io import atomic_write_bytes

    for path in _event_files(folder):
        records = list(RawEventFileLoader(str(path)).Load())
        kept = [r for r in records if not ((e := Event.FromString(r)).HasField("summary") and e.step >= first)]
        if len(kept) < len(records):
            buf = io.BytesIO()
            writer = RecordWriter(buf)
            for record in kept:
                writer.write(record)
            atomic_write_bytes(path, buf.getvalue())


class TensorBoardLogger(RunLogger):
    """Event files in ``run_dir/tb`` (torch's SummaryWriter; needs only the ``tensorboard`` package besides torch).

    A fresh run removes event files a previous run left there; a resumed one drops what was logged at
    ``resume_step`` or later, which this session logs again.
    """

    def __init__(
        self, run_dir: str | os.PathLike, config: Mapping[str, Any] | None = None, resume: bool = False, resume_step: int | None = None
    ):
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(run_dir) / TB_DIR
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            for path in _event_files(self.log_dir):
                path.unlink()
        elif resume_step is not None:
            _drop_steps_from(self.log_dir, _check_step(resume_step))
        config_kept = _event_files(self.log_dir) and resume_step != 0  # an earlier session logged it at step 0
        self.writer = SummaryWriter(str(self.log_dir), flush_secs=10)
        if config and not config_kept:
            self.writer.add_text("config", _indented(json.dumps(config, indent=2, default=str)), 0)

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        _check_step(step)
        for tag, value in values.items():
            self.writer.add_scalar(tag, float(value), step)

    def text(self, tag: str, text: str, step: int) -> None:
        self.writer.add_text(tag, text, _check_step(step))

    def table(self, tag: str, rows: Sequence[Mapping[str, Any]], step: int) -> None:
        self.writer.add_text(tag, _markdown_table(rows), _check_step(step))

    def close(self) -> None:
        self.writer.close()


def _indented(text: str) -> str:
    """A markdown code block (TensorBoard's text plugin renders markdown)."""
    return "\n".join("    " + line for line in text.splitlines())


def read_scalars(run_dir: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
    """The scalars of a run's TensorBoard event files: tag -> [(step, value), ...] sorted by step.

    ``run_dir`` is a run directory (its ``tb`` folder is read) or the folder of the event files itself.
    A step logged twice keeps its last value. No event files: an empty dict.
    """
    run_dir = Path(run_dir)
    folder = run_dir / TB_DIR if (run_dir / TB_DIR).is_dir() else run_dir
    files = _event_files(folder)
    if not files:
        return {}
    if not _installed("tensorboard"):
        raise NascompError(
            f"{folder} holds TensorBoard event files; reading them needs the tensorboard package: pip install 'nascomp[tensorboard]'"
        )
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util.tensor_util import make_ndarray

    values: dict[str, dict[int, float]] = {}
    for path in files:
        for event in EventFileLoader(str(path)).Load():
            for v in event.summary.value:
                if v.metadata.plugin_data.plugin_name == "scalars":
                    values.setdefault(v.tag, {})[event.step] = float(make_ndarray(v.tensor))
    return {tag: sorted(steps.items()) for tag, steps in sorted(values.items())}


# --- W&B and MLflow: one record per run directory, continued on resume ----------------------------------


def _stored_id(run_dir: Path, backend: str) -> str | None:
    path = run_dir / _IDS_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text()).get(backend)
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None


def _store_id(run_dir: Path, backend: str, run_id: str) -> None:
    from nascomp.core.io import atomic_write_json

    path = run_dir / _IDS_FILE
    try:
        ids = json.loads(path.read_text()) if path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        ids = {}
    atomic_write_json(path, {**ids, backend: run_id})


class WandbLogger(RunLogger):
    """A W&B run under ``run_dir/wandb`` (``WANDB_MODE=offline`` writes it there for a later ``wandb sync``).

    Each row carries its step as the ``step`` metric, the x axis of every chart, so series counted in different
    units (optimiser steps, generations) share one run without W&B's own step having to increase.
    """

    STEP = "step"

    def __init__(self, run_dir: str | os.PathLike, run_name: str, config: Mapping[str, Any] | None = None, resume: bool = False):
        import wandb

        self._wandb = wandb
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        run_id = (_stored_id(run_dir, "wandb") if resume else None) or uuid.uuid4().hex[:12]
        try:
            self.run = wandb.init(
                project=os.environ.get("WANDB_PROJECT", "nascomp"),
                name=run_name,
                config=dict(config or {}),
                dir=str(run_dir),
                id=run_id,
                resume="allow" if resume else None,
                reinit="create_new",
                settings=wandb.Settings(console="off", silent=True),
            )
        except wandb.errors.Error as e:
            raise NascompError(
                f"Weights & Biases could not start a run ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                f"run `wandb login`, or set WANDB_MODE=offline to keep it under {run_dir / 'wandb'} for `wandb sync`"
            ) from None
        _store_id(run_dir, "wandb", run_id)
        self.run.define_metric(self.STEP)
        self.run.define_metric("*", step_metric=self.STEP)

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        self.run.log({**{tag: float(v) for tag, v in values.items()}, self.STEP: _check_step(step)})

    def text(self, tag: str, text: str, step: int) -> None:
        self.run.log({tag: self._wandb.Table(columns=["text"], data=[[text]]), self.STEP: _check_step(step)})

    def table(self, tag: str, rows: Sequence[Mapping[str, Any]], step: int) -> None:
        columns = _columns(rows)
        data = [[row.get(c) for c in columns] for row in rows]
        # wandb annotates columns as list[str | int]: a list[str] is one, but list is invariant
        table = self._wandb.Table(columns=columns, data=data, allow_mixed_types=True)  # type: ignore[arg-type]
        self.run.log({tag: table, self.STEP: _check_step(step)})

    def close(self) -> None:
        self.run.finish()


_MLFLOW_KEY = re.compile(r"[^A-Za-z0-9_\-. /:]")  # what MLflow allows in metric and parameter names
_MLFLOW_PARAM_CHARS = 6000  # MLflow's limit on a parameter value


def _flatten(config: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, str]]:
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, f"{name}.")
        else:
            yield _MLFLOW_KEY.sub("_", name), (value if isinstance(value, str) else json.dumps(value, default=str))[:_MLFLOW_PARAM_CHARS]


class MlflowLogger(RunLogger):
    """An MLflow run in ``$MLFLOW_TRACKING_URI``, else in a file store at ``run_dir/mlruns`` (``mlflow ui --backend-store-uri``).

    The config becomes the run's parameters (nested keys joined by dots); notes and tables are artifacts
    ``text/TAG/step-N.md`` and ``tables/TAG/step-N.json``.
    """

    def __init__(self, run_dir: str | os.PathLike, run_name: str, config: Mapping[str, Any] | None = None, resume: bool = False):
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            uri = (run_dir / "mlruns").resolve().as_uri()
            # MLflow 3 keeps the file store only on request; it is the store that needs no server or database
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.entities import Metric, Param
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        self._metric = Metric
        self.client = MlflowClient(tracking_uri=uri)
        run_id = _stored_id(run_dir, "mlflow") if resume else None
        try:
            if run_id is not None and self._exists(run_id):
                self.client.update_run(run_id, status="RUNNING")
            else:
                name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "nascomp")
                experiment = self.client.get_experiment_by_name(name)
                experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
                run_id = self.client.create_run(experiment_id, run_name=run_name).info.run_id
                params = [Param(k, v) for k, v in _flatten(config or {})]
                for i in range(0, len(params), 100):  # MLflow takes at most 100 parameters a call
                    self.client.log_batch(run_id, params=params[i : i + 100])
        except MlflowException as e:
            raise NascompError(f"MLflow could not start a run in {uri} ({str(e).splitlines()[0]}); check MLFLOW_TRACKING_URI") from None
        self.run_id = run_id
        _store_id(run_dir, "mlflow", run_id)

    def _exists(self, run_id: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_run(run_id)
        except MlflowException:  # the store the run was recorded in is not this one
            return False
        return True

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        import time

        now = int(time.time() * 1000)
        metrics = [self._metric(_MLFLOW_KEY.sub("_", tag), float(v), now, _check_step(step)) for tag, v in values.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def text(self, tag: str, text: str, step: int) -> None:
        self.client.log_text(self.run_id, text, f"text/{_MLFLOW_KEY.sub('_', tag)}/step-{_check_step(step)}.md")

    def table(self, tag: str, rows: Sequence[Mapping[str, Any]], step: int) -> None:
        doc = {"step": _check_step(step), "rows": [dict(r) for r in rows]}
        self.client.log_dict(self.run_id, doc, f"tables/{_MLFLOW_KEY.sub('_', tag)}/step-{step}.json")

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


# --- the factory -----------------------------------------------------------------------------------


def logger_names(spec: str | Sequence[str] | None) -> list[str]:
    """The backends a spec names, checked: ``None`` / ``"auto"`` = TensorBoard when installed; ``"none"`` = no backend.

    Raises `NascompError` for an unknown name or a backend whose package is missing (with the pip extra to install).
    """
    parts = [spec] if spec is None or isinstance(spec, str) else list(spec)
    names: list[str] = []
    for part in parts:
        for name in ["auto"] if part is None else [p.strip().lower() for p in part.split(",") if p.strip()]:
            if name == "auto":
                names += ["tensorboard"] if _installed("tensorboard") else []
            elif name in BACKENDS:
                backend = BACKENDS[name]
                if not _installed(backend.module):
                    raise NascompError(f"the {name} logger needs the {backend.module} package: pip install 'nascomp[{backend.extra}]'")
                names.append(name)
            elif name != "none":
                raise NascompError(f"unknown logger {name!r}; choose from {', '.join(BACKENDS)}, none or auto (comma-separated)")
    return list(dict.fromkeys(names))


LOGGER_HELP = (
    "tensorboard, wandb, mlflow or none; several joined by commas (default: tensorboard when the tensorboard package is "
    "installed, else none). Files go under the run directory: tb/, wandb/, mlruns/"
)


def check_logger(spec: str | Sequence[str] | RunLogger | None) -> None:
    """Fail before any work (and before torch loads) on an unknown backend or one whose package is missing."""
    if not isinstance(spec, RunLogger):
        logger_names(spec)


def make_logger(
    spec: str | Sequence[str] | RunLogger | None,
    run_dir: str | os.PathLike,
    *,
    run_name: str,
    config: Mapping[str, Any] | None = None,
    rank: int = 0,
    resume: bool = False,
    resume_step: int | None = None,
) -> RunLogger:
    """The logger of one run.

    Args:
        spec: ``"tensorboard"``, ``"wandb"``, ``"mlflow"``, ``"none"``, several joined by commas (or a list of them),
            ``None`` / ``"auto"`` (TensorBoard when the package is installed, else none), or a ready `RunLogger`.
        run_dir: the run directory; backends write under it (``tb/``, ``wandb/``, ``mlruns/``, ``loggers.json``).
        run_name: the run's name in W&B and MLflow.
        config: the run's settings, recorded once per run (TensorBoard text, W&B config, MLflow parameters).
        rank: the DDP rank; every rank but 0 gets a `NullLogger` (after the same checks, so all ranks fail alike).
        resume: continue the run's record instead of starting a new one.
        resume_step: with ``resume``, the first step this session logs again (e.g. the checkpoint's global step):
            TensorBoard drops what earlier sessions logged at it or later. None: keep every earlier event (for callers
            that never log a step twice, such as a pipeline that skips its finished stages).

    Returns:
        A `RunLogger` (a `MultiLogger` when the spec names several backends); close it, or use it as a context manager.
    """
    if isinstance(spec, RunLogger):
        return spec if rank == 0 else NullLogger()
    names = logger_names(spec)
    if resume_step is not None:
        _check_step(resume_step)
    if rank != 0 or not names:
        return NullLogger()
    loggers: list[RunLogger] = []
    try:
        for name in names:
            if name == "tensorboard":
                loggers.append(TensorBoardLogger(run_dir, config, resume, resume_step))
            elif name == "wandb":
                loggers.append(WandbLogger(run_dir, run_name, config, resume))
            else:
                loggers.append(MlflowLogger(run_dir, run_name, config, resume))
    except BaseException:
        MultiLogger(loggers).close()
        raise
    return loggers[0] if len(loggers) == 1 else MultiLogger(loggers)
