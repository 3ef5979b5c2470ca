"""Neural architecture search: the S3 supernet, E-T error, space evolution, evolutionary search and the run pipeline.

- `nascomp.nas.supernet`: the weight-entangled supernet, subnet extraction, supernet training.
- `parse_budget` / `Budget` (`budget`): ``4gflops``, ``4e9macs``, ``25mparams``, ``25ms@mobile-cpu``...
- `make_constraint` / `Constraint` (`constraints`): analytic MACs/params or predicted latency/energy.
- `SupernetScorer` (`scoring`): inherited-weight validation accuracy, memoised for resume.
- `et_table` / `et_error` (`et_error`): S3's E-T error per space and per (stage, dimension, choice).
- `fit_slopes` / `evolve_space` / `EvolutionRule` (`space_evolution`): the space-evolution rule.
- `evolutionary_search` / `EvolutionConfig` (`evolutionary`): AutoFormer-style search, or a Pareto front.
- `hand_designed_arch` / `difference_ci` (`compare`): the winner against a hand-designed arch of the budget, over seeds.
- `SearchPreset` / `PRESETS` (`presets`), `run_search` / `SearchJob` (`pipeline`), outputs (`report`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nascomp.core.lazy import lazy_exports

# public name -> module that defines it (imported on first use)
_EXPORTS = {
    "BUDGET_FORMS": "nascomp.nas.budget",
    "Budget": "nascomp.nas.budget",
    "parse_budget": "nascomp.nas.budget",
    "Constraint": "nascomp.nas.constraints",
    "check_feasible": "nascomp.nas.constraints",
    "deploy_cost": "nascomp.nas.constraints",
    "make_constraint": "nascomp.nas.constraints",
    "ETResult": "nascomp.nas.et_error",
    "et_error": "nascomp.nas.et_error",
    "et_table": "nascomp.nas.et_error",
    "sample_candidates": "nascomp.nas.et_error",
    "top_k_for": "nascomp.nas.et_error",
    "Candidate": "nascomp.nas.evolutionary",
    "EvolutionConfig": "nascomp.nas.evolutionary",
    "EvolutionResult": "nascomp.nas.evolutionary",
    "evolutionary_search": "nascomp.nas.evolutionary",
    "SearchJob": "nascomp.nas.pipeline",
    "default_out_dir": "nascomp.nas.api",
    "run_search": "nascomp.nas.pipeline",
    "PRESETS": "nascomp.nas.presets",
    "SearchPreset": "nascomp.nas.presets",
    "resolve_preset": "nascomp.nas.presets",
    "SupernetScorer": "nascomp.nas.scoring",
    "EvolutionRule": "nascomp.nas.space_evolution",
    "evolve_space": "nascomp.nas.space_evolution",
    "fit_slopes": "nascomp.nas.space_evolution",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily
    from nascomp.nas.api import default_out_dir
    from nascomp.nas.budget import BUDGET_FORMS, Budget, parse_budget
    from nascomp.nas.constraints import Constraint, check_feasible, deploy_cost, make_constraint
    from nascomp.nas.et_error import ETResult, et_error, et_table, sample_candidates, top_k_for
    from nascomp.nas.evolutionary import Candidate, EvolutionConfig, EvolutionResult, evolutionary_search
    from nascomp.nas.pipeline import SearchJob, run_search
    from nascomp.nas.presets import PRESETS, SearchPreset, resolve_preset
    from nascomp.nas.scoring import SupernetScorer
    from nascomp.nas.space_evolution import EvolutionRule, evolve_space, fit_slopes
