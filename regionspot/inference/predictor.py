"""RegionSpotPredictor: set an image once, set a vocabulary once, then ask about any regions.

It wraps the model, it does not copy it (habit 2): ``set_image`` caches the segmenter's image
embedding and the vision-language feature map, ``set_vocabulary`` caches text embeddings, and
``predict`` only runs the prompt decoder and the head.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch

from regionspot.backbones.base import SegmenterImageState
from regionspot.data.images import ImageLike, load_image
from regionspot.errors import PromptError, RegionSpotError
from regionspot.inference.proposals import ProposalOptions, Proposals, propose_regions
from regionspot.inference.region_filter import FILTERED_PROPOSALS, RegionFilter, filter_result
from regionspot.inference.results import RegionResult, prompt_records
from regionspot.masks.lowres import LowResMasks
from regionspot.model import RegionSpot
from regionspot.modeling.postprocess import calibrated_confidence, top_classes
from regionspot.modeling.rejection import decide
from regionspot.text.templates import validate_vocabulary


def _as_tensor(value, name: str, last_dim: int | None) -> torch.Tensor | None:
    if value is None:
        return None
    try:
        tensor = torch.as_tensor(np.asarray(value, dtype=np.float32))
    except (TypeError, ValueError) as error:
        raise PromptError(f"{name} must be numbers; got {value!r:.80}.") from error
    if last_dim is not None:
        if tensor.dim() == 1 and tensor.numel() == last_dim:
            tensor = tensor[None]
        if tensor.dim() < 2 or tensor.shape[-1] != last_dim:
            raise PromptError(f"{name} must have shape (N, {last_dim}); got {tuple(tensor.shape)}.")
    return tensor


def _prompt_tensors(
    boxes, points, point_labels
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """``predict``'s prompts as tensors: boxes (N, 4), points (N, P, 2) (a single (N, 2) array: one point per
    region) and their labels (N, P) (default 1, foreground); None where not given. Raises PromptError for no
    prompt at all or a box count that differs from the point sets'."""
    box_tensor = _as_tensor(boxes, "boxes", 4)
    point_tensor = _as_tensor(points, "points", 2)
    label_tensor = None
    if point_tensor is not None:
        if point_tensor.dim() == 2:
            point_tensor = point_tensor[:, None, :]  # (N, 1, 2)
        if point_labels is None:
            label_tensor = torch.ones(point_tensor.shape[:2], dtype=torch.long)
        else:
            label_tensor = torch.as_tensor(np.asarray(point_labels)).long().reshape(point_tensor.shape[:2])
    if box_tensor is None and point_tensor is None:
        raise PromptError("Give the regions to recognise: boxes=[[x1, y1, x2, y2], ...] or points=[[x, y], ...].")
    if box_tensor is not None and point_tensor is not None and len(box_tensor) != len(point_tensor):
        raise PromptError(f"{len(box_tensor)} boxes but {len(point_tensor)} point sets; give one of each per region.")
    return box_tensor, point_tensor, label_tensor


