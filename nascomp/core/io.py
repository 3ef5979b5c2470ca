"""Atomic file output, safe checkpoint reading, and safetensors helpers.

Every file nascomp writes goes through a temporary name and `os.replace`, so a crash or kill never
leaves a half-written file under the final name. Directories of several files (checkpoints) are
assembled under a temporary name and renamed into place as a whole.

torch and safetensors are imported by the tensor functions only: the JSON and text helpers serve code that must
answer before torch loads (argument checks, reports).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nascomp.core.errors import NascompError, ResumableError

if TYPE_CHECKING:
    import torch

__all__ = [
    "parse_json",
    "parse_yaml",
    "disk_full",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_directory",
    "ensure_writable_dir",
    "read_json",
    "save_tensors",
    "load_tensors",
    "load_state_dict_file",
]


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_full(error: BaseException, path: str | os.PathLike) -> NascompError | None:
    """The user error for a write that failed because the disk (or quota) is full; None for other failures. It keeps the run's
    folder (`ResumableError`): what was written before is intact and resumes once there is space."""
    if isinstance(error, OSError) and error.errno in _FULL:
        return ResumableError(
            f"no space left on the device while writing {path}; the previous version of it (if any) is intact. Free some "
            "space and run the command again (add --resume to continue a run)"
        )
    return None


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would keep reports and results from the user's group
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        full = disk_full(e, path)
        if full is not None:
            raise full from None
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"duplicate key(s) {repeated} (JSON keeps only the last; say each once)")
    return dict(pairs)


def parse_json(text: str) -> Any:
    """``json.loads`` that refuses an object with a key given twice (JSON itself silently keeps the last)."""
    return json.loads(text, object_pairs_hook=_no_duplicates)


def parse_yaml(text: str) -> Any:
    """``yaml.safe_load`` that refuses a mapping with a key given twice (YAML loaders silently keep the last)."""
    import yaml

    class Strict(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
            repeated = sorted({str(k) for k in keys if keys.count(k) > 1})
            if repeated:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key(s) {repeated} (say each once)", node.start_mark)
            return super().construct_mapping(node, deep=deep)

    return yaml.load(text, Loader=Strict)  # noqa: S506  (a SafeLoader subclass)


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return parse_json(path.read_text())
    except FileNotFoundError:
        raise NascompError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as e:
        raise NascompError(f"{path}: not valid JSON ({e})") from None


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory that becomes `path` only if the block finishes without error.

    An existing `path` is replaced: it is moved aside first and deleted after the new one is in place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        try:
            yield tmp
        except OSError as e:
            full = disk_full(e, path)
            if full is not None:
                raise full from None
            raise
        old = None
        if path.exists():
            old = path.parent / f".{path.name}.old"
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create `path` if needed and prove it is writable, before any long work starts."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test."):
            pass
    except OSError as e:
        raise NascompError(f"output directory {path} is not writable ({e.strerror}); choose another with --out") from None
    return path


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> None:
    """Write tensors as safetensors, atomically. Shared storage is cloned so each tensor is stored once per name."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=dict(metadata or {}))
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        full = disk_full(e, path) or (disk_full(OSError(errno.ENOSPC, "full"), path) if "No space left" in str(e) else None)
        if full is not None:
            raise full from None
        raise


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise NascompError(f"{path}: checkpoint file not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise NascompError(f"{path}: corrupt or truncated safetensors file ({e}); re-create or re-download it") from None


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read weights from .safetensors, or from a .pth/.pt/.bin pickle without executing any code in it.

    Pickles go through `torch.load(weights_only=True)`, which refuses any object that is not plain
    tensors and containers, so a malicious checkpoint fails here instead of running.
    """
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        return load_tensors(path)
    if not path.is_file():
        raise NascompError(f"{path}: checkpoint file not found")
    try:
        with warnings.catch_warnings():  # the pickle-protocol notice is noise next to our own one-line verdict
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError... depending on the damage
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise NascompError(
                f"{path}: refusing to load: the pickle contains objects other than tensors, which could run code "
                f"({msg}). Convert it to safetensors in a trusted environment."
            ) from None
        raise NascompError(f"{path}: corrupt or truncated checkpoint ({msg})") from None
    for key in ("state_dict", "model", "model_state_dict", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise NascompError(f"{path}: not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}
