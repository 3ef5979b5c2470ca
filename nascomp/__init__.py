"""nascomp: neural architecture search and compression of vision transformers under a budget."""

__version__ = "0.1.0"
