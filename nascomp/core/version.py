"""The package version, importable without the public API (the root package imports lazily)."""

__version__ = "0.2.0"
