"""The one training and evaluation loop every capability uses (`fit`, `evaluate`), with its checkpoints."""

from nascomp.engine.evaluate import Tally, evaluate
from nascomp.engine.train import StepContext, TrainConfig, default_step, fit, lr_at, seed_everything

__all__ = ["Tally", "evaluate", "StepContext", "TrainConfig", "default_step", "fit", "lr_at", "seed_everything"]
