"""nascomp: neural architecture search and compression of vision transformers under a budget.

The public API, imported on first use so that ``import nascomp`` stays cheap (no torch until needed)::

    import nascomp

    result = nascomp.search("s3-vit", "4gflops", preset="smoke", out="runs/smoke")   # S3 search
    model = nascomp.create_model("swin_tiny_patch4_window7_224", num_classes=10)
    cost = nascomp.count_cost(model)                                                 # params, MACs
    small = nascomp.compress(model, "minivit", dry_run=True)                        # structure only
    sub = nascomp.compress(model, "shrink", dry_run=True, options={"budget": "2gflops"})  # best sub-network under a budget
    report = nascomp.profile(model, "mobile-cpu")                                    # latency + protocol

Every function validates its input first and raises `NascompError` (one line naming the problem and the
fix) before any work starts, and returns a typed result, never an exit code: the workflows and the latency-table and
supernet functions a dataclass (`SearchResult`, `LatencyTable`, `TableValidation`, a list of `SubnetScore`...), the
building blocks what they make (`create_model` and `extract_subnet` a module, `load_model` a (module, spec) pair).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from nascomp.core.version import __version__

# public name -> module that defines it
_API = {
    # models and architectures
    "create_model": "nascomp.models.resolve",
    "register_model": "nascomp.models.registry",
    "save_model": "nascomp.models.io",
    "load_model": "nascomp.models.io",
    "Arch": "nascomp.spaces.arch",
    "SearchSpace": "nascomp.spaces.space",
    "load_space": "nascomp.spaces.space",
    "list_spaces": "nascomp.spaces.registry",
    "list_archs": "nascomp.spaces.registry",
    "load_arch": "nascomp.spaces.registry",
    # data and training
    "load_data": "nascomp.data.datasets",
    "DataBundle": "nascomp.data.datasets",
    "TrainConfig": "nascomp.engine.config",
    "train": "nascomp.engine.api",
    "TrainResult": "nascomp.engine.api",
    "distill": "nascomp.distillation.api",
    # cost
    "count_cost": "nascomp.cost.api",
    "CostReport": "nascomp.cost.counter",
    # search
    "search": "nascomp.nas.api",
    "SearchResult": "nascomp.nas.api",
    "Budget": "nascomp.nas.budget",
    "parse_budget": "nascomp.nas.budget",
    "SearchPreset": "nascomp.nas.presets",
    "train_supernet": "nascomp.nas.supernet.api",
    "evaluate_supernet": "nascomp.nas.supernet.api",
    "SubnetScore": "nascomp.nas.supernet.api",
    "extract_subnet": "nascomp.nas.supernet.api",
    # compression and adaptation
    "compress": "nascomp.compression.api",
    "CompressResult": "nascomp.compression.api",
    "adapt": "nascomp.adaptation.api",
    "AdaptResult": "nascomp.adaptation.api",
    # typed method settings (peft's style: compress(model, ShrinkConfig(budget="2gflops")))
    "ShrinkConfig": "nascomp.compression.configs",
    "MiniViTConfig": "nascomp.compression.configs",
    "DropBlocksConfig": "nascomp.compression.configs",
    "TorchPruningConfig": "nascomp.compression.configs",
    "Int8Config": "nascomp.compression.configs",
    "AutoConfig": "nascomp.compression.configs",
    "KAdaptationConfig": "nascomp.adaptation.configs",
    "LoraConfig": "nascomp.adaptation.configs",
    "LokrConfig": "nascomp.adaptation.configs",
    "LinearProbeConfig": "nascomp.adaptation.configs",
    "FullFineTuneConfig": "nascomp.adaptation.configs",
    "KDConfig": "nascomp.distillation.configs",
    "WeightDistillationConfig": "nascomp.distillation.configs",
    "SRDConfig": "nascomp.distillation.configs",
    "NoDistillationConfig": "nascomp.distillation.configs",
    # measurement and deployment
    "profile": "nascomp.profiling.api",
    "ProfileReport": "nascomp.profiling.profiler",
    "Measurement": "nascomp.profiling.profiler",
    "ProfileOptions": "nascomp.profiling.profiler",
    "build_latency_table": "nascomp.profiling.api",
    "LatencyTable": "nascomp.profiling.api",
    "validate_latency_table": "nascomp.profiling.api",
    "TableValidation": "nascomp.profiling.api",
    "transfer_latency_table": "nascomp.profiling.api",
    "TransferredTable": "nascomp.profiling.api",
    "check_predictions": "nascomp.profiling.check",
    "export": "nascomp.deploy.api",
    "pareto_front": "nascomp.pareto.api",
    "ParetoResult": "nascomp.pareto.api",
    # reports
    "render_report": "nascomp.report.api",
    "ReportResult": "nascomp.report.api",
    # errors
    "NascompError": "nascomp.core.errors",
}

__all__ = [
    "__version__",
    "create_model",
    "register_model",
    "save_model",
    "load_model",
    "Arch",
    "SearchSpace",
    "load_space",
    "list_spaces",
    "list_archs",
    "load_arch",
    "load_data",
    "DataBundle",
    "TrainConfig",
    "train",
    "TrainResult",
    "distill",
    "count_cost",
    "CostReport",
    "search",
    "SearchResult",
    "Budget",
    "parse_budget",
    "SearchPreset",
    "train_supernet",
    "evaluate_supernet",
    "SubnetScore",
    "extract_subnet",
    "compress",
    "CompressResult",
    "adapt",
    "AdaptResult",
    "ShrinkConfig",
    "MiniViTConfig",
    "DropBlocksConfig",
    "TorchPruningConfig",
    "Int8Config",
    "AutoConfig",
    "KAdaptationConfig",
    "LoraConfig",
    "LokrConfig",
    "LinearProbeConfig",
    "FullFineTuneConfig",
    "KDConfig",
    "WeightDistillationConfig",
    "SRDConfig",
    "NoDistillationConfig",
    "profile",
    "ProfileReport",
    "Measurement",
    "ProfileOptions",
    "build_latency_table",
    "LatencyTable",
    "validate_latency_table",
    "TableValidation",
    "transfer_latency_table",
    "TransferredTable",
    "check_predictions",
    "export",
    "pareto_front",
    "ParetoResult",
    "render_report",
    "ReportResult",
    "NascompError",
]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'nascomp' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names above load lazily
    from nascomp.adaptation.api import AdaptResult, adapt
    from nascomp.adaptation.configs import FullFineTuneConfig, KAdaptationConfig, LinearProbeConfig, LokrConfig, LoraConfig
    from nascomp.compression.api import CompressResult, compress
    from nascomp.compression.configs import AutoConfig, DropBlocksConfig, Int8Config, MiniViTConfig, ShrinkConfig, TorchPruningConfig
    from nascomp.core.errors import NascompError
    from nascomp.cost.api import count_cost
    from nascomp.cost.counter import CostReport
    from nascomp.data.datasets import DataBundle, load_data
    from nascomp.deploy.api import export
    from nascomp.distillation.api import distill
    from nascomp.distillation.configs import KDConfig, NoDistillationConfig, SRDConfig, WeightDistillationConfig
    from nascomp.engine.api import TrainResult, train
    from nascomp.engine.config import TrainConfig
    from nascomp.models.io import load_model, save_model
    from nascomp.models.registry import register_model
    from nascomp.models.resolve import create_model
    from nascomp.nas.api import SearchResult, search
    from nascomp.nas.budget import Budget, parse_budget
    from nascomp.nas.presets import SearchPreset
    from nascomp.nas.supernet.api import SubnetScore, evaluate_supernet, extract_subnet, train_supernet
    from nascomp.pareto.api import ParetoResult, pareto_front
    from nascomp.profiling.api import (
        LatencyTable,
        TableValidation,
        TransferredTable,
        build_latency_table,
        profile,
        transfer_latency_table,
        validate_latency_table,
    )
    from nascomp.profiling.check import check_predictions
    from nascomp.profiling.profiler import Measurement, ProfileOptions, ProfileReport
    from nascomp.report.api import ReportResult, render_report
    from nascomp.spaces.arch import Arch
    from nascomp.spaces.registry import list_archs, list_spaces, load_arch
    from nascomp.spaces.space import SearchSpace, load_space
