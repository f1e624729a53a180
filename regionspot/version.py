"""The package version: its one home (pyproject.toml reads it from here; a leaf, imports nothing)."""

__version__ = "0.1.0"
