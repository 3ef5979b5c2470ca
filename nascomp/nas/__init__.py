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

from nascomp.nas.budget import BUDGET_FORMS, Budget, parse_budget
from nascomp.nas.constraints import Constraint, check_feasible, deploy_cost, make_constraint
from nascomp.nas.et_error import ETResult, et_error, et_table, sample_candidates, top_k_for
from nascomp.nas.evolutionary import Candidate, EvolutionConfig, SearchResult, evolutionary_search
from nascomp.nas.pipeline import SearchJob, default_out_dir, run_search
from nascomp.nas.presets import PRESETS, SearchPreset, resolve_preset
from nascomp.nas.scoring import SupernetScorer
from nascomp.nas.space_evolution import EvolutionRule, evolve_space, fit_slopes

__all__ = [
    "BUDGET_FORMS", "Budget", "parse_budget", "Constraint", "check_feasible", "deploy_cost", "make_constraint", "ETResult", "et_error",
    "et_table", "sample_candidates", "top_k_for", "Candidate", "EvolutionConfig", "SearchResult", "evolutionary_search", "SearchJob",
    "default_out_dir", "run_search", "PRESETS", "SearchPreset", "resolve_preset", "SupernetScorer", "EvolutionRule", "evolve_space",
    "fit_slopes",
]
