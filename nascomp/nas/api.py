"""`search`: the S3 search of a space under a budget, from the supernet to the finalists, in one run directory."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nascomp.core.checks import check_device, check_seed, main_process, require_device
from nascomp.core.errors import NascompError
from nascomp.core.outputs import claim_output, output_lock
from nascomp.core.runlog import check_logger
from nascomp.core.validate import duration, fraction, non_negative, positive, removed_on_failure
from nascomp.data.source import check_source
from nascomp.nas.budget import Budget, parse_budget
from nascomp.nas.presets import SearchPreset, resolve_preset
from nascomp.spaces.arch import Arch
from nascomp.spaces.space import SearchSpace

if TYPE_CHECKING:
    from nascomp.data import DataBundle

__all__ = ["SearchResult", "search", "default_out_dir"]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower().replace("@", "-at-")).strip("-")


def default_out_dir(space: str, budget: str, preset: str, seed: int, resume: bool, root: str | Path = "runs/search") -> Path:
    """``runs/search/<space>-<budget>-<preset>-seed<seed>``; a new run takes the next free ``-2``, ``-3``...,
    ``--resume`` the newest existing one."""
    base = Path(root) / f"{_slug(space)}-{_slug(budget)}-{_slug(preset)}-seed{seed}"
    taken = [base] + [base.with_name(f"{base.name}-{i}") for i in range(2, 1000)]
    existing = [p for p in taken if p.exists()]
    if resume:
        return existing[-1] if existing else base
    return next(p for p in taken if not p.exists())


@dataclass
class SearchResult:
    """A finished search: the run directory, the winning arch and everything ``best_arch.json`` records."""

    run_dir: Path
    best_arch: Arch
    summary: dict

    @property
    def params(self) -> int:
        return self.summary["params"]

    @property
    def macs(self) -> int:
        return self.summary["macs"]

    @property
    def val_top1(self) -> float:
        return self.summary["val_top1"]

    @property
    def test_top1(self) -> float:
        return self.summary["test_top1"]

    @property
    def budget(self) -> dict:
        return self.summary["budget"]

    @property
    def selection(self) -> dict:
        """Where the winner was picked (images, score, CI) and its test-minus-selected gap."""
        return self.summary["selection"]

    @property
    def standalone_check(self) -> dict | None:
        """The winner vs a hand-designed arch of the budget, trained stand-alone over seeds (None when not run)."""
        return self.summary.get("compare")

    @property
    def collapsed(self) -> list[dict]:
        """Dimensions the proxy resolution collapsed, each fixed to one value and not searched."""
        return self.summary.get("collapsed", [])


def search(
    space: SearchSpace | str,
    budget: Budget | str,
    *,
    data: DataBundle | str = "fashion-mnist",
    preset: SearchPreset | str = "cpu",
    out: str | os.PathLike | None = None,
    seed: int = 0,
    resume: bool = False,
    quiet: bool = False,
    device: str | None = None,
    in_chans: int = 3,
    lut: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    val_fraction: float = 0.1,
    workers: int | None = None,
    checkpoint_every: float | str | None = None,
    runtime: str | None = None,
    overwrite: bool = False,
    logger: str | None = None,
    **overrides: Any,
) -> SearchResult:
    """Search ``space`` for the most accurate architecture within ``budget`` (S3: supernet, E-T error, space
    evolution, evolutionary search), then extract the finalists and evaluate them on the test set.

    Args:
        space: a `SearchSpace` or a shipped space name (``s3-vit``; `nascomp.list_spaces`) or YAML path.
        budget: a `Budget` or its text: ``4gflops`` (= 4e9 MACs, the papers' FLOPs), ``4e9macs``, ``25mparams``,
            ``25ms@mobile-cpu`` or ``50mj@cuda`` (these need a latency table, `nascomp.build_latency_table`).
        data: a dataset name or a `DataBundle`, either way cut to the preset's limits (``limit_train`` training images, the
            first ``limit_val`` validation images score candidates, the next ``select_val`` pick the winner, ``limit_test``
            test images), so ``preset="smoke"`` is smoke-sized whatever the data's form.
        preset: ``smoke``, ``cpu`` (default), ``cpu-geometry`` or ``full``, or a `SearchPreset`; keyword ``overrides`` replace its
            fields (``epochs``, ``resolution``, ``evolve_steps``, ``et_samples``, ``tau``, ``population``,
            ``generations``, ``top``, ``select_val``, ``compare_epochs``, ``retrain_epochs``, ``limit_train``...; see
            `nascomp.nas.presets.resolve_preset`). Dimensions the preset's proxy resolution collapses are fixed,
            not searched (``summary["collapsed"]``).
        out: the run directory (default ``runs/search/<space>-<budget>-<preset>-seed<seed>``).
        seed: the run's seed. resume: continue an interrupted run in ``out`` (same result as uninterrupted).
        overwrite: replace another run already in ``out`` (without it, such an ``out`` is refused).
        quiet: no progress output. device: ``cpu`` or ``cuda`` (default: CUDA when available).
        in_chans: model input channels (grey images are repeated). lut: latency table for ms/mJ budgets.
        runtime: the runtime a ms/mJ budget is predicted for (``onnxruntime``, ``executorch``, ``torch``; default: the
            table's, which is the target's default runtime unless ``lut`` says otherwise).
        data_dir: where a dataset given by name is loaded from.
        download: let a dataset given by name be downloaded.
        val_fraction: the share of the training set held out for validation, for a dataset given by name.
        workers: DataLoader workers per process for per-image data (default: `nascomp.data.default_workers`);
            does not change results, so a run may resume with another value.
        checkpoint_every: also checkpoint every training leg inside epochs at this interval (seconds, or ``30m``).
        logger: where the run logs as it goes (``"tensorboard"``, ``"wandb"``, ``"mlflow"``, comma-joined, ``"none"``;
            default: TensorBoard when installed, else none): each supernet's loss, learning rate, throughput and sampled
            MACs (``supernet/step-T/``), the E-T error, slopes and decisions per evolution step (``evolution/``), the best
            so far, hypervolume and candidates per generation (``search/``); see `nascomp.nas.tracking`.

    The run ends by writing ``report.html`` (`nascomp.report.render_report`); a report that fails is a warning.

    Returns:
        `SearchResult` with the run directory, the best `Arch`, its params/MACs, validation (the score it was
        selected on) and test top-1, the selection-vs-test gap and the stand-alone comparison.
    """
    check_logger(logger)
    positive("in_chans", in_chans)
    fraction("--val-fraction", val_fraction)
    non_negative("--workers", workers)
    checkpoint_every = duration("--checkpoint-every", checkpoint_every)
    check_seed(seed)
    check_device(device)
    if isinstance(data, str):
        check_source(data, data_dir, download)
    space = space if isinstance(space, SearchSpace) else SearchSpace.load(space)
    budget = budget if isinstance(budget, Budget) else parse_budget(budget)
    if isinstance(preset, SearchPreset):
        preset_name, recipe = "custom", resolve_preset(preset, overrides)
    else:
        preset_name, recipe = str(preset), resolve_preset(str(preset), overrides)
    recipe.rule.check_stages(space)
    if runtime is not None:
        from nascomp.profiling.targets import RUNTIMES

        if runtime not in RUNTIMES:
            raise NascompError(f"runtime {runtime!r}: choose from {', '.join(RUNTIMES)}")
        if not budget.measured:
            raise NascompError(
                f"runtime={runtime!r} only applies to a latency or energy budget (e.g. 25ms@mobile-cpu); {budget.text} is analytic"
            )
    if lut is not None and not Path(lut).is_file():
        raise NascompError(f"latency table {lut} not found; build it with `nascomp profile --build-lut --space {space.name}`")
    run_dir = Path(out) if out is not None else default_out_dir(space.name, budget.text, preset_name, seed, resume)
    claim = claim_output(
        run_dir,
        resume=resume,
        overwrite=overwrite,
        resumable=("a search run",),
        inputs=[data.split(":", 1)[1] if isinstance(data, str) and data.startswith("imagefolder:") else None, data_dir, lut],
    )
    from nascomp.data import load_data
    from nascomp.nas.pipeline import SearchJob, run_search
    from nascomp.report import write_report

    require_device(device)
    limit_val = recipe.supernet.limit_val and recipe.supernet.limit_val + recipe.select_val  # the search's images, then the selection's
    if isinstance(data, str):
        bundle = load_data(
            data,
            data_dir,
            val_fraction=val_fraction,
            limit_train=recipe.supernet.limit_train,
            limit_val=limit_val,
            limit_test=recipe.limit_test,
            download=download,
        )
    else:
        bundle = data.limited(recipe.supernet.limit_train, limit_val, recipe.limit_test)
    assert claim is not None  # claim_output returns None only for no path, and run_dir is always a path
    job = SearchJob(
        space,
        budget,
        recipe,
        bundle,
        claim.path,
        preset_name=preset_name,
        seed=seed,
        in_chans=in_chans,
        lut=str(lut) if lut else None,
        device=device,
        workers=workers,
        checkpoint_every=checkpoint_every,
        runtime=runtime,
        logger=logger,
    )
    with removed_on_failure(claim.path), output_lock(claim, main_process()):
        summary = run_search(job, resume=resume, quiet=quiet)
        if summary:  # the main process
            write_report(claim.path)
    if not summary:  # a non-main DDP rank
        return SearchResult(claim.path, space.largest(), {})
    return SearchResult(claim.path, Arch.from_dict(summary["arch"]), summary)
