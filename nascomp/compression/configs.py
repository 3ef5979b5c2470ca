"""Typed settings of each compression method, in peft's style: ``compress(model, ShrinkConfig(budget="2gflops"))``.

Each config is a frozen dataclass that checks its own values when it is made (an IDE lists the fields; a typo is
a `TypeError` at once, a bad value a `NascompError` naming the fix). A field left at ``None`` means the method's
default, so a config and the string-and-options form (``compress(model, "shrink", options={...})``, which the CLI
uses) describe the same run: `config_from_options` builds the config from the options, and ``to_options`` gives
them back. Importing this module loads no torch.

Chains are lists: ``[ShrinkConfig(budget="10mparams"), Int8Config()]`` is ``"shrink,int8"``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from nascomp.core.errors import NascompError
from nascomp.core.validate import positive

__all__ = [
    "CompressionConfig",
    "MiniViTConfig",
    "DropBlocksConfig",
    "ShrinkConfig",
    "TorchPruningConfig",
    "Int8Config",
    "AutoConfig",
    "CONFIGS",
    "config_from_options",
    "chain_options",
    "method_options",
    "INT8_MODES",
    "INT8_RUNTIMES",
    "TIMERS",
    "TRANSFORM_INITS",
]

INT8_MODES = ("static", "dynamic")
INT8_RUNTIMES = ("onnxruntime", "executorch")
TIMERS = ("wall", "thread-cpu")
TRANSFORM_INITS = ("identity", "random")


def _choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value is not None and value not in choices:
        raise NascompError(f"{name}={value!r}: choose one of {', '.join(map(repr, choices))}")


def _items(value: Any) -> list:
    """A scalar, a comma-separated string or a sequence, as a list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in value.split(",") if v.strip()]
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _widths(widths: Any) -> None:
    for w in _items(widths):
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not 0 < float(w) <= 1:
            raise NascompError(f"widths are kept fractions of each width, in (0, 1], got {w!r}")


def _budget(value: Any, required: bool, method: str) -> None:
    if value is None:
        if required:
            raise NascompError(f"{method} needs a budget (--budget, e.g. 2gflops, 10mparams or 15ms@mobile-cpu): the model must meet it")
        return
    from nascomp.nas.budget import parse_budget

    parse_budget(str(value))


