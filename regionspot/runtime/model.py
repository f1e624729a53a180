"""``OnnxRegionSpot``: label regions of an image with the exported graphs, with onnxruntime, numpy and Pillow only.

It follows ``RegionSpotPredictor``: ``set_image`` runs both image graphs once, ``set_vocabulary`` embeds the
class names once (template ensemble, raw projections averaged then L2-normalised), ``predict`` runs SAM's prompt
graph and the head for any boxes or points. Its pre- and post-processing is the library's: images read by
``data/images.load_image``, SAM and CLIP pixels by ``data/pixels`` (the functions the torch path calls), class
names and templates by ``text/templates``, and the numbers after the graphs by ``runtime/postprocess``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from regionspot.data.images import ImageLike, load_image
from regionspot.data.pixels import (
    bilinear_resize,
    clip_resize_pil,
    normalize_array,
    normalize_sam_array,
    sam_resize_pad,
)
from regionspot.errors import OnnxModelError, PromptError, RegionSpotError
from regionspot.masks.base import mask_to_box
from regionspot.modeling.rejection import decide
from regionspot.runtime.graphs import open_graphs
from regionspot.runtime.postprocess import (
    calibrated_confidence,
    l2_normalize,
    top_classes,
    upsample_mask_logits,
)
from regionspot.runtime.prompts import sam_prompts, validate_boxes
from regionspot.runtime.tokenizer import ClipTokenizer
from regionspot.text.templates import validate_vocabulary

__all__ = ["OnnxRegionSpot", "OnnxRegions"]

TEXT_BATCH = 256  # prompts per text-graph call, as ``ClipAdapter.encode_text``


@dataclass
class OnnxRegions:
    """What ``OnnxRegionSpot.predict`` returns for N regions of one image, vocabulary V.

    boxes (N, 4) float32 XYXY original pixels (clipped to the image; for point prompts the masks' tight boxes);
    labels, class_ids (N,), scores (N,) the top class's probability; probs (N, V); topk_ids, topk_scores (N, k);
    confidence (N,) the displayed confidence (display temperature), topk_confidence (N, k) the same for each
    of the top-k classes; iou (N,) SAM's predicted IoU; logits (N, V);
    tokens (N, C) the position-aware tokens; low_res_masks (N, h, w) mask logits (None without masks).
    rejection_score (N,) the head's "none of these" score; known (N,) bool, False for a region that is none of the
    vocabulary's classes (None: rejection off or not calibrated); rejection {"score", "threshold"} or None
    (``modeling/rejection.py``, the code the torch predictor runs).
    """

    boxes: np.ndarray
    labels: list[str]
    class_ids: np.ndarray
    scores: np.ndarray
    probs: np.ndarray
    topk_ids: np.ndarray
    topk_scores: np.ndarray
    confidence: np.ndarray
    iou: np.ndarray
    logits: np.ndarray
    tokens: np.ndarray
    image_size: tuple[int, int]
    low_res_masks: np.ndarray | None = None
    mask_frame: tuple[int, tuple[int, int]] | None = None  # (pad_size, resized (h', w'))
    vocabulary: list[str] = field(default_factory=list)
    topk_confidence: np.ndarray | None = None
    rejection_score: np.ndarray | None = None
    known: np.ndarray | None = None
    rejection: dict | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def masks(self) -> np.ndarray:
        """(N, H, W) bool masks at the image size (all N at once: N × H × W floats while they are made)."""
        if self.low_res_masks is None:
            raise RegionSpotError("These regions were predicted without masks; pass return_masks=True.")
        pad, reshaped = self.mask_frame
        return upsample_mask_logits(self.low_res_masks, pad, reshaped, self.image_size) > 0

    def to_dict(self) -> dict:
        """A JSON-ready summary: per region its box, label, score, confidence and top classes (with rejection:
        ``known`` and ``rejection_score``)."""
        regions = []
        for i in range(len(self)):
            region = {"box_xyxy": [round(float(v), 2) for v in self.boxes[i]], "label": self.labels[i],
                      "score": round(float(self.scores[i]), 4), "confidence": round(float(self.confidence[i]), 4),
                      "top": [[self.vocabulary[int(c)], round(float(s), 4)]
                              for c, s in zip(self.topk_ids[i], self.topk_scores[i])]}
            if self.rejection_score is not None:
                region["rejection_score"] = round(float(self.rejection_score[i]), 4)
            if self.known is not None:
                region["known"] = bool(self.known[i])
            regions.append(region)
        return {"image_size": list(self.image_size), "regions": regions}


class OnnxRegionSpot:
    """A RegionSpot model exported with ``regionspot export onnx``, run by ONNX Runtime (no torch).

    >>> model = OnnxRegionSpot("model-onnx")
    >>> model.set_image("photo.jpg"); model.set_vocabulary(["red circle", "blue square"])
    >>> regions = model.predict(boxes=[[10, 20, 200, 240]])

    folder: the export folder; threads: intra-op threads per graph (0: the engine's default);
    providers: ONNX Runtime execution providers (default CPU). engine: "onnxruntime" (default) or "openvino"
    (``runtime/graphs.py``); precision: "fp32", or with OpenVINO "bf16". Raises OnnxModelError for a folder of another
    format or of mixed models, or a head whose CLIP resize the runtime does not implement. reject: mark regions
    that are none of the vocabulary's classes with the head's calibrated threshold (``OnnxRegions.known``).
    """

    def __init__(self, folder: str | Path, threads: int = 0, providers: list[str] | None = None,
                 chunk_size: int = 16, engine: str = "onnxruntime", precision: str = "fp32", reject: bool = True) -> None:
        self.graphs = open_graphs(folder, engine, threads=threads, precision=precision, providers=providers)
        config = self.graphs.config
        self.sam, self.clip, self.text = config["sam"], config["clip"], config["text"]
        self.display_temperature = float(config["regionspot_config"].get("display_temperature", 1.0))
        self.rejection = dict(config["regionspot_config"].get("rejection") or {})
        self.reject = reject
        if self.clip["resize"] == "torch-bilinear" and self.clip["antialias"]:
            raise OnnxModelError(f"{folder}: this head resizes CLIP inputs with antialiasing, which the ONNX runtime does "
                                 "not implement; use the PyTorch model (regionspot predict).")
        self.tokenizer = ClipTokenizer(self.graphs.tokenizer_path)
        self.chunk_size = int(chunk_size)
        self._image_size: tuple[int, int] | None = None
        self._reshaped: tuple[int, int] | None = None
        self._embeddings = self._feature_map = self._text = None
        self._vocabulary: list[str] | None = None

    # --- inputs -----------------------------------------------------------------------------------
    def sam_pixels(self, image) -> tuple[np.ndarray, tuple[int, int]]:
        """(1, 3, S, S) float32 SAM encoder input of an RGB PIL image and its resized size (h', w')."""
        pixels, reshaped = sam_resize_pad(image, self.sam["longest_edge"], self.sam["pad_size"], self.sam["resample"])
        return normalize_sam_array(pixels[None], [reshaped], self.sam["rescale_factor"], self.sam["mean"], self.sam["std"]), reshaped

    def clip_pixels(self, image) -> np.ndarray:
        """(1, 3, S, S) float32 CLIP input of an RGB PIL image (the head's CLIP resize, then mean/std)."""
        size = self.clip["image_size"]
        if self.clip["resize"] == "pil":
            pixels = clip_resize_pil(image, size, self.clip["resample"])
        else:  # "torch-bilinear": float pixels in [0, 1], bilinear without antialias
            pixels = bilinear_resize(np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / np.float32(255.0), (size, size))
        return normalize_array(pixels, self.clip["mean"], self.clip["std"])[None]

    def set_image(self, image: ImageLike) -> None:
        """Run SAM's image encoder and CLIP's feature map once on ``image`` (path, PIL or HWC array; EXIF applied)."""
        picture = load_image(image)
        pixels, self._reshaped = self.sam_pixels(picture)
        (self._embeddings,) = self.graphs.run("sam_image_encoder", pixels=pixels)
        (self._feature_map,) = self.graphs.run("clip_feature_map", pixels=self.clip_pixels(picture))
        self._image_size = (picture.height, picture.width)

    def text_embeddings(self, names: Sequence[str]) -> np.ndarray:
        """(V, D) float32 L2-normalised class embeddings: every template filled with each prepared name, the raw
        text features averaged over templates, then normalised (``text/embeddings.class_text_embeddings``)."""
        names = validate_vocabulary(list(names), self.text["name_style"])
        templates = self.text["templates"]
        ids = [self._truncate(self.tokenizer.encode(t.format(n))) for n in names for t in templates]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        features = None
        for start in range(0, len(ids), TEXT_BATCH):
            index = order[start : start + TEXT_BATCH]
            length = max(len(ids[i]) for i in index)
            input_ids = np.full((len(index), length), self.text["pad_id"], dtype=np.int64)
            mask = np.zeros((len(index), length), dtype=np.int64)
            for row, i in enumerate(index):
                input_ids[row, : len(ids[i])], mask[row, : len(ids[i])] = ids[i], 1
            (out,) = self.graphs.run("text_encoder", input_ids=input_ids, attention_mask=mask)
            features = np.empty((len(ids), out.shape[1]), np.float32) if features is None else features
            features[index] = out
        return l2_normalize(features.reshape(len(names), len(templates), -1).mean(axis=1))

    def _truncate(self, ids: list[int]) -> list[int]:
        limit = self.text["context_length"]
        if len(ids) <= limit:
            return ids
        warnings.warn(f"A prompt is longer than the text encoder's {limit} tokens and was truncated.", stacklevel=4)
        return ids[: limit - 1] + ids[-1:]

    @property
    def vocabulary_embeddings(self) -> np.ndarray | None:
        """(V, D) float32 the L2-normalised embeddings of the last ``set_vocabulary`` (None: none yet)."""
        return self._text

    @property
    def vocabulary(self) -> list[str] | None:
        """The class names of the last ``set_vocabulary`` (None: none yet)."""
        return None if self._vocabulary is None else list(self._vocabulary)

    def set_vocabulary(self, class_names: Sequence[str], text_embeddings: np.ndarray | None = None) -> None:
        """Embed the class names for every following ``predict`` (``text_embeddings``: their (V, D) embeddings
        from an earlier :meth:`text_embeddings` of this model, e.g. kept on disk, instead)."""
        names = validate_vocabulary(list(class_names), self.text["name_style"])
        if text_embeddings is not None and np.shape(text_embeddings)[0] != len(names):
            raise ValueError(f"{len(names)} names but {np.shape(text_embeddings)[0]} text embeddings.")
        self._text = self.text_embeddings(names) if text_embeddings is None else np.asarray(text_embeddings, np.float32)
        self._vocabulary = names

    # --- prediction ---------------------------------------------------------------------------------
    def decode(self, boxes: np.ndarray | None, points=None, point_labels=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """SAM's prompt graph on the image of ``set_image``: boxes (N, 4) XYXY as checked by ``validate_boxes``
        and/or points (N, P, 2) xy, original-image pixels -> tokens (N, C), IoU (N,), low-resolution mask logits
        (N, 256, 256) in the padded encoder frame; ``chunk_size`` prompts per graph call."""
        coords, labels = sam_prompts(boxes, points, point_labels, self._image_size, self._reshaped)
        tokens, iou, low_res = [], [], []
        for start in range(0, len(coords), self.chunk_size):
            part = slice(start, start + self.chunk_size)
            out = self.graphs.run("sam_prompt", image_embeddings=self._embeddings, points=coords[part], point_labels=labels[part])
            for store, value in zip((tokens, iou, low_res), out):
                store.append(value)
        if not tokens:
            raise PromptError("Give the regions to recognise: boxes=[[x1, y1, x2, y2], ...] or points=[[x, y], ...].")
        return tuple(np.concatenate(v) for v in (tokens, iou, low_res))

    def head_logits(self, tokens: np.ndarray) -> np.ndarray:
        """(N, V) logits of N region tokens (N, C) against the vocabulary of ``set_vocabulary``, with the CLIP
        map of ``set_image``."""
        logits, _ = self.graphs.run("head", tokens=tokens[None], feature_map=self._feature_map, text_embeddings=self._text)
        return logits[0]

    def predict(self, boxes=None, points=None, point_labels=None, top_k: int = 5, return_masks: bool = True) -> OnnxRegions:
        """Recognise N regions: boxes (N, 4) XYXY and/or points (N, P, 2) xy (labels (N, P): 1 foreground,
        0 background; default 1), original-image pixels. See :class:`OnnxRegions`."""
        if self._embeddings is None:
            raise RegionSpotError("Call set_image(image) before predict().")
        if self._text is None:
            raise RegionSpotError("Call set_vocabulary([...class names...]) before predict().")
        height, width = self._image_size
        box_array = None if boxes is None else validate_boxes(boxes, height, width)
        tokens, iou, low_res = self.decode(box_array, points, point_labels)
        logits = self.head_logits(tokens)
        probs, top_scores, top_ids = top_classes(logits, top_k)
        confidence = calibrated_confidence(logits, top_ids, self.display_temperature)
        rejection_score, known = decide(logits, self.rejection, self.display_temperature, self.reject)
        regions = OnnxRegions(
            boxes=box_array if box_array is not None else np.zeros((len(tokens), 4), np.float32),
            labels=[self._vocabulary[int(i)] for i in top_ids[:, 0]], class_ids=top_ids[:, 0].copy(),
            scores=top_scores[:, 0].copy(), probs=probs, topk_ids=top_ids, topk_scores=top_scores,
            confidence=confidence[:, 0].copy(), iou=iou, logits=logits, tokens=tokens, image_size=(height, width),
            low_res_masks=low_res if return_masks or box_array is None else None,
            mask_frame=(self.sam["pad_size"], self._reshaped), vocabulary=list(self._vocabulary),
            topk_confidence=confidence, rejection_score=rejection_score, known=known,
            rejection=None if known is None else {k: self.rejection[k] for k in ("score", "threshold")},
        )
        if box_array is None:
            regions.boxes = mask_to_box(regions.masks())
            regions.low_res_masks = low_res if return_masks else None
        return regions

