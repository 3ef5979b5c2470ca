"""Adaptation methods by name (``nascomp adapt --method``); listing them imports no torch."""

from __future__ import annotations

from nascomp.core.registry import Registry

__all__ = ["ADAPTERS"]

ADAPTERS: Registry = Registry(
    "adaptation method",
    {
        "kadaptation": "nascomp.adaptation.methods:KAdaptationMethod",
        "lora": "nascomp.adaptation.peft_adapters:LoraMethod",
        "lokr": "nascomp.adaptation.peft_adapters:LokrMethod",
        "linear": "nascomp.adaptation.methods:LinearProbe",
        "full": "nascomp.adaptation.methods:FullFineTuning",
    },
)
