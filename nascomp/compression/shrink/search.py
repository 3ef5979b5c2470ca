"""`ShrinkMethod`: a trained Swin's best sub-network under a budget, found by evolutionary search with inherited weights.

Steps (``nascomp compress MODEL --method shrink --budget B``):

1. the model's neighbourhood (`nascomp.compression.shrink.space`) and the budget's constraint on it: analytic
   params / MACs, or a latency / energy lookup table of the neighbourhood's layers on the target, measured once
   per model and target (`nascomp.profiling.predictor`; kept in nascomp's table cache or ``options["lut"]``);
2. checks before any work: the model must exceed the budget, and the smallest sub-network must meet it;
3. units reordered by importance on calibration images from the training split (`importance`), the model's
   weights loaded into the neighbourhood's supernet;
4. `nascomp.nas.evolutionary.evolutionary_search` under the constraint, candidates scored by validation top-1
   with inherited weights (a fixed leading subset of the validation split); the winner is extracted as a timm
   ``SwinTransformer``, which `nascomp.compress` then distils from the original model.

A dry run has no data: it skips the importance ordering (the leading units are the model's own first ones) and,
having no accuracy to rank by, picks the sub-network that keeps the most of the budget's metric (the largest
one that fits). Dry runs take params / MACs budgets only (a latency budget needs measurements).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from nascomp.compression.base import CompressContext, CompressionMethod, Student
from nascomp.compression.shrink.importance import measure_importance, reorder
from nascomp.compression.shrink.space import WIDTHS, ShrinkSpace, load_supernet_from, neighbourhood, swin_arch
from nascomp.core.errors import NascompError
from nascomp.models.resolve import model_input_size
from nascomp.models.swin import arch_spec
from nascomp.nas.budget import Budget, parse_budget
from nascomp.nas.constraints import Constraint, make_constraint
from nascomp.nas.evolutionary import EvolutionConfig, evolutionary_search
from nascomp.nas.supernet.extract import extract
from nascomp.spaces.arch import Arch, BlockArch, StageArch

__all__ = ["ShrinkMethod", "ShrinkPlan", "shrink_constraint", "uniform_archs", "DEFAULTS"]

DEFAULTS: dict[str, Any] = {"population": 24, "generations": 8, "score_images": 2000, "calib_images": 256, "timer": "wall"}


@dataclass
class ShrinkPlan:
    """A model's neighbourhood under a budget: its arch, space, constraint, and the costs of the model and the smallest member."""

    budget: Budget
    arch: Arch
    space: ShrinkSpace
    constraint: Constraint
    original: float
    cheapest: float
    widths: tuple[float, ...]


def shrink_constraint(budget: Budget, space: ShrinkSpace, in_chans: int, num_classes: int, options: dict, quiet: bool) -> Constraint:
    """The budget's constraint on the neighbourhood; a latency / energy budget first completes its lookup table.

    The table's correction is affine (scale and offset), not the default offset: timed alone, each small layer pays
    the per-run overhead of its own session, so the layer sum of a small model overshoots its end-to-end latency by a
    factor (x1.9 for the Fashion-MNIST Swin of experiments/shrink-swin, where the affine fit put 85 % of 20 held-out
    sub-networks within +-10 % against 35 % for the offset fit).
    """
    if not budget.measured:
        return make_constraint(budget, space, in_chans, num_classes)
    from nascomp.core.progress import stage_progress
    from nascomp.profiling.predictor import LutProtocol, build_lut, load_predictor, lut_path
    from nascomp.profiling.targets import parse_target

    timer = options.get("timer") or DEFAULTS["timer"]
    probe = bool(options.get("probe"))
    runtime = options.get("runtime") or "onnxruntime"
    assert budget.target is not None  # a measured budget names its target (parse_budget)
    label = parse_target(budget.target).label
    path = options.get("lut") or lut_path(f"{space.name}-{timer}{'-probe' if probe else ''}", label, runtime)
    try:
        load_predictor(label, budget.metric, space=space, lut=path, runtime=runtime)
    except NascompError:
        proto = LutProtocol(
            target=label, runtime=runtime, timer=timer, probe=probe, resolution=space.resolution, in_chans=in_chans, num_classes=num_classes
        )
        if not quiet:
            print(
                f"measuring the layers of the model's neighbourhood on {label} for the latency table {path} (once per model and target)",
                file=sys.stderr,
            )
        with stage_progress(not quiet) as progress:
            build_lut(space, proto, path, fit="affine", progress=progress)
    return make_constraint(budget, space, in_chans, num_classes, lut=path, runtime=runtime)


