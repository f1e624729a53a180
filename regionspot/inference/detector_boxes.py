"""Box prompts from an open-vocabulary detector in transformers (OWLv2), in place of the paper's GLIP boxes.

The paper evaluates with boxes from GLIP-T run on LVIS val with the LVIS vocabulary; that box file can no
longer be downloaded. :class:`Owlv2Boxes` makes boxes of the same kind from OWLv2
(``Owlv2ForObjectDetection``, e.g. ``google/owlv2-base-patch16-ensemble``), either

- **open-vocabulary**: queries are class names (``"a photo of a {name}"``); each of the detector's boxes
  gets the best-scoring query, ``score = sigmoid(best logit)`` — as GLIP's boxes were made; or
- **class-agnostic**: no queries; ``score = sigmoid(objectness)`` from OWLv2's objectness head.

Coordinate frame: OWLv2 pads the image to a square (bottom and right) before resizing it, so its
normalised boxes refer to that square; they are scaled by the longer side, then clipped to the image.
Every box returned is XYXY in pixels of the original image. Query embeddings are computed once per
vocabulary (:meth:`Owlv2Boxes.set_queries`), not once per image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from regionspot.backbones.hub import from_pretrained
from regionspot.errors import RegionSpotError
from regionspot.inference.box_sources import ScoredBoxes
from regionspot.inference.proposals import nms

QUERY_TEMPLATE = "a photo of a {}"


def load_owlv2_boxes(model_id: str, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> Owlv2Boxes:
    """An :class:`Owlv2Boxes` from a hub id or a local folder (offline-aware; one-line error when absent)."""
    import importlib.util

    from transformers import AutoTokenizer, Owlv2ForObjectDetection

    if importlib.util.find_spec("scipy") is None:
        raise RegionSpotError("OWLv2's image processor needs scipy: pip install 'regionspot[propose]'.")
    fix = "pass --detector with a local OWLv2 folder or allow downloads"
    config = from_pretrained(_auto_config, model_id, "the detector config", fix)
    if getattr(config, "model_type", None) != "owlv2":
        raise RegionSpotError(
            f"{model_id!r} is a {getattr(config, 'model_type', '?')!r} model; --detector takes an OWLv2 detector "
            "(e.g. google/owlv2-base-patch16-ensemble) or 'sam' for SAM's automatic proposals."
        )
    model = from_pretrained(Owlv2ForObjectDetection.from_pretrained, model_id, "the OWLv2 weights", fix)
    tokenizer = from_pretrained(AutoTokenizer.from_pretrained, model_id, "the OWLv2 tokenizer", fix)
    processor = from_pretrained(_image_processor, model_id, "the OWLv2 image processor", fix)
    model = model.to(device=device, dtype=dtype or torch.float32).eval().requires_grad_(False)
    return Owlv2Boxes(model, tokenizer, processor, model_id=model_id)


def _auto_config(model_id: str, **kwargs: Any) -> Any:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(model_id, **kwargs)


def _image_processor(model_id: str, **kwargs: Any) -> Any:
    """OWLv2's PIL image processor (the fast one needs torchvision, which regionspot does not install)."""
    from transformers import Owlv2ImageProcessorPil

    return Owlv2ImageProcessorPil.from_pretrained(model_id, **kwargs)


class Owlv2Boxes:
    """Boxes from an ``Owlv2ForObjectDetection``; see the module doc for the two modes and the frame."""

    def __init__(self, model: Any, tokenizer: Any, image_processor: Any, model_id: str = "owlv2",
                 template: str = QUERY_TEMPLATE) -> None:
        self.model, self.tokenizer, self.image_processor = model, tokenizer, image_processor
        self.model_id, self.template = model_id, template
        self.queries: list[str] | None = None
        self._query_embeds: torch.Tensor | None = None  # (Q, D)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def set_queries(self, names: Sequence[str] | None, batch_size: int = 256) -> None:
        """Class names to detect (None: class-agnostic objectness). Embeds them once."""
        if names is None:
            self.queries, self._query_embeds = None, None
            return
        names = list(names)
        if not names or any(not str(n).strip() for n in names):
            raise RegionSpotError("The detector's queries must be non-empty class names.")
        max_length = int(self.model.config.text_config.max_position_embeddings)
        parts = []
        for lo in range(0, len(names), batch_size):
            texts = [self.template.format(n) for n in names[lo : lo + batch_size]]
            tokens = self.tokenizer(texts, padding="max_length", truncation=True, max_length=max_length,
                                    return_tensors="pt").to(self.device)
            out = self.model.owlv2.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
            parts.append(out.pooler_output.float())
        self.queries, self._query_embeds = names, torch.cat(parts)

    @torch.inference_mode()
    def detect(self, image: Image.Image, max_detections: int = 300, min_score: float = 0.0,
               nms_iou: float | None = None, min_size: float = 1.0) -> ScoredBoxes:
        """The image's boxes (a ``box_sources.BoxSource``): XYXY original-image pixels clipped to the image,
        each >= ``min_size`` wide and high, scores in [0, 1], labels into the queries (-1 class-agnostic);
        score >= ``min_score``, class-agnostic NMS at ``nms_iou`` when given, then the best ``max_detections``."""
        width, height = image.size
        pixels = self.image_processor(images=image, return_tensors="pt")["pixel_values"]
        pixels = pixels.to(self.device, dtype=next(self.model.parameters()).dtype)
        feature_map = self.model.image_embedder(pixel_values=pixels)[0]  # (1, h, w, C)
        feats = feature_map.reshape(1, -1, feature_map.shape[-1])  # (1, P, C)
        boxes = self.model.box_predictor(feats, feature_map)[0].float()  # (P, 4) cxcywh of the padded square
        if self._query_embeds is None:
            scores = torch.sigmoid(self.model.objectness_predictor(feats)[0].float())  # (P,)
            labels = torch.full_like(scores, -1, dtype=torch.long)
        else:
            queries = self._query_embeds.to(feats.dtype)[None]  # (1, Q, D)
            logits, _ = self.model.class_predictor(feats, queries, torch.ones(queries.shape[:2], dtype=torch.bool,
                                                                                device=self.device))
            best = logits[0].float().max(dim=-1)  # over queries
            scores, labels = torch.sigmoid(best.values), best.indices
        side = float(max(width, height))
        cx, cy, w, h = boxes.unbind(-1)
        xyxy = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1) * side
        xyxy = torch.stack([xyxy[:, 0].clamp(0, width), xyxy[:, 1].clamp(0, height),
                            xyxy[:, 2].clamp(0, width), xyxy[:, 3].clamp(0, height)], -1)
        return select_detections(xyxy.cpu(), scores.cpu(), labels.cpu(), max_detections, min_score, nms_iou, min_size)


def select_detections(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, max_detections: int,
                      min_score: float = 0.0, nms_iou: float | None = None, min_size: float = 1.0) -> ScoredBoxes:
    """Keep boxes (N, 4) XYXY with score >= min_score and both sides >= min_size, optionally suppress
    overlaps (class-agnostic NMS), and return the best ``max_detections``, best first."""
    keep = (scores >= min_score) & ((boxes[:, 2] - boxes[:, 0]) >= min_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_size)
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    order = nms(boxes, scores, nms_iou) if nms_iou is not None and len(scores) else scores.argsort(descending=True, stable=True)
    order = order[:max_detections]
    return ScoredBoxes(boxes[order].float(), scores[order].float(), labels[order].long())
