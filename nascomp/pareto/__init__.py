"""Pareto fronts: non-dominated sorting, hypervolume, result tables and plots."""

from nascomp.pareto.front import default_reference, dominates, hypervolume, non_dominated_sort, objective_sense, front_indices
from nascomp.pareto.plot import axis_label, label_text, plot_front
from nascomp.pareto.table import RUN_DIR_FILES, Table, load_rows

__all__ = [
    "default_reference", "dominates", "hypervolume", "non_dominated_sort", "objective_sense", "front_indices",
    "axis_label", "label_text", "plot_front", "RUN_DIR_FILES", "Table", "load_rows",
]
