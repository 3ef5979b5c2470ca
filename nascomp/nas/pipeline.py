"""`run_search`: the whole S3 search in one run directory — and `--resume` after a kill at any point.

Stages (S3, Chen et al., NeurIPS 2021, Sec. 3-4):

0. the proxy: dimensions that the supernet's training resolution collapses (`SearchSpace.collapsed`) are
   fixed to one value for the whole run (`SearchSpace.pinned`): not trained, scored, evolved or searched;
1. for each evolution step t = 0..S: train the supernet on space A_t (step 0 from scratch, later steps
   inheriting every weight the new shapes allow), sample N budget-meeting subnets, score them with
   inherited weights on the validation split, compute the E-T table and slopes, and (t < S) evolve A_t
   into A_{t+1};
2. evolutionary search in A_S under the budget, seeded with A_S's E-T samples;
3. finish: the top archs (or the Pareto front) as standalone timm models, optionally retrained, re-scored
   on validation images the search never saw (``select_val``; the winner is the best there, so its score is
   not the luck of the best of hundreds on 500 images) and evaluated on the test set — the only time the
   test set is read; then (``compare_epochs``) the winner and a hand-designed arch of the same budget are
   trained stand-alone with one short recipe over ``compare_seeds`` seeds (`nascomp.nas.compare`);
4. outputs: best_arch.json, candidates.csv, pareto.png, evolution/history.json + et_steps.png, report.md.

Resume: every stage writes its result atomically and is skipped when that file exists; supernet
training resumes from its per-epoch checkpoint (`nascomp.engine.fit`); scores are memoised per supernet
(`SupernetScorer`), and sampling, evolution and search are pure functions of the seed and the scores,
so a resumed run replays to exactly the uninterrupted run's result. ``run.json`` holds the settings;
resuming with other settings is refused. Wall and CPU time per stage go to ``timings.json`` (the only
output that differs between an interrupted and an uninterrupted run, with report.md that quotes it).

Disk: weights that nothing downstream reads are deleted once their successor is safely on disk: a step's
supernet when the next step's is saved (its metrics stay), and the stand-alone check's models once their
scores are recorded. The final supernet and the finalists (the deliverables) are kept. A Swin-T-sized
model is ~80 MB at any resolution, so the smoke run on s3-vit takes 321 MB instead of 850 MB.
"""

from __future__ import annotations

import contextlib
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, cast

import torch
from torch.utils.data import Subset

from nascomp.core.distributed import DistInfo, barrier, init_distributed
from nascomp.core.errors import NascompError
from nascomp.core.io import atomic_write_json, read_json
from nascomp.core.outputs import holds
from nascomp.core.progress import console
from nascomp.core.runlog import RunLogger, make_logger
from nascomp.data import DataBundle, DecodedEvalSet
from nascomp.engine import discard_checkpoints, evaluate, fit
from nascomp.models import save_model
from nascomp.models.swin import arch_spec, build_from_arch
from nascomp.nas.budget import Budget
from nascomp.nas.compare import difference_ci, hand_designed_arch
from nascomp.nas.constraints import Constraint, check_feasible, deploy_cost, make_constraint
from nascomp.nas.et_error import et_table, sample_candidates
from nascomp.nas.evolutionary import evolutionary_search
from nascomp.nas.presets import SearchPreset
from nascomp.nas.report import RunFacts, pick_winner, write_outputs
from nascomp.nas.scoring import SupernetScorer
from nascomp.nas.space_evolution import evolve_space, fit_slopes
from nascomp.nas.supernet import Supernet, extract, load_supernet
from nascomp.nas.supernet.train import fit_supernet
from nascomp.nas.tracking import GenerationLog, log_et_step
from nascomp.spaces import Arch, Collapsed, SearchSpace

__all__ = ["SearchJob", "run_search"]


