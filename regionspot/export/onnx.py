"""``export_onnx``: a RegionSpot model as five ONNX graphs that the torch-free runtime (``regionspot.runtime``)
runs with ONNX Runtime: SAM's image encoder, SAM's prompt path (prompt encoder + two-way transformer + mask
head -> position-aware token, IoU, low-resolution mask logits), CLIP's feature map, CLIP's text tower and the
head with its scoring. ``export/format.py`` describes the graphs and their metadata.

Exporters (torch 2.13): SAM's graphs, CLIP's feature map and the text tower are traced by torch's TorchScript-based
exporter (``dynamo=False``), which keeps every dynamic axis of these graphs (the ``torch.export``-based one turned
SAM's row-band attention shapes into a division by zero at run time with a dynamic batch, and does not trace the
prompt graph's hook); the head goes through the ``torch.export``-based exporter (``dynamo=True``, needs
``onnxscript``), because the TorchScript tracer fixes ``nn.MultiheadAttention``'s sequence length to the traced
one. Tracing inputs have every dynamic axis at least 2 long, so no axis is specialised to 1. Opset:
``format.OPSET`` for every graph.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from regionspot.errors import CheckpointError, RegionSpotError
from regionspot.export.format import FORMAT, GRAPHS, OPSET, TOKENIZER_FILE
from regionspot.model import RegionSpot
from regionspot.modeling.scoring import region_text_logits
from regionspot.text.templates import get_templates
from regionspot.utils.fingerprint import weights_fingerprint
from regionspot.version import __version__

__all__ = ["check_exportable", "export_onnx", "model_key", "require_exporter", "runtime_settings"]

DYNAMO_GRAPHS = frozenset({"head"})  # graphs exported with dynamo=True (see above)
SINGLE_MASK_TOKEN = 1  # the two-way transformer's queries: [IoU token, single-mask token, ...]


class SamEncoderGraph(nn.Module):
    """pixels (B, 3, S, S) normalised -> image_embeddings (B, C, h, w)."""

    def __init__(self, sam: nn.Module) -> None:
        super().__init__()
        self.sam = sam

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.sam.get_image_embeddings(pixels)


class SamPromptGraph(nn.Module):
    """One image's embeddings and N prompts -> tokens (N, C), iou (N,), low_res_masks (N, 4h, 4w).

    Prompts are SAM's sparse prompts as points with labels (SAM's own ONNX convention): a box is its two
    corners with labels 2 and 3, a point set without a box ends with one padding point (label -1). The
    embedding of each is what transformers' ``SamPromptEncoder`` computes (positional encoding of the pixel
    centre, ``not_a_point_embed`` for -1, plus ``point_embed[label]``); the mask decoder runs unchanged and
    its two-way transformer's output is read by a forward hook, as ``SamSegmenter`` reads it.
    """

    def __init__(self, sam: nn.Module) -> None:
        super().__init__()
        self.sam = sam

    def forward(self, image_embeddings: torch.Tensor, points: torch.Tensor, point_labels: torch.Tensor):
        encoder = self.sam.prompt_encoder
        side = encoder.input_image_size
        sparse = encoder.shared_embedding((points + 0.5)[None], (side, side))  # (1, N, P, C)
        labels = point_labels[None, :, :, None]  # (1, N, P, 1)
        sparse = torch.where(labels == -1, encoder.not_a_point_embed.weight, sparse)
        for label, embedding in enumerate(encoder.point_embed):
            sparse = torch.where(labels == label, sparse + embedding.weight, sparse)
        height, width = image_embeddings.shape[-2:]
        dense = encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(1, -1, height, width)
        captured: dict[str, torch.Tensor] = {}
        hook = self.sam.mask_decoder.transformer.register_forward_hook(
            lambda _module, _inputs, output: captured.__setitem__("queries", output[0]))
        try:
            masks, iou = self.sam.mask_decoder(
                image_embeddings=image_embeddings, image_positional_embeddings=self.sam.get_image_wide_positional_embeddings(),
                sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=False)
        finally:
            hook.remove()
        tokens = captured["queries"][0, :, SINGLE_MASK_TOKEN, :]  # (N, C)
        return tokens, iou[0, :, 0], masks[0, :, 0]


class ClipMapGraph(nn.Module):
    """pixels (B, 3, S, S) normalised -> feature_map (B, T, C) (``ClipAdapter.feature_map``)."""

    def __init__(self, vision_language) -> None:
        super().__init__()
        self.vision_language = vision_language
        self.model = vision_language.model  # registered, so the export sees its weights

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.vision_language.feature_map(pixels)


class TextGraph(nn.Module):
    """input_ids, attention_mask (P, L) int64 -> text_features (P, D), raw (``ClipAdapter`` text features)."""

    def __init__(self, vision_language) -> None:
        super().__init__()
        self.vision_language = vision_language
        self.model = vision_language.model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.vision_language.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output


class HeadGraph(nn.Module):
    """tokens (B, N, K), feature_map (B, T, C), text_embeddings (V, D) -> logits (B, N, V), region_embeddings
    (B, N, D): the head and ``region_text_logits`` as ``RegionSpot.forward`` runs them, CLIP's logit scale a
    constant of the graph."""

    def __init__(self, model: RegionSpot) -> None:
        super().__init__()
        self.head = model.head
        self.register_buffer("logit_scale", torch.tensor(model.logit_scale, dtype=torch.float32))

    def forward(self, tokens: torch.Tensor, feature_map: torch.Tensor, text_embeddings: torch.Tensor):
        regions = self.head(tokens, feature_map).region_embeddings
        return region_text_logits(regions, text_embeddings, self.logit_scale), regions


def model_key(model: RegionSpot) -> str:
    """32 hex digits identifying the model: its config and the fingerprints of the head's and backbones' weights."""
    identity = {
        "config": model.config.to_dict(),
        "head": weights_fingerprint(model.head),
        "segmenter": weights_fingerprint(model.segmenter),
        "vision_language": weights_fingerprint(model.vision_language),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:32]


def runtime_settings(model: RegionSpot, tokenizer_sha256: str) -> dict:
    """What the runtime needs beside the graphs (the ``regionspot.config`` metadata)."""
    sam, vl = model.segmenter.preprocess, model.vision_language
    tokenizer = vl.tokenizer
    return {
        "regionspot_config": model.config.to_dict(),
        "sam": {"longest_edge": sam.longest_edge, "pad_size": sam.pad_size, "mean": list(sam.mean), "std": list(sam.std),
                "rescale_factor": sam.rescale_factor, "resample": sam.resample},
        "clip": {"image_size": vl.image_size, "mean": list(vl.mean), "std": list(vl.std), "resample": vl.resample,
                 "resize": vl.resize, "antialias": vl.antialias},
        "text": {"templates": get_templates(model.config.templates), "name_style": model.config.preprocess.class_names,
                 "context_length": vl.context_length,
                 "pad_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
                 "tokenizer_sha256": tokenizer_sha256},
        "logit_scale": model.logit_scale,
    }


def require_exporter() -> None:
    """Raise RegionSpotError (one line naming the fix) when the export's packages are missing."""
    import importlib.util

    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise RegionSpotError(f"The ONNX export needs {' and '.join(missing)}: pip install 'regionspot[onnx]'.")


