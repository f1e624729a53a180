"""What the web demo does, without the web: one predictor, a lock, the limits of a public server.

``DemoService`` owns the one model instance. Every request goes through :meth:`DemoService.recognise`
under a lock (the predictor holds one image and one vocabulary at a time), so the page and API clients
queue on it. The last image's encoding is kept (more prompts on the same image do not re-encode it) and
the predictor keeps the text embeddings of its last few vocabularies, so a vocabulary is embedded once.

Every bad input is a ``RegionSpotError`` with one line that says what to do: the image through
``load_image`` (with the server's pixel limits), the vocabulary through ``validate_vocabulary`` and the
vocabulary-size limit here, the prompts through ``parse_numbers`` and the segmenter's own checks. The web
layer shows those lines; nothing here knows about gradio.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from regionspot.backbones.typed_prompts import parse_numbers
from regionspot.data.images import load_image
from regionspot.errors import ImageError, PromptError, VocabularyError
from regionspot.inference.explain import explain_figure
from regionspot.inference.predictor import RegionSpotPredictor
from regionspot.inference.proposals import ProposalOptions
from regionspot.inference.results import RegionResult
from regionspot.inference.visualize import draw_result
from regionspot.masks.lowres import concat_masks
from regionspot.text.presets import PRESETS, preset_vocabulary, read_names_file, split_names

TYPED, NAMES_FILE = "typed", "file"
TOP_K = 5
NO_IMAGE = "Upload an image first (or pick the bundled example)."


@dataclass(frozen=True)
class ServerLimits:
    """What one request may ask of the server.

    max_pixels / max_side: the largest image (megapixels, longest side) accepted.
    max_vocabulary: the most class names in one vocabulary (LVIS has 1203).
    max_prompts: the most boxes + points in one request.
    """

    max_pixels: int = 12_000_000
    max_side: int = 8192
    max_vocabulary: int = 1500
    max_prompts: int = 200


@dataclass
class DemoRequest:
    """One recognition. image: a file path. vocabulary: class names. boxes / points: typed prompts
    ("x1,y1,x2,y2; ..." and "x,y; ..." in original-image pixels). everything: ignore prompts and label the
    segmenter's proposals (at most ``max_regions``). explain_region: draw the attention of this region
    (index into the result), per layer or the last layer only."""

    image: str | Path
    vocabulary: list[str]
    boxes: str = ""
    points: str = ""
    everything: bool = False
    max_regions: int = 20
    explain_region: int | None = None
    explain_per_layer: bool = False


@dataclass
class DemoResponse:
    """result: the RegionResult; picture: masks, boxes and labels drawn; attention: the attention figure
    or None; table: one row per region (index, box, top-5 "label confidence", see :func:`result_table`);
    results_json: a file of COCO results (top-5 per region, each with the paper's softmax ``score``);
    messages: notes for the page (clipped boxes, nothing proposed)."""

    result: RegionResult
    picture: Image.Image
    attention: Image.Image | None
    table: list[list[str]]
    results_json: Path
    messages: list[str] = field(default_factory=list)


class DemoService:
    """The one model instance behind the demo and its API. Thread-safe: requests run one at a time."""

    def __init__(self, predictor: RegionSpotPredictor, limits: ServerLimits | None = None,
                 default_preset: str = "shapesworld", proposals: ProposalOptions | None = None) -> None:
        self.predictor = predictor
        self.limits = limits or ServerLimits()
        self.proposals = proposals or ProposalOptions()  # "recognise everything"; max_regions comes per request
        self.default_preset = default_preset
        self._lock = threading.Lock()
        self._image_key: str | None = None
        self._outputs = tempfile.TemporaryDirectory(prefix="regionspot-demo-")
        self._count = 0

    # --- inputs ---------------------------------------------------------------------------------
    def open_image(self, path: str | Path) -> Image.Image:
        """The RGB image at ``path`` within the server's limits (ImageError otherwise)."""
        if path is None:
            raise PromptError(NO_IMAGE)
        try:
            return load_image(Path(path), max_pixels=self.limits.max_pixels, max_side=self.limits.max_side)
        except ImageError as error:  # name the upload, not the server's temporary folder
            raise ImageError(str(error).replace(str(path), Path(path).name)) from None

    def vocabulary(self, preset: str, typed: str = "", names_file: str | Path | None = None) -> list[str]:
        """Class names of a preset key (``text.presets.PRESETS``), of the typed text (``TYPED``: commas or
        new lines) or of a names file (``NAMES_FILE``), checked against the vocabulary-size limit."""
        if preset == TYPED:
            names = split_names(typed or "")
        elif preset == NAMES_FILE:
            if not names_file:
                raise VocabularyError("Choose a names file (one class name per line) or another vocabulary.")
            names = read_names_file(names_file)
        elif preset in PRESETS:
            names = preset_vocabulary(preset)
        else:
            raise VocabularyError(f"Unknown vocabulary {preset!r}; choose one of {', '.join([*PRESETS, TYPED, NAMES_FILE])}.")
        if not names:
            raise VocabularyError("The vocabulary is empty; type class names separated by commas, e.g. 'cat, dog'.")
        if len(names) > self.limits.max_vocabulary:
            raise VocabularyError(
                f"The vocabulary has {len(names)} names; this server takes at most {self.limits.max_vocabulary} "
                "(LVIS has 1203). Use fewer names, or start it with a larger --max-vocabulary."
            )
        return names

    def prompts(self, boxes: str, points: str) -> tuple[list[list[float]] | None, list[list[float]] | None]:
        """Typed boxes and points → lists (None when empty); PromptError when unreadable or too many."""
        box_list = parse_numbers(boxes or "", 4, "box") or None
        point_list = parse_numbers(points or "", 2, "point") or None
        count = len(box_list or []) + len(point_list or [])
        if count > self.limits.max_prompts:
            raise PromptError(f"{count} prompts; this server takes at most {self.limits.max_prompts} per request.")
        return box_list, point_list

    # --- the request ----------------------------------------------------------------------------
    def recognise(self, request: DemoRequest) -> DemoResponse:
        """Run one request (queued behind any other). Raises RegionSpotError for bad input."""
        if request.image is None:  # nothing uploaded, or the last upload was not an image
            raise PromptError(NO_IMAGE)
        box_list, point_list = self.prompts(request.boxes, request.points)
        if not request.everything and box_list is None and point_list is None:
            raise PromptError("Add a prompt (click a point, draw or type a box) or tick 'Recognise everything'.")
        names = list(request.vocabulary)
        want_attention = request.explain_region is not None
        with self._lock:
            self._set_image(request.image)
            self.predictor.set_vocabulary(names)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the result lists them in .messages
                if request.everything:
                    options = dataclasses.replace(self.proposals, max_regions=max(1, min(int(request.max_regions), 100)))
                    result = self.predictor.predict_everything(options, top_k=TOP_K, return_attention=want_attention)
                elif box_list is not None and point_list is not None:
                    first = self.predictor.predict(boxes=box_list, top_k=TOP_K, return_attention=want_attention)
                    second = self.predictor.predict(points=point_list, top_k=TOP_K, return_attention=want_attention)
                    result = concat_results(first, second)
                else:
                    result = self.predictor.predict(boxes=box_list, points=point_list, top_k=TOP_K,
                                                    return_attention=want_attention)
            image = self.predictor.image
            self._count += 1
            count = self._count
        return self._respond(image, result, request, count)

    def _set_image(self, path: str | Path) -> None:
        """Encode the image unless it is the one already encoded (same bytes)."""
        if path is None:
            raise PromptError(NO_IMAGE)
        key = hashlib.sha256(Path(path).read_bytes()).hexdigest() if Path(path).is_file() else str(path)
        if key != self._image_key or self.predictor.image is None:
            self._image_key = None
            self.predictor.set_image(self.open_image(path))
            self._image_key = key

    def _respond(self, image: Image.Image, result: RegionResult, request: DemoRequest, count: int) -> DemoResponse:
        attention = None
        if request.explain_region is not None and len(result):
            region = int(request.explain_region)
            if not 0 <= region < len(result):
                raise PromptError(f"There is no region #{region}; pick one in 0..{len(result) - 1} for the attention map.")
            attention = explain_figure(image, result, regions=[region], per_layer=request.explain_per_layer)
        path = Path(self._outputs.name) / f"regionspot_results_{count % 50:02d}.json"
        path.write_text(json.dumps(result.to_coco_json(image_id=0, top_k=TOP_K), indent=1))
        return DemoResponse(result, draw_result(image, result), attention, result_table(result), path,
                            list(result.messages))


def concat_results(first: RegionResult, second: RegionResult) -> RegionResult:
    """The regions of two results of the same image and vocabulary, first's then second's."""
    def cat(a, b):
        return None if a is None or b is None else np.concatenate([a, b])

    return RegionResult(
        boxes=cat(first.boxes, second.boxes), labels=first.labels + second.labels,
        class_ids=cat(first.class_ids, second.class_ids), scores=cat(first.scores, second.scores),
        probs=cat(first.probs, second.probs), topk_ids=cat(first.topk_ids, second.topk_ids),
        topk_scores=cat(first.topk_scores, second.topk_scores), iou=cat(first.iou, second.iou),
        vocabulary=first.vocabulary, image_size=first.image_size, masks=concat_masks(first.masks, second.masks),
        messages=first.messages + second.messages, attention=cat(first.attention, second.attention),
        confidence=cat(first.confidence, second.confidence),
        topk_confidence=cat(first.topk_confidence, second.topk_confidence),
        points=concat_points(first, second),
        prompts=None if first.prompts is None or second.prompts is None else first.prompts + second.prompts,
        logits=cat(first.logits, second.logits),
        rejection_score=cat(first.rejection_score, second.rejection_score), known=cat(first.known, second.known),
        rejection=first.rejection if first.known is not None and second.known is not None else None,
    )


def concat_points(first: RegionResult, second: RegionResult) -> np.ndarray | None:
    """(N1 + N2, P, 2) float32 prompt points of both results; NaN rows for regions prompted by a box (the
    drawing skips them), NaN columns where one result has fewer points per region. None: no point prompts."""
    if first.points is None and second.points is None:
        return None
    per_region = max(p.shape[1] for p in (first.points, second.points) if p is not None)
    parts = []
    for result in (first, second):
        filled = np.full((len(result), per_region, 2), np.nan, np.float32)
        if result.points is not None:
            filled[:, : result.points.shape[1]] = result.points
        parts.append(filled)
    return np.concatenate(parts)


def result_table(result: RegionResult) -> list[list[str]]:
    """One row per region: index, box "x1, y1, x2, y2" (pixels), then the top-5 as "label 0.62"; a region that is
    none of the vocabulary's classes (``RegionResult.known`` False) has "unknown (best: label 0.41)" as its top 1.

    The numbers are the confidence a person is shown everywhere (``RegionResult.display_topk_scores``;
    the top 1 is ``display_scores``, the number on the picture and in the CLI's output), not the paper's
    softmax ``score`` that the COCO results file carries for AP.
    """
    rows = []
    confidence, known = result.display_topk_scores, result.is_known  # (N, k), (N,)
    for i in range(len(result)):
        box = ", ".join(f"{v:.0f}" for v in result.boxes[i])
        top = [f"{result.vocabulary[int(c)]} {s:.2f}" for c, s in zip(result.topk_ids[i], confidence[i])]
        if not known[i]:
            top[0] = f"{result.display_labels[i]} (best: {top[0]})"
        rows.append([str(i), box, *top, *[""] * (TOP_K - len(top))])
    return rows


TABLE_HEADERS = ["region", "box (x1, y1, x2, y2)", *[f"top {k}" for k in range(1, TOP_K + 1)]]