@dataclass
class SearchJob:
    """Everything one search run is: the space, the budget, the recipe, the data and the seed."""

    space: SearchSpace
    budget: Budget
    preset: SearchPreset
    data: DataBundle
    out: Path  # the run directory, resolved by the caller (`nascomp.search` picks the default)
    preset_name: str = "custom"
    seed: int = 0
    in_chans: int = 3
    lut: str | None = None
    device: str | None = None
    workers: int | None = None  # DataLoader workers per process (None: nascomp.data.default_workers)
    checkpoint_every: float | None = None  # seconds between mid-epoch checkpoints of every training leg
    runtime: str | None = None  # the runtime a latency / energy budget is predicted for (None: the table's)
    logger: str | None = None  # the run log's backends (`nascomp.core.runlog.make_logger`; None: TensorBoard when installed)

    @property
    def resolution(self) -> int:
        """The side the supernet trains and candidates are scored at: the preset's proxy, or the space's own."""
        return self.preset.supernet.resolution or self.space.resolution

    def settings(self) -> dict:
        """What must match for ``--resume`` (not where the data lives, which device runs it, nor how it loads data)."""
        settings = {
            "space": self.space.to_dict(),
            "budget": self.budget.text,
            "preset": self.preset_name,
            "data": self.data.describe(),
            "seed": self.seed,
            "in_chans": self.in_chans,
            "lut": self.lut,
            "resolved": self.preset.to_dict(),
        }
        if self.runtime:  # absent for the default, so runs started before runtimes were selectable still resume
            settings["runtime"] = self.runtime
        return settings


class _Timer:
    """Wall and CPU seconds per stage, merged into timings.json (stages resumed later add up)."""

    def __init__(self, path: Path, main: bool):
        self.path, self.main = path, main
        self.doc = read_json(path) if path.is_file() else {"stages": {}}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        wall, cpu = time.time(), time.process_time()
        finished = False
        try:
            yield
            finished = True
        finally:
            rec = self.doc["stages"].setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0, "sessions": 0})
            rec["wall_s"] += time.time() - wall
            rec["cpu_s"] += time.process_time() - cpu
            rec["sessions"] += 1
            rec["finished"] = finished
            if self.main:
                atomic_write_json(self.path, self.doc)


