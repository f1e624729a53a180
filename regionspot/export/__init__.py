"""Exporting a model for other runtimes: ``format.py`` (the exported folder, torch-free) and ``onnx.py`` (the export)."""
