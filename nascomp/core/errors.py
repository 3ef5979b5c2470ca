"""The one exception type for bad user input, speaking the caller's language.

Anything a user can fix (unknown model, missing data, unreadable checkpoint, impossible budget) raises `NascompError`;
the CLI prints its message as one line and exits with status 2. Programming errors stay ordinary exceptions so they
keep their tracebacks.

Messages name options as the command line spells them (``--epochs must be positive``). A Python caller never typed a
flag, so unless the CLI is running (`cli_mode`), a message names the function's argument instead: ``--limit-train``
becomes ``limit_train``, a switch ``--resume`` becomes ``resume=True``, ``--no-augment`` becomes ``augment=False``,
advice such as ``add --runtime executorch`` becomes ``add runtime='executorch'`` and ``--lut PATH`` becomes ``lut=PATH``;
the few flags whose argument has another name are mapped (`API_NAMES`). A command quoted in backticks is left as
typed: it is meant for the shell.
"""

from __future__ import annotations

import re

__all__ = ["NascompError", "ResumableError", "EXIT_USER_ERROR", "API_NAMES", "SWITCHES", "cli_mode", "api_wording"]

EXIT_USER_ERROR = 2
_WORKER_PREFIX = "Caught NascompError in DataLoader worker"

# command-line flags whose Python argument (or option key) has another name
API_NAMES = {
    "supernet-epochs": "epochs",
    "drop-path": "drop_path_rate",
    "workers": "num_workers",
    "keep-onnx": "onnx_dir",
    "power-w": "power_model",
    "reference-probe": "probe",
    "energy-window": "energy_window_s",
    "samples": "include_samples",
    "evolve-step": "steps",
    "kron-n": "n",
    "kron-scale": "scale",
    "kron-init": "init",
    "delta-dropout": "dropout",
    "lora-alpha": "alpha",
    "lora-dropout": "dropout",
    "lokr-factor": "decompose_factor",
    "int8": "quantization",
    "out": "out",
    "from": "source",
}
# flags that take no value: the argument is a boolean set to True
SWITCHES = frozenset(
    {
        "resume",
        "overwrite",
        "dry-run",
        "require-delegated",
        "pretrained",
        "download",
        "strict",
        "probe",
        "energy",
        "op-profile",
        "cross-check",
        "quiet",
        "build-lut",
        "reference-probe",
    }
)
_FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)")
_ADVICE = re.compile(r"\b(add|use|pass|set|with|or)( )--([a-z][a-z0-9-]*) ([A-Za-z0-9_.:/-]*[A-Za-z0-9_/])")  # "add --runtime executorch"
_PLACEHOLDER = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*) ([A-Z][A-Z_]*)\b")  # "--lut PATH"
_QUOTED = re.compile(r"(`[^`]*`)")
_CLI = {"on": False}


def cli_mode(on: bool = True) -> None:
    """The CLI calls this before running a command: messages then keep the flags the user typed."""
    _CLI["on"] = on


def _argument(match: re.Match) -> str:
    flag = match.group(1)
    if flag.startswith("no-"):
        return f"{flag[3:].replace('-', '_')}=False"
    return f"{_name(flag)}=True" if flag in SWITCHES else _name(flag)


def _name(flag: str) -> str:
    return API_NAMES.get(flag, flag.replace("-", "_"))


def _value(text: str) -> str:
    if re.fullmatch(r"[A-Z][A-Z_]*", text):  # a placeholder: PATH, DIR, N
        return text
    try:
        float(text)
        return text
    except ValueError:
        return repr(text)


def _words(text: str) -> str:
    text = _ADVICE.sub(
        lambda m: f"{m.group(1)} {_name(m.group(3))}={_value(m.group(4))}" if m.group(3) not in SWITCHES else m.group(0), text
    )
    text = _PLACEHOLDER.sub(lambda m: f"{_name(m.group(1))}={m.group(2)}" if m.group(1) not in SWITCHES else m.group(0), text)
    return _FLAG.sub(_argument, text)


def api_wording(message: str) -> str:
    """``message`` with every command-line flag named as the Python argument it is (see the module docstring)."""
    return "".join(
        part if part.startswith("`") and part.endswith("`") and len(part) > 1 else _words(part) for part in _QUOTED.split(message)
    )


class NascompError(Exception):
    """A problem in the user's input, with a message that names the problem and the fix."""

    def __init__(self, message: str = ""):
        # A DataLoader worker's error arrives re-raised as NascompError(<worker traceback text>): keep the message.
        if isinstance(message, str) and message.startswith(_WORKER_PREFIX) and "NascompError: " in message:
            message = message.rsplit("NascompError: ", 1)[1].strip()
        super().__init__(message)

    def __str__(self) -> str:
        message = super().__str__()
        return message if _CLI["on"] else api_wording(message)


class ResumableError(NascompError):
    """A user-fixable stop that leaves a run resumable (a full disk mid-run): its folder is kept for ``--resume``."""
