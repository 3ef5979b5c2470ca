"""timm models by name, with user-facing errors for bad names, bad size overrides and an offline hub."""

from __future__ import annotations

import difflib
from typing import Any

import timm
from torch import nn

from nascomp.core.errors import NascompError
from nascomp.models.registry import register_model

__all__ = ["create_timm_model", "timm_spec", "check_timm_name"]


def check_timm_name(name: str) -> None:
    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see `timm.list_models()` for names"
    raise NascompError(f"unknown model {name!r}: not a timm model name, arch JSON, or model directory{hint}")


@register_model("timm")
def create_timm_model(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """``timm.create_model(name, pretrained, **kwargs)``; problems the user can fix become `NascompError`."""
    check_timm_name(name)
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except TypeError as e:
        raise NascompError(f"model {name!r} does not accept these options {sorted(kwargs)}: {e}") from None
    except (AssertionError, ValueError) as e:
        raise NascompError(f"model {name!r} cannot be built with {kwargs}: {e}") from None
    except (OSError, RuntimeError) as e:
        if pretrained:
            raise NascompError(
                f"could not fetch pretrained weights for {name!r} ({str(e).splitlines()[0]}); "
                "when offline, pass a local checkpoint with --checkpoint PATH"
            ) from None
        raise


def timm_spec(name: str, **kwargs: Any) -> dict:
    """The model spec of a timm model (``None`` options are left out)."""
    return {"builder": "timm", "kwargs": {"name": name, **{k: v for k, v in kwargs.items() if v is not None}}}
