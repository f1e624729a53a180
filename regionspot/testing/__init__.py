"""Tiny randomly initialised models of the real transformers classes, for tests and examples."""
