"""What a user can name as a model, checked without loading torch or timm (so a typo fails in milliseconds).

A model is a saved nascomp directory (``model.json`` inside), an arch JSON, or a timm model name; `timm_names.txt`
lists timm's architectures as pinned (timm 1.0.31, kept equal to ``timm.list_models()`` by a test). A name may carry a
pretrained tag (``vit_base_patch16_224.augreg_in21k``); the architecture before the dot is what is checked.
"""

from __future__ import annotations

import difflib
import functools
import os
from pathlib import Path

from nascomp.core.errors import NascompError

__all__ = ["timm_architectures", "check_model_ref"]


@functools.lru_cache(maxsize=1)
def timm_architectures() -> frozenset[str]:
    return frozenset((Path(__file__).with_name("timm_names.txt")).read_text().split())


def check_model_ref(model, name: str = "MODEL") -> None:
    """Raise the user error building ``model`` would raise for a missing path or an unknown name (objects pass)."""
    if not isinstance(model, (str, os.PathLike)):
        return
    path = Path(model)
    text = str(model)
    if text.strip() == "":
        raise NascompError(f"{name} is empty; give a timm model name, an arch JSON or a saved model directory")
    if path.is_dir():
        if not (path / "model.json").is_file():
            raise NascompError(
                f"{name} {path} is a folder without a saved model (no model.json); give a directory nascomp saved, "
                "an arch JSON or a timm name"
            )
        return
    if text.endswith(".json"):
        if not path.is_file():
            raise NascompError(f"arch file {path} not found")
        return
    if path.exists():
        raise NascompError(
            f"{name} {path} is a file but not an arch JSON (*.json); give a timm name, an arch JSON or a saved model directory"
        )
    arch = text.split(".", 1)[0]
    if arch not in timm_architectures():
        close = difflib.get_close_matches(arch, sorted(timm_architectures()), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `timm.list_models()` for names"
        raise NascompError(f"unknown model {text!r}: not a timm model name, arch JSON, or model directory{hint}")
