"""Search recipes: supernet training per step, E-T sampling, space evolution, evolutionary search, finish.

- ``smoke``: about 2 minutes on a loaded 2-core CPU; what the end-to-end tests run.
- ``cpu`` (the default): ``nascomp search --space s3-vit --budget 4gflops`` on 2 CPU cores (measured:
  experiments/s3-found-vs-random/README.md). The supernet trains at a 32 px proxy resolution on 4000
  Fashion-MNIST images; budgets and reported costs stay at the space's 224 px. The proxy collapses some
  dimensions (s3-vit at 32 px: stage 2-3 windows, stage 4 heads and Q-K-V dim; `SearchSpace.collapsed`):
  they are fixed to their middle choice and not searched. The winner is picked among the top 5 on 5000
  validation images the search never scored, then trained stand-alone next to a hand-designed arch.
- ``cpu-geometry``: the cpu recipe at the space's own resolution, so nothing collapses; measured to take far
  longer than the default on a CPU (the cost is stated next to its definition below).
- ``full``: the paper-scale recipe for ImageNet (``--data imagefolder:PATH``) on GPUs under ``torchrun``.
  Every setting and where it comes from (the S3 and AutoFormer papers and their code, microsoft/Cream;
  "chosen" = not published, picked here):

  ==========================  ==========================================================================
  supernet, step 0            AutoFormer v1's supernet recipe at the space's 224 px, all of it
                              (`nascomp.nas.supernet.train` lists it: 500 epochs, 20 warm-up, lr 5e-4 per
                              512 images scaled to the global batch, AdamW wd 0.05, drop path 0.1, label
                              smoothing 0.1, RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25,
                              Mixup 0.8 / CutMix 1.0, repeated augmentation x3, uniform sampling, no EMA)
  candidate scoring           25,000 validation images (25 per ImageNet class; chosen: AutoFormer scores on
                              100 training images per class), resize 256 + centre crop 224
  evolution steps             2 (S3's ablation compares spaces after one and two steps); 100 supernet
                              epochs each with 5 warm-up (chosen), weights inherited
  E-T error                   N = 1000 subnets, top 50 (S3's ablation plot uses 1000)
  shift rule                  τ = 0.5 E-T points per step as the smallest move worth making, each slope's
                              permutation test Holm-corrected across the step at α = 0.05 (chosen; S3's τ
                              and γ unpublished; experiments/evolution-calibration measures the rule)
  evolutionary search         AutoFormer's: population 50, 20 generations, top-10 parents, 25 mutations +
                              25 crossovers, m_prob 0.2, s_prob 0.4
  winner selection            the top 5 re-scored on 25,000 further validation images (chosen)
  finalists                   top 5, retrained from scratch for 300 epochs with DeiT's recipe (S3's own
                              retraining recipe is not released; its evaluation.py carries DeiT's
                              defaults): lr 5e-4 per 512 images scaled to the global batch, 5 warm-up
                              epochs, AdamW wd 0.05, drop path 0.1, label smoothing 0.1, the same
                              augmentation, Mixup/CutMix and repeated augmentation as the supernet, no
                              gradient clipping; EMA of the weights off (DeiT's optional --model-ema:
                              ``--retrain-ema-decay 0.99996``)
  ==========================  ==========================================================================

  Not run at this scale here; tests run it shrunk by its own overrides on a 224 px image folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from nascomp.core.errors import NascompError
from nascomp.core.validate import fraction, non_negative, positive
from nascomp.engine.config import TrainConfig
from nascomp.nas.evolutionary import EvolutionConfig
from nascomp.nas.space_evolution import EvolutionRule
from nascomp.nas.supernet.recipe import OVERRIDABLE, SUPERNET_PRESETS, SupernetPreset

__all__ = ["SearchPreset", "PRESETS", "resolve_preset", "override_routes"]


@dataclass(frozen=True)
class SearchPreset:
    """Everything one search run does, apart from the space, the budget, the data and the seed."""

    supernet: SupernetPreset  # step 0's recipe (epochs = the initial supernet training)
    evolve_steps: int
    evolve_epochs: int  # supernet training per evolution step, inheriting the previous weights
    evolve_warmup_epochs: float
    et_samples: int  # N subnets per E-T evaluation
    rule: EvolutionRule
    evolution: EvolutionConfig
    top: int  # finalists extracted as standalone models and evaluated on the test set
    select_val: int = 0  # validation images after the search's that re-score the finalists to pick the winner (0: none)
    compare_epochs: int = 0  # train the winner and a hand-designed arch of the budget stand-alone this long (0: skip)
    compare_seeds: int = 2
    retrain_epochs: int = 0
    evolve_lr: float | None = None  # peak LR of each evolution step's training; None: step 0's
    retrain_from: str = "inherited"  # or "scratch"
    retrain_lr: float | None = None  # None: the supernet's lr from scratch, a quarter of it when fine-tuning
    retrain_warmup_epochs: float | None = None  # None: the supernet's, at most a quarter of the retraining
    retrain_ema_decay: float = 0.0  # EMA of the finalists' weights (0: off)
    limit_test: int | None = None
    eval_batch_size: int = 256
    data_hint: str = ""

    def __post_init__(self):
        if self.et_samples < 2:
            raise NascompError(f"--et-samples must be at least 2 (an E-T table needs a spread), got {self.et_samples}")
        for name in ("top", "eval_batch_size", "limit_test"):
            positive(f"--{name.replace('_', '-')}", getattr(self, name))
        positive("--compare-seeds", self.compare_seeds)
        for name in ("evolve_steps", "evolve_epochs", "retrain_epochs", "select_val", "compare_epochs"):
            non_negative(f"--{name.replace('_', '-')}", getattr(self, name))
        non_negative("--evolve-warmup-epochs", self.evolve_warmup_epochs, integer=False)
        positive("--evolve-lr", self.evolve_lr, integer=False)
        positive("--retrain-lr", self.retrain_lr, integer=False)
        non_negative("--retrain-warmup-epochs", self.retrain_warmup_epochs, integer=False)
        fraction("--retrain-ema-decay", self.retrain_ema_decay, low_open=False)
        if self.evolve_steps and self.evolve_epochs < 1:
            raise NascompError("each evolution step needs at least one supernet epoch (--evolve-epochs)")
        if self.retrain_from not in ("inherited", "scratch"):
            raise NascompError(f"--retrain-from must be inherited or scratch, got {self.retrain_from!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["supernet"], d["rule"] = self.supernet.to_dict(), self.rule.to_dict()
        return d


PRESETS: dict[str, SearchPreset] = {
    "smoke": SearchPreset(
        supernet=replace(SUPERNET_PRESETS["smoke"], sampler="uniform", limit_train=64, limit_val=32),
        evolve_steps=1,
        evolve_epochs=1,
        evolve_warmup_epochs=0.0,
        et_samples=8,
        # 8 subnets cannot make a slope significant after a correction; alpha = 1 keeps the bare τ rule so smoke still moves
        rule=EvolutionRule(tau=0.5, alpha=1.0, min_weight=1.0, permutations=99),
        evolution=EvolutionConfig(population=8, generations=1, parents=3, mutations=3, crossovers=3),
        top=2,
        limit_test=100,
        eval_batch_size=64,
        select_val=64,
        compare_epochs=1,
    ),
    "cpu": SearchPreset(
        supernet=SupernetPreset(
            resolution=32,
            train=TrainConfig(epochs=4, batch_size=64, lr=2e-3, warmup_epochs=0.5),
            drop_path_rate=0.0,
            sampler="sandwich",
            limit_train=4000,
            limit_val=500,
        ),
        # evolution steps continue at a quarter of the peak rate: re-warming to 2e-3 for a 2-epoch leg left the
        # supernet worse than before it (E-T 24.2 -> 26.3 % with nothing moved; experiments/s3-fashion-mnist)
        # N = 160, α = 0.04 (experiments/evolution-calibration): at N = 60 the calibrated rule found a trend of
        # 1.2 E-T points per step (one SD of the subnets' errors on 500 images) 68 % of the time, at N = 120 86 %;
        # with the 19 pairs tested at this proxy, α = 0.05 moved something in 5.2-5.8 % of null steps (Holm's bound
        # is met only in expectation), so the preset asks for 0.04. τ = 0.5 never fired on 500-image scores.
        evolve_steps=2,
        evolve_epochs=2,
        evolve_warmup_epochs=0.25,
        evolve_lr=5e-4,
        et_samples=160,
        rule=EvolutionRule(tau=0.1, alpha=0.04),
        evolution=EvolutionConfig(population=20, generations=6, parents=5, mutations=10, crossovers=10),
        # the best of ~200 candidates on 500 images scored 3.8 points above its test score: 5000 more validation
        # images pick the winner among the top 5, and the winner meets a hand-designed arch stand-alone
        top=5,
        select_val=5000,
        compare_epochs=3,
        compare_seeds=2,
        limit_test=None,
        eval_batch_size=250,
    ),
    "full": SearchPreset(
        supernet=replace(SUPERNET_PRESETS["full"], limit_val=25_000),  # 25 images per class score each candidate
        evolve_steps=2,
        evolve_epochs=100,
        evolve_warmup_epochs=5.0,
        et_samples=1000,
        rule=EvolutionRule(tau=0.5, alpha=0.05),
        evolution=EvolutionConfig(),
        top=5,
        select_val=25_000,
        retrain_epochs=300,
        retrain_from="scratch",
        retrain_lr=5e-4,
        retrain_warmup_epochs=5.0,
        retrain_ema_decay=0.0,
        limit_test=None,
        eval_batch_size=256,
        data_hint="the full preset is the paper-scale recipe: pass --data imagefolder:/path/to/imagenet and run it on GPUs "
        "(torchrun --nproc-per-node N -m nascomp search ...)",
    ),
}
# The cpu recipe at the space's own resolution: every stage's map at least as large as its largest window (s3-vit
# at 224 px: 56/28/14/7 tokens), so the proxy collapses nothing and every dimension is searched. Measured on a
# 2-core CPU: about 50 CPU-hours per run (3.3 s per training image, 0.24 s per scored subnet-image), against 59
# CPU-minutes for cpu (experiments/s3-proxy-geometry): an option for a GPU or a patient machine, not the default.
PRESETS["cpu-geometry"] = replace(PRESETS["cpu"], supernet=replace(PRESETS["cpu"].supernet, resolution=None))


def override_routes() -> dict[str, str]:
    """Which dataclass each flat override key of `resolve_preset` sets; a key two of them declare would be ambiguous, and
    is refused here (at import) rather than silently routed to both."""
    groups = {
        "EvolutionConfig": {f.name for f in fields(EvolutionConfig)},
        "EvolutionRule": {f.name for f in fields(EvolutionRule)},
        "SearchPreset": {f.name for f in fields(SearchPreset)} - {"supernet", "rule", "evolution"},
        "SupernetPreset": set(OVERRIDABLE),
    }
    routes: dict[str, str] = {}
    for owner, names in groups.items():
        for name in names:
            if name in routes:
                raise RuntimeError(f"preset override {name!r} is a field of both {routes[name]} and {owner}: rename one")
            routes[name] = owner
    return routes


_ROUTES = override_routes()


def resolve_preset(name: str | SearchPreset, overrides: Mapping[str, Any] | None = None) -> SearchPreset:
    """``PRESETS[name]`` (or the given preset) with explicit options (``None`` = keep the preset's) replacing its fields.

    Keys: any `SearchPreset` field; any `SupernetPreset` field (``epochs`` = step 0's supernet epochs,
    ``resolution``, ``limit_train``...); any `EvolutionConfig` field; ``tau`` / ``steps`` / ``alpha``
    for the evolution rule.
    """
    if isinstance(name, SearchPreset):
        preset = name
    elif name not in PRESETS:
        raise NascompError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    else:
        preset = PRESETS[name]
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(overrides) - set(_ROUTES))
    if unknown:
        raise NascompError(f"unknown search options {unknown}")
    part = {owner: {k: v for k, v in overrides.items() if _ROUTES[k] == owner} for owner in set(_ROUTES.values())}
    return replace(
        preset,
        supernet=preset.supernet.with_overrides(part["SupernetPreset"]),
        rule=replace(preset.rule, **part["EvolutionRule"]),
        evolution=replace(preset.evolution, **part["EvolutionConfig"]),
        **part["SearchPreset"],
    )