def _check_prediction(constraint: Constraint, arch: Arch, dry_run: bool) -> dict | None:
    """A latency / energy budget: the student's predicted cost with its interval, and (unless a dry run) its end-to-end
    measurement on the table's protocol, so the run records whether the prediction held for the model it ships."""
    if constraint.predictor is None:
        return None
    if dry_run:
        p = constraint.predictor.predict_interval(arch)
        return {
            "unit": p.unit,
            "predicted": p.value,
            "low": p.low,
            "high": p.high,
            "level": p.level,
            "measured": None,
            "straddles_limit": p.straddles(constraint.limit),
            "interval_method": p.method,
        }
    from nascomp.profiling.check import check_predictions

    report = check_predictions(constraint.predictor, [arch], ["student"], limit=constraint.limit)
    return {**report.checks[0].to_row(), "interval_method": report.method, "notes": report.notes}


def uniform_archs(space: ShrinkSpace) -> list[Arch]:
    """Full-depth members with every width at the same level (all widest, all next-widest...): search seeds."""
    out = []
    levels = max(len(c) for s in space.stages for c in (s.embed_dim, s.heads, s.mlp_ratio))

    def pick(values: Sequence[Any], level: int) -> Any:
        """The choice ``level`` steps below the widest (the narrowest when there are fewer)."""
        return values[max(0, len(values) - 1 - level)]

    for level in range(levels):
        stages = []
        for s, hd in zip(space.stages, space.head_dims):
            heads = pick(s.heads, level)
            block = BlockArch(heads, heads * hd, pick(s.mlp_ratio, level), s.window[-1])
            stages.append(StageArch(pick(s.embed_dim, level), (block,) * max(s.depth)))
        out.append(Arch(tuple(stages), space.patch_size))
    return out


def _images(dataset, count: int, transform, seed: int) -> torch.Tensor:
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:count].tolist()
    images, _ = transform([dataset[i] for i in order])
    return images


def _option(options: dict, name: str) -> int:
    value = options.get(name)
    value = DEFAULTS[name] if value is None else value
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "generations" else 1):
        raise NascompError(f"shrink option {name} must be a positive integer, got {value!r}")
    return value