def check_exportable(model: RegionSpot) -> None:
    """Raise CheckpointError (one line naming what) for a model the export does not support: a segmenter other
    than SAM (ViT), a vision-language model other than CLIP, a CLIP without its tokenizer, or a head that does
    not attend to the feature map."""
    vl = model.vision_language
    segmenter_type = getattr(model.segmenter.model.config, "model_type", "")
    if segmenter_type != "sam":
        raise CheckpointError(f"ONNX export supports SAM (ViT) segmenters; {segmenter_type or 'this segmenter'} is not "
                              "supported yet (use a SAM model, or the PyTorch backend).")
    vl_type = getattr(getattr(getattr(vl, "model", None), "config", None), "model_type", "")
    if not getattr(vl, "has_class_token", False) or type(vl).__name__ != "ClipAdapter" or vl_type not in ("clip", ""):
        raise CheckpointError(f"ONNX export supports CLIP vision-language models; {vl_type or type(vl).__name__} is not "
                              "supported yet (use a CLIP model, or the PyTorch backend).")
    if vl.tokenizer is None:
        raise CheckpointError(f"{vl.model_id!r} has no tokenizer, which the exported text tower needs; "
                              "re-run `regionspot convert clip ... --tokenizer DIR`.")
    if not model.config.head.use_feature_map:
        raise CheckpointError("ONNX export needs a head that attends to the CLIP feature map (use_feature_map).")


