"""Pareto fronts: non-dominated sorting, hypervolume, result tables and plots."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nascomp.core.lazy import lazy_exports

# public name -> module that defines it (imported on first use)
_EXPORTS = {
    "default_reference": "nascomp.pareto.front",
    "dominates": "nascomp.pareto.front",
    "hypervolume": "nascomp.pareto.front",
    "non_dominated_sort": "nascomp.pareto.front",
    "objective_sense": "nascomp.pareto.front",
    "front_indices": "nascomp.pareto.front",
    "axis_label": "nascomp.pareto.plot",
    "label_text": "nascomp.pareto.plot",
    "plot_front": "nascomp.pareto.plot",
    "RUN_DIR_FILES": "nascomp.pareto.table",
    "Table": "nascomp.pareto.table",
    "load_rows": "nascomp.pareto.table",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily
    from nascomp.pareto.front import default_reference, dominates, front_indices, hypervolume, non_dominated_sort, objective_sense
    from nascomp.pareto.plot import axis_label, label_text, plot_front
    from nascomp.pareto.table import RUN_DIR_FILES, Table, load_rows
