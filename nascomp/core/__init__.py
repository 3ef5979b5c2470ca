"""Foundations every layer may use: the user-error type, atomic files, a name registry, DDP set-up, progress output."""
