"""The torch-free runtime: a model exported with ``regionspot export onnx`` run by ONNX Runtime, with numpy and
Pillow (``pip install 'regionspot[onnx]'``). Importing it imports no torch and no transformers.

>>> from regionspot.runtime import OnnxRegionSpot
>>> model = OnnxRegionSpot("model-onnx")
"""

from regionspot.runtime.model import OnnxRegions, OnnxRegionSpot

__all__ = ["OnnxRegionSpot", "OnnxRegions"]