class _Run:
    """One search run; methods are the stages, each skipped when its output exists."""

    def __init__(self, job: SearchJob, constraint: Constraint, info: DistInfo, quiet: bool):
        self.job, self.preset, self.space0, self.budget = job, job.preset, job.space, job.budget
        self.constraint, self.out, self.info, self.quiet = constraint, job.out, info, quiet
        self.resolution = job.resolution
        self.collapsed: list[Collapsed] = job.space.collapsed(self.resolution)
        self.timer = _Timer(self.out / "timings.json", info.is_main)
        preset, data = job.preset, job.data
        # validation and test
        self.eval_tf = data.transform(self.resolution, job.in_chans, train=False, recipe=preset.supernet.train_config().image_recipe())
        # the validation split: the first images score every candidate (E-T, search), the next ones only pick the winner
        n = len(data.val)  # type: ignore[arg-type]  # map-style datasets define __len__
        n_search = min(n, preset.supernet.limit_val or max(1, n - preset.select_val))
        self.select_val = (
            Subset(data.val, range(n_search, min(n, n_search + preset.select_val))) if preset.select_val and n_search < n else None
        )
        self.data = replace(data, val=Subset(data.val, range(n_search)) if n_search < n else data.val)
        # each split is decoded once, on first use, for every step's scoring and every finalist's selection
        self.val_images = self._images(self.data.val)
        self.select_images = self._images(self.select_val) if self.select_val is not None else None

    # --- helpers ---------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        if not self.quiet and self.info.is_main:
            console.print(text)

    def write_json(self, path: Path, obj: Any) -> None:
        if self.info.is_main:
            atomic_write_json(path, obj)

    def once(self, done: Path, make: Callable[[], Any]) -> Any:
        """A stage's result: read back from ``done`` when an earlier session finished it, else made and written there."""
        if done.is_file():
            return read_json(done)
        result = make()
        self.write_json(done, result)
        return result

    def cost_row(self, arch: Arch) -> dict:
        return deploy_cost(arch, self.space0, self.job.in_chans, self.data.num_classes)

    def run_log(self, folder: str, resume_step: int | None = None) -> RunLogger:
        """The log of a stage in OUT/FOLDER: fresh, or (``resume_step``) dropping what an interrupted session logged from it on."""
        return make_logger(
            self.job.logger,
            self.out / folder,
            run_name=f"{self.out.name}/{folder}",
            rank=self.info.rank,
            resume=resume_step is not None,
            resume_step=resume_step,
        )

    def _images(self, split) -> DecodedEvalSet:
        return DecodedEvalSet(
            split, self.eval_tf, batch_size=self.preset.eval_batch_size, device=self.info.device, workers=self.job.workers
        )

    def scorer(self, supernet: Supernet, step: int) -> SupernetScorer:
        memo = self.out / "evolution" / f"step-{step}" / "scores.jsonl"
        return SupernetScorer.of_images(supernet, self.val_images, memo=memo, dist=self.info, quiet=self.quiet)

    def mark_collapsed(self, records: list[dict]) -> None:
        """Say in each record of a collapsed (stage, dimension) that it was fixed, and to what (it has one choice left)."""
        fixed = {(c.stage, c.dimension): c for c in self.collapsed}
        for rec in records:
            c = fixed.get((rec["stage"], rec["dimension"]))
            if c is not None:
                rec.update(
                    collapsed=True,
                    note=f"collapsed at the {self.resolution} px proxy ({c.reason}): fixed to {c.fixed} "
                    f"of {list(c.choices)}, not scored, evolved or searched",
                )

    # --- 1. supernet training per evolution step -----------------------------------------------
    def _trained(self, step: int) -> bool:
        run_dir = self.out / "supernet" / f"step-{step}"
        return (run_dir / "metrics.json").is_file() and (run_dir / "model.json").is_file()

    def train_step(self, step: int, space: SearchSpace, previous: Supernet | None) -> Supernet | None:
        """Step ``step``'s trained supernet; None on resume when the next step's is already trained (this one is superseded)."""
        run_dir = self.out / "supernet" / f"step-{step}"
        if self._trained(step + 1) and (run_dir / "metrics.json").is_file():
            return None
        if self._trained(step):
            self._drop_superseded(step)
            return load_supernet(run_dir).to(self.info.device)
        recipe = self.preset.supernet
        if step:
            recipe = recipe.with_overrides(
                {"epochs": self.preset.evolve_epochs, "warmup_epochs": self.preset.evolve_warmup_epochs, "lr": self.preset.evolve_lr}
            )
        what = "from scratch" if previous is None else "inheriting the previous step's weights"
        self.say(f"[bold]supernet step {step}[/]: {recipe.train.epochs} epoch(s) on {space.name} at {self.resolution} px, {what}")
        with self.timer.stage(f"supernet-{step}"):
            trained = fit_supernet(
                space,
                self.data,
                run_dir,
                preset=recipe,
                inherit=previous,
                in_chans=self.job.in_chans,
                resume=True,
                quiet=self.quiet,
                device=self.job.device,
                seed=self.job.seed + step,
                init_seed=self.job.seed * 1009 + step,  # initial (and newly grown) weights are a function of the seed
                keep_checkpoints=1,
                num_workers=self.job.workers,
                checkpoint_every=self.job.checkpoint_every,
                logger=self.job.logger,
            )
            net = cast(Supernet, trained.model)  # fit_supernet's model is the supernet it built
        barrier(self.info)
        if self.info.is_main:
            discard_checkpoints(run_dir)  # the finished weights are in model.safetensors
        self._drop_superseded(step)
        return net

    def _drop_superseded(self, step: int) -> None:
        """Delete the previous step's supernet weights: step ``step`` inherited them and is saved (metrics stay)."""
        if step and self.info.is_main:
            _drop_weights(self.out / "supernet" / f"step-{step - 1}")

    # --- 2. E-T error and space evolution --------------------------------------------------------
    def et_step(self, step: int, space: SearchSpace, supernet: Supernet | None, last: bool) -> dict:
        return self.once(self.out / "evolution" / f"step-{step}" / "et.json", lambda: self._et_record(step, space, supernet, last))

    def _et_record(self, step: int, space: SearchSpace, supernet: Supernet | None, last: bool) -> dict:
        step_dir = self.out / "evolution" / f"step-{step}"
        done = step_dir / "et.json"
        if supernet is None:
            raise NascompError(
                f"cannot resume {self.out}: {done} is missing and step {step}'s supernet weights were deleted once "
                f"step {step + 1}'s were saved; start a new run with the same options"
            )
        n = self.preset.et_samples
        with self.timer.stage(f"et-{step}"):
            archs = sample_candidates(space, n, self.constraint, random.Random(f"{self.job.seed}:et:{step}"))
            scores = self.scorer(supernet, step).score(archs)
            errors = [100.0 - s["top1"] for s in scores]
            table = et_table(space, archs, errors)
            slopes = fit_slopes(
                space, archs, errors, table.k, self.preset.rule, seed=self.job.seed * 7919 + step, train_resolution=self.resolution
            )
            self.mark_collapsed(slopes)
        et = table.to_dict()
        record = {
            "step": step,
            "space": space.to_dict(),
            "et": {**et, "choices": _numbered_for_users(et["choices"])},
            "slopes": _numbered_for_users(slopes),
            "supernet": read_json(self.out / "supernet" / f"step-{step}" / "metrics.json")["val"],
            "samples": [{"arch": a.to_dict(), "val_top1": s["top1"], "cost": self.constraint.cost(a)} for a, s in zip(archs, scores)],
        }
        self.say(f"E-T error of {space.name}: Q {table.Q:.2f}% (E {table.E:.2f}, T {table.T:.2f}; {table.n} subnets, top {table.k})")
        if not last:
            validator = self._validator
            new_space, decisions = evolve_space(
                space, slopes, self.preset.rule, f"{self.space0.name}-evolved-{step + 1}", validator, train_resolution=self.resolution
            )
            record["decisions"] = _numbered_for_users(decisions)
            record["next_space"] = new_space.to_dict()
            moved = [
                f"stage {d['stage']} {d['dimension']} {d['choices']} -> {d['new_choices']}"
                for d in record["decisions"]
                if d["action"] != "keep"
            ]
            self.say(f"space evolution step {step + 1}: " + ("; ".join(moved) if moved else "no choice moved"))
            if self.info.is_main:
                new_space.save(self.out / "evolution" / f"step-{step + 1}" / "space.yaml")
        if self.info.is_main:
            space.save(step_dir / "space.yaml")
        with self.run_log("evolution", resume_step=step) as logger:
            log_et_step(logger, record)
        return record

    def _validator(self, space: SearchSpace) -> str | None:
        """Why an evolved space is unusable: the budget cannot price it, or even its smallest arch exceeds it."""
        why = self.constraint.supports(space)
        if why:
            return why
        cheapest = self.constraint.cost(space.smallest())
        return f"its smallest arch ({self.budget.format(cheapest)}) exceeds the budget" if cheapest > self.constraint.limit else None

    # --- 3. evolutionary search ---------------------------------------------------------------------
    def search(self, space: SearchSpace, supernet: Supernet, step: int, seeds: list[Arch]) -> dict:
        return self.once(self.out / "search" / "result.json", lambda: self._search(space, supernet, step, seeds))

    def _search(self, space: SearchSpace, supernet: Supernet, step: int, seeds: list[Arch]) -> dict:
        scorer = self.scorer(supernet, step)
        cfg = self.preset.evolution
        self.say(
            f"[bold]evolutionary search[/] in {space.name}: population {cfg.population}, {cfg.generations} generations, "
            f"top-{cfg.parents} parents, objective {cfg.objective}"
        )

        def progress(rec: dict) -> None:
            g = rec["generation"]
            label = "initial population" if g == 0 else f"generation {g} of {cfg.generations}"
            self.say(f"  {label}: {rec['evaluated']} new, best val top-1 {rec['best_top1']:.2f}% at {self.budget.format(rec['best_cost'])}")
            logged(rec)

        with self.timer.stage("search"), self.run_log("search") as logger:
            logged = GenerationLog(
                logger, lambda archs: [s["top1"] for s in scorer.score(archs)], self.constraint.cost, self.constraint.limit
            )
            result = evolutionary_search(
                space, self.constraint, self.constraint.cost, logged.score, cfg, seed=self.job.seed, initial=seeds, on_generation=progress
            )
            full = scorer.score([c.arch for c in result.candidates])
        front = {c.arch for c in result.front}
        ranked = sorted(range(len(result.candidates)), key=lambda i: (-result.candidates[i].top1, result.candidates[i].cost))
        rank = {i: r + 1 for r, i in enumerate(ranked)}
        rows = []
        for i, (c, s) in enumerate(zip(result.candidates, full)):
            rows.append(
                {
                    "rank": rank[i],
                    "generation": c.generation,
                    "origin": c.origin,
                    "val_top1": s["top1"],
                    "val_top5": s["top5"],
                    "val_loss": s["loss"],
                    "cost": c.cost,
                    **self.constraint.interval_row(c.arch),
                    "pareto": c.arch in front,
                    **self.cost_row(c.arch),
                    "arch": c.arch.to_dict(),
                }
            )
        return {"space": space.to_dict(), "config": asdict(cfg), "history": result.history, "candidates": rows}

    # --- 4. finish: standalone finalists, optional retraining, test set ----------------------------
    def finalists(self, search: dict) -> list[dict]:
        rows = sorted(search["candidates"], key=lambda r: r["rank"])
        if self.preset.evolution.objective == "pareto":
            front = sorted((r for r in rows if r["pareto"]), key=lambda r: r["cost"])
            if len(front) > max(self.preset.top, 10):
                k = max(self.preset.top, 10)
                front = [front[round(i * (len(front) - 1) / (k - 1))] for i in range(k)]
            return front
        return rows[: self.preset.top]

    def finish(self, picks: list[dict], supernet: Supernet) -> list[dict]:
        return [
            self.once(self.out / "finalists" / f"rank-{k}" / "result.json", self._finisher(k, row, supernet))
            for k, row in enumerate(picks, 1)
        ]

    def _finisher(self, k: int, row: dict, supernet: Supernet) -> Callable[[], dict]:
        def finish() -> dict:
            with self.timer.stage(f"finalist-{k}"):
                return self._finish_one(k, row, supernet)

        return finish

    def check_predictions(self, finalists: list[dict]) -> dict | None:
        """A latency or energy budget: measure the finalists end to end on the predictor's protocol, beside their predictions."""
        predictor = self.constraint.predictor
        done = self.out / "finalists" / "prediction_check.json"
        if predictor is None or not finalists or not self.info.is_main:  # one rank measures; the others have no outputs to write
            return None

        def measure() -> dict:
            from nascomp.profiling.check import check_predictions

            with self.timer.stage("finalists-measured"):
                report = check_predictions(
                    predictor,
                    [Arch.from_dict(f["arch"]) for f in finalists],
                    [f"rank-{f['rank']}" for f in finalists],
                    limit=self.constraint.limit,
                )
            return {
                "unit": self.budget.unit,
                "protocol": report.protocol,
                "interval_method": report.method,
                "notes": report.notes,
                "finalists": [c.to_row() for c in report.checks],
            }

        doc = self.once(done, measure)
        for f, row in zip(finalists, doc["finalists"]):
            f["prediction_check"] = row
            interval = f"{row['level']:.0%} interval {row['low']:.2f}-{row['high']:.2f}" if row["low"] is not None else "no interval"
            flag = f"  [yellow]interval straddles the {self.budget.text} budget[/]" if row["straddles_limit"] else ""
            over = "  [red]measured over the budget[/]" if row["meets_measured"] is False else ""
            self.say(
                f"finalist {f['rank']}: predicted {row['predicted']:.2f} {doc['unit']} ({interval}), measured {row['measured']:.2f} "
                f"{doc['unit']} ({row['error']:+.1%}){flag}{over}"
            )
        return doc

    def _selection_score(self, arch: Arch, supernet: Supernet) -> dict:
        """Inherited-weight score on the selection images (memoised like the search's scores)."""
        assert self.select_val is not None and self.select_images is not None  # called only when a selection split exists
        scorer = SupernetScorer.of_images(supernet, self.select_images, memo=self.out / "finalists" / "selection.jsonl", dist=self.info)
        return {**scorer.score([arch])[0], "n": len(self.select_val)}

    def _finish_one(self, k: int, row: dict, supernet: Supernet) -> dict:
        arch = Arch.from_dict(row["arch"])
        folder = self.out / "finalists" / f"rank-{k}"
        p = self.preset
        drop_path = p.supernet.drop_path_rate
        spec = arch_spec(arch, self.data.num_classes, self.job.in_chans, self.resolution, drop_path)
        if p.retrain_epochs:
            if p.retrain_from == "scratch":
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(self.job.seed)
                    model = build_from_arch(arch, self.data.num_classes, self.job.in_chans, self.resolution, drop_path)
            else:
                model = extract(supernet, arch)
            lr = p.retrain_lr or (p.supernet.train.lr if p.retrain_from == "scratch" else p.supernet.train.lr / 4)  # fine-tuning: gentler
            warmup = (
                min(p.supernet.train.warmup_epochs, p.retrain_epochs / 4) if p.retrain_warmup_epochs is None else p.retrain_warmup_epochs
            )
            # the supernet's recipe (augmentation, Mixup, optimiser...) with the retraining's length, rate and EMA
            cfg = replace(
                p.supernet.train_config(
                    seed=self.job.seed,
                    resolution=self.resolution,
                    in_chans=self.job.in_chans,
                    eval_batch_size=p.eval_batch_size,
                    keep_checkpoints=1,
                    num_workers=self.job.workers,
                    checkpoint_every=self.job.checkpoint_every,
                ),
                epochs=p.retrain_epochs,
                lr=lr,
                warmup_epochs=warmup,
                ema_decay=p.retrain_ema_decay,
            )
            self.say(f"finalist {k}: retraining {p.retrain_epochs} epoch(s) from {p.retrain_from} weights")
            data = replace(self.data, val=self.select_val) if self.select_val is not None else self.data
            metrics = fit(
                model,
                data,
                cfg,
                folder / "model",
                spec=spec,
                resume=True,
                quiet=self.quiet,
                device=self.job.device,
                metadata={"search": {"rank": k, "source": p.retrain_from}},
            )
            if self.info.is_main:
                discard_checkpoints(folder / "model")
            val, test = metrics["val"], metrics["test"]
            source = f"retrained {p.retrain_epochs} epoch(s) from {p.retrain_from} weights"
        else:
            model = extract(supernet, arch).cpu()
            if self.info.is_main:
                save_model(folder / "model", model, spec, {"search": {"rank": k, "source": "inherited supernet weights"}})
            model.to(self.info.device)
            val = (
                self._selection_score(arch, supernet)
                if self.select_val is not None
                else {"top1": row["val_top1"], "top5": row["val_top5"], "loss": row["val_loss"], "n": len(self.data.val)}  # type: ignore[arg-type]  # noqa: E501  map-style datasets define __len__
            )
            test = evaluate(model, self.data.test, self.eval_tf, p.eval_batch_size, dist_info=self.info, workers=self.job.workers)
            source = "inherited supernet weights (no retraining)"
        split = "selection" if self.select_val is not None else "search"
        self.say(f"finalist {k}: val top-1 {val['top1']:.2f}% on {val['n']} {split} images  test top-1 {test['top1']:.2f}%  ({source})")
        return {
            "rank": k,
            "search_rank": row["rank"],
            "arch": arch.to_dict(),
            "val": val,
            "val_split": split,
            "test": test,
            "source": source,
            "search_val_top1": row["val_top1"],
            "search_val_n": len(self.data.val),  # type: ignore[arg-type]  # map-style datasets define __len__
            "cost": row["cost"],
            **self.cost_row(arch),
            "model_dir": str((folder / "model").relative_to(self.out)),
        }

    # --- 5. the winner stand-alone next to a hand-designed arch of the budget ------------------------
    def standalone_check(self, winner: dict) -> dict | None:
        done = self.out / "compare" / "result.json"
        if not done.is_file() and not self.preset.compare_epochs:
            return None
        return self.once(done, lambda: self._standalone(winner))

    def _standalone(self, winner: dict) -> dict:
        p = self.preset
        baseline = hand_designed_arch(self.space0, self.constraint)
        if baseline is None:
            return {"skipped": f"no hand-designed arch of {self.space0.name} fits {self.budget.text}"}
        found = Arch.from_dict(winner["arch"])
        archs = {"found": Arch(found.stages, found.patch_size, name="the search's winner"), "hand-designed": baseline}
        # the supernet's recipe (augmentation, Mixup, optimiser...), shortened to the check's length
        cfg = replace(
            p.supernet.train_config(
                resolution=self.resolution,
                in_chans=self.job.in_chans,
                eval_batch_size=p.eval_batch_size,
                keep_checkpoints=1,
                num_workers=self.job.workers,
                checkpoint_every=self.job.checkpoint_every,
            ),
            epochs=p.compare_epochs,
            warmup_epochs=min(p.supernet.train.warmup_epochs, p.compare_epochs / 4),
        )
        data = replace(self.data, val=self.select_val) if self.select_val is not None else self.data
        self.say(
            f"[bold]stand-alone check[/]: the winner and {baseline.name} ({self.budget.share(self.constraint.cost(baseline))}), "
            f"{p.compare_epochs} epoch(s) from scratch at {self.resolution} px, {p.compare_seeds} seed(s) each"
        )
        runs: dict[str, list[dict]] = {}
        with self.timer.stage("compare"):
            for name, arch in archs.items():
                runs[name] = []
                for seed in range(p.compare_seeds):
                    folder = self.out / "compare" / f"{name}-seed{seed}"
                    with torch.random.fork_rng(devices=[]):
                        torch.manual_seed(1000 * self.job.seed + seed)
                        model = build_from_arch(arch, self.data.num_classes, self.job.in_chans, self.resolution, 0.0)
                    spec = arch_spec(arch, self.data.num_classes, self.job.in_chans, self.resolution, 0.0)
                    metrics = fit(
                        model,
                        data,
                        replace(cfg, seed=seed),
                        folder,
                        spec=spec,
                        resume=True,
                        quiet=True,
                        device=self.job.device,
                        metadata={"search": {"compare": name, "seed": seed}},
                    )
                    if self.info.is_main:
                        discard_checkpoints(folder)
                        _drop_weights(folder)  # a measurement: its scores are what the run reports
                    runs[name].append({"seed": seed, "val_top1": metrics["val"]["top1"], "test_top1": metrics["test"]["top1"]})
        tests = {name: [r["test_top1"] for r in rows] for name, rows in runs.items()}
        doc: dict[str, Any] = {
            "recipe": {
                "epochs": p.compare_epochs,
                "seeds": p.compare_seeds,
                "train_images": len(self.data.train),  # type: ignore[arg-type]  # map-style datasets define __len__
                "resolution": self.resolution,
                "lr": p.supernet.train.lr,
                "batch_size": p.supernet.train.batch_size,
                "from": "scratch",
            },
            "archs": {
                name: {
                    "name": arch.name or name,
                    "arch": arch.to_dict(),
                    "cost": self.constraint.cost(arch),
                    **self.cost_row(arch),
                    "runs": runs[name],
                }
                for name, arch in archs.items()
            },
            "test_difference": difference_ci(tests["found"], tests["hand-designed"]),
        }
        d = doc["test_difference"]
        verdict = "separated" if d["separated"] else "not told apart"
        ci = f"95 % CI {d['ci'][0]:+.2f} to {d['ci'][1]:+.2f}" if d["ci"] else "no CI from one seed each"
        self.say(f"stand-alone: found - {baseline.name} = {d['difference']:+.2f} test points ({ci}): {verdict}")
        return doc


