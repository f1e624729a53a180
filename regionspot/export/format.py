"""The exported ONNX model folder: which graphs, their inputs and outputs (names, shapes, dynamic axes), and the
metadata every graph carries. No torch here: the export (``export/onnx.py``) writes what this module describes
and the torch-free runtime (``regionspot.runtime``) reads it back with :func:`check_metadata`.

Every graph carries, as ONNX ``metadata_props``:

- ``regionspot.format``: the folder format (:data:`FORMAT`); a reader refuses any other;
- ``regionspot.version``: the regionspot version that exported it;
- ``regionspot.graph``: which graph of :data:`GRAPHS` it is;
- ``regionspot.model``: a key of the model it came from (head weights, backbones' weights, config): graphs
  of different models (another variant, another head) are refused together;
- ``regionspot.config``: JSON of what the runtime needs: the head's ``RegionSpotConfig`` (its preprocessing,
  templates, display temperature), SAM's and CLIP's image preprocessing, the text settings and CLIP's logit
  scale (:func:`runtime_config` reads it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from regionspot.errors import OnnxModelError
from regionspot.version import __version__

__all__ = ["FORMAT", "GRAPHS", "OPSET", "GraphSpec", "check_metadata", "runtime_config"]

FORMAT = 1  # the folder format: bump when a graph's inputs, outputs or meaning change
OPSET = 18  # ONNX opset of every graph (the lowest that torch's dynamo-based exporter writes)
TOKENIZER_FILE = "tokenizer.json"
EXPORT_HINT = "export it again with `regionspot export onnx --out DIR`"


@dataclass(frozen=True)
class GraphSpec:
    """One graph: its file, its inputs and outputs in order, and the dynamic axes (name -> {axis: label})."""

    file: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic_axes: dict[str, dict[int, str]]


GRAPHS: dict[str, GraphSpec] = {
    # pixels (B, 3, S, S) float32, normalised, zero-padded -> image_embeddings (B, C, h, w)
    "sam_image_encoder": GraphSpec(
        "sam_image_encoder.onnx", ("pixels",), ("image_embeddings",),
        {"pixels": {0: "batch"}, "image_embeddings": {0: "batch"}},
    ),
    # image_embeddings (1, C, h, w); points (N, P, 2) float32 xy in pixels of the resized image (SAM's input
    # frame); point_labels (N, P) int64: 1 foreground, 0 background, -1 padding/not-a-point, 2 and 3 a box's
    # top-left and bottom-right corners -> tokens (N, C), iou (N,), low_res_masks (N, 4h, 4w) logits
    "sam_prompt": GraphSpec(
        "sam_prompt.onnx", ("image_embeddings", "points", "point_labels"), ("tokens", "iou", "low_res_masks"),
        {"points": {0: "prompts", 1: "points"}, "point_labels": {0: "prompts", 1: "points"},
         "tokens": {0: "prompts"}, "iou": {0: "prompts"}, "low_res_masks": {0: "prompts"}},
    ),
    # pixels (B, 3, S, S) float32, normalised -> feature_map (B, T, C): tokens before the post-layernorm
    "clip_feature_map": GraphSpec(
        "clip_feature_map.onnx", ("pixels",), ("feature_map",),
        {"pixels": {0: "batch"}, "feature_map": {0: "batch"}},
    ),
    # input_ids, attention_mask (P, L) int64 -> text_features (P, D): raw projections, not normalised
    "text_encoder": GraphSpec(
        "text_encoder.onnx", ("input_ids", "attention_mask"), ("text_features",),
        {"input_ids": {0: "texts", 1: "length"}, "attention_mask": {0: "texts", 1: "length"},
         "text_features": {0: "texts"}},
    ),
    # tokens (B, N, K), feature_map (B, T, C), text_embeddings (V, D) L2-normalised -> logits (B, N, V)
    # (logit_scale · cosine) and region_embeddings (B, N, D)
    "head": GraphSpec(
        "head.onnx", ("tokens", "feature_map", "text_embeddings"), ("logits", "region_embeddings"),
        {"tokens": {0: "batch", 1: "regions"}, "feature_map": {0: "batch"}, "text_embeddings": {0: "names"},
         "logits": {0: "batch", 1: "regions", 2: "names"}, "region_embeddings": {0: "batch", 1: "regions"}},
    ),
}


def check_metadata(metadata: dict[str, str], where: str, graph: str, model: str | None = None) -> str:
    """Check one graph's metadata; return its model key.

    metadata: the graph's ``metadata_props`` (name -> value); where: its path, for messages; graph: the graph
    it should be; model: the model key the other graphs of the folder carry (None: the first graph read).
    Raises OnnxModelError (one line naming the fix) for a file that is not a regionspot export, another folder
    format, another graph or another model.
    """
    if "regionspot.format" not in metadata:
        raise OnnxModelError(f"{where} is not a regionspot ONNX export (it has no regionspot metadata); {EXPORT_HINT}.")
    version = metadata.get("regionspot.version", "?")
    if metadata["regionspot.format"] != str(FORMAT):
        raise OnnxModelError(
            f"{where} was exported by regionspot {version} in ONNX format {metadata['regionspot.format']}, but regionspot "
            f"{__version__} reads format {FORMAT}: {EXPORT_HINT} (or install regionspot {version})."
        )
    if metadata.get("regionspot.graph") != graph:
        raise OnnxModelError(f"{where} holds the {metadata.get('regionspot.graph')!r} graph, not {graph!r}; {EXPORT_HINT}.")
    key = metadata.get("regionspot.model", "")
    if model is not None and key != model:
        raise OnnxModelError(
            f"{where} was exported from another model ({key[:12]}) than the rest of its folder ({model[:12]}): "
            f"the graphs of one folder must come from one model; {EXPORT_HINT}."
        )
    return key


def runtime_config(metadata: dict[str, str], where: str) -> dict:
    """The ``regionspot.config`` JSON of a graph's metadata, as a dict."""
    try:
        return json.loads(metadata["regionspot.config"])
    except (KeyError, json.JSONDecodeError):
        raise OnnxModelError(f"{where} has no readable regionspot configuration; {EXPORT_HINT}.") from None
