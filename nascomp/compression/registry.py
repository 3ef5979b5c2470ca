"""Compression methods by name (``nascomp compress --method``); listing them imports no torch."""

from __future__ import annotations

from nascomp.core.registry import Registry

__all__ = ["COMPRESSORS"]

COMPRESSORS: Registry = Registry("compression method", {
    "minivit": "nascomp.compression.minivit:MiniViTMethod",
    "drop-blocks": "nascomp.compression.drop_blocks:DropBlocksMethod",
})