def _collapsed_later(steps: list[dict], resolution: int, say) -> list[dict]:
    """Collapse re-derived on every step's space: the initial dimensions are pinned and evolution refuses moves into merged
    choices, so this finds none in a run of this version; a run directory from before that rule may hold some, searched blind."""
    found: list[dict] = []
    for step in steps:
        for c in SearchSpace.from_dict(step["space"], f"step-{step['step']}").collapsed(resolution):
            record = {
                **c.to_dict(),
                "reason": f"{c.reason} (in the space of evolution step {step['step']}: searched without being told apart)",
            }
            if all((r["stage"], r["dimension"]) != (record["stage"], record["dimension"]) for r in found):
                found.append(record)
                say(f"[yellow]warning:[/] {record['reason']}")
    return found


def _numbered_for_users(records: list[dict]) -> list[dict]:
    """Copies of per-(stage, dimension) records with stages numbered from 1, as every printed line and report names them
    (the code indexes stages from 0)."""
    return [{**r, "stage": r["stage"] + 1} for r in records]


def _drop_weights(folder: Path) -> None:
    """Delete a saved model's files, keeping its metrics; model.json goes first, so a half-done delete is never a model."""
    for name in ("model.json", "model.safetensors"):
        (folder / name).unlink(missing_ok=True)


