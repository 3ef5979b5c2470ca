"""The one exception type for bad user input.

Anything a user can fix (unknown model, missing data, unreadable checkpoint, impossible budget)
raises `NascompError`; the CLI prints its message as one line and exits with status 2.
Programming errors stay ordinary exceptions so they keep their tracebacks.
"""

__all__ = ["NascompError", "EXIT_USER_ERROR"]

EXIT_USER_ERROR = 2
_WORKER_PREFIX = "Caught NascompError in DataLoader worker"


class NascompError(Exception):
    """A problem in the user's input, with a message that names the problem and the fix."""

    def __init__(self, message: str = ""):
        # A DataLoader worker's error arrives re-raised as NascompError(<worker traceback text>): keep the message.
        if isinstance(message, str) and message.startswith(_WORKER_PREFIX) and "NascompError: " in message:
            message = message.rsplit("NascompError: ", 1)[1].strip()
        super().__init__(message)
