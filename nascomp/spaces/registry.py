"""Where shipped search spaces and reference archs live, and how a user names them.

Spaces are YAML files shipped inside the package, in ``nascomp/spaces/builtin/`` (``s3-vit`` → ``builtin/s3-vit.yaml``;
the repository's top-level ``search_spaces/`` links there); reference architectures are JSON files in
``builtin/archs/`` (``swin-t`` → ``archs/swin-t.json``). They are package data, so an installed wheel finds them.
Anything that is an existing file path is used as is, so users can keep their own spaces anywhere.
``$NASCOMP_SPACES`` points at another folder with the same layout.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from nascomp.core.errors import NascompError
from nascomp.spaces.arch import Arch

__all__ = ["spaces_dir", "list_spaces", "list_archs", "space_path", "arch_path", "load_arch"]


def spaces_dir() -> Path:
    env = os.environ.get("NASCOMP_SPACES")
    return Path(env) if env else Path(__file__).resolve().parent / "builtin"


def list_spaces() -> list[str]:
    """Names of the shipped search spaces (``SearchSpace.load(name)`` accepts each)."""
    folder = spaces_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def list_archs() -> list[str]:
    """Names of the shipped reference archs (``load_arch(name)`` accepts each)."""
    folder = spaces_dir() / "archs"
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def _resolve(name_or_path: str | os.PathLike, folder: Path, suffix: str, names: list[str], kind: str) -> Path:
    path = Path(name_or_path)
    if path.is_file():
        return path
    candidate = folder / f"{path.name}{suffix}" if path.suffix != suffix else folder / path.name
    if candidate.is_file():
        return candidate
    close = difflib.get_close_matches(str(name_or_path), names, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; available: {', '.join(names) or 'none'}"
    raise NascompError(f"unknown {kind} {str(name_or_path)!r}: not a file and not in {folder}{hint}")


def space_path(name_or_path: str | os.PathLike) -> Path:
    return _resolve(name_or_path, spaces_dir(), ".yaml", list_spaces(), "search space")


def arch_path(name_or_path: str | os.PathLike) -> Path:
    return _resolve(name_or_path, spaces_dir() / "archs", ".json", list_archs(), "arch")


def load_arch(name_or_path: str | os.PathLike) -> Arch:
    """An `Arch` from a JSON path or a shipped name such as ``swin-t`` / ``s3-t``."""
    return Arch.load(arch_path(name_or_path))