def _example_inputs(model: RegionSpot) -> dict[str, tuple[torch.Tensor, ...]]:
    """Tracing inputs: every dynamic axis at least 2 long (an axis of 1 would be traced as a constant)."""
    seg, vl, head = model.segmenter, model.vision_language, model.config.head
    side = seg.preprocess.pad_size
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        embeddings = seg.model.get_image_embeddings(torch.zeros(1, 3, side, side))
    points = torch.rand(3, 2, 2, generator=generator) * side
    return {
        "sam_image_encoder": (torch.randn(2, 3, side, side, generator=generator),),
        "sam_prompt": (embeddings, points, torch.tensor([[1, -1], [2, 3], [0, 1]])),
        "clip_feature_map": (torch.randn(2, 3, vl.image_size, vl.image_size, generator=generator),),
        "text_encoder": (torch.tensor([[1, 2, 3, 0], [1, 2, 0, 0]]) % max(2, len(vl.tokenizer)),
                         torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])),
        "head": (torch.randn(2, 3, head.token_dim, generator=generator),
                 torch.randn(2, vl.num_tokens, head.feature_dim, generator=generator),
                 nn.functional.normalize(torch.randn(4, head.embed_dim, generator=generator), dim=-1)),
    }


@contextlib.contextmanager
def _quiet_loggers(names: tuple[str, ...] = ("onnxscript", "torch.onnx", "torch._export")):
    """The exporters' progress and optimiser notes, muted while a graph is written (errors still pass)."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _trace(module: nn.Module, inputs: tuple, name: str, path: Path, opset: int) -> None:
    """Write graph ``name`` of ``module`` to ``path`` with the exporter :data:`DYNAMO_GRAPHS` chooses for it."""
    spec = GRAPHS[name]
    names = {"input_names": list(spec.inputs), "output_names": list(spec.outputs), "opset_version": opset}
    if name not in DYNAMO_GRAPHS:
        torch.onnx.export(module, inputs, str(path), dynamo=False, dynamic_axes=spec.dynamic_axes, do_constant_folding=True,
                          **names)
        return
    dims = {label: torch.export.Dim(label) for axes in spec.dynamic_axes.values() for label in axes.values()}
    shapes = {key: {axis: dims[label] for axis, label in spec.dynamic_axes[key].items()} if key in spec.dynamic_axes else None
              for key in spec.inputs}
    torch.onnx.export(module, inputs, str(path), dynamo=True, dynamic_shapes=shapes, external_data=False, verbose=False,
                      **names)


def _write_graph(module: nn.Module, inputs: tuple, name: str, path: Path, metadata: dict[str, str], opset: int) -> None:
    import onnx

    fastpath = torch.backends.mha.get_fastpath_enabled()
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), _quiet_loggers():
        warnings.simplefilter("ignore")  # tracer warnings about Python values: the parity tests check the graphs
        torch.backends.mha.set_fastpath_enabled(False)  # the fused attention kernel has no ONNX form
        try:
            _trace(module.eval(), inputs, name, path, opset)
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)
    graph = onnx.load(str(path))
    del graph.metadata_props[:]
    for key, value in {**metadata, "regionspot.graph": name}.items():
        graph.metadata_props.add(key=key, value=value)
    graph.producer_name, graph.producer_version = "regionspot", __version__
    onnx.save(graph, str(path))


def export_onnx(model: RegionSpot, out: str | Path, opset: int = OPSET) -> dict[str, Path]:
    """Export ``model`` (fp32, on the CPU) to ONNX graphs in the folder ``out`` (created; existing graphs replaced).

    Returns {graph name: path} for the graphs of ``format.GRAPHS``, plus the CLIP tokenizer as ``tokenizer.json``.
    Raises CheckpointError for a model the export does not support (SAM-HQ, SigLIP, no tokenizer, a head
    without the feature map).
    """
    require_exporter()
    check_exportable(model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = model.float().cpu().eval()
    vl = model.vision_language
    vl.tokenizer.backend_tokenizer.save(str(out / TOKENIZER_FILE))
    tokenizer_sha = hashlib.sha256((out / TOKENIZER_FILE).read_bytes()).hexdigest()
    metadata = {
        "regionspot.format": str(FORMAT), "regionspot.version": __version__, "regionspot.model": model_key(model),
        "regionspot.config": json.dumps(runtime_settings(model, tokenizer_sha), default=str),
    }
    modules = {"sam_image_encoder": SamEncoderGraph(model.segmenter.model), "sam_prompt": SamPromptGraph(model.segmenter.model),
               "clip_feature_map": ClipMapGraph(vl), "text_encoder": TextGraph(vl), "head": HeadGraph(model)}
    paths = {}
    for name, inputs in _example_inputs(model).items():
        paths[name] = out / GRAPHS[name].file
        _write_graph(modules[name], inputs, name, paths[name], metadata, opset)
    return {**paths, "tokenizer": out / TOKENIZER_FILE}

