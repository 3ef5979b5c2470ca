"""The one exception type for bad user input.

Anything a user can fix (unknown model, missing data, unreadable checkpoint, impossible budget)
raises `NascompError`; the CLI prints its message as one line and exits with status 2.
Programming errors stay ordinary exceptions so they keep their tracebacks.
"""

__all__ = ["NascompError", "EXIT_USER_ERROR"]

EXIT_USER_ERROR = 2


class NascompError(Exception):
    """A problem in the user's input, with a message that names the problem and the fix."""