class ShrinkMethod(CompressionMethod):
    """Options: ``budget`` (required: ``2gflops``, ``10mparams``, ``15ms@mobile-cpu``...), ``widths`` (fractions of each width
    offered, default 1/2 to 1 in eighths), ``population`` / ``generations`` (evolution), ``score_images`` (validation
    images that score a candidate), ``calib_images`` (training images that measure importance), ``runtime`` / ``timer`` / ``probe`` /
    ``lut`` (latency budgets: the runtime and timer the lookup table is measured with, the reference probe on drifting shared
    machines, and where it is kept)."""

    name = "shrink"
    needs_data = True

    def check(self, base: nn.Module, options: dict) -> None:
        if options.get("budget") is None:
            raise NascompError("shrink needs a budget (--budget, e.g. 2gflops, 10mparams or 15ms@mobile-cpu): the sub-network must meet it")
        swin_arch(base)

    def plan(self, base: nn.Module, options: dict, context: CompressContext) -> ShrinkPlan:
        """The neighbourhood, the budget's constraint on it and the checks that must pass before any data is read."""
        self.check(base, options)
        budget = parse_budget(options["budget"])
        arch = swin_arch(base)
        in_chans, resolution = model_input_size(base)
        widths: tuple[float, ...] = tuple(options.get("widths") or WIDTHS)
        space = neighbourhood(arch, resolution, widths)
        if context.dry_run and budget.measured:
            raise NascompError(
                f"a dry run takes a params or MACs budget (e.g. 2gflops, 10mparams); {budget.text} needs latency "
                "measurements of the model's sub-networks, so run without --dry-run"
            )
        constraint = shrink_constraint(budget, space, in_chans, cast(int, base.num_classes), options, context.quiet)
        original, cheapest = constraint.cost(arch), constraint.cost(space.smallest())
        if original <= budget.limit:
            raise NascompError(
                f"the model already meets budget {budget.text}: it costs {budget.format(original)}; "
                "nothing to shrink (lower the budget, or deploy the model as it is)"
            )
        if cheapest > budget.limit:
            raise NascompError(
                f"no sub-network of the model meets budget {budget.text}: the smallest reachable one (1 block per stage, "
                f"widths at {min(widths):g} of the model's) costs {budget.format(cheapest)}; raise the budget to at least that"
            )
        return ShrinkPlan(budget, arch, space, constraint, original, cheapest, widths)

    def make_student(self, base: nn.Module, spec: dict, options: dict, context: CompressContext | None = None) -> Student:
        context = context or CompressContext()
        plan = self.plan(base, options, context)
        budget, arch, space, constraint, original, cheapest, widths = (
            plan.budget,
            plan.arch,
            plan.space,
            plan.constraint,
            plan.original,
            plan.cheapest,
            plan.widths,
        )
        in_chans, resolution = model_input_size(base)
        population, generations = _option(options, "population"), _option(options, "generations")
        if context.dry_run:
            net = load_supernet_from(base, space, arch)
            importance = "skipped (dry run: no data; the model's own leading units are kept)"

            def score(archs: list[Arch]) -> list[float]:  # no accuracy without data: keep as much of the budget as fits
                return [100.0 * constraint.cost(a) / original for a in archs]
        else:
            from nascomp.nas.scoring import SupernetScorer

            bundle = context.data()
            transform = bundle.transform(resolution, in_chans, train=False)
            calib = _images(bundle.train, min(_option(options, "calib_images"), len(bundle.train)), transform, context.seed)
            reorder(base, measure_importance(base, calib))
            importance = f"measured on {len(calib)} training images (activations; Minitron-style)"
            net = load_supernet_from(base, space, arch)
            count = min(_option(options, "score_images"), len(bundle.val))
            scorer = SupernetScorer(net, torch.utils.data.Subset(bundle.val, range(count)), transform, device=context.device)

            def score(archs: list[Arch]) -> list[float]:
                return [s["top1"] for s in scorer.score(archs)]

        config = EvolutionConfig(
            population=population,
            generations=generations,
            parents=max(2, population // 3),
            mutations=population // 2,
            crossovers=population // 2,
        )
        seeds = [a for a in uniform_archs(space) if constraint(a)]
        result = evolutionary_search(space, constraint, constraint.cost, score, config, seed=context.seed, initial=seeds)
        best = result.best.arch
        student = extract(net, best)
        student_spec = arch_spec(best, cast(int, base.num_classes), in_chans, resolution, net.drop_path_rate)
        structure = {
            "budget": budget.to_dict(),
            "arch": best.to_dict(),
            "cost_in_budget_unit": {
                "before": original,
                "after": constraint.cost(best),
                "smallest_reachable": cheapest,
                "how": constraint.describe(),
            },
            "space": {
                "name": space.name,
                "widths": list(widths),
                "archs": float(space.size()),
                "choices": [s.to_dict() for s in space.stages],
            },
            "importance": importance,
            "predicted_vs_measured": _check_prediction(constraint, best, context.dry_run),
            "search": {
                "candidates": len(result.candidates),
                "population": population,
                "generations": generations,
                "seed": context.seed,
                "score": "kept share of the budget's metric (%)"
                if context.dry_run
                else f"validation top-1 (%) with inherited weights on {count} validation images",
                "best_score": result.best.top1,
            },
        }
        return Student(student, student_spec, structure)