@dataclass(frozen=True, kw_only=True)
class CompressionConfig:
    """What every method's config shares: its method name and the conversion to and from ``options``."""

    method: ClassVar[str]

    def to_options(self) -> dict[str, Any]:
        """The options dict the method reads (fields left at None are left out: the method's defaults apply)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.metadata.get("option", f.name)] = value
        return out

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(f.metadata.get("option", f.name) for f in dataclasses.fields(cls))


def _option(name: str) -> Any:
    """A field stored under another key in ``options`` (e.g. Int8Config.mode is the ``int8`` option)."""
    return dataclasses.field(default=None, metadata={"option": name})


@dataclass(frozen=True, kw_only=True)
class _Timing:
    """Where and how results are timed (`nascomp.profile`'s protocol): ``target`` for int8 files and params / MACs budgets
    (a latency budget names its own), ``timer`` (``wall``, or ``thread-cpu`` on shared machines), threads, warm-up, runs."""

    target: str | None = None
    timer: str | None = None
    threads: int | None = None
    warmup: int | None = None
    repeat: int | None = None

    def __post_init__(self) -> None:
        _choice("timer", self.timer, TIMERS)
        for name in ("threads", "warmup", "repeat"):
            positive(name, getattr(self, name))


@dataclass(frozen=True, kw_only=True)
class MiniViTConfig(CompressionConfig):
    """MiniViT weight multiplexing (Zhang et al., CVPR 2022): ``share`` consecutive blocks per stage use one weight set
    (an int, per-stage ints, or None: the paper's schedule), with per-layer attention / MLP transforms."""

    method: ClassVar[str] = "minivit"
    share: int | str | Sequence[int] | None = None
    head_transform: bool | None = None
    mlp_transform: bool | None = None
    transform_init: str | None = None

    def __post_init__(self) -> None:
        for s in _items(self.share):
            positive("share", int(s) if isinstance(s, str) and s.strip().isdigit() else s)
        _choice("transform_init", self.transform_init, TRANSFORM_INITS)


@dataclass(frozen=True, kw_only=True)
class DropBlocksConfig(CompressionConfig):
    """Keep the first ``keep[i]`` blocks of stage i: the naive depth-reduction baseline."""

    method: ClassVar[str] = "drop-blocks"
    keep: int | Sequence[int] | None = None

    def __post_init__(self) -> None:
        if not _items(self.keep):
            raise NascompError("DropBlocksConfig needs keep=(blocks per stage), e.g. keep=(2, 2, 1, 1)")
        for k in _items(self.keep):
            positive("keep", k)


@dataclass(frozen=True, kw_only=True)
class ShrinkConfig(_Timing, CompressionConfig):
    """The best sub-network of a trained Swin under ``budget`` (params, MACs, latency or energy), found by evolutionary
    search in its own width / depth neighbourhood (``widths``: kept fractions), scored with inherited weights."""

    method: ClassVar[str] = "shrink"
    budget: str | None = None
    widths: Sequence[float] | None = None
    population: int | None = None
    generations: int | None = None
    score_images: int | None = None
    calib_images: int | None = None
    runtime: str | None = None
    lut: str | None = None
    probe: bool | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _budget(self.budget, True, "shrink")
        for name in ("population", "generations", "score_images", "calib_images"):
            positive(name, getattr(self, name))
        _widths(self.widths)
        _choice("runtime", self.runtime, ("onnxruntime", "executorch", "torch"))


@dataclass(frozen=True, kw_only=True)
class TorchPruningConfig(_Timing, CompressionConfig):
    """The peer: torch-pruning's structured pruning to a params or MACs ``budget``."""

    method: ClassVar[str] = "torch-pruning"
    budget: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _budget(self.budget, True, "torch-pruning")


@dataclass(frozen=True, kw_only=True)
class Int8Config(_Timing, CompressionConfig):
    """int8 in a runtime's file (``onnxruntime`` .onnx, or ``executorch`` .pte): ``mode`` static (calibrated on
    ``calib_images`` training images) or dynamic; accuracy and latency measured in that runtime."""

    method: ClassVar[str] = "int8"
    mode: str | None = _option("int8")
    runtime: str | None = None
    calibration: str | None = None
    calib_images: int | None = None
    per_channel: bool | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _choice("mode", self.mode, INT8_MODES)
        if self.runtime is not None and self.runtime not in INT8_RUNTIMES:
            raise NascompError(f"--runtime {self.runtime!r}: int8 files are made for {' or '.join(INT8_RUNTIMES)}")
        positive("calib_images", self.calib_images)


@dataclass(frozen=True, kw_only=True)
class AutoConfig(_Timing, CompressionConfig):
    """Every method and chain that can meet ``budget``, in each of ``runtimes``, compared in one table and Pareto plot."""

    method: ClassVar[str] = "auto"
    budget: str | None = None
    runtimes: str | Sequence[str] | None = None
    widths: Sequence[float] | None = None
    population: int | None = None
    generations: int | None = None
    score_images: int | None = None
    calib_images: int | None = None
    lut: str | None = None
    probe: bool | None = None
    mode: str | None = _option("int8")
    calibration: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _budget(self.budget, True, "auto")
        for r in _items(self.runtimes):
            _choice("runtimes", r.strip(), INT8_RUNTIMES)
        _widths(self.widths)
        for name in ("population", "generations", "score_images", "calib_images"):
            positive(name, getattr(self, name))
        _choice("mode", self.mode, INT8_MODES)


CONFIGS: dict[str, type[CompressionConfig]] = {
    c.method: c for c in (MiniViTConfig, DropBlocksConfig, ShrinkConfig, TorchPruningConfig, Int8Config, AutoConfig)
}


def config_from_options(method: str, options: Mapping[str, Any]) -> CompressionConfig:
    """The config of ``method`` holding ``options`` as given (so ``to_options`` returns them unchanged); a key the method
    does not read is one error naming the ones it does."""
    cls = CONFIGS[method]
    by_option = {f.metadata.get("option", f.name): f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - set(by_option))
    if unknown:
        raise NascompError(
            f"{method} does not take option(s) {', '.join(map(repr, unknown))}; its options are {', '.join(sorted(by_option))}"
        )
    return cls(**{by_option[k]: v for k, v in options.items()})


def chain_options(configs: Sequence[CompressionConfig]) -> tuple[str, dict[str, Any]]:
    """(method chain, merged options) of configs given in order; two steps that set one option differently is an error."""
    merged: dict[str, Any] = {}
    for config in configs:
        if not isinstance(config, CompressionConfig):
            raise NascompError(
                f"a compression chain is a list of method configs (ShrinkConfig, Int8Config...), got {type(config).__name__}"
            )
        for key, value in config.to_options().items():
            if key in merged and merged[key] != value:
                raise NascompError(f"{key!r} is set to {merged[key]!r} and {value!r} by two steps of the chain; set it once")
            merged[key] = value
    return ",".join(c.method for c in configs), merged


_TIMING = tuple(f.name for f in dataclasses.fields(_Timing))  # how results are timed: accepted by every chain, as before


def method_options(
    method: str | CompressionConfig | Sequence[CompressionConfig], options: Mapping[str, Any] | None
) -> tuple[list[str], dict]:
    """(method chain, options) of `nascomp.compress`'s ``method`` and ``options``, every value checked by its method's config.

    A config (or a list of them) carries its own options; a name (or ``"shrink,int8"``) takes ``options``, whose keys must
    belong to one of the chain's methods (the timing keys ``target``, ``timer``, ``threads``, ``warmup``, ``repeat`` to any).
    """
    from nascomp.compression.registry import method_chain

    if isinstance(method, CompressionConfig):
        method = [method]
    if not isinstance(method, str):
        if options:
            raise NascompError("give the options in the method configs (e.g. ShrinkConfig(budget='2gflops')), not beside them as options=")
        chain, opts = chain_options(list(method))
        return method_chain(chain), opts
    steps = method_chain(method)
    opts = dict(options or {})
    valid = set(_TIMING).union(*(CONFIGS[s].option_names() for s in steps))
    unknown = sorted(set(opts) - valid)
    if unknown:
        raise NascompError(
            f"{method} does not take option(s) {', '.join(map(repr, unknown))}; the options of {method} are {', '.join(sorted(valid))}"
        )
    _Timing(**{k: opts[k] for k in _TIMING if k in opts})
    for step in steps:
        config_from_options(step, {k: v for k, v in opts.items() if k in CONFIGS[step].option_names()})
    return steps, opts
