"""S3 search end to end: budgets, constraints, E-T error, space evolution, evolutionary search, the run pipeline.

- `parse_budget` / `Budget` (`nascomp.search.budget`): ``4gflops``, ``4e9macs``, ``25mparams``, ``25ms@mobile-cpu``...
- `make_constraint` / `Constraint` (`nascomp.search.constraints`): analytic MACs/params or predicted latency/energy.
- `SupernetScorer` (`nascomp.search.scoring`): inherited-weight validation accuracy, memoised for resume.
- `et_table` / `et_error` (`nascomp.search.et_error`): S3's E-T error per space and per (stage, dimension, choice).
- `fit_slopes` / `evolve_space` / `EvolutionRule` (`nascomp.search.space_evolution`): the space-evolution rule.
- `evolutionary_search` / `EvolutionConfig` (`nascomp.search.evolutionary`): AutoFormer-style search, or a Pareto front.
- `run_search` / `SearchJob` (`nascomp.search.run`) with `PRESETS` (`nascomp.search.presets`): ``nascomp search``.
"""

from nascomp.search.budget import BUDGET_FORMS, Budget, parse_budget
from nascomp.search.constraints import Constraint, check_feasible, deploy_cost, make_constraint
from nascomp.search.et_error import ETResult, et_error, et_table, sample_candidates, top_k_for
from nascomp.search.evolutionary import Candidate, EvolutionConfig, SearchResult, evolutionary_search
from nascomp.search.presets import PRESETS, SearchPreset, resolve_preset
from nascomp.search.run import SearchJob, default_out_dir, run_search
from nascomp.search.scoring import SupernetScorer
from nascomp.search.space_evolution import EvolutionRule, evolve_space, fit_slopes

__all__ = [
    "BUDGET_FORMS",
    "Budget",
    "parse_budget",
    "Constraint",
    "check_feasible",
    "deploy_cost",
    "make_constraint",
    "ETResult",
    "et_error",
    "et_table",
    "sample_candidates",
    "top_k_for",
    "Candidate",
    "EvolutionConfig",
    "SearchResult",
    "evolutionary_search",
    "PRESETS",
    "SearchPreset",
    "resolve_preset",
    "SearchJob",
    "default_out_dir",
    "run_search",
    "SupernetScorer",
    "EvolutionRule",
    "evolve_space",
    "fit_slopes",
]
