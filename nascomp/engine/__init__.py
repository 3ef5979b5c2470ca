"""The one training and evaluation loop every capability uses (`fit`, `evaluate`), with its checkpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nascomp.core.lazy import lazy_exports

# public name -> module that defines it (imported on first use)
_EXPORTS = {
    "discard_checkpoints": "nascomp.engine.checkpoint",
    "Tally": "nascomp.engine.evaluate",
    "evaluate": "nascomp.engine.evaluate",
    "StepContext": "nascomp.engine.train",
    "TrainConfig": "nascomp.engine.config",
    "default_step": "nascomp.engine.train",
    "fit": "nascomp.engine.train",
    "lr_at": "nascomp.engine.train",
    "seed_everything": "nascomp.engine.train",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily
    from nascomp.engine.checkpoint import discard_checkpoints
    from nascomp.engine.config import TrainConfig
    from nascomp.engine.evaluate import Tally, evaluate
    from nascomp.engine.train import StepContext, default_step, fit, lr_at, seed_everything