def _command() -> list[str]:
    """The command line that started the run: ``nascomp ...``, or the script that called `nascomp.search`."""
    if Path(sys.argv[0]).name in ("nascomp", "__main__.py"):
        return ["nascomp", *sys.argv[1:]]
    return ["python", *sys.argv, "(through nascomp.search)"]


def _check_settings(out: Path, settings: dict, resume: bool) -> None:
    run_file = out / "run.json"
    if run_file.is_file():
        if not resume:
            raise NascompError(f"{out} already holds a search run; add --resume to continue (or re-read) it, or choose a new --out")
        stored = read_json(run_file).get("settings")
        if stored != settings:
            diff = sorted(k for k in set(stored or {}) | set(settings) if (stored or {}).get(k) != settings.get(k))
            raise NascompError(
                f"cannot resume {out}: it was started with other settings ({', '.join(diff)}); "
                "rerun with the original options or choose a new --out"
            )
    elif holds(out) is not None:
        raise NascompError(f"{out} holds {holds(out)}, not a search run; choose a new --out")


def run_search(job: SearchJob, resume: bool = False, quiet: bool = False) -> dict:
    """Run (or resume) a search in ``job.out``; returns the summary also written to best_arch.json (empty on non-main DDP ranks)."""
    space, budget, preset, data, out, resolution = job.space, job.budget, job.preset, job.data, job.out, job.resolution
    info = init_distributed(job.device)
    if preset.data_hint and data.name == "fashion-mnist" and info.is_main and not quiet:
        console.print(f"[yellow]note:[/] {preset.data_hint}")
    constraint = make_constraint(budget, space, job.in_chans, data.num_classes, job.lut, job.runtime)
    cheapest = check_feasible(constraint, space)
    searched = space.pinned(resolution)  # what the proxy collapses is fixed for the whole run
    check_feasible(constraint, searched)
    settings = job.settings()
    _check_settings(out, settings, resume)
    barrier(info)  # every rank has checked before rank 0 writes run.json
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if not (out / "run.json").is_file():
            atomic_write_json(out / "run.json", {"settings": settings, "command": _command(), "out": str(out)})
    barrier(info)
    run = _Run(job, constraint, info, quiet)
    run.say(f"[bold]S3 search[/] of {space.name} under {budget.describe()} (cheapest member {budget.format(cheapest)}) -> {out}")
    for c in run.collapsed:
        run.say(f"[yellow]not searched at the {resolution} px proxy:[/] {c.describe()}")

    steps: list[dict] = []
    supernet: Supernet | None = None
    current = searched
    for t in range(preset.evolve_steps + 1):
        if t:
            current = SearchSpace.from_dict(steps[-1]["next_space"], f"{space.name}-evolved-{t}")
        supernet = run.train_step(t, current, supernet)
        steps.append(run.et_step(t, current, supernet, last=t == preset.evolve_steps))
    seeds = [Arch.from_dict(s["arch"]) for s in steps[-1]["samples"]]
    assert supernet is not None  # the last step has no successor to supersede it, so train_step returned its supernet
    search = run.search(current, supernet, preset.evolve_steps, seeds)
    finalists = run.finish(run.finalists(search), supernet)
    run.check_predictions(finalists)
    compare = run.standalone_check(pick_winner(finalists))
    facts = RunFacts(
        out,
        space,
        budget,
        preset,
        job.preset_name,
        job.seed,
        job.in_chans,
        data.describe(),
        resolution,
        [c.to_dict() for c in run.collapsed] + _collapsed_later(steps, resolution, run.say),
    )
    summary = write_outputs(facts, steps, search, finalists, cheapest, compare) if info.is_main else {}
    barrier(info)
    return summary