class RegionSpotPredictor:
    """Recognise regions of one image at a time against a user vocabulary.

    >>> predictor = RegionSpotPredictor(RegionSpot.from_pretrained())
    >>> predictor.set_image("photo.jpg"); predictor.set_vocabulary(["cat", "dog"])
    >>> result = predictor.predict(boxes=[[10, 20, 200, 240]])

    It is the torch backend of ``inference/backends.py`` (``backend`` "torch").
    reject: mark regions that are none of the vocabulary's classes (``RegionResult.known``) with the head's
    calibrated rejection threshold, and leave them out of everything mode; a head without a threshold labels
    every region (``known`` None).
    """

    backend = "torch"

    def __init__(
        self, model: RegionSpot, text_cache_dir: str | None = None, chunk_size: int = 16, vocabularies_kept: int = 4,
        reject: bool = True,
    ) -> None:
        self.model = model.eval()
        self.reject = reject
        self.text_cache_dir = text_cache_dir
        self.chunk_size = chunk_size
        # text embeddings of the last few vocabularies, keyed by (names, templates): a server that switches
        # between presets embeds each once
        self._text_memo: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self.vocabularies_kept = vocabularies_kept
        self._image = None
        self._state: SegmenterImageState | None = None
        self._feature_map: torch.Tensor | None = None
        self._vocabulary: list[str] | None = None
        self._text: torch.Tensor | None = None

    # --- caches ------------------------------------------------------------------------------------
    @torch.inference_mode()
    def set_image(self, image: ImageLike) -> None:
        """Encode ``image`` (path, PIL, or HWC array; any mode; EXIF applied) with both frozen backbones."""
        self.reset_image()
        picture = load_image(image)
        self._state = self.model.segmenter.encode_image(picture)
        self._feature_map = self.model.vision_language.feature_map([picture])  # (1, T, C)
        self._image = picture

    def reset_image(self) -> None:
        self._image, self._state, self._feature_map = None, None, None

    @torch.inference_mode()
    def set_vocabulary(self, class_names: Sequence[str], templates: str | list[str] | None = None) -> None:
        """Embed the class names (template ensemble, cached on disk) for every following ``predict``."""
        names = validate_vocabulary(list(class_names), self.model.config.preprocess.class_names)
        key = (tuple(names), templates if templates is None or isinstance(templates, str) else tuple(templates))
        if key in self._text_memo:
            self._text_memo.move_to_end(key)
        else:
            self._text_memo[key] = self.model.text_embeddings(
                names, templates=templates, cache_dir=self.text_cache_dir, show_progress=len(names) > 50)
            while len(self._text_memo) > max(1, self.vocabularies_kept):
                self._text_memo.popitem(last=False)
        self._text = self._text_memo[key]
        self._vocabulary = names

    @property
    def image(self):
        return self._image

    @property
    def vocabulary(self) -> list[str] | None:
        return self._vocabulary

    def propose(self, options: ProposalOptions | None = None) -> np.ndarray:
        """Class-agnostic boxes (K, 4) float32 XYXY original-image pixels for the current image, best first
        (point grid + crops, IoU/stability filtering, box refinement, NMS: ``inference.proposals``)."""
        return self._proposals(options).boxes.numpy()

    def _proposals(self, options: ProposalOptions | None) -> Proposals:
        if self._state is None:
            raise RegionSpotError("Call set_image(image) before propose().")
        return propose_regions(self.model.segmenter, self._image, options, state=self._state)

    def predict_everything(
        self, options: ProposalOptions | None = None, top_k: int = 5, return_masks: bool = True,
        return_attention: bool = False, region_filter: RegionFilter | None = None,
    ) -> RegionResult:
        """Recognise every region the segmenter proposes on its own (no prompts), keeping those worth showing.

        The best ``max(options.max_regions, FILTERED_PROPOSALS)`` proposals (:meth:`propose`) are labelled
        (:meth:`predict` with their boxes) when stable enough; ``region_filter`` (default ``RegionFilter()``:
        stable and confident enough, no duplicates or parts, most stable first; ``RegionFilter.keep_all()`` keeps every
        one) picks the regions to show, most stable first, at most ``options.max_regions`` of them. An image without any proposal,
        or without any kept region, gives a result with a message.
        """
        options = options or ProposalOptions()
        region_filter = region_filter or RegionFilter()
        proposals = self._proposals(dataclasses.replace(options, max_regions=max(options.max_regions, FILTERED_PROPOSALS)))
        stable = proposals.stability >= region_filter.min_stability
        boxes, stability = proposals.boxes[stable].numpy(), proposals.stability[stable].numpy()
        if len(boxes) == 0:
            result = self.predict(boxes=np.zeros((0, 4), np.float32), top_k=top_k, return_masks=return_masks)
            result.messages.append(
                f"None of the {len(proposals)} proposed regions reached stability {region_filter.min_stability:g}; "
                "lower the minimum stability or give boxes." if len(proposals) else
                "No regions were proposed on this image; give boxes or points instead.")
            return result
        labelled = self.predict(boxes=boxes, top_k=top_k, return_masks=return_masks, return_attention=return_attention)
        labelled.prompts = [{"type": "proposal", "box_xyxy": prompt["box_xyxy"]} for prompt in labelled.prompts]
        known = labelled.is_known  # rejected: background and objects of no vocabulary class, not worth showing
        result = filter_result(labelled.take(np.flatnonzero(known)), region_filter, options.max_regions,
                               rank=stability[known])
        if not known.any():
            result.messages.append(f"All {len(labelled)} proposed regions were none of the vocabulary's classes "
                                   "(rejected); add class names or turn rejection off.")
        elif len(result) == 0:
            result.messages.append(
                f"None of the {len(labelled)} proposed regions reached confidence {region_filter.min_confidence:g} "
                f"(best {float(labelled.display_scores.max()):.2f}); lower the minimum confidence or give boxes.")
        return result

    # --- prediction --------------------------------------------------------------------------------
    @torch.inference_mode()
    def predict(
        self,
        boxes=None,
        points=None,
        point_labels=None,
        top_k: int = 5,
        return_masks: bool = True,
        return_attention: bool = False,
    ) -> RegionResult:
        """Recognise the given regions.

        boxes: (N, 4) XYXY original-image pixels (list, array or tensor).
        points: (N, P, 2) xy original-image pixels, with point_labels (N, P): 1 foreground, 0 background.
            A single (N, 2) array means one foreground point per region.
        top_k: how many classes to keep per region (in ``topk_ids``/``topk_scores`` and ``to_coco_json``).
        return_masks: also return the segmenter's masks (N, H, W) at the original size, as ``LowResMasks``:
            its low-resolution logits, upsampled one region at a time when a mask is asked for.
        return_attention: also return the head's cross-attention weights of this forward,
            ``result.attention`` (N, layers, heads, T) (drawn by ``inference.explain``).
        """
        if self._state is None:
            raise RegionSpotError("Call set_image(image) before predict().")
        if self._text is None:
            raise RegionSpotError("Call set_vocabulary([...class names...]) before predict().")
        box_tensor, point_tensor, label_tensor = _prompt_tensors(boxes, points, point_labels)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            seg = self.model.segmenter.decode_prompts(
                self._state, boxes=box_tensor, points=point_tensor, point_labels=label_tensor,
                masks="low_res" if return_masks or box_tensor is None else "none", chunk_size=self.chunk_size,
            )
        messages = [str(w.message) for w in caught]
        for message in messages:
            warnings.warn(message, stacklevel=2)

        n = seg.tokens.shape[0]
        vocab = self._vocabulary or []
        prompts = prompt_records(box_tensor, point_tensor, label_tensor)
        if n == 0:
            empty = np.zeros((0,), np.float32)
            return RegionResult(np.zeros((0, 4), np.float32), [], np.zeros((0,), np.int64), empty,
                                np.zeros((0, len(vocab)), np.float32), np.zeros((0, 0), np.int64),
                                np.zeros((0, 0), np.float32), empty, vocab, self._state.original_size,
                                None, messages, prompts=prompts, logits=np.zeros((0, len(vocab)), np.float32))
        out = self.model(seg.tokens[None], self._feature_map, self._text, return_attention=return_attention)
        logits = out.logits[0]  # (N, V)
        attention = None
        if out.attention is not None:
            attention = out.attention[0].permute(2, 0, 1, 3).float().cpu().numpy()  # (L, heads, N, T) -> (N, L, heads, T)
        probs, top_scores, top_ids = top_classes(logits, top_k)  # (N, V), (N, k), (N, k)
        topk_confidence = calibrated_confidence(logits, top_ids, self.model.config.display_temperature)  # (N, k)
        topk_confidence = topk_confidence.cpu().numpy().astype(np.float32)
        logits_np = logits.float().cpu().numpy()
        rejection_score, known = decide(logits_np, dataclasses.asdict(self.model.config.rejection),
                                        self.model.config.display_temperature, self.reject)
        masks = LowResMasks(seg.low_res_masks, seg.mask_frame) if seg.low_res_masks is not None else None
        # the boxes as the segmenter decoded them (clipped to the image), else the masks' tight boxes
        out_boxes = seg.boxes.numpy() if seg.boxes is not None else masks.boxes()
        return RegionResult(
            boxes=out_boxes.astype(np.float32),
            labels=[vocab[int(i)] for i in top_ids[:, 0]],
            class_ids=top_ids[:, 0].cpu().numpy().astype(np.int64),
            scores=top_scores[:, 0].cpu().numpy().astype(np.float32),
            probs=probs.cpu().numpy().astype(np.float32),
            topk_ids=top_ids.cpu().numpy().astype(np.int64),
            topk_scores=top_scores.cpu().numpy().astype(np.float32),
            iou=seg.iou.float().cpu().numpy(),
            vocabulary=list(vocab),
            image_size=self._state.original_size,
            masks=masks if return_masks else None,
            messages=messages,
            confidence=topk_confidence[:, 0].copy(),
            attention=attention,
            topk_confidence=topk_confidence,
            points=None if point_tensor is None else point_tensor.numpy().astype(np.float32),
            prompts=prompts,
            logits=logits_np,
            rejection_score=rejection_score,
            known=known,
            rejection=None if known is None else {"score": self.model.config.rejection.score,
                                                  "threshold": self.model.config.rejection.threshold},
        )

